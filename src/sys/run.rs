//! Start-up, the event loop, reload and shutdown. One thread, one `poll` over the listening
//! sockets and a signalfd; children are reaped from the loop (§ Architecture in DESIGN.md).

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::caps;
use crate::cli::Cli;
use crate::config::{self, BlockMethod, Config, Diagnostic, Severity};
use crate::engine::{Context, Detail, Engine, Hit, Job, Limits, Outcome, Verdict};
use crate::mode::{Kind, Mode, Proto};
use crate::report;

use super::daemon::{self, Forked, Ready};
use super::exec::Executor;
use super::files;
use super::ignore_file::IgnoreFile;
use super::listen::{self, BindError, Listener, Sock};
use super::log::Logger;
use super::nftables;
use super::notify::Notifier;
use super::stealth::{self, Stealth};
use super::{clock, netinfo, resolve};
use crate::protect::Protected;

/// How long a reverse lookup may take before the address is used instead.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Connections or datagrams served per socket per wake-up, so one busy port cannot starve
/// the others or the signal handling.
const BURST: usize = 64;

/// How often the `STATUS=` line for systemd is brought up to date.
const STATUS_MS: u64 = 2_000;

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAIL: i32 = 1;

/// Read and check the config for `modes`. Ok carries the warnings; Err all diagnostics.
pub fn load_config(
    path: &Path,
    modes: &[Mode],
) -> Result<(Config, Vec<Diagnostic>), Vec<Diagnostic>> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![Diagnostic {
            path: path.to_path_buf(),
            line: None,
            key: None,
            severity: Severity::Error,
            message: format!("cannot open config file: {e}"),
        }]
    })?;
    let parsed = config::parse(&bytes, path);
    let mut diags = parsed.diagnostics;
    diags.extend(parsed.config.validate(modes, path));
    if config::has_errors(&diags) {
        Err(diags)
    } else {
        Ok((parsed.config, diags))
    }
}

/// `--check`: validate the config and the ignore file, print every problem, exit 0 or 1.
pub fn check(cli: &Cli) -> i32 {
    let mut modes = cli.modes();
    if modes.is_empty() {
        // The modes the init script and the unit would start.
        let file = cli.modes_file.display().to_string();
        let text = match std::fs::read(&cli.modes_file) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return EXIT_FAIL;
            }
        };
        match crate::defaults::selected_modes(&file, text.as_deref()) {
            Ok(m) if m.is_empty() => {
                println!("{file}: no modes selected (TCP_MODE and UDP_MODE empty or unset)");
            }
            Ok(m) => {
                let names: Vec<String> = m.iter().map(|m| format!("-{}", m.as_str())).collect();
                println!("{file}: checking modes {}", names.join(" "));
                modes = m;
            }
            Err(e) => {
                eprintln!("error: {}", e.0);
                return EXIT_FAIL;
            }
        }
    }
    let (cfg, diags, mut status) = match load_config(&cli.config, &modes) {
        Ok((c, d)) => (Some(c), d, EXIT_OK),
        Err(d) => (None, d, EXIT_FAIL),
    };
    for d in &diags {
        eprintln!("{d}");
    }
    if let Some(p) = cfg.as_ref().and_then(|c| c.ignore_file.as_ref()) {
        match std::fs::read(p) {
            Ok(b) => {
                let (list, warnings) = crate::ignore::parse(&b);
                for w in &warnings {
                    eprintln!("warning: {}:{}: {}", p.display(), w.line, w.reason);
                }
                println!("{}: {} entries", p.display(), list.len());
            }
            Err(e) => {
                eprintln!("error: {}: cannot read ignore file: {e}", p.display());
                status = EXIT_FAIL;
            }
        }
    }
    if let Some(cfg) = &cfg {
        match super::caps::permitted() {
            Ok(have) => {
                for f in caps::assess(&modes, cfg, have) {
                    match f {
                        caps::Finding::Fatal { cap, setting } => {
                            eprintln!(
                                "error: {setting} needs capability {}, which this process does not have",
                                caps::name(cap)
                            );
                            status = EXIT_FAIL;
                        }
                        caps::Finding::Missing { cap, disables } => {
                            eprintln!(
                                "warning: capability {} is not available: {disables}",
                                caps::name(cap)
                            );
                        }
                    }
                }
            }
            Err(e) => eprintln!("warning: cannot read this process's capabilities: {e}"),
        }
    }
    if status == EXIT_OK {
        println!("{}: configuration OK", cli.config.display());
    }
    status
}

