//! SIGHUP (reload), SIGUSR1 (the nftables sets changed by hand) and shutdown. A reload
//! re-reads the configuration and the ignore file, clears the blocked files (or keeps the
//! lines of hosts still in the nftables sets), binds new ports and closes removed ones,
//! hands the fleet thread its new settings (the spool stays), and keeps the pid; a
//! configuration with errors (the fleet's files included), or one that needs a capability
//! the process lacks, is refused and the running one stays.

use std::collections::BTreeSet;

use crate::config::mode::Kind;
use crate::config::{BlockMethod, Severity};
use crate::observe::report;

use crate::sys::config::ignore_file::IgnoreFile;
use crate::sys::daemon::event_loop::Daemon;
use crate::sys::daemon::start::{
    bind_ports, classic_ports, load_config, nft_size, required_capability, start_blocks,
    wants_shell,
};
use crate::sys::fleet::{self, Fleet};
use crate::sys::{block::nftables, capture::stealth, clock, daemon::fork};

impl Daemon {
    /// SIGHUP, bracketed for systemd (RELOADING=1 ... READY=1).
    pub(in crate::sys) fn reload(&mut self) {
        self.notify.reloading();
        self.reload_config();
        let status = self.status_line();
        self.notify.reloaded(&status);
    }

    fn reload_config(&mut self) {
        self.flush_files();
        self.log.reset();
        self.log.log(&report::reloading());
        let cfg = match load_config(&self.cli.config, &self.modes) {
            Ok((cfg, warnings)) => {
                for w in warnings {
                    self.log.log(&report::config_problem(w));
                }
                cfg
            }
            Err(diags) => {
                let reason = diags
                    .iter()
                    .find(|d| d.severity == Severity::Error)
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                for d in &diags {
                    self.log.log(&report::config_problem(d));
                }
                self.log.log(&report::reload_rejected(&reason));
                return;
            }
        };
        if let Some(err) = required_capability(&self.modes, &cfg) {
            self.log.log(&report::error(&err));
            self.log.log(&report::reload_rejected(&err));
            return;
        }
        let fleet_settings = match fleet::load(&cfg) {
            Ok(s) => {
                for (url, from) in s.iter().flat_map(fleet::Settings::plain_http) {
                    self.log.log(&report::fleet_plain_http(&url, &from));
                }
                s
            }
            Err(errors) => {
                for e in &errors {
                    self.log.log(&report::error(e));
                }
                if let Some(first) = errors.first() {
                    self.log.log(&report::reload_rejected(first));
                }
                return;
            }
        };
        match start_blocks(&cfg, &self.modes, &mut self.log) {
            Ok(Some(hosts)) => {
                // Blocks in force stay, with their hosts.deny lines; those no longer in the
                // sets have theirs removed.
                let (_, lifted) = self.engine.restore_blocked(
                    clock::now_ms(),
                    self.modes[0],
                    cfg.kill_hosts_deny.as_deref(),
                    hosts,
                );
                self.carry_out(lifted);
                self.exec.nft_changed();
            }
            // An error is logged; the blocks are forgotten as 1.2 forgets them.
            _ => self.engine.clear_blocked(),
        }
        if nft_size(&cfg) != nft_size(&self.cfg) {
            self.exec.set_nft(nft_size(&cfg));
            self.exec.set_spare(wants_shell(&cfg));
        }
        if let Some(st) = &mut self.stealth {
            st.reload(&cfg, &stealth::capture_modes(&self.modes), &mut self.log);
        }
        let classic: Vec<_> = self
            .modes
            .iter()
            .copied()
            .filter(|m| m.kind() == Kind::Classic)
            .collect();
        for m in classic {
            let want: BTreeSet<u16> = classic_ports(&cfg, m).into_iter().collect();
            let have: BTreeSet<u16> = self
                .listeners
                .iter()
                .filter(|l| l.mode == m)
                .map(|l| l.port)
                .collect();
            self.listeners
                .retain(|l| l.mode != m || want.contains(&l.port));
            let new: Vec<u16> = want.difference(&have).copied().collect();
            let got = bind_ports(m, &new, &mut self.log);
            self.listeners.extend(got);
            if !self.listeners.iter().any(|l| l.mode == m) {
                self.log.log(&report::could_not_bind_any(m.proto()));
            }
        }
        self.ignore = IgnoreFile::new(&cfg.ignore_file.clone().unwrap_or_default());
        self.ignore.refresh(clock::now_ms(), &mut self.log);
        self.exec.set_hosts_deny(cfg.hosts_deny_file.clone());
        // The counters stay; the events and metrics files follow the new configuration.
        for l in self
            .observer
            .reload(&cfg, self.cli.foreground, clock::epoch())
        {
            self.log.log(&l);
        }
        self.cfg = cfg;
        self.observer.id.watched_ports = self
            .watched()
            .into_iter()
            .map(|(m, n)| (m, n as u64))
            .collect();
        self.reload_fleet(fleet_settings);
        // After the fleet's: its LAPI may be another one now.
        self.refresh_protected();
        self.log.log(&report::reloaded());
    }

