//! The daemon's one set of counters (STYLE §17, DESIGN "One counter set, many views"): what
//! it judged, what it reported and blocked, what it refused and why, what it lost; the blocks
//! in force; and the top sources, /24 and /64 prefixes and ports of the last hour and day.
//! `portsentry status` (text and JSON), the Prometheus text file and the event lines all
//! read these same numbers; the renderers live in [`render`].
//!
//! The shell calls the `note_*` methods as things happen and `set_*` for levels it reads
//! elsewhere (the engine's blocks, the nftables sets). Time is an argument: wall-clock seconds
//! since the epoch, because the windows are "the last hour" as the admin's clock shows it.
//! Counters live as long as the process: a reload keeps them ([`Stats::note_reload`]), a
//! restart starts from zero, and the snapshot says when that was.
//!
//! Memory is bounded whatever arrives: the counters are keyed by small closed sets (mode,
//! scan kind, method, reason) and the top lists are windows of bounded Space-Saving tables
//! ([`window`], [`topk`]). Exact: every counter, and the top lists while no table had to
//! evict; approximate (with a stated error bound per entry): the top lists during a flood of
//! more distinct sources than the tables hold.
//!
//! Pure: no I/O, no clock.

mod batch;
pub use batch::Probe;
mod kinds;
pub mod prometheus;
pub mod render;
pub mod snapshot;
pub mod topk;
mod tops;
pub mod window;

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::tz::TimeZone;

use crate::config::mode::{Kind, Mode, Proto};
use crate::observe::timefmt;

pub use snapshot::{
    CapturePath, Counters, FleetLink, HitOutcomes, PacketPath, ProbeCount, SetFill, Snapshot, Top,
    TopLists,
};
use tops::{Tops, listed, tops};

pub use kinds::{Method, Refusal, Suppression};

/// How many entries each top list shows.
pub const TOP_N: usize = 10;
/// Keys kept per minute of the last hour, and per hour of the last day, per list.
pub const MINUTE_CAPACITY: usize = 64;
/// Keys kept per hour of the last day, per list.
pub const HOUR_CAPACITY: usize = 256;

/// The scan kinds a probe is counted under (Prometheus label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// A full connect or datagram on a bound port (`-tcp`, `-udp`).
    Connect,
    /// SYN only.
    Syn,
    /// No flag.
    Null,
    /// FIN only.
    Fin,
    /// FIN, URG and PSH.
    Xmas,
    /// ACK alone (also nmap's Window scan).
    Ack,
    /// FIN+ACK.
    Maimon,
    /// SYN and RST together.
    SynRst,
    /// All six classic flags.
    AllFlags,
    /// Any other flag combination (1.2's "Unknown Type").
    Other,
    /// A datagram seen by `-sudp`/`-audp`.
    Udp,
    /// SCTP INIT (`-stcp`/`-atcp`, issue 18).
    SctpInit,
    /// SCTP COOKIE ECHO.
    SctpCookieEcho,
    /// ICMP echo request.
    IcmpEcho,
    /// ICMP timestamp request.
    IcmpTimestamp,
    /// ICMP address mask request.
    IcmpMask,
    /// ICMPv6 echo request.
    Icmp6Echo,
}

