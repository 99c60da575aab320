//! Pulled bans into nftables: the holes (this host's protected addresses, read as
//! `sys::netinfo` does, and the ignore file's networks), and one `nft -f` transaction per
//! change (on the fleet thread: a pull brings at most one run a second, so nft's parser,
//! which handles intervals and ranges, costs the event loop nothing).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::ignore::Net;
use crate::config::protect;
use crate::fleet::bans::{self, Hole, Span};
use crate::observe::report;
use crate::sys::config::netinfo;

use super::worker::{Puller, Shared};
use crate::sys::block::nftables;

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

/// What the fleet sets hold now (at start, and after a failed transaction).
pub(super) fn read_applied(pl: &mut Puller, now: u64) {
    if let Ok(elems) = nftables::list() {
        pl.applied = bans::from_listing(now, &elems);
    }
}

/// Brings the sets to what the decisions in force say.
pub(super) fn sync_sets(pl: &mut Puller, sh: &Shared, now: u64) {
    let hs = holes(&mut pl.ignore, &sh.lapi_addrs().1, &pl.never_block);
    let (desired, refused) = pl.model.desired(now, &hs);
    for r in refused {
        let line = || report::fleet_not_applied(r.id, &r.value, &r.scenario, &r.hole, r.whole);
        pl.tell.tell(sh, r.id, &r.hole, line);
    }
    pl.applied.retain(|_, u| *u > now);
    let plan = bans::diff(now, &pl.applied, &desired);
    if plan.is_empty() {
        return;
    }
    let first = nftables::run_script(&bans::script(&plan));
    let result = match first {
        Ok(()) => Ok(()),
        Err(_) => {
            // Someone changed the sets under us (an element expired a moment early, the
            // table was rebuilt): read them back and try once more.
            read_applied(pl, now);
            let plan = bans::diff(now, &pl.applied, &desired);
            if plan.is_empty() {
                Ok(())
            } else {
                nftables::run_script(&bans::script(&plan))
            }
        }
    };
    match result {
        Ok(()) => {
            pl.applied = desired;
            pl.last_apply_error = None;
        }
        Err(e) => {
            if pl
                .last_apply_error
                .is_none_or(|t| now.saturating_sub(t) >= 60_000)
            {
                pl.last_apply_error = Some(now);
                sh.log(report::fleet_apply_failed(&e.to_string()));
            }
            read_applied(pl, now);
        }
    }
}

/// Empties the fleet sets of what this puller applied (pulling turned off by a reload).
/// Returns how many pieces were removed.
pub(super) fn clear_sets(pl: &mut Puller, sh: &Shared, now: u64) -> usize {
    read_applied(pl, now);
    let n = pl.applied.len();
    let plan = bans::diff(now, &pl.applied, &std::collections::BTreeMap::new());
    if plan.is_empty() {
        return 0;
    }
    match nftables::run_script(&bans::script(&plan)) {
        Ok(()) => {
            pl.applied.clear();
            n
        }
        Err(e) => {
            sh.log(report::fleet_apply_failed(&e.to_string()));
            0
        }
    }
}
