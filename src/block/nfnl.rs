//! The hot path of nftables blocking as nfnetlink bytes: one batch (one kernel transaction)
//! that adds host elements to `inet portsentry blocked4|blocked6`, and the reader of the
//! kernel's answers to it. Table, sets and chain are still made by `nft -f` once at start-up
//! (`crate::block::nft`); only element adds, many per second under a flood, skip nft's parser.
//!
//! Pure: bytes out, bytes in; it never opens a socket (`sys::block::nfnl` does) and never reads the
//! clock. The layout is the one nft 1.0.6 sends for `add element inet portsentry blocked4
//! { 198.51.100.7 timeout 60s, 198.51.100.8 }` (seen with `strace -xx nft ...`; the tests
//! below hold those bytes), minus nft's optional NFTA_SET_ELEM_LIST_SET_ID, plus NLM_F_ACK:
//!
//! ```text
//! nlmsghdr NFNL_MSG_BATCH_BEGIN   nfgenmsg{AF_UNSPEC, v0, res_id=be16 NFNL_SUBSYS_NFTABLES}
//! nlmsghdr NFT_MSG_NEWSETELEM     nfgenmsg{NFPROTO_INET, v0, 0}      (one or more)
//!   NFTA_SET_ELEM_LIST_TABLE "portsentry\0"
//!   NFTA_SET_ELEM_LIST_SET   "blocked4\0"
//!   NFTA_SET_ELEM_LIST_ELEMENTS (nested)
//!     [i] (nested, type i+1 as libnftnl numbers them)
//!       NFTA_SET_ELEM_TIMEOUT  be64 ms        (absent: the element never expires)
//!       NFTA_SET_ELEM_KEY (nested) / NFTA_DATA_VALUE  the address, network order
//! nlmsghdr NFNL_MSG_BATCH_END     nfgenmsg{AF_UNSPEC, v0, res_id=be16 NFNL_SUBSYS_NFTABLES}
//! ```
//!
//! Netlink headers are in host byte order, nfnetlink payloads in network order. No crate is
//! used for this: nix has netlink sockets but no nfnetlink messages, and the few fixed
//! layouts here are smaller than a dependency (rustables/nftnl need libnftnl or are far
//! larger than this module).
//!
//! The kernel processes a batch inside the sender's `sendmsg`, so every answer is queued on
//! the socket when that call returns; [`outcome`] decides from those answers. A transaction
//! is all or nothing: one refused element (set full: ENFILE) fails every message of it.

use std::net::IpAddr;

use crate::block::nft::{Failure, Set, TABLE};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// "add", not "create": an element that is already there is no error.
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

/// Elements per NEWSETELEM message. The ELEMENTS attribute's length field has 16 bits
/// (65,535 bytes) and an IPv6 element with a timeout takes 40 bytes: 1,024 fit with room.
pub const PER_MESSAGE: usize = 1024;

/// One batch, ready to send in one `sendmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The message bytes, ready to send.
    pub bytes: Vec<u8>,
    /// Sequence number of BATCH_BEGIN: the kernel answers a batch refused as a whole
    /// (no permission, commit failed) with an error for this number.
    pub begin_seq: u32,
    /// Sequence numbers of the NEWSETELEM messages; each is acknowledged (NLM_F_ACK).
    pub acked: Vec<u32>,
    /// The first number free for the next batch.
    pub next_seq: u32,
}

fn put_hdr(b: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> usize {
    let at = b.len();
    b.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end_msg
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id 0: to the kernel
    at
}

fn end_msg(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u32;
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&len.to_ne_bytes());
    }
}

fn put_nfgen(b: &mut Vec<u8>, family: u8, res_id: u16) {
    b.push(family);
    b.push(0); // NFNETLINK_V0
    b.extend_from_slice(&res_id.to_be_bytes());
}

fn pad(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn put_attr(b: &mut Vec<u8>, ty: u16, data: &[u8]) {
    b.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(data);
    pad(b);
}

fn put_str(b: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    put_attr(b, ty, &v);
}

fn nest_start(b: &mut Vec<u8>, ty: u16) -> usize {
    let at = b.len();
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

fn nest_end(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u16;
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&len.to_ne_bytes());
    }
}

