//! BLOCK_PREFIX_BUDGET: the blocks one source prefix (IPv4 /24, IPv6 /64, as for the report
//! limits) may cause, so that one forger cannot fill the route table, the nftables set or the
//! history (issue 24 item 5).
//!
//! Why per prefix. UDP sources (and SYN sources, where the network does not filter) are forged
//! at will within the forger's own network; a /64 holds 2^64 addresses, each a "new scanner".
//! Each prefix gets a token bucket of blocks: `burst` at once, then `per_minute`. Over it a
//! host is still reported (subject to the report limits) but not blocked and not recorded, and
//! its next hit is judged again. Other prefixes have their own buckets, so a real scanner from
//! another network is blocked as before; BLOCK_RATE_LIMIT (off by default) remains the cap over
//! all prefixes, for forgers that can claim any address.
//!
//! The evidence exception. A forged source shows one packet to one port (evidence score 2:
//! distinct ports plus hits, see [`super::Evidence`]); a real scanner shows more with every
//! probe. Over the budget a source is still blocked when its score is at least twice the
//! highest score of the sources blocked from its prefix since the prefix's bucket was last full
//! (the bar), and its score becomes the bar. So a real scanner inside a prefix the forger fills
//! with one-packet sources is blocked at its second probe to another port; and to keep
//! one from being blocked a forger must first have shown half its evidence from one address.
//! The exception is bounded too: each such block doubles the bar, so at most 31 are made per
//! episode (scores are u32), and the k-th costs the forger about 2^k packets from one address.
//! The bar is forgotten when the bucket is full again (the prefix was quiet for
//! burst/per_minute minutes).
//!
//! So, per prefix, what a forger can cause: `burst` blocks, then `per_minute` a minute, plus at
//! most 31 over an episode through the exception; the route table, the set and the history get
//! one entry per block, no more.
//!
//! Pure: time comes in as monotonic ms.

use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;

use super::event::Event;
use super::limits::{Bucket, Cap, prefix_of};

/// Prefixes named in the summary (the rest are counted together).
const SUMMARY_PREFIXES: usize = 3;

/// What the budget says about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Within the prefix's budget (or the budget is off).
    Within,
    /// Over the budget, but the source's evidence is at least twice the bar.
    Evidence,
    /// Over the budget: refused.
    Over,
}

#[derive(Debug, Clone, Copy)]
struct Prefix {
    bucket: Bucket,
    /// The highest evidence score blocked since the bucket was last full.
    bar: u32,
    last_seen: u64,
    /// Blocks refused since the last summary.
    refused: u64,
    /// Spending the budget was announced in this episode.
    announced: bool,
}

/// The per-prefix block budgets.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    /// (burst, per minute) the buckets were made for; None: off.
    key: Option<(u32, u32)>,
    prefixes: HashMap<IpAddr, Prefix>,
    max_prefixes: usize,
    refused: u64,
    refused_evicted: u64,
    last_summary: u64,
}

impl Budget {
    pub(super) fn new(max_prefixes: usize) -> Budget {
        Budget {
            key: None,
            prefixes: HashMap::new(),
            max_prefixes,
            refused: 0,
            refused_evicted: 0,
            last_summary: 0,
        }
    }

    /// May `ip`, with evidence `score`, be blocked at `now` under BLOCK_PREFIX_BUDGET `key`
    /// (burst, per minute; None: no budget)? Nothing is spent: [`Budget::spend`] does that
    /// when the block is made. A refusal is counted for the summary.
    pub(super) fn check(
        &mut self,
        now: u64,
        ip: IpAddr,
        score: u32,
        key: Option<(u32, u32)>,
    ) -> Answer {
        if key != self.key {
            // Off, or changed on a reload: start afresh.
            self.key = key;
            self.prefixes.clear();
        }
        if key.is_none() {
            return Answer::Within;
        }
        // A prefix not tracked has a full bucket: within its budget. It is only tracked from
        // its first block on ([`Budget::spend`]), so a flood of forged sources from new
        // prefixes, which are reported quietly and mostly not blocked, costs no insert each.
        let Some(p) = self.prefixes.get_mut(&prefix_of(ip).0) else {
            return Answer::Within;
        };
        p.last_seen = now;
        p.bucket.refill(now);
        if p.bucket.full() {
            p.bar = 0;
            p.announced = false;
        }
        if p.bucket.has() {
            Answer::Within
        } else if score >= p.bar.max(1).saturating_mul(2) && p.bar < u32::MAX / 2 {
            Answer::Evidence
        } else {
            p.refused += 1;
            self.refused += 1;
            Answer::Over
        }
    }

