//! Packet views: one captured L3 packet (IPv4 or IPv6 header first, as an AF_PACKET
//! `SOCK_DGRAM` socket delivers it) becomes a typed [`Probe`] (TCP or UDP), an [`Other`]
//! probe (SCTP INIT or COOKIE ECHO, ICMP echo, timestamp or address-mask request, ICMPv6
//! echo request), a [`Fragment`] for `defrag`, or a [`WireError`] saying why it was dropped.
//! This is the only place that reads packet bytes.
//!
//! It judges what the host's own stack would accept (issue 18), so nothing that stack drops
//! is ever reported, blocked or sent to the fleet:
//! - the IPv4 header checksum and lengths, as `ip_rcv_core` checks them (net/ipv4/ip_input.c);
//! - the TCP, UDP, ICMP, ICMPv6 and SCTP checksums (`tcp_v4_rcv`/`tcp_v6_rcv`,
//!   `__udp4_lib_rcv`/`__udp6_lib_rcv`, `icmp_rcv`, `icmpv6_rcv`, `sctp_rcv`), unless the
//!   capture says the kernel has verified the packet already or that it is a local one whose
//!   checksum was never filled in ([`Csum`]); a zero UDP checksum means "none" on IPv4 only
//!   (RFC 768; RFC 8200 §8.1);
//! - the UDP length field (a datagram shorter than it says is dropped, a longer one is cut
//!   to it) and the TCP data offset;
//! - fragments are not judged here: they go to `defrag`, which hands back the datagram the
//!   kernel would reassemble, to be parsed here as if it had arrived whole (`Meta::reassembled`);
//!   an IPv6 first fragment without its upper-layer header is dropped as `ipv6_frag_rcv`
//!   drops it (RFC 8200 §4.5, RFC 7112), and so is a fragment header inside a reassembled
//!   datagram or after an atomic fragment header (`IP6SKB_FRAGMENTED`).
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

use crate::capture::classify::OtherProbe;
use crate::capture::csum::{self, Sum};
use crate::config::mode::Proto;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod ipproto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
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
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 no next header.
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
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

/// An SCTP or ICMP probe (see [`OtherProbe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Other {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// What it is.
    pub kind: OtherProbe,
    /// SCTP: the source port; ICMP: 0.
    pub src_port: u16,
    /// SCTP: the destination port; ICMP: 0.
    pub dst_port: u16,
    /// As [`Probe::ip_options`].
    pub ip_options: bool,
}

/// One fragment of an IPv4 or IPv6 datagram (RFC 791 §3.2, RFC 8200 §4.5), for `defrag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification: 16 bits for IPv4, 32 for IPv6.
    pub id: u32,
    /// IPv4: the protocol (part of the datagram's identity); IPv6: the fragment header's
    /// next header (only the first fragment's counts).
    pub proto: u8,
    /// Where the data goes in the datagram, in bytes (a multiple of 8).
    pub offset: u32,
    /// More fragments follow (the MF / M flag).
    pub more: bool,
    /// The ECN field of this fragment's header (RFC 3168 §5.3).
    pub ecn: u8,
    /// IPv4: the IP header (IHL words); IPv6: the fixed header and the extension headers
    /// before the fragment header (the "unfragmentable part", RFC 8200 §4.5).
    pub header: &'a [u8],
    /// IPv6: where in `header` the next-header byte that names the fragment header is (the
    /// reassembled datagram gets the fragment header's next header there).
    pub nh_at: usize,
    /// The fragment's data as captured (after the fragment header for IPv6).
    pub data: &'a [u8],
    /// The data's length on the wire (more than `data.len()` only if the capture cut it).
    pub data_len: u32,
}

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A TCP segment or UDP datagram.
    Probe(Probe),
    /// An SCTP or ICMP probe.
    Other(Other),
    /// A fragment: `defrag` decides what becomes of it.
    Fragment(Fragment<'a>),
}

/// What the kernel said about a packet's transport checksum (TPACKET_V3 `tp_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csum {
    /// Not looked at (`CHECKSUM_NONE` or `CHECKSUM_COMPLETE`): verify it here.
    Unknown,
    /// `TP_STATUS_CSUMNOTREADY` (`CHECKSUM_PARTIAL`): made on this host (loopback, a veth
    /// peer, a container) with the checksum left to offload; the stack accepts it as it is.
    /// Measured here: every TCP and UDP packet of a local socket, on veth and on loopback.
    Partial,
    /// `TP_STATUS_CSUM_VALID`: the device or GRO verified it already.
    Valid,
}

/// What the capture knows of a packet besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The packet's length on the wire (TPACKET `tp_len`); more than the captured bytes when
    /// the snap length cut it.
    pub wire_len: usize,
    /// The kernel's word on its transport checksum.
    pub csum: Csum,
    /// The bytes are a datagram `defrag` reassembled: a fragment header in it is an error.
    pub reassembled: bool,
}

