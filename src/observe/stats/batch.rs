//! The probes of one capture round counted at once ([`Stats::note_probes`]): the same counts
//! as [`Stats::note_probe`] for each, but each distinct source, prefix and port goes into
//! the top lists once, with its count. A flood repeats a few prefixes and ports (and, from
//! one prefix, a few hundred sources) thousands of times a round; each update of a list costs
//! a sketch update (two, the hour's and the day's window, until the day's began to take the
//! hour's minutes whole: `tops.rs`), so one per key instead of one per probe; measured with
//! `examples/engine_flood.rs` (CPU time, best of 3, on this 2-core machine at load 15), the
//! `prefix4` flood's 923 ns per hit became 395; under `all4` (a new source and prefix each
//! packet, nothing to merge) 1,354 became 1,404, a loss within that run's noise. Keys go in
//! in the order they were first seen, so the lists do not depend on a hash order.
//!
//! A round whose sources repeat (fewer sources new to the carried tally than half its probes)
//! is carried over ([`Pending`]): merged with the next rounds of the same second, until the
//! second changes, more than [`PENDING_SOURCES`] distinct sources are carried, or a reader
//! asks (the snapshots flush first, so no view misses a probe). Under the `prefix4` flood a
//! round holds about 900 probes from the same 256 sources, and at 200 rounds a second the
//! lists took each of them 200 times a second: `engine_flood` 76 -> 36 ns per hit,
//! `bench/flood.py` 1.27-1.43 -> 1.09-1.25 s of daemon CPU (alternating, four runs each,
//! 2026-12-07). A round of new sources goes into the lists at once: carrying those too (every
//! round of an `all4` flood) cost the daemon 10% more CPU at 400,000 packets/s in
//! `bench/capture-rate.py` (its tallies grew past what the caches keep between rounds), where
//! `engine_flood` alone saw no difference. A single probe (a classic mode's connect) goes
//! straight into the lists: 276 -> 164 ns.
//!
//! A round is tallied straight into the carried tallies (emptied only when they go into the
//! lists), not into tallies of its own merged afterwards (a new table per round, and a second
//! hash per distinct key); a tally skips the hash when a key repeats the one before it (a
//! flood from one prefix: every probe's prefix), and the counts by mode and kind are taken by
//! runs. `engine_flood` prefix4 rounds 36 -> 20 ns per hit, all4 240-244 -> 224 (a round of
//! new sources gets room for all its keys at once, as before). In the daemon
//! (`bench/flood.py --only ours`, alternating with the build before, three runs each,
//! 2026-12-08): prefix4 0.91-0.96 -> 0.90-0.93 s at 01:08 UTC (a first version that kept
//! each tally's room after a flush: 0.98-1.00 -> 0.93-0.95 s at 00:38); all4 2.82-2.99
//! against 2.75-3.13 s. Both within the noise of the daemon's runs.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;

use foldhash::HashMap;

use super::{ProbeKind, Stats, Tops, prefix_of};
use crate::config::mode::{Mode, Proto};

/// One probe of a round: source, port, mode, kind.
pub type Probe = (IpAddr, u16, Mode, ProbeKind);

/// At most this many distinct sources are carried over from round to round.
pub const PENDING_SOURCES: usize = 1024;

/// Distinct keys in first-seen order, with their counts.
#[derive(Debug, Clone)]
struct Tally<K> {
    at: HashMap<K, usize>,
    keys: Vec<(K, u64)>,
    /// The index of the key noted last (a flood from one prefix repeats it probe after probe).
    last: usize,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            at: HashMap::default(),
            keys: Vec::new(),
            last: usize::MAX,
        }
    }
}

impl<K: Eq + Hash + Clone + Ord> Tally<K> {
    /// One hash and probe per key (a `get` then an `insert` cost two for every new key, and
    /// under a flood from all of IPv4 nearly every key is new: 10% of the daemon's CPU); none
    /// when it is the key noted last.
    fn note(&mut self, k: K, n: u64) {
        if let Some(e) = self.keys.get_mut(self.last)
            && e.0 == k
        {
            e.1 += n;
            return;
        }
        let next = self.keys.len();
        self.last = match self.at.entry(k) {
            Entry::Occupied(e) => {
                let i = *e.get();
                self.keys[i].1 += n;
                i
            }
            Entry::Vacant(v) => {
                self.keys.push((v.key().clone(), n));
                v.insert(next);
                next
            }
        };
    }

