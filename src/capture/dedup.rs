//! One packet, two copies: the capture reads each candidate packet from the TPACKET_V3 ring
//! (cheap under load, but a lone packet waits there until the kernel retires its block, a
//! timer of 8 ms) and, while traffic is light, also from a plain AF_PACKET socket
//! with the same filter, the "doorbell" (one syscall per packet, but handed over at once).
//! Whichever copy comes first is judged; this table makes sure the other one is not, so a
//! probe is never counted twice towards SCAN_TRIGGER.
//!
//! Both copies of a packet carry the kernel's receive timestamp of the same buffer, so they
//! normally compare equal; the content hash and a small time window also match the copies
//! when the kernel stamped them separately (before packet timestamps were switched on
//! system-wide). Two genuinely distinct packets with the same bytes within the window are
//! retransmissions of one probe; counting them once is the right answer anyway.
//!
//! Order matters too (an outgoing SYN must be seen before the replies it explains): the ring
//! has every packet in arrival order, the doorbell only while its small buffer does not
//! overflow. After the doorbell dropped a packet (the kernel's drop counter, which comes with
//! each packet, moved), its packets are left to the ring until the ring has caught up with
//! the first one after the gap, so no packet is judged before one that came earlier.
//!
//! Pure: no I/O, no clock (time is the packets' own timestamps).

use std::collections::VecDeque;
use std::hash::BuildHasher;

/// Copies further apart than this are different packets.
pub const WINDOW_NS: i64 = 10_000_000;
/// At most this many doorbell packets wait for their ring copy; past it the doorbell leaves
/// packets to the ring (under load the ring is the fast path anyway).
pub const PENDING_MAX: usize = 64;
/// Ring packets remembered for a doorbell copy read after them (a narrow race: the ring
/// block was retired between our doorbell read and the ring read).
pub const RECENT_MAX: usize = 64;

/// What identifies one packet's copies: receive timestamp, captured length, content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Kernel receive time, ns.
    pub ts_ns: i64,
    /// Length of the packet.
    pub len: u32,
    /// Hash of its headers.
    pub hash: u64,
}

impl Key {
    /// The key of captured bytes received at `ts_ns` (ns since the epoch).
    pub fn of(ts_ns: i64, bytes: &[u8]) -> Key {
        // The first 64 bytes: IP and transport headers, including the IP ID, checksums and
        // sequence number that set one probe apart from the next. foldhash, seeded once per
        // process (both copies are hashed here): 16 bytes a step, where FNV-1a's byte at a
        // time was 5.5% of the daemon's CPU under a flood from one /24 (perf, 200,000
        // packets/s).
        static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
        let head = &bytes[..bytes.len().min(64)];
        Key {
            ts_ns,
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            hash: SEED.get_or_init(Default::default).hash_one(head),
        }
    }

    fn same(&self, o: &Key) -> bool {
        self.len == o.len
            && self.hash == o.hash
            && self.ts_ns.abs_diff(o.ts_ns) <= WINDOW_NS.unsigned_abs()
    }
}

/// Whether `pkt` is a TCP segment with ACK or RST set (an unfragmented IPv4 datagram, or IPv6
/// with TCP as its first next header): a packet that a flow this host opened may explain, so
/// the capture judges it from the ring's copy, in arrival order after the host's own SYN
/// ([`Dedup::bell_ack`]). Anything else, or too short to tell: false.
pub fn acks(pkt: &[u8]) -> bool {
    let at = |i: usize| pkt.get(i).copied();
    let flags_at = match at(0).map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(at(0).unwrap_or(0) & 0x0f) * 4;
            let frag = u16::from_be_bytes([at(6).unwrap_or(0xff), at(7).unwrap_or(0xff)]);
            if ihl < 20 || frag & 0x3fff != 0 || at(9) != Some(6) {
                return false;
            }
            ihl + 13
        }
        Some(6) if at(6) == Some(6) => 40 + 13,
        _ => return false,
    };
    at(flags_at).is_some_and(|f| f & 0x14 != 0)
}

