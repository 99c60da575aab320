//! Start-up, in the order it happens: `--check`, or root check, configuration, the
//! capabilities the modes need, fork (the parent waits on the readiness pipe), signals, pid
//! file check, the modes' locks (`modelock`), blocks (blocked files, or the nftables table),
//! the classic modes' sockets, the capture of the stealth and advanced modes,
//! KEEP_CAPABILITIES, pid file, ready. Every
//! failure is logged (1.2's line where it has one) and returned as a typed [`StartError`],
//! whose text the parent prints on stderr.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::caps;
use crate::config::cli::Cli;
use crate::config::mode::{Kind, Mode, Proto};
use crate::config::{self, BlockMethod, Config, Diagnostic, Severity};
use crate::engine::{Engine, Limits};
use crate::observe::report;

use crate::sys::block::exec::Executor;
use crate::sys::block::files;
use crate::sys::block::nftables::{self, NftError};
use crate::sys::capture::listen::{self, BindError, Listener};
use crate::sys::capture::stealth::{self, Stealth};
use crate::sys::config::ignore_file::IgnoreFile;
use crate::sys::daemon::event_loop::Daemon;
use crate::sys::daemon::fork::{self, Forked, Ready};
use crate::sys::daemon::notify::Notifier;
use crate::sys::fleet::{self, Fleet};
use crate::sys::observe::Observer;
use crate::sys::observe::log::Logger;
use crate::sys::{clock, daemon::modelock, engine::resolve};

use crate::sys::daemon::{EXIT_FAIL, EXIT_OK};