impl ProbeKind {
    /// The kinds of the TCP stealth and advanced modes.
    pub const TCP_SCANS: [ProbeKind; 9] = [
        ProbeKind::Syn,
        ProbeKind::Null,
        ProbeKind::Fin,
        ProbeKind::Xmas,
        ProbeKind::Ack,
        ProbeKind::Maimon,
        ProbeKind::SynRst,
        ProbeKind::AllFlags,
        ProbeKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Connect => "connect",
            ProbeKind::Syn => "syn",
            ProbeKind::Null => "null",
            ProbeKind::Fin => "fin",
            ProbeKind::Xmas => "xmas",
            ProbeKind::Ack => "ack",
            ProbeKind::Maimon => "maimon",
            ProbeKind::SynRst => "synrst",
            ProbeKind::AllFlags => "all",
            ProbeKind::Other => "other",
            ProbeKind::Udp => "udp",
            ProbeKind::SctpInit => "sctp_init",
            ProbeKind::SctpCookieEcho => "sctp_cookie_echo",
            ProbeKind::IcmpEcho => "icmp_echo",
            ProbeKind::IcmpTimestamp => "icmp_timestamp",
            ProbeKind::IcmpMask => "icmp_mask",
            ProbeKind::Icmp6Echo => "icmp6_echo",
        }
    }

    /// The SCTP and ICMP kinds the TCP stealth and advanced modes also see.
    pub const OTHER: [ProbeKind; 6] = [
        ProbeKind::SctpInit,
        ProbeKind::SctpCookieEcho,
        ProbeKind::IcmpEcho,
        ProbeKind::IcmpTimestamp,
        ProbeKind::IcmpMask,
        ProbeKind::Icmp6Echo,
    ];

    /// The kind of an SCTP or ICMP probe.
    pub fn from_other(k: crate::capture::classify::OtherProbe) -> ProbeKind {
        use crate::capture::classify::OtherProbe as O;
        match k {
            O::SctpInit => ProbeKind::SctpInit,
            O::SctpCookieEcho => ProbeKind::SctpCookieEcho,
            O::IcmpEcho => ProbeKind::IcmpEcho,
            O::IcmpTimestamp => ProbeKind::IcmpTimestamp,
            O::IcmpAddressMask => ProbeKind::IcmpMask,
            O::Icmp6Echo => ProbeKind::Icmp6Echo,
        }
    }

    /// An ICMP kind: no port was probed.
    pub fn is_icmp(self) -> bool {
        matches!(
            self,
            ProbeKind::IcmpEcho
                | ProbeKind::IcmpTimestamp
                | ProbeKind::IcmpMask
                | ProbeKind::Icmp6Echo
        )
    }

    /// The protocol word of an SCTP or ICMP kind (`sctp`, `icmp`, `icmpv6`); None for TCP and
    /// UDP kinds (their mode says it).
    pub fn own_proto(self) -> Option<&'static str> {
        match self {
            ProbeKind::SctpInit | ProbeKind::SctpCookieEcho => Some("sctp"),
            ProbeKind::Icmp6Echo => Some("icmpv6"),
            k if k.is_icmp() => Some("icmp"),
            _ => None,
        }
    }

    /// The kinds a mode can see (every one is listed from the start, at zero, so a
    /// Prometheus series exists before its first increment).
    pub fn of_mode(m: Mode) -> Vec<ProbeKind> {
        match (m.kind(), m.proto()) {
            (Kind::Classic, _) => vec![ProbeKind::Connect],
            (_, Proto::Tcp) => {
                let mut v = ProbeKind::TCP_SCANS.to_vec();
                v.extend(ProbeKind::OTHER);
                v
            }
            (_, Proto::Udp) => vec![ProbeKind::Udp],
        }
    }

    /// The kind of a stealth or advanced mode's typed probe.
    pub fn from_scan(k: crate::capture::classify::ScanKind) -> ProbeKind {
        use crate::capture::classify::{ScanKind, TcpScanType as T};
        match k {
            ScanKind::Udp => ProbeKind::Udp,
            ScanKind::Tcp(t) => match t {
                T::Syn => ProbeKind::Syn,
                T::Null => ProbeKind::Null,
                T::Fin => ProbeKind::Fin,
                T::Xmas => ProbeKind::Xmas,
                T::Ack => ProbeKind::Ack,
                T::Maimon => ProbeKind::Maimon,
                T::SynRst => ProbeKind::SynRst,
                T::All => ProbeKind::AllFlags,
                T::Unknown { .. } => ProbeKind::Other,
            },
        }
    }
}

