//! The snapshot: everything `portsentry status` shows, as one serde type. The daemon sends it
//! as JSON over its status socket; `status --json` prints it; the text and Prometheus
//! renderers (`render`) read the same numbers. Field names are an interface (issue 13):
//! `running`, `pid`, `modes`, `started`, `counters` (with `probes`, `hosts_reported`, `blocks`,
//! `capture_drops`), `blocks_in_force`, `top_sources`, `top_ports` (each `value`, `count`).
//! New fields may be added; none may be renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `portsentry status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// The daemon answered on its status socket.
    pub running: bool,
    /// The daemon's process id; `None` when it is not running.
    pub pid: Option<u32>,
    /// The program version of the daemon that answered (or of the command).
    pub version: String,
    /// The modes it runs, e.g. `["stcp", "udp"]`.
    pub modes: Vec<String>,
    /// Its configuration file.
    pub config: Option<String>,
    /// When it started (RFC 3339): the counters count from then; a reload keeps them.
    pub started: Option<String>,
    /// `started` as seconds since the epoch.
    pub started_epoch: Option<i64>,
    /// The last reload (SIGHUP), if any.
    pub last_reload: Option<String>,
    /// `last_reload` as seconds since the epoch.
    pub last_reload_epoch: Option<i64>,
    /// Seconds since `started`.
    pub uptime_seconds: Option<u64>,
    /// When this snapshot was taken (RFC 3339).
    pub generated: String,
    /// Ports watched, by mode.
    pub watched_ports: BTreeMap<String, u64>,
    /// Watched ports of the stealth and advanced modes not watched now, by mode: a local
    /// socket would answer them (a TCP listener, an unconnected UDP socket).
    #[serde(default)]
    pub unwatched_ports: BTreeMap<String, Vec<u16>>,
    /// Totals since `started`; `None` when the daemon is not running.
    pub counters: Option<Counters>,
    /// Probes by mode, protocol and scan kind (the Prometheus labels).
    pub probes_by_kind: Vec<ProbeCount>,
    /// Hosts reported, by mode.
    pub reports_by_mode: BTreeMap<String, u64>,
    /// Hosts blocked, by mode.
    pub blocks_by_mode: BTreeMap<String, u64>,
    /// Block actions carried out, by method (`nftables`, `route`, `hosts_deny`, `run_cmd`);
    /// one block may use several.
    pub blocks_by_method: BTreeMap<String, u64>,
    /// Blocks refused, by reason (`rate_limit`, `protected`, `prefix_budget`).
    pub blocks_refused_by_reason: BTreeMap<String, u64>,
    /// Reports not logged, by reason (`rate_limit`: the report limits; `repeat`: a host's
    /// repeats within the repeat interval).
    pub suppressed_by_reason: BTreeMap<String, u64>,
    /// Where packets and hits went, stage by stage, since start (`null` when not running).
    #[serde(default)]
    pub path: Option<PacketPath>,
    /// Fill level of the nftables sets (BLOCK_METHOD="nftables").
    pub nft_sets: Vec<SetFill>,
    /// The fleet link (CrowdSec LAPI), once that exists; `null` without one.
    pub fleet: Option<FleetLink>,
    /// Hosts blocked now; `None` when the daemon is not running.
    pub blocks_in_force: Option<u64>,
    /// The soonest expiry of a block in force (RFC 3339), if any expires.
    pub soonest_expiry: Option<String>,
    /// `soonest_expiry` as seconds since the epoch.
    pub soonest_expiry_epoch: Option<i64>,
    /// Where the top lists come from: `daemon` (live counts) or `history` (the history file,
    /// when the daemon is not running).
    pub tops_from: String,
    /// Top sources, /24 and /64 prefixes and ports of the last hour.
    pub top_sources: Vec<Top>,
    /// Top /24 and /64 prefixes of the last hour.
    pub top_prefixes: Vec<Top>,
    /// Top ports of the last hour (`22/tcp`).
    pub top_ports: Vec<Top>,
    /// The same lists for the last day.
    pub last_day: TopLists,
    /// The history file, read when the daemon is not running.
    pub history: Option<HistoryBrief>,
    /// Why the daemon is taken as not running, or what failed.
    pub note: Option<String>,
}

