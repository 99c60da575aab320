//! The host table: per source and protocol, hits and distinct ports within the trigger
//! window (SCAN_TRIGGER, and the [`Evidence`] the report limits weigh), when the host was last
//! reported (repeats are counted, not logged), whether a report about it was held back by the
//! limits (it is then owed one, and its next hit asks again), and whether a response job for
//! it is under way. Bounded: the least recently seen are evicted half at a time.
//!
//! Sources seen once wait aside while the table is at least half full ([`Sightings`]): a
//! flood of forged sources, each sending one packet, then neither fills the table nor pays
//! its inserts and evictions, and a source seen again is counted from its first sighting, as
//! if it had been in the table all along.
//!
//! Per source and protocol, as 1.2's separate tcp and udp daemons kept them: a UDP probe that
//! is only logged must not hold back the same host's TCP block. Blocks are per host
//! (`blocks`).

use foldhash::{HashMap, HashMapExt};
use std::hash::BuildHasher;
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

impl HostState {
    /// A host first seen at `now`, before its first hit is counted.
    fn new(now: u64) -> HostState {
        HostState {
            hits: 0,
            ports: Ports::default(),
            window_start: now,
            last_seen: now,
            status: Status::Idle,
            last_report: None,
            owed: false,
            suppressed: 0,
        }
    }

    /// Count one more hit at `now` (see [`Hosts::count`]).
    #[inline(always)]
    fn count(
        &mut self,
        limits: Limits,
        now: u64,
        port: u16,
        trigger: u32,
        admit: impl FnOnce(Evidence) -> Admission,
    ) -> Count {
        if now.saturating_sub(self.window_start) > limits.trigger_window_ms {
            self.hits = 0;
            self.ports = Ports::default();
            self.window_start = now;
        }
        self.hits = self.hits.saturating_add(1);
        self.ports.note(port);
        self.last_seen = now;
        if self.hits < trigger.max(1) {
            return Count::BelowTrigger;
        }
        if let Some(at) = self.last_report
            && now.saturating_sub(at) < limits.repeat_interval_ms
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return Count::Repeat;
        }
        let admission = admit(Evidence {
            ports: u32::from(self.ports.n),
            hits: self.hits,
        });
        let owed = self.owed;
        if admission.allowed() {
            self.last_report = Some(now);
            self.owed = false;
        } else {
            self.owed = true;
        }
        Count::Report {
            suppressed: std::mem::take(&mut self.suppressed),
            pending: self.status == Status::Pending,
            admission,
            owed,
        }
    }
}

/// A host seen once (one hit, never reported, no job) while the table was at least half
/// full: all [`HostState`] holds then, besides its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sighting {
    port: u16,
    at: u64,
    owed: bool,
}

impl Sighting {
    /// The host's state as the table would have held it.
    fn state(self) -> HostState {
        let mut ports = Ports::default();
        ports.note(self.port);
        HostState {
            hits: 1,
            ports,
            owed: self.owed,
            ..HostState::new(self.at)
        }
    }
}

/// One slot of [`Sightings`], 16 bytes: `key` is 47 bits of the source's seeded hash (the
/// top bit set: 0 is an empty slot) and its port; `seen` its time and whether it is owed a
/// report.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: u64,
    seen: u64,
}

impl Slot {
    fn sighting(self) -> Sighting {
        Sighting {
            port: self.key as u16,
            at: self.seen >> 1,
            owed: self.seen & 1 == 1,
        }
    }
}