/// The report prefix of an address: IPv4 /24, IPv6 /64 (the engine's, so the counters and
/// the report limits speak of the same networks).
pub use crate::engine::prefix_of;

/// `198.51.100.0/24`, `2001:db8::/64`.
pub fn prefix_text(p: (IpAddr, u8)) -> String {
    format!("{}/{}", p.0, p.1)
}

/// `22/tcp`.
pub fn port_text(proto: Proto, port: u16) -> String {
    match proto {
        Proto::Tcp => format!("{port}/tcp"),
        Proto::Udp => format!("{port}/udp"),
    }
}

/// Who the daemon is: filled in by the shell for each snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The daemon's process id.
    pub pid: u32,
    /// The modes it runs.
    pub modes: Vec<Mode>,
    /// Its configuration file.
    pub config: String,
    /// Ports watched, by mode.
    pub watched_ports: Vec<(Mode, u64)>,
}

/// The fleet link as the daemon last saw it (`sys::fleet::Fleet::status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetState {
    /// Every configured direction (push, pull) answered its last request.
    pub up: bool,
    /// When it went down (epoch seconds), while it is down.
    pub down_since: Option<i64>,
    /// Alerts waiting in the spool.
    pub queued: u64,
    /// Alerts delivered since start.
    pub sent: u64,
    /// Alerts dropped (spool full, or refused by the LAPI).
    pub dropped: u64,
    /// Bans from the fleet in force on this host.
    pub decisions: u64,
    /// The interval the pulls keep (ms; longer than configured while the LAPI is slow; 0:
    /// not pulling).
    pub pull_every_ms: u64,
    /// The last pull's answer time (ms).
    pub answer_ms: u64,
    /// How far behind the LAPI's decisions the host may be (ms; 0: keeping pace).
    pub behind_ms: u64,
}

/// The counters. See the module documentation.
#[derive(Debug, Clone)]
pub struct Stats {
    started: i64,
    last_reload: Option<i64>,
    packets_judged: u64,
    capture_packets: u64,
    probes_ignored: u64,
    probes: BTreeMap<(Mode, ProbeKind), u64>,
    reports: BTreeMap<Mode, u64>,
    blocks: BTreeMap<Mode, u64>,
    methods: BTreeMap<Method, u64>,
    refused: BTreeMap<Refusal, u64>,
    suppressed: BTreeMap<Suppression, u64>,
    capture_drops: u64,
    malformed: u64,
    command_failures: u64,
    expiries: u64,
    unblocks: u64,
    evictions: u64,
    in_force: u64,
    soonest_expiry: Option<i64>,
    nft_sets: Vec<SetFill>,
    fleet: Option<FleetState>,
    capture: Option<CapturePath>,
    hits: HitOutcomes,
    sources: Tops<IpAddr>,
    prefixes: Tops<(IpAddr, u8)>,
    ports: Tops<(Proto, u16)>,
    evasion: Evasion,
    unwatched: Vec<(Mode, Vec<u16>)>,
    /// Probes counted, not yet in `probes` and the top lists (`batch`): every reader flushes.
    pending: batch::Pending,
}

/// What the capture did about evasion (issue 18): bad checksums and fragments, as its own
/// totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evasion {
    /// Packets with a bad IP header or transport checksum (never reported).
    pub bad_checksum: u64,
    /// Fragments the reassembly was handed.
    pub fragments: u64,
    /// Datagrams it completed.
    pub reassembled: u64,
    /// Datagrams the host drops too: overlapping, malformed, too long, never completed
    /// (timed out), or evicted from the full cache.
    pub unassembled: u64,
    /// Bytes the reassembly cache holds now.
    pub cache_bytes: u64,
    /// The most it ever held.
    pub cache_peak_bytes: u64,
}