/// Name each missing capability once (syslog, and stderr while it is still the terminal);
/// Err with the reason when a configured mode or BLOCK_METHOD cannot work without one.
/// Ok carries the part of KEEP_CAPABILITIES to keep (None: keep everything, `all`).
fn assess_capabilities(
    modes: &[Mode],
    cfg: &Config,
    log: &mut Logger,
) -> Result<Option<Vec<u8>>, String> {
    let have = match super::caps::permitted() {
        Ok(h) => h,
        Err(e) => {
            let msg = format!("cannot read this process's capabilities: {e}");
            log.log(&report::start_failed(&msg));
            return Err(msg);
        }
    };
    let mut fatal = None;
    for f in caps::assess(modes, cfg, have) {
        match f {
            caps::Finding::Fatal { cap, setting } => {
                let line = report::capability_required(&caps::name(cap), &setting);
                log.log(&line);
                fatal.get_or_insert(line);
            }
            caps::Finding::Missing { cap, disables } => {
                log.log(&report::capability_missing(&caps::name(cap), &disables));
            }
        }
    }
    if let Some(line) = fatal {
        let reason = line.strip_prefix("adminalert: ERROR: ").unwrap_or(&line);
        return Err(reason.to_string());
    }
    Ok(cfg.keep_capabilities.as_ref().map(|k| have.intersect(k)))
}

/// The daemon's main: returns the process exit status.
pub fn main(cli: Cli, syslog_socket: PathBuf) -> i32 {
    if cli.check {
        return check(&cli);
    }
    daemon::cloexec_inherited();
    let mut log = Logger::new(syslog_socket, true);
    if !nix::unistd::geteuid().is_root() {
        eprintln!("portsentry: You need to be root to run this.");
        return EXIT_FAIL;
    }
    let modes = cli.modes();
    log.log(&report::starting());
    let fail = |log: &mut Logger, msg: &str| {
        log.log(msg);
        for l in report::shutting_down() {
            log.log(&l);
        }
    };
    let cfg = match load_config(&cli.config, &modes) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                log.log(&report::config_problem(w));
            }
            cfg
        }
        Err(diags) => {
            for d in diags {
                log.log(&report::config_problem(d));
            }
            fail(&mut log, &report::config_missing_mandatory_option());
            return EXIT_FAIL;
        }
    };
    let keep = match assess_capabilities(&modes, &cfg, &mut log) {
        Ok(k) => k,
        Err(reason) => {
            fail(&mut log, &report::could_not_enter_mode());
            eprintln!("portsentry: {reason}");
            return EXIT_FAIL;
        }
    };
    let ready = if cli.foreground {
        None
    } else {
        log.set_stderr(false);
        match daemon::daemonize() {
            Ok(Forked::Parent(code)) => return code,
            Ok(Forked::Child(r)) => {
                log.reset();
                Some(r)
            }
            Err(e) => {
                fail(&mut log, &report::could_not_daemonize());
                eprintln!("portsentry: cannot fork: {e}");
                return EXIT_FAIL;
            }
        }
    };
    match Daemon::start(cfg, cli, modes, keep, log) {
        Ok(mut d) => {
            if let Some(r) = ready {
                r.ok();
            }
            let status = d.status_line();
            d.notify.ready(&status);
            d.run()
        }
        Err(e) => {
            let (mut log, reason) = *e;
            log.log(&report::could_not_enter_mode());
            for l in report::shutting_down() {
                log.log(&l);
            }
            if let Some(r) = ready {
                Ready::fail(r, &reason);
            } else {
                eprintln!("portsentry: {reason}");
            }
            EXIT_FAIL
        }
    }
}