/// The sources seen once while the host table is at least half full, kept aside until their
/// second hit. Under a flood of forged sources from all of IPv4 (one packet each), inserting
/// each into the table and evicting half of it every 32,768 new hosts was most of the
/// engine's work: `examples/engine_flood` all4 188 ns per hit, 68 with new hosts left out
/// of the table altogether (the rest of the engine unchanged); with the sightings, 224-260
/// -> 84-88 ns in back-to-back runs. A sighting is one write into a fixed array instead.
///
/// Two-way set-associative, as many slots as the table holds hosts (65,536 by default, 16
/// bytes each: 1 MiB, allocated at the first sighting): a source's pair of slots is chosen
/// by a seeded hash (forged sources cannot choose it), which also names it in its slot (47
/// bits of it: a lookup mistakes one source for another about once in 7 x 10^13, and then
/// only a first hit is counted for the other), and a new sighting replaces the older of the
/// two. With the source's address in each slot (32 bytes, 2 MiB, the size of this machine's
/// L2 cache per core) the slot's read was 18% of the daemon at 500,000 packets/s in
/// `bench/capture-rate.py`; with 16 bytes, alternating, three runs each: 1.99-2.12 s of CPU
/// against 2.18-2.21 s at 500,000/s, 2.12-2.19 against 2.25-2.28 s at 600,000/s
/// (`engine_flood` all4 100-108 -> 84-88 ns per hit). A sighting is lost when two newer
/// sources land in its pair: under 200,000 new sources a second it survives 0.1 s with
/// probability 0.87, 0.16 s 0.74, 0.3 s 0.45 (`e^-x (1 + x)`, `x` = new sources per pair in
/// that time); a source seen twice within that time is in the table from then on, where
/// such a flood no longer evicts it (the table holds only sources seen twice, reported or
/// blocked). Before, every source went into the table and, under the same flood, one not
/// seen for about 0.16 s was forgotten. Sightings are forgotten when blocks are lifted by
/// hand or restored (their slots do not hold the address an unblock names).
#[derive(Debug, Clone, Default)]
struct Sightings {
    slots: Vec<Slot>,
    hasher: foldhash::fast::RandomState,
    len: usize,
}

impl Sightings {
    /// The pair of slots of `key` (the slot count is a power of two) and its name there.
    fn pair(&self, key: (IpAddr, Proto)) -> (usize, u64) {
        let h = self.hasher.hash_one(key);
        let i = (h as usize) & (self.slots.len() - 1) & !1;
        (i, ((h >> 16) | 1 << 47) << 16)
    }

    /// Take `key`'s sighting, if it has one that is no older than `ttl` at `now`.
    fn take(&mut self, key: (IpAddr, Proto), now: u64, ttl: u64) -> Option<Sighting> {
        if self.len == 0 {
            return None;
        }
        let (i, name) = self.pair(key);
        let slot = self.slots[i..i + 2]
            .iter_mut()
            .find(|s| s.key & !0xffff == name)?;
        let s = std::mem::take(slot).sighting();
        self.len -= 1;
        (now.saturating_sub(s.at) <= ttl).then_some(s)
    }

    /// Note `key`'s sighting (in a table of `slots` slots), over the older of its pair when
    /// both are taken.
    fn note(&mut self, slots: usize, key: (IpAddr, Proto), s: Sighting) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); slots.next_power_of_two().max(2)];
        }
        let (i, name) = self.pair(key);
        let (a, b) = (self.slots[i], self.slots[i + 1]);
        let j = if a.key == 0 {
            i
        } else if b.key == 0 {
            i + 1
        } else {
            self.len -= 1;
            if a.seen >> 1 <= b.seen >> 1 { i } else { i + 1 }
        };
        self.len += 1;
        self.slots[j] = Slot {
            key: name | u64::from(s.port),
            seen: s.at << 1 | u64::from(s.owed),
        };
    }

    /// No sighting is owed a report any more.
    fn forget_owed(&mut self) {
        for slot in &mut self.slots {
            slot.seen &= !1;
        }
    }

    /// Forget every sighting.
    fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.len = 0;
    }

    /// Forget the sightings older than `ttl` at `now`.
    fn expire(&mut self, now: u64, ttl: u64) {
        for slot in &mut self.slots {
            if slot.key != 0 && now.saturating_sub(slot.seen >> 1) > ttl {
                *slot = Slot::default();
                self.len -= 1;
            }
        }
    }
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
    /// `max_hosts` plus the jobs under way (the flood queue is bounded: `exec`), and the
    /// sightings' fixed array (16 bytes per `max_hosts`).
    evict_at: usize,
    /// Sources seen once while the table was at least half full.
    sightings: Sightings,
}

impl Hosts {
    /// The hosts sampled for the eviction's cut.
    const SAMPLE: usize = 4096;

    pub(super) fn new(limits: Limits) -> Hosts {
        Hosts {
            limits,
            map: HashMap::new(),
            evict_at: limits.max_hosts,
            sightings: Sightings::default(),
        }
    }

