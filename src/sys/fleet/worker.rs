//! The fleet thread: pushes the spool's records to the LAPI and pulls its decisions into the
//! nftables sets, with back-off, and hands its log lines to the event loop. It shares with
//! the loop only [`Shared`]: the spool (under a mutex: the loop appends records, the thread
//! its `S`/`A` lines), the log lines, the status, new settings after a reload, the stop flag
//! and two eventfds (the loop wakes the thread; the thread wakes the loop).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::EventFd;

use super::apply;
use super::http::{Client, Failure, Token};
use super::spool::{self, Reader, Spool};
use super::{Pull, Push, Settings, Status};
use crate::config::ignore::Net;
use crate::fleet::alert::{self, Numbered, Record};
use crate::fleet::bans::{Bounds, Model, Span};
use crate::fleet::creds::{LapiHost, LapiUrl};
use crate::fleet::limit;
use crate::fleet::link::{self, Link, Pace, PaceNews};
use crate::fleet::spool::{Ranges, Scanned};
use crate::fleet::stream::{self, Resync};
use crate::observe::report::{self, Side};
use crate::sys::clock;

/// A spool that took more than 64 KiB starts over once everything in it is delivered.
const RESET_MIN_BYTES: u64 = 64 * 1024;
/// A spool past half its bound whose delivered head is at least half of it has that head
/// cut off (so a full spool, half delivered, has room again while the rest waits).
const CUT_MIN_BYTES: u64 = spool::MAX_BYTES / 2;
/// After a failed compaction, the next try waits this long.
const COMPACT_RETRY_MS: u64 = 60_000;
/// A failing pull retries with back-off, but never waits longer than this many pull
/// intervals: when the LAPI returns, the hosts have its decisions within seconds (a refused
/// connection every few seconds costs a LAPI nothing).
const PULL_BACKOFF_INTERVALS: u64 = 4;
/// After a caught panic, the thread waits this long before it tries again.
const PANIC_PAUSE_MS: u64 = 10_000;
/// Log lines waiting for the loop, at most (a loop that stopped reading must not make the
/// thread grow).
const MAX_LOG_LINES: usize = 10_000;

/// New settings from a reload, with the spool's state when pushing was just turned on.
pub(super) struct Reconfig {
    pub(super) settings: Settings,
    pub(super) scanned: Option<Scanned>,
}

/// A lock whose other holder panicked is taken all the same: the loop must go on after the
/// thread failed, and the thread after a caught panic (issue 24); every value behind these
/// locks is whole between two statements.
fn relock<G>(e: PoisonError<G>) -> Result<G, PoisonError<G>> {
    Ok(e.into_inner())
}

/// What the loop and the thread share.
pub(super) struct Shared {
    spool: Mutex<Option<Spool>>,
    log: Mutex<Vec<String>>,
    status: Mutex<Status>,
    reconfig: Mutex<Option<Reconfig>>,
    /// The LAPI's addresses, with a generation that changes when they do.
    lapi: Mutex<(u64, Vec<IpAddr>)>,
    /// Set by the loop's `shutdown`; the thread ends at its next turn.
    pub(super) stop: AtomicBool,
    /// The thread waits on this; the loop writes it.
    wake: EventFd,
    /// The loop polls this; the thread writes it with log lines.
    pub(super) back: EventFd,
}

impl Shared {
    pub(super) fn new(wake: EventFd, back: EventFd) -> Shared {
        Shared {
            spool: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            status: Mutex::new(Status::default()),
            reconfig: Mutex::new(None),
            lapi: Mutex::new((0, Vec::new())),
            stop: AtomicBool::new(false),
            wake,
            back,
        }
    }

    /// A line for the loop to log.
    pub(super) fn log(&self, line: String) {
        if let Ok(mut l) = self.log.lock().or_else(relock)
            && l.len() < MAX_LOG_LINES
        {
            l.push(line);
        }
        let _ = self.back.write(1);
    }

    pub(super) fn take_log(&self) -> Vec<String> {
        let _ = self.back.read();
        self.log
            .lock()
            .or_else(relock)
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub(super) fn wake(&self) {
        let _ = self.wake.write(1);
    }

    /// The LAPI's addresses and their generation.
    pub(super) fn lapi_addrs(&self) -> (u64, Vec<IpAddr>) {
        self.lapi
            .lock()
            .or_else(relock)
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Publishes the LAPI's addresses (a new generation when they differ) and wakes the loop.
    pub(super) fn set_lapi_addrs(&self, mut addrs: Vec<IpAddr>) {
        addrs.sort_unstable();
        addrs.dedup();
        let changed = match self.lapi.lock().or_else(relock) {
            Ok(mut g) if g.1 != addrs => {
                g.0 += 1;
                g.1 = addrs;
                true
            }
            _ => false,
        };
        if changed {
            let _ = self.back.write(1);
        }
    }

    pub(super) fn status(&self) -> Status {
        self.status
            .lock()
            .or_else(relock)
            .map(|s| *s)
            .unwrap_or_default()
    }

    pub(super) fn set_spool(&self, s: Spool) {
        if let Ok(mut g) = self.spool.lock().or_else(relock) {
            *g = Some(s);
        }
    }

    /// The open spool's path, if one is open.
    pub(super) fn spool_path(&self) -> Option<PathBuf> {
        self.spool
            .lock()
            .or_else(relock)
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.path().to_path_buf()))
    }