impl Meta {
    /// A whole packet of `len` bytes whose checksums are to be verified here.
    pub fn whole(len: usize) -> Meta {
        Meta {
            wire_len: len,
            csum: Csum::Unknown,
            reassembled: false,
        }
    }
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
    /// The IPv4 total length or the IHL points past the packet's header, or the length
    /// fields claim more than arrived.
    BadLength,
    /// Not a probe of a kind judged here (another protocol, an ICMP reply or error, an SCTP
    /// chunk other than INIT and COOKIE ECHO, ESP, no next header, ...).
    NotTcpUdp,
    /// More than [`MAX_EXT_HEADERS`] IPv6 extension headers.
    TooManyExtHeaders,
    /// The packet ends inside the transport header, or its UDP length field does not fit.
    TruncatedTransport,
    /// TCP data offset below 5 words or past the segment: not a header a stack would accept.
    BadTcpOffset,
    /// The transport checksum is wrong: the host's stack drops it.
    BadChecksum,
    /// The IPv4 header checksum is wrong: the host's stack drops it.
    BadIpChecksum,
    /// An IPv6 first fragment without all headers through the upper-layer header (RFC 8200
    /// §4.5, RFC 7112): dropped by the host.
    FirstFragmentTruncated,
    /// An IPv6 fragment header inside a reassembled datagram, or after an atomic fragment
    /// header: dropped by the host.
    NestedFragment,
}

impl WireError {
    /// Number of distinct kinds, for a counter array indexed by [`WireError::kind`].
    pub const KINDS: usize = 12;

    /// An index for per-kind counters.
    pub fn kind(self) -> usize {
        match self {
            WireError::NotIp => 0,
            WireError::TruncatedIp => 1,
            WireError::IllegalHeaderLength { .. } => 2,
            WireError::BadLength => 3,
            WireError::NotTcpUdp => 4,
            WireError::TooManyExtHeaders => 5,
            WireError::TruncatedTransport => 6,
            WireError::BadTcpOffset => 7,
            WireError::BadChecksum => 8,
            WireError::BadIpChecksum => 9,
            WireError::FirstFragmentTruncated => 10,
            WireError::NestedFragment => 11,
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
            "too-many-ext-headers",
            "truncated-transport",
            "bad-tcp-offset",
            "bad-checksum",
            "bad-ip-checksum",
            "first-fragment-truncated",
            "nested-fragment",
        ]
        .get(kind)
        .copied()
        .unwrap_or("?")
    }

