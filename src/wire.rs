//! Packet views: one captured L3 packet (IPv4 or IPv6 header first, as an AF_PACKET
//! `SOCK_DGRAM` socket delivers it) becomes a typed [`Probe`], or a [`WireError`] saying why
//! it was dropped. This is the only place that reads packet bytes.
//!
//! Pure, and it never panics on any input: every read goes through `slice::get`, so a
//! truncated or malformed packet is an error value, not an index panic. The caller counts
//! errors by [`WireError::kind`] instead of logging each one (STYLE 1), except the IPv4 header
//! length below 5, for which 1.2 logs a line of its own (§3.2, §8.3).
//!
//! The fixed headers are read through pnet_packet's views (`Ipv4Packet`, `Ipv6Packet`,
//! `TcpPacket`, `UdpPacket`), whose constructors refuse a buffer shorter than the header; the
//! IPv6 extension-header chain is walked here (pnet has views for single extension headers
//! but no walker). The raw TCP flag byte is kept whole (STYLE 2): pnet's `get_flags` is the
//! full 8-bit field.

use std::net::{IpAddr, Ipv4Addr};

use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

use crate::mode::Proto;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod ipproto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// IPv6 no next header.
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
}

/// Extension headers walked before giving up (RFC 8200 §4.1 allows each at most once or
/// twice; a longer chain is a malformed or hostile packet).
pub const MAX_EXT_HEADERS: usize = 8;

/// One TCP segment or UDP datagram seen on the wire, parsed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub proto: Proto,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The raw TCP flag byte (all 8 bits: CWR ECE URG ACK PSH RST SYN FIN); 0 for UDP.
    pub tcp_flags: u8,
    /// IPv4: the header carries options (IHL > 5), which 1.2 reports (§3.2). IPv6: a
    /// hop-by-hop, routing or destination-options header was present (the v6 equivalent).
    pub ip_options: bool,
}

/// Why a packet gave no probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Empty packet or an IP version other than 4 and 6.
    NotIp,
    /// The packet ends inside the IP header (or inside an IPv6 extension header).
    TruncatedIp,
    /// IPv4 header length below 5 words: 1.2 logs `illegal_header_length` (§3.2). `proto` is
    /// `None` when the protocol field is neither TCP nor UDP.
    IllegalHeaderLength {
        /// The header length field.
        ihl: u8,
        /// The source address.
        src: Ipv4Addr,
        /// The protocol, if TCP or UDP.
        proto: Option<Proto>,
    },
    /// The IPv4 total length or the IHL points past the captured bytes' header.
    BadLength,
    /// Not TCP or UDP (ICMP, ESP, no next header, ...).
    NotTcpUdp,
    /// A fragment other than the first: it has no transport header.
    LaterFragment,
    /// More than [`MAX_EXT_HEADERS`] IPv6 extension headers.
    TooManyExtHeaders,
    /// The packet ends inside the TCP or UDP header (before the flag byte or the ports).
    TruncatedTransport,
    /// TCP data offset below 5 words: not a TCP header a stack would accept.
    BadTcpOffset,
}

impl WireError {
    /// Number of distinct kinds, for a counter array indexed by [`WireError::kind`].
    pub const KINDS: usize = 9;

    /// An index for per-kind counters.
    pub fn kind(self) -> usize {
        match self {
            WireError::NotIp => 0,
            WireError::TruncatedIp => 1,
            WireError::IllegalHeaderLength { .. } => 2,
            WireError::BadLength => 3,
            WireError::NotTcpUdp => 4,
            WireError::LaterFragment => 5,
            WireError::TooManyExtHeaders => 6,
            WireError::TruncatedTransport => 7,
            WireError::BadTcpOffset => 8,
        }
    }

    /// A short name per kind, for the periodic drop-counter line.
    pub fn kind_name(kind: usize) -> &'static str {
        [
            "not-ip",
            "truncated-ip",
            "illegal-ihl",
            "bad-length",
            "not-tcp-udp",
            "later-fragment",
            "too-many-ext-headers",
            "truncated-transport",
            "bad-tcp-offset",
        ]
        .get(kind)
        .copied()
        .unwrap_or("?")
    }
}

/// Dropped packets counted by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drops(pub [u64; WireError::KINDS]);

impl Drops {
    /// Count one malformed packet.
    pub fn count(&mut self, e: WireError) {
        if let Some(c) = self.0.get_mut(e.kind()) {
            *c = c.saturating_add(1);
        }
    }