    /// The loop's one write per turn. Err: the spool's path and the error (the records are
    /// lost for the fleet).
    pub(super) fn append(&self, records: &[Record]) -> Result<(), (PathBuf, io::Error)> {
        let Ok(mut g) = self.spool.lock().or_else(relock) else {
            return Ok(());
        };
        match g.as_mut() {
            Some(s) => s
                .append(records)
                .map(|_| ())
                .map_err(|e| (s.path().to_path_buf(), e)),
            None => Ok(()),
        }
    }

    pub(super) fn reconfigure(&self, r: Reconfig) {
        if let Ok(mut g) = self.reconfig.lock().or_else(relock) {
            *g = Some(r);
        }
        self.wake();
    }

    /// Runs `f` on the open spool (None when none is open or the lock is poisoned).
    fn with_spool<T>(&self, f: impl FnOnce(&mut Spool) -> T) -> Option<T> {
        self.spool.lock().or_else(relock).ok()?.as_mut().map(f)
    }
}

/// Where the thread is in the spool.
#[derive(Default)]
pub(super) struct Cursor {
    reader: Option<Reader>,
    /// Next byte to read.
    read_off: u64,
    /// Records delivered or given up.
    done: Ranges,
    /// Read, not yet delivered: records with their file offsets, in order.
    queue: VecDeque<(Numbered, u64)>,
    /// Records of a request whose outcome is unknown.
    uncertain: Ranges,
}

impl Cursor {
    fn new(path: &Path, sc: Scanned) -> Cursor {
        Cursor {
            reader: Reader::open(path).ok(),
            read_off: sc.first_waiting.map_or(sc.valid_len as u64, |o| o as u64),
            done: sc.done,
            queue: VecDeque::new(),
            uncertain: sc.in_flight,
        }
    }
}

/// The push side's state on the thread.
struct Pusher {
    p: Push,
    client: Option<Client>,
    token: Option<Token>,
    cur: Cursor,
    limiter: limit::Limiter,
    link: Link,
    next_try: u64,
    /// The credentials were refused (logged once): retry slowly, or at once after a reload.
    refused: bool,
    last_compact_error: Option<u64>,
}

impl Pusher {
    fn new(p: Push, sc: Scanned, sh: &Shared, now: u64) -> Pusher {
        Pusher {
            client: client(&p.creds.url, &p.tls, &p.creds_path, sh),
            cur: Cursor::new(&p.spool_path, sc),
            p,
            token: None,
            limiter: limit::Limiter::new(limit::Limits::default(), now),
            link: Link::new(),
            next_try: now,
            refused: false,
            last_compact_error: None,
        }
    }

    /// New settings: a new login when the credentials changed, the spool state kept. The
    /// client is made anew and tried at once even when nothing changed, so that a reload
    /// after `update-ca-certificates` trusts the new system store at once (a client keeps
    /// the roots it loaded, and its open connections, for its life).
    fn update(&mut self, p: Push, sh: &Shared, now: u64) {
        self.client = client(&p.creds.url, &p.tls, &p.creds_path, sh);
        self.next_try = now;
        if p.creds != self.p.creds || p.tls != self.p.tls {
            if p.creds.url != self.p.creds.url {
                self.link = Link::new();
            }
            self.token = None;
            self.refused = false;
        }
        self.p = p;
    }
}

/// The pull side's state on the thread.
pub(super) struct Puller {
    pub(super) p: Pull,
    client: Option<Client>,
    pub(super) model: Model,
    /// What the sets hold: piece and its end (monotonic ms).
    pub(super) applied: BTreeMap<Span, u64>,
    /// When to read the whole stream (`startup=true`) again.
    resync: Resync,
    link: Link,
    /// Stretched while the LAPI answers slowly.
    pace: Pace,
    next_try: u64,
    /// Decisions already logged as refused or not (wholly) applied.
    pub(super) tell: Tell,
    /// Malformed and over-cap objects of the stream not yet logged.
    skipped: (u64, u64),
    last_skipped_line: Option<u64>,
    pub(super) ignore: apply::IgnoreCache,
    /// NEVER_BLOCK: holes in every ban.
    pub(super) never_block: Vec<Net>,
    pub(super) last_apply_error: Option<u64>,
}

impl Puller {
    fn new(
        p: Pull,
        ignore_file: Option<PathBuf>,
        never_block: Vec<Net>,
        sh: &Shared,
        now: u64,
    ) -> Puller {
        let first_gap = p.interval_ms;
        let mut pl = Puller {
            never_block,
            client: client(&p.url, &p.tls, &p.key_path, sh),
            model: Model::new(bounds(&p)),
            p,
            applied: BTreeMap::new(),
            resync: Resync::default(),
            link: Link::new(),
            pace: Pace::new(now),
            next_try: now + link::first_pull_ms(first_gap, rand64()),
            tell: Tell::default(),
            skipped: (0, 0),
            last_skipped_line: None,
            ignore: apply::IgnoreCache::new(ignore_file),
            last_apply_error: None,
        };
        apply::read_applied(&mut pl, now);
        pl
    }

