//! Reads what [`Protected`] needs from the system: interface addresses (and IPv4 broadcast
//! addresses) through if-addrs, default gateways from /proc/net/route and ipv6_route.

use crate::config::protect::{self, Protected};

/// The addresses never to block, as this host has them now.
pub fn protected() -> Protected {
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
    Protected::new(local, broadcast, gateways)
}
