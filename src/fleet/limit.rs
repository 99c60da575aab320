//! Limits on what goes to the LAPI, "as the logs": the same per-prefix token-bucket scheme as
//! the engine's report limits (IPv4 /24, IPv6 /64, a burst of 20 then 2 per second per prefix,
//! a burst of 200 then 20 per second over all prefixes). A record within the limits is its own
//! alert; the others become `portsentry/flood` alerts (see `alert`), each still carrying a
//! `ban` decision per address:
//!
//! - records over their own prefix's limit: one alert per prefix per request, at most
//!   [`MAX_PREFIX_FLOODS`] of them;
//! - the rest (prefixes within their limit while all prefixes together are over theirs, and
//!   prefixes beyond that cap): one alert per address family per request, whose source is the
//!   smallest network covering its records (`198.51.0.0/18` for a flood from one /18).
//!
//! So a forged flood costs the LAPI at most `MAX_PREFIX_FLOODS + 2` alerts per request (more
//! only when a record list must be cut, [`MAX_RANGES_LEN`]), however many prefixes it forges,
//! and requests are spaced further apart while a flood lasts ([`FLOOD_GAP_MS`]); every block
//! still reaches the LAPI and every bouncer, exactly as every block is still made locally while
//! the logs are limited. Pure.

use std::collections::HashMap;
use std::net::IpAddr;

use super::alert::{Numbered, Planned};
use crate::config::ignore::Net;
use crate::engine::{Bucket, prefix_of};

/// Requests are at least this far apart (so under a flood a request carries what a few ms
/// brought).
pub const MIN_GAP_MS: u64 = 5;
/// After a request with a flood alert, the next waits this long: at most 4 flood requests a
/// second.
pub const FLOOD_GAP_MS: u64 = 250;
/// At most this many records per request: 10,000 records from one forged /64 reached the
/// 1.4.6 LAPI (SQLite, WAL) whole in 3.7 s, in 36 alerts (`tests/e2e_fleet.rs`, 2026-11-30).
pub const MAX_PER_REQUEST: usize = 1000;
/// A flood alert's record list is cut into several alerts beyond this length (the LAPI keeps a
/// meta value of at most 4,095 bytes).
pub const MAX_RANGES_LEN: usize = 2000;
/// At most this many flood alerts of one prefix each per request; the records of further
/// prefixes go into their family's covering alert.
pub const MAX_PREFIX_FLOODS: usize = 16;

/// Tunables (the defaults are the engine's report limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Alerts one source prefix may send at once.
    pub prefix_burst: u32,
    /// Then this many a second per prefix.
    pub prefix_per_sec: u32,
    /// Alerts all prefixes together may send at once.
    pub burst: u32,
    /// Then this many a second in all.
    pub per_sec: u32,
    /// Prefixes tracked at most (the oldest bucket is forgotten first).
    pub max_prefixes: usize,
}

impl Default for Limits {
    /// The engine's report limits, taken from `engine::Limits` so the two cannot drift apart.
    fn default() -> Self {
        let e = crate::engine::Limits::default();
        Limits {
            prefix_burst: e.prefix_burst,
            prefix_per_sec: e.prefix_per_sec,
            burst: e.report_burst,
            per_sec: e.reports_per_sec,
            max_prefixes: e.max_prefixes,
        }
    }
}

/// Alert limiter: decides, per request, which records are alerts of their own.
#[derive(Debug, Clone)]
pub struct Limiter {
    limits: Limits,
    global: Bucket,
    prefixes: HashMap<IpAddr, Bucket>,
    /// Records sent in flood alerts since the last summary, per prefix (at most
    /// `max_prefixes` of them named; the others counted in `grouped_other`).
    grouped: HashMap<(IpAddr, u8), u64>,
    grouped_other: u64,
    last_summary: u64,
}

/// Which flood alert of a request a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    /// Its own prefix's.
    Prefix((IpAddr, u8)),
    /// Its family's covering alert (true: IPv6).
    Wide(bool),
}

impl Limiter {
    /// A limiter with full buckets at `now` (ms).
    pub fn new(limits: Limits, now: u64) -> Limiter {
        Limiter {
            limits,
            global: Bucket::per_sec(limits.burst, limits.per_sec, now),
            prefixes: HashMap::new(),
            grouped: HashMap::new(),
            grouped_other: 0,
            last_summary: now,
        }
    }