fn batch_marker(b: &mut Vec<u8>, ty: u16, seq: u32) {
    let at = put_hdr(b, ty, NLM_F_REQUEST, seq);
    put_nfgen(b, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
    end_msg(b, at);
}

/// One transaction adding `elems` (address, timeout in ms; 0: no timeout) to `set`, in
/// messages of [`PER_MESSAGE`] elements, numbered from `seq`. An address of the other family
/// than the set's is sent as it is and refused by the kernel (the caller sorts by family).
pub fn add_elements(seq: u32, set: Set, elems: &[(IpAddr, u64)]) -> Request {
    elements(seq, set, elems, NFT_MSG_NEWSETELEM)
}

/// One transaction deleting `addrs` from `set` (nft 1.0.6's `delete element`: DELSETELEM,
/// the same attributes without a timeout). A missing element fails the whole transaction
/// with ENOENT, as a missing table or set does.
pub fn del_elements(seq: u32, set: Set, addrs: &[IpAddr]) -> Request {
    let elems: Vec<(IpAddr, u64)> = addrs.iter().map(|&a| (a, 0)).collect();
    elements(seq, set, &elems, NFT_MSG_DELSETELEM)
}

fn elements(seq: u32, set: Set, elems: &[(IpAddr, u64)], msg: u16) -> Request {
    let flags = if msg == NFT_MSG_NEWSETELEM {
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    let mut b = Vec::with_capacity(64 + elems.len() * 40);
    let begin_seq = seq;
    batch_marker(&mut b, NFNL_MSG_BATCH_BEGIN, begin_seq);
    let mut s = seq.wrapping_add(1);
    let mut acked = Vec::new();
    for chunk in elems.chunks(PER_MESSAGE) {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        let at = put_hdr(&mut b, ty, flags, s);
        put_nfgen(&mut b, NFPROTO_INET, 0);
        put_str(&mut b, NFTA_SET_ELEM_LIST_TABLE, TABLE);
        put_str(&mut b, NFTA_SET_ELEM_LIST_SET, set.name());
        let list = nest_start(&mut b, NFTA_SET_ELEM_LIST_ELEMENTS);
        for (i, &(addr, timeout_ms)) in chunk.iter().enumerate() {
            let e = nest_start(&mut b, (i + 1) as u16);
            if timeout_ms > 0 {
                put_attr(&mut b, NFTA_SET_ELEM_TIMEOUT, &timeout_ms.to_be_bytes());
            }
            let k = nest_start(&mut b, NFTA_SET_ELEM_KEY);
            match addr.to_canonical() {
                IpAddr::V4(a) => put_attr(&mut b, NFTA_DATA_VALUE, &a.octets()),
                IpAddr::V6(a) => put_attr(&mut b, NFTA_DATA_VALUE, &a.octets()),
            }
            nest_end(&mut b, k);
            nest_end(&mut b, e);
        }
        nest_end(&mut b, list);
        end_msg(&mut b, at);
        acked.push(s);
        s = s.wrapping_add(1);
    }
    batch_marker(&mut b, NFNL_MSG_BATCH_END, s);
    Request {
        bytes: b,
        begin_seq,
        acked,
        next_seq: s.wrapping_add(1),
    }
}

/// An NLMSG_ERROR from the kernel: `errno` 0 is an acknowledgement, otherwise the positive
/// errno of the refused message `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The sequence number it answers.
    pub seq: u32,
    /// 0, or the error number.
    pub errno: i32,
}

/// The acknowledgements and errors in one datagram read from the socket; other messages
/// (none are expected) are skipped. Stops at the first header that does not fit: the bytes
/// come from the kernel, but nothing here may panic on them.
pub fn parse_acks(buf: &[u8]) -> Vec<Ack> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let u32_at = |s: &[u8], i: usize| {
            s.get(i..i + 4)
                .and_then(|x| x.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let Some(len) = u32_at(rest, 0).map(|l| l as usize) else {
            break;
        };
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        let ty = rest
            .get(4..6)
            .and_then(|x| x.try_into().ok())
            .map_or(0, u16::from_ne_bytes);
        // The error code follows the header, then a copy of the refused message's header,
        // whose sequence number tells which message it was.
        if ty == NLMSG_ERROR
            && let (Some(code), Some(seq)) = (u32_at(rest, 16), u32_at(rest, 20 + 8))
        {
            out.push(Ack {
                seq,
                errno: (code as i32).saturating_neg(),
            });
        }
        let step = len.next_multiple_of(4).min(rest.len());
        rest = rest.get(step..).unwrap_or(&[]);
    }
    out
}

/// What the answers read after a batch say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every message acknowledged, no error: the elements are in the set.
    Done,
    /// The transaction was refused (first error found); nothing of it is in the set.
    Failed(i32),
    /// Acknowledgements are missing and no error came (answers lost).
    Incomplete,
}

