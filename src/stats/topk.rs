//! A bounded heavy-hitter table: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi,
//! "Efficient computation of frequent and top-k elements in data streams", ICDT 2005).
//!
//! It holds at most `capacity` keys. A key already present is counted exactly; a new key in a
//! full table takes the place of the key with the smallest count and inherits that count as
//! its possible over-count (`error`). So memory never grows with the number of distinct keys
//! (a flood of forged sources costs nothing more than `capacity` entries), and:
//!
//! * while the table never had to evict (`evicted() == 0`), every count is exact;
//! * otherwise each listed count is at most `error` above the true one, and a key that is not
//!   listed was seen at most `min_count()` times. Any key seen more than `total / capacity`
//!   times is always listed.
//!
//! Pure: no I/O, no clock.

use std::collections::HashMap;
use std::hash::Hash;

/// One counted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted<K> {
    pub key: K,
    /// Estimated count: the true count plus at most `error`.
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact).
    pub error: u64,
}

/// Space-Saving table of at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct TopK<K: Eq + Hash + Clone> {
    capacity: usize,
    index: HashMap<K, usize>,
    entries: Vec<Counted<K>>,
    evicted: u64,
    total: u64,
}

impl<K: Eq + Hash + Clone> TopK<K> {
    /// A table of at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> TopK<K> {
        let capacity = capacity.max(1);
        TopK {
            capacity,
            index: HashMap::with_capacity(capacity),
            entries: Vec::with_capacity(capacity),
            evicted: 0,
            total: 0,
        }
    }

    /// Count `n` more of `key`.
    pub fn add(&mut self, key: &K, n: u64) {
        self.total = self.total.saturating_add(n);
        if let Some(&i) = self.index.get(key) {
            if let Some(e) = self.entries.get_mut(i) {
                e.count = e.count.saturating_add(n);
            }
            return;
        }
        if self.entries.len() < self.capacity {
            self.index.insert(key.clone(), self.entries.len());
            self.entries.push(Counted {
                key: key.clone(),
                count: n,
                error: 0,
            });
            return;
        }
        // Full: the new key replaces the smallest. A linear scan: the tables here are small
        // (tens to a few thousand keys), and a scan touches one contiguous vector.
        let Some((i, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.count) else {
            return;
        };
        self.evicted += 1;
        if let Some(e) = self.entries.get_mut(i) {
            self.index.remove(&e.key);
            let min = e.count;
            *e = Counted {
                key: key.clone(),
                count: min.saturating_add(n),
                error: min,
            };
        }
        self.index.insert(key.clone(), i);
    }

    /// Keys evicted so far (0: all counts are exact).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The sum of everything counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Keys held (never more than the capacity).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most a key that is not listed can have been seen: 0 until the table is full.
    pub fn min_count(&self) -> u64 {
        if self.entries.len() < self.capacity {
            0
        } else {
            self.entries.iter().map(|e| e.count).min().unwrap_or(0)
        }
    }

    /// Every held entry, in no particular order.
    pub fn entries(&self) -> &[Counted<K>] {
        &self.entries
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.evicted = 0;
        self.total = 0;
    }
}

/// Merges several tables (e.g. one per minute) into one ranked list of at most `n` entries,
/// highest count first, ties by key order. A key missing from a table that was full may have
/// been seen there up to that table's `min_count()`; that is added to its `error`, so `error`
/// bounds the difference from the true count in both directions.
pub fn merge<'a, K>(tables: impl IntoIterator<Item = &'a TopK<K>>, n: usize) -> Vec<Counted<K>>
where
    K: Eq + Hash + Clone + Ord + 'a,
{
    let tables: Vec<&TopK<K>> = tables.into_iter().collect();
    // The bound for a key a table does not hold, computed once per table.
    let missing: Vec<u64> = tables
        .iter()
        .map(|t| if t.evicted() > 0 { t.min_count() } else { 0 })
        .collect();
    let mut sum: HashMap<K, (u64, u64)> = HashMap::new();
    for t in &tables {
        for e in t.entries() {
            let s = sum.entry(e.key.clone()).or_insert((0, 0));
            s.0 = s.0.saturating_add(e.count);
            s.1 = s.1.saturating_add(e.error);
        }
    }
    let mut out: Vec<Counted<K>> = sum
        .into_iter()
        .map(|(key, (count, mut error))| {
            for (t, m) in tables.iter().zip(&missing) {
                if *m > 0 && !t.index.contains_key(&key) {
                    error = error.saturating_add(*m);
                }
            }
            Counted { key, count, error }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_it_fits() {
        let mut t = TopK::new(4);
        for (k, n) in [(1u32, 5), (2, 3), (1, 2), (3, 1)] {
            t.add(&k, n);
        }
        assert_eq!(t.evicted(), 0);
        assert_eq!(t.min_count(), 0);
        let m = merge([&t], 10);
        let got: Vec<(u32, u64, u64)> = m.iter().map(|e| (e.key, e.count, e.error)).collect();
        assert_eq!(got, vec![(1, 7, 0), (2, 3, 0), (3, 1, 0)]);
        assert_eq!(t.total(), 11);
    }

    #[test]
    fn a_new_key_replaces_the_smallest_and_inherits_its_count_as_error() {
        let mut t = TopK::new(2);
        t.add(&"a", 10);
        t.add(&"b", 2);
        t.add(&"c", 1);
        assert_eq!(t.evicted(), 1);
        let m = merge([&t], 10);
        assert_eq!(m[0].key, "a");
        assert_eq!((m[0].count, m[0].error), (10, 0));
        assert_eq!(m[1].key, "c");
        // c was seen once; it may be reported up to 2 (b's count) too high.
        assert_eq!((m[1].count, m[1].error), (3, 2));
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_distinct_keys_and_the_heavy_hitter_stays() {
        let mut t = TopK::new(64);
        for i in 0..200_000u32 {
            t.add(&i, 1);
            if i % 10 == 0 {
                t.add(&u32::MAX, 1); // one real scanner among forged sources
            }
        }
        assert_eq!(t.len(), 64);
        assert!(t.index.len() <= 64);
        let m = merge([&t], 1);
        assert_eq!(m[0].key, u32::MAX);
        // True count 20,000; the estimate is within its stated error.
        assert!(m[0].count >= 20_000 && m[0].count - m[0].error <= 20_000);
    }

    #[test]
    fn merging_full_tables_widens_the_error_of_keys_missing_from_one() {
        let mut a = TopK::new(1);
        a.add(&"x", 5);
        let mut b = TopK::new(1);
        b.add(&"y", 4);
        b.add(&"z", 7); // evicts y: b is full with min_count 11
        let m = merge([&a, &b], 10);
        let x = m.iter().find(|e| e.key == "x").unwrap();
        assert_eq!((x.count, x.error), (5, 11));
        let z = m.iter().find(|e| e.key == "z").unwrap();
        assert_eq!((z.count, z.error), (11, 4));
    }

    #[test]
    fn ties_are_ordered_by_key_and_the_list_is_cut() {
        let mut t = TopK::new(8);
        for k in [5u8, 3, 9, 1] {
            t.add(&k, 2);
        }
        let keys: Vec<u8> = merge([&t], 3).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, vec![1, 3, 5]);
    }
}