    /// The hosts tracked: in the table and seen once aside.
    pub(super) fn len(&self) -> usize {
        self.map.len() + self.sightings.len
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
        let key = (src, proto);
        // Full: make room before the lookup. A hit on a known host costs one hash lookup; a
        // new host a second one to insert it, or, while the table is at least half full (a
        // flood of forged sources makes nearly every hit a new host), a sighting instead.
        if self.map.len() >= self.evict_at {
            self.evict(now);
        }
        match self.map.get_mut(&key) {
            Some(host) => host.count(limits, now, port, trigger, admit),
            None => self.count_new(now, key, port, trigger, admit),
        }
    }

    /// [`Hosts::count`] for a host not in the table: one seen once aside comes back with its
    /// first hit counted; while the table is at least half full, a new host is counted aside
    /// and stays there if this hit leaves it seen once (see [`Sightings`]).
    #[inline(never)]
    fn count_new(
        &mut self,
        now: u64,
        key: (IpAddr, Proto),
        port: u16,
        trigger: u32,
        admit: impl FnOnce(Evidence) -> Admission,
    ) -> Count {
        let limits = self.limits;
        let mut host = match self.sightings.take(key, now, limits.host_ttl_ms) {
            Some(seen) => seen.state(),
            None => HostState::new(now),
        };
        let count = host.count(limits, now, port, trigger, admit);
        let aside = self.map.len() >= limits.max_hosts / 2;
        if aside && host.hits == 1 && host.last_report.is_none() {
            let s = Sighting {
                port,
                at: now,
                owed: host.owed,
            };
            self.sightings.note(limits.max_hosts, key, s);
        } else {
            self.map.insert(key, host);
        }
        count
    }

    /// A blocking job for the host starts: its later hits are "already blocked" at once,
    /// not "suppressed".
    pub(super) fn job_started(&mut self, ip: IpAddr, proto: Proto) {
        let key = (ip, proto);
        if let Some(h) = self.map.get_mut(&key) {
            h.status = Status::Pending;
            h.last_report = None;
        } else if let Some(seen) = self.sightings.take(key, 0, u64::MAX) {
            // A source seen once whose quiet block starts: into the table, which never
            // evicts a host with a job under way.
            let h = HostState {
                status: Status::Pending,
                ..seen.state()
            };
            self.map.insert(key, h);
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
        // Their slots do not hold the address `unblocked` asks about: forgotten (as an
        // eviction forgets; blocks lifted by hand or restored are rare).
        self.sightings.clear();
    }

    /// Forget when every host was last reported (the blocks were cleared: a reload).
    pub(super) fn forget_reports(&mut self) {
        for h in self.map.values_mut() {
            h.last_report = None;
            h.owed = false;
            h.suppressed = 0;
        }
        self.sightings.forget_owed();
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
        self.sightings.expire(now, ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> (IpAddr, Proto) {
        (IpAddr::from(i.to_be_bytes()), Proto::Tcp)
    }

    #[test]
    fn a_sighting_comes_back_whole_once_and_the_older_of_a_pair_gives_way() {
        let mut s = Sightings::default();
        let seen = |port, at, owed| Sighting { port, at, owed };
        s.note(64, key(1), seen(65535, 7, true));
        s.note(64, key(2), seen(1, 0, false));
        assert_eq!(s.len, 2);
        // Port, time and owed as noted; taken once; UDP is another host.
        assert_eq!(s.take((key(1).0, Proto::Udp), 8, 100), None);
        assert_eq!(s.take(key(1), 8, 100), Some(seen(65535, 7, true)));
        assert_eq!(s.take(key(1), 8, 100), None);
        // Past the TTL: taken, not returned.
        assert_eq!(s.take(key(2), 101, 100), None);
        assert_eq!(s.len, 0);
        // Three sources in one pair: the oldest gives way.
        let same: Vec<u32> = (1..10_000)
            .filter(|&i| s.pair(key(i)).0 == s.pair(key(0)).0)
            .collect();
        s.note(64, key(0), seen(9, 0, false));
        s.note(64, key(same[0]), seen(10, 5, false));
        s.note(64, key(same[1]), seen(11, 6, true));
        assert_eq!(s.len, 2);
        assert_eq!(s.take(key(0), 6, 100), None);
        assert_eq!(s.take(key(same[0]), 6, 100), Some(seen(10, 5, false)));
        s.forget_owed();
        assert_eq!(s.take(key(same[1]), 6, 100), Some(seen(11, 6, false)));
        s.note(64, key(3), seen(3, 1, false));
        s.expire(200, 100);
        assert_eq!((s.len, s.take(key(3), 1, 100)), (0, None));
    }
}
