//! IPv4 and IPv6 reassembly with the Linux stack's semantics (issue 18): the capture sees
//! fragments before the host reassembles them, so this module decides, fragment by fragment,
//! what the host's own stack will make of them, and hands back exactly the datagrams it
//! would deliver, as whole packets, for `wire::parse` to judge as if they had arrived whole.
//! What the host drops (never completed, overlapping, malformed, too long) is no probe.
//!
//! # Why in userspace, here, and not the kernel's reassembly
//!
//! Measured (README "Evasion"): a socket that receives after the kernel's reassembly (a raw
//! socket, as 1.2 uses, or AF_PACKET's `PACKET_FANOUT_FLAG_DEFRAG`, IPv4 only) shares the
//! network namespace's fragment memory with the host (`ipfrag_high_thresh`, 4 MiB). Under a
//! flood of incomplete fragments from forged sources that memory fills within a few thousand
//! fragments, and `inet_frag_find` then refuses every new fragment, the real scanner's
//! included, until the 30 s timer frees the queues: the real `nmap -f` scan during the flood
//! was lost to the kernel (its `ReasmFails` grew by every fragment) and would have been
//! missed. Here the cache is the daemon's own, with fairness the kernel lacks; the normal,
//! unfragmented path does not change at all (fragments are told apart by one test in the
//! kernel filter and one in `wire`).
//!
//! # The kernel's rules, as mirrored here (Linux 6.x)
//!
//! - Identity: `ip_find` keys a datagram by (source, destination, identification,
//!   protocol), `fq_find` by (source, destination, identification) (IPv6 has no protocol in
//!   the key); the VRF master (`vif`) and the interface of link-local IPv6 are not modelled.
//! - `ip_frag_queue` / `ip6_frag_queue`: a last fragment whose end differs from a known end,
//!   or a fragment past a known end, or a zero-length fragment, discards the whole queue; a
//!   non-last IPv4 fragment is cut to a multiple of 8 bytes, a non-last IPv6 one that is not
//!   a multiple of 8, or one ending past 65,535 bytes, is dropped alone (ICMPv6 parameter
//!   problem).
//! - `inet_frag_queue_insert` (net/ipv4/inet_fragment.c; RFC 5722 and its errata 3089 for
//!   IPv6, Linux since 4.19 for IPv4 too): fragments are kept as "runs" of adjacent
//!   fragments, a new run per fragment except one that extends the last run at the tail. A
//!   fragment lying wholly inside one run is a duplicate: dropped, whatever its bytes, the
//!   queue kept. Any other overlap discards the whole datagram. (So `[0,8) [8,16)` then
//!   `[0,16)` is a duplicate, but `[0,8) [16,24) [8,16)` then `[0,16)` an overlap: measured
//!   on this kernel by `tests/e2e_evasion.rs`.)
//! - `ip_frag_too_far` (`ipfrag_max_dist`, 64): an IPv4 queue that saw more than 64 other
//!   fragments from its source since its last one is emptied and restarted
//!   (`ip_frag_reinit`); IPv6 has no such rule.
//! - `ip_frag_reasm` / `ip6_frag_reasm`: complete when the first and last fragments are in and
//!   every byte between; then a mix of ECN "not ECT" with ECT or CE fragments
//!   (`ip_frag_ecn_table`, RFC 3168 §5.3) fails, and so does a datagram over 65,535 bytes
//!   (IPv4 header plus data, or the IPv6 payload).
//! - `ipv6_frag_rcv`: an IPv6 first fragment without the upper-layer header (RFC 8200 §4.5,
//!   RFC 7112) is dropped before it reaches a queue (see `wire`).
//! - The timer: 30 s from the queue's creation (`ipfrag_time`, `ip6frag_time`), never
//!   extended by later fragments (the kernel's "RFC791 is wrong" note).
//!
//! # Bounded
//!
//! At most [`Limits::mem_cap`] bytes (4 MiB, the kernel's own default per namespace)
//! counted from what the structures really hold: each datagram in progress costs a fixed
//! [`QUEUE_COST`] plus its bytes. No source (an IPv4 address, an IPv6 /64) may hold more than
//! [`Limits::source_share`] (an eighth): its further fragments are dropped, so one source
//! cannot fill the cache. When the cache is full anyway (many sources), the datagram in
//! progress that was started first is evicted, never a new one refused (the kernel refuses
//! new fragments instead, which is what loses the real scan under a flood): a datagram is
//! lost only if more datagrams than the cache holds were started after it before its last
//! fragment came. nmap sends a probe's fragments back to back.
//!
//! Pure: time comes in as milliseconds; no I/O.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use crate::wire::Fragment;