    /// A checksum the host's stack would reject.
    pub fn is_bad_checksum(self) -> bool {
        matches!(self, WireError::BadChecksum | WireError::BadIpChecksum)
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

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// Parse one L3 packet.
pub fn parse(pkt: &[u8], meta: Meta) -> Result<Packet<'_>, WireError> {
    match byte(pkt, 0).map(|b| b >> 4) {
        Some(4) => parse_v4(pkt, meta),
        Some(6) => parse_v6(pkt, meta),
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

fn parse_v4(pkt: &[u8], meta: Meta) -> Result<Packet<'_>, WireError> {
    let ip = Ipv4Packet::new(pkt).ok_or(WireError::TruncatedIp)?;
    let ihl = ip.get_header_length();
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let nh = ip.get_next_level_protocol().0;
    if ihl < 5 {
        return Err(WireError::IllegalHeaderLength {
            ihl,
            src,
            proto: l4_proto(nh),
        });
    }
    let hlen = usize::from(ihl) * 4;
    let total = usize::from(ip.get_total_length());
    // ip_rcv_core: the total length must cover the header and must not claim more than
    // arrived; the capture may hold less (snap length), and the bytes after `total` (link
    // padding) are not part of the packet.
    if total < hlen || total > meta.wire_len {
        return Err(WireError::BadLength);
    }
    let header = pkt.get(..hlen).ok_or(WireError::TruncatedIp)?;
    // ip_rcv_core: ip_fast_csum over the header; offload never leaves this one undone.
    if !Sum::of(header).verifies() {
        return Err(WireError::BadIpChecksum);
    }
    let end = total.min(pkt.len());
    let l4 = pkt.get(hlen..end).ok_or(WireError::BadLength)?;
    let l4_len = total - hlen;
    let flags = ip.get_flags();
    let offset = u32::from(ip.get_fragment_offset()) * 8;
    // Bit 0x1 of pnet's 3-bit flags field is MF (RFC 791 §3.1).
    let more = flags & 0x1 != 0;
    if more || offset != 0 {
        return Ok(Packet::Fragment(Fragment {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            id: u32::from(ip.get_identification()),
            proto: nh,
            offset,
            more,
            ecn: ip.get_ecn(),
            header,
            nh_at: 9,
            data: l4,
            data_len: l4_len as u32,
        }));
    }
    transport(
        IpAddr::V4(src),
        IpAddr::V4(dst),
        nh,
        l4,
        l4_len,
        meta.csum,
        ihl > 5,
    )
}

/// `ipv6frag_thdr_truncated` (include/net/ipv6_frag.h, called by `ipv6_frag_rcv` from the end
/// of the fixed header): walk the extension headers as `ipv6_skip_exthdr` does and say
/// whether the upper-layer header's first bytes (TCP 20, UDP 8, ICMPv6 8, anything else 1)
/// are missing from `payload` (the IPv6 payload, the first fragment's). A header that
/// cannot be read, or "no next header", counts as not truncated, as there.
fn first_fragment_truncated(payload: &[u8], first_nh: u8) -> bool {
    let mut nh = first_nh;
    let mut at = 0usize;
    loop {
        match nh {
            ipproto::HOPOPT | ipproto::ROUTING | ipproto::DSTOPTS | ipproto::AH => {
                let (Some(next), Some(len)) = (byte(payload, at), byte(payload, at + 1)) else {
                    return false;
                };
                let size = if nh == ipproto::AH {
                    (usize::from(len) + 2) * 4
                } else {
                    (usize::from(len) + 1) * 8
                };
                nh = next;
                at += size;
            }
            ipproto::FRAGMENT => {
                let (Some(next), Some(fo)) = (byte(payload, at), be16(payload, at + 2)) else {
                    return false;
                };
                if fo & !0x7 != 0 {
                    // Not a first fragment: never truncated.
                    return false;
                }
                nh = next;
                at += 8;
            }
            ipproto::NONE => return false,
            _ => break,
        }
    }
    let need = match nh {
        ipproto::TCP => 20,
        ipproto::UDP | ipproto::ICMPV6 => 8,
        _ => 1,
    };
    at + need > payload.len()
}

fn parse_v6(pkt: &[u8], meta: Meta) -> Result<Packet<'_>, WireError> {
    let ip = Ipv6Packet::new(pkt).ok_or(WireError::TruncatedIp)?;
    let (src, dst) = (ip.get_source(), ip.get_destination());
    let payload_len = usize::from(ip.get_payload_length());
    // Payload length 0 is a jumbogram (RFC 2675) or a lie; use what was captured.
    let (end, total) = if payload_len == 0 {
        (pkt.len(), meta.wire_len.saturating_sub(40))
    } else {
        // ip6_rcv_core: a payload longer than what arrived is dropped.
        if 40 + payload_len > meta.wire_len {
            return Err(WireError::BadLength);
        }
        ((40 + payload_len).min(pkt.len()), payload_len)
    };
    let body = pkt.get(40..end).ok_or(WireError::TruncatedIp)?;
    let mut next = ip.get_next_header().0;
    // Where the byte naming the current header sits in `pkt`.
    let mut nh_at = 6usize;
    let mut off = 0usize;
    let mut options = false;
    let mut fragmented = meta.reassembled;
    for _ in 0..=MAX_EXT_HEADERS {
        match next {
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
                nh_at = 40 + off;
                off += size;
            }
            ipproto::FRAGMENT => {
                // RFC 8200 §4.5: 8 octets; offset in the upper 13 bits of bytes 2-3, M in
                // bit 0, the identification in bytes 4-7.
                let nh = byte(body, off).ok_or(WireError::TruncatedIp)?;
                let fo = be16(body, off + 2).ok_or(WireError::TruncatedIp)?;
                let id = be32(body, off + 4).ok_or(WireError::TruncatedIp)?;
                if fragmented {
                    // ipv6_frag_rcv: IP6SKB_FRAGMENTED is set already.
                    return Err(WireError::NestedFragment);
                }
                fragmented = true;
                // ipv6_frag_rcv: offset 0 and M clear (the reserved bits do not count) is
                // an atomic fragment, processed as a whole packet (RFC 6946).
                if fo & 0xfff9 != 0 {
                    let offset = u32::from(fo & !0x7);
                    if offset == 0 && first_fragment_truncated(body, ip.get_next_header().0) {
                        return Err(WireError::FirstFragmentTruncated);
                    }
                    let data = body.get(off + 8..).ok_or(WireError::TruncatedIp)?;
                    let data_len = total.checked_sub(off + 8).ok_or(WireError::TruncatedIp)?;
                    return Ok(Packet::Fragment(Fragment {
                        src: src.into(),
                        dst: dst.into(),
                        id,
                        proto: nh,
                        offset,
                        more: fo & 1 != 0,
                        ecn: ip.get_traffic_class() & 3,
                        header: pkt.get(..40 + off).ok_or(WireError::TruncatedIp)?,
                        nh_at,
                        data,
                        data_len: data_len as u32,
                    }));
                }
                next = nh;
                nh_at = 40 + off;
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
                nh_at = 40 + off;
                off += size;
            }
            // ESP hides the transport header; 59 is "no next header"; anything else is
            // judged by its protocol.
            _ => {
                let l4 = body.get(off..).ok_or(WireError::TruncatedIp)?;
                let l4_len = total.checked_sub(off).ok_or(WireError::TruncatedIp)?;
                return transport(
                    IpAddr::V6(src),
                    IpAddr::V6(dst),
                    next,
                    l4,
                    l4_len,
                    meta.csum,
                    options,
                );
            }
        }
    }
    Err(WireError::TooManyExtHeaders)
}

