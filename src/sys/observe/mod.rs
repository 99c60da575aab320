//! The shell of `observe`: syslog (`log`), the status socket (`status_sock`), METRICS_FILE
//! (`metrics_file`), EVENTS_FILE (`events_file`), and the `status` and `report` commands
//! (`insight`). This file is what the event loop calls to let the admin see.
//!
//! What the event loop calls to let the admin see: the counters ([`Stats`]), the status
//! socket, METRICS_FILE and EVENTS_FILE, behind one small interface so the loop's part is a
//! few calls:
//!
//! * at start, [`Observer::start`] (after the pid-file check, before "now active");
//! * in the poll set, [`Observer::poll_fds`]; as the poll timeout, at most
//!   [`Observer::timeout_ms`];
//! * as things happen: [`Observer::hit`] before the engine decides, [`Observer::verdict`]
//!   with what it decided, [`Observer::job_ended`] when a block's job ends (they count from
//!   the engine's typed events and queue the EVENTS_FILE lines), `observer.stats.note_*(…)`
//!   for the rest;
//! * once per turn, [`Observer::turn`] (answers status clients, writes the turn's event lines
//!   in one write, rewrites the metrics file when due);
//! * on SIGHUP, [`Observer::reload`]; on exit, [`Observer::shutdown`].
//!
//! Every method returns the log lines it wants written (failures, once each); none blocks.

pub mod events_file;
pub mod insight;
pub mod log;
pub mod metrics_file;
pub mod status_sock;

use std::os::fd::BorrowedFd;
use std::path::Path;

use jiff::tz::TimeZone;
use nix::poll::PollFlags;

use crate::config::Config;
use crate::engine::{Detail, Event as EngineEvent, Hit, Job, JobKind, Step, Verdict};
use crate::observe::events::{self, Event, Response};
use crate::observe::insight as core_insight;
use crate::observe::report;
use crate::observe::stats::{Identity, Stats, render};
use crate::observe::stats::{Method, ProbeKind, Refusal, Suppression};

use crate::sys::observe::events_file::EventsFile;
use crate::sys::observe::metrics_file::MetricsFile;
use crate::sys::observe::status_sock::{CLIENT_DEADLINE_MS, StatusServer};

/// The daemon's counters and the views that show them.
pub struct Observer {
    /// The counters (the loop calls `note_*`).
    pub stats: Stats,
    /// Who the daemon is (pid, modes, config, watched ports), for the snapshots.
    pub id: Identity,
    /// Refusals counted one by one (BLOCK_RATE_LIMIT, BLOCK_PREFIX_BUDGET, BLOCK_LONE_BUDGET)
    /// since the engine's last summary of them (which counts them too): the summary adds only
    /// the rest. By reason, in the order of `Refusal::ALL`.
    pub refusals_reported: [u64; Refusal::ALL.len()],
    tz: TimeZone,
    status: Option<StatusServer>,
    metrics: Option<MetricsFile>,
    events: Option<EventsFile>,
}

impl Observer {
    /// Counters from `now` (epoch seconds); the status socket beside `pidfile`; METRICS_FILE
    /// and EVENTS_FILE from `cfg`. Returns the log lines of what could not be set up (the
    /// daemon runs on without it).
    pub fn start(
        cfg: &Config,
        pidfile: &Path,
        foreground: bool,
        id: Identity,
        now: i64,
    ) -> (Observer, Vec<String>) {
        let mut log = Vec::new();
        let sock = core_insight::socket_path(pidfile);
        let status = match StatusServer::bind(&sock) {
            Ok(s) => Some(s),
            Err(e) => {
                log.push(report::status_socket_failed(&sock, e));
                None
            }
        };
        let mut o = Observer {
            stats: Stats::new(now, &id.modes),
            id,
            refusals_reported: [0; Refusal::ALL.len()],
            tz: crate::sys::observe::insight::local_zone(),
            status,
            metrics: None,
            events: None,
        };
        log.extend(o.configure(cfg, foreground));
        (o, log)
    }