/// The cache's size (the kernel's `ipfrag_high_thresh` default, per namespace).
pub const MEM_CAP: usize = 4 << 20;
/// How long a datagram may take (`ipfrag_time`, `ip6frag_time`: `IP_FRAG_TIME`, 30 s).
pub const TIMEOUT_MS: u64 = 30_000;
/// `ipfrag_max_dist`'s default (IPv4 only).
pub const MAX_DIST: u32 = 64;

/// `INET_FRAG_FIRST_IN`, `INET_FRAG_LAST_IN`.
const FIRST_IN: u8 = 1;
const LAST_IN: u8 = 2;

/// How large the cache may grow and how long a datagram may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the cache may hold.
    pub mem_cap: usize,
    /// Bytes one source (IPv4 address, IPv6 /64) may hold.
    pub source_share: usize,
    /// A datagram is forgotten this long after its first fragment.
    pub timeout_ms: u64,
    /// `ipfrag_max_dist` (0: off).
    pub max_dist: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            mem_cap: MEM_CAP,
            source_share: MEM_CAP / 8,
            timeout_ms: TIMEOUT_MS,
            max_dist: MAX_DIST,
        }
    }
}

/// One datagram's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// IPv4's protocol; 0 for IPv6.
    proto: u8,
}

/// Whose fair share a datagram counts against: an IPv4 address or an IPv6 /64 (one host
/// can have a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(Ipv4Addr),
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => Source::V6((u128::from(a) >> 64) as u64),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    /// Bytes its datagrams hold.
    bytes: usize,
    /// Its datagrams in progress.
    queues: u32,
    /// `inet_peer.rid`: its fragments so far (IPv4, for `ip_frag_too_far`).
    rid: u32,
}

/// One stored fragment: where its bytes go, how many, where they are in `Queue::data`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    offset: u32,
    len: u32,
    at: u32,
}

/// A datagram in progress (`struct ipq`, `struct frag_queue`).
#[derive(Debug, Clone)]
struct Queue {
    /// Its place in the creation order (a restart gives a new one).
    seq: u64,
    created_ms: u64,
    flags: u8,
    /// The datagram's length as far as known (`q.len`).
    len: u32,
    /// Bytes in (`q.meat`).
    meat: u32,
    /// The ECN bits seen, `1 << ecn` each (`qp->ecn`).
    ecn: u8,
    /// `qp->rid`.
    rid: u32,
    /// Runs of adjacent fragments, [start, end), sorted; the last one ends at the tail.
    runs: Vec<(u32, u32)>,
    chunks: Vec<Chunk>,
    data: Vec<u8>,
    /// The first fragment's header part (see `Fragment::header`) and next header.
    head: Vec<u8>,
    nh_at: usize,
    first_nh: u8,
    /// What it counts against the cap now.
    cost: usize,
}

/// What is accounted per datagram besides its bytes: the table entry and its two places in
/// the creation order (the order is compacted when half its entries are stale).
pub const QUEUE_COST: usize =
    std::mem::size_of::<(Key, Queue)>() + 2 * std::mem::size_of::<(u64, Key)>() + 16;
/// What a source's entry costs.
const SOURCE_COST: usize = std::mem::size_of::<(Source, SourceState)>() + 16;

impl Queue {
    fn new(seq: u64, now: u64) -> Queue {
        Queue {
            seq,
            created_ms: now,
            flags: 0,
            len: 0,
            meat: 0,
            ecn: 0,
            rid: 0,
            runs: Vec::new(),
            chunks: Vec::new(),
            data: Vec::new(),
            head: Vec::new(),
            nh_at: 0,
            first_nh: 0,
            cost: QUEUE_COST,
        }
    }

