//! One exact sock_diag lookup: is there a TCP connection (any state but LISTEN, TIME_WAIT
//! included) with this 4-tuple? The request is `inet_diag_req_v2` with the exact socket id
//! and no dump flag: the kernel looks the tuple up in its hash tables
//! (`inet_diag_find_one_icsk`, the lookup a packet gets) instead of walking every connection
//! as a dump does, so the cost does not grow with the connections the host has.
//!
//! Pure: the request bytes and the reading of the reply. The socket is `sys::capture::sockdiag`.
//! The kernel's lookup falls back to a listener on the port when no connection matches; such
//! an answer is no flow (its remote end is the wildcard).

use std::net::{IpAddr, SocketAddr};

use crate::capture::socktable::{diag, parse_diag_msg};

/// `INET_DIAG_NOCOOKIE`: match whatever socket has the tuple.
const NO_COOKIE: u32 = u32::MAX;
/// ENOENT: no socket has the tuple.
const ENOENT: i32 = 2;
/// TCP_LISTEN (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 0x0a;
/// Every state, TIME_WAIT and NEW_SYN_RECV included (the exact lookup ignores the mask,
/// but says what is asked).
const ANY_STATE: u32 = u32::MAX;

/// The request (`nlmsghdr` + `inet_diag_req_v2` with the exact id) for the TCP socket whose
/// local end is `local` and remote end `remote`. IPv4 when both are IPv4 (an IPv4-mapped
/// IPv6 address counts as IPv4: the kernel hashes such a connection of a dual-stack socket
/// as IPv4), else IPv6.
pub fn request(local: SocketAddr, remote: SocketAddr, seq: u32) -> Vec<u8> {
    let (l, r) = (local.ip().to_canonical(), remote.ip().to_canonical());
    let family = match (l, r) {
        (IpAddr::V4(_), IpAddr::V4(_)) => diag::AF_INET,
        _ => diag::AF_INET6,
    };
    let bytes = |ip: IpAddr| -> [u8; 16] {
        match (family, ip) {
            (diag::AF_INET, IpAddr::V4(a)) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                b
            }
            (_, IpAddr::V4(a)) => a.to_ipv6_mapped().octets(),
            (_, IpAddr::V6(a)) => a.octets(),
        }
    };
    let len = (diag::NLMSG_HDRLEN + diag::REQ_LEN) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&diag::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&diag::NLM_F_REQUEST.to_ne_bytes()); // no dump: one socket
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    m.extend_from_slice(&[family, diag::IPPROTO_TCP, 0, 0]); // family, protocol, ext, pad
    m.extend_from_slice(&ANY_STATE.to_ne_bytes());
    // inet_diag_sockid: sport, dport (big-endian), src, dst, if, cookie.
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&remote.port().to_be_bytes());
    m.extend_from_slice(&bytes(l));
    m.extend_from_slice(&bytes(r));
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    m.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    debug_assert_eq!(m.len(), len as usize);
    m
}

/// What a reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A connection has the tuple.
    Flow,
    /// None has it (ENOENT, or only a listener on the port).
    NoFlow,
    /// The lookup failed with this errno (no inet_diag for the family, ...): ask otherwise.
    Failed(i32),
}