    /// The alerts for one request, in record order (a flood alert stands where its first
    /// record was).
    pub fn plan(&mut self, now: u64, batch: &[Numbered]) -> Vec<Planned> {
        self.global.refill(now);
        let mut out: Vec<Planned> = Vec::new();
        // The open flood alert of each group: index in `out`, last record number, runs.
        let mut open: HashMap<Group, (usize, u64, usize)> = HashMap::new();
        let mut prefix_floods = 0;
        for n in batch {
            let key = prefix_of(n.record.ip.to_canonical());
            if self.prefixes.len() >= self.limits.max_prefixes
                && !self.prefixes.contains_key(&key.0)
            {
                // Prefixes whose bucket is full again behave as new ones: forget them.
                self.prefixes.retain(|_, b| {
                    b.refill(now);
                    !b.full()
                });
                if self.prefixes.len() >= self.limits.max_prefixes {
                    self.prefixes.clear();
                }
            }
            let limits = self.limits;
            let b = self.prefixes.entry(key.0).or_insert_with(|| {
                Bucket::per_sec(limits.prefix_burst, limits.prefix_per_sec, now)
            });
            b.refill(now);
            let own_limit = !b.has();
            if !own_limit && self.global.has() {
                b.spend();
                self.global.spend();
                out.push(Planned::Single(*n));
                continue;
            }
            if let Some(c) = self.grouped.get_mut(&key) {
                *c += 1;
            } else if self.grouped.len() < self.limits.max_prefixes {
                self.grouped.insert(key, 1);
            } else {
                self.grouped_other += 1;
            }
            let wide = Group::Wide(key.0.is_ipv6());
            let mut group = if own_limit { Group::Prefix(key) } else { wide };
            // Records come in number order, so a flood alert's list grows by one run each
            // time a number does not follow the previous one; each run costs at most
            // `2 * digits + 2` bytes of the meta value.
            let digits = n.seq.checked_ilog10().unwrap_or(0) as usize + 1;
            let fits = |runs: usize| (runs + 1) * (2 * digits + 2) <= MAX_RANGES_LEN;
            let joins = |(_, last, runs): &(usize, u64, usize)| n.seq == *last + 1 || fits(*runs);
            // A prefix's new flood alert, if this request may still open one.
            if group != wide && !open.get(&group).is_some_and(joins) {
                if prefix_floods < MAX_PREFIX_FLOODS {
                    prefix_floods += 1;
                } else {
                    group = wide;
                }
            }
            match open.get_mut(&group) {
                Some(o) if joins(o) => {
                    let (i, last, runs) = o;
                    if n.seq != *last + 1 {
                        *runs += 1;
                    }
                    *last = n.seq;
                    if let Some(Planned::Flood { records, prefix }) = out.get_mut(*i) {
                        records.push(*n);
                        if group == wide {
                            *prefix = covering(*prefix, n.record.ip.to_canonical());
                        }
                    }
                }
                _ => {
                    open.insert(group, (out.len(), n.seq, 1));
                    let ip = n.record.ip.to_canonical();
                    out.push(Planned::Flood {
                        prefix: match group {
                            Group::Prefix(k) => k,
                            Group::Wide(_) => (ip, if ip.is_ipv6() { 128 } else { 32 }),
                        },
                        records: vec![*n],
                    });
                }
            }
        }
        out
    }

    /// Every `interval_ms`: what went into flood alerts since the last summary, the prefixes
    /// with the most first (at most three named), or None if nothing did.
    pub fn summary(&mut self, now: u64, interval_ms: u64) -> Option<Summary> {
        if now.saturating_sub(self.last_summary) < interval_ms {
            return None;
        }
        let secs = now.saturating_sub(self.last_summary).div_ceil(1000);
        self.last_summary = now;
        if self.grouped.is_empty() {
            return None;
        }
        let mut v: Vec<((IpAddr, u8), u64)> = self.grouped.drain().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let total = v.iter().map(|x| x.1).sum::<u64>() + std::mem::take(&mut self.grouped_other);
        Some((total, secs, v))
    }
}

/// The smallest network holding both `net` and `ip` (of one family; the ignore list's
/// [`Net`] clears the host bits).
fn covering(net: (IpAddr, u8), ip: IpAddr) -> (IpAddr, u8) {
    let common = match (net.0, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros(),
        _ => return net,
    };
    let len = common.min(u32::from(net.1)) as u8;
    Net::new(net.0, len).map_or(net, |n| (n.addr, n.prefix))
}

/// What went into flood alerts: total, over how many seconds, per prefix (most first).
pub type Summary = (u64, u64, Vec<((IpAddr, u8), u64)>);