    fn measure(&self) -> usize {
        QUEUE_COST
            + self.runs.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.data.capacity()
            + self.head.capacity()
    }

    /// `ip_frag_reinit`: forget every fragment, keep the queue.
    fn reinit(&mut self) {
        self.flags = 0;
        self.len = 0;
        self.meat = 0;
        self.ecn = 0;
        self.runs = Vec::new();
        self.chunks = Vec::new();
        self.data = Vec::new();
        self.head = Vec::new();
    }

    /// `inet_frag_queue_insert`.
    fn insert(&mut self, offset: u32, end: u32) -> Insert {
        let Some(&(_, tail)) = self.runs.last() else {
            self.runs.push((offset, end));
            return Insert::Ok;
        };
        if tail < end {
            // The common case: it goes to the end.
            if offset < tail {
                return Insert::Overlap;
            }
            if offset == tail {
                if let Some(last) = self.runs.last_mut() {
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
        let i = self.runs.partition_point(|&(_, e)| e <= offset);
        match self.runs.get(i) {
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

enum Insert {
    Ok,
    Duplicate,
    Overlap,
}

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

/// The reassembly cache.
#[derive(Debug)]
pub struct Defrag {
    limits: Limits,
    queues: HashMap<Key, Queue>,
    /// Creation order, for timeouts and eviction; entries of queues gone or restarted are
    /// skipped and compacted away.
    order: VecDeque<(u64, Key)>,
    sources: HashMap<Source, SourceState>,
    bytes: usize,
    next_seq: u64,
    stats: Stats,
}

impl Default for Defrag {
    fn default() -> Defrag {
        Defrag::new(Limits::default())
    }
}

/// ECN of the reassembled datagram (`ip_frag_ecn_table`): None for an invalid mix, else the
/// bits to OR into the header (CE when any fragment had CE).
fn ecn_result(bits: u8) -> Option<u8> {
    const NOT_ECT: u8 = 1;
    const CE: u8 = 8;
    if bits & NOT_ECT != 0 && bits & !NOT_ECT != 0 {
        None
    } else if bits & CE != 0 {
        Some(3)
    } else {
        Some(0)
    }
}

impl Defrag {
    /// An empty cache.
    pub fn new(limits: Limits) -> Defrag {
        Defrag {
            limits,
            queues: HashMap::new(),
            order: VecDeque::new(),
            sources: HashMap::new(),
            bytes: 0,
            next_seq: 0,
            stats: Stats::default(),
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams in progress.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// None in progress.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// One fragment at `now` (ms). `keep`: its datagram can be a probe (an IPv4 protocol
    /// the capture judges; IPv6 fragments are always kept, as only the first one names the
    /// protocol). A fragment not kept still counts towards its source's `ipfrag_max_dist`.
    pub fn push(&mut self, now: u64, f: &Fragment<'_>, keep: bool) -> Outcome {
        self.stats.fragments = self.stats.fragments.saturating_add(1);
        self.expire(now);
        let v4 = f.src.is_ipv4();
        let key = Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: if v4 { f.proto } else { 0 },
        };
        let source = Source::of(f.src);
        if !keep {
            // Only a queue of its source can be affected, and then only through the rid.
            if let Some(s) = self.sources.get_mut(&source) {
                s.rid = s.rid.wrapping_add(1);
            }
            return Outcome::Ignored;
        }
        let take = f.data_len.min(f.data.len() as u32);
        // Expired but not yet swept: the kernel's timer would have killed it.
        if self
            .queues
            .get(&key)
            .is_some_and(|q| now.saturating_sub(q.created_ms) >= self.limits.timeout_ms)
        {
            self.remove(&key);
            self.stats.timed_out += 1;
        }
        let held = self.sources.get(&source).map_or(0, |s| s.bytes);
        let new_queue = !self.queues.contains_key(&key);
        let adding = take as usize + if new_queue { QUEUE_COST } else { 0 };
        if held + adding > self.limits.source_share {
            return self.dropped(Drop::OverShare);
        }
        if new_queue {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.queues.insert(key, Queue::new(seq, now));
            self.order.push_back((seq, key));
            if !self.sources.contains_key(&source) {
                self.bytes += SOURCE_COST;
            }
            let s = self.sources.entry(source).or_default();
            s.queues += 1;
            s.bytes += QUEUE_COST;
            self.bytes += QUEUE_COST;
        }
        let out = self.queue(now, key, source, f, take);
        self.enforce_cap();
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
        out
    }

    /// `ip_frag_queue` / `ip6_frag_queue` for a queue that exists.
    fn queue(
        &mut self,
        now: u64,
        key: Key,
        source: Source,
        f: &Fragment<'_>,
        take: u32,
    ) -> Outcome {
        let v4 = f.src.is_ipv4();
        let max_dist = self.limits.max_dist;
        let Some(q) = self.queues.get_mut(&key) else {
            return Outcome::Ignored;
        };
        // ip_frag_too_far, before anything else looks at the fragment.
        if v4 && max_dist > 0 {
            let s = self.sources.entry(source).or_default();
            let start = q.rid;
            s.rid = s.rid.wrapping_add(1);
            q.rid = s.rid;
            if !q.runs.is_empty() && s.rid.wrapping_sub(start) > max_dist {
                // ip_frag_reinit: emptied, and its timer starts again.
                q.reinit();
                q.created_ms = now;
                q.seq = self.next_seq;
                self.next_seq += 1;
                self.order.push_back((q.seq, key));
                self.stats.restarted += 1;
                self.recost(&key, source);
            }
        }
        let Some(q) = self.queues.get_mut(&key) else {
            return Outcome::Ignored;
        };
        let offset = f.offset;
        let mut end = offset.saturating_add(f.data_len);
        if !v4 && end > 65_535 {
            return self.dropped(Drop::BadFragment);
        }
        if !f.more {
            if end < q.len || (q.flags & LAST_IN != 0 && end != q.len) {
                return self.discard(&key, Drop::BadLength);
            }
            q.flags |= LAST_IN;
            q.len = end;
        } else {
            if end & 7 != 0 {
                if !v4 {
                    return self.dropped(Drop::BadFragment);
                }
                end &= !7;
            }
            if end > q.len {
                if q.flags & LAST_IN != 0 {
                    return self.discard(&key, Drop::BadLength);
                }
                q.len = end;
            }
        }
        if end == offset {
            return self.discard(&key, Drop::BadLength);
        }
        let size = end - offset;
        if take < size {
            return self.dropped(Drop::Truncated);
        }
        match q.insert(offset, end) {
            Insert::Ok => {}
            Insert::Duplicate => return self.dropped(Drop::Duplicate),
            Insert::Overlap => return self.discard(&key, Drop::Overlap),
        }
        let at = q.data.len() as u32;
        q.data
            .extend_from_slice(f.data.get(..size as usize).unwrap_or_default());
        q.chunks.push(Chunk {
            offset,
            len: size,
            at,
        });
        q.meat += size;
        q.ecn |= 1 << (f.ecn & 3);
        if offset == 0 {
            q.flags |= FIRST_IN;
            q.head = f.header.to_vec();
            q.nh_at = f.nh_at;
            q.first_nh = f.proto;
        }
        let complete = q.flags == FIRST_IN | LAST_IN && q.meat == q.len;
        self.recost(&key, source);
        if !complete {
            return Outcome::Stored;
        }
        self.reassemble(&key)
    }

    /// `ip_frag_reasm` / `ip6_frag_reasm`: the datagram as one packet, or why not.
    fn reassemble(&mut self, key: &Key) -> Outcome {
        let Some(q) = self.remove(key) else {
            return Outcome::Ignored;
        };
        let Some(ecn) = ecn_result(q.ecn) else {
            return self.dropped(Drop::Ecn);
        };
        let v4 = key.src.is_ipv4();
        let total = q.head.len() + q.len as usize;
        // IPv4: header and data; IPv6: the payload (the unfragmentable headers and data).
        if (v4 && total > 65_535) || (!v4 && total - 40.min(total) > 65_535) {
            return self.dropped(Drop::Oversize);
        }
        let mut p = q.head;
        let hlen = p.len();
        p.resize(total, 0);
        for c in &q.chunks {
            let (from, to) = (c.at as usize, c.at as usize + c.len as usize);
            let dst = hlen + c.offset as usize;
            if let (Some(src), Some(out)) =
                (q.data.get(from..to), p.get_mut(dst..dst + c.len as usize))
            {
                out.copy_from_slice(src);
            }
        }
        if v4 {
            if let Some(h) = p.get_mut(..hlen.max(20)) {
                h[1] |= ecn;
                h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                // Offset 0, MF clear (DF is what the sender set; it does not matter here).
                h[6] &= 0x40;
                h[7] = 0;
                h[10] = 0;
                h[11] = 0;
            }
            let c = !crate::csum::Sum::of(p.get(..hlen).unwrap_or_default()).fold();
            if let Some(h) = p.get_mut(10..12) {
                h.copy_from_slice(&c.to_be_bytes());
            }
        } else {
            let payload = (total - 40) as u16;
            if let Some(h) = p.get_mut(..40) {
                h[4..6].copy_from_slice(&payload.to_be_bytes());
                // Traffic class: its low two bits are ECN.
                h[1] |= ecn << 4;
            }
            if let Some(b) = p.get_mut(q.nh_at) {
                *b = q.first_nh;
            }
        }
        self.stats.reassembled += 1;
        Outcome::Complete(p)
    }

    fn dropped(&mut self, d: Drop) -> Outcome {
        if let Some(c) = self.stats.dropped.get_mut(d.kind()) {
            *c += 1;
        }
        Outcome::Dropped(d)
    }

    /// Discard the whole datagram (`inet_frag_kill`).
    fn discard(&mut self, key: &Key, d: Drop) -> Outcome {
        self.remove(key);
        self.dropped(d)
    }

    /// Bring the queue's cost (and its source's and the total) up to date.
    fn recost(&mut self, key: &Key, source: Source) {
        let Some(q) = self.queues.get_mut(key) else {
            return;
        };
        let now = q.measure();
        let before = std::mem::replace(&mut q.cost, now);
        self.bytes = self.bytes.saturating_sub(before) + now;
        if let Some(s) = self.sources.get_mut(&source) {
            s.bytes = s.bytes.saturating_sub(before) + now;
        }
    }

    /// Take a datagram out, with its accounting.
    fn remove(&mut self, key: &Key) -> Option<Queue> {
        let q = self.queues.remove(key)?;
        self.bytes = self.bytes.saturating_sub(q.cost);
        let source = Source::of(key.src);
        if let Some(s) = self.sources.get_mut(&source) {
            s.bytes = s.bytes.saturating_sub(q.cost);
            s.queues = s.queues.saturating_sub(1);
            if s.queues == 0 {
                // Its rid only matters while a queue of its exists (see `push`).
                self.sources.remove(&source);
                self.bytes = self.bytes.saturating_sub(SOURCE_COST);
            }
        }
        Some(q)
    }

    /// The oldest live entry of the creation order (stale ones are dropped on the way).
    fn oldest(&mut self) -> Option<(Key, u64)> {
        while let Some(&(seq, key)) = self.order.front() {
            match self.queues.get(&key) {
                Some(q) if q.seq == seq => return Some((key, q.created_ms)),
                _ => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    /// Forget the datagrams whose time is up (call it now and then: [`Defrag::push`] does).
    pub fn expire(&mut self, now: u64) {
        while let Some((key, created)) = self.oldest() {
            if now.saturating_sub(created) < self.limits.timeout_ms {
                break;
            }
            self.order.pop_front();
            self.remove(&key);
            self.stats.timed_out += 1;
        }
        self.compact();
    }

    /// Over the cap: evict the datagrams started first.
    fn enforce_cap(&mut self) {
        while self.bytes > self.limits.mem_cap {
            let Some((key, _)) = self.oldest() else {
                break;
            };
            self.order.pop_front();
            self.remove(&key);
            self.stats.evicted += 1;
        }
        self.compact();
    }

    /// Drop the stale entries of the order once they are half of it.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.queues.len() + 64 {
            let queues = &self.queues;
            self.order
                .retain(|(seq, key)| queues.get(key).is_some_and(|q| q.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests;