    /// Room for `n` more keys.
    fn reserve(&mut self, n: usize) {
        self.at.reserve(n);
        self.keys.reserve(n);
    }

    /// Into the lists at `now`; the tally is empty after.
    fn flush(&mut self, now: i64, tops: &mut Tops<K>) {
        for (k, n) in &self.keys {
            tops.add(now, k, *n);
        }
        *self = Tally::default();
    }
}

/// Rounds carried over, all in one second of the clock.
#[derive(Debug, Clone, Default)]
pub(super) struct Pending {
    second: i64,
    sources: Tally<IpAddr>,
    prefixes: Tally<(IpAddr, u8)>,
    ports: Tally<(Proto, u16)>,
}

/// A probe's keys for the lists: the source (IPv4-mapped IPv6 as IPv4) and the port (none
/// for an ICMP probe).
fn list_keys((src, port, mode, kind): Probe) -> (IpAddr, Option<(Proto, u16)>) {
    let port = (!kind.is_icmp()).then(|| (mode.proto(), port));
    (src.to_canonical(), port)
}

impl Stats {
    /// [`Stats::note_probe`] for each of `probes`, all at `now` (epoch seconds).
    pub fn note_probes(&mut self, now: i64, probes: &[Probe]) {
        if let [probe] = *probes {
            // One probe (a classic mode's connect): straight into the lists, after what
            // was carried (first-seen order).
            self.flush();
            let (src, port) = self.count_kind(probe);
            self.sources.add(now, &src, 1);
            self.prefixes.add(now, &prefix_of(src), 1);
            if let Some(port) = port {
                self.ports.add(now, &port, 1);
            }
            return;
        }
        if probes.is_empty() {
            return;
        }
        if self.pending.second != now {
            self.flush();
            self.pending.second = now;
        }
        let before = self.pending.sources.keys.len();
        if before == 0 {
            // Room for the round at once (not grown step by step): a round of new sources
            // is about as many keys as probes.
            let p = &mut self.pending;
            p.sources.reserve(probes.len());
            p.prefixes.reserve(probes.len());
            p.ports.reserve(16);
        }
        // A round's probes are nearly all of one mode and kind: counted by runs.
        let mut run: Option<((Mode, ProbeKind), u64)> = None;
        let p = &mut self.pending;
        for &(src, port, mode, kind) in probes {
            match &mut run {
                Some((k, n)) if *k == (mode, kind) => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace(((mode, kind), 1)) {
                        *self.probes.entry(k).or_insert(0) += n;
                    }
                }
            }
            let (src, port) = list_keys((src, port, mode, kind));
            p.sources.note(src, 1);
            p.prefixes.note(prefix_of(src), 1);
            if let Some(port) = port {
                p.ports.note(port, 1);
            }
        }
        if let Some((k, n)) = run {
            *self.probes.entry(k).or_insert(0) += n;
        }
        let new = self.pending.sources.keys.len() - before;
        if new * 2 >= probes.len() || self.pending.sources.keys.len() > PENDING_SOURCES {
            // Mostly new sources (nothing to merge with the next rounds), or enough carried.
            self.flush();
        }
    }

    /// Count a probe by its mode and kind; its keys for the lists ([`list_keys`]).
    fn count_kind(&mut self, probe: Probe) -> (IpAddr, Option<(Proto, u16)>) {
        let (_, _, mode, kind) = probe;
        *self.probes.entry((mode, kind)).or_insert(0) += 1;
        list_keys(probe)
    }

    /// The rounds carried over into the top lists.
    pub(super) fn flush(&mut self) {
        let p = &mut self.pending;
        // Every probe has a source: no sources, nothing carried.
        if p.sources.keys.is_empty() {
            return;
        }
        let now = p.second;
        p.sources.flush(now, &mut self.sources);
        p.prefixes.flush(now, &mut self.prefixes);
        p.ports.flush(now, &mut self.ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::stats::Identity;

    /// A round counted at once gives the status exactly what counting it probe by probe
    /// gives (while the lists hold every key: their counts are exact then).
    #[test]
    fn a_round_counts_as_its_probes_one_by_one() {
        let t = 1_796_043_600;
        let round: Vec<Probe> = (0..300u32)
            .map(|i| {
                let src = IpAddr::V4((0xc612_0700 + i % 7).into());
                let kind = if i % 50 == 0 {
                    ProbeKind::Fin
                } else {
                    ProbeKind::Syn
                };
                (src, [1, 11, 15][i as usize % 3], Mode::Stcp, kind)
            })
            .collect();
        let mut one = Stats::new(t, &[Mode::Stcp]);
        for &(src, port, mode, kind) in &round {
            one.note_probe(t + 5, src, port, mode, kind);
            // Read after each probe: a reader sees every probe counted so far.
            let _ = one.counters();
        }
        let mut batched = Stats::new(t, &[Mode::Stcp]);
        batched.note_probes(t + 5, &round);
        let (id, tz) = (Identity::default(), jiff::tz::TimeZone::UTC);
        let a = one.snapshot(t + 10, &id, &tz);
        let b = batched.snapshot(t + 10, &id, &tz);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.top_sources.len(), 7);
        assert_eq!(a.top_ports[0].count, 100);
        assert_eq!(one.counters(), batched.counters());
    }

    /// Probes of different seconds count in their own seconds, and a read sees the probes
    /// not flushed yet: the hour's list drops what is over an hour old, the day's keeps it.
    #[test]
    fn a_batch_counts_in_its_own_second_and_every_read_sees_it() {
        let t = 1_796_043_600;
        let old = IpAddr::V4([198, 18, 7, 1].into());
        let new = IpAddr::V4([198, 18, 8, 1].into());
        let mut s = Stats::new(t, &[Mode::Stcp]);
        s.note_probes(t + 1, &[(old, 1, Mode::Stcp, ProbeKind::Syn); 3]);
        assert_eq!(s.counters().probes, 3, "read before the second ends");
        s.note_probes(t + 1, &[(old, 11, Mode::Stcp, ProbeKind::Fin)]);
        s.note_probes(t + 3_601, &[(new, 1, Mode::Stcp, ProbeKind::Syn); 2]);
        let (id, tz) = (Identity::default(), jiff::tz::TimeZone::UTC);
        let snap = s.snapshot(t + 3_601, &id, &tz);
        let tops = |l: &[crate::observe::stats::snapshot::Top]| {
            l.iter()
                .map(|t| (t.value.clone(), t.count))
                .collect::<Vec<_>>()
        };
        assert_eq!(tops(&snap.top_sources), [("198.18.8.1".to_string(), 2)]);
        assert_eq!(
            tops(&snap.last_day.top_sources),
            [("198.18.7.1".to_string(), 4), ("198.18.8.1".to_string(), 2)]
        );
        assert_eq!(
            tops(&snap.last_day.top_prefixes),
            [
                ("198.18.7.0/24".to_string(), 4),
                ("198.18.8.0/24".to_string(), 2)
            ]
        );
        assert_eq!(s.counters().probes, 6);
    }

    /// Rounds whose sources repeat are carried over, never more than [`PENDING_SOURCES`]
    /// sources of them; a round of new sources is not carried at all.
    #[test]
    fn repeating_rounds_are_carried_in_bounded_batches_and_new_sources_are_not() {
        let t = 1_796_043_600;
        let mut s = Stats::new(t, &[Mode::Stcp]);
        let round = |base: u32, distinct: u32| -> Vec<Probe> {
            (0..900u32)
                .map(|i| {
                    let a = IpAddr::V4((base + i % distinct).into());
                    (a, 1, Mode::Stcp, ProbeKind::Syn)
                })
                .collect()
        };
        // From one /24: carried, merged.
        s.note_probes(t, &round(0xc612_0700, 256));
        assert_eq!(s.pending.sources.keys.len(), 256);
        s.note_probes(t, &round(0xc612_0700, 256));
        assert_eq!(s.pending.sources.keys.len(), 256);
        assert_eq!(s.pending.sources.keys[0].1, 8, "4 in each round");
        // From eight /24s, 400 each: never more than the bound carried.
        for b in 0..8u32 {
            s.note_probes(t, &round(0x0a00_0000 + (b << 8), 400));
            assert!(s.pending.sources.keys.len() <= PENDING_SOURCES);
        }
        // New sources: counted at once, nothing carried.
        for b in 0..4u32 {
            s.note_probes(t, &round(0x0b00_0000 + b * 1000, 900));
            assert!(s.pending.sources.keys.is_empty());
        }
        assert_eq!(s.counters().probes, 14 * 900);
        assert!(s.pending.sources.keys.is_empty(), "a read flushes");
    }
}
