//! Addresses portsentry must never block, whatever the ignore file says: this host's own
//! addresses, the unspecified, loopback, multicast and broadcast addresses, the default
//! gateways, and what the host depends on (issue 24): the CrowdSec LAPI, the nameservers of
//! /etc/resolv.conf and the networks of `NEVER_BLOCK` (NTP, monitoring, jump hosts). A
//! forged source is the cheapest attack on an active-response daemon: one spoofed UDP
//! datagram "from" the gateway, the resolver or the LAPI would otherwise cut the host off
//! what it needs, and with the LAPI blocked no pulled decision could ever lift it.
//!
//! Pure: the shell supplies the host's addresses, the routing-table and resolv.conf text,
//! and the LAPI's resolved addresses.

use foldhash::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::ignore::Net;

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
    /// An address of the CrowdSec LAPI (CROWDSEC_LAPI_URL, the credentials file's url).
    Lapi,
    /// A nameserver of /etc/resolv.conf.
    Nameserver,
    /// In a network of NEVER_BLOCK.
    NeverBlock,
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
            Reason::Lapi => "the CrowdSec LAPI",
            Reason::Nameserver => "a nameserver of /etc/resolv.conf",
            Reason::NeverBlock => "in NEVER_BLOCK",
        }
    }
}

/// What the host depends on besides its own addresses and gateways: the LAPI's addresses,
/// the resolvers, the admin's NEVER_BLOCK networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Depends {
    /// The CrowdSec LAPI's addresses (every A and AAAA of its URL's host).
    pub lapi: Vec<IpAddr>,
    /// The `nameserver` lines of /etc/resolv.conf.
    pub nameservers: Vec<IpAddr>,
    /// NEVER_BLOCK.
    pub never_block: Vec<Net>,
}

/// The protected addresses of this host.
///
/// The single addresses are one map, each with the first reason that applies (its own
/// addresses, then broadcast, gateways, LAPI, nameservers): `reason` is asked for every
/// reported hit, and under a flood from all of IPv4 that is every forged packet. Five sets
/// took five hashes and probes a hit, twice on the way to a block (measured: 8% of the
/// samples of `examples/engine_flood`; with one map its all4 flood went from 268 to 244 ns
/// per hit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    addrs: HashMap<IpAddr, Reason>,
    never_block: Vec<Net>,
}

impl Protected {
    /// The protected set from this host's addresses, broadcast addresses and gateways.
    pub fn new(
        local: impl IntoIterator<Item = IpAddr>,
        broadcast: impl IntoIterator<Item = IpAddr>,
        gateways: impl IntoIterator<Item = IpAddr>,
    ) -> Protected {
        let mut p = Protected::default();
        p.add(local, Reason::LocalAddress);
        p.add(broadcast, Reason::Broadcast);
        p.add(gateways, Reason::Gateway);
        p
    }

    /// The same, also protecting what the host depends on.
    pub fn with(mut self, d: &Depends) -> Protected {
        self.addrs
            .retain(|_, r| !matches!(r, Reason::Lapi | Reason::Nameserver));
        self.add(d.lapi.iter().copied(), Reason::Lapi);
        self.add(d.nameservers.iter().copied(), Reason::Nameserver);
        self.never_block.clone_from(&d.never_block);
        self
    }

    /// Protect `addrs` for `reason`, unless a reason added before already applies.
    fn add(&mut self, addrs: impl IntoIterator<Item = IpAddr>, reason: Reason) {
        for ip in addrs {
            self.addrs.entry(ip.to_canonical()).or_insert(reason);
        }
    }

    /// The single addresses protected for this host in particular (its own, broadcast,
    /// gateways, LAPI, nameservers), each with the reason that applies to it, and the
    /// NEVER_BLOCK networks, with why; sorted by reason, then address. The classes
    /// (loopback, multicast, ...) are not listed.
    pub fn entries(&self) -> Vec<(Net, Reason)> {
        let mut v: Vec<(Reason, IpAddr)> = self.addrs.iter().map(|(ip, r)| (*r, *ip)).collect();
        // In the order `reason` asks.
        let rank = |r: Reason| {
            [
                Reason::LocalAddress,
                Reason::Broadcast,
                Reason::Gateway,
                Reason::Lapi,
            ]
            .iter()
            .position(|x| *x == r)
            .unwrap_or(4)
        };
        v.sort_unstable_by_key(|&(r, ip)| (rank(r), ip));
        let mut out: Vec<(Net, Reason)> = v.into_iter().map(|(r, ip)| (Net::host(ip), r)).collect();
        out.extend(self.never_block.iter().map(|n| (*n, Reason::NeverBlock)));
        out
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
        // One lookup for this host's own addresses (first: without `brd`, an interface may
        // report its own address as broadcast), broadcast, gateways, LAPI and nameservers.
        if let Some(r) = self.addrs.get(&ip) {
            return Some(*r);
        }
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Some(Reason::Broadcast);
        }
        if self.never_block.iter().any(|n| n.contains(ip)) {
            return Some(Reason::NeverBlock);
        }
        None
    }
}