/// Read the reply to [`request`] number `seq` for (`local`, `remote`); None when `buf` is
/// not that reply (another sequence number, or no whole message).
pub fn answer(buf: &[u8], seq: u32, local: SocketAddr, remote: SocketAddr) -> Option<Answer> {
    let hdr = buf.get(..diag::NLMSG_HDRLEN)?;
    let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let ty = u16::from_ne_bytes([hdr[4], hdr[5]]);
    let got_seq = u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    if got_seq != seq || len < diag::NLMSG_HDRLEN {
        return None;
    }
    let body = buf.get(diag::NLMSG_HDRLEN..len)?;
    match ty {
        diag::NLMSG_ERROR => {
            let e = body.get(..4)?;
            let errno = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]).saturating_neg();
            Some(if errno == ENOENT {
                Answer::NoFlow
            } else {
                Answer::Failed(errno)
            })
        }
        diag::SOCK_DIAG_BY_FAMILY => {
            let (l, r, state) = parse_diag_msg(body)?;
            let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
            let same = (l, r) == (canon(local), canon(remote));
            Some(if same && state != TCP_LISTEN {
                Answer::Flow
            } else {
                Answer::NoFlow
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A reply as the kernel words it: header, then `inet_diag_msg` up to its id.
    fn reply(seq: u32, family: u8, state: u8, local: SocketAddr, remote: SocketAddr) -> Vec<u8> {
        let mut body = vec![family, state, 0, 0];
        body.extend_from_slice(&local.port().to_be_bytes());
        body.extend_from_slice(&remote.port().to_be_bytes());
        for a in [local.ip(), remote.ip()] {
            match a {
                IpAddr::V4(v) => {
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&v.octets());
                    body.extend_from_slice(&b);
                }
                IpAddr::V6(v) => body.extend_from_slice(&v.octets()),
            }
        }
        body.extend_from_slice(&[0; 12]); // if, cookie
        body.extend_from_slice(&[0; 20]); // expires, rqueue, wqueue, uid, inode
        let mut m = ((diag::NLMSG_HDRLEN + body.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        m.extend_from_slice(&diag::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = 36u32.to_ne_bytes().to_vec();
        m.extend_from_slice(&diag::NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0; 16]); // the request's header
        m
    }

    #[test]
    fn the_request_carries_the_exact_id_without_dump() {
        let r = request(sa("198.51.100.1:22"), sa("198.51.100.2:40000"), 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32::from_ne_bytes(r[..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), diag::NLM_F_REQUEST);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..18], &[diag::AF_INET, diag::IPPROTO_TCP]);
        assert_eq!(&r[24..28], &[0, 22, 0x9c, 0x40]);
        assert_eq!(&r[28..32], &[198, 51, 100, 1]);
        assert_eq!(&r[32..44], &[0; 12]);
        assert_eq!(&r[44..48], &[198, 51, 100, 2]);
        assert_eq!(&r[64..72], &[0xff; 8]);
        let r6 = request(sa("[2001:db8::1]:22"), sa("[::ffff:192.0.2.1]:9"), 1);
        assert_eq!(r6[16], diag::AF_INET6);
        assert_eq!(
            r6[28..44],
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(
            r6[44..60],
            "::ffff:192.0.2.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        // Mapped on both ends: IPv4.
        let m = request(sa("[::ffff:192.0.2.2]:22"), sa("[::ffff:192.0.2.1]:9"), 1);
        assert_eq!((m[16], &m[28..32]), (diag::AF_INET, &[192, 0, 2, 2][..]));
    }

    #[test]
    fn replies_say_flow_no_flow_or_failed() {
        let (l, r) = (sa("198.51.100.1:22"), sa("198.51.100.2:40000"));
        for state in [1, 6, 8] {
            // ESTABLISHED, TIME_WAIT, CLOSE_WAIT
            assert_eq!(
                answer(&reply(3, diag::AF_INET, state, l, r), 3, l, r),
                Some(Answer::Flow)
            );
        }
        // The kernel's fallback to the port's listener: no flow.
        let any = sa("0.0.0.0:0");
        assert_eq!(
            answer(
                &reply(3, diag::AF_INET, TCP_LISTEN, sa("0.0.0.0:22"), any),
                3,
                l,
                r
            ),
            Some(Answer::NoFlow)
        );
        assert_eq!(answer(&error(3, 2), 3, l, r), Some(Answer::NoFlow));
        assert_eq!(answer(&error(3, 95), 3, l, r), Some(Answer::Failed(95)));
        // Someone else's reply, or a cut one: not ours.
        assert_eq!(answer(&reply(4, diag::AF_INET, 1, l, r), 3, l, r), None);
        assert_eq!(answer(&error(3, 2)[..10], 3, l, r), None);
        assert_eq!(
            answer(&reply(3, diag::AF_INET, 1, l, r)[..40], 3, l, r),
            None
        );
        // A dual-stack socket's mapped addresses match the IPv4 packet's.
        let (ml, mr) = (
            sa("[::ffff:198.51.100.1]:22"),
            sa("[::ffff:198.51.100.2]:40000"),
        );
        assert_eq!(
            answer(&reply(5, diag::AF_INET6, 1, ml, mr), 5, l, r),
            Some(Answer::Flow)
        );
        // Another tuple in the answer is no answer for ours.
        let other = sa("198.51.100.3:40000");
        assert_eq!(
            answer(&reply(6, diag::AF_INET, 1, l, other), 6, l, r),
            Some(Answer::NoFlow)
        );
    }
}
