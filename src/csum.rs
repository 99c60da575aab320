//! The checksums a host's stack verifies before it accepts a packet, so the capture can judge
//! only what the host itself would accept (issue 18): the Internet checksum of the IPv4
//! header, TCP, UDP, ICMP and ICMPv6 (RFC 1071, with the pseudo-headers of RFC 9293 §3.1,
//! RFC 768 and RFC 8200 §8.1), and SCTP's CRC32c (RFC 9260 §6.8, Appendix A).
//!
//! Pure: bytes in, numbers out.

use std::net::IpAddr;

/// A running one's-complement sum of 16-bit big-endian words (RFC 1071 §4.1), kept wide and
/// folded at the end. Sums of pieces add up as long as each piece starts at an even offset
/// of the whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// The sum of `data` (a trailing odd byte is padded with a zero byte, RFC 1071).
    pub fn of(data: &[u8]) -> Sum {
        let mut acc: u64 = 0;
        let mut words = data.chunks_exact(4);
        // 32-bit words: 2^16 is 1 modulo 0xffff, so a 32-bit word adds as its two halves.
        for w in &mut words {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        let mut i = 0;
        while i + 1 < rest.len() {
            acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
            i += 2;
        }
        if let Some(&last) = rest.get(i) {
            acc += u64::from(last) << 8;
        }
        Sum(acc)
    }

    /// This sum plus `other`.
    pub fn plus(self, other: Sum) -> Sum {
        // Fold first: neither can overflow after a fold.
        Sum(u64::from(self.fold()) + u64::from(other.fold()))
    }

    /// This sum plus one 16-bit word.
    pub fn add_u16(self, w: u16) -> Sum {
        self.plus(Sum(u64::from(w)))
    }

    /// The 16-bit one's-complement sum.
    pub fn fold(self) -> u16 {
        let mut s = self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// True when the data summed (checksum field included) verifies: its sum is all ones.
    pub fn verifies(self) -> bool {
        self.fold() == 0xffff
    }
}

/// The pseudo-header sum of a transport segment of `len` bytes with protocol (IPv4) or next
/// header (IPv6) `proto` between `src` and `dst` (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1).
/// Mixed families never come from one packet; they sum as IPv6 with the IPv4 address mapped.
pub fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Sum {
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mut h = [0u8; 12];
            h[..4].copy_from_slice(&a.octets());
            h[4..8].copy_from_slice(&b.octets());
            h[9] = proto;
            h[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            Sum::of(&h)
        }
        (a, b) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(x) => x.to_ipv6_mapped(),
                IpAddr::V6(x) => x,
            };
            let mut h = [0u8; 40];
            h[..16].copy_from_slice(&v6(a).octets());
            h[16..32].copy_from_slice(&v6(b).octets());
            h[32..36].copy_from_slice(&len.to_be_bytes());
            h[39] = proto;
            Sum::of(&h)
        }
    }
}

/// CRC32c (Castagnoli, reflected polynomial 0x82f63b78), as SCTP uses it (RFC 9260
/// Appendix A).
pub mod crc32c {
    const POLY: u32 = 0x82f6_3b78;

    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }

    static TABLE: [u32; 256] = table();

    /// The CRC32c of `data` (initial value and final complement as RFC 9260 specifies).
    pub fn of(data: &[u8]) -> u32 {
        !update(!0, data)
    }

    /// Feed `data` into the register `c` (no conditioning).
    pub fn update(mut c: u32, data: &[u8]) -> u32 {
        for &b in data {
            c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        c
    }

    /// Does the SCTP packet `pkt` (common header first, its Checksum field at offset 8)
    /// carry the right CRC32c? The field holds the CRC in little-endian byte order (RFC 9260
    /// Appendix A: the CRC is stored with its least significant byte first, as Linux's
    /// `sctp_compute_cksum` writes it).
    pub fn sctp_verifies(pkt: &[u8]) -> bool {
        let (Some(head), Some(field), Some(rest)) = (pkt.get(..8), pkt.get(8..12), pkt.get(12..))
        else {
            return false;
        };
        let mut c = update(!0, head);
        c = update(c, &[0, 0, 0, 0]);
        c = update(c, rest);
        let want = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
        !c == want
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The plain RFC 1071 sum, one 16-bit word at a time, as a reference.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
            s += w;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn sums_match_the_reference_and_split_at_even_offsets() {
        let mut rng = crate::testrng::Rng(7);
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(Sum::of(&data).fold(), reference(&data), "len {len}");
            // Any split at an even offset adds up to the whole.
            for cut in (0..=len).step_by(2) {
                let (a, b) = data.split_at(cut);
                assert_eq!(Sum::of(a).plus(Sum::of(b)).fold(), reference(&data));
            }
        }
        // All ones stays all ones (0xffff and 0 are the same one's-complement zero).
        assert_eq!(Sum::of(&[0xff; 64]).fold(), 0xffff);
        assert_eq!(Sum::of(&[]).fold(), 0);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::of(&d).fold(), 0xddf2);
    }

    #[test]
    fn a_tcp_syn_from_the_wire_verifies() {
        // A SYN captured from nmap (198.51.100.2:62281 -> 198.51.100.1:5), checksum 0x2f3b.
        let src = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));
        let dst = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        let mut tcp = vec![
            0xf3, 0x49, 0x00, 0x05, 0x9d, 0x5a, 0x6b, 0x4e, 0, 0, 0, 0, 0x60, 0x02, 0x04, 0x00, 0,
            0, 0, 0, 0x02, 0x04, 0x05, 0xb4,
        ];
        let c = !pseudo(src, dst, 6, tcp.len() as u32)
            .plus(Sum::of(&tcp))
            .fold();
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        assert!(
            pseudo(src, dst, 6, tcp.len() as u32)
                .plus(Sum::of(&tcp))
                .verifies()
        );
        tcp[13] = 0x01;
        assert!(
            !pseudo(src, dst, 6, tcp.len() as u32)
                .plus(Sum::of(&tcp))
                .verifies()
        );
        // The same bytes between IPv6 addresses sum differently.
        let s6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        let d6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_ne!(pseudo(s6, d6, 6, 24), pseudo(src, dst, 6, 24));
    }

    #[test]
    fn crc32c_check_values() {
        // The standard check value, and RFC 3720 §B.4's 32 zero bytes.
        assert_eq!(crc32c::of(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::of(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::of(&[0xffu8; 32]), 0x62a8_ab43);
    }

    #[test]
    fn sctp_checksum_field() {
        // An SCTP INIT as nmap -sY sends it (common header, INIT chunk of 20 bytes).
        let mut p = vec![
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x14, 0x12, 0x34,
            0x56, 0x78, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0xff, 0xff, 0xab, 0xcd, 0xef, 0x01,
        ];
        let c = crc32c::of(&p);
        p[8..12].copy_from_slice(&c.to_le_bytes());
        assert!(crc32c::sctp_verifies(&p));
        p[13] = 1;
        assert!(!crc32c::sctp_verifies(&p));
        assert!(!crc32c::sctp_verifies(&p[..11]));
    }
}