    /// Malformed packets in all.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// `name=count` for each non-zero kind, space separated (empty if none).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (i, n) in self.0.iter().enumerate() {
            if *n > 0 {
                parts.push(format!("{}={n}", WireError::kind_name(i)));
            }
        }
        parts.join(" ")
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// Parse one L3 packet.
pub fn parse(pkt: &[u8]) -> Result<Probe, WireError> {
    match byte(pkt, 0).map(|b| b >> 4) {
        Some(4) => parse_v4(pkt),
        Some(6) => parse_v6(pkt),
        _ => Err(WireError::NotIp),
    }
}

fn l4_proto(p: u8) -> Option<Proto> {
    match p {
        ipproto::TCP => Some(Proto::Tcp),
        ipproto::UDP => Some(Proto::Udp),
        _ => None,
    }
}

fn parse_v4(pkt: &[u8]) -> Result<Probe, WireError> {
    let ip = Ipv4Packet::new(pkt).ok_or(WireError::TruncatedIp)?;
    let ihl = ip.get_header_length();
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let proto = l4_proto(ip.get_next_level_protocol().0);
    if ihl < 5 {
        return Err(WireError::IllegalHeaderLength { ihl, src, proto });
    }
    let hlen = usize::from(ihl) * 4;
    let total = usize::from(ip.get_total_length());
    // The total length must cover the header; a capture may be shorter (snap length), and
    // the bytes after `total` (link padding) are not part of the packet.
    if total < hlen {
        return Err(WireError::BadLength);
    }
    if pkt.len() < hlen {
        return Err(WireError::TruncatedIp);
    }
    let proto = proto.ok_or(WireError::NotTcpUdp)?;
    if ip.get_fragment_offset() != 0 {
        return Err(WireError::LaterFragment);
    }
    let end = total.min(pkt.len());
    let l4 = pkt.get(hlen..end).ok_or(WireError::BadLength)?;
    transport(IpAddr::V4(src), IpAddr::V4(dst), proto, l4, ihl > 5)
}

fn parse_v6(pkt: &[u8]) -> Result<Probe, WireError> {
    let ip = Ipv6Packet::new(pkt).ok_or(WireError::TruncatedIp)?;
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let payload_len = usize::from(ip.get_payload_length());
    // Payload length 0 is a jumbogram (RFC 2675) or a lie; use what was captured.
    let end = if payload_len == 0 {
        pkt.len()
    } else {
        (40 + payload_len).min(pkt.len())
    };
    let body = pkt.get(40..end).ok_or(WireError::TruncatedIp)?;
    let mut next = ip.get_next_header().0;
    let mut off = 0usize;
    let mut options = false;
    for _ in 0..=MAX_EXT_HEADERS {
        match next {
            ipproto::TCP | ipproto::UDP => {
                let proto = l4_proto(next).ok_or(WireError::NotTcpUdp)?;
                let l4 = body.get(off..).ok_or(WireError::TruncatedIp)?;
                return transport(IpAddr::V6(src), IpAddr::V6(dst), proto, l4, options);
            }
            ipproto::HOPOPT | ipproto::ROUTING | ipproto::DSTOPTS => {
                // RFC 8200 §4.3-4.6: next header, length in 8-octet units not counting the
                // first 8 octets.
                let nh = byte(body, off).ok_or(WireError::TruncatedIp)?;
                let len = byte(body, off + 1).ok_or(WireError::TruncatedIp)?;
                let size = (usize::from(len) + 1) * 8;
                if body.len() < off + size {
                    return Err(WireError::TruncatedIp);
                }
                options = true;
                next = nh;
                off += size;
            }
            ipproto::FRAGMENT => {
                // RFC 8200 §4.5: 8 octets; offset in the upper 13 bits of bytes 2-3.
                let nh = byte(body, off).ok_or(WireError::TruncatedIp)?;
                let fo = be16(body, off + 2).ok_or(WireError::TruncatedIp)?;
                if body.len() < off + 8 {
                    return Err(WireError::TruncatedIp);
                }
                if fo >> 3 != 0 {
                    return Err(WireError::LaterFragment);
                }
                next = nh;
                off += 8;
            }
            ipproto::AH => {
                // RFC 4302 §2.2: payload length in 4-octet units, minus 2.
                let nh = byte(body, off).ok_or(WireError::TruncatedIp)?;
                let len = byte(body, off + 1).ok_or(WireError::TruncatedIp)?;
                let size = (usize::from(len) + 2) * 4;
                if body.len() < off + size {
                    return Err(WireError::TruncatedIp);
                }
                next = nh;
                off += size;
            }
            // ESP hides the transport header; 59 is "no next header"; anything else is not
            // TCP or UDP.
            _ => return Err(WireError::NotTcpUdp),
        }
    }
    Err(WireError::TooManyExtHeaders)
}