    /// A block of `ip` with evidence `score` starts (after [`Budget::check`] let it): spend a
    /// token (when there is one) and raise the bar.
    pub(super) fn spend(&mut self, now: u64, ip: IpAddr, score: u32) {
        let Some((burst, per_minute)) = self.key else {
            return;
        };
        let key = prefix_of(ip).0;
        if !self.prefixes.contains_key(&key) && self.prefixes.len() >= self.max_prefixes {
            self.evict(now);
        }
        let p = self.prefixes.entry(key).or_insert(Prefix {
            bucket: Bucket::new(burst, per_minute, 60_000, now),
            bar: 0,
            last_seen: now,
            refused: 0,
            announced: false,
        });
        if p.bucket.has() {
            p.bucket.spend();
        }
        p.bar = p.bar.max(score);
    }

    /// True the first time `ip`'s prefix is over its budget in an episode (it is announced
    /// then, once, not at every refusal).
    pub(super) fn announce(&mut self, ip: IpAddr) -> bool {
        self.prefixes
            .get_mut(&prefix_of(ip).0)
            .is_some_and(|p| !std::mem::replace(&mut p.announced, true))
    }

    /// Make room: drop prefixes whose bucket is full again (they behave as new ones); if none,
    /// the least recently seen eighth.
    fn evict(&mut self, now: u64) {
        self.refused_evicted += super::limits::evict_prefix_table(
            &mut self.prefixes,
            self.max_prefixes,
            |p| {
                p.bucket.refill(now);
                p.bucket.full()
            },
            |p| p.last_seen,
            |p| p.refused,
        );
    }

    /// How many prefixes are tracked.
    pub(super) fn tracked(&self) -> usize {
        self.prefixes.len()
    }

    /// The summary of the blocks refused since the last one, with the prefixes that lost the
    /// most, at most once per `interval_ms`; housekeeping of prefixes whose bucket is full.
    pub(super) fn summary(&mut self, now: u64, interval_ms: u64) -> Option<Event> {
        if self.refused == 0 || now.saturating_sub(self.last_summary) < interval_ms {
            return None;
        }
        let seconds = now.saturating_sub(self.last_summary).div_ceil(1000);
        self.last_summary = now;
        let mut top: Vec<(u64, IpAddr)> = self
            .prefixes
            .iter()
            .filter(|(_, p)| p.refused > 0)
            .map(|(k, p)| (p.refused, *k))
            .collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        let by_prefix = top
            .iter()
            .take(SUMMARY_PREFIXES)
            .map(|&(n, k)| (k, prefix_of(k).1, n))
            .collect();
        let others =
            top.iter().skip(SUMMARY_PREFIXES).map(|t| t.0).sum::<u64>() + self.refused_evicted;
        self.refused_evicted = 0;
        for p in self.prefixes.values_mut() {
            p.refused = 0;
        }
        self.expire(now);
        Some(Event::BudgetRefusals {
            count: std::mem::take(&mut self.refused),
            seconds,
            by_prefix,
            others,
        })
    }

    /// Housekeeping: a prefix whose bucket is full again and has nothing to summarise is
    /// dropped (it behaves as a new one).
    pub(super) fn expire(&mut self, now: u64) {
        self.prefixes.retain(|_, p| {
            p.bucket.refill(now);
            p.refused > 0 || !p.bucket.full()
        });
    }
}