    /// The fleet's part of a reload: the running thread takes the new settings (all off
    /// when no fleet key is left: it then idles); a fleet turned on starts its thread.
    fn reload_fleet(&mut self, settings: Option<fleet::Settings>) {
        let result = match (&mut self.fleet, settings) {
            (Some(f), s) => f.reconfigure(s.unwrap_or_default()),
            (None, Some(s)) => Fleet::start(s).map(|f| self.fleet = Some(f)),
            (None, None) => Ok(()),
        };
        if let Err(e) = result {
            self.log.log(&report::error(&e));
        }
    }

    /// SIGUSR1 (sent by `portsentry blocked del|add|flush`): the nftables set is the record
    /// of who is blocked; re-read it so a host unblocked by hand is forgotten here too.
    /// A signal rather than a control socket: it carries no data to parse or authenticate,
    /// only root (or the daemon's user) can send it, and nothing new listens.
    pub(in crate::sys) fn resync_blocks(&mut self) {
        if self.cfg.block_method != BlockMethod::Nftables {
            return;
        }
        match nftables::list() {
            Ok(elems) => {
                let hosts = nftables::hosts(&elems);
                // Blocks in force that are no longer in the sets were lifted by hand.
                let kept: std::collections::HashSet<std::net::IpAddr> =
                    hosts.iter().map(|h| h.0).collect();
                let ms = clock::epoch_ms();
                for (ip, mode) in self.engine.blocked_list() {
                    if !kept.contains(&ip) {
                        self.observer.stats.note_unblock();
                        self.observer.event(&crate::observe::events::Event::unblock(
                            ms,
                            ip,
                            Some(mode),
                        ));
                    }
                }
                let (n, lifted) = self.engine.restore_blocked(
                    clock::now_ms(),
                    self.modes[0],
                    self.cfg.kill_hosts_deny.as_deref(),
                    hosts,
                );
                self.log.log(&report::nft_blocks_reread(n));
                self.exec.nft_changed();
                // Their hosts.deny lines go with them.
                self.carry_out(lifted);
            }
            Err(e) => self.log.log(&report::nft_table_failed("list", e)),
        }
    }

    /// SIGTERM, SIGINT or a fatal error: the spare shell, the last file lines, the nftables
    /// table if BLOCK_FLUSH_ON_STOP, 1.2's shutdown lines, the pid file. Returns `code`.
    pub(in crate::sys) fn shutdown(&mut self, code: i32) -> i32 {
        self.notify.stopping();
        // The waiting spare shell is ended and reaped now, not left to end on its own when
        // its stdin closes with our exit: systemd then finds the unit's control group empty
        // when the main process is gone, and has nothing of ours left to kill.
        self.exec.set_spare(false);
        self.flush_files();
        if let Some(f) = self.fleet.take() {
            for l in f.shutdown() {
                self.log.log(&l);
            }
        }
        if self.cfg.block_method == BlockMethod::Nftables
            && self.cfg.block_flush_on_stop
            && let Err(e) = nftables::run_script(&crate::block::nft::delete_table_script())
        {
            self.log.log(&report::nft_table_failed("delete", e));
        }
        // The last event lines, a metrics file saying portsentry_up 0, the status socket gone.
        for l in self.observer.shutdown(clock::now_ms(), clock::epoch()) {
            self.log.log(&l);
        }
        for l in report::shutting_down() {
            self.log.log(&l);
        }
        fork::remove_pidfile(&self.cli.pidfile);
        code
    }
}