/// The transport header of a whole datagram: `l4` as captured, `l4_len` its real length.
fn transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    nh: u8,
    l4: &[u8],
    l4_len: usize,
    csum: Csum,
    ip_options: bool,
) -> Result<Packet<'a>, WireError> {
    // Verify unless the kernel has, or the packet is a local one not filled in yet; a packet
    // the snap length cut (longer than any MTU: local GRO traffic) cannot be verified here.
    let check = csum == Csum::Unknown && l4.len() >= l4_len;
    let whole = l4.get(..l4_len).unwrap_or(l4);
    let v6 = src.is_ipv6();
    let other = |kind, src_port, dst_port| {
        Ok(Packet::Other(Other {
            src,
            dst,
            kind,
            src_port,
            dst_port,
            ip_options,
        }))
    };
    match nh {
        ipproto::TCP => {
            let t = TcpPacket::new(l4).ok_or(WireError::TruncatedTransport)?;
            // RFC 9293 §3.1, tcp_v4_rcv: a data offset below 5 words, or past the segment,
            // is not a TCP header.
            let doff = usize::from(t.get_data_offset());
            if doff < 5 || doff * 4 > l4_len {
                return Err(WireError::BadTcpOffset);
            }
            if check
                && !csum::pseudo(src, dst, nh, l4_len as u32)
                    .plus(Sum::of(whole))
                    .verifies()
            {
                return Err(WireError::BadChecksum);
            }
            Ok(Packet::Probe(Probe {
                src,
                dst,
                proto: Proto::Tcp,
                src_port: t.get_source(),
                dst_port: t.get_destination(),
                tcp_flags: t.get_flags(),
                ip_options,
            }))
        }
        ipproto::UDP => {
            let u = UdpPacket::new(l4).ok_or(WireError::TruncatedTransport)?;
            // __udp4_lib_rcv / __udp6_lib_rcv: a length field past the datagram, or below the
            // header, is a short packet; a shorter one cuts it (0 on IPv6: a jumbogram).
            let mut ulen = usize::from(u.get_length());
            if v6 && ulen == 0 {
                ulen = l4_len;
            }
            if ulen > l4_len || ulen < 8 {
                return Err(WireError::TruncatedTransport);
            }
            let c = u.get_checksum();
            if check {
                // RFC 768: zero means "no checksum"; RFC 8200 §8.1: not on IPv6.
                let ok = if c == 0 {
                    !v6
                } else {
                    let data = whole.get(..ulen).unwrap_or(whole);
                    csum::pseudo(src, dst, nh, ulen as u32)
                        .plus(Sum::of(data))
                        .verifies()
                };
                if !ok {
                    return Err(WireError::BadChecksum);
                }
            }
            Ok(Packet::Probe(Probe {
                src,
                dst,
                proto: Proto::Udp,
                src_port: u.get_source(),
                dst_port: u.get_destination(),
                tcp_flags: 0,
                ip_options,
            }))
        }
        ipproto::SCTP => {
            // sctp_rcv: the common header and one chunk header at least.
            if l4_len < 16 || l4.len() < 16 {
                return Err(WireError::TruncatedTransport);
            }
            let kind = byte(l4, 12)
                .and_then(OtherProbe::from_sctp_chunk)
                .ok_or(WireError::NotTcpUdp)?;
            if check && !csum::crc32c::sctp_verifies(whole) {
                return Err(WireError::BadChecksum);
            }
            let sport = be16(l4, 0).ok_or(WireError::TruncatedTransport)?;
            let dport = be16(l4, 2).ok_or(WireError::TruncatedTransport)?;
            other(kind, sport, dport)
        }
        ipproto::ICMP | ipproto::ICMPV6 if (nh == ipproto::ICMPV6) == v6 => {
            // icmp_rcv, icmpv6_rcv: the 8-byte header at least, then the checksum (ICMPv6's
            // with the pseudo-header, RFC 4443 §2.3).
            if l4_len < 8 || l4.len() < 8 {
                return Err(WireError::TruncatedTransport);
            }
            let ty = byte(l4, 0).ok_or(WireError::TruncatedTransport)?;
            let kind = if v6 {
                OtherProbe::from_icmp6(ty)
            } else {
                OtherProbe::from_icmp(ty)
            }
            .ok_or(WireError::NotTcpUdp)?;
            if check {
                let s = Sum::of(whole);
                let s = if v6 {
                    csum::pseudo(src, dst, nh, l4_len as u32).plus(s)
                } else {
                    s
                };
                if !s.verifies() {
                    return Err(WireError::BadChecksum);
                }
            }
            other(kind, 0, 0)
        }
        _ => Err(WireError::NotTcpUdp),
    }
}

/// Test fixtures, shared with the BPF, defrag and watch tests: annotated byte builders that
/// fill in every checksum (see [`fixtures::seal`]).
#[cfg(test)]
pub mod fixtures {
    use super::ipproto;
    use crate::capture::csum::{self, Sum};
    use std::net::IpAddr;