    /// A hit (before the engine decides): counted, the ignored ones apart (the engine stays
    /// silent on them). `epoch`: now, in seconds.
    pub fn hit(&mut self, hit: &Hit, ignored: bool, epoch: i64) {
        if hit.mode.kind() == crate::config::mode::Kind::Classic {
            self.stats.note_packets(1);
        }
        if ignored {
            self.stats.note_ignored();
        } else {
            self.stats
                .note_probe(epoch, hit.src, hit.port, hit.mode, probe_kind(hit.detail));
        }
    }

    /// Count what the engine decided and queue its event lines (EVENTS_FILE). `hit` is the hit
    /// the verdict answers, if it answers one (not for the periodic work or a finished job).
    pub fn verdict(&mut self, v: &Verdict, hit: Option<&Hit>, ms: i64) {
        let o = self;
        let response = if v
            .log
            .iter()
            .any(|e| matches!(e, EngineEvent::AlreadyBlocked { .. }))
        {
            Response::None
        } else if v
            .log
            .iter()
            .any(|e| matches!(e, EngineEvent::LogOnly { .. }))
            // A report-only SCTP or ICMP probe (no BLOCK_ICMP_SCTP): no job at all.
            || (v.jobs.is_empty() && hit.is_some_and(|h| matches!(h.detail, Detail::Other(_))))
        {
            Response::Log
        } else {
            Response::Block
        };
        for e in &v.log {
            match e {
                EngineEvent::Detected {
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
                EngineEvent::Refused { ip, .. } => {
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
                EngineEvent::BlockCapRefused { host } => {
                    o.refused_one(Refusal::RateLimit, host.ip, hit, ms)
                }
                EngineEvent::BlocksRefused { count, .. } => {
                    o.refused_rest(Refusal::RateLimit, *count)
                }
                EngineEvent::BudgetRefused { host, .. } => {
                    o.refused_one(Refusal::PrefixBudget, host.ip, hit, ms)
                }
                EngineEvent::BudgetRefusals { count, .. } => {
                    o.refused_rest(Refusal::PrefixBudget, *count)
                }
                EngineEvent::LoneRefused { host } => {
                    o.refused_one(Refusal::LoneBudget, host.ip, hit, ms)
                }
                EngineEvent::LoneRefusals { count, .. } => {
                    o.refused_rest(Refusal::LoneBudget, *count)
                }
                EngineEvent::BlocksShed { count, .. } => {
                    o.stats.note_refusals(Refusal::FloodQueue, *count)
                }
                EngineEvent::Evicted { .. } => o.stats.note_evictions(1),
                EngineEvent::QuietEvictions { count, .. } => o.stats.note_evictions(*count),
                EngineEvent::HitsSuppressed { count, .. } => {
                    o.stats.note_suppressed(Suppression::Repeat, *count)
                }
                EngineEvent::ReportsSuppressed { count, .. } => {
                    o.stats.note_suppressed(Suppression::RateLimit, *count)
                }
                EngineEvent::Expired { ip, mode } => {
                    o.stats.note_expiry();
                    o.event(&events::Event::expiry(ms, *ip, Some(*mode), None));
                }
                _ => {}
            }
        }
    }

    /// A refusal the engine reported on its own (its host's report was logged): counted at
    /// once, with an event line.
    fn refused_one(&mut self, why: Refusal, ip: std::net::IpAddr, hit: Option<&Hit>, ms: i64) {
        self.stats.note_refusal(why);
        if let Some(n) = Refusal::ALL.iter().position(|&r| r == why) {
            self.refusals_reported[n] += 1;
        }
        if let Some(h) = hit {
            self.event(&events::Event::refusal(ms, ip, h.port, h.mode, why));
        }
    }

    /// The engine's summary of `count` refusals: those not reported one by one are counted.
    fn refused_rest(&mut self, why: Refusal, count: u64) {
        let told = Refusal::ALL
            .iter()
            .position(|&r| r == why)
            .map_or(0, |n| std::mem::take(&mut self.refusals_reported[n]));
        self.stats.note_refusals(why, count.saturating_sub(told));
    }

    /// A block (BLOCK_x 1 or 2) ended: counted by method when it succeeded, and an event line
    /// either way. Log-only jobs (the history line of BLOCK_x=0) and undo jobs are no blocks.
    pub fn job_ended(&mut self, job: &Job, ok: bool, ms: i64) {
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
                Step::Undo { .. } | Step::HostsDenyRemove { .. } | Step::NftDel { .. } => None,
            })
            .collect();
        let r = &job.record;
        if ok {
            self.stats.note_block(r.mode, &methods);
        }
        let failure = (!ok).then(|| "a step of the block failed (see syslog)".to_string());
        self.event(&events::Event::block(
            ms, r.ip, r.port, r.mode, &methods, failure,
        ));
    }