    /// New settings: another key or LAPI reads the stream from its start again (the answer
    /// replaces the decisions known); the sets stay as they are until then. The client is
    /// made anew and tried at once, as on the push side.
    fn update(
        &mut self,
        p: Pull,
        ignore_file: Option<PathBuf>,
        never_block: Vec<Net>,
        sh: &Shared,
        now: u64,
    ) {
        self.never_block = never_block;
        self.client = client(&p.url, &p.tls, &p.key_path, sh);
        self.next_try = now;
        if p.url != self.p.url || p.key != self.p.key || p.tls != self.p.tls {
            self.link.renew();
            if p.url != self.p.url {
                self.link = Link::new();
                self.pace = Pace::new(now);
            }
            self.resync.restart();
        }
        if bounds(&p) != self.model.bounds() {
            // Another CROWDSEC_WIDEST_BAN judges every decision again: a full read.
            self.model.set_bounds(bounds(&p));
            self.resync.restart();
        }
        self.p = p;
        self.ignore = apply::IgnoreCache::new(ignore_file);
    }
}

/// What the pulled decisions may ban, from the pull settings.
fn bounds(p: &Pull) -> Bounds {
    Bounds {
        widest: p.widest,
        max_active: crate::fleet::bans::MAX_ACTIVE,
    }
}

/// The HTTP client for `url`; None (logged) when the CA is unusable, which `load` already
/// refuses, so only a CA file changed under a running daemon gets here.
fn client(url: &LapiUrl, tls: &super::tls::Tls, file: &Path, sh: &Shared) -> Option<Client> {
    Client::new(url.clone(), tls)
        .map_err(|e| sh.log(report::fleet_client_failed(url.as_str(), file, &e)))
        .ok()
}

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
        if self.push.is_some() {
            next = next.min(self.pump_push(now));
        }
        if let Some(pl) = &mut self.pull {
            if now >= pl.next_try {
                pull_once(pl, &self.shared, now);
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
                let removed = apply::clear_sets(&mut old, &self.shared, now);
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

    /// Reads new records, sends what is due, keeps the spool small. Returns when it wants
    /// to run again.
    fn pump_push(&mut self, now: u64) -> u64 {
        let Some(p) = self.push.as_mut() else {
            return now + 1000;
        };
        let sh = &*self.shared;
        fill_queue(&mut p.cur, sh);
        if p.last_compact_error
            .is_none_or(|t| now.saturating_sub(t) >= COMPACT_RETRY_MS)
        {
            match sh.with_spool(|s| compact(&mut p.cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES)) {
                Some(Err(e)) => {
                    p.last_compact_error = Some(now);
                    let path = sh.spool_path().unwrap_or_default();
                    sh.log(report::fleet_spool_compact_failed(&path, &e.to_string()));
                }
                _ => p.last_compact_error = None,
            }
        }
        if p.cur.queue.is_empty() {
            return now + 1000;
        }
        if now < p.next_try {
            return p.next_try;
        }
        let url = p.p.creds.url.as_str().to_string();
        // A token first (login), then what arrived of an uncertain request, then a batch.
        let step = ensure_token(p, sh)
            .and_then(|()| recover(p, sh, &mut self.sent))
            .and_then(|()| send_batch(p, now, sh, &mut self.sent, &mut self.dropped));
        match step {
            Ok(gap) => {
                if let Some((down, skipped)) = p.link.ok(clock::now_ms()) {
                    let waiting = sh.with_spool(|s| s.waiting).unwrap_or(0);
                    sh.log(report::fleet_link_regained(
                        Side::Push,
                        &url,
                        down,
                        waiting,
                        skipped,
                    ));
                }
                p.next_try = clock::now_ms() + gap;
            }
            Err(Step::Down(why)) => {
                if let Some((skipped, _)) = p.link.failed(clock::now_ms()) {
                    sh.log(report::fleet_link_lost(Side::Push, &url, &why, skipped));
                }
                p.next_try = clock::now_ms() + p.link.retry_in(rand64());
            }
            Err(Step::Refused) => {
                p.next_try = clock::now_ms() + link::BACKOFF_MAX_MS;
            }
        }
        p.next_try
    }
}

enum Step {
    /// The LAPI could not be reached or failed: retry with back-off.
    Down(String),
    /// The credentials were refused (logged): retry slowly.
    Refused,
}

/// A panic's message (a `&str` or `String` payload), or a word for any other.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn rand64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(clock::now_ms());
    h.finish()
}

