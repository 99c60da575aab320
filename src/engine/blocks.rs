//! The blocked hosts: an exact address match (1.2 searched the blocked file for a substring,
//! so `110.0.0.1` counted as `10.0.0.1`), with BLOCK_TIMEOUT expiry, KILL_ROUTE_UNDO, and the
//! removal of the block's hosts.deny line when it ends. Bounded by `Limits::max_blocked`.
//!
//! Room for evidence. Each block made here remembers the evidence of the scan that caused it
//! (distinct ports plus hits, `super::Evidence::score`), in tiers that double: a forged
//! source shows 2 (one packet, one port: tier 0), a real scanner more with every probe. When
//! the nftables set of a family is full, a source is blocked by unblocking the oldest block
//! of the lowest tier below its own ([`Blocks::evict_weaker`]): so a flood of forged
//! one-packet sources that filled the set (with BLOCK_TIMEOUT="0", for good) cannot keep a
//! real scanner out; to do that a forger would have to fill the whole set with sources of at
//! least the scanner's tier (for an `nmap -sS` of Debian's TCP_PORTS, tier 5: a score of 33,
//! at least 17 packets to as many ports, from each of a million addresses). Blocks found in the set at start or by a re-read (their
//! evidence unknown) are never unblocked this way. The tiers are FIFOs of addresses, checked
//! against the map when they come up (4 bytes an IPv4 block, 16 an IPv6 one).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;

use crate::block::hosts_deny::DenyLine;
use crate::config::mode::Mode;

use super::verdict::{Detail, Job, JobKind, Record, Step};

/// A remembered block. Small on purpose: a flood of forged sources can fill the table to
/// `Limits::max_blocked` (1,048,576 by default), so every byte here counts a million times.
/// With the undo command and the hosts.deny line inline (`Option<u64>`, `Option<String>`,
/// `Option<DenyLine>`) an entry with its address took 104 bytes and 1,048,576 blocks took
/// 2^21 buckets of them, 220 MB, 330 MB while the table grew; most blocks have neither
/// (nftables, KILL_ROUTE without an undo), so both live behind one pointer, and "never" is
/// [`NEVER`] instead of an `Option`: 48 bytes with the address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// Monotonic ms when it expires; [`NEVER`]: never.
    until: u64,
    mode: Mode,
    /// The evidence score of the scan it answered; [`UNKNOWN`]: found in the set.
    evidence: u32,
    /// What ends it besides forgetting it: None for most blocks.
    ends: Option<Box<Ends>>,
}

/// `Block::until` of a block without BLOCK_TIMEOUT.
const NEVER: u64 = u64::MAX;

/// `Block::evidence` of a block this run did not make (never unblocked for room).
pub(super) const UNKNOWN: u32 = u32::MAX;

/// Evidence tiers: 0 for a score up to 2, then one per doubling (up to 4, 8, ..., 1,024), and
/// the last above that.
pub(super) const TIERS: usize = 11;

/// The tier of an evidence score (see [`TIERS`]); tier 0 is `super::limits::seen_once`.
pub(super) fn tier(score: u32) -> usize {
    let bits = 32 - score.max(2).saturating_sub(1).leading_zeros() as usize;
    (bits - 1).min(TIERS - 1)
}

/// What a block runs or removes when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ends {
    /// KILL_ROUTE_UNDO, substituted, to run on expiry.
    undo: Option<String>,
    /// The hosts.deny line it wrote, removed when it ends (expiry or lifted by hand).
    deny: Option<DenyLine>,
}

impl Block {
    fn new(
        until: Option<u64>,
        mode: Mode,
        evidence: u32,
        undo: Option<String>,
        deny: Option<DenyLine>,
    ) -> Block {
        let ends = (undo.is_some() || deny.is_some()).then(|| Box::new(Ends { undo, deny }));
        Block {
            until: until.unwrap_or(NEVER),
            mode,
            evidence,
            ends,
        }
    }

    /// When it expires (ms), None: never.
    fn until(&self) -> Option<u64> {
        (self.until != NEVER).then_some(self.until)
    }
}

