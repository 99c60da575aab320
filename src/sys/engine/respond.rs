//! From a hit to what is done about it: the engine decides (with the name looked up in
//! between when RESOLVE_HOST asks for it), this module carries the verdict out: log lines to
//! syslog, response jobs to the executor, and, when a job has ended, the blocked-file and
//! history lines the engine returns and the fleet's records (a CrowdSec alert each), all
//! written once per loop turn.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::mode::Kind;
use crate::engine::{Context, Hit, Job, Outcome, Record, Verdict};
use crate::fleet::alert::Scan;
use crate::observe::report;
use crate::observe::stats::Probe;

use crate::sys::capture::stealth::reuse;
use crate::sys::daemon::event_loop::Daemon;
use crate::sys::daemon::start::blocked_path;
use crate::sys::observe::log::Logger;
use crate::sys::observe::probe_kind;
use crate::sys::{clock, engine::resolve};

/// How long a reverse lookup may take before the address is used instead.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(1000);

/// A round of the capture reads the clocks once per this many hits (see `serve_capture`).
const CLOCK_EVERY: usize = 64;

impl Daemon {
    /// Stealth and advanced modes: every packet on the doorbell (`bell`) or in the ring, each
    /// hit through [`Daemon::hit`].
    pub(in crate::sys) fn serve_capture(&mut self, bell: bool) {
        let engine = &self.engine;
        let blocked = |ip, proto| engine.already_blocked(ip, proto);
        // The pass's buffers are kept from one pass to the next (`stealth::reuse`).
        let mut hits = std::mem::take(&mut self.hits);
        match &mut self.stealth {
            Some(st) if bell => st.ring_bell(&mut self.log, &blocked, &mut hits),
            Some(st) => st.drain(&mut self.log, &blocked, &mut hits),
            None => return,
        }
        // The clocks are read once per CLOCK_EVERY hits of a round (and after a name
        // lookup), not per hit: a flood's round holds thousands of hits.
        // The round's probes go into the top lists together (`Stats::note_probes`), one
        // batch per second of the clock.
        let mut clocks = None;
        let mut batch = (0, std::mem::take(&mut self.batch));
        for (i, h) in hits.drain(..).enumerate() {
            let (now, epoch_ms) = match clocks {
                Some(c) if i % CLOCK_EVERY != 0 => c,
                _ => (clock::now_ms(), clock::epoch_ms()),
            };
            let second = epoch_ms.div_euclid(1000);
            if second != batch.0 {
                self.observer.stats.note_probes(batch.0, &batch.1);
                batch.1.clear();
                batch.0 = second;
            }
            let looked_up = self.hit_verdict(h, now, epoch_ms, Some(&mut batch.1)).1;
            clocks = (!looked_up).then_some((now, epoch_ms));
        }
        self.observer.stats.note_probes(batch.0, &batch.1);
        self.batch = reuse(batch.1);
        self.hits = reuse(hits);
    }

    /// One hit: the engine decides, the verdict is carried out. Returns whether PORT_BANNER
    /// is to be sent.
    pub(in crate::sys) fn hit(&mut self, hit: Hit) -> bool {
        self.hit_verdict(hit, clock::now_ms(), clock::epoch_ms(), None)
            .0
    }

    /// Judge and carry out one hit at `now` (monotonic ms) and `epoch_ms`: (PORT_BANNER to
    /// be sent, a name was looked up: the clocks are stale then). With `batch`, a probe that
    /// is not ignored is queued there for the top lists instead of counted at once.
    fn hit_verdict(
        &mut self,
        hit: Hit,
        now: u64,
        epoch_ms: i64,
        batch: Option<&mut Vec<Probe>>,
    ) -> (bool, bool) {
        let ctx = Context {
            cfg: &self.cfg,
            ignore: self.ignore.refresh(now, &mut self.log),
            protected: &self.protected,
        };
        let mut looked_up = false;
        let v = match self.engine.observe(now, &hit, &ctx) {
            Outcome::Done(v) => v,
            Outcome::Lookup(p) => {
                looked_up = true;
                let name = name_of(&mut self.resolver, &mut self.log, p.ip());
                self.engine.named(now, p, name.as_deref(), &ctx)
            }
        };
        match batch {
            Some(b) if !v.ignored && hit.mode.kind() != Kind::Classic => {
                b.push((hit.src, hit.port, hit.mode, probe_kind(hit.detail)));
            }
            _ => self
                .observer
                .hit(&hit, v.ignored, epoch_ms.div_euclid(1000)),
        }
        self.observer.verdict(&v, Some(&hit), epoch_ms);
        (self.carry_out_counted(v, true), looked_up)
    }

