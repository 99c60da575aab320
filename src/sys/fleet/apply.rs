//! Where pulled bans never reach: the holes (this host's protected addresses, read as
//! `sys::netinfo` does, and the ignore file's networks). The `nft -f` transactions that
//! bring the sets to the decisions are in `pull`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::ignore::Net;
use crate::config::protect;
use crate::fleet::bans::Hole;
use crate::fleet::span::Span;
use crate::sys::config::netinfo;

/// The ignore file, re-read when its modification time changes.
pub struct IgnoreCache {
    path: Option<PathBuf>,
    stamp: Option<SystemTime>,
    nets: Vec<crate::config::ignore::Net>,
}

impl IgnoreCache {
    /// A cache of the ignore file at `path` (None: no ignore file).
    pub fn new(path: Option<PathBuf>) -> IgnoreCache {
        IgnoreCache {
            path,
            stamp: None,
            nets: Vec::new(),
        }
    }

    fn nets(&mut self) -> &[crate::config::ignore::Net] {
        if let Some(p) = &self.path {
            let stamp = std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if stamp != self.stamp || stamp.is_none() {
                self.stamp = stamp;
                self.nets = std::fs::read(p)
                    .map(|b| crate::config::ignore::parse(&b).0.nets().to_vec())
                    .unwrap_or_default();
            }
        }
        &self.nets
    }
}

fn span_of(net: &crate::config::ignore::Net) -> Option<Span> {
    Span::parse_cidr(&format!("{}/{}", net.addr, net.prefix))
}

/// Addresses no fleet ban may cover: the classes, this host's protected addresses (its own,
/// broadcast, gateways, the LAPI's `lapi`, the nameservers, NEVER_BLOCK), the ignore file's.
pub fn holes(ignore: &mut IgnoreCache, lapi: &[IpAddr], never_block: &[Net]) -> Vec<Hole> {
    let mut out = Vec::new();
    let mut add = |s: &str, why: String| {
        if let Some(span) = Span::parse_cidr(s) {
            out.push(Hole { span, why });
        }
    };
    for (net, r) in [
        ("0.0.0.0", protect::Reason::Unspecified),
        ("::", protect::Reason::Unspecified),
        ("127.0.0.0/8", protect::Reason::Loopback),
        ("::1", protect::Reason::Loopback),
        ("224.0.0.0/4", protect::Reason::Multicast),
        ("ff00::/8", protect::Reason::Multicast),
        ("255.255.255.255", protect::Reason::Broadcast),
    ] {
        add(net, format!("{net} is {}", r.text()));
    }
    for (net, r) in netinfo::protected(lapi, never_block).entries() {
        add(&net.to_string(), format!("{net} is {}", r.text()));
    }
    for n in ignore.nets() {
        if let Some(span) = span_of(n) {
            out.push(Hole {
                span,
                why: format!("{n} is in the ignore file"),
            });
        }
    }
    out
}
