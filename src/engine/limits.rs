//! The limits that keep a flood of forged sources from filling the disk, silencing a real scan
//! or making the host block without end: token buckets for reports (per source prefix, global,
//! and a reserve for quiet prefixes), the evidence lane that lets a source with more evidence
//! through when those are spent (issue 23), BLOCK_RATE_LIMIT, and the periodic summaries of
//! what they held back.
//!
//! The evidence lane. A forged source sends one packet to one port; a real scanner sends many,
//! to many ports. Over the buckets above, a report still goes out when its source has shown
//! more [`Evidence`] (distinct ports plus packets in the trigger window) than the sources that
//! spent the lane: the lane is a ladder of small buckets, one per evidence tier
//! ([`EVIDENCE_TIERS`]); a report of score `s` needs a token in the highest tier at or below
//! `s` and spends one in that tier and in every tier below it. So forged one-packet sources
//! (score 2) never reach the lane at all, and to keep a source of score `s` out of the log a
//! forger must itself send, in every refill period, `TIER_BURST` reports from sources of at
//! least that tier's score. A report held back is not lost: its host stays owed a report and
//! is judged again, with its evidence grown, on its next hit.

use foldhash::{HashMap, HashMapExt};
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::event::Event;

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
    /// Reports (log lines and file lines about a hit) allowed in a burst, over all hosts: a
    /// flood of forged sources cannot fill the disk.
    pub report_burst: u32,
    /// Reports per second after the burst, over all hosts.
    pub reports_per_sec: u32,
    /// Reports per source prefix (IPv4 /24, IPv6 /64): burst.
    pub prefix_burst: u32,
    /// Reports per source prefix: per second after the burst.
    pub prefix_per_sec: u32,
    /// At most this many prefixes tracked for their buckets.
    pub max_prefixes: usize,
    /// The reserve for prefixes that have not reported recently, used when the global
    /// bucket is empty: burst.
    pub reserve_burst: u32,
    /// The reserve: per second after its burst.
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

/// Prefixes named in the rate-limit summary (the rest are counted together).
const SUMMARY_PREFIXES: usize = 3;

/// What a source has shown in the trigger window: the distinct ports it hit (counted exactly
/// up to [`Evidence::PORTS_CAP`]) and its hits (packets, connects).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Distinct ports hit (at most [`Evidence::PORTS_CAP`]).
    pub ports: u32,
    /// Hits.
    pub hits: u32,
}

impl Evidence {
    /// Distinct ports are counted up to this many (beyond it, hits still count).
    pub const PORTS_CAP: u32 = 16;

    /// The score the lane compares: distinct ports plus hits (so a new port counts twice a
    /// repeat). One forged packet: 2.
    pub fn score(self) -> u32 {
        self.ports.saturating_add(self.hits)
    }
}

/// The evidence lane's tiers: the lowest score of each. A score of 2 (one packet to one port,
/// which is all a forged source usually sends) is below every tier.
pub const EVIDENCE_TIERS: [u32; 12] = [3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1024];
/// Each tier's bucket: a burst of this many reports...
pub const TIER_BURST: u32 = 10;
/// ...then one per this many ms.
pub const TIER_REFILL_MS: u64 = 1_000;

/// The tier of a score (an index into [`EVIDENCE_TIERS`]); None below the first.
fn tier_of(score: u32) -> Option<usize> {
    EVIDENCE_TIERS.iter().rposition(|&t| t <= score)
}

/// A source seen once: its score is below every tier of the lane (one packet to one port,
/// what a forged source shows). BLOCK_LONE_BUDGET counts these, and they are the first
/// blocks a full set gives up (`engine::blocks`).
pub(super) fn seen_once(score: u32) -> bool {
    tier_of(score).is_none()
}

/// How the report limits answered, for the counters (`portsentry status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the buckets.
    Allowed,
    /// Over the buckets, through the evidence lane.
    Evidence,
    /// Held back: its prefix's bucket was empty.
    OverPrefix,
    /// Held back: the global bucket and the reserve were empty.
    OverGlobal,
}