#[derive(Debug, Default)]
/// Matches the doorbell's and the ring's copies of each packet (see the module docs).
pub struct Dedup {
    /// Judged from the doorbell; their ring copies are still to come.
    pending: VecDeque<Key>,
    /// The last ring packets judged.
    recent: VecDeque<Key>,
    /// The newest timestamp the ring has handed over.
    ring_max_ts: i64,
    /// The doorbell's drop counter as last seen.
    bell_drops: u32,
    /// The doorbell lost packets before the one stamped so: leave its packets to the ring
    /// until the ring has handed that one over.
    gap_ts: Option<i64>,
    /// When the ring was bound (None: not yet). Packets from before have no ring copy: the
    /// doorbell's are judged as they come.
    ring_since: Option<i64>,
}

impl Dedup {
    /// Nothing seen yet; the ring not attached.
    pub fn new() -> Dedup {
        Dedup::default()
    }

    /// A packet read from the doorbell, with the socket's drop counter at the time it was
    /// queued: judge it (true), or leave it to the ring (false) because the ring already had
    /// it, or the doorbell lost packets before it that the ring has not handed over yet, or
    /// too many doorbell packets wait for their ring copy.
    pub fn bell_copy(&mut self, k: Key, drops: u32) -> bool {
        if self.before_ring(k, drops) {
            return true;
        }
        if let Some(g) = self.gap_ts {
            if self.ring_max_ts < g {
                return false;
            }
            self.gap_ts = None;
        }
        if k.ts_ns <= self.ring_max_ts || self.recent.iter().any(|r| r.same(&k)) {
            return false;
        }
        if self.pending.len() >= PENDING_MAX {
            // Left to the ring, and so is every doorbell packet after it until the ring has
            // handed this one over: a later packet judged first would break the order (a
            // reply judged before the ring's copy of the SYN that explains it).
            self.hold_back_until(k.ts_ns);
            return false;
        }
        self.pending.push_back(k);
        true
    }

    /// A doorbell packet that a flow this host opened may explain (TCP with ACK or RST,
    /// [`acks`]): once the ring is attached it is left to the ring (false), which holds
    /// packets in arrival order, so the host's own SYN of that flow is always noted before
    /// its replies are judged. The timestamps cannot promise that order: the kernel stamps an
    /// outgoing packet before it takes its ring slot and an incoming one (a peer's TCP sends
    /// it with a delivery time) when the capture takes it, so a reply can carry a later stamp
    /// than a SYN the ring holds after it, and the doorbell's SYN copy then looks "handed over
    /// already" while it is not. Before the ring: judged (true), as [`Dedup::bell_copy`].
    pub fn bell_ack(&mut self, k: Key, drops: u32) -> bool {
        self.before_ring(k, drops)
    }

    /// What every doorbell packet goes through first. Before the ring (with a margin around
    /// its bind) no copy will come, nothing to wait for: true (judge it; what the doorbell
    /// lost is lost). After: a moved drop counter holds the doorbell's packets back from
    /// this one on, until the ring has handed it over; false.
    fn before_ring(&mut self, k: Key, drops: u32) -> bool {
        if self.ring_since.is_none_or(|t| k.ts_ns < t - WINDOW_NS) {
            self.bell_drops = drops;
            return true;
        }
        if drops != self.bell_drops {
            self.bell_drops = drops;
            self.hold_back_until(k.ts_ns);
        }
        false
    }

    /// Leave the doorbell's packets to the ring until it has handed over the one stamped
    /// `ts_ns` (the latest such packet when several are pending).
    fn hold_back_until(&mut self, ts_ns: i64) {
        self.gap_ts = Some(self.gap_ts.map_or(ts_ns, |g| g.max(ts_ns)));
    }

    /// A packet from the ring: judge it (true), or skip it (false) because its doorbell copy
    /// was judged.
    pub fn ring_copy(&mut self, k: Key) -> bool {
        self.ring_max_ts = self.ring_max_ts.max(k.ts_ns);
        if let Some(i) = self.pending.iter().position(|p| p.same(&k)) {
            self.pending.remove(i);
            return false;
        }
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(k);
        true
    }

