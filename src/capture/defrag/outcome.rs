//! What `Defrag` answers and counts: why a fragment did not help (`Drop`), what became of one
//! fragment (`Outcome`), and the totals since start (`Stats`). Pure data.

/// Why a fragment did not help a datagram along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// It lies wholly inside a run already in: dropped, the datagram kept.
    Duplicate,
    /// It overlaps what is in otherwise: the whole datagram is discarded.
    Overlap,
    /// Its end contradicts the datagram's known end, or it is empty: the datagram is
    /// discarded.
    BadLength,
    /// IPv6: not the last, and not a multiple of 8 bytes; or ending past 65,535. Dropped
    /// alone.
    BadFragment,
    /// The reassembled datagram mixes ECN "not ECT" with ECT or CE: discarded.
    Ecn,
    /// The reassembled datagram would exceed 65,535 bytes: discarded.
    Oversize,
    /// Its source holds its share of the cache already: dropped.
    OverShare,
    /// The capture cut it (longer than the snap length): it cannot be stored.
    Truncated,
}

impl Drop {
    /// Number of kinds.
    pub const KINDS: usize = 8;

    /// An index for counters.
    pub fn kind(self) -> usize {
        self as usize
    }

    /// A short name per kind.
    pub fn name(kind: usize) -> &'static str {
        [
            "duplicate",
            "overlap",
            "bad-length",
            "bad-fragment",
            "ecn",
            "oversize",
            "over-share",
            "truncated",
        ]
        .get(kind)
        .copied()
        .unwrap_or("?")
    }

    /// The whole datagram went with it (the kernel's `ReasmFails`).
    pub fn discards_datagram(self) -> bool {
        matches!(
            self,
            Drop::Overlap | Drop::BadLength | Drop::Ecn | Drop::Oversize
        )
    }
}

/// What became of one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not kept (a protocol nobody watches); counted for its source's distance only.
    Ignored,
    /// Kept; the datagram is not complete yet.
    Stored,
    /// It completed its datagram: here it is, as one whole packet (IP header first), as the
    /// kernel would deliver it.
    Complete(Vec<u8>),
    /// Dropped (see [`Drop`]).
    Dropped(Drop),
}

/// What the cache counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Fragments handed in (kept or not).
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Fragments dropped, by [`Drop::kind`].
    pub dropped: [u64; Drop::KINDS],
    /// Datagrams forgotten after the timeout.
    pub timed_out: u64,
    /// Datagrams evicted to stay within the cap.
    pub evicted: u64,
    /// IPv4 datagrams restarted by `ipfrag_max_dist`.
    pub restarted: u64,
    /// The most bytes the cache ever held.
    pub peak_bytes: usize,
}

impl Stats {
    /// Datagrams that failed: discarded, timed out or evicted.
    pub fn failed(&self) -> u64 {
        let discarded: u64 = [Drop::Overlap, Drop::BadLength, Drop::Ecn, Drop::Oversize]
            .iter()
            .map(|d| self.dropped[d.kind()])
            .sum();
        discarded + self.timed_out + self.evicted
    }
}
