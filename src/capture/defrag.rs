//! IPv4 and IPv6 reassembly with the Linux stack's semantics (issue 18): the capture sees
//! fragments before the host reassembles them, so this module decides, fragment by fragment,
//! what the host's own stack will make of them, and hands back exactly the datagrams it
//! would deliver, as whole packets, for `wire::parse` to judge as if they had arrived whole.
//! What the host drops (never completed, overlapping, malformed, too long) is no probe.
//!
//! # Why in userspace, here, and not the kernel's reassembly
//!
//! Measured (doc/threat-model.md, "Evasion"): a socket that receives after the kernel's reassembly (a raw
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

use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;

use crate::capture::wire::Fragment;

mod outcome;
mod queue;

pub use outcome::{Drop, Outcome, Stats};

use queue::{Chunk, Insert, Key, Queue, Small, Source, SourceState};

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

/// What is accounted per datagram besides its heap bytes: its slot, its index entry and its
/// two places in the creation order (the order is compacted when half its entries are
/// stale).
pub const QUEUE_COST: usize = std::mem::size_of::<Option<Queue>>()
    + std::mem::size_of::<(Key, u32)>()
    + 8
    + 2 * std::mem::size_of::<(u64, u32)>();
/// What a source's slot and index entry cost.
const SOURCE_COST: usize =
    std::mem::size_of::<Option<SourceState>>() + std::mem::size_of::<(Source, u32)>() + 8;

