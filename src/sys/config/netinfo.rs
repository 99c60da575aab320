//! Reads what [`Protected`] needs from the system: interface addresses (and IPv4 broadcast
//! addresses) through if-addrs, default gateways from /proc/net/route and ipv6_route, the
//! nameservers of /etc/resolv.conf. The LAPI's addresses (resolved by the fleet thread) and
//! NEVER_BLOCK come from the caller.

use std::net::IpAddr;

use crate::config::ignore::Net;
use crate::config::protect::{self, Depends, Protected};

/// The resolvers' file (inside `ip netns exec NS`, /etc/netns/NS/resolv.conf is bound over it).
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The addresses never to block, as this host has them now, with the LAPI's addresses and
/// the NEVER_BLOCK networks.
pub fn protected(lapi: &[IpAddr], never_block: &[Net]) -> Protected {
    let mut local = Vec::new();
    let mut broadcast = Vec::new();
    if let Ok(ifs) = if_addrs::get_if_addrs() {
        for i in ifs {
            local.push(i.ip());
            if let if_addrs::IfAddr::V4(v4) = &i.addr
                && let Some(b) = v4.broadcast
            {
                broadcast.push(std::net::IpAddr::V4(b));
            }
        }
    }
    let mut gateways = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        gateways.extend(protect::gateways_v4(&t));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
        gateways.extend(protect::gateways_v6(&t));
    }
    let nameservers = std::fs::read_to_string(RESOLV_CONF)
        .map(|t| protect::nameservers(&t))
        .unwrap_or_default();
    Protected::new(local, broadcast, gateways).with(&Depends {
        lapi: lapi.to_vec(),
        nameservers,
        never_block: never_block.to_vec(),
    })
}
