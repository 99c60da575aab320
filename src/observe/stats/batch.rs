//! The probes of one capture round counted at once ([`Stats::note_probes`]): the same counts
//! as [`Stats::note_probe`] for each, but each distinct source, prefix and port goes into
//! the top lists once, with its count. A flood repeats a few prefixes and ports (and, from
//! one prefix, a few hundred sources) thousands of times a round; each update of a list costs
//! two sketch updates (the hour's and the day's window), so one per key instead of one per
//! probe; measured with `examples/engine_flood.rs` (CPU time, best of 3, on this 2-core
//! machine at load 15), the `prefix4` flood's 923 ns per hit became 395; under `all4` (a new
//! source and prefix each packet, nothing to merge) 1,354 became 1,404, a loss within that
//! run's noise. Keys go in in the order they were first seen in the round, so the
//! lists do not depend on a hash order.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;

use foldhash::HashMap;

use super::{ProbeKind, Stats, Tops, prefix_of};
use crate::config::mode::{Mode, Proto};

/// One probe of a round: source, port, mode, kind.
pub type Probe = (IpAddr, u16, Mode, ProbeKind);

/// Distinct keys in first-seen order, with their counts.
#[derive(Debug, Clone)]
struct Tally<K> {
    at: HashMap<K, usize>,
    keys: Vec<(K, u64)>,
}

impl<K: Eq + Hash + Clone + Ord> Tally<K> {
    fn new(n: usize) -> Tally<K> {
        Tally {
            at: HashMap::with_capacity_and_hasher(n, Default::default()),
            keys: Vec::with_capacity(n),
        }
    }

    /// One hash and probe per key (a `get` then an `insert` cost two for every new key, and
    /// under a flood from all of IPv4 nearly every key is new: 10% of the daemon's CPU).
    fn note(&mut self, k: K) {
        let next = self.keys.len();
        match self.at.entry(k) {
            Entry::Occupied(e) => self.keys[*e.get()].1 += 1,
            Entry::Vacant(v) => {
                self.keys.push((v.key().clone(), 1));
                v.insert(next);
            }
        }
    }

    fn into_tops(self, now: i64, tops: &mut Tops<K>) {
        for (k, n) in &self.keys {
            tops.add(now, k, *n);
        }
    }
}

impl Stats {
    /// [`Stats::note_probe`] for each of `probes`, all at `now` (epoch seconds).
    pub fn note_probes(&mut self, now: i64, probes: &[Probe]) {
        if probes.is_empty() {
            return;
        }
        let mut sources = Tally::<IpAddr>::new(probes.len());
        let mut prefixes = Tally::<(IpAddr, u8)>::new(probes.len());
        let mut ports = Tally::<(Proto, u16)>::new(16);
        for &(src, port, mode, kind) in probes {
            let src = src.to_canonical();
            *self.probes.entry((mode, kind)).or_insert(0) += 1;
            sources.note(src);
            prefixes.note(prefix_of(src));
            // An ICMP probe has no port.
            if !kind.is_icmp() {
                ports.note((mode.proto(), port));
            }
        }
        sources.into_tops(now, &mut self.sources);
        prefixes.into_tops(now, &mut self.prefixes);
        ports.into_tops(now, &mut self.ports);
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
}
