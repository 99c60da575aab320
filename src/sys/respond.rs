//! From a hit to what is done about it: the engine decides (with the name looked up in
//! between when RESOLVE_HOST asks for it), this module carries the verdict out: log lines to
//! syslog, response jobs to the executor, and, when a job has ended, the blocked-file and
//! history lines the engine returns, written once per loop turn.

use std::net::IpAddr;
use std::time::Duration;

use crate::engine::{Context, Detail, Event, Hit, Job, JobKind, Outcome, Record, Step, Verdict};
use crate::events::{self, Response};
use crate::report;
use crate::stats::{Method, ProbeKind, Refusal, Suppression};

use super::event_loop::Daemon;
use super::log::Logger;
use super::start::blocked_path;
use super::{clock, resolve};

/// How long a reverse lookup may take before the address is used instead.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(1000);

impl Daemon {
    /// Stealth and advanced modes: every packet on the doorbell (`bell`) or in the ring, each
    /// hit through [`Daemon::hit`].
    pub(super) fn serve_capture(&mut self, bell: bool) {
        let engine = &self.engine;
        let blocked = |ip| engine.is_blocked(ip);
        let hits = match &mut self.stealth {
            Some(st) if bell => st.ring_bell(&mut self.log, &blocked),
            Some(st) => st.drain(&mut self.log, &blocked),
            None => return,
        };
        for h in hits {
            self.hit(h);
        }
    }

    /// One hit: the engine decides, the verdict is carried out. Returns whether PORT_BANNER
    /// is to be sent.
    pub(super) fn hit(&mut self, hit: Hit) -> bool {
        let now = clock::now_ms();
        let ctx = Context {
            cfg: &self.cfg,
            ignore: self.ignore.refresh(now, &mut self.log),
            protected: &self.protected,
        };
        // The counters: every hit, the ignored ones apart (the engine stays silent on them).
        let stats = &mut self.observer.stats;
        if hit.mode.kind() == crate::mode::Kind::Classic {
            stats.note_packets(1);
        }
        if ctx.ignore.contains(hit.src) {
            stats.note_ignored();
        } else {
            stats.note_probe(
                clock::epoch(),
                hit.src,
                hit.port,
                hit.mode,
                probe_kind(hit.detail),
            );
        }
        let v = match self.engine.observe(now, &hit, &ctx) {
            Outcome::Done(v) => v,
            Outcome::Lookup(p) => {
                let name = name_of(&mut self.resolver, &mut self.log, p.ip());
                self.engine.named(now, p, name.as_deref(), &ctx)
            }
        };
        self.observe_verdict(&v, Some(&hit));
        self.carry_out_counted(v, true)
    }

    /// Count what the engine decided and queue its event lines (EVENTS_FILE). `hit` is the hit
    /// the verdict answers, if it answers one (not for the periodic work or a finished job).
    fn observe_verdict(&mut self, v: &Verdict, hit: Option<&Hit>) {
        let ms = clock::epoch_ms();
        let o = &mut self.observer;
        let response = if v
            .log
            .iter()
            .any(|e| matches!(e, Event::AlreadyBlocked { .. }))
        {
            Response::None
        } else if v.log.iter().any(|e| matches!(e, Event::LogOnly { .. })) {
            Response::Log
        } else {
            Response::Block
        };
        for e in &v.log {
            match e {
                Event::Detected {
                    host,
                    port,
                    mode,
                    detail,
                } => {
                    o.stats.note_report(*mode);
                    let kind = probe_kind(*detail);
                    o.event(&events::Event::detection(
                        ms, host.ip, *port, *mode, kind, response,
                    ));
                }
                Event::Refused { ip, .. } => {
                    o.stats.note_refusal(Refusal::Protected);
                    if let Some(h) = hit {
                        o.event(&events::Event::refusal(
                            ms,
                            *ip,
                            h.port,
                            h.mode,
                            Refusal::Protected,
                        ));
                    }
                }
                // A refusal the engine reports is counted at once; its summary
                // (`BlocksRefused`) counts every refusal of the interval, so it adds only
                // those it did not report (over the report limits).
                Event::BlockCapRefused { host } => {
                    o.stats.note_refusal(Refusal::RateLimit);
                    o.refusals_reported += 1;
                    if let Some(h) = hit {
                        o.event(&events::Event::refusal(
                            ms,
                            host.ip,
                            h.port,
                            h.mode,
                            Refusal::RateLimit,
                        ));
                    }
                }
                Event::BlocksRefused { count, .. } => {
                    let rest = count.saturating_sub(std::mem::take(&mut o.refusals_reported));
                    o.stats.note_refusals(Refusal::RateLimit, rest);
                }
                Event::HitsSuppressed { count, .. } => {
                    o.stats.note_suppressed(Suppression::Repeat, *count)
                }
                Event::ReportsSuppressed { count, .. } => {
                    o.stats.note_suppressed(Suppression::RateLimit, *count)
                }
                Event::Expired { ip, mode } => {
                    o.stats.note_expiry();
                    o.event(&events::Event::expiry(ms, *ip, Some(*mode), None));
                }
                _ => {}
            }
        }
    }