/// BLOCK_LONE_BUDGET: the blocks of sources seen once (one packet to one port, below every
/// tier of the evidence lane, `super::limits::seen_once`: what every forged source shows),
/// over all prefixes.
///
/// Why. A flood from all of IPv4 or a large IPv6 range gives every packet a new source in a
/// prefix of its own, so BLOCK_PREFIX_BUDGET lets each be blocked: before this, 100,000-
/// 200,000 blocks a second under `hping3 --rand-source` (each a set element or a command, a
/// history and a blocked-file line), which made the daemon lose packets in its ring and, in
/// about half the runs of `tests/e2e_flood.rs` on a quiet machine, the real scanner with them.
/// Over this budget a source seen once is reported (within the report limits) but not
/// blocked, and judged again at its next probe, which shows more evidence (a score of 3 and
/// up: never counted here). What a forger can do with it: keep sources that send a single
/// packet from being blocked while its flood lasts (they are as forged-looking as its own);
/// not keep a scanner that probes twice from being blocked.
#[derive(Debug, Clone, Default)]
pub(super) struct Lone {
    cap: Cap,
    last_summary: u64,
}

impl Lone {
    /// May a source seen once be blocked at `now` under BLOCK_LONE_BUDGET `key`? Spends a
    /// token when it may (the block is made at once); counts a refusal when not.
    pub(super) fn take(&mut self, now: u64, key: Option<(u32, u32)>) -> bool {
        self.cap.take(now, key)
    }

    /// True the first time the budget is refused in an episode (announced once).
    pub(super) fn announce(&mut self) -> bool {
        self.cap.announce()
    }