    /// The ring was bound at `ts_ns` (the daemon starts on the doorbell alone while the
    /// ring is being set up).
    pub fn ring_attached(&mut self, ts_ns: i64) {
        self.ring_since = Some(ts_ns);
    }

    /// After a ring pass: forget doorbell packets whose ring copy can no longer come (the
    /// ring dropped it): anything older than the window behind the ring's newest packet.
    pub fn settle(&mut self) {
        let horizon = self.ring_max_ts.saturating_sub(WINDOW_NS);
        self.pending.retain(|p| p.ts_ns >= horizon);
    }

    /// Doorbell packets still waiting for their ring copy.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::classify::tcp_flags::{ACK, RST, SYN};
    use crate::capture::wire::fixtures::{tcp, udp, v4, v6};

    fn k(ts: i64, body: &[u8]) -> Key {
        Key::of(ts, body)
    }

    #[test]
    fn the_key_tells_packets_apart_by_their_headers_and_copies_alike() {
        let a = v4(6, &[], &tcp(143, SYN));
        assert_eq!(Key::of(5, &a), Key::of(5, &a.clone()));
        // Each of the first 64 bytes counts (the IP ID, addresses, ports, sequence number).
        let mut long = a.clone();
        long.resize(80, 0);
        for i in 0..64 {
            let mut b = long.clone();
            b[i] ^= 0x01;
            assert_ne!(Key::of(5, &b).hash, Key::of(5, &long).hash, "byte {i}");
        }
        // The payload beyond them does not (the length still does).
        let mut tail = long.clone();
        tail[70] = 0xff;
        assert_eq!(Key::of(5, &tail), Key::of(5, &long));
        assert_ne!(Key::of(5, &long), Key::of(5, &long[..79]));
    }

    /// A table whose ring was attached long before the test's packets.
    fn with_ring() -> Dedup {
        let mut d = Dedup::new();
        d.ring_attached(i64::MIN / 2);
        d
    }

    #[test]
    fn acks_tells_tcp_with_ack_or_rst_apart_from_the_rest() {
        // Every flag combination, IPv4 with and without options, IPv6.
        for f in 0..=255u8 {
            let want = f & (ACK | RST) != 0;
            assert_eq!(acks(&v4(6, &[], &tcp(1, f))), want, "v4 {f:#x}");
            assert_eq!(
                acks(&v4(6, &[1, 1, 1, 0], &tcp(1, f))),
                want,
                "v4+opts {f:#x}"
            );
            assert_eq!(acks(&v6(6, &tcp(1, f))), want, "v6 {f:#x}");
        }
        // Not TCP, fragments, extension headers, truncated, not IP: false.
        assert!(!acks(&v4(17, &[], &udp(53))));
        assert!(!acks(&v6(17, &udp(53))));
        let mut more = v4(6, &[], &tcp(1, ACK));
        more[6] = 0x20; // MF
        assert!(!acks(&more));
        let mut later = v4(6, &[], &tcp(1, ACK));
        later[7] = 1; // offset 8
        assert!(!acks(&later));
        let mut hop = v6(6, &tcp(1, ACK));
        hop[6] = 0; // hop-by-hop first
        assert!(!acks(&hop));
        let full = v4(6, &[], &tcp(1, ACK));
        assert!(!acks(&full[..33]), "flags byte cut off");
        assert!(acks(&full[..34]));
        assert!(!acks(&[]) && !acks(&[0x50; 60]));
    }