/// Why the daemon could not start. Its text is the reason printed on stderr (through the
/// readiness pipe when the daemon forked); the daemon has logged it already.
#[derive(Debug)]
pub enum StartError {
    /// Signal handling (signalfd) could not be set up.
    Signals(nix::Error),
    /// Another portsentry holds the pid file.
    AlreadyRunning(fork::Running),
    /// Another portsentry runs one of the modes (its lock, see `modelock`).
    ModeTaken(modelock::LockError),
    /// The process's capabilities could not be read.
    ReadCapabilities(io::Error),
    /// A configured mode or setting needs a capability the process lacks.
    CapabilityRequired {
        /// The capability number.
        cap: u8,
        /// What needs it (`mode -stcp`, `BLOCK_METHOD="nftables"`).
        setting: String,
    },
    /// KEEP_CAPABILITIES could not be applied.
    DropCapabilities(io::Error),
    /// The pid file could not be written.
    WritePidfile {
        /// The pid file.
        path: PathBuf,
        /// What went wrong.
        err: io::Error,
    },
    /// The nftables table could not be set up or listed.
    Nftables {
        /// `set up` or `list`.
        what: &'static str,
        /// What nft or the kernel said.
        err: NftError,
    },
    /// A blocked file could not be emptied (1.2's line).
    BlockedFile {
        /// The blocked file.
        path: PathBuf,
        /// What went wrong.
        err: io::Error,
    },
    /// No port of a classic mode could be bound (1.2's line).
    NoPortBound(Proto),
    /// The stealth or advanced modes could not start.
    Capture(stealth::StartError),
    /// The fleet (CrowdSec LAPI link) could not start: its spool or its thread.
    Fleet(fleet::StartError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Signals(e) => write!(f, "cannot set up signal handling: {e}"),
            StartError::AlreadyRunning(r) => write!(f, "{r}"),
            StartError::ModeTaken(e) => write!(f, "{e}"),
            StartError::ReadCapabilities(e) => {
                write!(f, "cannot read this process's capabilities: {e}")
            }
            StartError::CapabilityRequired { cap, setting } => write!(
                f,
                "{setting} needs capability {}, which this process does not have (a container without it, or CapabilityBoundingSet=): cannot start.",
                caps::name(*cap)
            ),
            StartError::DropCapabilities(e) => {
                write!(f, "cannot drop capabilities (KEEP_CAPABILITIES): {e}")
            }
            StartError::WritePidfile { path, err } => {
                write!(f, "cannot write pid file {}: {err}", path.display())
            }
            StartError::Nftables { what, err } => f.write_str(&report::nft_table_reason(what, err)),
            StartError::BlockedFile { path, .. } => {
                f.write_str(&report::cannot_delete_blocked_file(path))
            }
            StartError::NoPortBound(proto) => f.write_str(&report::could_not_bind_any(*proto)),
            StartError::Capture(e) => write!(f, "{e}"),
            StartError::Fleet(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

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
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return EXIT_FAIL;
            }
        };
        match crate::config::defaults::selected_modes(&file, text.as_deref()) {
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
                let (list, warnings) = crate::config::ignore::parse(&b);
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
        match crate::sys::config::caps::permitted() {
            Ok(have) => {
                for f in caps::assess(&modes, cfg, have) {
                    match f {
                        caps::Finding::Fatal { cap, setting } => {
                            eprintln!("error: {}", StartError::CapabilityRequired { cap, setting });
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
            Err(e) => eprintln!("warning: {}", StartError::ReadCapabilities(e)),
        }
    }
    if let Some(cfg) = &cfg {
        // The fleet's files (credentials, bouncer key, CA): read and checked, never sent.
        let (lines, ok) = fleet::describe(cfg);
        for l in &lines {
            if ok && !l.starts_with("warning: ") {
                println!("{l}");
            } else {
                eprintln!("{l}");
            }
        }
        if !ok {
            status = EXIT_FAIL;
        }
    }
    if status == EXIT_OK {
        println!("{}: configuration OK", cli.config.display());
    }
    status
}

/// The first capability a configured mode or setting cannot do without, if the process
/// lacks one (a reload to such a configuration is refused the same way).
pub fn required_capability(modes: &[Mode], cfg: &Config) -> Option<StartError> {
    let have = crate::sys::config::caps::permitted().ok()?;
    caps::assess(modes, cfg, have)
        .into_iter()
        .find_map(|f| match f {
            caps::Finding::Fatal { cap, setting } => {
                Some(StartError::CapabilityRequired { cap, setting })
            }
            caps::Finding::Missing { .. } => None,
        })
}

/// Name each missing capability once (syslog, and stderr while it is still the terminal);
/// Err when a configured mode or BLOCK_METHOD cannot work without one. Ok carries the part
/// of KEEP_CAPABILITIES to keep (None: keep everything, `all`).
fn assess_capabilities(
    modes: &[Mode],
    cfg: &Config,
    log: &mut Logger,
) -> Result<Option<Vec<u8>>, StartError> {
    let have = crate::sys::config::caps::permitted().map_err(|e| {
        let err = StartError::ReadCapabilities(e);
        log.log(&report::error(&err));
        err
    })?;
    let mut fatal = None;
    for f in caps::assess(modes, cfg, have) {
        match f {
            caps::Finding::Fatal { cap, setting } => {
                let err = StartError::CapabilityRequired { cap, setting };
                log.log(&report::error(&err));
                fatal.get_or_insert(err);
            }
            caps::Finding::Missing { cap, disables } => {
                log.log(&report::capability_missing(&caps::name(cap), &disables));
            }
        }
    }
    match fatal {
        Some(err) => Err(err),
        None => Ok(cfg.keep_capabilities.as_ref().map(|k| have.intersect(k))),
    }
}

/// The daemon's main: returns the process exit status.
pub fn main(cli: Cli, syslog_socket: PathBuf) -> i32 {
    if cli.check {
        return check(&cli);
    }
    fork::cloexec_inherited();
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
    // The fleet's files are part of the configuration: a bad one stops start-up the same way.
    let fleet_settings = match fleet::load(&cfg) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                log.log(&report::error(e));
            }
            fail(&mut log, &report::config_missing_mandatory_option());
            return EXIT_FAIL;
        }
    };
    for (url, from) in fleet_settings.iter().flat_map(fleet::Settings::plain_http) {
        log.log(&report::fleet_plain_http(&url, &from));
    }
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
        match fork::daemonize() {
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
    match start(cfg, cli, modes, keep, fleet_settings, &mut log) {
        Ok(parts) => {
            if let Some(r) = ready {
                r.ok();
            }
            let mut d = Daemon::new(parts, log);
            let status = d.status_line();
            d.notify.ready(&status);
            d.run()
        }
        Err(reason) => {
            log.log(&report::could_not_enter_mode());
            for l in report::shutting_down() {
                log.log(&l);
            }
            if let Some(r) = ready {
                Ready::fail(r, &reason.to_string());
            } else {
                eprintln!("portsentry: {reason}");
            }
            EXIT_FAIL
        }
    }
}

/// What start-up made, for the event loop.
pub struct Started {
    pub(in crate::sys) cli: Cli,
    pub(in crate::sys) modes: Vec<Mode>,
    pub(in crate::sys) cfg: Config,
    pub(in crate::sys) engine: Engine,
    pub(in crate::sys) ignore: IgnoreFile,
    pub(in crate::sys) exec: Executor,
    pub(in crate::sys) listeners: Vec<Listener>,
    pub(in crate::sys) signals: SignalFd,
    pub(in crate::sys) stealth: Option<Stealth>,
    pub(in crate::sys) notify: Notifier,
    /// Hosts still in the nftables sets from before (BLOCK_METHOD="nftables").
    pub(in crate::sys) restored: Option<Vec<nftables::Kept>>,
    /// The CrowdSec LAPI link, when a fleet key is set.
    pub(in crate::sys) fleet: Option<Fleet>,
}

/// Signals, pid file, blocks, sockets, capture, capabilities, pid file written.
fn start(
    cfg: Config,
    cli: Cli,
    modes: Vec<Mode>,
    keep: Option<Vec<u8>>,
    fleet_settings: Option<fleet::Settings>,
    log: &mut Logger,
) -> Result<Started, StartError> {
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
    let signals = mask
        .thread_block()
        .and_then(|_| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK));
    // The capture ring takes an RCU grace period to set up (see `capture::Ring`): start it
    // now, on a thread (created after the signals are blocked, so it never takes one, and
    // with a small stack: it makes a few system calls). The capture opens on its doorbell
    // without waiting; the loop attaches the ring when the thread is done.
    let ring = (!stealth::capture_modes(&modes).is_empty())
        .then(|| {
            std::thread::Builder::new()
                .name("ring".into())
                .stack_size(64 * 1024)
                .spawn(crate::sys::capture::ring::Ring::prepare)
                .ok()
        })
        .flatten();
    let signals = signals.map_err(StartError::Signals)?;
    fork::check_pidfile(&cli.pidfile).map_err(|r| {
        let err = StartError::AlreadyRunning(r);
        log.log(&report::error(&err));
        err
    })?;
    // One daemon per mode (two units must never run one mode): held until the process ends.
    modelock::take(&cli.pidfile, &modes)
        .map_err(|e| {
            let err = StartError::ModeTaken(e);
            log.log(&report::error(&err));
            err
        })?
        .hold_until_exit();
    let restored = start_blocks(&cfg, &modes, log)?;
    let mut listeners = Vec::new();
    for &m in modes.iter().filter(|m| m.kind() == Kind::Classic) {
        let got = bind_ports(m, &classic_ports(&cfg, m), log);
        if got.is_empty() {
            let err = StartError::NoPortBound(m.proto());
            log.log(&err.to_string());
            return Err(err);
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
        Some(Stealth::start(&cfg, &capture_modes, &opts, log, ring).map_err(StartError::Capture)?)
    };
    if let Some(keep) = &keep {
        crate::sys::config::caps::restrict(keep).map_err(|e| {
            let err = StartError::DropCapabilities(e);
            log.log(&report::error(&err));
            err
        })?;
    }
    // After KEEP_CAPABILITIES: capabilities are per thread, and the fleet thread (with the
    // `nft` it runs for pulled bans) keeps those the loop has when it is made.
    let fleet = fleet_settings.map(Fleet::start).transpose().map_err(|e| {
        let err = StartError::Fleet(e);
        log.log(&report::error(&err));
        err
    })?;
    fork::write_pidfile(&cli.pidfile).map_err(|err| {
        let err = StartError::WritePidfile {
            path: cli.pidfile.clone(),
            err,
        };
        log.log(&report::error(&err));
        err
    })?;
    let ignore_path = cfg.ignore_file.clone().unwrap_or_default();
    let mut exec = Executor::new(cfg.hosts_deny_file.clone());
    exec.set_nft(nft_size(&cfg));
    exec.set_spare(wants_shell(&cfg));
    Ok(Started {
        cli,
        modes,
        cfg,
        engine: Engine::new(Limits::default()),
        ignore: IgnoreFile::new(&ignore_path),
        exec,
        listeners,
        signals,
        stealth,
        notify: Notifier::from_env(clock::now_ms()),
        restored,
        fleet,
    })
}

impl Daemon {
    /// The event loop's state from what start-up made: reads the ignore file, takes over the
    /// blocks still in the nftables sets, and says "now active".
    fn new(s: Started, mut log: Logger) -> Daemon {
        let now = clock::now_ms();
        // The status socket beside the pid file (ours now), METRICS_FILE, EVENTS_FILE; what
        // cannot be set up is logged and the daemon runs on without it.
        let id = crate::observe::stats::Identity {
            pid: std::process::id(),
            modes: s.modes.clone(),
            config: s.cli.config.display().to_string(),
            watched_ports: Vec::new(),
        };
        let (observer, problems) =
            Observer::start(&s.cfg, &s.cli.pidfile, s.cli.foreground, id, clock::epoch());
        for l in problems {
            log.log(&l);
        }
        let mut d = Daemon {
            cli: s.cli,
            modes: s.modes,
            cfg: s.cfg,
            log,
            engine: s.engine,
            ignore: s.ignore,
            exec: s.exec,
            listeners: s.listeners,
            signals: s.signals,
            last_protected: now,
            ring_rest_until: 0,
            stealth: s.stealth,
            protected: crate::config::protect::Protected::default(),
            resolver: resolve::Resolver::default(),
            appends: files::Appends::default(),
            notify: s.notify,
            last_status: now,
            last_nft_fill: 0,
            observer,
            fleet: s.fleet,
            hits: Vec::new(),
            batch: Vec::new(),
        };
        d.refresh_protected();
        d.observer.id.watched_ports = d
            .watched()
            .into_iter()
            .map(|(m, n)| (m, n as u64))
            .collect();
        d.ignore.refresh(now, &mut d.log);
        if let Some(hosts) = s.restored {
            // Nothing is lifted at start-up (nothing was remembered before).
            let (n, _) =
                d.engine
                    .restore_blocked(now, d.modes[0], d.cfg.kill_hosts_deny.as_deref(), hosts);
            d.log.log(&report::nft_ready(n));
        }
        d.log.log(&report::now_active());
        d
    }
}

/// The ports a classic mode binds.
pub(in crate::sys) fn classic_ports(cfg: &Config, m: Mode) -> Vec<u16> {
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

/// Bind each port (logging 1.2's lines); a port that fails is logged and skipped.
pub(in crate::sys) fn bind_ports(m: Mode, ports: &[u16], log: &mut Logger) -> Vec<Listener> {
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

/// Commands are configured: keep a spare shell ready (see `exec`).
pub(in crate::sys) fn wants_shell(cfg: &Config) -> bool {
    cfg.kill_route.is_some() || cfg.kill_run_cmd.is_some() || cfg.kill_route_undo.is_some()
}

/// BLOCK_SET_SIZE when the nftables path is on.
pub(in crate::sys) fn nft_size(cfg: &Config) -> Option<u32> {
    (cfg.block_method == BlockMethod::Nftables).then_some(cfg.block_set_size)
}

/// Start-up and reload: the command method clears the blocked files as 1.2 does (§7.1). The
/// nftables method creates or re-uses the table, and returns the hosts still in its sets
/// (their blocks survived us), keeping their lines in the blocked files.
pub(in crate::sys) fn start_blocks(
    cfg: &Config,
    modes: &[Mode],
    log: &mut Logger,
) -> Result<Option<Vec<nftables::Kept>>, StartError> {
    let blocked_file = |path: PathBuf, err: io::Error, log: &mut Logger| {
        let err = StartError::BlockedFile { path, err };
        log.log(&err.to_string());
        err
    };
    if cfg.block_method != BlockMethod::Nftables {
        for &m in modes {
            if let Some(p) = blocked_path(cfg, m) {
                files::truncate(&p).map_err(|e| blocked_file(p, e, log))?;
            }
        }
        return Ok(None);
    }
    let nft = |what: &'static str, err: NftError, log: &mut Logger| {
        let err = StartError::Nftables { what, err };
        log.log(&report::error(&err));
        err
    };
    nftables::setup(cfg.block_set_size).map_err(|e| nft("set up", e, log))?;
    let elems = nftables::list().map_err(|e| nft("list", e, log))?;
    let hosts = nftables::hosts(&elems);
    let keep: std::collections::HashSet<std::net::IpAddr> = hosts.iter().map(|h| h.0).collect();
    for &m in modes {
        if let Some(p) = blocked_path(cfg, m) {
            nftables::keep_blocked_lines(&p, &keep).map_err(|e| blocked_file(p, e, log))?;
        }
    }
    Ok(Some(hosts))
}