    /// How many blocks it refused since the last summary, at most once per `interval_ms`.
    pub(super) fn summary(&mut self, now: u64, interval_ms: u64) -> Option<Event> {
        if self.cap.refused == 0 || now.saturating_sub(self.last_summary) < interval_ms {
            return None;
        }
        let seconds = now.saturating_sub(self.last_summary).div_ceil(1000);
        self.last_summary = now;
        Some(Event::LoneRefusals {
            count: std::mem::take(&mut self.cap.refused),
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_lone_budget_gives_its_burst_then_its_rate_and_announces_once() {
        let mut l = Lone::default();
        let key = Some((3, 60));
        assert_eq!((0..5).filter(|_| l.take(0, key)).count(), 3);
        assert!(l.announce());
        assert!(!l.announce(), "once per episode");
        // 60 a minute: one a second.
        assert!(!l.take(500, key));
        assert!(l.take(1000, key));
        assert!(!l.take(1000, key));
        let Some(Event::LoneRefusals { count, .. }) = l.summary(10_000, 10_000) else {
            panic!("no summary");
        };
        assert_eq!(count, 4);
        assert!(l.summary(10_001, 10_000).is_none());
        // Full again after 3 s of quiet: a new episode is announced again.
        assert!(l.take(4_000, key));
        assert!(l.announce());
        // Off: everything passes.
        assert!((0..100).all(|_| l.take(4_000, None)));
    }

    /// Check and, when allowed, spend: what `respond` does.
    fn block(b: &mut Budget, now: u64, a: &str, score: u32, key: (u32, u32)) -> Answer {
        let ans = b.check(now, ip(a), score, Some(key));
        if ans != Answer::Over {
            b.spend(now, ip(a), score);
        }
        ans
    }

    #[test]
    fn a_prefix_gets_its_burst_then_its_rate_and_other_prefixes_their_own() {
        let mut b = Budget::new(100);
        let key = (16, 4);
        let mut made = 0;
        for i in 0..3000u32 {
            let a = format!("2001:db8:1:2::{:x}", i + 1);
            if block(&mut b, 0, &a, 2, key) != Answer::Over {
                made += 1;
            }
        }
        assert_eq!(made, 16, "burst, and one-packet sources never pass the bar");
        // A real scanner elsewhere: blocked.
        assert_eq!(block(&mut b, 0, "2001:db8:9::1", 2, key), Answer::Within);
        assert_eq!(block(&mut b, 0, "192.0.2.1", 2, key), Answer::Within);
        // A minute on: 4 more from the flooded prefix, no more.
        let mut made = 0;
        for i in 0..3000u32 {
            let a = format!("2001:db8:1:2::1:{:x}", i + 1);
            if block(&mut b, 60_000, &a, 2, key) != Answer::Over {
                made += 1;
            }
        }
        assert_eq!(made, 4);
        let Some(Event::BudgetRefusals {
            count,
            seconds,
            by_prefix,
            others,
        }) = b.summary(60_000, 10_000)
        else {
            panic!("no summary")
        };
        assert_eq!((count, seconds, others), (3000 - 16 + 3000 - 4, 60, 0));
        assert_eq!(by_prefix, vec![(ip("2001:db8:1:2::"), 64, 5980)]);
        assert_eq!(b.summary(60_001, 10_000), None, "nothing new, not again");
    }

    #[test]
    fn over_the_budget_twice_the_evidence_is_blocked_and_doubles_the_bar() {
        let mut b = Budget::new(100);
        let key = (2, 1);
        assert_eq!(block(&mut b, 0, "198.51.100.1", 2, key), Answer::Within);
        assert_eq!(block(&mut b, 0, "198.51.100.2", 2, key), Answer::Within);
        assert_eq!(block(&mut b, 0, "198.51.100.3", 2, key), Answer::Over);
        assert_eq!(block(&mut b, 0, "198.51.100.4", 3, key), Answer::Over);
        // A real scanner's second probe, to another port: ports 2 + hits 2.
        assert_eq!(block(&mut b, 0, "198.51.100.5", 4, key), Answer::Evidence);
        assert_eq!(block(&mut b, 0, "198.51.100.6", 7, key), Answer::Over);
        assert_eq!(block(&mut b, 0, "198.51.100.6", 8, key), Answer::Evidence);
        // The exception is bounded: the bar doubles with each block.
        let mut extra = 0;
        let mut score = 16u32;
        loop {
            if block(&mut b, 0, "198.51.100.7", score, key) == Answer::Evidence {
                extra += 1;
            }
            if score == u32::MAX {
                break;
            }
            score = score.saturating_mul(2);
        }
        assert!(extra <= 29, "{extra}");
        assert_eq!(
            block(&mut b, 0, "198.51.100.8", u32::MAX, key),
            Answer::Over
        );
        // Once the bucket is full again (2 minutes), the bar is forgotten.
        assert_eq!(
            block(&mut b, 120_000, "198.51.100.9", 2, key),
            Answer::Within
        );
    }

    #[test]
    fn announced_once_per_episode_and_off_when_the_key_is_off() {
        let mut b = Budget::new(100);
        let key = (1, 1);
        assert_eq!(block(&mut b, 0, "192.0.2.1", 2, key), Answer::Within);
        assert_eq!(block(&mut b, 0, "192.0.2.2", 2, key), Answer::Over);
        assert!(b.announce(ip("192.0.2.2")));
        assert_eq!(block(&mut b, 1, "192.0.2.3", 2, key), Answer::Over);
        assert!(!b.announce(ip("192.0.2.3")));
        // Full again after a minute: a new episode.
        assert_eq!(block(&mut b, 60_000, "192.0.2.4", 2, key), Answer::Within);
        assert_eq!(block(&mut b, 60_000, "192.0.2.5", 2, key), Answer::Over);
        assert!(b.announce(ip("192.0.2.5")));
        for i in 0..1000 {
            assert_eq!(
                b.check(60_000, ip(&format!("192.0.2.{}", i % 250)), 2, None),
                Answer::Within
            );
        }
        assert_eq!(b.tracked(), 0);
    }

    #[test]
    fn the_prefix_table_is_bounded() {
        let mut b = Budget::new(64);
        for i in 0..10_000u32 {
            let a = IpAddr::V4((0x0a00_0000 + (i << 8)).into());
            let ans = b.check(u64::from(i), a, 2, Some((1, 1)));
            if ans != Answer::Over {
                b.spend(u64::from(i), a, 2);
            }
            assert!(b.tracked() <= 64);
        }
    }
}
