//! One top list (sources, prefixes or ports) over the last hour and the last day: the
//! windows of [`Window`], and how a count reaches both.

use super::topk::Counted;
use super::window::Window;
use super::{HOUR_CAPACITY, MINUTE_CAPACITY, TOP_N, Top};

/// One list (sources, prefixes or ports) over the last hour and the last day.
///
/// A count goes into the current minute's table of the hour only; when a later minute is
/// counted, the minute before goes into its hour's table of the day whole (a merge of at most
/// [`MINUTE_CAPACITY`] keys), and a read of the day adds the minute not merged yet. Counted
/// into both, every forged source of a flood from all of IPv4 cost two sketch updates (with
/// their purges) per list instead of one: `examples/engine_flood.rs` all4 top lists 212-216
/// -> 120-124 ns per hit, `examples/stats_flood.rs` 228-231 -> 133-171 ns per probe; in the
/// daemon `bench/flood.py` all4 2.69-2.83 -> 2.37-2.60 s, `bench/capture-rate.py` at 400,000
/// packets/s 1.94-2.00 -> 1.74-1.88 s (alternating, three and four runs each, 2026-12-08).
/// The day's counts are the same while nothing is evicted; under a flood its tables receive
/// the minutes' survivors with their errors (the merge adds them up), as a read of the hour
/// does.
#[derive(Debug, Clone)]
pub(super) struct Tops<K: Eq + std::hash::Hash + Clone + Ord> {
    pub(super) hour: Window<K>,
    pub(super) day: Window<K>,
    /// The minute (epoch seconds / 60) counted last: in the hour's window, not yet in the
    /// day's.
    minute: Option<i64>,
}

impl<K: Eq + std::hash::Hash + Clone + Ord> Tops<K> {
    pub(super) fn new() -> Self {
        Tops {
            hour: Window::new(60, 60, MINUTE_CAPACITY),
            day: Window::new(24, 3600, HOUR_CAPACITY),
            minute: None,
        }
    }

    pub(super) fn add(&mut self, now: i64, k: &K, n: u64) {
        let minute = now.div_euclid(60);
        if self.minute != Some(minute) {
            if let Some(m) = self.minute
                && let Some(t) = self.hour.table_at(m * 60)
            {
                self.day.absorb(m * 60, t);
            }
            // A minute counted before (the clock was set back since) is in the day's table
            // already: its counts so far leave the hour's, or the next merge would count
            // them twice.
            self.hour.clear_at(minute * 60);
            self.minute = Some(minute);
        }
        self.hour.add(now, k, n);
    }

    /// The day's list at `now`: its hours and the minute not merged yet.
    pub(super) fn day_top(&self, now: i64) -> Vec<Counted<K>> {
        let unmerged = self
            .minute
            .filter(|&m| self.day.covers(now, m * 60))
            .and_then(|m| self.hour.table_at(m * 60));
        self.day.top_with(now, TOP_N, unmerged)
    }

    pub(super) fn held(&self) -> usize {
        self.hour.held() + self.day.held()
    }
}

pub(super) fn tops<K, F>(w: &Window<K>, now: i64, text: F) -> Vec<Top>
where
    K: Eq + std::hash::Hash + Clone + Ord,
    F: Fn(&K) -> String,
{
    listed(w.top(now, TOP_N), text)
}

pub(super) fn listed<K, F>(l: Vec<Counted<K>>, text: F) -> Vec<Top>
where
    F: Fn(&K) -> String,
{
    l.into_iter()
        .map(|c| Top {
            value: text(&c.key),
            count: c.count,
            error: c.error,
        })
        .collect()
}
