//! Addresses portsentry must never block, whatever the ignore file says: this host's own
//! addresses, the unspecified, loopback, multicast and broadcast addresses, and the default
//! gateways. A forged source is the cheapest attack on an active-response daemon: a spoofed
//! SYN "from" the gateway would otherwise cut the host off its network.
//!
//! Pure: the shell supplies the host's addresses and the routing-table text.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 0.0.0.0 or ::.
    Unspecified,
    /// 127.0.0.0/8 or ::1.
    Loopback,
    /// A multicast group.
    Multicast,
    /// A broadcast address (255.255.255.255, or an interface's).
    Broadcast,
    /// An address of this host.
    LocalAddress,
    /// A default gateway.
    Gateway,
}

impl Reason {
    /// The words of the refusal line.
    pub fn text(self) -> &'static str {
        match self {
            Reason::Unspecified => "the unspecified address",
            Reason::Loopback => "a loopback address",
            Reason::Multicast => "a multicast address",
            Reason::Broadcast => "a broadcast address",
            Reason::LocalAddress => "an address of this host",
            Reason::Gateway => "a default gateway",
        }
    }
}

/// The protected addresses of this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    local: HashSet<IpAddr>,
    broadcast: HashSet<IpAddr>,
    gateways: HashSet<IpAddr>,
}

impl Protected {
    /// The protected set from this host's addresses, broadcast addresses and gateways.
    pub fn new(
        local: impl IntoIterator<Item = IpAddr>,
        broadcast: impl IntoIterator<Item = IpAddr>,
        gateways: impl IntoIterator<Item = IpAddr>,
    ) -> Protected {
        let canon = |i: IpAddr| i.to_canonical();
        Protected {
            local: local.into_iter().map(canon).collect(),
            broadcast: broadcast.into_iter().map(canon).collect(),
            gateways: gateways.into_iter().map(canon).collect(),
        }
    }

    /// Why `ip` must never be blocked, or None.
    pub fn reason(&self, ip: IpAddr) -> Option<Reason> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return Some(Reason::Unspecified);
        }
        if ip.is_loopback() {
            return Some(Reason::Loopback);
        }
        if ip.is_multicast() {
            return Some(Reason::Multicast);
        }
        // Local first: without `brd`, an interface may report its own address as broadcast.
        if self.local.contains(&ip) {
            return Some(Reason::LocalAddress);
        }
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) || self.broadcast.contains(&ip) {
            return Some(Reason::Broadcast);
        }
        if self.gateways.contains(&ip) {
            return Some(Reason::Gateway);
        }
        None
    }
}

/// Default gateways from `/proc/net/route` (IPv4: destination 0, mask 0, RTF_GATEWAY; the
/// addresses are the network-order bytes printed as a native-endian `%08X`).
pub fn gateways_v4(proc_net_route: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in proc_net_route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(gw), Ok(flags), Ok(mask)) = (
            u32::from_str_radix(f[1], 16),
            u32::from_str_radix(f[2], 16),
            u32::from_str_radix(f[3], 16),
            u32::from_str_radix(f[7], 16),
        ) else {
            continue;
        };
        const RTF_GATEWAY: u32 = 0x2;
        if dest == 0 && mask == 0 && flags & RTF_GATEWAY != 0 && gw != 0 {
            out.push(IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())));
        }
    }
    out
}

/// Default gateways from `/proc/net/ipv6_route` (destination ::/0 with a next hop).
pub fn gateways_v6(proc_net_ipv6_route: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in proc_net_ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[1] != "00" {
            continue;
        }
        let (Some(dest), Some(hop)) = (hex128(f[0]), hex128(f[4])) else {
            continue;
        };
        if dest == 0 && hop != 0 {
            out.push(IpAddr::V6(Ipv6Addr::from(hop)));
        }
    }
    out
}

fn hex128(s: &str) -> Option<u128> {
    if s.len() != 32 {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes_and_host_addresses_are_protected() {
        let p = Protected::new(
            [ip("198.51.100.1"), ip("2001:db8::1")],
            [ip("198.51.100.255")],
            [ip("198.51.100.254")],
        );
        assert_eq!(p.reason(ip("0.0.0.0")), Some(Reason::Unspecified));
        assert_eq!(p.reason(ip("::")), Some(Reason::Unspecified));
        assert_eq!(p.reason(ip("127.0.0.5")), Some(Reason::Loopback));
        assert_eq!(p.reason(ip("::1")), Some(Reason::Loopback));
        assert_eq!(p.reason(ip("::ffff:127.0.0.1")), Some(Reason::Loopback));
        assert_eq!(p.reason(ip("224.0.0.1")), Some(Reason::Multicast));
        assert_eq!(p.reason(ip("ff02::1")), Some(Reason::Multicast));
        assert_eq!(p.reason(ip("255.255.255.255")), Some(Reason::Broadcast));
        assert_eq!(p.reason(ip("198.51.100.255")), Some(Reason::Broadcast));
        assert_eq!(p.reason(ip("198.51.100.1")), Some(Reason::LocalAddress));
        assert_eq!(
            p.reason(ip("::ffff:198.51.100.1")),
            Some(Reason::LocalAddress)
        );
        assert_eq!(p.reason(ip("2001:db8::1")), Some(Reason::LocalAddress));
        assert_eq!(p.reason(ip("198.51.100.254")), Some(Reason::Gateway));
        assert_eq!(p.reason(ip("198.51.100.2")), None);
        assert_eq!(p.reason(ip("2001:db8::2")), None);
    }

    #[test]
    fn default_gateways_from_the_routing_tables() {
        // Captured from a Debian 12 machine (gateway 192.0.2.1, fd00::1).
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth1\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n\
                  garbage line\n";
        assert_eq!(gateways_v4(v4), vec![ip("192.0.2.1")]);
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  zz\n";
        assert_eq!(gateways_v6(v6), vec![ip("fd00::1")]);
        assert!(gateways_v4("").is_empty());
        assert!(gateways_v6("\u{0}\u{1}").is_empty());
    }
}
