//! The event loop: one thread, one `poll` over the signalfd, the classic modes' sockets and
//! the capture; children are reaped from the loop (§ Architecture in DESIGN.md). Each turn:
//!
//! 1. wait (the timeout is short while commands or nftables batches run, never longer than
//!    the systemd watchdog allows);
//! 2. serve what is ready: connects and datagrams (`classic`), captured packets (`respond`,
//!    through `stealth`), the fleet thread's log lines, signals (`reload`: SIGHUP, SIGUSR1,
//!    SIGTERM);
//! 3. carry on the response jobs (`exec`), write the turn's file lines in one write per file
//!    and its fleet records in one write to the spool, let the engine do its periodic work,
//!    keep systemd informed.
//!
//! The files beside this one are the loop's other concerns, each an `impl Daemon`:
//! `start` (start-up), `classic` (the bound sockets), `respond` (hit to engine to jobs and
//! files), `reload` (SIGHUP, SIGUSR1, shutdown). `observe` keeps the counters and answers
//! `portsentry status`, writes METRICS_FILE and EVENTS_FILE (step 3 of each turn).

use std::collections::BTreeSet;
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::config::Config;
use crate::config::cli::Cli;
use crate::config::mode::{Kind, Mode};
use crate::config::protect::Protected;
use crate::engine::{Engine, Hit};
use crate::observe::report;

use crate::sys::block::exec::Executor;
use crate::sys::block::files;
use crate::sys::capture::listen::Listener;
use crate::sys::capture::ring;
use crate::sys::capture::stealth::{self, Stealth};
use crate::sys::config::ignore_file::IgnoreFile;
use crate::sys::daemon::notify::Notifier;
use crate::sys::daemon::{EXIT_FAIL, EXIT_OK};
use crate::sys::fleet::Fleet;
use crate::sys::observe::Observer;
use crate::sys::observe::log::Logger;
use crate::sys::{clock, config::netinfo, engine::resolve};

/// How often the `STATUS=` line for systemd is brought up to date.
const STATUS_MS: u64 = 2_000;
/// How often the protected addresses (this host's, the gateways) are read again.
const PROTECTED_MS: u64 = 60_000;

/// The running daemon: what start-up made, and what the loop keeps between turns.
pub struct Daemon {
    pub(in crate::sys) cli: Cli,
    pub(in crate::sys) modes: Vec<Mode>,
    pub(in crate::sys) cfg: Config,
    pub(in crate::sys) log: Logger,
    pub(in crate::sys) engine: Engine,
    pub(in crate::sys) ignore: IgnoreFile,
    pub(in crate::sys) exec: Executor,
    pub(in crate::sys) listeners: Vec<Listener>,
    pub(in crate::sys) signals: SignalFd,
    /// Stealth and advanced modes (§3.2, §3.3): the capture and its watched ports.
    pub(in crate::sys) stealth: Option<Stealth>,
    /// Addresses never blocked (this host's, gateways); refreshed every minute and on reload.
    pub(in crate::sys) protected: Protected,
    pub(in crate::sys) last_protected: u64,
    /// After a busy ring pass, when the ring is polled again (monotonic ms; see
    /// `ring::REST_MS`).
    pub(in crate::sys) ring_rest_until: u64,
    pub(in crate::sys) resolver: resolve::Resolver,
    /// Blocked-file and history lines of this loop turn, written at its end.
    pub(in crate::sys) appends: files::Appends,
    /// systemd's readiness protocol (nothing outside systemd).
    pub(in crate::sys) notify: Notifier,
    pub(in crate::sys) last_status: u64,
    /// When the nftables sets' fill was last counted.
    pub(in crate::sys) last_nft_fill: u64,
    /// The counters, the status socket, METRICS_FILE and EVENTS_FILE.
    pub(in crate::sys) observer: Observer,
    /// The CrowdSec LAPI link (issue 12): its thread does the network I/O; the loop records
    /// blocks, writes them to the spool once a turn and logs the thread's lines.
    pub(in crate::sys) fleet: Option<Fleet>,
    /// A capture pass's hits, and its probes for the top lists, kept from one pass to the
    /// next (`stealth::reuse`).
    pub(in crate::sys) hits: Vec<Hit>,
    pub(in crate::sys) batch: Vec<crate::observe::stats::Probe>,
}

/// What one `poll` found ready.
#[derive(Default)]
struct Ready {
    signals: bool,
    /// Indexes into `Daemon::listeners`.
    listeners: Vec<usize>,
    ring: bool,
    bell: bool,
    /// The status socket or one of its clients.
    status: bool,
    /// The fleet thread has log lines.
    fleet: bool,
}

/// How often, with BLOCK_METHOD="nftables", the sets' fill is counted (a pass over the
/// blocks).
const NFT_FILL_MS: u64 = 5_000;

