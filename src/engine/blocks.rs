//! The blocked hosts: an exact address match (1.2 searched the blocked file for a substring,
//! so `110.0.0.1` counted as `10.0.0.1`), with BLOCK_TIMEOUT expiry, KILL_ROUTE_UNDO, and the
//! removal of the block's hosts.deny line when it ends. Bounded by `Limits::max_blocked`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
    /// What ends it besides forgetting it: None for most blocks.
    ends: Option<Box<Ends>>,
}

/// `Block::until` of a block without BLOCK_TIMEOUT.
const NEVER: u64 = u64::MAX;

/// What a block runs or removes when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ends {
    /// KILL_ROUTE_UNDO, substituted, to run on expiry.
    undo: Option<String>,
    /// The hosts.deny line it wrote, removed when it ends (expiry or lifted by hand).
    deny: Option<DenyLine>,
}

impl Block {
    fn new(until: Option<u64>, mode: Mode, undo: Option<String>, deny: Option<DenyLine>) -> Block {
        let ends = (undo.is_some() || deny.is_some()).then(|| Box::new(Ends { undo, deny }));
        Block {
            until: until.unwrap_or(NEVER),
            mode,
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
}

impl Blocks {
    pub(super) fn new(max: usize) -> Blocks {
        Blocks {
            max,
            map: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        self.map.contains_key(&ip)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Blocks in force by family: (IPv4, IPv6). O(n).
    pub(super) fn by_family(&self) -> (usize, usize) {
        let v4 = self.map.keys().filter(|ip| ip.is_ipv4()).count();
        (v4, self.map.len() - v4)
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
        undo: Option<String>,
        deny: Option<DenyLine>,
    ) -> Result<(), usize> {
        if self.map.len() >= self.max {
            return Err(self.max);
        }
        let until = expire_after_ms.map(|d| now.saturating_add(d));
        if let Some(t) = until {
            self.expiries.push(Reverse((t, ip)));
        }
        self.map.insert(ip, Block::new(until, mode, undo, deny));
        Ok(())
    }

    /// Forget every block (SIGHUP and start-up clear the blocked files; §7.1).
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.expiries.clear();
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
            let Some(b) = self.map.remove(&ip) else {
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
                None => Block::new(until, mode, None, deny_template.map(DenyLine::unknown_hit)),
            };
            if let Some(t) = until {
                self.expiries.push(Reverse((t, ip)));
            }
            self.map.insert(ip, b);
        }
        let mut lifted = Expired::default();
        for (ip, b) in old.into_iter().filter(|(ip, _)| !listed.contains(ip)) {
            lifted.hosts.push((ip, b.mode));
            // Lifted by hand: its hosts.deny line goes (KILL_ROUTE_UNDO stays an expiry's).
            lifted.jobs.extend(end_job(ip, b, false));
        }
        (self.map.len(), lifted)
    }
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
            Some("undo 192.0.2.7".into()),
            None,
        )
        .unwrap();
        b.insert(
            0,
            other,
            Mode::Stcp,
            Some(1000),
            Some("undo 192.0.2.8".into()),
            None,
        )
        .unwrap();
        b.insert(0, plain, Mode::Stcp, None, None, None).unwrap();
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