/// The reassembly cache: datagrams in slots, found by one hash of their identity; the
/// creation order and the sources refer to slots, so a fragment costs one or two hash
/// lookups whatever happens to it. Both indexes hash with seeded foldhash, as the engine's
/// tables do (doc/dependencies.md): with std's SipHash, `examples/frag_flood` took 462-599 ns
/// per lone forged fragment, 126-129 ns per fragment of an `nmap -f` sweep; with foldhash
/// 336-361 and 110-119 ns (alternating, three runs each, 2026-12-07).
#[derive(Debug)]
pub struct Defrag {
    limits: Limits,
    index: HashMap<Key, u32>,
    slots: Vec<Option<Queue>>,
    free: Vec<u32>,
    /// Creation order (sequence number, slot), for timeouts and eviction; entries of slots
    /// emptied or restarted since are skipped and compacted away.
    order: VecDeque<(u64, u32)>,
    source_index: HashMap<Source, u32>,
    sources: Vec<Option<SourceState>>,
    free_sources: Vec<u32>,
    /// Sources whose last datagram went (an upper bound; see `forget_idle_sources`).
    idle_sources: usize,
    live: usize,
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
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            source_index: HashMap::new(),
            sources: Vec::new(),
            free_sources: Vec::new(),
            idle_sources: 0,
            live: 0,
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
        self.live
    }

    /// None in progress.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn slot(&self, i: u32) -> Option<&Queue> {
        self.slots.get(i as usize)?.as_ref()
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Queue> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    fn source_mut(&mut self, i: u32) -> Option<&mut SourceState> {
        self.sources.get_mut(i as usize)?.as_mut()
    }

    /// One fragment at `now` (ms). `keep`: its datagram can be a probe (an IPv4 protocol
    /// the capture judges; IPv6 fragments are always kept, as only the first one names the
    /// protocol). A fragment not kept still counts towards its source's `ipfrag_max_dist`.
    pub fn push(&mut self, now: u64, f: &Fragment<'_>, keep: bool) -> Outcome {
        self.stats.fragments = self.stats.fragments.saturating_add(1);
        self.expire(now);
        let source = Source::of(f.src);
        if !keep {
            // Only a queue of its source can be affected, and then only through the rid.
            if let Some(&i) = self.source_index.get(&source)
                && let Some(s) = self.source_mut(i)
            {
                s.rid = s.rid.wrapping_add(1);
            }
            return Outcome::Ignored;
        }
        let key = Key::of(f);
        let take = f.data_len.min(f.data.len() as u32);
        let mut at = self.index.get(&key).copied();
        // Expired but not yet swept: the kernel's timer would have killed it.
        if let Some(i) = at
            && self
                .slot(i)
                .is_some_and(|q| now.saturating_sub(q.created_ms) >= self.limits.timeout_ms)
        {
            self.remove(i);
            self.stats.timed_out += 1;
            at = None;
        }
        let i = match at {
            Some(i) => {
                let held = self
                    .slot(i)
                    .and_then(|q| self.sources.get(q.source as usize)?.as_ref())
                    .map_or(0, |s| s.bytes);
                if held + take as usize > self.limits.source_share {
                    return self.dropped(Drop::OverShare);
                }
                i
            }
            None => {
                let held = self
                    .source_index
                    .get(&source)
                    .and_then(|&s| self.sources.get(s as usize)?.as_ref())
                    .map_or(0, |s| s.bytes);
                if held + QUEUE_COST + take as usize > self.limits.source_share {
                    return self.dropped(Drop::OverShare);
                }
                self.create(now, key, source)
            }
        };
        let out = self.queue(now, i, f, take);
        self.enforce_cap();
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
        out
    }

    /// A new, empty datagram (`inet_frag_create`): its slot.
    fn create(&mut self, now: u64, key: Key, source: Source) -> u32 {
        let s = match self.source_index.get(&source) {
            Some(&s) => {
                // A source without a datagram in progress becomes busy again.
                if self
                    .sources
                    .get(s as usize)
                    .and_then(|x| x.as_ref())
                    .is_some_and(|x| x.queues == 0)
                {
                    self.idle_sources = self.idle_sources.saturating_sub(1);
                }
                s
            }
            None => {
                let st = SourceState {
                    source,
                    bytes: 0,
                    queues: 0,
                    rid: 0,
                };
                let s = match self.free_sources.pop() {
                    Some(s) => {
                        self.sources[s as usize] = Some(st);
                        s
                    }
                    None => {
                        self.sources.push(Some(st));
                        (self.sources.len() - 1) as u32
                    }
                };
                self.source_index.insert(source, s);
                self.bytes += SOURCE_COST;
                s
            }
        };
        if let Some(st) = self.source_mut(s) {
            st.queues += 1;
            st.bytes += QUEUE_COST;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let q = Queue::new(key, s, seq, now);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(q);
                i
            }
            None => {
                self.slots.push(Some(q));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, i);
        self.order.push_back((seq, i));
        self.live += 1;
        self.bytes += QUEUE_COST;
        i
    }

    /// `ip_frag_queue` / `ip6_frag_queue` for the datagram in slot `i`.
    fn queue(&mut self, now: u64, i: u32, f: &Fragment<'_>, take: u32) -> Outcome {
        let v4 = f.src.is_ipv4();
        let max_dist = self.limits.max_dist;
        let next_seq = self.next_seq;
        let Some(q) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return Outcome::Ignored;
        };
        // ip_frag_too_far, before anything else looks at the fragment.
        if v4 && max_dist > 0 {
            let Some(s) = self
                .sources
                .get_mut(q.source as usize)
                .and_then(Option::as_mut)
            else {
                return Outcome::Ignored;
            };
            let start = q.rid;
            s.rid = s.rid.wrapping_add(1);
            q.rid = s.rid;
            if !q.runs.as_slice().is_empty() && s.rid.wrapping_sub(start) > max_dist {
                // ip_frag_reinit: emptied, and its timer starts again.
                q.reinit();
                q.created_ms = now;
                q.seq = next_seq;
                self.next_seq += 1;
                self.order.push_back((next_seq, i));
                self.stats.restarted += 1;
                self.recost(i);
            }
        }
        let Some(q) = self.slot_mut(i) else {
            return Outcome::Ignored;
        };
        let offset = f.offset;
        let mut end = offset.saturating_add(f.data_len);
        if !v4 && end > 65_535 {
            return self.dropped(Drop::BadFragment);
        }
        if !f.more {
            if end < q.len || (q.flags & LAST_IN != 0 && end != q.len) {
                return self.discard(i, Drop::BadLength);
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
                    return self.discard(i, Drop::BadLength);
                }
                q.len = end;
            }
        }
        if end == offset {
            return self.discard(i, Drop::BadLength);
        }
        let size = end - offset;
        if take < size {
            return self.dropped(Drop::Truncated);
        }
        match q.insert(offset, end) {
            Insert::Ok => {}
            Insert::Duplicate => return self.dropped(Drop::Duplicate),
            Insert::Overlap => return self.discard(i, Drop::Overlap),
        }
        let at = q.data.as_slice().len() as u32;
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
            q.head = Small::default();
            q.head.extend_from_slice(f.header);
            q.nh_at = f.nh_at;
            q.first_nh = f.proto;
        }
        let complete = q.flags == FIRST_IN | LAST_IN && q.meat == q.len;
        self.recost(i);
        if !complete {
            return Outcome::Stored;
        }
        self.reassemble(i)
    }

    /// `ip_frag_reasm` / `ip6_frag_reasm`: the datagram as one packet, or why not.
    fn reassemble(&mut self, i: u32) -> Outcome {
        let Some(q) = self.remove(i) else {
            return Outcome::Ignored;
        };
        let Some(ecn) = ecn_result(q.ecn) else {
            return self.dropped(Drop::Ecn);
        };
        let v4 = q.key.0[4] >> 40 & 1 == 1;
        let head = q.head.as_slice();
        let total = head.len() + q.len as usize;
        // IPv4: header and data; IPv6: the payload (the unfragmentable headers and data).
        if (v4 && total > 65_535) || (!v4 && total - 40.min(total) > 65_535) {
            return self.dropped(Drop::Oversize);
        }
        let mut p = Vec::with_capacity(total);
        p.extend_from_slice(head);
        let hlen = p.len();
        p.resize(total, 0);
        let data = q.data.as_slice();
        for c in q.chunks.as_slice() {
            let (from, to) = (c.at as usize, c.at as usize + c.len as usize);
            let dst = hlen + c.offset as usize;
            if let (Some(src), Some(out)) =
                (data.get(from..to), p.get_mut(dst..dst + c.len as usize))
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
            let c = !crate::capture::csum::Sum::of(p.get(..hlen).unwrap_or_default()).fold();
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
    fn discard(&mut self, i: u32, d: Drop) -> Outcome {
        self.remove(i);
        self.dropped(d)
    }

    /// Bring slot `i`'s cost (and its source's and the total) up to date.
    fn recost(&mut self, i: u32) {
        let Some(q) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        let now = q.measure();
        let before = std::mem::replace(&mut q.cost, now);
        self.bytes = self.bytes.saturating_sub(before) + now;
        if let Some(s) = self
            .sources
            .get_mut(q.source as usize)
            .and_then(Option::as_mut)
        {
            s.bytes = s.bytes.saturating_sub(before) + now;
        }
    }

    /// Take the datagram in slot `i` out, with its accounting.
    fn remove(&mut self, i: u32) -> Option<Queue> {
        let q = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.index.remove(&q.key);
        self.live -= 1;
        self.bytes = self.bytes.saturating_sub(q.cost);
        if let Some(s) = self
            .sources
            .get_mut(q.source as usize)
            .and_then(Option::as_mut)
        {
            s.bytes = s.bytes.saturating_sub(q.cost);
            s.queues = s.queues.saturating_sub(1);
            if s.queues == 0 {
                self.idle_sources += 1;
            }
        }
        Some(q)
    }

    /// Forget the sources without a datagram in progress once they are as many as the
    /// datagrams (their rid only matters while a datagram of theirs is in progress, see
    /// `push`; keeping them a while saves a table insert and removal per datagram of a
    /// source that sends one after the other).
    fn forget_idle_sources(&mut self) {
        if self.live == 0 {
            // Nothing in progress: nothing to keep them for, and the cache is empty.
            let n = self.source_index.len();
            if n > 0 {
                self.sources.clear();
                self.free_sources.clear();
                self.source_index.clear();
                self.bytes = self.bytes.saturating_sub(n * SOURCE_COST);
            }
            self.idle_sources = 0;
            return;
        }
        if self.idle_sources <= self.live + 256 {
            return;
        }
        for (i, slot) in self.sources.iter_mut().enumerate() {
            if slot.is_some_and(|s| s.queues == 0)
                && let Some(s) = slot.take()
            {
                self.source_index.remove(&s.source);
                self.free_sources.push(i as u32);
                self.bytes = self.bytes.saturating_sub(SOURCE_COST);
            }
        }
        self.idle_sources = 0;
    }

    /// The oldest live entry of the creation order (stale ones are dropped on the way).
    fn oldest(&mut self) -> Option<(u32, u64)> {
        while let Some(&(seq, i)) = self.order.front() {
            match self.slot(i) {
                Some(q) if q.seq == seq => return Some((i, q.created_ms)),
                _ => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    /// Forget the datagrams whose time is up (call it now and then: [`Defrag::push`] does).
    pub fn expire(&mut self, now: u64) {
        while let Some((i, created)) = self.oldest() {
            if now.saturating_sub(created) < self.limits.timeout_ms {
                break;
            }
            self.order.pop_front();
            self.remove(i);
            self.stats.timed_out += 1;
        }
        self.compact();
    }

    /// Over the cap: evict the datagrams started first.
    fn enforce_cap(&mut self) {
        while self.bytes > self.limits.mem_cap {
            let Some((i, _)) = self.oldest() else {
                break;
            };
            self.order.pop_front();
            self.remove(i);
            self.stats.evicted += 1;
        }
        self.compact();
    }

    /// Drop the stale entries of the order once they are half of it, and the sources with
    /// nothing in progress once they are many.
    fn compact(&mut self) {
        self.forget_idle_sources();
        if self.order.len() > 2 * self.live + 64 {
            let slots = &self.slots;
            self.order.retain(|&(seq, i)| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|q| q.seq == seq)
            });
        }
    }
}

#[cfg(test)]
mod tests;