impl Stats {
    /// Counters of a daemon started at `started` (epoch seconds) running `modes`: the probe
    /// kinds of those modes and every refusal reason are listed from zero.
    pub fn new(started: i64, modes: &[Mode]) -> Stats {
        let mut probes = BTreeMap::new();
        for &m in modes {
            for k in ProbeKind::of_mode(m) {
                probes.insert((m, k), 0);
            }
        }
        Stats {
            started,
            last_reload: None,
            packets_judged: 0,
            capture_packets: 0,
            probes_ignored: 0,
            probes,
            reports: modes.iter().map(|&m| (m, 0)).collect(),
            blocks: modes.iter().map(|&m| (m, 0)).collect(),
            methods: BTreeMap::new(),
            refused: Refusal::ALL.iter().map(|&r| (r, 0)).collect(),
            suppressed: [Suppression::RateLimit, Suppression::Repeat]
                .iter()
                .map(|&s| (s, 0))
                .collect(),
            capture_drops: 0,
            malformed: 0,
            command_failures: 0,
            expiries: 0,
            unblocks: 0,
            evictions: 0,
            in_force: 0,
            soonest_expiry: None,
            nft_sets: Vec::new(),
            fleet: None,
            capture: None,
            hits: HitOutcomes::default(),
            sources: Tops::new(),
            evasion: Evasion::default(),
            prefixes: Tops::new(),
            ports: Tops::new(),
            unwatched: Vec::new(),
            pending: batch::Pending::default(),
        }
    }

    /// `n` connections, datagrams or captured packets were judged.
    pub fn note_packets(&mut self, n: u64) {
        self.packets_judged = self.packets_judged.saturating_add(n);
    }

    /// A hit from an ignored source (IGNORE_FILE): counted, nothing else.
    pub fn note_ignored(&mut self) {
        self.probes_ignored += 1;
    }

    /// A probe from a source that is not ignored: counted by mode and kind, and in the top
    /// sources, prefixes and ports.
    pub fn note_probe(&mut self, now: i64, src: IpAddr, port: u16, mode: Mode, kind: ProbeKind) {
        self.note_probes(now, &[(src, port, mode, kind)]);
    }

    /// A host was reported (its detection line logged).
    pub fn note_report(&mut self, mode: Mode) {
        *self.reports.entry(mode).or_insert(0) += 1;
    }

    /// A host was blocked with these methods (each counted once per block).
    pub fn note_block(&mut self, mode: Mode, methods: &[Method]) {
        *self.blocks.entry(mode).or_insert(0) += 1;
        for &m in methods {
            *self.methods.entry(m).or_insert(0) += 1;
        }
    }

    /// A block was refused.
    pub fn note_refusal(&mut self, why: Refusal) {
        self.note_refusals(why, 1);
    }

    /// `n` blocks were refused (the engine's summary of refusals it did not report one by
    /// one).
    pub fn note_refusals(&mut self, why: Refusal, n: u64) {
        let c = self.refused.entry(why).or_insert(0);
        *c = c.saturating_add(n);
    }

    /// `n` reports were kept out of the log.
    pub fn note_suppressed(&mut self, why: Suppression, n: u64) {
        let c = self.suppressed.entry(why).or_insert(0);
        *c = c.saturating_add(n);
    }

    /// The capture lost `ring` packets and dropped `malformed` ones since the last call.
    pub fn note_capture_losses(&mut self, ring: u64, malformed: u64) {
        self.capture_drops = self.capture_drops.saturating_add(ring);
        self.malformed = self.malformed.saturating_add(malformed);
    }

    /// The capture's own totals since start, stage by stage: they replace what the capture
    /// reported before (and give the packets judged, ring drops and malformed packets).
    pub fn set_capture(&mut self, c: CapturePath) {
        self.capture_packets = c.not_probes.saturating_add(c.hits);
        self.capture_drops = c.ring_drops;
        self.malformed = c.malformed;
        self.capture = Some(c);
    }