/// Whether the acknowledgements answer every message of `req`.
pub fn outcome(req: &Request, acks: &[Ack]) -> Outcome {
    let ours = |a: &&Ack| a.seq == req.begin_seq || req.acked.contains(&a.seq);
    if let Some(a) = acks.iter().filter(ours).find(|a| a.errno != 0) {
        return Outcome::Failed(a.errno);
    }
    let all = req
        .acked
        .iter()
        .all(|s| acks.iter().any(|a| a.seq == *s && a.errno == 0));
    if all {
        Outcome::Done
    } else {
        Outcome::Incomplete
    }
}

/// How a refused batch is handled: ENFILE is the kernel's "set is full" (its `size`
/// reached; nft prints it as "Too many open files in system"); ENOENT a missing table or set.
pub fn failure_of(errno: i32) -> Failure {
    match errno {
        libc::ENFILE | libc::ENOSPC => Failure::SetFull,
        libc::ENOENT => Failure::Missing,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// nft 1.0.6's NEWSETELEM for `add element inet portsentry blocked4 { 198.51.100.7
    /// timeout 60s, 198.51.100.8 }` after its header (strace -xx), without its 8-byte
    /// NFTA_SET_ELEM_LIST_SET_ID attribute.
    const NFT_V4_BODY: &[u8] = b"\x01\x00\x00\x00\
        \x0f\x00\x01\x00portsentry\x00\x00\
        \x0d\x00\x02\x00blocked4\x00\x00\x00\x00\
        \x30\x00\x03\x80\
        \x1c\x00\x01\x80\x0c\x00\x04\x00\x00\x00\x00\x00\x00\x00\xea\x60\
        \x0c\x00\x01\x80\x08\x00\x01\x00\xc6\x33\x64\x07\
        \x10\x00\x02\x80\x0c\x00\x01\x80\x08\x00\x01\x00\xc6\x33\x64\x08";

    fn hdr(len: u32, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = len.to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&[0; 4]);
        v
    }

    #[test]
    fn an_ipv4_batch_is_byte_for_byte_what_nft_sends() {
        let r = add_elements(
            7,
            Set::Hosts4,
            &[(ip("198.51.100.7"), 60_000), (ip("198.51.100.8"), 0)],
        );
        let mut want = hdr(20, 0x10, 1, 7);
        want.extend_from_slice(b"\x00\x00\x00\x0a");
        want.extend(hdr(16 + NFT_V4_BODY.len() as u32, 0x0a0c, 0x405, 8));
        want.extend_from_slice(NFT_V4_BODY);
        want.extend(hdr(20, 0x11, 1, 9));
        want.extend_from_slice(b"\x00\x00\x00\x0a");
        assert_eq!(r.bytes, want);
        assert_eq!((r.begin_seq, r.acked.clone(), r.next_seq), (7, vec![8], 10));
    }

    /// nft 1.0.6's DELSETELEM for `delete element inet portsentry blocked4 { 198.51.100.7,
    /// 198.51.100.8 }` (strace -xx, 2026-12-07): no timeout, no NLM_F_CREATE; ours adds
    /// NLM_F_ACK, as for adds.
    #[test]
    fn a_delete_batch_is_byte_for_byte_what_nft_sends() {
        let r = del_elements(1, Set::Hosts4, &[ip("198.51.100.7"), ip("198.51.100.8")]);
        let body: &[u8] = b"\x01\x00\x00\x00\
            \x0f\x00\x01\x00portsentry\x00\x00\
            \x0d\x00\x02\x00blocked4\x00\x00\x00\x00\
            \x24\x00\x03\x80\
            \x10\x00\x01\x80\x0c\x00\x01\x80\x08\x00\x01\x00\xc6\x33\x64\x07\
            \x10\x00\x02\x80\x0c\x00\x01\x80\x08\x00\x01\x00\xc6\x33\x64\x08";
        let mut want = hdr(20, 0x10, 1, 1);
        want.extend_from_slice(b"\x00\x00\x00\x0a");
        want.extend(hdr(16 + body.len() as u32, 0x0a0e, 0x5, 2));
        want.extend_from_slice(body);
        want.extend(hdr(20, 0x11, 1, 3));
        want.extend_from_slice(b"\x00\x00\x00\x0a");
        assert_eq!(r.bytes, want);
        assert_eq!(16 + body.len(), 88, "nft's message is 88 bytes long");
        assert_eq!((r.begin_seq, r.acked.clone(), r.next_seq), (1, vec![2], 4));
    }

    #[test]
    fn an_ipv6_element_carries_16_bytes_and_its_timeout() {
        let r = add_elements(0, Set::Hosts6, &[(ip("2001:db8::1"), 2_000)]);
        let elem: &[u8] = b"\x28\x00\x01\x80\
            \x0c\x00\x04\x00\x00\x00\x00\x00\x00\x00\x07\xd0\
            \x18\x00\x01\x80\x14\x00\x01\x00\
            \x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01";
        // begin (20) + header 16 + nfgen 4 + table 16 + set "blocked6" 16 + nest 4.
        let at = 20 + 16 + 4 + 16 + 16;
        assert_eq!(&r.bytes[at - 8..at - 4], b"ked6");
        assert_eq!(&r.bytes[at..at + 2], &(4u16 + 40).to_ne_bytes());
        assert_eq!(&r.bytes[at + 4..at + 4 + elem.len()], elem);
        assert_eq!(r.bytes.len(), at + 4 + elem.len() + 20);
        // An IPv4-mapped address goes in as the IPv4 address it is.
        let m = add_elements(0, Set::Hosts4, &[(ip("::ffff:198.51.100.8"), 0)]);
        assert!(m.bytes.windows(4).any(|w| w == [0xc6, 0x33, 0x64, 0x08]));
    }

    #[test]
    fn large_batches_split_into_messages_that_fit_a_16_bit_attribute() {
        let elems: Vec<(IpAddr, u64)> = (0..2500u32)
            .map(|i| {
                (
                    IpAddr::V6((0x2001_0db8u128 << 96 | u128::from(i)).into()),
                    3_600_000,
                )
            })
            .collect();
        let r = add_elements(u32::MAX, Set::Hosts6, &elems);
        assert_eq!(r.begin_seq, u32::MAX);
        assert_eq!(r.acked, vec![0, 1, 2], "3 messages, numbers wrap");
        assert_eq!(r.next_seq, 4);
        // Walk the messages: lengths add up, every ELEMENTS nest fits in u16.
        let mut at = 0;
        let mut n = 0;
        while at < r.bytes.len() {
            let len = u32::from_ne_bytes(r.bytes[at..at + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(r.bytes[at + 4..at + 6].try_into().unwrap());
            if ty == 0x0a0c {
                let nest = at + 16 + 4 + 16 + 16;
                let nlen = u16::from_ne_bytes(r.bytes[nest..nest + 2].try_into().unwrap());
                assert_eq!(usize::from(nlen), len - (nest - at));
                n += 1;
            }
            at += len;
        }
        assert_eq!((at, n), (r.bytes.len(), 3));
    }

    fn err_msg(errno: i32, seq: u32) -> Vec<u8> {
        let mut v = hdr(36, NLMSG_ERROR, 0x100, seq);
        v.extend_from_slice(&(-errno).to_ne_bytes());
        v.extend(hdr(100, 0x0a0c, 0x405, seq));
        v
    }

    #[test]
    fn answers_are_read_and_judged() {
        let r = add_elements(10, Set::Hosts4, &[(ip("198.51.100.7"), 0)]);
        let ok = parse_acks(&err_msg(0, 11));
        assert_eq!(ok, vec![Ack { seq: 11, errno: 0 }]);
        assert_eq!(outcome(&r, &ok), Outcome::Done);
        assert_eq!(outcome(&r, &[]), Outcome::Incomplete);
        // A stale answer of another batch does not count.
        assert_eq!(
            outcome(&r, &parse_acks(&err_msg(0, 3))),
            Outcome::Incomplete
        );
        let mut two = err_msg(0, 11);
        two.extend(err_msg(libc::ENFILE, 10));
        let acks = parse_acks(&two);
        assert_eq!(outcome(&r, &acks), Outcome::Failed(libc::ENFILE));
        assert_eq!(failure_of(libc::ENFILE), Failure::SetFull);
        assert_eq!(failure_of(libc::ENOENT), Failure::Missing);
        assert_eq!(failure_of(libc::EPERM), Failure::Other);
    }

    #[test]
    fn broken_answers_never_panic() {
        let good = err_msg(0, 11);
        for cut in 0..good.len() {
            let _ = parse_acks(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_acks(&bad).is_empty());
        bad[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_acks(&bad).is_empty());
        let mut rng = crate::testrng::Rng(7);
        for _ in 0..2000 {
            let n = rng.below(80);
            let v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let _ = parse_acks(&v);
        }
    }
}