struct Daemon {
    cli: Cli,
    modes: Vec<Mode>,
    cfg: Config,
    log: Logger,
    engine: Engine,
    ignore: IgnoreFile,
    exec: Executor,
    listeners: Vec<Listener>,
    signals: SignalFd,
    last_expire: u64,
    /// Stealth and advanced modes (§3.2, §3.3): the capture and its watched ports.
    stealth: Option<Stealth>,
    /// Addresses never blocked (this host's, gateways); refreshed every minute and on reload.
    protected: Protected,
    resolver: resolve::Resolver,
    /// Blocked-file and history lines of this loop turn, written at its end.
    appends: files::Appends,
    /// systemd's readiness protocol (nothing outside systemd).
    notify: Notifier,
    last_status: u64,
}

type StartError = Box<(Logger, String)>;

impl Daemon {
    fn start(
        cfg: Config,
        cli: Cli,
        modes: Vec<Mode>,
        keep: Option<Vec<u8>>,
        mut log: Logger,
    ) -> Result<Daemon, StartError> {
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGCHLD,
            Signal::SIGUSR1,
        ] {
            mask.add(s);
        }
        let signals = mask.thread_block().and_then(|_| {
            SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        });
        // The capture ring takes an RCU grace period to set up (see `capture::Ring`): start
        // it now, on a thread (created after the signals are blocked, so it never takes
        // one, and with a small stack: it makes a few system calls). The capture opens on
        // its doorbell without waiting; the loop attaches the ring when the thread is done.
        let ring = (!stealth::capture_modes(&modes).is_empty())
            .then(|| {
                std::thread::Builder::new()
                    .name("ring".into())
                    .stack_size(64 * 1024)
                    .spawn(super::capture::Ring::prepare)
                    .ok()
            })
            .flatten();
        let signals = match signals {
            Ok(s) => s,
            Err(e) => {
                return Err(Box::new((
                    log,
                    format!("cannot set up signal handling: {e}"),
                )));
            }
        };
        if let Err(e) = daemon::check_pidfile(&cli.pidfile) {
            log.log(&report::start_failed(&e));
            return Err(Box::new((log, e)));
        }
        let restored = match start_blocks(&cfg, &modes, &mut log) {
            Ok(r) => r,
            Err(e) => return Err(Box::new((log, e))),
        };
        let mut listeners = Vec::new();
        for &m in modes.iter().filter(|m| m.kind() == Kind::Classic) {
            let ports = classic_ports(&cfg, m);
            let got = bind_ports(m, &ports, &mut log);
            if got.is_empty() {
                let msg = report::could_not_bind_any(m.proto());
                log.log(&msg);
                return Err(Box::new((log, msg)));
            }
            listeners.extend(got);
        }
        let capture_modes = stealth::capture_modes(&modes);
        let stealth = if capture_modes.is_empty() {
            None
        } else {
            let opts = stealth::Options {
                interface: cli.interface.clone(),
                act_on_own_addresses: cli.act_on_own_addresses,
            };
            match Stealth::start(&cfg, &capture_modes, &opts, &mut log, ring) {
                Ok(s) => Some(s),
                Err(e) => return Err(Box::new((log, e))),
            }
        };
        if let Some(keep) = &keep
            && let Err(e) = super::caps::restrict(keep)
        {
            let msg = format!("cannot drop capabilities (KEEP_CAPABILITIES): {e}");
            log.log(&report::start_failed(&msg));
            return Err(Box::new((log, msg)));
        }
        if let Err(e) = daemon::write_pidfile(&cli.pidfile) {
            let msg = format!("cannot write pid file {}: {e}", cli.pidfile.display());
            log.log(&report::start_failed(&msg));
            return Err(Box::new((log, msg)));
        }
        let ignore_path = cfg.ignore_file.clone().unwrap_or_default();
        let mut exec = Executor::new(cfg.hosts_deny_file.clone());
        exec.set_nft(nft_size(&cfg));
        exec.set_spare(wants_shell(&cfg));
        let mut d = Daemon {
            cli,
            modes,
            cfg,
            log,
            engine: Engine::new(Limits::default()),
            ignore: IgnoreFile::new(&ignore_path),
            exec,
            listeners,
            signals,
            last_expire: clock::now_ms(),
            stealth,
            protected: netinfo::protected(),
            resolver: resolve::Resolver::default(),
            appends: files::Appends::default(),
            notify: Notifier::from_env(clock::now_ms()),
            last_status: clock::now_ms(),
        };
        d.ignore.refresh(clock::now_ms(), &mut d.log);
        if let Some(hosts) = restored {
            let n = d.engine.restore_blocked(clock::now_ms(), d.modes[0], hosts);
            d.log.log(&report::nft_ready(n));
        }
        d.log.log(&report::now_active());
        Ok(d)
    }

    fn run(&mut self) -> i32 {
        // Starts the spare shell, if commands are configured.
        self.pump();
        loop {
            let ring_pending = self.stealth.as_ref().is_some_and(Stealth::ring_pending);
            let timeout = if self.exec.nft_running() || ring_pending {
                1u16
            } else if self.exec.busy() {
                20
            } else if self.stealth.is_some() {
                stealth::REFRESH_MS as u16
            } else {
                1000
            };
            let timeout = self
                .notify
                .max_sleep_ms()
                .map_or(timeout, |w| timeout.min(w as u16));
            let mut ready_sig = false;
            let mut ready: Vec<usize> = Vec::new();
            let mut ready_capture = false;
            let mut ready_bell = false;
            {
                let mut fds: Vec<PollFd> = Vec::with_capacity(self.listeners.len() + 3);
                fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
                for l in &self.listeners {
                    fds.push(PollFd::new(l.fd(), PollFlags::POLLIN));
                }
                // The capture, if any, comes last: the ring (once attached), then its
                // doorbell when in use.
                let first_capture = fds.len();
                let (mut ring_at, mut bell_at) = (None, None);
                if let Some(st) = &self.stealth {
                    if let Some(r) = st.fd() {
                        ring_at = Some(fds.len());
                        fds.push(PollFd::new(r, PollFlags::POLLIN));
                    }
                    if let Some(b) = st.bell_fd() {
                        bell_at = Some(fds.len());
                        fds.push(PollFd::new(b, PollFlags::POLLIN));
                    }
                }
                match poll(&mut fds, PollTimeout::from(timeout)) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        self.log.log(&report::poll_failed(e));
                        return self.shutdown(EXIT_FAIL);
                    }
                }
                for (i, f) in fds.iter().enumerate() {
                    let hit = f.revents().is_some_and(|r| !r.is_empty());
                    if hit && i == 0 {
                        ready_sig = true;
                    } else if hit && i < first_capture {
                        ready.push(i - 1);
                    } else if hit && Some(i) == ring_at {
                        ready_capture = true;
                    } else if hit && Some(i) == bell_at {
                        ready_bell = true;
                    }
                }
            }
            for i in ready {
                self.serve(i);
            }
            // The doorbell before the ring, so a packet judged from one is known to the
            // de-duplication when its other copy comes (see `capture`).
            if ready_bell {
                self.serve_capture(true);
            }
            if ready_capture {
                self.serve_capture(false);
            }
            if let Some(st) = &mut self.stealth {
                if ring_pending && st.attach_ring(&mut self.log).is_err() {
                    return self.shutdown(EXIT_FAIL);
                }
                st.tick(&mut self.log);
            }
            if ready_sig {
                while let Ok(Some(si)) = self.signals.read_signal() {
                    match Signal::try_from(si.ssi_signo as i32) {
                        Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return self.shutdown(EXIT_OK),
                        Ok(Signal::SIGHUP) => self.reload(),
                        Ok(Signal::SIGUSR1) => self.resync_blocks(),
                        _ => {} // SIGCHLD: reaped by the pump below
                    }
                }
            }
            self.pump();
            self.flush_files();
            let now = clock::now_ms();
            let v = self.engine.tick(now);
            self.carry_out(v);
            if now.saturating_sub(self.last_expire) >= 60_000 {
                self.protected = netinfo::protected();
                self.last_expire = now;
            }
            self.notify.tick(now);
            if now.saturating_sub(self.last_status) >= STATUS_MS {
                self.last_status = now;
                let status = self.status_line();
                self.notify.status(&status);
            }
        }
    }

    /// The `STATUS=` line for systemd: modes, watched ports, blocks in force.
    fn status_line(&self) -> String {
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
        report::systemd_status(&watched, self.engine.blocked_hosts())
    }

    fn pump(&mut self) {
        let p = self.exec.pump(clock::now_ms());
        for l in p.log {
            self.log.log(&l);
        }
        for (job, ok) in p.done {
            self.finish(job, ok);
        }
    }

    /// Serve one ready socket: accept connections / read datagrams, up to BURST.
    fn serve(&mut self, i: usize) {
        let (mode, port) = (self.listeners[i].mode, self.listeners[i].port);
        for _ in 0..BURST {
            match &self.listeners[i].sock {
                Sock::Tcp(l) => match l.accept() {
                    Ok((mut stream, peer)) => {
                        let banner = self.hit(peer.ip(), port, mode, Detail::Connect, false);
                        if let (true, Some(b)) = (banner, self.cfg.port_banner.as_deref()) {
                            let _ = stream.set_nonblocking(true);
                            let _ = stream.write(b.as_bytes());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(_) => {
                        self.log.log(&report::accept_failed(port));
                        return;
                    }
                },
                Sock::Udp(s) => {
                    let mut buf = [0u8; 1];
                    match s.recv_from(&mut buf) {
                        Ok((_, peer)) => {
                            let banner = self.hit(peer.ip(), port, mode, Detail::Connect, false);
                            if let (true, Some(b), Sock::Udp(s)) = (
                                banner,
                                self.cfg.port_banner.as_deref(),
                                &self.listeners[i].sock,
                            ) {
                                let _ = s.send_to(b.as_bytes(), peer);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                        Err(_) => {
                            self.log.log(&report::could_not_accept_udp(port));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Stealth and advanced modes: every packet on the doorbell (`bell`) or in the ring, each
    /// hit through `hit()`.
    fn serve_capture(&mut self, bell: bool) {
        let hits = match &mut self.stealth {
            Some(st) if bell => st.ring_bell(&mut self.log),
            Some(st) => st.drain(&mut self.log),
            None => return,
        };
        for h in hits {
            self.hit(h.src, h.port, h.mode, h.detail, h.ip_options);
        }
    }

    /// One hit from `src`. Returns whether PORT_BANNER is to be sent.
    fn hit(
        &mut self,
        src: IpAddr,
        port: u16,
        mode: Mode,
        detail: Detail,
        ip_options: bool,
    ) -> bool {
        let hit = Hit {
            src: src.to_canonical(),
            port,
            mode,
            detail,
            ip_options,
        };
        let now = clock::now_ms();
        let ctx = Context {
            cfg: &self.cfg,
            ignore: self.ignore.refresh(now, &mut self.log),
            protected: &self.protected,
        };
        let v = match self.engine.observe(now, &hit, &ctx) {
            Outcome::Done(v) => v,
            Outcome::Lookup(p) => {
                let name = name_of(&mut self.resolver, &mut self.log, p.ip());
                self.engine.named(now, p, name.as_deref(), &ctx)
            }
        };
        self.carry_out(v)
    }

    /// Do what the engine decided: log its events (the detection line before the commands
    /// start: 1.2's order; starting the commands first was measured: KILL_ROUTE no sooner
    /// within noise, the line in syslog 0.3-0.4 ms later), queue the blocked-file and history
    /// lines, start the jobs. Returns whether PORT_BANNER is to be sent.
    fn carry_out(&mut self, v: Verdict) -> bool {
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

    /// A job ended: the engine says what follows (a failed block's line, the records).
    fn finish(&mut self, job: Job, ok: bool) {
        let v = self.engine.job_done(clock::now_ms(), &job, ok);
        self.carry_out(v);
    }

    /// Queue a blocked-file and history line (§7), written at the end of the loop turn.
    fn record(&mut self, r: &crate::engine::Record) {
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

    /// Write the lines queued by `finish` in this loop turn: one write per file.
    fn flush_files(&mut self) {
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

    /// SIGHUP: re-read config and ignore file, clear blocked files, rebind changed ports.
    /// A bad new config is reported and the old one stays.
    fn reload(&mut self) {
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
        if let Some(caps::Finding::Fatal { cap, setting }) = super::caps::permitted()
            .ok()
            .and_then(|have| caps::assess(&self.modes, &cfg, have).into_iter().next())
            .filter(|f| matches!(f, caps::Finding::Fatal { .. }))
        {
            let line = report::capability_required(&caps::name(cap), &setting);
            self.log.log(&line);
            self.log.log(&report::reload_rejected(format!(
                "{setting} needs capability {}",
                caps::name(cap)
            )));
            return;
        }
        match start_blocks(&cfg, &self.modes, &mut self.log) {
            Ok(Some(hosts)) => {
                self.engine
                    .restore_blocked(clock::now_ms(), self.modes[0], hosts);
            }
            _ => self.engine.clear_blocked(),
        }
        if nft_size(&cfg) != nft_size(&self.cfg) {
            self.exec.set_nft(nft_size(&cfg));
            self.exec.set_spare(wants_shell(&cfg));
        }
        self.protected = netinfo::protected();
        if let Some(st) = &mut self.stealth {
            st.reload(&cfg, &stealth::capture_modes(&self.modes), &mut self.log);
        }
        for &m in self
            .modes
            .clone()
            .iter()
            .filter(|m| m.kind() == Kind::Classic)
        {
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
        self.cfg = cfg;
        self.log.log(&report::reloaded());
    }

    /// SIGUSR1 (sent by `portsentry blocked del|add|flush`): the nftables set is the record
    /// of who is blocked; re-read it so a host unblocked by hand is forgotten here too.
    /// A signal rather than a control socket: it carries no data to parse or authenticate,
    /// only root (or the daemon's user) can send it, and nothing new listens.
    fn resync_blocks(&mut self) {
        if self.cfg.block_method != BlockMethod::Nftables {
            return;
        }
        match nftables::list() {
            Ok(elems) => {
                let hosts = nftables::hosts(&elems);
                let n = self
                    .engine
                    .restore_blocked(clock::now_ms(), self.modes[0], hosts);
                self.log.log(&report::nft_blocks_reread(n));
            }
            Err(e) => self.log.log(&report::nft_table_failed("list", e)),
        }
    }

    fn shutdown(&mut self, code: i32) -> i32 {
        self.notify.stopping();
        self.flush_files();
        if self.cfg.block_method == BlockMethod::Nftables
            && self.cfg.block_flush_on_stop
            && let Err(e) = nftables::run_script(&crate::nft::delete_table_script())
        {
            self.log.log(&report::nft_table_failed("delete", e));
        }
        for l in report::shutting_down() {
            self.log.log(&l);
        }
        daemon::remove_pidfile(&self.cli.pidfile);
        code
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

/// The ports a classic mode binds.
fn classic_ports(cfg: &Config, m: Mode) -> Vec<u16> {
    match m.proto() {
        Proto::Tcp => cfg.tcp_ports.clone().unwrap_or_default(),
        Proto::Udp => cfg.udp_ports.clone().unwrap_or_default(),
    }
}

/// `BLOCKED_FILE.<mode>` (§7.1).
pub fn blocked_path(cfg: &Config, m: Mode) -> Option<PathBuf> {
    cfg.blocked_file.as_ref().map(|b| {
        let mut s = b.clone().into_os_string();
        s.push(".");
        s.push(m.as_str());
        PathBuf::from(s)
    })
}

fn truncate_blocked(cfg: &Config, modes: &[Mode], log: &mut Logger) -> Result<(), String> {
    for &m in modes {
        if let Some(p) = blocked_path(cfg, m)
            && files::truncate(&p).is_err()
        {
            let msg = report::cannot_delete_blocked_file(&p);
            log.log(&msg);
            return Err(msg);
        }
    }
    Ok(())
}

/// Bind each port (logging 1.2's lines); a port that fails is logged and skipped.
fn bind_ports(m: Mode, ports: &[u16], log: &mut Logger) -> Vec<Listener> {
    let mut out = Vec::new();
    for &p in ports {
        log.log(&report::going_into_listen_mode(m.proto(), p));
        match listen::bind_port(m, p) {
            Ok(b) => {
                if let Some(e) = b.v6_error {
                    log.log(&report::could_not_bind_family(
                        m.proto(),
                        p,
                        report::Family::Ipv6,
                        e,
                    ));
                }
                out.extend(b.listeners);
            }
            Err(BindError::InUse(_)) | Err(BindError::Other(_)) => {
                log.log(&report::could_not_bind(m.proto(), p));
            }
        }
    }
    out
}

/// BLOCK_SET_SIZE when the nftables path is on.
/// Commands are configured: keep a spare shell ready (see `exec`).
fn wants_shell(cfg: &Config) -> bool {
    cfg.kill_route.is_some() || cfg.kill_run_cmd.is_some() || cfg.kill_route_undo.is_some()
}

fn nft_size(cfg: &Config) -> Option<u32> {
    (cfg.block_method == BlockMethod::Nftables).then_some(cfg.block_set_size)
}

/// Start-up and reload: the command method clears the blocked files as 1.2 does (§7.1). The
/// nftables method creates or re-uses the table, and returns the hosts still in its sets
/// (their blocks survived us), keeping their lines in the blocked files.
fn start_blocks(
    cfg: &Config,
    modes: &[Mode],
    log: &mut Logger,
) -> Result<Option<Vec<nftables::Kept>>, String> {
    if cfg.block_method != BlockMethod::Nftables {
        return truncate_blocked(cfg, modes, log).map(|_| None);
    }
    let fail = |log: &mut Logger, what: &str, e: nftables::NftError| {
        let line = report::nft_table_failed(what, e);
        log.log(&line);
        line.trim_start_matches("adminalert: ERROR: ").to_string()
    };
    nftables::setup(cfg.block_set_size).map_err(|e| fail(log, "set up", e))?;
    let elems = nftables::list().map_err(|e| fail(log, "list", e))?;
    let hosts = nftables::hosts(&elems);
    let keep: std::collections::HashSet<IpAddr> = hosts.iter().map(|h| h.0).collect();
    for &m in modes {
        if let Some(p) = blocked_path(cfg, m)
            && nftables::keep_blocked_lines(&p, &keep).is_err()
        {
            let msg = report::cannot_delete_blocked_file(&p);
            log.log(&msg);
            return Err(msg);
        }
    }
    Ok(Some(hosts))
}
