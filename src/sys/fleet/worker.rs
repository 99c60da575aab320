//! The fleet thread: pushes the spool's records to the LAPI and pulls its decisions into the
//! nftables sets, with back-off, and hands its log lines to the event loop. It shares with
//! the loop only [`Shared`]: the spool (under a mutex: the loop appends records, the thread
//! its `S`/`A` lines), the log lines, the status, new settings after a reload, the stop flag
//! and two eventfds (the loop wakes the thread; the thread wakes the loop).

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::Settings;
use super::pull::{self, Puller};
use super::push::{self, Pusher};
use super::shared::{Reconfig, Shared, relock};
use super::spool;
use crate::fleet::creds::{LapiHost, LapiUrl};
use crate::fleet::link;
use crate::fleet::spool::Scanned;
use crate::observe::report;
use crate::sys::clock;

/// After a caught panic, the thread waits this long before it tries again.
const PANIC_PAUSE_MS: u64 = 10_000;

/// The thread's state.
pub(super) struct Worker {
    shared: Arc<Shared>,
    push: Option<Pusher>,
    pull: Option<Puller>,
    sent: u64,
    dropped: u64,
    /// The LAPI URLs whose addresses are protected (issue 24).
    lapi_urls: Vec<LapiUrl>,
    /// When to resolve their names (again): at start, after a reload, a minute after a
    /// failure; None when done.
    next_resolve: Option<u64>,
    /// Names whose failure was logged (logged again after they resolved once).
    unresolved: HashSet<String>,
    /// What each name resolved to when last logged.
    resolved: std::collections::HashMap<String, Vec<IpAddr>>,
}

impl Worker {
    pub(super) fn new(s: Settings, shared: Arc<Shared>, scanned: Option<Scanned>) -> Worker {
        let now = clock::now_ms();
        let push = s
            .push
            .map(|p| Pusher::new(p, scanned.unwrap_or_default(), &shared, now));
        let pull = s.pull.map(|p| {
            Puller::new(
                p,
                s.ignore_file.clone(),
                s.never_block.clone(),
                &shared,
                now,
            )
        });
        let w = Worker {
            shared,
            push,
            pull,
            sent: 0,
            dropped: 0,
            lapi_urls: s.lapi_urls,
            next_resolve: Some(now),
            unresolved: HashSet::new(),
            resolved: std::collections::HashMap::new(),
        };
        w.announce();
        w
    }

    /// Resolves the LAPI URLs' names (every A and AAAA, through the system's resolver as
    /// ureq does) and publishes their addresses with the literal ones, for the loop's
    /// protected addresses and the fleet sets' holes. A name that does not resolve keeps
    /// the addresses it had, is logged once, and is tried again a minute later.
    fn resolve_lapi(&mut self, now: u64) {
        use std::net::ToSocketAddrs;
        let (_, before) = self.shared.lapi_addrs();
        let mut addrs = Vec::new();
        let mut failed = false;
        for u in &self.lapi_urls {
            match u.host() {
                (LapiHost::Ip(ip), _) => addrs.push(ip),
                (LapiHost::Name(name), port) => match (name.as_str(), port).to_socket_addrs() {
                    Ok(it) => {
                        let mut got: Vec<IpAddr> = it.map(|sa| sa.ip().to_canonical()).collect();
                        got.sort_unstable();
                        got.dedup();
                        if self.resolved.get(&name) != Some(&got) {
                            self.shared.log(report::fleet_lapi_resolved(&name, &got));
                            self.resolved.insert(name.clone(), got.clone());
                        }
                        addrs.extend(got);
                        self.unresolved.remove(&name);
                    }
                    Err(e) => {
                        failed = true;
                        if self.unresolved.insert(name.clone()) {
                            self.shared
                                .log(report::fleet_lapi_unresolved(&name, &e.to_string()));
                        }
                    }
                },
            }
        }
        if failed {
            addrs.extend(before);
        }
        self.shared.set_lapi_addrs(addrs);
        self.next_resolve = failed.then_some(now + 60_000);
    }

    /// The line that says what the fleet does now (at start and after a reload).
    fn announce(&self) {
        let url = self
            .push
            .as_ref()
            .map(|p| p.p.creds.url.as_str().to_string())
            .or_else(|| self.pull.as_ref().map(|p| p.p.url.as_str().to_string()));
        let Some(url) = url else { return };
        let waiting = self.shared.with_spool(|s| s.waiting).unwrap_or(0);
        self.shared.log(report::fleet_started(
            &url,
            self.push.is_some(),
            self.pull.is_some(),
            waiting,
        ));
    }

