//! The per-host state engine: decides, for one hit from one source, whether it is ignored,
//! waits below SCAN_TRIGGER, is a repeat to stay quiet about, or gets a response, and builds
//! that response as a [`Verdict`]: log lines, whether to send the banner, and a [`Job`] of
//! ordered response steps for the shell to carry out.
//!
//! Pure: it never touches sockets, files, processes or the clock. Time comes in as
//! milliseconds on a monotonic clock (`now`), so tests drive it with a fake clock.
//!
//! Differences from 1.2 (reference §4, §5.2, §10.1 items 8, 9, 14), all deliberate:
//! - per-host hit counters in a time window instead of one shared 50-slot ring, so unrelated
//!   hosts cannot evict a scanner's history; the table is bounded and entries age out;
//! - "already blocked" is an exact address match in memory, not a substring search of a file;
//! - with BLOCK_x=0 the history line is still written (fail2ban reads it) but the host is not
//!   marked blocked, so a later scan is logged again; repeats from one host are rate-limited,
//!   and reports per source prefix and overall (see [`Limits`]), so forged sources from one
//!   network can neither fill the disk nor silence a scan from another.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use crate::classify::{ScanKind, TcpScanType};
use crate::config::{BlockMethod, BlockMode, Config};
use crate::ignore::IgnoreList;
use crate::mode::{Kind, Mode, Proto};
use crate::protect::Protected;
use crate::report::{self, Action};
use crate::template;

/// What kind of hit arrived (decides the detection line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// A full connect (TCP) or a datagram (UDP) on a bound classic-mode port.
    Connect,
    /// A TCP packet seen by a stealth or advanced mode.
    TcpScan(TcpScanType),
    /// A UDP datagram seen by a stealth or advanced mode.
    UdpScan,
}

/// One hit: a source touched a watched port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub src: IpAddr,
    pub port: u16,
    pub mode: Mode,
    pub detail: Detail,
    /// The IPv4 header carried options (stealth modes log an extra line, §3.2).
    pub ip_options: bool,
}

/// The gate decision for a hit, before any name lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The source is in the ignore list: completely silent (§5.1).
    Ignored,
    /// Counted, but SCAN_TRIGGER is not reached yet: silent (§4).
    BelowTrigger,
    /// A repeat from a host reported within the repeat interval: counted, silent.
    Suppressed,
    /// Respond: log, and dispose unless the host is already blocked.
    Respond(Respond),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respond {
    pub already_blocked: bool,
    /// Hits from this host that were suppressed since it was last reported.
    pub suppressed: u32,
    /// Over the report limits (per prefix, global, reserve): act and record a block, but log nothing (counted for
    /// the periodic summary).
    pub quiet: bool,
}

/// One response step, carried out in order by the shell (§6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Append this line to the hosts.deny file (once per host).
    HostsDeny { line: String },
    /// Run KILL_ROUTE through `/bin/sh -c`.
    Route { command: String },
    /// Run KILL_RUN_CMD through `/bin/sh -c`.
    RunCmd { command: String },
    /// BLOCK_METHOD="nftables": add the address to the daemon's set, with a timeout of
    /// BLOCK_TIMEOUT seconds (0: no timeout). The shell batches these (see `sys::nftables`).
    NftAdd { addr: IpAddr, timeout_s: u64 },
    /// A block with BLOCK_TIMEOUT expired: run KILL_ROUTE_UNDO through `/bin/sh -c`.
    Undo { command: String },
}

/// Why a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// The response to a scan. With BLOCK_TIMEOUT > 0 a blocking job expires after
    /// `expire_after_ms`; `undo` is KILL_ROUTE_UNDO, substituted, when KILL_ROUTE ran.
    Respond {
        expire_after_ms: Option<u64>,
        undo: Option<String>,
    },
    /// Undo of an expired block: no history line, nothing remembered.
    Unblock,
}