fn transport(
    src: IpAddr,
    dst: IpAddr,
    proto: Proto,
    l4: &[u8],
    ip_options: bool,
) -> Result<Probe, WireError> {
    let (src_port, dst_port, tcp_flags) = match proto {
        Proto::Tcp => {
            let t = TcpPacket::new(l4).ok_or(WireError::TruncatedTransport)?;
            // RFC 9293 §3.1: a data offset below 5 words is not a TCP header.
            if t.get_data_offset() < 5 {
                return Err(WireError::BadTcpOffset);
            }
            (t.get_source(), t.get_destination(), t.get_flags())
        }
        Proto::Udp => {
            let u = UdpPacket::new(l4).ok_or(WireError::TruncatedTransport)?;
            (u.get_source(), u.get_destination(), 0)
        }
    };
    Ok(Probe {
        src,
        dst,
        proto,
        src_port,
        dst_port,
        tcp_flags,
        ip_options,
    })
}

/// Test fixtures, shared with the BPF tests: annotated byte builders.
#[cfg(test)]
pub mod fixtures {
    /// IPv4 header (20 bytes + `opts`), then `l4`.
    pub fn v4(proto: u8, opts: &[u8], l4: &[u8]) -> Vec<u8> {
        let hlen = 20 + opts.len();
        let total = (hlen + l4.len()) as u16;
        let mut p = vec![
            0x40 | (hlen / 4) as u8, // version 4, IHL
            0x00,                    // DSCP/ECN
            (total >> 8) as u8,
            total as u8, // total length
            0x12,
            0x34, // identification
            0x40,
            0x00, // flags: DF, fragment offset 0
            64,   // TTL
            proto,
            0x00,
            0x00, // checksum (not checked)
            192,
            0,
            2,
            2, // source 192.0.2.2
            192,
            0,
            2,
            1, // destination 192.0.2.1
        ];
        p.extend_from_slice(opts);
        p.extend_from_slice(l4);
        p
    }

    /// IPv6 header with first next-header `nh`, then `rest` (extension headers + L4).
    pub fn v6(nh: u8, rest: &[u8]) -> Vec<u8> {
        let len = rest.len() as u16;
        let mut p = vec![
            0x60,
            0x00,
            0x00,
            0x00, // version 6, class, flow
            (len >> 8) as u8,
            len as u8, // payload length
            nh,
            64, // hop limit
        ];
        // source 2001:db8::2, destination 2001:db8::1
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(rest);
        p
    }

    /// A 20-byte TCP header from port 40000 to `dport` with `flags`.
    pub fn tcp(dport: u16, flags: u8) -> Vec<u8> {
        vec![
            0x9c,
            0x40, // source port 40000
            (dport >> 8) as u8,
            dport as u8, // destination port
            0,
            0,
            0,
            1, // sequence
            0,
            0,
            0,
            0,    // acknowledgment
            0x50, // data offset 5
            flags,
            0x04,
            0x00, // window 1024
            0,
            0, // checksum
            0,
            0, // urgent pointer
        ]
    }