    pub(super) fn run(mut self) {
        let mut last_housekeeping = clock::now_ms();
        let mut last_panic: Option<u64> = None;
        while !self.shared.stop.load(Ordering::SeqCst) {
            // A panic in one turn (a bug reached by what a LAPI sent) is caught here: the
            // loop and detection never notice, the thread goes on (issue 24).
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.turn(&mut last_housekeeping)
            }));
            let next = match turn {
                Ok(next) => next,
                Err(e) => {
                    let now = clock::now_ms();
                    if last_panic.is_none_or(|t| now.saturating_sub(t) >= link::LINE_INTERVAL_MS) {
                        last_panic = Some(now);
                        self.shared
                            .log(report::fleet_thread_failed(&panic_text(&*e)));
                    }
                    self.after_panic(now);
                    now + PANIC_PAUSE_MS
                }
            };
            let wait = next.saturating_sub(clock::now_ms()).min(1000);
            if wait > 0 {
                let mut fds = [PollFd::new(self.shared.wake.as_fd(), PollFlags::POLLIN)];
                let _ = poll(
                    &mut fds,
                    PollTimeout::from(u16::try_from(wait).unwrap_or(1000)),
                );
                let _ = self.shared.wake.read();
            }
        }
    }

    /// One turn: a reload's settings, the LAPI's names, what is due on each side. Returns
    /// when it wants to run again.
    fn turn(&mut self, last_housekeeping: &mut u64) -> u64 {
        let pending = self
            .shared
            .reconfig
            .lock()
            .or_else(relock)
            .ok()
            .and_then(|mut g| g.take());
        if let Some(r) = pending {
            self.reconfigure(r);
        }
        let now = clock::now_ms();
        if self.next_resolve.is_some_and(|t| now >= t) {
            self.resolve_lapi(now);
        }
        let mut next = now + 1000;
        if let Some(p) = &mut self.push {
            next = next.min(push::pump(
                p,
                &self.shared,
                now,
                &mut self.sent,
                &mut self.dropped,
            ));
        }
        if let Some(pl) = &mut self.pull {
            if now >= pl.next_try {
                pull::pull_once(pl, &self.shared, now);
                // The stream answered: a push backing off from the same LAPI tries
                // again now rather than after its back-off (up to a minute).
                if let Some(p) = &mut self.push
                    && pl.link.state() == link::State::Up
                    && matches!(p.link.state(), link::State::Down { .. })
                    && p.p.creds.url == pl.p.url
                    && !p.refused
                {
                    p.next_try = p.next_try.min(clock::now_ms());
                    next = next.min(p.next_try);
                }
            }
            next = next.min(pl.next_try);
        }
        if now.saturating_sub(*last_housekeeping) >= 1000 {
            *last_housekeeping = now;
            self.housekeeping(now);
        }
        self.publish();
        next
    }

    /// After a caught panic: both sides wait a little; the pull reads the whole stream
    /// again (its model may be half updated), the push keeps its spool state (every change
    /// to it is one line on disk) and logs in again.
    fn after_panic(&mut self, now: u64) {
        if let Some(pl) = &mut self.pull {
            pl.resync.restart();
            pl.next_try = now + PANIC_PAUSE_MS;
        }
        if let Some(p) = &mut self.push {
            p.token = None;
            p.next_try = now + PANIC_PAUSE_MS;
        }
    }

    /// Takes a reload's settings (between two requests: never while one is in flight).
    fn reconfigure(&mut self, r: Reconfig) {
        let now = clock::now_ms();
        let s = r.settings;
        self.lapi_urls = s.lapi_urls;
        self.next_resolve = Some(now);
        self.push = match (self.push.take(), s.push) {
            (Some(mut old), Some(p)) => {
                old.update(p, &self.shared, now);
                Some(old)
            }
            (None, Some(p)) => Some(Pusher::new(
                p,
                r.scanned.unwrap_or_default(),
                &self.shared,
                now,
            )),
            // Records already in the spool wait there for pushing to be turned on again.
            (_, None) => None,
        };
        self.pull = match (self.pull.take(), s.pull) {
            (Some(mut old), Some(p)) => {
                old.update(
                    p,
                    s.ignore_file.clone(),
                    s.never_block.clone(),
                    &self.shared,
                    now,
                );
                Some(old)
            }
            (None, Some(p)) => Some(Puller::new(
                p,
                s.ignore_file.clone(),
                s.never_block.clone(),
                &self.shared,
                now,
            )),
            (Some(mut old), None) => {
                // Nothing follows the decisions any more: their bans would outlive a delete.
                let removed = pull::clear_sets(&mut old, &self.shared, now);
                self.shared.log(report::fleet_pull_stopped(removed));
                None
            }
            (None, None) => None,
        };
        self.announce();
    }

    fn publish(&self) {
        let waiting = self.shared.with_spool(|s| s.waiting).unwrap_or(0);
        if let Ok(mut s) = self.shared.status.lock().or_else(relock) {
            s.push = self.push.as_ref().map(|p| p.link.state());
            s.pull = self.pull.as_ref().map(|p| p.link.state());
            s.waiting = waiting;
            s.sent = self.sent;
            s.dropped = self.dropped;
            s.decisions = self.pull.as_ref().map_or(0, |p| p.model.len());
            let now = clock::now_ms();
            (s.pull_every_ms, s.pull_took_ms, s.pull_behind_ms) =
                self.pull.as_ref().map_or((0, 0, 0), |p| {
                    (
                        p.pace.every_ms(p.p.interval_ms),
                        p.pace.took_ms(),
                        p.pace.behind_ms(now, p.p.interval_ms),
                    )
                });
        }
    }

    /// Once a second: records the full spool dropped, the alert limits' summary.
    fn housekeeping(&mut self, now: u64) {
        let full = self
            .shared
            .with_spool(|s| std::mem::take(&mut s.dropped))
            .unwrap_or(0);
        if full > 0 {
            self.dropped += full;
            self.shared
                .log(report::fleet_spool_full(full, spool::MAX_BYTES));
        }
        if let Some(p) = &mut self.push
            && let Some((total, secs, top)) = p.limiter.summary(now, 10_000)
        {
            self.shared.log(report::fleet_grouped(total, secs, &top));
        }
    }
}

/// A panic's message (a `&str` or `String` payload), or a word for any other.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