    /// METRICS_FILE and EVENTS_FILE from `cfg` (start and reload).
    fn configure(&mut self, cfg: &Config, foreground: bool) -> Vec<String> {
        let mut log = Vec::new();
        self.metrics = cfg.metrics_file.as_deref().map(MetricsFile::new);
        // Lines queued under the old file are written before it is let go.
        if let Some(l) = self.events.as_mut().and_then(EventsFile::flush) {
            log.push(l);
        }
        self.events = match cfg
            .events_file
            .as_deref()
            .map(|p| events::target(p, foreground))
        {
            None => None,
            Some(Ok(t)) => Some(EventsFile::new(t)),
            Some(Err(why)) => {
                log.push(report::events_unusable(&why));
                None
            }
        };
        log
    }

    /// File descriptors for the loop's `poll`.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        self.status
            .as_ref()
            .map(StatusServer::poll_fds)
            .unwrap_or_default()
    }

    /// The longest the loop may sleep before [`Observer::turn`] has work (the metrics
    /// interval, or a waiting status client's deadline); `None`: no limit from here.
    pub fn timeout_ms(&self) -> Option<u64> {
        let metrics = self
            .metrics
            .as_ref()
            .map(|_| metrics_file::INTERVAL_MS.min(1_000));
        let clients = self
            .status
            .as_ref()
            .filter(|s| s.busy())
            .map(|_| CLIENT_DEADLINE_MS.min(100));
        metrics.into_iter().chain(clients).min()
    }

    /// One event (a detection, block, refusal, expiry or unblock) for EVENTS_FILE; written at
    /// the end of the turn.
    pub fn event(&mut self, e: &Event) {
        if let Some(f) = &mut self.events {
            f.push(&events::line(e, &self.tz));
        }
    }

    /// The end of a loop turn at `now_ms` (monotonic) / `epoch` (wall clock, seconds).
    pub fn turn(&mut self, now_ms: u64, epoch: i64, status_ready: bool) -> Vec<String> {
        let mut log = Vec::new();
        // The socket is served when poll saw it (or its clients) ready, not every turn: an
        // accept() per turn was a wasted system call for each of thousands of turns a
        // second under a flood.
        if let Some(s) = self.status.as_mut().filter(|s| status_ready || s.busy()) {
            let (stats, id, tz) = (&mut self.stats, &self.id, &self.tz);
            s.serve(now_ms, || {
                render::json(&stats.snapshot(epoch, id, tz)).into_bytes()
            });
        }
        if let Some(l) = self.events.as_mut().and_then(EventsFile::flush) {
            log.push(l);
        }
        if let Some(m) = &mut self.metrics
            && m.due(now_ms)
        {
            let text = render::prometheus(&self.stats.counters_snapshot(epoch, &self.id, &self.tz));
            log.extend(m.write(now_ms, &text));
        }
        log
    }

    /// SIGHUP: counters stay (the reload is noted), the event file is reopened (and may have
    /// moved), the metrics file may have moved.
    /// The metrics file is rewritten at the next turn.
    pub fn reload(&mut self, cfg: &Config, foreground: bool, epoch: i64) -> Vec<String> {
        self.stats.note_reload(epoch);
        self.tz = crate::sys::observe::insight::local_zone();
        self.configure(cfg, foreground)
    }

    /// Exit: the last event lines, a last metrics file saying `portsentry_up 0`, the socket
    /// removed.
    pub fn shutdown(&mut self, now_ms: u64, epoch: i64) -> Vec<String> {
        let mut log = Vec::new();
        if let Some(l) = self.events.as_mut().and_then(EventsFile::flush) {
            log.push(l);
        }
        if let Some(m) = &mut self.metrics {
            let mut snap = self.stats.counters_snapshot(epoch, &self.id, &self.tz);
            snap.running = false;
            log.extend(m.write(now_ms, &render::prometheus(&snap)));
        }
        self.status = None; // removes the socket
        log
    }
}