    /// What became of the hits judged since start (the engine's own count).
    pub fn set_hit_outcomes(&mut self, h: HitOutcomes) {
        self.hits = h;
    }

    /// The capture's bad-checksum and reassembly totals since start.
    pub fn set_evasion(&mut self, e: Evasion) {
        self.evasion = e;
    }

    /// The watched ports not watched now (a local socket would answer them), by mode.
    pub fn set_unwatched(&mut self, u: Vec<(Mode, Vec<u16>)>) {
        self.unwatched = u;
    }

    /// A response command failed.
    pub fn note_command_failure(&mut self) {
        self.note_command_failures(1);
    }

    /// `n` response steps failed (commands, hosts.deny lines, nftables elements).
    pub fn note_command_failures(&mut self, n: u64) {
        self.command_failures = self.command_failures.saturating_add(n);
    }

    /// A block expired (BLOCK_TIMEOUT).
    pub fn note_expiry(&mut self) {
        self.expiries += 1;
    }

    /// A block was lifted by hand.
    pub fn note_unblock(&mut self) {
        self.unblocks += 1;
    }

    /// `n` blocks were lifted to make room in a full nftables set for sources with more
    /// evidence.
    pub fn note_evictions(&mut self, n: u64) {
        self.evictions = self.evictions.saturating_add(n);
    }

    /// The configuration was reloaded at `now`; the counters stay.
    pub fn note_reload(&mut self, now: i64) {
        self.last_reload = Some(now);
    }

    /// Hosts blocked now, and the soonest expiry among them (epoch seconds), if any.
    pub fn set_blocks_in_force(&mut self, n: u64, soonest_expiry: Option<i64>) {
        self.in_force = n;
        self.soonest_expiry = soonest_expiry;
    }

    /// The nftables sets' fill levels (empty without BLOCK_METHOD="nftables").
    pub fn set_nft_sets(&mut self, sets: Vec<SetFill>) {
        self.nft_sets = sets;
    }

    /// The fleet link (CrowdSec LAPI). `None`: no fleet configured.
    pub fn set_fleet(&mut self, link: Option<FleetState>) {
        self.fleet = link;
    }

    /// When counting started (epoch seconds).
    pub fn started(&self) -> i64 {
        self.started
    }

    /// Keys held by the top lists (bounded; for tests and measurements).
    pub fn top_keys_held(&mut self) -> usize {
        self.flush();
        self.sources.held() + self.prefixes.held() + self.ports.held()
    }

    /// The counter totals.
    pub fn counters(&mut self) -> Counters {
        self.flush();
        self.totals()
    }

    fn totals(&self) -> Counters {
        Counters {
            packets_judged: self.packets_judged.saturating_add(self.capture_packets),
            probes: self.probes.values().sum(),
            probes_ignored: self.probes_ignored,
            hosts_reported: self.reports.values().sum(),
            blocks: self.blocks.values().sum(),
            blocks_refused: self.refused.values().sum(),
            reports_suppressed: self
                .suppressed
                .get(&Suppression::RateLimit)
                .copied()
                .unwrap_or(0),
            repeats_suppressed: self
                .suppressed
                .get(&Suppression::Repeat)
                .copied()
                .unwrap_or(0),
            capture_drops: self.capture_drops,
            malformed_packets: self.malformed,
            command_failures: self.command_failures,
            expiries: self.expiries,
            unblocks: self.unblocks,
            evictions: self.evictions,
            bad_checksum_packets: self.evasion.bad_checksum,
            fragments: self.evasion.fragments,
            datagrams_reassembled: self.evasion.reassembled,
            datagrams_unassembled: self.evasion.unassembled,
            fragment_cache_bytes: self.evasion.cache_bytes,
            fragment_cache_peak_bytes: self.evasion.cache_peak_bytes,
        }
    }

    /// Everything, at `now` (epoch seconds), with times shown in `tz`.
    pub fn snapshot(&mut self, now: i64, id: &Identity, tz: &TimeZone) -> Snapshot {
        self.flush();
        self.build(now, id, tz, true)
    }