impl Admission {
    /// The report goes to the log.
    pub fn allowed(self) -> bool {
        matches!(self, Admission::Allowed | Admission::Evidence)
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` tokens per `period_ms`. Kept in
/// units of 1/`period_ms` token, so a refill is exact integer arithmetic per ms. (Also the
/// fleet's alert limits, `fleet::limit`.)
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    units: u64,
    cap: u64,
    rate: u64,
    period_ms: u64,
    last: u64,
}

impl Bucket {
    /// Full at `now`: `burst` tokens, `rate` more per `period_ms`.
    pub fn new(burst: u32, rate: u32, period_ms: u64, now: u64) -> Bucket {
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

    /// Full at `now`: `burst` tokens, `per_sec` more per second.
    pub fn per_sec(burst: u32, per_sec: u32, now: u64) -> Bucket {
        Bucket::new(burst, per_sec, 1000, now)
    }

    /// Add the tokens earned since the last refill (never past `burst`).
    pub fn refill(&mut self, now: u64) {
        let dt = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        // `rate` tokens per period = `rate` units per ms.
        self.units = self
            .units
            .saturating_add(dt.saturating_mul(self.rate))
            .min(self.cap);
    }

    /// Holds `burst` tokens.
    pub fn full(&self) -> bool {
        self.units >= self.cap
    }

    /// Holds a token.
    pub fn has(&self) -> bool {
        self.units >= self.period_ms
    }

    /// Spend a token (check [`Bucket::has`] first).
    pub fn spend(&mut self) {
        self.units = self.units.saturating_sub(self.period_ms);
    }

    /// Refill, then spend a token if there is one.
    pub fn take(&mut self, now: u64) -> bool {
        self.refill(now);
        let ok = self.has();
        if ok {
            self.spend();
        }
        ok
    }
}

/// A cap over all sources: a token bucket of `burst` blocks, then `per_minute` (BLOCK_RATE_LIMIT,
/// BLOCK_LONE_BUDGET), rebuilt when its key changes (a reload). Reaching it starts an episode,
/// announced once: again only after the bucket has fully recovered, so a sustained flood is
/// announced once, not at every freed token. Refusals are counted for a summary.
#[derive(Debug, Clone, Default)]
pub(super) struct Cap {
    bucket: Option<((u32, u32), Bucket)>,
    announced: bool,
    /// Refused since the last summary.
    pub(super) refused: u64,
}

impl Cap {
    /// May one more block start at `now` under `key` (burst, per minute; None: no cap)?
    /// Spends a token when it may; counts a refusal when not.
    pub(super) fn take(&mut self, now: u64, key: Option<(u32, u32)>) -> bool {
        let Some((burst, per_minute)) = key else {
            self.bucket = None;
            return true;
        };
        let b = match &mut self.bucket {
            Some((k, b)) if *k == (burst, per_minute) => b,
            slot => {
                &mut slot
                    .insert((
                        (burst, per_minute),
                        Bucket::new(burst, per_minute, 60_000, now),
                    ))
                    .1
            }
        };
        b.refill(now);
        if b.full() {
            self.announced = false;
        }
        if b.has() {
            b.spend();
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// True the first time the cap refuses in an episode (it is announced then).
    pub(super) fn announce(&mut self) -> bool {
        !std::mem::replace(&mut self.announced, true)
    }
}

/// Source prefixes seen once while the global report buckets were empty (their report
/// counted in the summary's "other prefixes"), not tracked in the prefix table: a flood from
/// all of IPv4 or a large IPv6 range brings a new prefix with nearly every packet, and
/// tracking each cost a table insert and its share of the evictions that follow (measured:
/// 13% of the daemon's CPU in such a flood at 400,000 packets a second). A prefix seen again
/// while its note is there is tracked, its first report moved back to it, so the summary
/// still names the prefixes a flood came from. Direct-mapped by the table's seeded hash
/// (forged sources cannot choose their slot); a note overwritten by another prefix leaves
/// its report with "other prefixes", as an eviction from the table does. Cleared with each
/// summary, whose counts its notes refer to.
#[derive(Debug, Clone)]
struct Glimpsed {
    slots: Vec<Option<IpAddr>>,
}

impl Glimpsed {
    /// 4,096 slots: 72 KiB.
    const SLOTS: usize = 4096;

    fn new() -> Glimpsed {
        Glimpsed {
            slots: vec![None; Self::SLOTS],
        }
    }

    fn at(&mut self, hash: u64) -> &mut Option<IpAddr> {
        &mut self.slots[hash as usize % Self::SLOTS]
    }

    /// Was `key` noted (at its slot)? The note is taken.
    fn take(&mut self, hash: u64, key: IpAddr) -> bool {
        let slot = self.at(hash);
        if *slot == Some(key) {
            *slot = None;
            true
        } else {
            false
        }
    }

    fn note(&mut self, hash: u64, key: IpAddr) {
        *self.at(hash) = Some(key);
    }

    fn clear(&mut self) {
        self.slots.fill(None);
    }
}

#[derive(Debug, Clone, Copy)]
struct PrefixState {
    bucket: Bucket,
    last_seen: u64,
    /// Reports from this prefix suppressed since the last summary.
    quiet: u64,
}

/// The report buckets, BLOCK_RATE_LIMIT, and what they held back since the last summary.
#[derive(Debug, Clone)]
pub(super) struct RateLimits {
    limits: Limits,
    reports: Bucket,
    /// Report buckets per source prefix (bounded by `max_prefixes`).
    prefixes: HashMap<IpAddr, PrefixState>,
    /// Prefixes seen once, while the global buckets were empty, and not tracked: see
    /// [`Glimpsed`].
    glimpsed: Glimpsed,
    reserve: Bucket,
    /// The evidence lane, one bucket per tier of [`EVIDENCE_TIERS`].
    tiers: [Bucket; EVIDENCE_TIERS.len()],
    /// Reports suppressed since the last summary: in all, and those of prefixes dropped
    /// from the table since (no longer attributable).
    quiet: u64,
    quiet_evicted: u64,
    last_summary: u64,
    /// BLOCK_RATE_LIMIT.
    cap: Cap,
    /// Blocks of reports over the limits that the executor's full flood queue dropped since
    /// the last summary.
    shed: u64,
    /// Blocks unblocked to make room for sources whose reports were held back, since the
    /// last summary.
    evicted: u64,
}

impl RateLimits {
    pub(super) fn new(limits: Limits) -> RateLimits {
        RateLimits {
            limits,
            reports: Bucket::per_sec(limits.report_burst, limits.reports_per_sec, 0),
            prefixes: HashMap::new(),
            glimpsed: Glimpsed::new(),
            reserve: Bucket::per_sec(limits.reserve_burst, limits.reserve_per_sec, 0),
            tiers: [Bucket::new(TIER_BURST, 1, TIER_REFILL_MS, 0); EVIDENCE_TIERS.len()],
            quiet: 0,
            quiet_evicted: 0,
            last_summary: 0,
            cap: Cap::default(),
            shed: 0,
            evicted: 0,
        }
    }

    /// How many source prefixes are tracked for their report buckets.
    pub(super) fn tracked_prefixes(&self) -> usize {
        self.prefixes.len()
    }

    /// May a report about `src`, whose source has shown `evidence`, be logged at `now`? Its
    /// prefix must have a token, and the global bucket too, or, when that is empty, the
    /// reserve if the prefix has not reported recently; over those, the evidence lane (see the
    /// module docs). A suppressed report is counted against its prefix for the summary.
    pub(super) fn admit(&mut self, now: u64, src: IpAddr, evidence: Evidence) -> Admission {
        let limits = self.limits;
        let (key, _) = prefix_of(src);
        // A tracked prefix (every hit of a flood from one prefix) is found with one lookup.
        let p = match self.prefixes.get_mut(&key) {
            Some(p) => p,
            None => {
                let carried = match self.first_sighting(now, key, evidence) {
                    Ok(carried) => carried,
                    Err(answer) => return answer,
                };
                let p = track(
                    &mut self.prefixes,
                    &mut self.quiet_evicted,
                    limits,
                    now,
                    key,
                );
                p.quiet += carried;
                p
            }
        };
        p.bucket.refill(now);
        p.last_seen = now;
        let fresh = p.bucket.full();
        let answer = if !p.bucket.has() {
            Admission::OverPrefix
        } else if self.reports.take(now) || (fresh && self.reserve.take(now)) {
            p.bucket.spend();
            Admission::Allowed
        } else {
            Admission::OverGlobal
        };
        if answer.allowed() {
            return answer;
        }
        if evidence_lane(&mut self.tiers, now, evidence) {
            return Admission::Evidence;
        }
        p.quiet += 1;
        self.quiet += 1;
        answer
    }

    /// A report of the untracked prefix `key`. Both global buckets empty: a new prefix's
    /// full bucket cannot let the report out, so its entry would only carry this suppressed
    /// report to the summary (and be the first dropped when the table is full). The first
    /// sighting is noted instead (Err: the answer, through the evidence lane or over the
    /// global buckets); a second one tracks the prefix. Ok: the reports to move to the
    /// prefix when it is tracked (1: its first one, counted in "other prefixes").
    fn first_sighting(
        &mut self,
        now: u64,
        key: IpAddr,
        evidence: Evidence,
    ) -> Result<u64, Admission> {
        self.reports.refill(now);
        self.reserve.refill(now);
        if self.reports.has() || self.reserve.has() {
            return Ok(0);
        }
        let slot = self.prefixes.hasher().hash_one(key);
        if self.glimpsed.take(slot, key) {
            // Its first report went to "other prefixes": it is its prefix's again.
            self.quiet_evicted = self.quiet_evicted.saturating_sub(1);
            return Ok(1);
        }
        if evidence_lane(&mut self.tiers, now, evidence) {
            return Err(Admission::Evidence);
        }
        self.glimpsed.note(slot, key);
        self.quiet += 1;
        self.quiet_evicted += 1;
        Err(Admission::OverGlobal)
    }

    /// BLOCK_RATE_LIMIT (blocks per minute, 0: no cap): may one more block start at `now`?
    /// A refusal is counted for the summary.
    pub(super) fn block_allowed(&mut self, now: u64, per_minute: u32) -> bool {
        self.cap
            .take(now, (per_minute > 0).then_some((per_minute, per_minute)))
    }

    /// The executor dropped a quiet block: its flood queue was full.
    pub(super) fn note_shed(&mut self) {
        self.shed += 1;
    }

    /// A block was unblocked to make room for a source whose report was held back.
    pub(super) fn note_quiet_eviction(&mut self) {
        self.evicted += 1;
    }

    /// True the first time the cap is reached in an episode (it is announced then).
    pub(super) fn announce_cap(&mut self) -> bool {
        self.cap.announce()
    }

    /// The summaries of what the report limits suppressed (with the prefixes that lost the
    /// most) and of the blocks BLOCK_RATE_LIMIT refused, at most once per interval.
    pub(super) fn summaries(&mut self, now: u64) -> Vec<Event> {
        let mut out = Vec::new();
        if (self.quiet == 0 && self.cap.refused == 0 && self.shed == 0 && self.evicted == 0)
            || now.saturating_sub(self.last_summary) < self.limits.summary_interval_ms
        {
            return out;
        }
        let seconds = now.saturating_sub(self.last_summary).div_ceil(1000);
        self.last_summary = now;
        if self.quiet > 0 {
            let mut top: Vec<(u64, IpAddr)> = self
                .prefixes
                .iter()
                .filter(|(_, p)| p.quiet > 0)
                .map(|(k, p)| (p.quiet, *k))
                .collect();
            top.sort_unstable_by(|a, b| b.cmp(a));
            let by_prefix: Vec<(IpAddr, u8, u64)> = top
                .iter()
                .take(SUMMARY_PREFIXES)
                .map(|&(n, k)| (k, prefix_of(k).1, n))
                .collect();
            let others =
                top.iter().skip(SUMMARY_PREFIXES).map(|t| t.0).sum::<u64>() + self.quiet_evicted;
            out.push(Event::ReportsSuppressed {
                count: std::mem::take(&mut self.quiet),
                seconds,
                by_prefix,
                others,
            });
            self.quiet_evicted = 0;
            self.glimpsed.clear();
        }
        if self.cap.refused > 0 {
            out.push(Event::BlocksRefused {
                count: std::mem::take(&mut self.cap.refused),
                seconds,
            });
        }
        if self.shed > 0 {
            out.push(Event::BlocksShed {
                count: std::mem::take(&mut self.shed),
                seconds,
            });
        }
        if self.evicted > 0 {
            out.push(Event::QuietEvictions {
                count: std::mem::take(&mut self.evicted),
                seconds,
            });
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

    /// Housekeeping: a prefix whose bucket is full again and has nothing to report behaves
    /// as a new one, so it is dropped.
    pub(super) fn expire(&mut self, now: u64) {
        self.prefixes.retain(|_, p| {
            p.bucket.refill(now);
            p.quiet > 0 || !p.bucket.full()
        });
    }
}

/// The evidence lane: a token in the report's own tier, then one spent in each tier at or
/// below it (so the lane as a whole is bounded by its tiers' buckets). True: the report goes.
fn evidence_lane(tiers: &mut [Bucket], now: u64, evidence: Evidence) -> bool {
    let Some(t) = tier_of(evidence.score()) else {
        return false;
    };
    tiers[t].refill(now);
    if !tiers[t].has() {
        return false;
    }
    for b in &mut tiers[..=t] {
        b.refill(now);
        if b.has() {
            b.spend();
        }
    }
    true
}

/// The report state of the prefix `key`, tracked from `now` if it was not. A full table makes
/// room first: prefixes whose bucket has refilled (they behave as new ones) go, then if
/// needed the least recently seen eighth; their suppressed counts go to `evicted`, "other
/// prefixes" in the next summary.
fn track<'a>(
    prefixes: &'a mut HashMap<IpAddr, PrefixState>,
    evicted: &mut u64,
    limits: Limits,
    now: u64,
    key: IpAddr,
) -> &'a mut PrefixState {
    if prefixes.len() >= limits.max_prefixes && !prefixes.contains_key(&key) {
        *evicted += evict_prefix_table(
            prefixes,
            limits.max_prefixes,
            |p| {
                p.bucket.refill(now);
                p.bucket.full()
            },
            |p| p.last_seen,
            |p| p.quiet,
        );
    }
    prefixes.entry(key).or_insert_with(|| PrefixState {
        bucket: Bucket::per_sec(limits.prefix_burst, limits.prefix_per_sec, now),
        last_seen: now,
        quiet: 0,
    })
}

/// The eviction of a table of source prefixes, shared by the report limits and the block
/// budget: drop the prefixes `idle` says behave as new ones; then, if that left less than an
/// eighth of `max` free, the least recently seen until an eighth is. Returns the sum of
/// `lost` over the dropped ones.
///
/// Each pass reads the whole table, so each must make room for many inserts. Before, a pass
/// that found any idle prefix dropped only those: with new prefixes arriving at the rate
/// that fills the table in about the time a bucket takes to refill (16,384 block-budget
/// prefixes, one token back in 15 s: ~1,092 new prefixes a second), each pass found a
/// handful and nearly every insert paid a pass over the whole table: 13.4 us per new prefix
/// at 1,092/s against 0.17-0.2 us at 1,000 or 1,100/s (a release-build loop of
/// `Budget::check`/`spend`, 2026-12-07). Now a pass runs at most once per `max / 8` new
/// prefixes, whatever the rate: 0.17-0.2 us at every rate tried. (Under the fast floods of
/// `tests/e2e_flood.rs` no bucket refills in time and the eighth was already dropped: no
/// change there.)
pub(super) fn evict_prefix_table<P>(
    table: &mut HashMap<IpAddr, P>,
    max: usize,
    mut idle: impl FnMut(&mut P) -> bool,
    last_seen: impl Fn(&P) -> u64,
    lost: impl Fn(&P) -> u64,
) -> u64 {
    let mut gone = 0;
    table.retain(|_, p| {
        let keep = !idle(p);
        if !keep {
            gone += lost(p);
        }
        keep
    });
    // At most this many stay: an eighth free (at least one slot for a small table).
    let keep = (max - max / 8).min(max.saturating_sub(1));
    if table.len() > keep {
        let mut seen: Vec<u64> = table.values().map(&last_seen).collect();
        let k = seen.len() - keep;
        let (_, cut, _) = seen.select_nth_unstable(k - 1);
        let cut = *cut;
        table.retain(|_, p| {
            let keep = last_seen(p) > cut;
            if !keep {
                gone += lost(p);
            }
            keep
        });
    }
    gone
}

#[cfg(test)]
mod eviction_tests {
    use super::*;
    use foldhash::HashMapExt;

    /// (last seen, idle) per prefix.
    fn table(n: u64, idle_every: u64) -> HashMap<IpAddr, (u64, bool)> {
        let mut t = HashMap::new();
        for i in 0..n {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            t.insert(ip, (i, idle_every != 0 && i % idle_every == 0));
        }
        t
    }

    fn evict(t: &mut HashMap<IpAddr, (u64, bool)>, max: usize) -> u64 {
        evict_prefix_table(t, max, |p| p.1, |p| p.0, |_| 1)
    }

    #[test]
    fn a_pass_that_finds_few_idle_prefixes_still_makes_room_for_an_eighth() {
        // 16,384 prefixes, 3 of them idle: dropping only those made the next three new
        // prefixes pass over the whole table again.
        let mut t = table(16_384, 6_000);
        let gone = evict(&mut t, 16_384);
        assert_eq!(t.len(), 16_384 - 2_048);
        assert_eq!(gone, 2_048);
        assert!(t.values().all(|p| !p.1), "the idle ones go first");
        // The least recently seen went: everything kept was seen after everything dropped.
        assert!(t.values().all(|p| p.0 >= 2_048 - 3));
    }

    #[test]
    fn idle_prefixes_beyond_an_eighth_are_all_dropped_and_nothing_else() {
        let mut t = table(16_384, 4);
        let gone = evict(&mut t, 16_384);
        assert_eq!(gone, 4_096);
        assert_eq!(t.len(), 16_384 - 4_096);
    }

    #[test]
    fn a_tiny_table_frees_a_slot() {
        let mut t = table(3, 0);
        evict(&mut t, 3);
        assert_eq!(t.len(), 2);
        assert!(t.values().all(|p| p.0 >= 1));
    }
}