    /// IPv4 header (20 bytes + `opts`), then `l4`, checksums filled in.
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
            0x00, // header checksum (seal)
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
        seal(&mut p);
        p
    }

    /// IPv6 header with first next-header `nh`, then `rest` (extension headers + L4), the
    /// transport checksum filled in.
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
        seal(&mut p);
        p
    }

    /// Fill in the IPv4 header checksum and the transport checksum (TCP, UDP, ICMP, ICMPv6,
    /// SCTP) of a whole packet, after the IPv6 extension headers if any. A fragment or a
    /// transport header too short to hold its checksum is left alone.
    pub fn seal(p: &mut [u8]) {
        let Some(&first) = p.first() else { return };
        let (src, dst, mut nh, mut at, end): (IpAddr, IpAddr, u8, usize, usize) = match first >> 4 {
            4 if p.len() >= 20 => {
                let hlen = usize::from(first & 0xf) * 4;
                if hlen < 20 || p.len() < hlen {
                    return;
                }
                p[10] = 0;
                p[11] = 0;
                let c = !Sum::of(&p[..hlen]).fold();
                p[10..12].copy_from_slice(&c.to_be_bytes());
                if u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
                    return;
                }
                let s: [u8; 4] = p[12..16].try_into().unwrap_or_default();
                let d: [u8; 4] = p[16..20].try_into().unwrap_or_default();
                let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
                (s.into(), d.into(), p[9], hlen, total)
            }
            6 if p.len() >= 40 => {
                let s: [u8; 16] = p[8..24].try_into().unwrap_or_default();
                let d: [u8; 16] = p[24..40].try_into().unwrap_or_default();
                let total = (40 + usize::from(u16::from_be_bytes([p[4], p[5]]))).min(p.len());
                (s.into(), d.into(), p[6], 40, total)
            }
            _ => return,
        };
        for _ in 0..16 {
            match nh {
                ipproto::HOPOPT | ipproto::ROUTING | ipproto::DSTOPTS if at + 2 <= end => {
                    let size = (usize::from(p[at + 1]) + 1) * 8;
                    nh = p[at];
                    at += size;
                }
                ipproto::AH if at + 2 <= end => {
                    let size = (usize::from(p[at + 1]) + 2) * 4;
                    nh = p[at];
                    at += size;
                }
                ipproto::FRAGMENT if at + 8 <= end => {
                    if u16::from_be_bytes([p[at + 2], p[at + 3]]) & 0xfff9 != 0 {
                        return;
                    }
                    nh = p[at];
                    at += 8;
                }
                _ => break,
            }
        }
        if at > end {
            return;
        }
        // UDP: the checksum covers what the length field says (RFC 768).
        let end = if nh == ipproto::UDP && at + 6 <= end {
            let ulen = usize::from(u16::from_be_bytes([p[at + 4], p[at + 5]]));
            if (8..=end - at).contains(&ulen) {
                at + ulen
            } else {
                end
            }
        } else {
            end
        };
        let len = (end - at) as u32;
        let field = match nh {
            ipproto::TCP => 16,
            ipproto::UDP => 6,
            ipproto::ICMP | ipproto::ICMPV6 => 2,
            ipproto::SCTP => {
                if end - at >= 12 {
                    p[at + 8..at + 12].fill(0);
                    let c = csum::crc32c::of(&p[at..end]);
                    p[at + 8..at + 12].copy_from_slice(&c.to_le_bytes());
                }
                return;
            }
            _ => return,
        };
        if at + field + 2 > end {
            return;
        }
        p[at + field] = 0;
        p[at + field + 1] = 0;
        let body = Sum::of(&p[at..end]);
        let s = if nh == ipproto::ICMP {
            body
        } else {
            csum::pseudo(src, dst, nh, len).plus(body)
        };
        let mut c = !s.fold();
        if nh == ipproto::UDP && c == 0 {
            c = 0xffff;
        }
        p[at + field..at + field + 2].copy_from_slice(&c.to_be_bytes());
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

    /// An SCTP common header from port 40000 to `dport` with one chunk of type `chunk` (an
    /// INIT's 16 bytes of fields, zeros).
    pub fn sctp(dport: u16, chunk: u8) -> Vec<u8> {
        let mut s = vec![0x9c, 0x40, (dport >> 8) as u8, dport as u8, 0, 0, 0, 0];
        s.extend_from_slice(&[0, 0, 0, 0]); // checksum (seal)
        s.extend_from_slice(&[chunk, 0, 0, 20]);
        s.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0, 1, 0, 0, 0, 10, 0, 10, 1, 2, 3, 4]);
        s
    }

    /// An ICMP (or ICMPv6) message of type `ty`, code 0, identifier 1, sequence 1.
    pub fn icmp(ty: u8) -> Vec<u8> {
        vec![ty, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g']
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::capture::classify::tcp_flags::*;

    const S4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn whole(p: &[u8]) -> Result<Packet<'_>, WireError> {
        parse(p, Meta::whole(p.len()))
    }

    /// Parse a whole packet that must be a TCP or UDP probe.
    fn probe(p: &[u8]) -> Result<Probe, WireError> {
        match whole(p)? {
            Packet::Probe(x) => Ok(x),
            other => panic!("not a probe: {other:?}"),
        }
    }

    fn other(p: &[u8]) -> Result<Other, WireError> {
        match whole(p)? {
            Packet::Other(x) => Ok(x),
            o => panic!("not an SCTP/ICMP probe: {o:?}"),
        }
    }

    fn frag(p: &[u8]) -> Fragment<'_> {
        match whole(p) {
            Ok(Packet::Fragment(f)) => f,
            o => panic!("not a fragment: {o:?}"),
        }
    }

    #[test]
    fn ipv4_tcp_syn() {
        let p = probe(&v4(6, &[], &tcp(31337, SYN))).unwrap();
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
            assert_eq!(probe(&v4(6, &[], &tcp(1, f))).unwrap().tcp_flags, f);
        }
    }

    #[test]
    fn ipv4_options_are_reported() {
        // Record-route option (type 7, length 7, pointer 4, one empty slot) + EOL = 8 bytes.
        let opts = [7, 7, 4, 0, 0, 0, 0, 0];
        let p = probe(&v4(17, &opts, &udp(161))).unwrap();
        assert_eq!((p.proto, p.dst_port, p.ip_options), (Proto::Udp, 161, true));
    }

    #[test]
    fn ipv4_illegal_header_length_carries_what_1_2_logs() {
        for ihl in 0..5u8 {
            let mut p = v4(6, &[], &tcp(1, SYN));
            p[0] = 0x40 | ihl;
            assert_eq!(
                whole(&p),
                Err(WireError::IllegalHeaderLength {
                    ihl,
                    src: Ipv4Addr::new(192, 0, 2, 2),
                    proto: Some(Proto::Tcp)
                })
            );
        }
    }

    #[test]
    fn ipv4_fragments_go_to_defrag_and_other_protocols_are_dropped() {
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[6] = 0x00;
        p[7] = 0x10; // fragment offset 16 (x8 bytes)
        seal(&mut p);
        let f = frag(&p);
        assert_eq!((f.offset, f.more, f.proto, f.id), (128, false, 6, 0x1234));
        assert_eq!((f.data.len(), f.data_len, f.header.len()), (20, 20, 20));
        // MF alone: a first fragment.
        p[6] = 0x20;
        p[7] = 0;
        seal(&mut p);
        let f = frag(&p);
        assert_eq!((f.offset, f.more), (0, true));
        // GRE: not judged.
        assert_eq!(whole(&v4(47, &[], &[0; 8])), Err(WireError::NotTcpUdp));
        // ICMP echo reply, destination unreachable: not probes.
        assert_eq!(whole(&v4(1, &[], &icmp(0))), Err(WireError::NotTcpUdp));
        assert_eq!(whole(&v4(1, &[], &icmp(3))), Err(WireError::NotTcpUdp));
    }

    #[test]
    fn ipv4_bad_lengths() {
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[2] = 0;
        p[3] = 10; // total length shorter than the header
        seal(&mut p);
        assert_eq!(whole(&p), Err(WireError::BadLength));
        // IHL 15 (60 bytes) but only 40 captured.
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[0] = 0x4f;
        p[3] = 60;
        assert_eq!(parse(&p, Meta::whole(60)), Err(WireError::TruncatedIp));
        // A total length past what arrived: ip_rcv_core drops it.
        assert_eq!(whole(&p), Err(WireError::BadLength));
        p[3] = 40;
        assert_eq!(whole(&p), Err(WireError::BadLength));
        // Total length covers only 4 bytes of TCP: the flag byte is outside the packet.
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[3] = 24;
        seal(&mut p);
        assert_eq!(whole(&p), Err(WireError::TruncatedTransport));
        // TCP data offset 4, and 6 (24 bytes) in a 20-byte segment.
        let mut t = tcp(1, SYN);
        t[12] = 0x40;
        assert_eq!(whole(&v4(6, &[], &t)), Err(WireError::BadTcpOffset));
        t[12] = 0x60;
        assert_eq!(whole(&v4(6, &[], &t)), Err(WireError::BadTcpOffset));
        // UDP header cut at 6 bytes.
        assert_eq!(
            whole(&v4(17, &[], &udp(7)[..6])),
            Err(WireError::TruncatedTransport)
        );
        // UDP length field longer than the datagram, or below 8.
        for ulen in [10u8, 7] {
            let mut u = udp(7);
            u[5] = ulen;
            assert_eq!(whole(&v4(17, &[], &u)), Err(WireError::TruncatedTransport));
        }
    }

    #[test]
    fn ipv4_trailing_link_padding_is_ignored() {
        let mut p = v4(17, &[], &udp(7));
        p.extend_from_slice(&[0; 18]);
        assert_eq!(probe(&p).unwrap().dst_port, 7);
        // A UDP length shorter than the IP payload: the datagram is cut to it (and its
        // checksum covers only that much).
        let mut u = udp(7);
        u[5] = 8;
        let p = v4(17, &[], &u);
        assert_eq!(probe(&p).unwrap().dst_port, 7);
    }

    #[test]
    fn checksums_are_verified_as_the_stack_does() {
        let good = [
            v4(6, &[], &tcp(1, SYN)),
            v4(17, &[], &udp(7)),
            v6(6, &tcp(1, FIN)),
            v6(17, &udp(7)),
            v4(ipproto::SCTP, &[], &sctp(80, 1)),
            v6(ipproto::SCTP, &sctp(80, 10)),
            v4(ipproto::ICMP, &[], &icmp(8)),
            v6(ipproto::ICMPV6, &icmp(128)),
        ];
        for g in &good {
            assert!(whole(g).is_ok(), "{g:?}");
            // Any one bit flipped in the transport part (checksum field included) is caught:
            // every byte is covered by the checksum.
            let start = if g[0] >> 4 == 4 { 20 } else { 40 };
            for i in start..g.len() {
                let mut b = g.clone();
                b[i] ^= 0x10;
                match whole(&b) {
                    Err(WireError::BadChecksum) => {}
                    // A flip in a port or type may also make it no probe of ours, or a flip
                    // in a length field a bad length: all dropped.
                    Err(_) => {}
                    Ok(x) => panic!("flip at {i} of {g:?} accepted: {x:?}"),
                }
                // ... unless the capture says the kernel verified it, or that it is a local
                // packet not filled in yet.
                for csum in [Csum::Valid, Csum::Partial] {
                    let m = Meta {
                        csum,
                        ..Meta::whole(b.len())
                    };
                    if let Err(e) = parse(&b, m) {
                        assert!(!e.is_bad_checksum(), "{e:?}");
                    }
                }
            }
        }
        // The IPv4 header checksum is always checked.
        let mut p = v4(6, &[], &tcp(1, SYN));
        p[8] = 1; // TTL
        assert_eq!(whole(&p), Err(WireError::BadIpChecksum));
        let m = Meta {
            csum: Csum::Partial,
            ..Meta::whole(p.len())
        };
        assert_eq!(parse(&p, m), Err(WireError::BadIpChecksum));
        // A packet the snap length cut cannot be verified: judged without it.
        let mut big = tcp(1, SYN);
        big.extend_from_slice(&[7; 100]);
        let mut p = v4(6, &[], &big);
        let len = p.len();
        p[30] ^= 0xff; // corrupt the checksum
        assert_eq!(whole(&p), Err(WireError::BadChecksum));
        assert!(matches!(
            parse(&p[..60], Meta::whole(len)),
            Ok(Packet::Probe(_))
        ));
    }

    #[test]
    fn a_zero_udp_checksum_is_valid_on_ipv4_only() {
        let mut p = v4(17, &[], &udp(7));
        p[26] = 0;
        p[27] = 0;
        assert_eq!(probe(&p).unwrap().dst_port, 7);
        let mut p = v6(17, &udp(7));
        p[46] = 0;
        p[47] = 0;
        assert_eq!(whole(&p), Err(WireError::BadChecksum));
    }

    #[test]
    fn sctp_and_icmp_probes() {
        let o = other(&v4(ipproto::SCTP, &[], &sctp(80, 1))).unwrap();
        assert_eq!(
            (o.kind, o.src_port, o.dst_port),
            (OtherProbe::SctpInit, 40000, 80)
        );
        let o = other(&v6(ipproto::SCTP, &sctp(3868, 10))).unwrap();
        assert_eq!((o.kind, o.dst_port), (OtherProbe::SctpCookieEcho, 3868));
        // An SCTP ABORT (6): backscatter, no probe.
        assert_eq!(
            whole(&v4(ipproto::SCTP, &[], &sctp(80, 6))),
            Err(WireError::NotTcpUdp)
        );
        for (ty, kind) in [
            (8, OtherProbe::IcmpEcho),
            (13, OtherProbe::IcmpTimestamp),
            (17, OtherProbe::IcmpAddressMask),
        ] {
            let o = other(&v4(ipproto::ICMP, &[7, 7, 4, 0, 0, 0, 0, 0], &icmp(ty))).unwrap();
            assert_eq!((o.kind, o.dst_port, o.ip_options), (kind, 0, true));
        }
        assert_eq!(
            other(&v6(ipproto::ICMPV6, &icmp(128))).unwrap().kind,
            OtherProbe::Icmp6Echo
        );
        // Neighbour solicitation, echo reply: no probes. ICMPv4 in IPv6 is nothing.
        assert_eq!(
            whole(&v6(ipproto::ICMPV6, &icmp(135))),
            Err(WireError::NotTcpUdp)
        );
        assert_eq!(
            whole(&v6(ipproto::ICMPV6, &icmp(129))),
            Err(WireError::NotTcpUdp)
        );
        assert_eq!(
            whole(&v6(ipproto::ICMP, &icmp(8))),
            Err(WireError::NotTcpUdp)
        );
        assert_eq!(
            whole(&v4(ipproto::ICMP, &[], &icmp(8)[..6])),
            Err(WireError::TruncatedTransport)
        );
    }

    #[test]
    fn ipv6_plain_tcp_and_udp() {
        let p = probe(&v6(6, &tcp(22, FIN | PSH | URG))).unwrap();
        assert_eq!(p.src, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (p.dst_port, p.tcp_flags, p.ip_options),
            (22, FIN | PSH | URG, false)
        );
        let p = probe(&v6(17, &udp(53))).unwrap();
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
        // An atomic fragment header (next: AH), offset 0, M clear (RFC 6946).
        rest.extend_from_slice(&[ipproto::AH, 0, 0x00, 0x00, 0, 0, 0, 7]);
        // AH (next: TCP), payload length 4 => (4+2)*4 = 24 bytes.
        rest.extend_from_slice(&[ipproto::TCP, 4, 0, 0]);
        rest.extend_from_slice(&[0; 20]);
        rest.extend_from_slice(&tcp(8080, SYN | ACK));
        let p = probe(&v6(ipproto::HOPOPT, &rest)).unwrap();
        assert_eq!(
            (p.dst_port, p.tcp_flags, p.ip_options),
            (8080, SYN | ACK, true)
        );
    }

    #[test]
    fn ipv6_fragments() {
        // A later fragment (offset 1 = 8 bytes).
        let mut rest = vec![ipproto::UDP, 0, 0x00, 0x08, 0, 0, 0, 7];
        rest.extend_from_slice(&udp(7));
        let p = v6(ipproto::FRAGMENT, &rest);
        let f = frag(&p);
        assert_eq!(
            (f.offset, f.more, f.id, f.proto),
            (8, false, 7, ipproto::UDP)
        );
        assert_eq!((f.header.len(), f.nh_at, f.data_len), (40, 6, 9));
        // A first fragment with the whole UDP header.
        let mut rest = vec![ipproto::UDP, 0, 0x00, 0x01, 0, 0, 0, 7];
        rest.extend_from_slice(&udp(7));
        let p = v6(ipproto::FRAGMENT, &rest);
        assert_eq!((frag(&p).offset, frag(&p).more), (0, true));
        // RFC 7112: a first fragment cut inside the TCP header is dropped.
        let mut rest = vec![ipproto::TCP, 0, 0x00, 0x01, 0, 0, 0, 7];
        rest.extend_from_slice(&tcp(1, SYN)[..16]);
        assert_eq!(
            whole(&v6(ipproto::FRAGMENT, &rest)),
            Err(WireError::FirstFragmentTruncated)
        );
        // ... also with the chain continuing after the fragment header.
        let mut rest = vec![ipproto::DSTOPTS, 0, 0x00, 0x01, 0, 0, 0, 7];
        rest.extend_from_slice(&[ipproto::TCP, 0, 1, 4, 0, 0, 0, 0]);
        rest.extend_from_slice(&tcp(1, SYN)[..8]);
        assert_eq!(
            whole(&v6(ipproto::FRAGMENT, &rest)),
            Err(WireError::FirstFragmentTruncated)
        );
        // A fragment header behind a destination-options header: the header part holds both.
        let mut rest = vec![ipproto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[ipproto::TCP, 0, 0x00, 0x01, 0, 0, 0, 9]);
        rest.extend_from_slice(&tcp(1, SYN));
        let p = v6(ipproto::DSTOPTS, &rest);
        let f = frag(&p);
        assert_eq!((f.header.len(), f.nh_at, f.data.len()), (48, 40, 20));
        // A second fragment header after an atomic one, or in a reassembled datagram.
        let mut rest = vec![ipproto::FRAGMENT, 0, 0, 0, 0, 0, 0, 1];
        rest.extend_from_slice(&[ipproto::TCP, 0, 0x00, 0x01, 0, 0, 0, 9]);
        rest.extend_from_slice(&tcp(1, SYN));
        assert_eq!(
            whole(&v6(ipproto::FRAGMENT, &rest)),
            Err(WireError::NestedFragment)
        );
        let mut rest = vec![ipproto::TCP, 0, 0, 0, 0, 0, 0, 1];
        rest.extend_from_slice(&tcp(1, SYN));
        let p = v6(ipproto::FRAGMENT, &rest);
        assert!(whole(&p).is_ok(), "an atomic fragment is a whole packet");
        let m = Meta {
            reassembled: true,
            ..Meta::whole(p.len())
        };
        assert_eq!(parse(&p, m), Err(WireError::NestedFragment));
    }

    #[test]
    fn ipv6_malformed_chains() {
        // ESP, no-next-header: not TCP/UDP.
        assert_eq!(
            whole(&v6(ipproto::ESP, &[0; 16])),
            Err(WireError::NotTcpUdp)
        );
        assert_eq!(whole(&v6(ipproto::NONE, &[])), Err(WireError::NotTcpUdp));
        // Hop-by-hop claiming 16 bytes with 8 present.
        assert_eq!(
            whole(&v6(ipproto::HOPOPT, &[ipproto::TCP, 1, 0, 0, 0, 0, 0, 0])),
            Err(WireError::TruncatedIp)
        );
        // A loop of destination-option headers.
        let mut rest = Vec::new();
        for _ in 0..20 {
            rest.extend_from_slice(&[ipproto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            whole(&v6(ipproto::DSTOPTS, &rest)),
            Err(WireError::TooManyExtHeaders)
        );
        // Header cut inside the fixed 40 bytes.
        assert_eq!(
            whole(&v6(6, &tcp(1, SYN))[..39]),
            Err(WireError::TruncatedIp)
        );
        // TCP cut before the flag byte.
        assert_eq!(
            whole(&v6(6, &tcp(1, SYN)[..13])),
            Err(WireError::TruncatedTransport)
        );
        // A payload length past what arrived.
        let mut p = v6(6, &tcp(1, SYN));
        p[5] += 8;
        assert_eq!(whole(&p), Err(WireError::BadLength));
    }

    /// Pseudo-random fuzzing: valid packets (v4 with options, v6 with extension chains,
    /// fragments, SCTP, ICMP) with random byte changes and cuts. Never a panic, and every
    /// path is reached.
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
        let mut frag4 = v4(6, &[], &tcp(1, SYN));
        frag4[6] = 0x20;
        seal(&mut frag4);
        let seeds = [
            v4(6, &[], &tcp(1, SYN)),
            v4(17, &[7, 7, 4, 0, 0, 0, 0, 0], &udp(7)),
            v6(ipproto::HOPOPT, &ext),
            v6(17, &udp(53)),
            v4(ipproto::SCTP, &[], &sctp(80, 1)),
            v6(ipproto::ICMPV6, &icmp(128)),
            frag4,
        ];
        let (mut ok, mut drops) = (0u32, Drops::default());
        for i in 0..30_000u32 {
            let mut p = seeds[i as usize % seeds.len()].clone();
            for _ in 0..(rnd() % 4) {
                let at = (rnd() as usize) % p.len();
                p[at] = rnd() as u8;
            }
            if rnd() % 3 == 0 {
                let keep = (rnd() as usize) % (p.len() + 1);
                p.truncate(keep);
            }
            let csum = match rnd() % 3 {
                0 => Csum::Unknown,
                1 => Csum::Partial,
                _ => Csum::Valid,
            };
            let m = Meta {
                csum,
                wire_len: p.len() + (rnd() % 2) as usize * 40,
                reassembled: rnd() % 5 == 0,
            };
            match parse(&p, m) {
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
            WireError::TruncatedTransport,
            WireError::BadChecksum,
            WireError::BadIpChecksum,
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
        assert_eq!(whole(&[]), Err(WireError::NotIp));
        assert_eq!(whole(&[0x50; 60]), Err(WireError::NotIp));
        let mut drops = Drops::default();
        // Every prefix of valid packets, and a cheap pseudo-random byte soup.
        let samples = [
            v4(6, &[1, 1, 1, 0], &tcp(1, SYN)),
            v6(ipproto::HOPOPT, &[ipproto::TCP, 0, 1, 4, 0, 0, 0, 0]),
            v6(17, &udp(9)),
        ];
        for s in &samples {
            for n in 0..s.len() {
                if let Err(e) = parse(&s[..n], Meta::whole(s.len())) {
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
            if let Err(e) = whole(&b) {
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