/// What to write once the steps succeed: the blocked-file and history line fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ip: IpAddr,
    pub port: u16,
    pub mode: Mode,
    /// Also write `BLOCKED_FILE.<mode>` (false when BLOCK_x=0: the host is not blocked).
    pub blocked_file: bool,
    /// Write the history (and blocked-file) line at all (false for a log-only report over
    /// the rate limit).
    pub write: bool,
}

/// The response for one host, run as a chain: every step runs even if an earlier one failed;
/// when all are done the shell calls [`Engine::job_done`] with the overall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub target: IpAddr,
    pub steps: Vec<Step>,
    pub record: Record,
    /// Over the report limits: the shell logs nothing about this job.
    pub quiet: bool,
    /// False when a step was skipped for lack of `$TARGET$`: the job then counts as failed
    /// once its other steps have run, as 1.2's dispose does (§6.2).
    pub preflight_ok: bool,
    pub kind: JobKind,
}

/// A remembered block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// Monotonic ms when it expires; None: never.
    until: Option<u64>,
    mode: Mode,
    /// KILL_ROUTE_UNDO, substituted, to run on expiry.
    undo: Option<String>,
}

/// What [`Engine::expire_blocks`] found: log lines and undo jobs to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    pub log: Vec<String>,
    pub jobs: Vec<Job>,
    /// The addresses forgotten.
    pub hosts: Vec<IpAddr>,
}

/// Instructions for the shell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Classic modes: send PORT_BANNER on the socket the hit came in on.
    pub banner: bool,
    pub log: Vec<String>,
    pub job: Option<Job>,
}

/// Tunables with defaults; not 1.2 keys.
///
/// Reports (the log lines about a hit, and the history line of a log-only report) pass three
/// token buckets. Each source prefix (IPv4 /24, IPv6 /64: what one forger on one network can
/// claim cheaply) has its own small bucket, so forged sources from one prefix cannot use up
/// the global bucket; the global bucket bounds the total; and a small reserve serves prefixes
/// that have not reported recently (their bucket is full) once the global bucket is empty, so
/// a real scan from a quiet prefix is still logged while many prefixes flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Hits older than this no longer count towards SCAN_TRIGGER.
    pub trigger_window_ms: u64,
    /// A tracked host with no hit for this long is forgotten.
    pub host_ttl_ms: u64,
    /// At most this many tracked (not blocked) hosts.
    pub max_hosts: usize,
    /// At most this many blocked hosts remembered in memory.
    pub max_blocked: usize,
    /// After a host is reported, further reports about it wait this long.
    pub repeat_interval_ms: u64,
    /// Reports (log lines and file lines about a hit) allowed in a burst, and per second
    /// after it, over all hosts: a flood of forged sources cannot fill the disk.
    pub report_burst: u32,
    pub reports_per_sec: u32,
    /// Reports per source prefix (IPv4 /24, IPv6 /64): burst, then per second.
    pub prefix_burst: u32,
    pub prefix_per_sec: u32,
    /// At most this many prefixes tracked for their buckets.
    pub max_prefixes: usize,
    /// The reserve for prefixes that have not reported recently, used when the global
    /// bucket is empty: burst, then per second.
    pub reserve_burst: u32,
    pub reserve_per_sec: u32,
    /// How often the summary of rate-limited reports is logged.
    pub summary_interval_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            trigger_window_ms: 3_600_000,
            host_ttl_ms: 3_600_000,
            max_hosts: 65_536,
            max_blocked: 1 << 20,
            repeat_interval_ms: 60_000,
            report_burst: 200,
            reports_per_sec: 20,
            prefix_burst: 20,
            prefix_per_sec: 2,
            max_prefixes: 16_384,
            reserve_burst: 20,
            reserve_per_sec: 2,
            summary_interval_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    /// A job for this host is running.
    Pending,
}