impl Daemon {
    /// Run until SIGTERM/SIGINT (exit status 0) or a fatal error (1).
    pub fn run(&mut self) -> i32 {
        // Starts the spare shell, if commands are configured.
        self.pump();
        loop {
            let ring_pending = self.stealth.as_ref().is_some_and(Stealth::ring_pending);
            let ready = match self.wait(ring_pending) {
                Ok(r) => r,
                Err(e) => {
                    self.log.log(&report::poll_failed(e));
                    return self.shutdown(EXIT_FAIL);
                }
            };
            for i in ready.listeners {
                self.serve(i);
            }
            // The doorbell before the ring, so a packet judged from one is known to the
            // de-duplication when its other copy comes (see `capture`).
            if ready.bell {
                self.serve_capture(true);
            }
            if ready.ring {
                self.serve_capture(false);
                if self.stealth.as_ref().is_some_and(Stealth::busy) {
                    self.ring_rest_until = clock::now_ms() + ring::REST_MS;
                }
            }
            if ready.fleet {
                self.log_fleet();
            }
            if let Some(st) = &mut self.stealth {
                if ring_pending && st.attach_ring(&mut self.log).is_err() {
                    return self.shutdown(EXIT_FAIL);
                }
                st.tick(&mut self.log);
            }
            if ready.signals {
                while let Ok(Some(si)) = self.signals.read_signal() {
                    match Signal::try_from(si.ssi_signo as i32) {
                        Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return self.shutdown(EXIT_OK),
                        Ok(Signal::SIGHUP) => self.reload(),
                        Ok(Signal::SIGUSR1) => self.resync_blocks(),
                        // A command ended: the pump below reaps it.
                        Ok(Signal::SIGCHLD) => self.exec.child_exited(),
                        _ => {}
                    }
                }
            }
            self.pump();
            self.flush_files();
            self.flush_fleet();
            self.periodic(clock::now_ms());
            self.observe_turn(ready.status);
        }
    }

