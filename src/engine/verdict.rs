//! What goes into the engine (a [`Hit`]) and what comes out: a [`Verdict`] of typed log
//! events, a response [`Job`] for the shell to carry out step by step, and the [`Record`]s
//! to write to the blocked and history files once a job succeeded.

use std::net::IpAddr;

use crate::block::hosts_deny::DenyLine;
use crate::capture::classify::{OtherProbe, TcpScanType};
use crate::config::mode::Mode;

use super::event::Event;

/// What kind of hit arrived (decides the detection line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// A full connect (TCP) or a datagram (UDP) on a bound classic-mode port.
    Connect,
    /// A TCP packet seen by a stealth or advanced mode.
    TcpScan(TcpScanType),
    /// A UDP datagram seen by a stealth or advanced mode.
    UdpScan,
    /// An SCTP or ICMP probe seen by a TCP stealth or advanced mode (issue 18): reported
    /// only, unless BLOCK_ICMP_SCTP lets it count towards SCAN_TRIGGER and blocking.
    Other(OtherProbe),
}

/// One hit: a source touched a watched port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The source, IPv4-mapped IPv6 already turned into IPv4.
    pub src: IpAddr,
    /// The port it touched.
    pub port: u16,
    /// The mode that saw it.
    pub mode: Mode,
    /// Connect, or the kind of probe.
    pub detail: Detail,
    /// The IPv4 header carried options (stealth modes log an extra line, §3.2).
    pub ip_options: bool,
}

/// One response step, carried out in order by the shell (§6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Append this line to the hosts.deny file (once per host).
    HostsDeny {
        /// The substituted KILL_HOSTS_DENY line.
        line: String,
    },
    /// Run KILL_ROUTE through `/bin/sh -c`.
    Route {
        /// The substituted command.
        command: String,
    },
    /// Run KILL_RUN_CMD through `/bin/sh -c`.
    RunCmd {
        /// The substituted command.
        command: String,
    },
    /// BLOCK_METHOD="nftables": add the address to the daemon's set, with a timeout of
    /// BLOCK_TIMEOUT seconds (0: no timeout). The shell batches these (see `sys::block::nftables`).
    NftAdd {
        /// The address to add.
        addr: IpAddr,
        /// BLOCK_TIMEOUT in seconds (0: none).
        timeout_s: u64,
    },
    /// BLOCK_METHOD="nftables", the set full: remove this address from the daemon's set
    /// first, to make room (a block of less evidence, see `engine::blocks`).
    NftDel {
        /// The address to remove.
        addr: IpAddr,
    },
    /// A block ended (BLOCK_TIMEOUT, or lifted with `portsentry blocked del`): remove the
    /// hosts.deny lines it wrote (`crate::block::hosts_deny` says which).
    HostsDenyRemove {
        /// The template and values of the line.
        deny: DenyLine,
    },
    /// A block with BLOCK_TIMEOUT expired: run KILL_ROUTE_UNDO through `/bin/sh -c`.
    Undo {
        /// The substituted command.
        command: String,
    },
}

/// Why a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// The response to a scan. With BLOCK_TIMEOUT > 0 a blocking job expires after
    /// `expire_after_ms`; `undo` is KILL_ROUTE_UNDO, substituted, when KILL_ROUTE ran.
    Respond {
        /// BLOCK_TIMEOUT in ms, when set and the job blocks.
        expire_after_ms: Option<u64>,
        /// KILL_ROUTE_UNDO, substituted, to run when the block expires.
        undo: Option<String>,
        /// The hosts.deny line the job writes, to remove when the block ends.
        deny: Option<DenyLine>,
        /// The scan's evidence score (remembered with the block: `engine::blocks`).
        evidence: u32,
    },
    /// Undo of an ended block (expired, or lifted by hand): no history line, nothing
    /// remembered.
    Unblock,
}

/// A blocked-file and history line to write: its fields (the shell adds the time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The resolved name, or the address text.
    pub name: String,
    /// The blocked address.
    pub ip: IpAddr,
    /// The port hit.
    pub port: u16,
    /// The mode that saw it (`BLOCKED_FILE.<mode>`, and TCP or UDP in the line).
    pub mode: Mode,
    /// What the hit was (the scan kind a fleet alert names, `crate::fleet::alert::Scan`).
    pub detail: Detail,
    /// Also write `BLOCKED_FILE.<mode>` (false when BLOCK_x=0: the host is not blocked).
    pub blocked_file: bool,
    /// Write the history (and blocked-file) line at all (false for a log-only report over
    /// the rate limit).
    pub write: bool,
}

/// The response for one host, run as a chain: every step runs even if an earlier one failed;
/// when all are done the shell calls [`super::Engine::job_done`] with the overall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The host the steps act on.
    pub target: IpAddr,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What to write when the job succeeds.
    pub record: Record,
    /// Over the report limits: the shell logs nothing about this job.
    pub quiet: bool,
    /// It was quiet when made (a flood's block; `quiet` changes when the host's report is
    /// logged later, this does not): the engine counts these until they end.
    pub flood: bool,
    /// False when a step was skipped for lack of `$TARGET$`: the job then counts as failed
    /// once its other steps have run, as 1.2's dispose does (§6.2).
    pub preflight_ok: bool,
    /// A response, or the undo of an expired block.
    pub kind: JobKind,
}

/// Everything the shell must do after a call into the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The hit's source is in the ignore list: nothing else happened (counted apart).
    pub ignored: bool,
    /// Classic modes: send PORT_BANNER on the socket the hit came in on.
    pub banner: bool,
    /// What to log, in order (`report::event_line` words it).
    pub log: Vec<Event>,
    /// Response jobs to start (in order).
    pub jobs: Vec<Job>,
    /// Blocked-file and history lines to write (after a job succeeded).
    pub records: Vec<Record>,
    /// Hosts now reported whose block job was queued quietly (its report had been held back
    /// by the report limits): the shell runs that job before the other quiet ones, and logs
    /// it as any other.
    pub promote: Vec<IpAddr>,
}

/// A hit that is to be reported, waiting for its reverse lookup (RESOLVE_HOST): the shell
/// looks the name up and hands it back with [`super::Engine::named`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub(super) hit: Hit,
    pub(super) respond: super::Respond,
}

impl Pending {
    /// The address to look up.
    pub fn ip(&self) -> IpAddr {
        self.hit.src
    }
}

/// The result of [`super::Engine::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All decided.
    Done(Verdict),
    /// Look up the source's name first (RESOLVE_HOST), then call `named`.
    Lookup(Pending),
}