/// The `nameserver` addresses of resolv.conf(5) text (a zone index such as `%eth0` after a
/// link-local address is dropped; anything that is no address is skipped).
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in resolv_conf.lines() {
        let mut f = line.split_whitespace();
        if f.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = f.next() else { continue };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = addr.parse::<IpAddr>() {
            out.push(ip.to_canonical());
        }
    }
    out
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
        // An interface without `brd` may report its own address as its broadcast: it is
        // this host's, listed once.
        let q = Protected::new([ip("192.0.2.7")], [ip("192.0.2.7")], [ip("192.0.2.1")]);
        assert_eq!(q.reason(ip("192.0.2.7")), Some(Reason::LocalAddress));
        assert_eq!(
            q.entries(),
            vec![
                (Net::host(ip("192.0.2.7")), Reason::LocalAddress),
                (Net::host(ip("192.0.2.1")), Reason::Gateway)
            ]
        );
    }

    #[test]
    fn what_the_host_depends_on_is_protected_after_its_own_addresses() {
        let d = Depends {
            lapi: vec![ip("203.0.113.1"), ip("2001:db8:113::1")],
            nameservers: vec![ip("192.0.2.53")],
            never_block: vec![
                crate::config::ignore::parse_net("198.18.0.0/15").unwrap(),
                crate::config::ignore::parse_net("2001:db8:7::/48").unwrap(),
            ],
        };
        let p = Protected::new([ip("203.0.113.2")], [], [ip("203.0.113.254")]).with(&d);
        assert_eq!(p.reason(ip("203.0.113.1")), Some(Reason::Lapi));
        assert_eq!(p.reason(ip("::ffff:203.0.113.1")), Some(Reason::Lapi));
        assert_eq!(p.reason(ip("2001:db8:113::1")), Some(Reason::Lapi));
        assert_eq!(p.reason(ip("192.0.2.53")), Some(Reason::Nameserver));
        assert_eq!(p.reason(ip("198.19.255.255")), Some(Reason::NeverBlock));
        assert_eq!(p.reason(ip("2001:db8:7:ffff::9")), Some(Reason::NeverBlock));
        assert_eq!(p.reason(ip("198.20.0.0")), None);
        assert_eq!(p.reason(ip("2001:db8:8::9")), None);
        assert_eq!(p.reason(ip("203.0.113.2")), Some(Reason::LocalAddress));
        // Without `with`, none of them is protected (what the daemon did before issue 24).
        let bare = Protected::new([ip("203.0.113.2")], [], [ip("203.0.113.254")]);
        for a in ["203.0.113.1", "192.0.2.53", "198.19.0.1"] {
            assert_eq!(bare.reason(ip(a)), None, "{a}");
        }
        let e = p.entries();
        assert!(e.contains(&(Net::host(ip("203.0.113.1")), Reason::Lapi)));
        assert!(e.contains(&(Net::host(ip("192.0.2.53")), Reason::Nameserver)));
        assert!(e.contains(&(Net::host(ip("203.0.113.254")), Reason::Gateway)));
        assert!(e.contains(&(
            crate::config::ignore::parse_net("198.18.0.0/15").unwrap(),
            Reason::NeverBlock
        )));
        assert_eq!(Reason::Lapi.text(), "the CrowdSec LAPI");
        // Asked again with what the host depends on now, the old LAPI and resolvers go.
        let moved = Depends {
            lapi: vec![ip("203.0.113.9")],
            ..Depends::default()
        };
        let p = p.with(&moved);
        assert_eq!(p.reason(ip("203.0.113.1")), None);
        assert_eq!(p.reason(ip("192.0.2.53")), None);
        assert_eq!(p.reason(ip("203.0.113.9")), Some(Reason::Lapi));
        assert_eq!(p.reason(ip("203.0.113.254")), Some(Reason::Gateway));
    }

    #[test]
    fn nameservers_of_resolv_conf() {
        let text = "# Generated by NetworkManager\nsearch example.org\nnameserver 192.0.2.53\n\
                    nameserver  2001:db8::53 # second\nnameserver fe80::1%eth0\nnameserver\n\
                    nameserver resolver.example\n  nameserver 198.51.100.53\noptions edns0\n";
        assert_eq!(
            nameservers(text),
            vec![
                ip("192.0.2.53"),
                ip("2001:db8::53"),
                ip("fe80::1"),
                ip("198.51.100.53")
            ]
        );
        assert!(nameservers("").is_empty());
        assert!(nameservers("\u{0}nameserver\u{1b}").is_empty());
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