    /// Poll everything the loop serves. EINTR is an empty round.
    fn wait(&self, ring_pending: bool) -> nix::Result<Ready> {
        let timeout = if self.exec.nft_running() || ring_pending {
            1u16
        } else if self.exec.busy() {
            20
        } else if self.stealth.is_some() {
            stealth::REFRESH_MS as u16
        } else {
            1000
        };
        // Resting after a busy ring pass: the ring is left out of this wait, which ends when
        // the rest does.
        let rest = self.ring_rest_until.saturating_sub(clock::now_ms());
        let timeout = if rest > 0 {
            timeout.min(rest as u16)
        } else {
            timeout
        };
        let timeout = self
            .notify
            .max_sleep_ms()
            .map_or(timeout, |w| timeout.min(w as u16));
        let timeout = self
            .observer
            .timeout_ms()
            .map_or(timeout, |t| timeout.min(t.min(u64::from(u16::MAX)) as u16));
        let mut fds: Vec<PollFd> = Vec::with_capacity(self.listeners.len() + 6);
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        for l in &self.listeners {
            fds.push(PollFd::new(l.fd(), PollFlags::POLLIN));
        }
        // A spare shell on its way: its readiness only ends the wait (the pump that follows
        // every turn takes it).
        let spare_at = fds.len();
        if let Some(fd) = self.exec.spare_fd() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        // The capture, if any: the ring (once attached), then its doorbell when in use.
        let (mut ring_at, mut bell_at) = (None, None);
        if let Some(st) = &self.stealth {
            if let Some(r) = st.fd().filter(|_| rest == 0) {
                ring_at = Some(fds.len());
                fds.push(PollFd::new(r, PollFlags::POLLIN));
            }
            if let Some(b) = st.bell_fd() {
                bell_at = Some(fds.len());
                fds.push(PollFd::new(b, PollFlags::POLLIN));
            }
        }
        // The fleet thread's eventfd.
        let fleet_at = self.fleet.as_ref().map(|f| {
            fds.push(PollFd::new(f.fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // The status socket and its waiting clients, last.
        let status_at = fds.len();
        for (fd, ev) in self.observer.poll_fds() {
            fds.push(PollFd::new(fd, ev));
        }
        let mut ready = Ready::default();
        match poll(&mut fds, PollTimeout::from(timeout)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(ready),
            Err(e) => return Err(e),
        }
        for (i, f) in fds.iter().enumerate() {
            if f.revents().is_none_or(|r| r.is_empty()) {
                continue;
            }
            if i == 0 {
                ready.signals = true;
            } else if i < spare_at {
                ready.listeners.push(i - 1);
            } else if Some(i) == ring_at {
                ready.ring = true;
            } else if Some(i) == bell_at {
                ready.bell = true;
            } else if Some(i) == fleet_at {
                ready.fleet = true;
            } else if i >= status_at {
                ready.status = true;
            }
        }
        Ok(ready)
    }

    /// The engine's periodic work (expired blocks, summaries), the protected addresses,
    /// systemd's watchdog and status line.
    fn periodic(&mut self, now: u64) {
        let v = self.engine.tick(now);
        self.carry_out(v);
        if now.saturating_sub(self.last_protected) >= PROTECTED_MS {
            self.refresh_protected();
            self.last_protected = now;
        }
        self.notify.tick(now);
        if now.saturating_sub(self.last_status) >= STATUS_MS {
            self.last_status = now;
            let status = self.status_line();
            self.notify.status(&status);
        }
    }

    /// Reads the protected addresses again: this host's, the gateways, the nameservers, the
    /// LAPI's (as the fleet thread last resolved them) and NEVER_BLOCK.
    pub(in crate::sys) fn refresh_protected(&mut self) {
        let lapi = self
            .fleet
            .as_ref()
            .map(Fleet::lapi_addrs)
            .unwrap_or_default();
        self.protected = netinfo::protected(&lapi, &self.cfg.never_block);
    }

    /// The end of a turn for `portsentry status`, METRICS_FILE and EVENTS_FILE: the levels
    /// read elsewhere (capture totals, blocks in force; the nftables sets' fill every few
    /// seconds), then the observer's
    /// turn (status clients, the turn's event lines, the metrics file when due).
    pub(in crate::sys) fn observe_turn(&mut self, status_ready: bool) {
        let now = clock::now_ms();
        let epoch = clock::epoch();
        if let Some(st) = &self.stealth {
            self.observer.stats.set_capture(st.totals());
            self.observer.stats.set_evasion(st.evasion());
            self.observer.stats.set_unwatched(st.unwatched());
        }
        let g = self.engine.gate_counts();
        self.observer
            .stats
            .set_hit_outcomes(crate::observe::stats::HitOutcomes {
                judged: g.judged,
                ignored: g.ignored,
                below_trigger: g.below_trigger,
                repeats: g.repeats,
                reported: g.reported,
                reported_on_evidence: g.on_evidence,
                over_prefix_limit: g.over_prefix,
                over_global_limit: g.over_global,
            });
        // Both O(1) (the soonest expiry is the top of the engine's expiry heap).
        let soonest = self.engine.soonest_expiry().map(|t| {
            epoch.saturating_add(i64::try_from(t.saturating_sub(now) / 1000).unwrap_or(0))
        });
        self.observer
            .stats
            .set_blocks_in_force(self.engine.blocked_hosts() as u64, soonest);
        if now.saturating_sub(self.last_nft_fill) >= NFT_FILL_MS {
            self.last_nft_fill = now;
            let sets = if self.cfg.block_method == crate::config::BlockMethod::Nftables {
                let (v4, v6) = self.engine.blocked_by_family();
                let size = u64::from(self.cfg.block_set_size);
                vec![
                    crate::observe::stats::SetFill {
                        set: crate::block::nft::Set::Hosts4.name().to_string(),
                        elements: v4 as u64,
                        size,
                    },
                    crate::observe::stats::SetFill {
                        set: crate::block::nft::Set::Hosts6.name().to_string(),
                        elements: v6 as u64,
                        size,
                    },
                ]
            } else {
                Vec::new()
            };
            self.observer.stats.set_nft_sets(sets);
        }
        if let Some(f) = &self.fleet {
            let st = f.status();
            let links = [st.push, st.pull];
            let configured = links.iter().flatten();
            let up = configured
                .clone()
                .all(|l| matches!(l, crate::fleet::link::State::Up));
            let down_since = configured
                .filter_map(|l| match l {
                    crate::fleet::link::State::Down { since_ms } => Some(*since_ms),
                    _ => None,
                })
                .min()
                .map(|ms| {
                    epoch.saturating_sub(i64::try_from(now.saturating_sub(ms) / 1000).unwrap_or(0))
                });
            self.observer
                .stats
                .set_fleet(Some(crate::observe::stats::FleetState {
                    up,
                    down_since,
                    queued: st.waiting,
                    sent: st.sent,
                    dropped: st.dropped,
                    decisions: st.decisions as u64,
                    pull_every_ms: st.pull_every_ms,
                    answer_ms: st.pull_took_ms,
                    behind_ms: st.pull_behind_ms,
                }));
        }
        for l in self.observer.turn(now, epoch, status_ready) {
            self.log.log(&l);
        }
    }

    /// Ports watched, by mode (classic: bound; stealth and advanced: watched).
    pub(in crate::sys) fn watched(&self) -> Vec<(Mode, usize)> {
        let mut watched: Vec<(Mode, usize)> = Vec::new();
        for &m in self.modes.iter().filter(|m| m.kind() == Kind::Classic) {
            let ports: BTreeSet<u16> = self
                .listeners
                .iter()
                .filter(|l| l.mode == m)
                .map(|l| l.port)
                .collect();
            watched.push((m, ports.len()));
        }
        if let Some(st) = &self.stealth {
            watched.extend(st.watched());
        }
        watched
    }

    /// The `STATUS=` line for systemd: modes, watched ports, blocks in force.
    pub(in crate::sys) fn status_line(&self) -> String {
        report::systemd_status(&self.watched(), self.engine.blocked_hosts())
    }
}