    /// Do what the engine decided: log its events (the detection line before the commands
    /// start: 1.2's order; starting the commands first was measured: KILL_ROUTE no sooner
    /// within noise, the line in syslog 0.3-0.4 ms later), queue the blocked-file and history
    /// lines, start the jobs. Returns whether PORT_BANNER is to be sent.
    pub(super) fn carry_out(&mut self, v: Verdict) -> bool {
        self.carry_out_counted(v, false)
    }

    /// [`Daemon::carry_out`] for a verdict the counters have not seen (`counted` false: the
    /// periodic work and finished jobs; a hit's verdict is counted in [`Daemon::hit`]).
    fn carry_out_counted(&mut self, v: Verdict, counted: bool) -> bool {
        if !counted {
            self.observe_verdict(&v, None);
        }
        for e in &v.log {
            self.log.log(&report::event_line(e));
        }
        for r in &v.records {
            self.record(r);
        }
        if !v.jobs.is_empty() {
            for j in v.jobs {
                self.exec.submit(j);
            }
            self.pump();
        }
        v.banner
    }

    /// Reap and start commands; each finished job goes back to the engine.
    pub(super) fn pump(&mut self) {
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
        self.observe_job(&job, ok);
        let v = self.engine.job_done(clock::now_ms(), &job, ok);
        self.carry_out(v);
    }

    /// A block (BLOCK_x 1 or 2) ended: counted by method when it succeeded, and an event line
    /// either way. Log-only jobs (the history line of BLOCK_x=0) and undo jobs are no blocks.
    fn observe_job(&mut self, job: &Job, ok: bool) {
        if !matches!(job.kind, JobKind::Respond { .. }) || !job.record.blocked_file {
            return;
        }
        let methods: Vec<Method> = job
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::NftAdd { .. } => Some(Method::Nftables),
                Step::Route { .. } => Some(Method::Route),
                Step::HostsDeny { .. } => Some(Method::HostsDeny),
                Step::RunCmd { .. } => Some(Method::RunCmd),
                Step::Undo { .. } => None,
            })
            .collect();
        let r = &job.record;
        if ok {
            self.observer.stats.note_block(r.mode, &methods);
        }
        let failure = (!ok).then(|| "a step of the block failed (see syslog)".to_string());
        self.observer.event(&events::Event::block(
            clock::epoch_ms(),
            r.ip,
            r.port,
            r.mode,
            &methods,
            failure,
        ));
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
    }

    /// Write the lines queued in this loop turn: one write per file.
    pub(super) fn flush_files(&mut self) {
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

/// The counters' name for a hit's kind.
fn probe_kind(d: Detail) -> ProbeKind {
    match d {
        Detail::Connect => ProbeKind::Connect,
        Detail::TcpScan(t) => ProbeKind::from_scan(crate::classify::ScanKind::Tcp(t)),
        Detail::UdpScan => ProbeKind::Udp,
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