/// What [`Blocks::expire`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Expired {
    /// The addresses forgotten, with the mode that blocked them.
    pub(super) hosts: Vec<(IpAddr, Mode)>,
    /// Their KILL_ROUTE_UNDO (expiry only) and hosts.deny removal jobs.
    pub(super) jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
pub(super) struct Blocks {
    max: usize,
    map: HashMap<IpAddr, Block>,
    /// Expiry times of blocks, earliest first. Entries are checked against `map` when they
    /// come up (a block re-made or restored since has another time), so nothing is removed
    /// from the middle: O(log n) per block, O(1) per poll when nothing is due.
    expiries: BinaryHeap<Reverse<(u64, IpAddr)>>,
    /// IPv4 blocks in `map` (the rest are IPv6).
    v4: usize,
    /// Blocks made here, by evidence tier, oldest first (see the module's comment).
    weak4: [VecDeque<u32>; TIERS],
    weak6: [VecDeque<u128>; TIERS],
}

impl Blocks {
    pub(super) fn new(max: usize) -> Blocks {
        Blocks {
            max,
            map: HashMap::new(),
            expiries: BinaryHeap::new(),
            v4: 0,
            weak4: Default::default(),
            weak6: Default::default(),
        }
    }

    /// Blocks in force of `ip`'s family.
    pub(super) fn family_len(&self, ip: IpAddr) -> usize {
        if ip.is_ipv4() {
            self.v4
        } else {
            self.map.len() - self.v4
        }
    }

    /// Unblock the oldest block of `ip`'s family whose evidence tier is below `score`'s, to
    /// make room for `ip`: it is forgotten and returned with its evidence and the job that
    /// ends it (its hosts.deny line, KILL_ROUTE_UNDO as on expiry). None: every block of the
    /// family is of `score`'s tier or above (or was not made here).
    pub(super) fn evict_weaker(
        &mut self,
        ip: IpAddr,
        score: u32,
    ) -> Option<(IpAddr, u32, Option<Job>)> {
        for t in 0..tier(score) {
            loop {
                let victim = if ip.is_ipv4() {
                    self.weak4[t]
                        .pop_front()
                        .map(|a| IpAddr::from(a.to_be_bytes()))
                } else {
                    self.weak6[t]
                        .pop_front()
                        .map(|a| IpAddr::from(a.to_be_bytes()))
                };
                let Some(v) = victim else { break };
                // Entries of blocks gone or re-made since are skipped.
                if !stands(&self.map, v, t) || v == ip {
                    continue;
                }
                let b = self.remove(v)?;
                let evidence = b.evidence;
                return Some((v, evidence, end_job(v, b, true)));
            }
        }
        None
    }

    fn remove(&mut self, ip: IpAddr) -> Option<Block> {
        let b = self.map.remove(&ip)?;
        self.v4 -= usize::from(ip.is_ipv4());
        Some(b)
    }