fn ensure_token(p: &mut Pusher, sh: &Shared) -> Result<(), Step> {
    let fresh = p
        .token
        .as_ref()
        .is_some_and(|t| t.expires_epoch == 0 || t.expires_epoch > clock::epoch() + 60);
    if fresh {
        return Ok(());
    }
    p.token = None;
    let Some(c) = &p.client else {
        return Err(Step::Down("no HTTP client (bad ca_cert_path)".to_string()));
    };
    match c.login(&p.p.creds.auth) {
        Ok(t) => {
            p.token = Some(t);
            p.refused = false;
            Ok(())
        }
        Err(Failure::Status(s @ (401 | 403), m)) => {
            if !p.refused {
                p.refused = true;
                sh.log(report::fleet_login_refused(
                    c.url.as_str(),
                    p.p.creds.auth.login(),
                    &p.p.creds_path,
                    s,
                    &m,
                ));
            }
            Err(Step::Refused)
        }
        Err(Failure::CertRefused(why)) => {
            if !p.refused {
                p.refused = true;
                sh.log(report::fleet_cert_refused(Side::Push, c.url.as_str(), &why));
            }
            Err(Step::Refused)
        }
        Err(e) => Err(Step::Down(e.to_string())),
    }
}

/// Reads records after `read_off` into the queue (at most two requests' worth ahead).
fn fill_queue(cur: &mut Cursor, sh: &Shared) {
    if cur.queue.len() >= limit::MAX_PER_REQUEST * 2 {
        return;
    }
    let end = sh.with_spool(|s| s.len).unwrap_or(0);
    if end <= cur.read_off {
        return;
    }
    let Some(r) = &cur.reader else {
        return;
    };
    let Ok(bytes) = r.read_at(cur.read_off, end, 4 << 20) else {
        return;
    };
    let (recs, used) =
        crate::fleet::spool::records_after(&bytes, &cur.done, limit::MAX_PER_REQUEST * 2);
    let base = cur.read_off;
    for (n, off) in &recs {
        cur.queue.push_back((*n, base + *off as u64));
    }
    // If the record limit stopped the parse, continue after the last record taken.
    cur.read_off = match recs.last() {
        Some((_, off)) if recs.len() >= limit::MAX_PER_REQUEST * 2 => {
            let line_end = bytes[*off..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(used, |e| off + e + 1);
            base + line_end as u64
        }
        _ => base + used as u64,
    };
}

/// Keeps the spool small, under the spool's lock (so the loop's append waits for it: a copy
/// of at most [`spool::MAX_BYTES`], tens of ms, and only when half the bound is delivered).
/// Everything delivered and the file over `reset_min`: it starts over (new id). Over
/// `cut_min` with at least half of it a delivered head: the head is cut off, the rest keeps
/// its numbers, and the cursor's offsets move with it. Never while a request's outcome is
/// unknown (its records must keep their place for the recovery).
fn compact(cur: &mut Cursor, s: &mut Spool, reset_min: u64, cut_min: u64) -> io::Result<()> {
    if !cur.uncertain.is_empty() {
        return Ok(());
    }
    if cur.queue.is_empty() && s.len == cur.read_off {
        if s.len >= reset_min {
            s.reset()?;
            cur.read_off = s.len;
            cur.done = Ranges::default();
            cur.reader = Reader::open(s.path()).ok();
        }
        return Ok(());
    }
    // Everything before the first record still waiting is delivered.
    let from = cur.queue.front().map_or(cur.read_off, |(_, off)| *off);
    if s.len < cut_min || from < s.len / 2 {
        return Ok(());
    }
    let at = s.cut_before(from)?;
    let shift = from - at;
    cur.read_off -= shift;
    for q in &mut cur.queue {
        q.1 -= shift;
    }
    cur.reader = Reader::open(s.path()).ok();
    Ok(())
}

/// Records of an uncertain request: ask the LAPI which arrived, mark those done.
fn recover(p: &mut Pusher, sh: &Shared, sent: &mut u64) -> Result<(), Step> {
    if p.cur.uncertain.is_empty() {
        return Ok(());
    }
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let oldest = p
        .cur
        .queue
        .iter()
        .filter(|(n, _)| p.cur.uncertain.contains(n.seq))
        .map(|(n, _)| n.record.epoch_ms)
        .min()
        .unwrap_or_else(clock::epoch_ms);
    // Alerts start at their record's time; ten minutes more for clocks that disagree.
    let since = u64::try_from((clock::epoch_ms() - oldest) / 1000).unwrap_or(0) + 600;
    let id = sh.with_spool(|s| s.id.clone()).unwrap_or_default();
    let bytes = match c.search_alerts(t, since) {
        Ok(b) => b,
        Err(Failure::Status(401, _)) => {
            p.token = None;
            return Err(Step::Down("login token refused".to_string()));
        }
        Err(e) => return Err(Step::Down(e.to_string())),
    };
    let found = alert::delivered_seqs(&id, &bytes)
        .map_err(|m| Step::Down(Failure::BadAnswer(m).to_string()))?;
    let found: Vec<u64> = found
        .into_iter()
        .filter(|s| p.cur.uncertain.contains(*s))
        .collect();
    let resend = p
        .cur
        .queue
        .iter()
        .filter(|(n, _)| p.cur.uncertain.contains(n.seq) && !found.contains(&n.seq))
        .count();
    mark_done(&mut p.cur, sh, &found);
    *sent += found.len() as u64;
    sh.log(report::fleet_recovered(found.len(), resend));
    p.cur.uncertain = Ranges::default();
    Ok(())
}

/// Appends `A` lines for `seqs`, drops them from the queue.
fn mark_done(cur: &mut Cursor, sh: &Shared, seqs: &[u64]) {
    if seqs.is_empty() {
        return;
    }
    let mut text = String::new();
    let mut v = seqs.to_vec();
    v.sort_unstable();
    let mut i = 0;
    while i < v.len() {
        let a = v[i];
        let mut b = a;
        while i + 1 < v.len() && v[i + 1] == b + 1 {
            i += 1;
            b += 1;
        }
        text.push_str(&crate::fleet::spool::done_line(a, b));
        cur.done.insert(a, b);
        i += 1;
    }
    sh.with_spool(|s| {
        let _ = s.write(&text);
        s.waiting = s.waiting.saturating_sub(seqs.len() as u64);
    });
    cur.queue.retain(|(n, _)| !cur.done.contains(n.seq));
}

fn send_batch(
    p: &mut Pusher,
    now: u64,
    sh: &Shared,
    sent: &mut u64,
    dropped: &mut u64,
) -> Result<u64, Step> {
    let batch: Vec<Numbered> = p
        .cur
        .queue
        .iter()
        .take(limit::MAX_PER_REQUEST)
        .map(|(n, _)| *n)
        .collect();
    if batch.is_empty() {
        return Ok(limit::MIN_GAP_MS);
    }
    let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
    let plan = p.limiter.plan(now, &batch);
    let id = sh.with_spool(|s| s.id.clone()).unwrap_or_default();
    let body = alert::body(&id, &plan);
    // On disk before it goes out: the records and the note that this request may have.
    sh.with_spool(|s| {
        let _ = s.write(&crate::fleet::spool::sent_line(first, last));
        let _ = s.sync();
    });
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let seqs: Vec<u64> = batch.iter().map(|n| n.seq).collect();
    match c.post_alerts(t, &body) {
        Ok(()) => {
            mark_done(&mut p.cur, sh, &seqs);
            *sent += seqs.len() as u64;
            Ok(limit::gap_after(&plan))
        }
        Err(Failure::NotSent(m)) => Err(Step::Down(m)),
        // The handshake failed: nothing was read. A new login says why, in full.
        Err(Failure::CertRefused(m)) => {
            p.token = None;
            Err(Step::Down(m))
        }
        // (post_alerts reads no body: a bad answer would be one it cannot vouch for.)
        Err(Failure::Unknown(m) | Failure::BadAnswer(m)) => {
            for s in &seqs {
                p.cur.uncertain.insert(*s, *s);
            }
            Err(Step::Down(m))
        }
        Err(Failure::Status(401 | 403, _)) => {
            // Expired or revoked token: log in again at once (not sent: the LAPI refuses
            // before reading the alerts).
            p.token = None;
            Ok(0)
        }
        Err(Failure::Status(s, m)) => {
            sh.log(report::fleet_batch_refused(
                c.url.as_str(),
                seqs.len(),
                s,
                &m,
            ));
            mark_done(&mut p.cur, sh, &seqs);
            *dropped += seqs.len() as u64;
            Ok(limit::MIN_GAP_MS)
        }
    }
}

/// One read of the decision stream, applied to the sets.
fn pull_once(pl: &mut Puller, sh: &Shared, now: u64) {
    let url = pl.p.url.as_str().to_string();
    let Some(c) = &pl.client else {
        pl.next_try = now + link::BACKOFF_MAX_MS;
        return;
    };
    let startup = pl.resync.due(now);
    match c.stream(&pl.p.key, startup, &stream::Caps::default()) {
        Ok(changes) => {
            let asked = now;
            let now = clock::now_ms();
            pl.tell.start();
            let refused = pl.model.apply(now, &changes, startup);
            for r in refused {
                let line = || report::fleet_refused(r.id, &r.value, &r.scenario, &r.why);
                pl.tell.tell(sh, r.id, &r.why, line);
            }
            pl.resync.pulled(now, startup, changes.new.len());
            pl.skipped.0 += changes.malformed;
            pl.skipped.1 += changes.over_cap;
            if pl.skipped != (0, 0)
                && pl
                    .last_skipped_line
                    .is_none_or(|t| now.saturating_sub(t) >= link::LINE_INTERVAL_MS)
            {
                pl.last_skipped_line = Some(now);
                let (m, o) = std::mem::take(&mut pl.skipped);
                sh.log(report::fleet_stream_skipped(
                    &url,
                    m,
                    o,
                    stream::MAX_OBJECTS,
                ));
            }
            if let Some((down, skipped)) = pl.link.ok(now) {
                sh.log(report::fleet_link_regained(
                    Side::Pull,
                    &url,
                    down,
                    0,
                    skipped,
                ));
            }
            apply::sync_sets(pl, sh, now);
            pl.tell.finish(sh);
            let interval = pl.p.interval_ms;
            match pl.pace.answered(now, now.saturating_sub(asked), interval) {
                Some(PaceNews::Slow { took_ms, every_ms }) => {
                    sh.log(report::fleet_pull_slow(&url, took_ms, every_ms, interval));
                }
                Some(PaceNews::Fast { took_ms }) => {
                    sh.log(report::fleet_pull_fast(&url, took_ms, interval));
                }
                None => {}
            }
            // Spread around the interval (stretched while the LAPI is slow): a fleet started
            // together does not pull in step.
            pl.next_try = now + pl.pace.gap_ms(interval, rand64());
        }
        Err(Failure::Status(s @ (401 | 403), _)) => {
            if pl.link.failed(now).is_some() {
                sh.log(report::fleet_key_refused(&url, &pl.p.key_path, s));
            }
            pl.next_try = now + link::BACKOFF_MAX_MS;
        }
        Err(Failure::CertRefused(why)) => {
            if pl.link.failed(now).is_some() {
                sh.log(report::fleet_cert_refused(Side::Pull, &url, &why));
            }
            pl.next_try = now + link::BACKOFF_MAX_MS;
        }
        Err(e) => {
            // The LAPI may have moved this bouncer's "last pull" before the answer was lost
            // (a timeout or reset after sending, a 5xx, a cut body): decisions of that
            // answer would never come again in a "what changed" read, so the next pull
            // reads the whole stream. Nothing sent: nothing moved.
            if !matches!(e, Failure::NotSent(_)) {
                pl.resync.restart();
            }
            if let Some((skipped, _)) = pl.link.failed(now) {
                sh.log(report::fleet_link_lost(
                    Side::Pull,
                    &url,
                    &e.to_string(),
                    skipped,
                ));
            }
            pl.next_try = now
                + pl.link
                    .retry_in(rand64())
                    .min(pl.p.interval_ms.max(1000) * PULL_BACKOFF_INTERVALS);
        }
    }
}

/// The lines about refused and partly applied decisions: each decision and reason once
/// (the set of those told is bounded), at most [`TELL_PER_PULL`] a pull, the rest of a
/// pull in one line with their ids' range (a hostile answer of 100,000 refused decisions
/// gives 21 lines, not 100,000).
#[derive(Default)]
pub(super) struct Tell {
    told: HashSet<(i64, String)>,
    this_pull: usize,
    /// Not told one by one in this pull: how many, lowest and highest id.
    more: Option<(u64, i64, i64)>,
}

/// Lines about single decisions per pull.
const TELL_PER_PULL: usize = 20;
/// Decisions and reasons remembered as told (then forgotten all at once: a decision still
/// refused is told again, rarely).
const TOLD_MAX: usize = 100_000;

impl Tell {
    fn start(&mut self) {
        self.this_pull = 0;
        self.more = None;
    }

    /// Decision `id` is refused or cut for `why`: its line, once.
    pub(super) fn tell(&mut self, sh: &Shared, id: i64, why: &str, line: impl FnOnce() -> String) {
        if self.told.len() >= TOLD_MAX {
            self.told.clear();
        }
        if !self.told.insert((id, why.to_string())) {
            return;
        }
        if self.this_pull < TELL_PER_PULL {
            self.this_pull += 1;
            sh.log(line());
        } else {
            let m = self.more.get_or_insert((0, id, id));
            m.0 += 1;
            m.1 = m.1.min(id);
            m.2 = m.2.max(id);
        }
    }

    fn finish(&mut self, sh: &Shared) {
        if let Some((n, first, last)) = self.more.take() {
            sh.log(report::fleet_refused_more(n, first, last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use crate::fleet::alert::Scan;
    use crate::fleet::spool::{Line, parse_line};
    use nix::sys::eventfd::EfdFlags;

    fn shared() -> Shared {
        let efd = || EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        Shared::new(efd(), efd())
    }

    fn rec(i: u32) -> Record {
        Record {
            epoch_ms: 1_795_383_542_000 + i64::from(i),
            ip: std::net::IpAddr::V4((0x0a00_0000 + i).into()),
            port: 11,
            mode: Mode::Stcp,
            scan: Scan::TcpSyn,
            ban_s: 600,
        }
    }

    /// The record a queue entry's offset points at in the file as it is now.
    fn seq_at(cur: &Cursor, off: u64) -> u64 {
        let bytes = cur
            .reader
            .as_ref()
            .unwrap()
            .read_at(off, off + 200, 200)
            .unwrap();
        let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
        match parse_line(&bytes[..nl]) {
            Some(Line::Record(n)) => n.seq,
            other => panic!("no record at {off}: {other:?}"),
        }
    }

    fn open(sh: &Shared, path: &Path) -> Cursor {
        let o = Spool::open(path).unwrap();
        let cur = Cursor::new(path, o.scanned.clone());
        sh.set_spool(o.spool);
        cur
    }

    #[test]
    fn a_full_spool_half_delivered_gets_its_head_cut_and_takes_records_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crowdsec.spool");
        let sh = shared();
        let mut cur = open(&sh, &path);
        // Fill it to the bound: the last records do not fit and are counted as dropped.
        let mut n = 0u32;
        while sh.with_spool(|s| s.dropped).unwrap() == 0 {
            let batch: Vec<Record> = (n..n + 10_000).map(rec).collect();
            sh.append(&batch).unwrap();
            n += 10_000;
        }
        let (len, written) = sh
            .with_spool(|s| (s.len, s.next_seq_for_tests() - 1))
            .unwrap();
        assert!(len <= spool::MAX_BYTES && len > spool::MAX_BYTES - 200);
        // The thread delivers the first 60% (reading two requests' worth at a time).
        let half = written * 6 / 10;
        while cur.done.ranges().first().is_none_or(|r| r.1 < half) {
            fill_queue(&mut cur, &sh);
            let seqs: Vec<u64> = cur
                .queue
                .iter()
                .map(|(n, _)| n.seq)
                .filter(|s| *s <= half)
                .collect();
            mark_done(&mut cur, &sh, &seqs);
        }
        fill_queue(&mut cur, &sh);
        // Not while a request's outcome is unknown.
        cur.uncertain.insert(half + 1, half + 1);
        let full = std::fs::metadata(&path).unwrap().len();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
        cur.uncertain = Ranges::default();
        let t0 = std::time::Instant::now();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        let took = t0.elapsed();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < len / 2, "{after} of {len}");
        eprintln!("cut a {len}-byte spool to {after} bytes in {took:?}");
        // What waits is intact, with its numbers; the cursor points at the same records.
        let bytes = std::fs::read(&path).unwrap();
        let sc = crate::fleet::spool::scan(&bytes);
        assert_eq!(sc.waiting, written - half);
        assert_eq!(sc.next_seq, written + 1);
        let (first, off) = *cur.queue.front().unwrap();
        assert_eq!(first.seq, half + 1);
        assert_eq!(seq_at(&cur, off), half + 1);
        let (last, off) = *cur.queue.back().unwrap();
        assert_eq!(seq_at(&cur, off), last.seq);
        // Room again: new records are written, numbered on, and read by the thread.
        let dropped = sh.with_spool(|s| std::mem::take(&mut s.dropped)).unwrap();
        assert!(dropped > 0);
        sh.append(&[rec(n), rec(n + 1)]).unwrap();
        assert_eq!(sh.with_spool(|s| s.dropped).unwrap(), 0);
        let mut all = Vec::new();
        loop {
            fill_queue(&mut cur, &sh);
            let seqs: Vec<u64> = cur.queue.iter().map(|(n, _)| n.seq).collect();
            if seqs.is_empty() {
                break;
            }
            all.extend(seqs.iter().copied());
            mark_done(&mut cur, &sh, &seqs);
        }
        assert_eq!(all.len() as u64, written - half + 2);
        assert_eq!(all.last(), Some(&(written + 2)));
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "in order, once");
        assert_eq!(sh.with_spool(|s| s.waiting).unwrap(), 0);
        // Everything delivered: it starts over with a new id.
        let id = sh.with_spool(|s| s.id.clone()).unwrap();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_ne!(sh.with_spool(|s| s.id.clone()).unwrap(), id);
        assert!(std::fs::metadata(&path).unwrap().len() < 100);
        sh.append(&[rec(1)]).unwrap();
        fill_queue(&mut cur, &sh);
        assert_eq!(
            cur.queue.iter().map(|(n, _)| n.seq).collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn a_small_spool_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crowdsec.spool");
        let sh = shared();
        let mut cur = open(&sh, &path);
        sh.append(&(0..10).map(rec).collect::<Vec<_>>()).unwrap();
        fill_queue(&mut cur, &sh);
        mark_done(&mut cur, &sh, &[1, 2, 3, 4, 5, 6]);
        let before = std::fs::read(&path).unwrap();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(cur.queue.len(), 4);
        assert_eq!(sh.with_spool(|s| s.waiting).unwrap(), 4);
    }
}

/// The thread against a fake LAPI (`fake_lapi`): what the real one cannot be made to do on
/// cue. Push only: pulling writes nftables sets, which a unit test must not touch.
#[cfg(test)]
mod fake_tests {
    use super::super::fake_lapi::{Answer, FakeLapi};
    use super::super::{Fleet, Push, Settings};
    use crate::config::mode::Mode;
    use crate::fleet::alert::Scan;
    use crate::fleet::creds::{Credentials, MachineAuth, Secret};
    use std::time::{Duration, Instant};

    struct Run {
        fleet: Fleet,
        lines: Vec<String>,
        dir: tempfile::TempDir,
    }

    impl Run {
        fn start(f: &FakeLapi) -> Run {
            let dir = tempfile::tempdir().unwrap();
            let s = Settings {
                push: Some(Push {
                    creds: Credentials {
                        url: f.url.clone(),
                        auth: MachineAuth::Password {
                            login: "web1".into(),
                            password: Secret::new("pw".into()),
                        },
                        ca_cert_path: None,
                    },
                    creds_path: dir.path().join("lapi.yaml"),
                    tls: Default::default(),
                    ban_s: 600,
                    send_log_only: false,
                    spool_path: dir.path().join("crowdsec.spool"),
                }),
                pull: None,
                ignore_file: None,
                lapi_urls: vec![f.url.clone()],
                never_block: Vec::new(),
            };
            Run {
                fleet: Fleet::start(s).unwrap(),
                lines: Vec::new(),
                dir,
            }
        }

        fn block(&mut self, n: u8) {
            let ip = std::net::IpAddr::from([192, 0, 2, n]);
            self.fleet
                .record_block(1_795_383_542_000, ip, 11, Mode::Stcp, Scan::TcpSyn);
        }

        /// Waits (10 s) for a line containing `part`.
        fn wait(&mut self, part: &str) {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                self.lines.extend(self.fleet.take_log());
                if self.lines.iter().any(|l| l.contains(part)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("no line with {part:?}: {:#?}", self.lines);
        }

        fn spool_id(&self) -> String {
            let text = std::fs::read_to_string(self.dir.path().join("crowdsec.spool")).unwrap();
            text.split(' ').nth(2).unwrap().to_string()
        }
    }

    /// The record numbers of every alert the fake kept, each alert counted on its own (a
    /// record sent twice shows twice).
    fn kept_records(f: &FakeLapi, id: &str) -> Vec<u64> {
        let mut all = Vec::new();
        for a in f.kept() {
            let one = serde_json::to_vec(&vec![a]).unwrap();
            all.extend(crate::fleet::alert::delivered_seqs(id, &one).unwrap());
        }
        all.sort_unstable();
        all
    }

    fn three(f: &FakeLapi) -> Run {
        let mut r = Run::start(f);
        r.wait("pushing alerts; 0 alerts waiting in the spool");
        for n in 1..=3 {
            r.block(n);
        }
        r.fleet.flush();
        r
    }

    #[test]
    fn a_500_after_which_the_lapi_kept_the_alerts_is_asked_about_not_resent() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: true }]);
        let mut r = three(&f);
        r.wait("unreachable: HTTP 500: database is locked; alerts wait in the spool");
        r.wait("a request's outcome was unknown; the LAPI has 3 of its alerts, 0 are sent again");
        r.wait("reachable again after");
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        let st = r.fleet.status();
        assert_eq!((st.sent, st.waiting, st.dropped), (3, 0, 0));
        let posts = f.seen().iter().filter(|s| *s == "POST /v1/alerts").count();
        assert_eq!(posts, 1, "{:?}", f.seen());
        r.fleet.shutdown();
    }

    #[test]
    fn a_500_after_which_the_lapi_kept_nothing_is_sent_again_once() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: false }]);
        let mut r = three(&f);
        r.wait("the LAPI has 0 of its alerts, 3 are sent again");
        let t0 = Instant::now();
        while r.fleet.status().sent < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        r.fleet.shutdown();
    }

    #[test]
    fn garbage_from_the_alert_search_delays_the_recovery_but_never_duplicates() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: true }]);
        f.script_search(&[Answer::Garbage, Answer::Error500 { keep: false }]);
        let mut r = three(&f);
        r.wait("the LAPI has 3 of its alerts, 0 are sent again");
        let searches = f.seen().iter().filter(|s| *s == "GET /v1/alerts").count();
        assert_eq!(searches, 3, "{:?}", f.seen());
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        // One lost line for the whole episode (rate-limited), then one regained line.
        r.wait("reachable again after");
        let lost: Vec<&String> = r
            .lines
            .iter()
            .filter(|l| l.contains("unreachable"))
            .collect();
        assert_eq!(lost.len(), 1, "{lost:#?}");
        r.fleet.shutdown();
    }

    #[test]
    fn a_request_refused_for_good_is_dropped_and_counted_and_the_next_goes() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Status(422)]);
        let mut r = three(&f);
        r.wait("refused 3 alerts for good (HTTP 422: scripted); they are dropped from the spool");
        r.block(4);
        r.fleet.flush();
        let t0 = Instant::now();
        while r.fleet.status().sent < 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [4]);
        let st = r.fleet.status();
        assert_eq!((st.sent, st.dropped, st.waiting), (1, 3, 0));
        r.fleet.shutdown();
    }

    #[test]
    fn an_expired_token_is_renewed_at_once_and_nothing_is_lost() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Status(401)]);
        let mut r = three(&f);
        let t0 = Instant::now();
        while r.fleet.status().sent < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        let logins = f
            .seen()
            .iter()
            .filter(|s| *s == "POST /v1/watchers/login")
            .count();
        assert_eq!(logins, 2, "{:?}", f.seen());
        r.lines.extend(r.fleet.take_log());
        assert!(
            r.lines.iter().all(|l| !l.contains("unreachable")),
            "{:#?}",
            r.lines
        );
        r.fleet.shutdown();
    }
}
