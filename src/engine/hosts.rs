//! The host table: per source and protocol, hits and distinct ports within the trigger
//! window (SCAN_TRIGGER, and the [`Evidence`] the report limits weigh), when the host was last
//! reported (repeats are counted, not logged), whether a report about it was held back by the
//! limits (it is then owed one, and its next hit asks again), and whether a response job for
//! it is under way. Bounded: the least recently seen are evicted half at a time.
//!
//! Per source and protocol, as 1.2's separate tcp and udp daemons kept them: a UDP probe that
//! is only logged must not hold back the same host's TCP block. Blocks are per host
//! (`blocks`).

use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;

use crate::config::mode::Proto;

use super::limits::{Admission, Evidence, Limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    /// A job for this host is running.
    Pending,
}

/// The distinct ports a host hit in the window, exactly, up to [`Evidence::PORTS_CAP`].
#[derive(Debug, Clone, Copy, Default)]
struct Ports {
    seen: [u16; Evidence::PORTS_CAP as usize],
    n: u8,
}

impl Ports {
    fn note(&mut self, port: u16) {
        let n = usize::from(self.n);
        if n < self.seen.len() && !self.seen[..n].contains(&port) {
            self.seen[n] = port;
            self.n += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct HostState {
    hits: u32,
    ports: Ports,
    window_start: u64,
    last_seen: u64,
    status: Status,
    /// When this host was last reported (logged); None if never.
    last_report: Option<u64>,
    /// A report about it was held back by the report limits since it was last reported.
    owed: bool,
    suppressed: u32,
}

/// What one more hit from a host means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// SCAN_TRIGGER is not reached yet: counted, silent (§4).
    BelowTrigger,
    /// Reported within the repeat interval: counted, silent.
    Repeat,
    /// Report it. `suppressed`: repeats since its last report; `pending`: a job for this
    /// host and protocol is under way; `admission`: what the report limits said (over them
    /// the host stays owed a report); `owed`: a report about it was held back before.
    Report {
        suppressed: u32,
        pending: bool,
        admission: Admission,
        owed: bool,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Hosts {
    limits: Limits,
    map: HashMap<(IpAddr, Proto), HostState>,
    /// The size at which the next eviction runs: `max_hosts`, or more while hosts with a job
    /// under way (which are never evicted) fill the table, so that a table of them is not
    /// scanned again on every new host (measured: a flood queue of 89,000 forged blocks
    /// made every hit scan 65,536 hosts, 97% of the daemon's time). Memory stays bounded by
    /// `max_hosts` plus the jobs under way (the flood queue is bounded: `exec`).
    evict_at: usize,
}

impl Hosts {
    /// The hosts sampled for the eviction's cut.
    const SAMPLE: usize = 4096;

    pub(super) fn new(limits: Limits) -> Hosts {
        Hosts {
            limits,
            map: HashMap::new(),
            evict_at: limits.max_hosts,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Count a hit from `src` on `port` at `now`; `trigger` is SCAN_TRIGGER (0 and 1 both
    /// mean the first hit, §4). When it is to be reported, `admit` answers with the host's
    /// evidence whether the report limits let it go to the log; the host counts as reported
    /// (repeats are then suppressed for the repeat interval) only when they did, and is owed
    /// a report otherwise.
    pub(super) fn count(
        &mut self,
        now: u64,
        src: IpAddr,
        proto: Proto,
        port: u16,
        trigger: u32,
        admit: impl FnOnce(Evidence) -> Admission,
    ) -> Count {
        let limits = self.limits;
        // Full: make room before the lookup (one hash lookup per hit, not two; a flood of
        // forged sources makes every hit a new host).
        if self.map.len() >= self.evict_at {
            self.evict(now);
        }
        let host = self.map.entry((src, proto)).or_insert(HostState {
            hits: 0,
            ports: Ports::default(),
            window_start: now,
            last_seen: now,
            status: Status::Idle,
            last_report: None,
            owed: false,
            suppressed: 0,
        });
        if now.saturating_sub(host.window_start) > limits.trigger_window_ms {
            host.hits = 0;
            host.ports = Ports::default();
            host.window_start = now;
        }
        host.hits = host.hits.saturating_add(1);
        host.ports.note(port);
        host.last_seen = now;
        if host.hits < trigger.max(1) {
            return Count::BelowTrigger;
        }
        if let Some(at) = host.last_report
            && now.saturating_sub(at) < limits.repeat_interval_ms
        {
            host.suppressed = host.suppressed.saturating_add(1);
            return Count::Repeat;
        }
        let admission = admit(Evidence {
            ports: u32::from(host.ports.n),
            hits: host.hits,
        });
        let owed = host.owed;
        if admission.allowed() {
            host.last_report = Some(now);
            host.owed = false;
        } else {
            host.owed = true;
        }
        Count::Report {
            suppressed: std::mem::take(&mut host.suppressed),
            pending: host.status == Status::Pending,
            admission,
            owed,
        }
    }

    /// A blocking job for the host starts: its later hits are "already blocked" at once,
    /// not "suppressed".
    pub(super) fn job_started(&mut self, ip: IpAddr, proto: Proto) {
        if let Some(h) = self.map.get_mut(&(ip, proto)) {
            h.status = Status::Pending;
            h.last_report = None;
        }
    }

    /// The host's block was refused (BLOCK_PREFIX_BUDGET): its next hit is judged again, not
    /// counted as a repeat.
    pub(super) fn judge_again(&mut self, ip: IpAddr, proto: Proto) {
        if let Some(h) = self.map.get_mut(&(ip, proto)) {
            h.last_report = None;
        }
    }

    /// A blocking job for the host is under way.
    pub(super) fn pending(&self, ip: IpAddr, proto: Proto) -> bool {
        self.map
            .get(&(ip, proto))
            .is_some_and(|h| h.status == Status::Pending)
    }

    /// The host's job ended.
    pub(super) fn job_ended(&mut self, ip: IpAddr, proto: Proto) {
        if let Some(h) = self.map.get_mut(&(ip, proto)) {
            h.status = Status::Idle;
        }
    }

    /// Forget when the hosts `unblocked(ip)` names were last reported, so their next hit is
    /// reported again (a host unblocked by hand, or all hosts when the blocks are cleared).
    /// Hosts with a job under way keep theirs.
    pub(super) fn report_again(&mut self, unblocked: impl Fn(IpAddr) -> bool) {
        for ((ip, _), h) in self.map.iter_mut() {
            if h.status == Status::Idle && unblocked(*ip) {
                h.last_report = None;
                h.owed = false;
                h.suppressed = 0;
            }
        }
    }

    /// Forget when every host was last reported (the blocks were cleared: a reload).
    pub(super) fn forget_reports(&mut self) {
        for h in self.map.values_mut() {
            h.last_report = None;
            h.owed = false;
            h.suppressed = 0;
        }
    }

    /// Make room: drop hosts idle past their TTL and the least recently seen half of the
    /// table, in one pass (amortised O(1) per new host: one scan per max_hosts/2 new hosts).
    /// The pass reads every host (at 65,536 hosts the table is about 13 MB, far past the
    /// caches), and under a flood from all of IPv4 it was most of the table's cost: evicting a
    /// quarter at a time, `examples/engine_flood` all4 took 296 ns per hit, half at a time 220
    /// (an eighth had cost twice a quarter). The price: under such a flood, 200,000 new
    /// sources a second, a host not seen for about 0.16 s is forgotten (0.25 s with a
    /// quarter); a scanner probing faster keeps its count. The cut is the median of the
    /// last-seen times of the first [`Hosts::SAMPLE`] hosts in the table's order, which its
    /// seeded hash makes a random sample (forged sources cannot choose where they sit): about
    /// half (the median of 4,096 samples cuts between 48.5% and 51.5% of the table 19 times in
    /// 20), where collecting every host's time for an exact one was 5% of the daemon's CPU
    /// under a flood from all of IPv4. Exact for smaller tables.
    fn evict(&mut self, now: u64) {
        let ttl = self.limits.host_ttl_ms;
        let mut seen: Vec<u64> = self
            .map
            .values()
            .take(Self::SAMPLE)
            .map(|h| h.last_seen)
            .collect();
        let k = (seen.len() / 2).max(1);
        let (_, cut, _) = seen.select_nth_unstable(k - 1);
        let cut = *cut;
        self.map.retain(|_, h| {
            h.status == Status::Pending
                || (h.last_seen > cut && now.saturating_sub(h.last_seen) <= ttl)
        });
        let max = self.limits.max_hosts;
        self.evict_at = max.max(self.map.len() + max / 4);
    }

    /// Housekeeping: forget hosts idle past their TTL.
    pub(super) fn expire(&mut self, now: u64) {
        let ttl = self.limits.host_ttl_ms;
        self.map
            .retain(|_, h| h.status == Status::Pending || now.saturating_sub(h.last_seen) <= ttl);
    }
}
