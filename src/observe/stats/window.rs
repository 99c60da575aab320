//! Heavy hitters of a sliding window: a ring of time slots (minutes of the last hour, hours of
//! the last day), each a bounded [`TopK`] table. Memory is `slots × capacity` keys whatever
//! the traffic; a query merges the slots still inside the window.
//!
//! What is exact and what is approximate: the window moves slot by slot, so "last hour" means
//! the current minute and the 59 before it (between 59 and 60 minutes), "last day" the current
//! hour and the 23 before it. Within that, counts are exact while no slot had to evict a key;
//! after that each count carries its error bound (see `topk::merge`).
//!
//! Time is an argument (seconds since the epoch). A clock set back simply clears the slots it
//! lands on again. Pure.

use std::hash::Hash;

use super::topk::{self, Counted, TopK};

#[derive(Debug, Clone)]
struct Slot<K: Eq + Hash + Clone> {
    /// Which slot of time (epoch seconds / span) this one holds; `i64::MIN` when unused.
    at: i64,
    table: TopK<K>,
}

/// A ring of `slots` time slots of `span` seconds each.
#[derive(Debug, Clone)]
pub struct Window<K: Eq + Hash + Clone> {
    span: i64,
    slots: Vec<Slot<K>>,
}

impl<K: Eq + Hash + Clone + Ord> Window<K> {
    /// `slots` slots of `span_seconds` each, `capacity` keys per slot.
    pub fn new(slots: usize, span_seconds: i64, capacity: usize) -> Window<K> {
        Window {
            span: span_seconds.max(1),
            slots: (0..slots.max(1))
                .map(|_| Slot {
                    at: i64::MIN,
                    table: TopK::new(capacity),
                })
                .collect(),
        }
    }

    fn index(&self, now: i64) -> (i64, usize) {
        let at = now.div_euclid(self.span);
        let n = self.slots.len() as i64;
        (at, at.rem_euclid(n) as usize)
    }

    /// The table of time `t`'s slot, emptied first if it held an older slot of time.
    fn table_for(&mut self, t: i64) -> Option<&mut TopK<K>> {
        let (at, i) = self.index(t);
        let slot = self.slots.get_mut(i)?;
        if slot.at != at {
            slot.table.clear();
            slot.at = at;
        }
        Some(&mut slot.table)
    }

    /// Count `n` of `key` at time `now`.
    pub fn add(&mut self, now: i64, key: &K, n: u64) {
        if let Some(t) = self.table_for(now) {
            t.add(key, n);
        }
    }

    /// Add everything `table` counted to the slot of time `t`.
    pub fn absorb(&mut self, t: i64, table: &TopK<K>) {
        if let Some(own) = self.table_for(t) {
            own.absorb(table);
        }
    }

    /// Empty the slot of time `t` if it holds that slot of time.
    pub fn clear_at(&mut self, t: i64) {
        let (at, i) = self.index(t);
        if let Some(slot) = self.slots.get_mut(i).filter(|s| s.at == at) {
            slot.table.clear();
        }
    }

    /// The table of the slot holding time `t`, if it holds that slot of time.
    pub fn table_at(&self, t: i64) -> Option<&TopK<K>> {
        let (at, i) = self.index(t);
        self.slots.get(i).filter(|s| s.at == at).map(|s| &s.table)
    }

    /// Is time `t` inside the window ending at `now`?
    pub fn covers(&self, now: i64, t: i64) -> bool {
        let (at, _) = self.index(now);
        let (t_at, _) = self.index(t);
        t_at <= at && t_at > at - self.slots.len() as i64
    }

    /// The `n` most counted keys of the window ending at `now`, with `extra` counted too.
    pub fn top_with(&self, now: i64, n: usize, extra: Option<&TopK<K>>) -> Vec<Counted<K>> {
        let (at, _) = self.index(now);
        let first = at - self.slots.len() as i64 + 1;
        topk::merge(
            self.slots
                .iter()
                .filter(|s| s.at >= first && s.at <= at)
                .map(|s| &s.table)
                .chain(extra),
            n,
        )
    }

    /// The `n` most counted keys of the window ending at `now`.
    pub fn top(&self, now: i64, n: usize) -> Vec<Counted<K>> {
        self.top_with(now, n, None)
    }

    /// Keys held over all slots (bounded by slots × capacity).
    pub fn held(&self) -> usize {
        self.slots.iter().map(|s| s.table.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hour_forgets_older_minutes() {
        let mut w: Window<u32> = Window::new(60, 60, 8);
        let t0 = 1_800_000_000; // a whole minute
        w.add(t0, &1, 5);
        w.add(t0 + 59 * 60, &2, 1);
        // At t0 + 59 min both are inside; one minute later the first has left.
        let keys = |v: Vec<Counted<u32>>| v.into_iter().map(|c| (c.key, c.count)).collect();
        let got: Vec<(u32, u64)> = keys(w.top(t0 + 59 * 60, 10));
        assert_eq!(got, vec![(1, 5), (2, 1)]);
        let got: Vec<(u32, u64)> = keys(w.top(t0 + 60 * 60, 10));
        assert_eq!(got, vec![(2, 1)]);
    }

    #[test]
    fn a_reused_slot_starts_empty() {
        let mut w: Window<u32> = Window::new(3, 10, 4);
        w.add(0, &7, 1);
        w.add(30, &8, 1); // same slot index as t=0, three spans later
        let got: Vec<u32> = w.top(30, 10).into_iter().map(|c| c.key).collect();
        assert_eq!(got, vec![8]);
    }

    #[test]
    fn a_clock_set_back_does_not_mix_in_the_future() {
        let mut w: Window<u32> = Window::new(60, 60, 4);
        w.add(10_000, &1, 1);
        w.add(100, &2, 1);
        let got: Vec<u32> = w.top(100, 10).into_iter().map(|c| c.key).collect();
        assert_eq!(got, vec![2]);
    }

    #[test]
    fn memory_stays_bounded_under_a_day_of_forged_sources() {
        let mut w: Window<u32> = Window::new(24, 3600, 32);
        for i in 0..100_000u32 {
            w.add(i64::from(i), &i, 1);
        }
        assert!(w.held() <= 24 * TopK::<u32>::new(32).capacity());
    }
}