/// Integer counters since start. A reload keeps them; a restart resets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counters {
    /// Connections, datagrams and captured packets looked at.
    pub packets_judged: u64,
    /// Probes from sources that are not ignored (every kind, every mode).
    pub probes: u64,
    /// Hits from ignored sources (IGNORE_FILE).
    pub probes_ignored: u64,
    /// Detection reports (a host reported as scanning).
    pub hosts_reported: u64,
    /// Hosts blocked (each once, whatever the number of methods).
    pub blocks: u64,
    /// Blocks refused (every reason).
    pub blocks_refused: u64,
    /// Reports the report limits kept out of the log.
    pub reports_suppressed: u64,
    /// Repeats of an already reported host kept out of the log.
    pub repeats_suppressed: u64,
    /// Packets the capture ring lost.
    pub capture_drops: u64,
    /// Captured packets dropped as malformed.
    pub malformed_packets: u64,
    /// Response commands that failed (exit status, signal, time-out, not started).
    pub command_failures: u64,
    /// Blocks that expired (BLOCK_TIMEOUT).
    pub expiries: u64,
    /// Blocks lifted by hand (`portsentry blocked del|flush`).
    pub unblocks: u64,
    /// Captured packets dropped for a bad IP header or transport checksum (the host drops
    /// them too; never reported).
    #[serde(default)]
    pub bad_checksum_packets: u64,
    /// IP fragments handed to the reassembly.
    #[serde(default)]
    pub fragments: u64,
    /// Fragmented datagrams reassembled (then judged as whole packets).
    #[serde(default)]
    pub datagrams_reassembled: u64,
    /// Fragmented datagrams the host drops too: overlapping, malformed, too long, never
    /// completed, or evicted from the full cache.
    #[serde(default)]
    pub datagrams_unassembled: u64,
    /// Bytes the reassembly cache holds now (at most 4 MiB).
    #[serde(default)]
    pub fragment_cache_bytes: u64,
    /// The most bytes the reassembly cache ever held.
    #[serde(default)]
    pub fragment_cache_peak_bytes: u64,
    /// Blocks lifted to make room in a full nftables set for a source with more evidence.
    #[serde(default)]
    pub evictions: u64,
}

/// The packet path since start, stage by stage (issue 23): what the kernel's capture ring took
/// and lost, what the loop read and judged, and what became of each hit. Each stage's counts
/// account for what the stage before it passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PacketPath {
    /// The capture (stealth and advanced modes); `null` without one.
    pub capture: Option<CapturePath>,
    /// The hits of every mode (captured probes, connects and datagrams on bound ports).
    pub hits: HitOutcomes,
}

/// The capture's stages (stealth and advanced modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CapturePath {
    /// Packets the kernel's filter passed to the capture ring (dropped ones included).
    pub ring_packets: u64,
    /// Of those, lost because the ring was full (the daemon did not read fast enough).
    pub ring_drops: u64,
    /// Packets read from the doorbell socket (while traffic is light).
    pub bell_packets: u64,
    /// Passes over the ring that read packets (each one wake-up of the loop and, when a
    /// candidate's port is not known to be in use, one fresh read of the listening sockets).
    #[serde(default)]
    pub ring_passes: u64,
    /// Of those, the busy ones after which the loop rested before the next pass (so that a
    /// flood is read several blocks a pass: `ring::REST_MS`).
    #[serde(default)]
    pub ring_rests: u64,
    /// Packets read from the ring or the doorbell whose other copy had been judged.
    pub copies_skipped: u64,
    /// Packets parsed (one copy of each packet read).
    pub parsed: u64,
    /// Of those, malformed (counted, never judged).
    pub malformed: u64,
    /// Not a probe kind judged here (another protocol, an ICMP reply, ...); fragments go to
    /// the reassembly and are counted there.
    pub not_tcp_udp: u64,
    /// This host's own outgoing packets (they explain the replies).
    pub outgoing: u64,
    /// Incoming packets that are no probe (a port in use, a reply on this host's own flow,
    /// this host's own source, ...).
    pub not_probes: u64,
    /// Probes handed to the decision.
    pub hits: u64,
}

