//! The pull side of the fleet thread: reads the LAPI's decision stream, keeps the decisions
//! in force, and brings the nftables sets `fleet4`/`fleet6` to them (one `nft -f`
//! transaction per change, with the holes of `apply`), with back-off and pace.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::Pull;
use super::apply;
use super::http::{Client, Failure};
use super::shared::{Shared, client, rand64};
use crate::config::ignore::Net;
use crate::fleet::bans::{self, Bounds, Model};
use crate::fleet::link::{self, Link, Pace, PaceNews};
use crate::fleet::resync::Resync;
use crate::fleet::span::Span;
use crate::fleet::stream;
use crate::observe::report::{self, Side};
use crate::sys::block::nftables;
use crate::sys::clock;

/// A failing pull retries with back-off, but never waits longer than this many pull
/// intervals: when the LAPI returns, the hosts have its decisions within seconds (a refused
/// connection every few seconds costs a LAPI nothing).
const PULL_BACKOFF_INTERVALS: u64 = 4;

/// The pull side's state on the thread.
pub(super) struct Puller {
    pub(super) p: Pull,
    client: Option<Client>,
    pub(super) model: Model,
    /// What the sets hold: piece and its end (monotonic ms).
    pub(super) applied: BTreeMap<Span, u64>,
    /// When to read the whole stream (`startup=true`) again.
    pub(super) resync: Resync,
    pub(super) link: Link,
    /// Stretched while the LAPI answers slowly.
    pub(super) pace: Pace,
    pub(super) next_try: u64,
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
    pub(super) fn new(
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
        read_applied(&mut pl, now);
        pl
    }

    /// New settings: another key or LAPI reads the stream from its start again (the answer
    /// replaces the decisions known); the sets stay as they are until then. The client is
    /// made anew and tried at once, as on the push side.
    pub(super) fn update(
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

/// One read of the decision stream, applied to the sets.
pub(super) fn pull_once(pl: &mut Puller, sh: &Shared, now: u64) {
    let url = pl.p.url.as_str().to_string();
    let Some(c) = &pl.client else {
        pl.next_try = now + link::BACKOFF_MAX_MS;
        return;
    };
    let startup = pl.resync.due(now);
    // While few decisions are in force, a list of them is the cheaper pull (fleet::resync).
    let list = !startup && pl.resync.list_due(now);
    let answer = if list {
        c.active(&pl.p.key, &stream::Caps::default())
    } else {
        c.stream(&pl.p.key, startup, &stream::Caps::default())
    };
    match answer {
        Ok(changes) => {
            let asked = now;
            let now = clock::now_ms();
            pl.tell.start();
            let refused = pl.model.apply(now, &changes, startup);
            for r in refused {
                let line = || report::fleet_refused(r.id, &r.value, &r.scenario, &r.why);
                pl.tell.tell(sh, r.id, &r.why, line);
            }
            if list {
                pl.resync.listed(changes.new.len());
            } else {
                pl.resync.pulled(now, startup, changes.new.len());
            }
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
            sync_sets(pl, sh, now);
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
            if !startup && !list && pl.resync.catchup_due() {
                catch_up(pl, sh);
            }
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
            if list {
                // A list moves nothing on the LAPI (fleet::resync): read the stream until
                // a catch-up read lists again.
                pl.resync.list_failed();
            } else if !matches!(e, Failure::NotSent(_)) {
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

/// A catch-up read, right after a pull of what changed (`fleet::resync`): the decisions in
/// force of the local origins, added to those known (a known one is the same decision, by
/// id). It moves nothing on the LAPI, so a failure only waits for the next one; the link's
/// state is the stream's.
fn catch_up(pl: &mut Puller, sh: &Shared) {
    let Some(c) = &pl.client else {
        return;
    };
    let Ok(changes) = c.active(&pl.p.key, &stream::Caps::default()) else {
        pl.resync.list_failed();
        return;
    };
    pl.resync.listed(changes.new.len());
    let now = clock::now_ms();
    pl.tell.start();
    for r in pl.model.apply(now, &changes, false) {
        let line = || report::fleet_refused(r.id, &r.value, &r.scenario, &r.why);
        pl.tell.tell(sh, r.id, &r.why, line);
    }
    sync_sets(pl, sh, now);
    pl.tell.finish(sh);
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

/// What the fleet sets hold now (at start, and after a failed transaction).
pub(super) fn read_applied(pl: &mut Puller, now: u64) {
    if let Ok(elems) = nftables::list() {
        pl.applied = bans::from_listing(now, &elems);
    }
}

/// Brings the sets to what the decisions in force say.
pub(super) fn sync_sets(pl: &mut Puller, sh: &Shared, now: u64) {
    let hs = apply::holes(&mut pl.ignore, &sh.lapi_addrs().1, &pl.never_block);
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