    /// An 8-byte UDP header from port 40000 to `dport`, plus 1 byte of data.
    pub fn udp(dport: u16) -> Vec<u8> {
        vec![
            0x9c,
            0x40,
            (dport >> 8) as u8,
            dport as u8,
            0,
            9,
            0,
            0,
            b'x',
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::classify::tcp_flags::*;

    const S4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn ipv4_tcp_syn() {
        let p = parse(&v4(6, &[], &tcp(31337, SYN))).unwrap();
        assert_eq!(p.src, S4);
        assert_eq!(p.dst, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            (p.proto, p.src_port, p.dst_port),
            (Proto::Tcp, 40000, 31337)
        );
        assert_eq!((p.tcp_flags, p.ip_options), (SYN, false));
    }

    #[test]
    fn ipv4_keeps_every_flag_bit() {
        for f in 0..=255u8 {
            assert_eq!(parse(&v4(6, &[], &tcp(1, f))).unwrap().tcp_flags, f);
        }
    }

    #[test]
    fn ipv4_options_are_reported() {
        // Record-route option (type 7, length 7, pointer 4, one empty slot) + EOL = 8 bytes.
        let opts = [7, 7, 4, 0, 0, 0, 0, 0];
        let p = parse(&v4(17, &opts, &udp(161))).unwrap();
        assert_eq!((p.proto, p.dst_port, p.ip_options), (Proto::Udp, 161, true));
    }

    #[test]
    fn ipv4_illegal_header_length_carries_what_1_2_logs() {
        for ihl in 0..5u8 {
            let mut p = v4(6, &[], &tcp(1, SYN));
            p[0] = 0x40 | ihl;
            assert_eq!(
                parse(&p),
                Err(WireError::IllegalHeaderLength {
                    ihl,
                    src: Ipv4Addr::new(192, 0, 2, 2),
                    proto: Some(Proto::Tcp)
                })
            );
        }
    }

    #[test]
    fn ipv4_later_fragment_and_other_protocols_are_dropped() {
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[6] = 0x00;
        p[7] = 0x10; // fragment offset 16 (x8 bytes)
        assert_eq!(parse(&p), Err(WireError::LaterFragment));
        // ICMP echo.
        assert_eq!(parse(&v4(1, &[], &[8, 0, 0, 0])), Err(WireError::NotTcpUdp));
    }

    #[test]
    fn ipv4_bad_lengths() {
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[2] = 0;
        p[3] = 10; // total length shorter than the header
        assert_eq!(parse(&p), Err(WireError::BadLength));
        // IHL 15 (60 bytes) but only 40 captured.
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[0] = 0x4f;
        p[3] = 60;
        assert_eq!(parse(&p), Err(WireError::TruncatedIp));
        p[3] = 40;
        assert_eq!(parse(&p), Err(WireError::BadLength));
        // Total length covers only 4 bytes of TCP: the flag byte is outside the packet.
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[3] = 24;
        assert_eq!(parse(&p), Err(WireError::TruncatedTransport));
        // TCP data offset 4.
        let mut t = tcp(1, SYN);
        t[12] = 0x40;
        assert_eq!(parse(&v4(6, &[], &t)), Err(WireError::BadTcpOffset));
        // UDP header cut at 6 bytes.
        assert_eq!(
            parse(&v4(17, &[], &udp(7)[..6])),
            Err(WireError::TruncatedTransport)
        );
    }

    #[test]
    fn ipv4_trailing_link_padding_is_ignored() {
        let mut p = v4(17, &[], &udp(7));
        p.extend_from_slice(&[0; 18]);
        assert_eq!(parse(&p).unwrap().dst_port, 7);
    }

    #[test]
    fn ipv6_plain_tcp_and_udp() {
        let p = parse(&v6(6, &tcp(22, FIN | PSH | URG))).unwrap();
        assert_eq!(p.src, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (p.dst_port, p.tcp_flags, p.ip_options),
            (22, FIN | PSH | URG, false)
        );
        let p = parse(&v6(17, &udp(53))).unwrap();
        assert_eq!((p.proto, p.dst_port), (Proto::Udp, 53));
    }

    #[test]
    fn ipv6_walks_extension_headers() {
        // Hop-by-hop (next: routing), 8 bytes: PadN option filling 6 bytes.
        let mut rest = vec![ipproto::ROUTING, 0, 1, 4, 0, 0, 0, 0];
        // Routing header type 0 style (next: dest opts), length 2 => 24 bytes.
        rest.extend_from_slice(&[ipproto::DSTOPTS, 2, 0, 0, 0, 0, 0, 0]);
        rest.extend_from_slice(&[0; 16]);
        // Destination options (next: fragment), 8 bytes.
        rest.extend_from_slice(&[ipproto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
        // Fragment header (next: AH), offset 0, M flag set: the first fragment.
        rest.extend_from_slice(&[ipproto::AH, 0, 0x00, 0x01, 0, 0, 0, 7]);
        // AH (next: TCP), payload length 4 => (4+2)*4 = 24 bytes.
        rest.extend_from_slice(&[ipproto::TCP, 4, 0, 0]);
        rest.extend_from_slice(&[0; 20]);
        rest.extend_from_slice(&tcp(8080, SYN | ACK));
        let p = parse(&v6(ipproto::HOPOPT, &rest)).unwrap();
        assert_eq!(
            (p.dst_port, p.tcp_flags, p.ip_options),
            (8080, SYN | ACK, true)
        );
    }

    #[test]
    fn ipv6_fragment_only_first_has_ports() {
        let mut rest = vec![ipproto::UDP, 0, 0x00, 0x08, 0, 0, 0, 7]; // offset 1 (8 bytes)
        rest.extend_from_slice(&udp(7));
        assert_eq!(
            parse(&v6(ipproto::FRAGMENT, &rest)),
            Err(WireError::LaterFragment)
        );
        let mut rest = vec![ipproto::UDP, 0, 0x00, 0x01, 0, 0, 0, 7]; // offset 0, more
        rest.extend_from_slice(&udp(7));
        let p = parse(&v6(ipproto::FRAGMENT, &rest)).unwrap();
        assert_eq!((p.dst_port, p.ip_options), (7, false));
    }

    #[test]
    fn ipv6_malformed_chains() {
        // ESP, no-next-header: not TCP/UDP.
        assert_eq!(
            parse(&v6(ipproto::ESP, &[0; 16])),
            Err(WireError::NotTcpUdp)
        );
        assert_eq!(parse(&v6(ipproto::NONE, &[])), Err(WireError::NotTcpUdp));
        // Hop-by-hop claiming 16 bytes with 8 present.
        assert_eq!(
            parse(&v6(ipproto::HOPOPT, &[ipproto::TCP, 1, 0, 0, 0, 0, 0, 0])),
            Err(WireError::TruncatedIp)
        );
        // A loop of destination-option headers.
        let mut rest = Vec::new();
        for _ in 0..20 {
            rest.extend_from_slice(&[ipproto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            parse(&v6(ipproto::DSTOPTS, &rest)),
            Err(WireError::TooManyExtHeaders)
        );
        // Header cut inside the fixed 40 bytes.
        assert_eq!(
            parse(&v6(6, &tcp(1, SYN))[..39]),
            Err(WireError::TruncatedIp)
        );
        // TCP cut before the flag byte.
        assert_eq!(
            parse(&v6(6, &tcp(1, SYN)[..13])),
            Err(WireError::TruncatedTransport)
        );
    }

    /// Pseudo-random fuzzing: valid packets (v4 with options, v6 with extension chains) with
    /// random byte changes and cuts. Never a panic, and every path is reached.
    #[test]
    fn fuzz_mutated_packets_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ext = vec![ipproto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[ipproto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(&[ipproto::AH, 0, 0, 1, 0, 0, 0, 1]);
        ext.extend_from_slice(&[ipproto::TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&tcp(22, SYN));
        let seeds = [
            v4(6, &[], &tcp(1, SYN)),
            v4(17, &[7, 7, 4, 0, 0, 0, 0, 0], &udp(7)),
            v6(ipproto::HOPOPT, &ext),
            v6(17, &udp(53)),
        ];
        let (mut ok, mut drops) = (0u32, Drops::default());
        for i in 0..20_000u32 {
            let mut p = seeds[i as usize % seeds.len()].clone();
            for _ in 0..(rnd() % 4) {
                let at = (rnd() as usize) % p.len();
                p[at] = rnd() as u8;
            }
            if rnd() % 3 == 0 {
                let keep = (rnd() as usize) % (p.len() + 1);
                p.truncate(keep);
            }
            match parse(&p) {
                Ok(_) => ok += 1,
                Err(e) => drops.count(e),
            }
        }
        assert!(ok > 1000, "only {ok} parsed");
        for k in [
            WireError::NotIp,
            WireError::TruncatedIp,
            WireError::IllegalHeaderLength {
                ihl: 0,
                src: Ipv4Addr::UNSPECIFIED,
                proto: None,
            },
            WireError::BadLength,
            WireError::NotTcpUdp,
            WireError::LaterFragment,
            WireError::TruncatedTransport,
        ] {
            assert!(
                drops.0[k.kind()] > 0,
                "never reached {k:?}: {}",
                drops.summary()
            );
        }
    }

    #[test]
    fn garbage_never_panics_and_is_counted() {
        assert_eq!(parse(&[]), Err(WireError::NotIp));
        assert_eq!(parse(&[0x50; 60]), Err(WireError::NotIp));
        let mut drops = Drops::default();
        // Every prefix of valid packets, and a cheap pseudo-random byte soup.
        let samples = [
            v4(6, &[1, 1, 1, 0], &tcp(1, SYN)),
            v6(ipproto::HOPOPT, &[ipproto::TCP, 0, 1, 4, 0, 0, 0, 0]),
            v6(17, &udp(9)),
        ];
        for s in &samples {
            for n in 0..s.len() {
                if let Err(e) = parse(&s[..n]) {
                    drops.count(e);
                }
            }
        }
        let mut x: u32 = 0x1234_5678;
        for len in 0..200usize {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            if let Some(first) = b.first_mut() {
                *first = (*first & 0x0f) | if len % 2 == 0 { 0x40 } else { 0x60 };
            }
            if let Err(e) = parse(&b) {
                drops.count(e);
            }
        }
        assert!(drops.total() > 0);
        assert!(drops.0[WireError::TruncatedIp.kind()] > 0);
        assert!(drops.summary().contains("truncated-ip="));
        for k in 0..WireError::KINDS {
            assert_ne!(WireError::kind_name(k), "?");
        }
    }
}