/// The counters' name for a hit's kind.
pub(in crate::sys) fn probe_kind(d: Detail) -> ProbeKind {
    match d {
        Detail::Connect => ProbeKind::Connect,
        Detail::TcpScan(t) => ProbeKind::from_scan(crate::capture::classify::ScanKind::Tcp(t)),
        Detail::UdpScan => ProbeKind::Udp,
        Detail::Other(k) => ProbeKind::from_other(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use std::time::Duration;

    fn cfg(dir: &Path) -> Config {
        Config {
            metrics_file: Some(dir.join("portsentry.prom")),
            events_file: Some(dir.join("events.jsonl")),
            ..Config::default()
        }
    }

    #[test]
    fn one_turn_serves_writes_and_a_shutdown_says_down() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity {
            pid: 7,
            modes: vec![Mode::Stcp],
            config: "/c".into(),
            watched_ports: vec![(Mode::Stcp, 3)],
        };
        let (mut o, log) = Observer::start(
            &cfg(dir.path()),
            &dir.path().join("ps.pid"),
            false,
            id,
            1_796_043_600,
        );
        assert!(log.is_empty(), "{log:?}");
        assert!(dir.path().join("ps.sock").exists());
        assert_eq!(o.poll_fds().len(), 1);
        assert_eq!(o.timeout_ms(), Some(1_000));
        let ip = "192.0.2.1".parse().unwrap();
        o.stats.note_probe(
            1_796_043_601,
            ip,
            22,
            Mode::Stcp,
            crate::observe::stats::ProbeKind::Syn,
        );
        o.event(&Event::detection(
            1_796_043_601_000,
            ip,
            22,
            Mode::Stcp,
            crate::observe::stats::ProbeKind::Syn,
            crate::observe::events::Response::Log,
        ));
        let sock = dir.path().join("ps.sock");
        let client = std::thread::spawn(move || {
            crate::sys::observe::status_sock::fetch(&sock, Duration::from_secs(3))
        });
        let t0 = std::time::Instant::now();
        while !client.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            assert!(
                o.turn(t0.elapsed().as_millis() as u64, 1_796_043_602, true)
                    .is_empty()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let snap: crate::observe::stats::Snapshot =
            serde_json::from_slice(&client.join().unwrap().unwrap()).unwrap();
        assert_eq!(snap.counters.unwrap().probes, 1);
        let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(events.lines().count(), 1);
        let prom = std::fs::read_to_string(dir.path().join("portsentry.prom")).unwrap();
        assert!(prom.contains("portsentry_up 1\n"));
        let log = o.reload(&cfg(dir.path()), false, 1_796_043_700);
        assert!(log.is_empty());
        assert_eq!(o.stats.counters().probes, 1, "a reload keeps the counters");
        assert!(o.shutdown(10_000, 1_796_043_800).is_empty());
        let prom = std::fs::read_to_string(dir.path().join("portsentry.prom")).unwrap();
        assert!(
            prom.contains("portsentry_up 0\n")
                && prom.contains("portsentry_last_reload_time_seconds 1796043700\n")
        );
        assert!(!dir.path().join("ps.sock").exists());
    }

    #[test]
    fn stdout_events_without_the_foreground_are_refused_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            events_file: Some("-".into()),
            ..Config::default()
        };
        let (_o, log) = Observer::start(
            &c,
            &dir.path().join("ps.pid"),
            false,
            Identity::default(),
            0,
        );
        assert_eq!(log.len(), 1);
        assert!(
            log[0].starts_with("adminalert: WARNING: EVENTS_FILE \"-\""),
            "{log:?}"
        );
    }
}