    /// The tiers hold no more than twice the blocks (plus some slack): entries of blocks
    /// gone (expired, lifted, unblocked) are dropped now and then.
    fn compact_tiers(&mut self) {
        let held: usize = self.weak4.iter().map(VecDeque::len).sum::<usize>()
            + self.weak6.iter().map(VecDeque::len).sum::<usize>();
        if held <= 2 * self.map.len() + 1024 {
            return;
        }
        let map = &self.map;
        for (t, q) in self.weak4.iter_mut().enumerate() {
            q.retain(|&a| stands(map, IpAddr::from(a.to_be_bytes()), t));
        }
        for (t, q) in self.weak6.iter_mut().enumerate() {
            q.retain(|&a| stands(map, IpAddr::from(a.to_be_bytes()), t));
        }
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        self.map.contains_key(&ip)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Blocks in force by family: (IPv4, IPv6).
    pub(super) fn by_family(&self) -> (usize, usize) {
        (self.v4, self.map.len() - self.v4)
    }

    /// The addresses blocked now, with the mode that blocked them.
    pub(super) fn hosts(&self) -> Vec<(IpAddr, Mode)> {
        self.map.iter().map(|(ip, b)| (*ip, b.mode)).collect()
    }

    /// When the soonest block in force expires (ms, the engine's clock): the heap's top when
    /// it is current (the usual case, O(1)), else the earliest in the map (a block re-made
    /// since left a stale entry on top; O(n) until that entry comes up).
    pub(super) fn soonest(&self) -> Option<u64> {
        let Reverse((t, ip)) = *self.expiries.peek()?;
        if self.map.get(&ip).is_some_and(|b| b.until() == Some(t)) {
            return Some(t);
        }
        self.map.values().filter_map(Block::until).min()
    }

    /// Remember a block made at `now`. Err when the memory is full (the block ran, but is
    /// not remembered).
    pub(super) fn insert(
        &mut self,
        now: u64,
        ip: IpAddr,
        mode: Mode,
        expire_after_ms: Option<u64>,
        (undo, deny): (Option<String>, Option<DenyLine>),
        evidence: u32,
    ) -> Result<(), usize> {
        if self.map.len() >= self.max {
            return Err(self.max);
        }
        let until = expire_after_ms.map(|d| now.saturating_add(d));
        if let Some(t) = until {
            self.expiries.push(Reverse((t, ip)));
        }
        let b = Block::new(until, mode, evidence, undo, deny);
        if self.map.insert(ip, b).is_none() {
            self.v4 += usize::from(ip.is_ipv4());
        }
        if evidence != UNKNOWN {
            match ip {
                IpAddr::V4(a) => self.weak4[tier(evidence)].push_back(u32::from(a)),
                IpAddr::V6(a) => self.weak6[tier(evidence)].push_back(u128::from(a)),
            }
            self.compact_tiers();
        }
        Ok(())
    }

    /// Forget every block (SIGHUP and start-up clear the blocked files; §7.1).
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.expiries.clear();
        self.v4 = 0;
        self.weak4 = Default::default();
        self.weak6 = Default::default();
    }

    /// Forget blocks whose BLOCK_TIMEOUT has run out at `now`; returns them and their
    /// KILL_ROUTE_UNDO jobs. (nftables elements expire in the kernel at the same time.)
    pub(super) fn expire(&mut self, now: u64) -> Expired {
        let mut out = Expired::default();
        while let Some(&Reverse((t, ip))) = self.expiries.peek() {
            if t > now {
                break;
            }
            self.expiries.pop();
            let current = self.map.get(&ip).is_some_and(|b| b.until() == Some(t));
            if !current {
                continue;
            }
            let Some(b) = self.remove(ip) else {
                continue;
            };
            out.hosts.push((ip, b.mode));
            out.jobs.extend(end_job(ip, b, true));
        }
        out
    }

    /// Make the blocks exactly `hosts` (address, time left in ms or None for never). A host
    /// that stays keeps its KILL_ROUTE_UNDO and hosts.deny line; a host not known before is
    /// recorded with `mode` and, when KILL_HOSTS_DENY is set (`deny_template`), the line that
    /// template writes for it (an earlier run blocked it). Returns how many are remembered
    /// (at most the maximum) and the hosts that were blocked here and are not any more
    /// (lifted by hand), with the jobs that remove their hosts.deny lines.
    pub(super) fn restore(
        &mut self,
        now: u64,
        mode: Mode,
        deny_template: Option<&str>,
        hosts: impl IntoIterator<Item = (IpAddr, Option<u64>)>,
    ) -> (usize, Expired) {
        let mut old = std::mem::take(&mut self.map);
        self.expiries.clear();
        let hosts: Vec<(IpAddr, Option<u64>)> = hosts
            .into_iter()
            .map(|(ip, left)| (ip.to_canonical(), left))
            .collect();
        // Hosts past the maximum are still blocked (in the sets), only not remembered.
        let listed: std::collections::HashSet<IpAddr> = hosts.iter().map(|h| h.0).collect();
        for (ip, left) in hosts {
            if self.map.len() >= self.max {
                break;
            }
            let until = left.map(|l| now.saturating_add(l));
            let b = match old.remove(&ip) {
                Some(b) => Block {
                    until: until.unwrap_or(NEVER),
                    ..b
                },
                None => Block::new(
                    until,
                    mode,
                    UNKNOWN,
                    None,
                    deny_template.map(DenyLine::unknown_hit),
                ),
            };
            if let Some(t) = until {
                self.expiries.push(Reverse((t, ip)));
            }
            self.map.insert(ip, b);
        }
        self.v4 = self.map.keys().filter(|ip| ip.is_ipv4()).count();
        self.compact_tiers();
        let mut lifted = Expired::default();
        for (ip, b) in old.into_iter().filter(|(ip, _)| !listed.contains(ip)) {
            lifted.hosts.push((ip, b.mode));
            // Lifted by hand: its hosts.deny line goes (KILL_ROUTE_UNDO stays an expiry's).
            lifted.jobs.extend(end_job(ip, b, false));
        }
        (self.map.len(), lifted)
    }
}