    /// Do what the engine decided: log its events (the detection line before the commands
    /// start: 1.2's order; starting the commands first was measured: KILL_ROUTE no sooner
    /// within noise, the line in syslog 0.3-0.4 ms later), queue the blocked-file and history
    /// lines, start the jobs. Returns whether PORT_BANNER is to be sent.
    pub(in crate::sys) fn carry_out(&mut self, v: Verdict) -> bool {
        self.carry_out_counted(v, false)
    }

    /// [`Daemon::carry_out`] for a verdict the counters have not seen (`counted` false: the
    /// periodic work and finished jobs; a hit's verdict is counted in [`Daemon::hit`]).
    fn carry_out_counted(&mut self, v: Verdict, counted: bool) -> bool {
        if !counted {
            self.observer.verdict(&v, None, clock::epoch_ms());
        }
        for e in &v.log {
            self.log.log(&report::event_line(e));
        }
        for r in &v.records {
            self.record(r);
        }
        for ip in &v.promote {
            self.exec.promote(*ip);
        }
        if !v.jobs.is_empty() || !v.promote.is_empty() {
            for j in v.jobs {
                if let Some(shed) = self.exec.submit(j) {
                    self.engine.job_shed(&shed);
                }
            }
            self.pump();
        }
        v.banner
    }

    /// Reap and start commands; each finished job goes back to the engine.
    pub(in crate::sys) fn pump(&mut self) {
        let p = self.exec.pump(clock::now_ms());
        self.observer.stats.note_command_failures(p.failures);
        for l in p.log {
            self.log.log(&l);
        }
        for (job, ok) in p.done {
            self.finish(job, ok);
        }
    }

    /// A job ended: the engine says what follows (a failed block's line, the records).
    fn finish(&mut self, job: Job, ok: bool) {
        self.observer.job_ended(&job, ok, clock::epoch_ms());
        let v = self.engine.job_done(clock::now_ms(), &job, ok);
        self.carry_out(v);
    }

    /// Queue a blocked-file and history line (§7), written at the end of the loop turn.
    fn record(&mut self, r: &Record) {
        let epoch = clock::epoch();
        let line = report::history_line(
            epoch,
            &clock::local_time(epoch),
            &r.name,
            r.ip,
            r.port,
            r.mode.proto(),
        );
        if r.blocked_file
            && let Some(p) = blocked_path(&self.cfg, r.mode)
        {
            self.appends.push(&p, &line, 0o644);
        }
        if let Some(h) = &self.cfg.history_file {
            self.appends.push(h, &line, 0o600);
        }
        // The fleet: a block (BLOCK_x=1/2) is an alert with a ban; a log-only report goes
        // without one when CROWDSEC_SEND_LOG_ONLY asks for it (`record_report` decides).
        if let Some(f) = &mut self.fleet {
            let scan = Scan::of_hit(r.mode, &r.detail);
            let ms = clock::epoch_ms();
            if r.blocked_file {
                f.record_block(ms, r.ip, r.port, r.mode, scan);
            } else {
                f.record_report(ms, r.ip, r.port, r.mode, scan);
            }
        }
    }

    /// Write the lines queued in this loop turn: one write per file.
    pub(in crate::sys) fn flush_files(&mut self) {
        if self.appends.is_empty() {
            return;
        }
        for p in self.appends.flush() {
            if self.cfg.history_file.as_deref() == Some(p.as_path()) {
                self.log.log(&report::cannot_open_history_file(&p));
            } else {
                self.log.log(&report::cannot_open_blocked_file(&p));
            }
        }
    }
}

impl Daemon {
    /// The turn's fleet records: one write to the spool, then the fleet thread is woken.
    pub(in crate::sys) fn flush_fleet(&mut self) {
        if let Some(f) = &mut self.fleet {
            f.flush();
        }
    }

    /// The fleet thread's log lines (its eventfd was readable).
    pub(in crate::sys) fn log_fleet(&mut self) {
        let mut moved = false;
        if let Some(f) = &mut self.fleet {
            for l in f.take_log() {
                self.log.log(&l);
            }
            moved = f.take_lapi_moved();
        }
        // The thread resolved the LAPI's name (at start, after a reload): protect what it got.
        if moved {
            self.refresh_protected();
        }
    }
}

/// RESOLVE_HOST: the name of `ip`, or None (the address is used). `report` escapes the name
/// itself (hostile PTR records).
fn name_of(resolver: &mut resolve::Resolver, log: &mut Logger, ip: IpAddr) -> Option<String> {
    match resolver.reverse(ip, RESOLVE_TIMEOUT, clock::now_ms()) {
        resolve::Reverse::Name(n) => Some(n),
        resolve::Reverse::NoName => None,
        resolve::Reverse::TimedOut => {
            log.log(&report::resolve_timed_out(
                ip,
                RESOLVE_TIMEOUT.as_millis(),
                resolve::BACKOFF_MS / 1000,
            ));
            None
        }
    }
}
