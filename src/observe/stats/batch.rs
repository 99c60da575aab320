//! Probes are counted in a pending batch ([`Pending`]) and go into the top lists at once: each
//! distinct source, prefix and port once per flush, with its count. A flood repeats a few
//! prefixes and ports (and, from one prefix, a few hundred sources) thousands of times a
//! second; each update of a list costs two sketch updates (the hour's and the day's window),
//! so one per key instead of one per probe. Measured with `examples/engine_flood.rs` (CPU time,
//! best of 3, on this 2-core machine at load 15), the `prefix4` flood's 923 ns per hit became
//! 395 when a capture round was batched; under `all4` (a new source and prefix each packet,
//! nothing to merge) 1,354 became 1,404, a loss within that run's noise.
//!
//! The batch lives until the clock's second changes, [`PENDING_SOURCES`] distinct sources are
//! in it, or a reader asks (`Stats::snapshot`, `Stats::counters`, ...: each flushes first, so
//! no view ever misses a probe). Under the `prefix4` flood a round holds about 900 probes
//! from the same 256 sources, and at 200 rounds a second flushing every round put each of
//! those sources into the lists 200 times a second; prefixes are tallied from the sources at
//! the flush (a prefix's count is its sources' counts), not one more hash per probe. Keys
//! go in in the order they were first seen, so the lists do not depend on a hash order.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;

use foldhash::HashMap;

use super::{ProbeKind, Stats, Tops, prefix_of};
use crate::config::mode::{Mode, Proto};

/// One probe of a round: source, port, mode, kind.
pub type Probe = (IpAddr, u16, Mode, ProbeKind);

/// A batch is flushed when it holds this many distinct sources (under a flood from all of
/// IPv4 every probe is a new one: the batch's memory stays bounded, and a source seen once
/// costs the lists what it cost when every round was flushed).
pub const PENDING_SOURCES: usize = 4096;

/// Distinct keys in first-seen order, with their counts.
#[derive(Debug, Clone)]
struct Tally<K> {
    at: HashMap<K, usize>,
    keys: Vec<(K, u64)>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            at: HashMap::default(),
            keys: Vec::new(),
        }
    }
}

impl<K: Eq + Hash + Clone + Ord> Tally<K> {
    /// One hash and probe per key (a `get` then an `insert` cost two for every new key, and
    /// under a flood from all of IPv4 nearly every key is new: 10% of the daemon's CPU).
    fn note(&mut self, k: K, n: u64) {
        let next = self.keys.len();
        match self.at.entry(k) {
            Entry::Occupied(e) => self.keys[*e.get()].1 += n,
            Entry::Vacant(v) => {
                self.keys.push((v.key().clone(), n));
                v.insert(next);
            }
        }
    }

    /// Into the lists at `now`; the tally is empty after (its memory kept for the next).
    fn flush(&mut self, now: i64, tops: &mut Tops<K>) {
        for (k, n) in &self.keys {
            tops.add(now, k, *n);
        }
        self.keys.clear();
        self.at.clear();
    }
}

/// The probes counted since the last flush, all in one second of the clock.
#[derive(Debug, Clone, Default)]
pub(super) struct Pending {
    second: i64,
    kinds: Vec<((Mode, ProbeKind), u64)>,
    sources: Tally<IpAddr>,
    prefixes: Tally<(IpAddr, u8)>,
    ports: Tally<(Proto, u16)>,
}

impl Pending {
    fn kind(&mut self, k: (Mode, ProbeKind)) {
        match self.kinds.iter_mut().find(|(x, _)| *x == k) {
            Some((_, n)) => *n += 1,
            None => self.kinds.push((k, 1)),
        }
    }
}

impl Stats {
    /// [`Stats::note_probe`] for each of `probes`, all at `now` (epoch seconds).
    pub fn note_probes(&mut self, now: i64, probes: &[Probe]) {
        if probes.is_empty() {
            return;
        }
        if self.pending.second != now || self.pending.sources.keys.len() >= PENDING_SOURCES {
            self.flush();
            self.pending.second = now;
        }
        let p = &mut self.pending;
        for &(src, port, mode, kind) in probes {
            p.kind((mode, kind));
            p.sources.note(src.to_canonical(), 1);
            // An ICMP probe has no port.
            if !kind.is_icmp() {
                p.ports.note((mode.proto(), port), 1);
            }
        }
    }

    /// The pending batch into the counters and the top lists.
    pub(super) fn flush(&mut self) {
        let p = &mut self.pending;
        let now = p.second;
        for (k, n) in p.kinds.drain(..) {
            *self.probes.entry(k).or_insert(0) += n;
        }
        for &(src, n) in &p.sources.keys {
            p.prefixes.note(prefix_of(src), n);
        }
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

    /// A batch never holds more than [`PENDING_SOURCES`] distinct sources past a call.
    #[test]
    fn a_flood_of_new_sources_is_flushed_in_bounded_batches() {
        let t = 1_796_043_600;
        let mut s = Stats::new(t, &[Mode::Stcp]);
        for round in 0..10u32 {
            let probes: Vec<Probe> = (0..1000u32)
                .map(|i| {
                    let a = IpAddr::V4((0x0a00_0000 + round * 1000 + i).into());
                    (a, 1, Mode::Stcp, ProbeKind::Syn)
                })
                .collect();
            s.note_probes(t, &probes);
            assert!(s.pending.sources.keys.len() < PENDING_SOURCES + 1000);
        }
        assert_eq!(s.counters().probes, 10_000);
        assert!(s.pending.sources.keys.is_empty());
    }
}