/// How long to wait after a request before the next one.
pub fn gap_after(plan: &[Planned]) -> u64 {
    if plan.iter().any(|p| matches!(p, Planned::Flood { .. })) {
        FLOOD_GAP_MS
    } else {
        MIN_GAP_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use crate::fleet::alert::{Record, Scan, seq_ranges};

    fn n(seq: u64, ip: &str) -> Numbered {
        Numbered {
            seq,
            record: Record {
                epoch_ms: 0,
                ip: ip.parse().unwrap(),
                port: 1,
                mode: Mode::Sudp,
                scan: Scan::Udp,
                ban_s: 60,
            },
        }
    }

    fn singles(p: &[Planned]) -> usize {
        p.iter().filter(|p| matches!(p, Planned::Single(_))).count()
    }

    #[test]
    fn a_forged_flood_from_one_prefix_becomes_one_alert_per_request_and_loses_nothing() {
        let mut l = Limiter::new(Limits::default(), 0);
        let flood: Vec<Numbered> = (0..10_000u64)
            .map(|i| n(i, &format!("2001:db8:3::{i:x}")))
            .collect();
        let mut real = n(10_000, "198.51.100.9");
        real.record.scan = Scan::TcpSyn;
        let mut batch = flood[..999].to_vec();
        batch.push(real);
        let p = l.plan(0, &batch);
        // The prefix's burst, then one flood alert; the real scanner from a quiet prefix is
        // an alert of its own.
        assert_eq!(singles(&p), 21);
        assert_eq!(p.len(), 22);
        assert!(
            matches!(&p[20], Planned::Flood { records, prefix } if records.len() == 979 && prefix.1 == 64)
        );
        assert_eq!(p[21], Planned::Single(real));
        let total: usize = p.iter().map(|x| x.records().len()).sum();
        assert_eq!(total, 1000, "every record is in exactly one alert");
        // 250 ms later the prefix has earned half a token: still grouped.
        let p = l.plan(250, &flood[999..1999]);
        assert_eq!((p.len(), singles(&p)), (1, 0));
        let (total, _, top) = l.summary(10_000, 10_000).unwrap();
        assert_eq!(total, 979 + 1000);
        assert_eq!(top[0].0, ("2001:db8:3::".parse().unwrap(), 64));
        assert_eq!(l.summary(10_001, 10_000), None);
    }

    #[test]
    fn quiet_prefixes_send_alerts_of_their_own_until_the_global_burst_is_spent() {
        let mut l = Limiter::new(Limits::default(), 0);
        let batch: Vec<Numbered> = (0..300u64)
            .map(|i| n(i, &format!("10.{}.{}.1", i / 256, i % 256)))
            .collect();
        let p = l.plan(0, &batch);
        assert_eq!(singles(&p), 200);
        // The other 100 (10.0.200.1 to 10.1.43.1), each within its own /24's limit, are one
        // flood alert whose source covers them all.
        assert_eq!(p.len(), 201);
        assert!(
            matches!(&p[200], Planned::Flood { records, prefix }
                if records.len() == 100 && *prefix == ("10.0.0.0".parse().unwrap(), 15)),
            "{:?}",
            p[200]
        );
        // One second later the global bucket has 20 tokens.
        let more: Vec<Numbered> = (300..340u64)
            .map(|i| n(i, &format!("10.9.{}.1", i - 300)))
            .collect();
        assert_eq!(singles(&l.plan(1000, &more)), 20);
    }

    #[test]
    fn a_forged_flood_from_many_prefixes_costs_a_few_alerts_whatever_their_number() {
        let mut l = Limiter::new(Limits::default(), 0);
        // 1,000 forged sources from 1,000 /64s, then 1,000 from 1,000 /24s: one record each.
        let mut batch: Vec<Numbered> = (0..1000u64)
            .map(|i| n(i, &format!("2001:db8:{i:x}::1")))
            .collect();
        batch.extend((0..1000u64).map(|i| n(1000 + i, &format!("10.{}.{}.7", i / 256, i % 256))));
        let p = l.plan(0, &batch);
        // The global burst, then one alert per family, not one per prefix.
        assert_eq!(singles(&p), 200);
        assert_eq!(p.len(), 202, "{}", p.len());
        let floods: Vec<&Planned> = p
            .iter()
            .filter(|x| !matches!(x, Planned::Single(_)))
            .collect();
        assert!(matches!(floods[0], Planned::Flood { records, prefix }
            if records.len() == 800 && *prefix == ("2001:db8::".parse().unwrap(), 38)));
        assert!(matches!(floods[1], Planned::Flood { records, prefix }
            if records.len() == 1000 && *prefix == ("10.0.0.0".parse().unwrap(), 14)));
        assert_eq!(p.iter().map(|x| x.records().len()).sum::<usize>(), 2000);
        // The summary counts them all and names the prefixes.
        let (total, _, top) = l.summary(10_000, 10_000).unwrap();
        assert_eq!((total, top.len()), (1800, 1800));
    }

    #[test]
    fn at_most_max_prefix_floods_prefixes_get_a_flood_alert_of_their_own() {
        let mut l = Limiter::new(
            Limits {
                prefix_burst: 1,
                max_prefixes: 30,
                ..Limits::default()
            },
            0,
        );
        // 40 prefixes, 3 records each: one alert each, then 2 over their own limit.
        let batch: Vec<Numbered> = (0..120u64)
            .map(|i| n(i, &format!("192.168.{}.{}", i / 3, i % 3 + 1)))
            .collect();
        let p = l.plan(0, &batch);
        assert_eq!(singles(&p), 40);
        let own = p
            .iter()
            .filter(|x| matches!(x, Planned::Flood { prefix, .. } if prefix.1 == 24))
            .count();
        assert_eq!(own, MAX_PREFIX_FLOODS);
        let wide: Vec<&Planned> = p
            .iter()
            .filter(|x| matches!(x, Planned::Flood { prefix, .. } if prefix.1 < 24))
            .collect();
        assert_eq!(wide.len(), 1);
        assert!(matches!(wide[0], Planned::Flood { records, prefix }
            if records.len() == 2 * (40 - MAX_PREFIX_FLOODS)
                && *prefix == ("192.168.0.0".parse().unwrap(), 18)));
        assert_eq!(p.len(), 40 + MAX_PREFIX_FLOODS + 1);
        assert_eq!(p.iter().map(|x| x.records().len()).sum::<usize>(), 120);
        // The summary names at most max_prefixes prefixes and counts every record.
        let (total, _, top) = l.summary(10_000, 10_000).unwrap();
        assert_eq!((total, top.len()), (80, 30));
    }

    #[test]
    fn covering_networks() {
        let c = |net: &str, len: u8, ip: &str| {
            covering((net.parse().unwrap(), len), ip.parse().unwrap())
        };
        assert_eq!(
            c("10.0.200.1", 32, "10.1.43.1"),
            ("10.0.0.0".parse().unwrap(), 15)
        );
        assert_eq!(
            c("10.0.200.1", 32, "10.0.200.1"),
            ("10.0.200.1".parse().unwrap(), 32)
        );
        assert_eq!(
            c("10.0.0.0", 15, "10.0.0.9"),
            ("10.0.0.0".parse().unwrap(), 15)
        );
        assert_eq!(
            c("10.0.0.0", 8, "192.0.2.1"),
            ("0.0.0.0".parse().unwrap(), 0)
        );
        assert_eq!(
            c("2001:db8::1", 128, "2001:db8:3::1"),
            ("2001:db8::".parse().unwrap(), 46)
        );
        assert_eq!(c("::", 0, "2001:db8::1"), ("::".parse().unwrap(), 0));
        // Another family: unchanged (never mixed by `plan`).
        assert_eq!(
            c("10.0.0.0", 8, "2001:db8::1"),
            ("10.0.0.0".parse().unwrap(), 8)
        );
    }

    #[test]
    fn long_flood_alerts_are_cut_so_their_record_list_fits_the_lapi() {
        let mut l = Limiter::new(
            Limits {
                prefix_burst: 1,
                burst: 1,
                ..Limits::default()
            },
            0,
        );
        // Every other record number: ranges cannot merge, the list grows quickly.
        let batch: Vec<Numbered> = (0..1000u64)
            .map(|i| n(i * 2, &format!("192.0.2.{}", i % 250 + 1)))
            .collect();
        let p = l.plan(0, &batch);
        assert!(p.len() > 2, "{}", p.len());
        for a in &p {
            let seqs: Vec<u64> = a.records().iter().map(|r| r.seq).collect();
            assert!(seq_ranges(&seqs).len() <= MAX_RANGES_LEN);
        }
        assert_eq!(p.iter().map(|x| x.records().len()).sum::<usize>(), 1000);
    }

    #[test]
    fn gaps() {
        assert_eq!(gap_after(&[Planned::Single(n(1, "192.0.2.1"))]), MIN_GAP_MS);
        let f = Planned::Flood {
            prefix: ("192.0.2.0".parse().unwrap(), 24),
            records: vec![n(1, "192.0.2.1")],
        };
        assert_eq!(gap_after(&[f]), FLOOD_GAP_MS);
    }

    #[test]
    fn the_prefix_table_is_bounded() {
        let mut l = Limiter::new(
            Limits {
                max_prefixes: 8,
                ..Limits::default()
            },
            0,
        );
        let batch: Vec<Numbered> = (0..100u64).map(|i| n(i, &format!("10.0.{i}.1"))).collect();
        l.plan(0, &batch);
        assert!(l.prefixes.len() <= 8);
    }
}