#[derive(Debug, Clone, Copy)]
struct Host {
    hits: u32,
    window_start: u64,
    last_seen: u64,
    status: Status,
    /// When this host was last reported (logged); None if never.
    last_report: Option<u64>,
    suppressed: u32,
}

/// Per-host state for one daemon (all its modes).
#[derive(Debug, Clone)]
pub struct Engine {
    limits: Limits,
    /// Per source and protocol, as 1.2's separate tcp and udp daemons kept them: a UDP probe
    /// that is only logged must not hold back the same host's TCP block. Blocks are per host.
    hosts: HashMap<(IpAddr, Proto), Host>,
    blocked: HashMap<IpAddr, Block>,
    /// Expiry times of blocks, earliest first. Entries are checked against `blocked` when they
    /// come up (a block re-made or restored since has another time), so nothing is removed
    /// from the middle: O(log n) per block, O(1) per poll when nothing is due.
    expiries: BinaryHeap<Reverse<(u64, IpAddr)>>,
    reports: Bucket,
    /// Report buckets per source prefix (bounded by `max_prefixes`).
    prefixes: HashMap<IpAddr, PrefixState>,
    reserve: Bucket,
    /// Reports suppressed since the last summary: in all, and those of prefixes dropped
    /// from the table since (no longer attributable).
    quiet: u64,
    quiet_evicted: u64,
    last_summary: u64,
    /// BLOCK_RATE_LIMIT: the bucket (rebuilt when the key changes), whether reaching the cap
    /// has been announced since it last recovered fully, and blocks refused since the last
    /// summary.
    block_cap: Option<(u32, Bucket)>,
    cap_announced: bool,
    refused: u64,
}

#[derive(Debug, Clone, Copy)]
struct PrefixState {
    bucket: Bucket,
    last_seen: u64,
    /// Reports from this prefix suppressed since the last summary.
    quiet: u64,
}

