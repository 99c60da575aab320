//! One datagram in progress, as `Defrag` keeps it: its identity (`Key`), whose fair share it
//! counts against (`Source`, `SourceState`), and its fragment runs (`Queue`), with the
//! insertion that applies the kernel's overlap and duplicate rules.

use std::net::{IpAddr, Ipv4Addr};

use crate::capture::wire::Fragment;

use super::QUEUE_COST;

/// One datagram's identity, packed so that it hashes in one call: (source, destination,
/// identification, protocol, family) as 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key(pub(super) [u64; 5]);

impl Key {
    pub(super) fn of(f: &Fragment<'_>) -> Key {
        let words = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            }
        };
        let (s, d) = (words(f.src), words(f.dst));
        let v4 = f.src.is_ipv4();
        // IPv4's protocol is part of its identity; IPv6's is not (RFC 8200 §4.5).
        let tail =
            u64::from(f.id) | u64::from(if v4 { f.proto } else { 0 }) << 32 | u64::from(v4) << 40;
        Key([(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64, tail])
    }
}

/// Whose fair share a datagram counts against: an IPv4 address or an IPv6 /64 (one host
/// can have a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Source {
    V4(Ipv4Addr),
    V6(u64),
}

impl Source {
    pub(super) fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => Source::V6((u128::from(a) >> 64) as u64),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct SourceState {
    pub(super) source: Source,
    /// Bytes its datagrams hold.
    pub(super) bytes: usize,
    /// Its datagrams in progress.
    pub(super) queues: u32,
    /// `inet_peer.rid`: its fragments so far (IPv4, for `ip_frag_too_far`).
    pub(super) rid: u32,
}

/// A vector that keeps its first `N` elements inline: a datagram of a few fragments (nmap's,
/// a flood's) costs no allocation.
#[derive(Debug, Clone)]
pub(super) enum Small<T: Copy + Default, const N: usize> {
    Inline(u8, [T; N]),
    Heap(Vec<T>),
}

impl<T: Copy + Default, const N: usize> Default for Small<T, N> {
    fn default() -> Self {
        Small::Inline(0, [T::default(); N])
    }
}

impl<T: Copy + Default, const N: usize> Small<T, N> {
    pub(super) fn as_slice(&self) -> &[T] {
        match self {
            Small::Inline(n, a) => a.get(..usize::from(*n)).unwrap_or_default(),
            Small::Heap(v) => v,
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Small::Inline(n, a) => a.get_mut(..usize::from(*n)).unwrap_or_default(),
            Small::Heap(v) => v,
        }
    }

    pub(super) fn spill(&mut self, extra: usize) -> &mut Vec<T> {
        if let Small::Inline(_, _) = self {
            let mut v = Vec::with_capacity(self.as_slice().len() + extra);
            v.extend_from_slice(self.as_slice());
            *self = Small::Heap(v);
        }
        match self {
            Small::Heap(v) => v,
            Small::Inline(..) => unreachable!("spilled above"),
        }
    }

    pub(super) fn insert(&mut self, at: usize, x: T) {
        match self {
            Small::Inline(n, a) if usize::from(*n) < N => {
                let n0 = usize::from(*n);
                a.copy_within(at..n0, at + 1);
                a[at] = x;
                *n += 1;
            }
            _ => self.spill(1).insert(at, x),
        }
    }

    pub(super) fn push(&mut self, x: T) {
        let at = self.as_slice().len();
        self.insert(at, x);
    }

    pub(super) fn extend_from_slice(&mut self, xs: &[T]) {
        match self {
            Small::Inline(n, a) if usize::from(*n) + xs.len() <= N => {
                let n0 = usize::from(*n);
                a[n0..n0 + xs.len()].copy_from_slice(xs);
                *n += xs.len() as u8;
            }
            _ => self.spill(xs.len()).extend_from_slice(xs),
        }
    }