    /// The same without the top lists (they are not metrics, and merging the windows' tables
    /// is most of a snapshot's cost): what METRICS_FILE renders every few seconds.
    pub fn counters_snapshot(&mut self, now: i64, id: &Identity, tz: &TimeZone) -> Snapshot {
        self.flush();
        self.build(now, id, tz, false)
    }

    fn build(&self, now: i64, id: &Identity, tz: &TimeZone, with_tops: bool) -> Snapshot {
        let t = |e: i64| timefmt::rfc3339(e, tz);
        let by_mode = |m: &BTreeMap<Mode, u64>| {
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        let src = |ip: &IpAddr| ip.to_string();
        let pfx = |p: &(IpAddr, u8)| prefix_text(*p);
        let port = |p: &(Proto, u16)| port_text(p.0, p.1);
        Snapshot {
            running: true,
            pid: Some(id.pid),
            version: env!("CARGO_PKG_VERSION").to_string(),
            modes: id.modes.iter().map(|m| m.as_str().to_string()).collect(),
            config: Some(id.config.clone()),
            started: Some(t(self.started)),
            started_epoch: Some(self.started),
            last_reload: self.last_reload.map(t),
            last_reload_epoch: self.last_reload,
            uptime_seconds: Some(now.saturating_sub(self.started).max(0) as u64),
            generated: t(now),
            watched_ports: id
                .watched_ports
                .iter()
                .map(|(m, n)| (m.as_str().to_string(), *n))
                .collect(),
            unwatched_ports: self
                .unwatched
                .iter()
                .map(|(m, p)| (m.as_str().to_string(), p.clone()))
                .collect(),
            counters: Some(self.totals()),
            probes_by_kind: self
                .probes
                .iter()
                .map(|((m, k), n)| ProbeCount {
                    mode: m.as_str().to_string(),
                    proto: k
                        .own_proto()
                        .map_or_else(|| m.proto().upper().to_ascii_lowercase(), str::to_string),
                    kind: k.as_str().to_string(),
                    count: *n,
                })
                .collect(),
            reports_by_mode: by_mode(&self.reports),
            blocks_by_mode: by_mode(&self.blocks),
            blocks_by_method: self
                .methods
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            blocks_refused_by_reason: self
                .refused
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            suppressed_by_reason: self
                .suppressed
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            path: Some(PacketPath {
                capture: self.capture,
                hits: self.hits,
            }),
            nft_sets: self.nft_sets.clone(),
            fleet: self.fleet.map(|f| FleetLink {
                up: f.up,
                since: f.down_since.map(t),
                queued: f.queued,
                sent: f.sent,
                dropped: f.dropped,
                decisions: f.decisions,
                pull_every_ms: f.pull_every_ms,
                answer_ms: f.answer_ms,
                behind_ms: f.behind_ms,
            }),
            blocks_in_force: Some(self.in_force),
            soonest_expiry: self.soonest_expiry.map(t),
            soonest_expiry_epoch: self.soonest_expiry,
            tops_from: "daemon".to_string(),
            top_sources: if with_tops {
                tops(&self.sources.hour, now, src)
            } else {
                Vec::new()
            },
            top_prefixes: if with_tops {
                tops(&self.prefixes.hour, now, pfx)
            } else {
                Vec::new()
            },
            top_ports: if with_tops {
                tops(&self.ports.hour, now, port)
            } else {
                Vec::new()
            },
            last_day: if with_tops {
                TopLists {
                    top_sources: listed(self.sources.day_top(now), src),
                    top_prefixes: listed(self.prefixes.day_top(now), pfx),
                    top_ports: listed(self.ports.day_top(now), port),
                }
            } else {
                TopLists::default()
            },
            history: None,
            note: None,
        }
    }
}

#[cfg(test)]
mod tests;