    #[test]
    fn a_reply_is_judged_from_the_ring_copy_after_the_syn_the_ring_holds_before_it() {
        let mut d = with_ring();
        // The ring held an incoming packet stamped 30 µs after the host's SYN, but before
        // the SYN in the ring (stamped at capture, after the SYN's stamp at transmit).
        let early = k(1_030_000, b"incoming");
        let syn = k(1_000_000, b"our syn");
        let reply = k(1_100_000, b"syn+ack");
        assert!(d.ring_copy(early));
        // The doorbell's SYN copy looks handed over already (stamp below the ring's newest):
        // left to the ring, which has not handed it over yet.
        assert!(!d.bell_copy(syn, 0));
        // The reply's doorbell copy: left to the ring too (judged from the doorbell it would
        // come before the SYN is noted, and be reported).
        assert!(!d.bell_ack(reply, 0));
        // The ring then hands over the SYN and the reply, in that order: both judged there.
        assert!(d.ring_copy(syn));
        assert!(d.ring_copy(reply));
        // Before the ring is attached the doorbell judges replies as everything else.
        let mut fresh = Dedup::new();
        assert!(fresh.bell_ack(reply, 0));
        // A doorbell drop seen on a reply holds later doorbell packets back, as for others.
        let mut g = with_ring();
        assert!(!g.bell_ack(k(2_000_000, b"reply after a drop"), 1));
        assert!(!g.bell_copy(k(2_000_100, b"probe"), 1));
        assert!(g.ring_copy(k(2_000_000, b"reply after a drop")));
        assert!(g.bell_copy(k(2_000_200, b"later probe"), 1));
    }

    #[test]
    fn before_the_ring_the_doorbell_alone_judges() {
        let mut d = Dedup::new();
        // No ring yet: every doorbell packet is judged, none waits, drops change nothing.
        for i in 0..(PENDING_MAX as i64 * 2) {
            assert!(d.bell_copy(k(1_000 + i, &i.to_ne_bytes()), (i / 10) as u32));
        }
        assert_eq!(d.pending(), 0);
        // The ring is bound at 1 s: packets from well before it are still judged at once;
        // from then on the copies pair off as usual.
        d.ring_attached(1_000_000_000);
        assert!(d.bell_copy(k(1_000_000_000 - 2 * WINDOW_NS, b"old"), 12));
        assert_eq!(d.pending(), 0);
        let p = k(1_000_000_100, b"new");
        assert!(d.bell_copy(p, 12));
        assert_eq!(d.pending(), 1);
        assert!(!d.ring_copy(p));
    }

    impl Dedup {
        /// A doorbell packet when the doorbell has never dropped one.
        fn bell_copy0(&mut self, k: Key) -> bool {
            self.bell_copy(k, 0)
        }
    }

    #[test]
    fn after_a_doorbell_gap_the_ring_catches_up_first() {
        // The target's SYN went out, the doorbell's buffer was full (dropped it), then the
        // reply came: the reply must not be judged before the ring hands over the SYN.
        let mut d = with_ring();
        let syn = k(1_000, b"outgoing syn");
        let reply = k(2_000, b"syn+ack");
        assert!(
            !d.bell_copy(reply, 1),
            "judged before the packet lost before it"
        );
        assert!(d.ring_copy(syn));
        assert!(d.ring_copy(reply), "the ring judges the reply, in order");
        // Caught up: later doorbell packets are judged again (same drop count).
        assert!(d.bell_copy(k(3_000, b"next"), 1));
        assert!(!d.ring_copy(k(3_000, b"next")));
        // A second gap while the first is pending extends it to the later packet.
        assert!(!d.bell_copy(k(4_000, b"a"), 2));
        assert!(!d.bell_copy(k(5_000, b"b"), 3));
        assert!(d.ring_copy(k(4_000, b"a")));
        assert!(!d.bell_copy(k(6_000, b"c"), 3), "ring not yet at 5000");
        assert!(d.ring_copy(k(5_000, b"b")));
        assert!(d.ring_copy(k(6_000, b"c")));
        assert!(d.bell_copy(k(7_000, b"d"), 3));
    }

    #[test]
    fn bell_first_then_ring_counts_once() {
        let mut d = with_ring();
        let p = k(1_000, b"probe one");
        assert!(d.bell_copy0(p));
        assert!(!d.ring_copy(p), "ring copy of a judged doorbell packet");
        assert_eq!(d.pending(), 0);
        // The next, different packet from the ring alone is judged.
        assert!(d.ring_copy(k(2_000, b"probe two")));
    }

    #[test]
    fn ring_first_then_bell_counts_once() {
        let mut d = with_ring();
        let p = k(1_000, b"probe");
        assert!(d.ring_copy(p));
        assert!(!d.bell_copy0(p), "doorbell copy of a judged ring packet");
        // A stale doorbell packet older than what the ring handed over: the ring had it.
        assert!(!d.bell_copy0(k(500, b"older")));
    }