    /// Heap bytes held (the inline part is in the queue's fixed cost).
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Small::Inline(..) => 0,
            Small::Heap(v) => v.capacity() * std::mem::size_of::<T>(),
        }
    }
}

/// One stored fragment: where its bytes go, how many, where they are in `Queue::data`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Chunk {
    pub(super) offset: u32,
    pub(super) len: u32,
    pub(super) at: u32,
}

/// A datagram in progress (`struct ipq`, `struct frag_queue`).
#[derive(Debug, Clone)]
pub(super) struct Queue {
    pub(super) key: Key,
    /// Its source's slot.
    pub(super) source: u32,
    /// Its place in the creation order (a restart gives a new one).
    pub(super) seq: u64,
    pub(super) created_ms: u64,
    pub(super) flags: u8,
    /// The datagram's length as far as known (`q.len`).
    pub(super) len: u32,
    /// Bytes in (`q.meat`).
    pub(super) meat: u32,
    /// The ECN bits seen, `1 << ecn` each (`qp->ecn`).
    pub(super) ecn: u8,
    /// `qp->rid`.
    pub(super) rid: u32,
    /// Runs of adjacent fragments, [start, end), sorted; the last one ends at the tail.
    pub(super) runs: Small<(u32, u32), 4>,
    pub(super) chunks: Small<Chunk, 4>,
    pub(super) data: Small<u8, 32>,
    /// The first fragment's header part (see `Fragment::header`) and next header.
    pub(super) head: Small<u8, 40>,
    pub(super) nh_at: usize,
    pub(super) first_nh: u8,
    /// What it counts against the cap now.
    pub(super) cost: usize,
}

impl Queue {
    pub(super) fn new(key: Key, source: u32, seq: u64, now: u64) -> Queue {
        Queue {
            key,
            source,
            seq,
            created_ms: now,
            flags: 0,
            len: 0,
            meat: 0,
            ecn: 0,
            rid: 0,
            runs: Small::default(),
            chunks: Small::default(),
            data: Small::default(),
            head: Small::default(),
            nh_at: 0,
            first_nh: 0,
            cost: QUEUE_COST,
        }
    }

    pub(super) fn measure(&self) -> usize {
        QUEUE_COST
            + self.runs.heap_bytes()
            + self.chunks.heap_bytes()
            + self.data.heap_bytes()
            + self.head.heap_bytes()
    }

    /// `ip_frag_reinit`: forget every fragment, keep the queue.
    pub(super) fn reinit(&mut self) {
        self.flags = 0;
        self.len = 0;
        self.meat = 0;
        self.ecn = 0;
        self.runs = Small::default();
        self.chunks = Small::default();
        self.data = Small::default();
        self.head = Small::default();
    }

    /// `inet_frag_queue_insert`.
    pub(super) fn insert(&mut self, offset: u32, end: u32) -> Insert {
        let Some(&(_, tail)) = self.runs.as_slice().last() else {
            self.runs.push((offset, end));
            return Insert::Ok;
        };
        if tail < end {
            // The common case: it goes to the end.
            if offset < tail {
                return Insert::Overlap;
            }
            if offset == tail {
                if let Some(last) = self.runs.as_mut_slice().last_mut() {
                    last.1 = end;
                }
            } else {
                self.runs.push((offset, end));
            }
            return Insert::Ok;
        }
        // The tree search: the runs are disjoint, so the first one ending past `offset` is
        // the only candidate that can hold it, and any run it touches is an overlap unless
        // it lies wholly inside that one.
        let runs = self.runs.as_slice();
        let i = runs.partition_point(|&(_, e)| e <= offset);
        match runs.get(i) {
            Some(&(s, e)) if s < end => {
                if offset >= s && end <= e {
                    Insert::Duplicate
                } else {
                    Insert::Overlap
                }
            }
            _ => {
                self.runs.insert(i, (offset, end));
                Insert::Ok
            }
        }
    }
}

pub(super) enum Insert {
    Ok,
    Duplicate,
    Overlap,
}