/// The report prefix of a source: IPv4 /24, IPv6 /64 (a forger on one network can claim any
/// address in its prefix; neighbouring networks are other people).
pub fn prefix_of(ip: IpAddr) -> (IpAddr, u8) {
    match ip {
        IpAddr::V4(a) => (IpAddr::V4((u32::from(a) & 0xffff_ff00).into()), 24),
        IpAddr::V6(a) => (
            IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into()),
            64,
        ),
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` tokens per `period_ms`. Kept in
/// units of 1/`period_ms` token, so a refill is exact integer arithmetic per ms.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    cap: u64,
    rate: u64,
    period_ms: u64,
    last: u64,
}

impl Bucket {
    fn new(burst: u32, rate: u32, period_ms: u64, now: u64) -> Bucket {
        let period_ms = period_ms.max(1);
        let cap = u64::from(burst.max(1)) * period_ms;
        Bucket {
            units: cap,
            cap,
            rate: u64::from(rate),
            period_ms,
            last: now,
        }
    }

    fn per_sec(burst: u32, per_sec: u32, now: u64) -> Bucket {
        Bucket::new(burst, per_sec, 1000, now)
    }

    fn refill(&mut self, now: u64) {
        let dt = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        // `rate` tokens per period = `rate` units per ms.
        self.units = self
            .units
            .saturating_add(dt.saturating_mul(self.rate))
            .min(self.cap);
    }

    fn full(&self) -> bool {
        self.units >= self.cap
    }

    fn has(&self) -> bool {
        self.units >= self.period_ms
    }

    fn spend(&mut self) {
        self.units = self.units.saturating_sub(self.period_ms);
    }

    fn take(&mut self, now: u64) -> bool {
        self.refill(now);
        let ok = self.has();
        if ok {
            self.spend();
        }
        ok
    }
}

impl Engine {
    pub fn new(limits: Limits) -> Engine {
        Engine {
            limits,
            hosts: HashMap::new(),
            blocked: HashMap::new(),
            expiries: BinaryHeap::new(),
            reports: Bucket::per_sec(limits.report_burst, limits.reports_per_sec, 0),
            prefixes: HashMap::new(),
            reserve: Bucket::per_sec(limits.reserve_burst, limits.reserve_per_sec, 0),
            quiet: 0,
            quiet_evicted: 0,
            last_summary: 0,
            block_cap: None,
            cap_announced: false,
            refused: 0,
        }
    }

    /// How many source prefixes are tracked for their report buckets.
    pub fn tracked_prefixes(&self) -> usize {
        self.prefixes.len()
    }

    /// May a report about `src` be logged at `now`? Its prefix must have a token, and the
    /// global bucket too, or, when that is empty, the reserve if the prefix has not reported
    /// recently. A suppressed report is counted against its prefix for the summary.
    fn report_allowed(&mut self, now: u64, src: IpAddr) -> bool {
        let limits = self.limits;
        let (key, _) = prefix_of(src);
        if self.prefixes.len() >= limits.max_prefixes {
            self.evict_prefixes(now);
        }
        let p = self.prefixes.entry(key).or_insert_with(|| PrefixState {
            bucket: Bucket::per_sec(limits.prefix_burst, limits.prefix_per_sec, now),
            last_seen: now,
            quiet: 0,
        });
        p.bucket.refill(now);
        p.last_seen = now;
        let fresh = p.bucket.full();
        let ok = p.bucket.has() && (self.reports.take(now) || (fresh && self.reserve.take(now)));
        if ok {
            p.bucket.spend();
        } else {
            p.quiet += 1;
            self.quiet += 1;
        }
        ok
    }

    /// Make room in the prefix table: drop prefixes whose bucket has refilled (they behave
    /// as new ones); if none, the least recently seen eighth. Their suppressed counts go to
    /// "other prefixes" in the next summary.
    fn evict_prefixes(&mut self, now: u64) {
        let mut lost = 0;
        self.prefixes.retain(|_, p| {
            p.bucket.refill(now);
            let keep = !p.bucket.full();
            if !keep {
                lost += p.quiet;
            }
            keep
        });
        if self.prefixes.len() >= self.limits.max_prefixes {
            let mut seen: Vec<u64> = self.prefixes.values().map(|p| p.last_seen).collect();
            let k = (seen.len() / 8).max(1);
            let (_, cut, _) = seen.select_nth_unstable(k - 1);
            let cut = *cut;
            self.prefixes.retain(|_, p| {
                let keep = p.last_seen > cut;
                if !keep {
                    lost += p.quiet;
                }
                keep
            });
        }
        self.quiet_evicted += lost;
    }

    /// Forget every block (SIGHUP and start-up clear the blocked files; §7.1).
    pub fn clear_blocked(&mut self) {
        self.blocked.clear();
        self.expiries.clear();
        for h in self.hosts.values_mut() {
            h.last_report = None;
            h.suppressed = 0;
        }
    }

    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked.contains_key(&ip)
    }

    pub fn tracked_hosts(&self) -> usize {
        self.hosts.len()
    }

    pub fn blocked_hosts(&self) -> usize {
        self.blocked.len()
    }

    /// Step 1 for a hit: ignore list, SCAN_TRIGGER, already-blocked, repeat limiting.
    /// `scan_trigger` is SCAN_TRIGGER (0 and 1 both mean the first hit, §4).
    pub fn gate(
        &mut self,
        now: u64,
        src: IpAddr,
        proto: Proto,
        scan_trigger: u32,
        ignore: &IgnoreList,
    ) -> Gate {
        if ignore.contains(src) {
            return Gate::Ignored;
        }
        let limits = self.limits;
        let key = (src, proto);
        // Full: make room before the lookup (one hash lookup per hit, not two; a flood of
        // forged sources makes every hit a new host).
        if self.hosts.len() >= limits.max_hosts {
            self.evict(now);
        }
        let host = self.hosts.entry(key).or_insert(Host {
            hits: 0,
            window_start: now,
            last_seen: now,
            status: Status::Idle,
            last_report: None,
            suppressed: 0,
        });
        if now.saturating_sub(host.window_start) > limits.trigger_window_ms {
            host.hits = 0;
            host.window_start = now;
        }
        host.hits = host.hits.saturating_add(1);
        host.last_seen = now;
        if host.hits < scan_trigger.max(1) {
            return Gate::BelowTrigger;
        }
        let already_blocked = self.blocked.contains_key(&src) || host.status == Status::Pending;
        if let Some(at) = host.last_report
            && now.saturating_sub(at) < limits.repeat_interval_ms
        {
            host.suppressed = host.suppressed.saturating_add(1);
            return Gate::Suppressed;
        }
        let suppressed = std::mem::take(&mut host.suppressed);
        host.last_report = Some(now);
        let quiet = !self.report_allowed(now, src);
        Gate::Respond(Respond {
            already_blocked,
            suppressed,
            quiet,
        })
    }

    /// Step 2: build the response for a hit that the gate let through. `name` is the
    /// resolved name; None: the address text (RESOLVE_HOST off, §6.6, or a report over the
    /// rate limit, which is not worth a lookup). A protected source (this host, loopback, a
    /// gateway, ...) is logged but never acted on. `now` is for BLOCK_RATE_LIMIT.
    pub fn respond(
        &mut self,
        now: u64,
        cfg: &Config,
        hit: &Hit,
        r: Respond,
        name: Option<&str>,
        protected: &Protected,
    ) -> Verdict {
        let ip = hit.src;
        let proto = hit.mode.proto();
        let mut v = Verdict {
            // 1.2 sends the banner on every triggered hit, blocked hosts included (§3.1).
            banner: hit.mode.kind() == Kind::Classic,
            ..Verdict::default()
        };
        let block = match proto {
            Proto::Tcp => cfg.block_tcp,
            Proto::Udp => cfg.block_udp,
        };
        // Over the rate nothing is logged: only a block is still carried out and recorded,
        // so skip the formatting (a flood of forged sources comes through here).
        if r.quiet
            && (r.already_blocked || block == BlockMode::LogOnly || protected.reason(ip).is_some())
        {
            return v;
        }
        let owned;
        let name = match name {
            Some(n) => n,
            None => {
                owned = ip.to_string();
                owned.as_str()
            }
        };
        v.log.push(detection_line(hit, name));
        if hit.ip_options && hit.mode.kind() != Kind::Classic {
            v.log
                .push(report::ip_options_set(name, ip, proto, hit.port));
        }
        if r.suppressed > 0 {
            v.log.push(report::hits_suppressed(
                u64::from(r.suppressed),
                ip,
                self.limits.repeat_interval_ms / 1000,
            ));
        }
        if r.already_blocked {
            v.log.push(report::already_blocked(hit.mode, name, ip));
            return quiet(v, r);
        }
        if let Some(why) = protected.reason(ip) {
            v.log.push(report::refusing_to_block(ip, why.text()));
            return quiet(v, r);
        }
        if block != BlockMode::LogOnly && !self.block_allowed(now, cfg.block_rate_limit) {
            // BLOCK_RATE_LIMIT reached: reported, not acted on, not recorded; the host's next
            // report (after the repeat interval) tries again.
            if !std::mem::replace(&mut self.cap_announced, true) {
                v.log
                    .push(report::block_rate_limit_reached(cfg.block_rate_limit));
            }
            v.log.push(report::block_refused_rate(name, ip));
            if r.quiet {
                // Only the announcement, if any, is logged.
                v.log.retain(|l| l.starts_with("adminalert:"));
            }
            return v;
        }
        let subst = |t: &str| template::substitute(t, ip, hit.port, hit.mode);
        let mut steps = Vec::new();
        let mut preflight_ok = true;
        let run_cmd = cfg
            .kill_run_cmd
            .as_deref()
            .map(|c| Step::RunCmd { command: subst(c) });
        match block {
            BlockMode::LogOnly => v.log.push(report::ignoring_response(proto)),
            BlockMode::RunCmdOnly => steps.extend(run_cmd),
            BlockMode::Block => {
                let first = cfg.kill_run_cmd_first;
                if first {
                    steps.extend(run_cmd.clone());
                }
                if cfg.block_method == BlockMethod::Nftables {
                    steps.push(Step::NftAdd {
                        addr: ip,
                        timeout_s: cfg.block_timeout,
                    });
                }
                // These two need $TARGET$; without it 1.2 skips them and the block fails.
                let targeted = [
                    (Action::HostsDeny, cfg.kill_hosts_deny.as_deref()),
                    (Action::Route, cfg.kill_route.as_deref()),
                ];
                for (action, t) in targeted {
                    let Some(t) = t else { continue };
                    if !template::has_target(t) {
                        v.log.push(report::no_target_variable(action));
                        preflight_ok = false;
                    } else if action == Action::HostsDeny {
                        steps.push(Step::HostsDeny { line: subst(t) });
                    } else {
                        steps.push(Step::Route { command: subst(t) });
                    }
                }
                if !first {
                    steps.extend(run_cmd);
                }
            }
        }
        let blocking = block != BlockMode::LogOnly;
        if blocking {
            // A blocked host's later hits are "already blocked" at once, not "suppressed".
            if let Some(h) = self.hosts.get_mut(&(ip, proto)) {
                h.status = Status::Pending;
                h.last_report = None;
            }
        }
        let timed = blocking && cfg.block_timeout > 0;
        let undo = match (&cfg.kill_route_undo, timed) {
            (Some(u), true) if steps.iter().any(|s| matches!(s, Step::Route { .. })) => {
                Some(subst(u))
            }
            _ => None,
        };
        let kind = JobKind::Respond {
            expire_after_ms: timed.then(|| cfg.block_timeout.saturating_mul(1000)),
            undo,
        };
        v.job = Some(Job {
            kind,
            target: ip,
            steps,
            record: Record {
                name: name.to_string(),
                ip,
                port: hit.port,
                mode: hit.mode,
                blocked_file: blocking,
                // A real block is always recorded (fail2ban and admins rely on the files;
                // their size is bounded by the block caps); over the rate limit only a
                // log-only report loses its history line, and syslog stays quiet.
                write: blocking || !r.quiet,
            },
            quiet: r.quiet,
            preflight_ok,
        });
        if r.quiet && !blocking {
            // Log only, and over the rate: nothing left to do.
            v.job = None;
        }
        quiet(v, r)
    }

    /// BLOCK_RATE_LIMIT (blocks per minute, 0: no cap): may one more block start at `now`?
    /// A refusal is counted for the summary.
    fn block_allowed(&mut self, now: u64, per_minute: u32) -> bool {
        if per_minute == 0 {
            self.block_cap = None;
            return true;
        }
        let b = match &mut self.block_cap {
            Some((n, b)) if *n == per_minute => b,
            slot => {
                &mut slot
                    .insert((per_minute, Bucket::new(per_minute, per_minute, 60_000, now)))
                    .1
            }
        };
        b.refill(now);
        if b.full() {
            // The cap has fully recovered: reaching it again is a new episode, announced
            // again (a sustained flood is announced once, not at every freed token).
            self.cap_announced = false;
        }
        if b.has() {
            b.spend();
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// The summaries of what the report limits suppressed (with the prefixes that lost the
    /// most) and of the blocks BLOCK_RATE_LIMIT refused, at most once per interval.
    pub fn tick(&mut self, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        if (self.quiet == 0 && self.refused == 0)
            || now.saturating_sub(self.last_summary) < self.limits.summary_interval_ms
        {
            return out;
        }
        let secs = now.saturating_sub(self.last_summary).div_ceil(1000);
        self.last_summary = now;
        if self.quiet > 0 {
            let mut top: Vec<(u64, IpAddr)> = self
                .prefixes
                .iter()
                .filter(|(_, p)| p.quiet > 0)
                .map(|(k, p)| (p.quiet, *k))
                .collect();
            top.sort_unstable_by(|a, b| b.cmp(a));
            let listed: Vec<(IpAddr, u8, u64)> = top
                .iter()
                .take(SUMMARY_PREFIXES)
                .map(|&(n, k)| (k, prefix_of(k).1, n))
                .collect();
            let others =
                top.iter().skip(SUMMARY_PREFIXES).map(|t| t.0).sum::<u64>() + self.quiet_evicted;
            out.push(report::reports_rate_limited(
                std::mem::take(&mut self.quiet),
                secs,
                &listed,
                others,
            ));
            self.quiet_evicted = 0;
        }
        if self.refused > 0 {
            out.push(report::blocks_refused(
                std::mem::take(&mut self.refused),
                secs,
            ));
        }
        // Start the next interval's counts; prefixes whose bucket is full again carry no
        // state worth keeping.
        self.prefixes.retain(|_, p| {
            p.quiet = 0;
            p.bucket.refill(now);
            !p.bucket.full()
        });
        out
    }

    /// Step 3: the shell finished a job at `now`. On success a blocking job marks the host
    /// blocked (until `now` + BLOCK_TIMEOUT when that is set); on failure nothing is
    /// remembered, so the next hit tries again (§6.1 item 7).
    pub fn job_done(&mut self, now: u64, job: &Job, ok: bool) -> Vec<String> {
        let ip = job.target;
        let (expire_after_ms, undo) = match &job.kind {
            JobKind::Unblock => return Vec::new(),
            JobKind::Respond {
                expire_after_ms,
                undo,
            } => (*expire_after_ms, undo.clone()),
        };
        if let Some(h) = self.hosts.get_mut(&(ip, job.record.mode.proto())) {
            h.status = Status::Idle;
        }
        if !ok {
            return vec![report::could_not_block(
                job.record.mode,
                &job.record.name,
                ip,
            )];
        }
        if job.record.blocked_file {
            if self.blocked.len() >= self.limits.max_blocked {
                return vec![report::blocked_memory_full(self.limits.max_blocked)];
            }
            let until = expire_after_ms.map(|d| now.saturating_add(d));
            if let Some(t) = until {
                self.expiries.push(Reverse((t, ip)));
            }
            self.blocked.insert(
                ip,
                Block {
                    until,
                    mode: job.record.mode,
                    undo,
                },
            );
        }
        Vec::new()
    }

    /// Forget blocks whose BLOCK_TIMEOUT has run out at `now`; returns their KILL_ROUTE_UNDO
    /// jobs. (nftables elements expire in the kernel at the same time by themselves.)
    pub fn expire_blocks(&mut self, now: u64) -> Expired {
        let mut out = Expired::default();
        while let Some(&Reverse((t, ip))) = self.expiries.peek() {
            if t > now {
                break;
            }
            self.expiries.pop();
            let current = self.blocked.get(&ip).is_some_and(|b| b.until == Some(t));
            if !current {
                continue;
            }
            let Some(b) = self.blocked.remove(&ip) else {
                continue;
            };
            out.log.push(report::block_expired(ip, b.mode));
            out.hosts.push(ip);
            if let Some(command) = b.undo {
                out.jobs.push(Job {
                    target: ip,
                    steps: vec![Step::Undo { command }],
                    record: Record {
                        name: ip.to_string(),
                        ip,
                        port: 0,
                        mode: b.mode,
                        blocked_file: false,
                        write: false,
                    },
                    quiet: false,
                    preflight_ok: true,
                    kind: JobKind::Unblock,
                });
            }
        }
        out
    }

    /// Make the remembered blocks exactly `hosts` (address, time left in ms or None for
    /// never): at start-up from the nftables set, so a restart neither re-blocks nor counts a
    /// host twice, and after `portsentry blocked del|add|flush`. A host that stays keeps its
    /// KILL_ROUTE_UNDO; `mode` is recorded for hosts not known before. Returns how many are
    /// remembered (at most `max_blocked`).
    pub fn restore_blocked(
        &mut self,
        now: u64,
        mode: Mode,
        hosts: impl IntoIterator<Item = (IpAddr, Option<u64>)>,
    ) -> usize {
        let mut old = std::mem::take(&mut self.blocked);
        self.expiries.clear();
        for (ip, left) in hosts {
            let ip = ip.to_canonical();
            if self.blocked.len() >= self.limits.max_blocked {
                break;
            }
            let until = left.map(|l| now.saturating_add(l));
            let (mode, undo) = match old.remove(&ip) {
                Some(b) => (b.mode, b.undo),
                None => (mode, None),
            };
            if let Some(t) = until {
                self.expiries.push(Reverse((t, ip)));
            }
            self.blocked.insert(ip, Block { until, mode, undo });
        }
        for ((ip, _), h) in self.hosts.iter_mut() {
            if !self.blocked.contains_key(ip) && h.status == Status::Idle {
                // A host unblocked by hand is reported again on its next hit.
                h.last_report = None;
                h.suppressed = 0;
            }
        }
        self.blocked.len()
    }

    /// Make room: drop hosts idle past their TTL and the least recently seen quarter of the
    /// table, in one pass (amortised O(1) per new host: two scans per max_hosts/4 new hosts;
    /// measured under a flood of forged sources, an eighth cost twice as much).
    fn evict(&mut self, now: u64) {
        let ttl = self.limits.host_ttl_ms;
        let mut seen: Vec<u64> = self.hosts.values().map(|h| h.last_seen).collect();
        let k = (seen.len() / 4).max(1);
        let (_, cut, _) = seen.select_nth_unstable(k - 1);
        let cut = *cut;
        self.hosts.retain(|_, h| {
            h.status == Status::Pending
                || (h.last_seen > cut && now.saturating_sub(h.last_seen) <= ttl)
        });
    }

    /// Periodic housekeeping: forget hosts idle past their TTL, and idle prefixes.
    pub fn expire(&mut self, now: u64) {
        let ttl = self.limits.host_ttl_ms;
        self.hosts
            .retain(|_, h| h.status == Status::Pending || now.saturating_sub(h.last_seen) <= ttl);
        // A prefix whose bucket is full again and has nothing to report behaves as a new one.
        self.prefixes.retain(|_, p| {
            p.bucket.refill(now);
            p.quiet > 0 || !p.bucket.full()
        });
    }
}

/// Prefixes named in the rate-limit summary (the rest are counted together).
const SUMMARY_PREFIXES: usize = 3;

/// Over the report limits: keep the actions, drop the log lines.
fn quiet(mut v: Verdict, r: Respond) -> Verdict {
    if r.quiet {
        v.log.clear();
    }
    v
}

/// The detection line of 1.2 for a hit (§8.3).
pub fn detection_line(hit: &Hit, name: &str) -> String {
    match hit.detail {
        Detail::Connect => report::connect_from(name, hit.src, hit.mode.proto(), hit.port),
        Detail::TcpScan(t) => report::scan_detected(ScanKind::Tcp(t), name, hit.src, hit.port),
        Detail::UdpScan => report::scan_detected(ScanKind::Udp, name, hit.src, hit.port),
    }
}

/// Classic modes send PORT_BANNER on every triggered hit, repeats included (§3.1, §6.5);
/// never to ignored hosts or below the trigger.
pub fn sends_banner(gate: &Gate, mode: Mode) -> bool {
    mode.kind() == Kind::Classic && matches!(gate, Gate::Respond(_) | Gate::Suppressed)
}

#[cfg(test)]
mod tests;