    #[test]
    fn separately_stamped_copies_match_within_the_window() {
        let mut d = with_ring();
        // The kernel stamped each copy itself: 30 us apart.
        assert!(d.bell_copy0(k(1_030_000, b"probe")));
        assert!(!d.ring_copy(k(1_000_000, b"probe")));
        let mut d = with_ring();
        assert!(d.ring_copy(k(1_000_000, b"x")));
        assert!(!d.bell_copy0(k(1_000_000 + WINDOW_NS, b"x")));
        // Same bytes far apart in time: two probes, both judged.
        let mut d = with_ring();
        assert!(d.bell_copy0(k(1_000, b"same")));
        assert!(!d.ring_copy(k(1_000, b"same")));
        assert!(d.bell_copy0(k(1_000 + 2 * WINDOW_NS, b"same")));
    }

    #[test]
    fn identical_packets_pair_off_one_to_one() {
        // The same bytes sent twice in a row: two doorbell copies, two ring copies; each
        // ring copy cancels one doorbell copy, nothing is judged twice or lost.
        let mut d = with_ring();
        let p = k(1_000, b"dup");
        let q = k(1_001, b"dup");
        assert!(d.bell_copy0(p));
        assert!(d.bell_copy0(q));
        assert!(!d.ring_copy(p));
        assert!(!d.ring_copy(q));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn different_content_or_length_is_a_different_packet() {
        let mut d = with_ring();
        assert!(d.bell_copy0(k(1_000, b"abc")));
        assert!(d.ring_copy(k(1_000, b"abd")));
        assert!(d.ring_copy(k(1_000, b"abcd")));
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn a_packet_left_to_the_ring_when_full_keeps_the_order() {
        // A burst fills the table of doorbell packets waiting for their ring copies; the next
        // one (the host's SYN) is left to the ring. A reply that the doorbell hands over
        // after a ring pass made room must wait until the ring has handed over the SYN.
        let mut d = with_ring();
        for i in 0..PENDING_MAX as i64 {
            assert!(d.bell_copy0(k(1_000 + i, &i.to_ne_bytes())));
        }
        let syn = k(2_000, b"outgoing syn");
        assert!(!d.bell_copy0(syn), "table full: left to the ring");
        // The ring hands over the burst (its block with the SYN is not retired yet).
        for i in 0..PENDING_MAX as i64 {
            assert!(!d.ring_copy(k(1_000 + i, &i.to_ne_bytes())));
        }
        assert_eq!(d.pending(), 0);
        let reply = k(3_000, b"reply");
        assert!(
            !d.bell_copy0(reply),
            "the reply must not be judged before the SYN the ring still holds"
        );
        assert!(d.ring_copy(syn), "the SYN is judged from the ring");
        assert!(d.ring_copy(reply), "then the reply, in order");
        assert!(
            d.bell_copy0(k(4_000, b"next")),
            "caught up: the doorbell again"
        );
    }

    #[test]
    fn bounded_and_settled() {
        let mut d = with_ring();
        for i in 0..(PENDING_MAX as i64 + 10) {
            let judged = d.bell_copy0(k(1_000 + i, &i.to_ne_bytes()));
            assert_eq!(judged, i < PENDING_MAX as i64, "packet {i}");
        }
        assert_eq!(d.pending(), PENDING_MAX);
        // The ring dropped them all; a much later ring packet settles the table.
        assert!(d.ring_copy(k(1_000 + 5 * WINDOW_NS, b"later")));
        d.settle();
        assert_eq!(d.pending(), 0);
        for i in 0..1000i64 {
            d.ring_copy(k(10 * WINDOW_NS + i, &i.to_ne_bytes()));
        }
        assert!(d.recent.len() <= RECENT_MAX);
    }

    #[test]
    fn hash_uses_only_the_headers() {
        let mut a = vec![7u8; 200];
        let b = a.clone();
        a[150] = 0; // payload past 64 bytes: same key if the lengths agree
        assert_eq!(Key::of(1, &a), Key::of(1, &b));
        a[10] = 0;
        assert_ne!(Key::of(1, &a), Key::of(1, &b));
    }
}
