//! A bounded heavy-hitter table: Apache DataSketches' Frequent Items sketch (crate
//! `datasketches`, feature `frequencies`; Anderson et al., "A High-Performance Algorithm for
//! Identifying Frequent Items in Data Streams", IMC 2017), behind the small interface the
//! counters and the report use.
//!
//! It holds at most about `capacity` keys whatever the number of distinct keys (a flood of
//! forged sources costs no more memory), in amortised constant time per update (measured:
//! doc/admin-guide.md, "What portsentry saw"). While no more distinct keys arrived than it holds, every count
//! is exact ([`TopK::approximate`] is false). After that each listed count is an upper bound
//! and `error` says how far above the true count it may be; a key that is not listed was
//! seen at most [`TopK::max_error`] times.
//!
//! The sketch hashes keys with an unkeyed MurmurHash3 into a linear-probing table; keys here
//! can be chosen by an attacker (forged source addresses), but the table never exceeds
//! `2 × capacity` slots, so colliding keys cost at most a scan of that, never more.
//!
//! Pure: no I/O, no clock.

use std::hash::Hash;

use datasketches::frequencies::{ErrorType, FrequentItemsSketch};

/// One counted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted<K> {
    /// The value counted.
    pub key: K,
    /// Estimated count: at least the true count, at most `error` above it.
    pub count: u64,
    /// How much `count` may exceed the true count (0: exact).
    pub error: u64,
}

/// A heavy-hitter table of about `capacity` keys.
#[derive(Debug, Clone)]
pub struct TopK<K: Eq + Hash + Clone> {
    capacity: usize,
    sketch: FrequentItemsSketch<K>,
}

/// The sketch's map size for `capacity` keys: it holds 3/4 of its size (a power of two,
/// 8 to 2^20 here).
fn map_size(capacity: usize) -> usize {
    (capacity.clamp(6, 3 << 18) * 4)
        .div_ceil(3)
        .next_power_of_two()
}

impl<K: Eq + Hash + Clone> TopK<K> {
    /// A table that holds at least `capacity` keys exactly.
    pub fn new(capacity: usize) -> TopK<K> {
        let size = map_size(capacity);
        TopK {
            capacity: size * 3 / 4,
            // A power of two within [8, 2^30]: `new` cannot fail.
            sketch: FrequentItemsSketch::new(size)
                .unwrap_or_else(|_| FrequentItemsSketch::new(8).expect("8 is a valid map size")),
        }
    }

    /// Count `n` more of `key`.
    pub fn add(&mut self, key: &K, n: u64) {
        self.sketch.update_with_count_ref(key, n);
    }

    /// Some counts are estimates: more distinct keys arrived than the table holds.
    pub fn approximate(&self) -> bool {
        self.sketch.maximum_error() > 0
    }

    /// The most a key that is not listed can have been seen (0 while exact).
    pub fn max_error(&self) -> u64 {
        self.sketch.maximum_error()
    }

    /// The sum of everything counted.
    pub fn total(&self) -> u64 {
        self.sketch.total_weight()
    }

    /// Keys held (never more than the capacity).
    pub fn len(&self) -> usize {
        self.sketch.num_active_items()
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.sketch.num_active_items() == 0
    }

    /// Keys held exactly at most (the sketch's map capacity).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.sketch.reset();
    }

    /// Add everything `other` counted (its error too).
    pub fn absorb(&mut self, other: &TopK<K>) {
        self.sketch.merge(&other.sketch);
    }
}

fn ranked<K: Eq + Hash + Clone + Ord>(s: &FrequentItemsSketch<K>, n: usize) -> Vec<Counted<K>> {
    let mut out: Vec<Counted<K>> = s
        .frequent_items(ErrorType::NoFalseNegatives)
        .into_iter()
        .map(|r| Counted {
            key: r.item().clone(),
            count: r.upper_bound(),
            error: r.upper_bound() - r.lower_bound(),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out.truncate(n);
    out
}

/// Merges several tables (e.g. one per minute) into one ranked list of at most `n` entries,
/// highest count first, ties by key order. The errors of the tables add up.
pub fn merge<'a, K>(tables: impl IntoIterator<Item = &'a TopK<K>>, n: usize) -> Vec<Counted<K>>
where
    K: Eq + Hash + Clone + Ord + 'a,
{
    let mut it = tables.into_iter();
    let Some(first) = it.next() else {
        return Vec::new();
    };
    let mut all = first.sketch.clone();
    for t in it {
        all.merge(&t.sketch);
    }
    ranked(&all, n)
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
        assert!(!t.approximate());
        assert_eq!(t.max_error(), 0);
        let m = merge([&t], 10);
        let got: Vec<(u32, u64, u64)> = m.iter().map(|e| (e.key, e.count, e.error)).collect();
        assert_eq!(got, vec![(1, 7, 0), (2, 3, 0), (3, 1, 0)]);
        assert_eq!(t.total(), 11);
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
        assert!(t.len() <= t.capacity() && t.capacity() < 128, "{}", t.len());
        assert!(t.approximate());
        let m = merge([&t], 1);
        assert_eq!(m[0].key, u32::MAX);
        // True count 20,000; the estimate is an upper bound within its stated error.
        assert!(
            m[0].count >= 20_000 && m[0].count - m[0].error <= 20_000,
            "{:?}",
            m[0]
        );
    }

    #[test]
    fn merging_adds_counts_and_errors() {
        let mut a = TopK::new(8);
        a.add(&"x", 5);
        let mut b = TopK::new(8);
        b.add(&"x", 4);
        b.add(&"z", 7);
        let m = merge([&a, &b], 10);
        let got: Vec<(&str, u64, u64)> = m.iter().map(|e| (e.key, e.count, e.error)).collect();
        assert_eq!(got, vec![("x", 9, 0), ("z", 7, 0)]);
        assert!(merge(std::iter::empty::<&TopK<u8>>(), 3).is_empty());
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

    #[test]
    fn the_map_size_covers_the_capacity() {
        assert_eq!(map_size(4), 8);
        assert_eq!(map_size(64), 128);
        assert_eq!(map_size(96), 128);
        assert_eq!(map_size(97), 256);
        assert!(TopK::<u8>::new(4096).capacity() >= 4096);
    }
}
