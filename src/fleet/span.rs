//! A contiguous span of addresses of one family: what a decision bans, what a hole keeps
//! out, and how nft writes it. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A contiguous span of addresses of one family, inclusive (IPv4 in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// IPv6 (else IPv4 in the low 32 bits).
    pub v6: bool,
    /// First address, as a number.
    pub start: u128,
    /// Last address, as a number (inclusive).
    pub end: u128,
}

/// The highest address of a family, as a number.
pub fn max_of(v6: bool) -> u128 {
    if v6 { u128::MAX } else { u128::from(u32::MAX) }
}

impl Span {
    /// The span of one address (IPv4-mapped IPv6 as IPv4).
    pub fn host(ip: IpAddr) -> Span {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let x = u128::from(u32::from(a));
                Span {
                    v6: false,
                    start: x,
                    end: x,
                }
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                Span {
                    v6: true,
                    start: x,
                    end: x,
                }
            }
        }
    }

    /// `a/len` (host bits cleared) or a bare address.
    pub fn parse_cidr(s: &str) -> Option<Span> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let h = Span::host(a.parse::<IpAddr>().ok()?);
        let bits: u32 = if h.v6 { 128 } else { 32 };
        let len = u32::from(len.unwrap_or(bits as u8));
        if len > bits {
            return None;
        }
        let host_mask = max_of(h.v6).checked_shr(len).unwrap_or(0);
        Some(Span {
            v6: h.v6,
            start: h.start & !host_mask,
            end: (h.start & !host_mask) | host_mask,
        })
    }

    fn addr(v6: bool, x: u128) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(x))
        } else {
            IpAddr::V4(Ipv4Addr::from(x as u32))
        }
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        Span::addr(self.v6, self.start)
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        Span::addr(self.v6, self.end)
    }

    /// Same family and at least one address in common.
    pub fn overlaps(&self, o: &Span) -> bool {
        self.v6 == o.v6 && self.start <= o.end && o.start <= self.end
    }

    /// How nft writes it in an interval set: `a`, `a/len` or `a-b`.
    pub fn nft_text(&self) -> String {
        if self.start == self.end {
            return self.first().to_string();
        }
        let size = self.end - self.start;
        if size
            .checked_add(1)
            .is_none_or(|n| n.is_power_of_two() && self.start & size == 0)
        {
            let bits = if self.v6 { 128 } else { 32 };
            let host_bits = 128 - size.leading_zeros();
            return format!("{}/{}", self.first(), bits - host_bits);
        }
        format!("{}-{}", self.first(), self.last())
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.nft_text())
    }
}