/// What became of the hits judged (every mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HitOutcomes {
    /// Hits judged.
    pub judged: u64,
    /// From a source in the ignore file.
    pub ignored: u64,
    /// Counted towards SCAN_TRIGGER, not reached yet.
    pub below_trigger: u64,
    /// Repeats from a host reported within the repeat interval.
    pub repeats: u64,
    /// Reported within the report limits.
    pub reported: u64,
    /// Reported over the report buckets, through the evidence lane.
    pub reported_on_evidence: u64,
    /// Held back by the source prefix's report bucket (the host stays owed a report).
    pub over_prefix_limit: u64,
    /// Held back by the global report bucket and its reserve (likewise).
    pub over_global_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Probes of one mode and kind.
pub struct ProbeCount {
    /// The mode.
    pub mode: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// The scan kind.
    pub kind: String,
    /// How many.
    pub count: u64,
}

/// One entry of a top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top {
    /// An address, a prefix (`198.51.100.0/24`, `2001:db8::/64`) or a port (`22/tcp`).
    pub value: String,
    /// How many (at least the true count, see `error`).
    pub count: u64,
    /// How far `count` may be from the true count (0: exact). Non-zero only after more
    /// distinct values arrived than the bounded tables hold (a flood of forged sources).
    pub error: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
/// Top lists of one window.
pub struct TopLists {
    /// Top sources.
    pub top_sources: Vec<Top>,
    /// Top /24 and /64 prefixes.
    pub top_prefixes: Vec<Top>,
    /// Top ports.
    pub top_ports: Vec<Top>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Fill level of one nftables set.
pub struct SetFill {
    /// `blocked4`, `blocked6`.
    pub set: String,
    /// Elements in it now.
    pub elements: u64,
    /// BLOCK_SET_SIZE.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The fleet link's state.
pub struct FleetLink {
    /// The link is up.
    pub up: bool,
    /// Since when it is in that state (RFC 3339).
    pub since: Option<String>,
    /// Alerts waiting to be sent.
    pub queued: u64,
    /// Alerts delivered since start.
    #[serde(default)]
    pub sent: u64,
    /// Alerts dropped (spool full, or refused by the LAPI).
    #[serde(default)]
    pub dropped: u64,
    /// Bans from the fleet in force on this host.
    #[serde(default)]
    pub decisions: u64,
    /// The interval the pulls keep (ms): CROWDSEC_PULL_INTERVAL, longer while the LAPI
    /// answers slowly; 0: not pulling.
    #[serde(default)]
    pub pull_every_ms: u64,
    /// How long the LAPI took to answer the last pull (ms).
    #[serde(default)]
    pub answer_ms: u64,
    /// How far behind the LAPI's decisions this host may be (ms since its last pull that
    /// worked, once that is over twice the interval); 0: keeping pace.
    #[serde(default)]
    pub behind_ms: u64,
}

/// The history file, summarised when the daemon is not running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryBrief {
    /// The history file's path.
    pub file: String,
    /// Lines read as history records.
    pub records: u64,
    /// Records of the last hour and the last day.
    pub records_last_hour: u64,
    /// Records of the last day.
    pub records_last_day: u64,
    /// The first and last record (RFC 3339).
    pub first: Option<String>,
    /// The last record (RFC 3339).
    pub last: Option<String>,
    /// Lines that are not history records.
    pub malformed: u64,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
}