/// Does a tier `t` entry for `ip` still stand for a block made here (not gone, not re-made
/// with other evidence, not found in the set)?
fn stands(map: &HashMap<IpAddr, Block>, ip: IpAddr, t: usize) -> bool {
    map.get(&ip)
        .is_some_and(|b| b.evidence != UNKNOWN && tier(b.evidence) == t)
}

/// The job that ends `b`'s block of `ip`: its hosts.deny line removed, then KILL_ROUTE_UNDO
/// run (on expiry). None when there is nothing to do.
fn end_job(ip: IpAddr, b: Block, expired: bool) -> Option<Job> {
    let mut steps = Vec::new();
    let Ends { undo, deny } = *b.ends?;
    if let Some(deny) = deny {
        steps.push(Step::HostsDenyRemove { deny });
    }
    // KILL_ROUTE_UNDO runs on expiry only; a block lifted by hand loses its hosts.deny line.
    if let Some(command) = undo.filter(|_| expired) {
        steps.push(Step::Undo { command });
    }
    if steps.is_empty() {
        return None;
    }
    Some(Job {
        target: ip,
        steps,
        record: Record {
            name: ip.to_string(),
            ip,
            port: 0,
            mode: b.mode,
            // Not a hit: an undo job writes no record.
            detail: Detail::Connect,
            blocked_file: false,
            write: false,
        },
        quiet: false,
        preflight_ok: true,
        flood: false,
        kind: JobKind::Unblock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_with_its_address_takes_at_most_48_bytes() {
        // 1,048,576 of them fill 2^21 hash buckets: 48 bytes each is ~100 MB, the inline
        // layout before (104 bytes) 220 MB.
        assert!(std::mem::size_of::<(IpAddr, Block)>() <= 48);
    }

    #[test]
    fn evidence_tiers_double() {
        let t: Vec<usize> = [0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 1024, 1025, u32::MAX]
            .iter()
            .map(|&s| tier(s))
            .collect();
        assert_eq!(t, vec![0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 9, 10, 10]);
        // Tier 0 is what BLOCK_LONE_BUDGET counts: below the evidence lane.
        for s in 0..2000 {
            assert_eq!(tier(s) == 0, super::super::limits::seen_once(s), "{s}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The oldest block of the lowest tier below the newcomer's goes; never a block of its
    /// tier or above, never one found in the set (evidence unknown), never one of the other
    /// family; entries of blocks gone since are skipped.
    #[test]
    fn room_is_made_from_the_oldest_of_the_weakest() {
        let mut b = Blocks::new(100);
        let put = |b: &mut Blocks, a: &str, e: u32| {
            b.insert(0, ip(a), Mode::Stcp, None, (None, None), e)
                .unwrap();
        };
        put(&mut b, "192.0.2.1", 2);
        put(&mut b, "192.0.2.2", 6);
        put(&mut b, "192.0.2.3", 2);
        put(&mut b, "2001:db8::1", 2);
        b.restore(
            0,
            Mode::Stcp,
            None,
            [
                "192.0.2.1",
                "192.0.2.2",
                "192.0.2.3",
                "2001:db8::1",
                "192.0.2.9",
            ]
            .map(|a| (ip(a), None)),
        );
        assert_eq!(b.by_family(), (4, 1));
        // Tier 0 cannot make room for tier 0.
        assert!(b.evict_weaker(ip("198.51.100.1"), 2).is_none());
        let (v, e, _) = b.evict_weaker(ip("198.51.100.1"), 4).unwrap();
        assert_eq!((v, e), (ip("192.0.2.1"), 2));
        assert_eq!(b.family_len(ip("198.51.100.1")), 3);
        // 192.0.2.3 is lifted by hand: its entry is skipped; 192.0.2.2 (tier 2) is above 4's.
        b.restore(
            0,
            Mode::Stcp,
            None,
            ["192.0.2.2", "2001:db8::1", "192.0.2.9"].map(|a| (ip(a), None)),
        );
        assert!(b.evict_weaker(ip("198.51.100.1"), 4).is_none());
        let (v, _, _) = b.evict_weaker(ip("198.51.100.1"), 100).unwrap();
        assert_eq!(v, ip("192.0.2.2"));
        // Only 192.0.2.9 is left in IPv4: found in the set, never unblocked for room.
        assert!(b.evict_weaker(ip("198.51.100.1"), u32::MAX - 1).is_none());
        let (v, _, _) = b.evict_weaker(ip("2001:db8::99"), 4).unwrap();
        assert_eq!(v, ip("2001:db8::1"));
        assert_eq!(b.by_family(), (1, 0));
    }

    /// Entries of blocks gone do not pile up: the tiers hold at most twice the blocks and
    /// some slack.
    #[test]
    fn the_tiers_stay_bounded_as_blocks_come_and_go() {
        let mut b = Blocks::new(10_000);
        for round in 0..50u32 {
            for i in 0..1000u32 {
                let a = IpAddr::from((0x0a00_0000 + round * 1000 + i).to_be_bytes());
                b.insert(0, a, Mode::Stcp, Some(1), (None, None), 2)
                    .unwrap();
            }
            b.expire(u64::from(round) + 10);
        }
        let held: usize = b.weak4.iter().map(VecDeque::len).sum();
        assert!(held <= 2 * b.len() + 1024 + 1000, "{held}");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn the_undo_runs_on_expiry_and_not_when_lifted_and_never_is_never() {
        let mut b = Blocks::new(10);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let plain: IpAddr = "192.0.2.9".parse().unwrap();
        b.insert(
            0,
            ip,
            Mode::Stcp,
            Some(1000),
            (Some("undo 192.0.2.7".into()), None),
            2,
        )
        .unwrap();
        b.insert(
            0,
            other,
            Mode::Stcp,
            Some(1000),
            (Some("undo 192.0.2.8".into()), None),
            2,
        )
        .unwrap();
        b.insert(0, plain, Mode::Stcp, None, (None, None), 2)
            .unwrap();
        assert_eq!(b.soonest(), Some(1000));
        // `other` lifted by hand (not in the list): forgotten, its undo not run.
        let (n, lifted) = b.restore(10, Mode::Stcp, None, [(ip, Some(990)), (plain, None)]);
        assert_eq!(n, 2);
        assert_eq!(lifted.hosts, vec![(other, Mode::Stcp)]);
        assert!(lifted.jobs.is_empty());
        let e = b.expire(999);
        assert!(e.hosts.is_empty());
        let e = b.expire(1000);
        assert_eq!(e.hosts, vec![(ip, Mode::Stcp)]);
        assert_eq!(e.jobs.len(), 1);
        assert!(
            matches!(&e.jobs[0].steps[..], [Step::Undo { command }] if command == "undo 192.0.2.7")
        );
        // The block without BLOCK_TIMEOUT stays.
        assert!(b.expire(u64::MAX - 1).hosts.is_empty());
        assert!(b.contains(plain));
        assert_eq!(b.soonest(), None);
    }
}
