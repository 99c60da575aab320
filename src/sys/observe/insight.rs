//! Carries out `portsentry status` and `portsentry report` (parsed by `crate::observe::insight`): reads
//! the status socket, the configuration, the history and events files (line by line, so a
//! file of any size costs the same memory), the clock and the local time zone; prints.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use jiff::tz::TimeZone;

use crate::config::{self, Config};
use crate::observe::insight::{
    self, HistoryStatus, ReportArgs, STATUS_DEAD_PIDFILE, STATUS_NOT_RUNNING, STATUS_RUNNING,
    STATUS_UNKNOWN, StatusArgs,
};
use crate::observe::stats::render;
use crate::observe::stats::snapshot::Snapshot;
use crate::observe::summary::{Files, Summary, html, text};

use crate::sys::observe::status_sock::{self, FetchError};
use crate::sys::{atomic, clock};

/// How long `status` waits for the daemon's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// The local time zone (TZ, else /etc/localtime); UTC if neither can be read.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// Reads `path` line by line (invalid UTF-8 is replaced, not fatal), calling `f(n, line)`
/// with 1-based line numbers.
fn each_line(path: &Path, mut f: impl FnMut(u64, &str)) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut buf = Vec::with_capacity(256);
    let mut n = 0u64;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        f(n, &String::from_utf8_lossy(&buf));
    }
}

/// The configuration, or a message naming the file.
fn read_config(path: &Path) -> Result<Config, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config::parse(&bytes, path).config)
}

/// `portsentry status`: returns the exit status.
pub fn status_main(args: Vec<OsString>) -> i32 {
    let a = match StatusArgs::try_parse_from(args.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let tz = local_zone();
    let sock = insight::socket_path(&a.pidfile);
    let (snap, code) = match status_sock::fetch(&sock, FETCH_TIMEOUT) {
        Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) => (s, STATUS_RUNNING),
            Err(e) => {
                eprintln!(
                    "portsentry status: the daemon's answer on {} is not a status: {e}",
                    sock.display()
                );
                return STATUS_UNKNOWN;
            }
        },
        Err(e @ (FetchError::Denied(_) | FetchError::NoAnswer(_))) => {
            eprintln!("portsentry status: {}: {e}", sock.display());
            return STATUS_UNKNOWN;
        }
        Err(FetchError::NotListening(e)) => not_running(&a, &sock, e, &tz),
    };
    let out = if a.json {
        render::json(&snap)
    } else {
        render::text(&snap)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    code
}

/// No daemon answered: say why (from the pid file) and summarise the history file.
fn not_running(a: &StatusArgs, sock: &Path, err: std::io::Error, tz: &TimeZone) -> (Snapshot, i32) {
    let pid: Option<i32> = std::fs::read_to_string(&a.pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    let (note, code) = match (pid, alive) {
        (Some(p), true) => (
            format!(
                "pid {p} from {} runs, but nothing answers on {} ({err}): a daemon without a \
                 status socket, or one still starting",
                a.pidfile.display(),
                sock.display()
            ),
            STATUS_UNKNOWN,
        ),
        (Some(p), false) => (
            format!(
                "pid file {} names pid {p}, which is gone",
                a.pidfile.display()
            ),
            STATUS_DEAD_PIDFILE,
        ),
        (None, _) => (
            format!("no daemon answers on {}", sock.display()),
            STATUS_NOT_RUNNING,
        ),
    };
    let now = clock::epoch();
    let mut h = HistoryStatus::new(now);
    let (file, error) = match read_config(&a.config) {
        Err(e) => (None, Some(format!("cannot read the configuration: {e}"))),
        Ok(cfg) => match cfg.history_file {
            None => (
                None,
                Some(format!("{} sets no HISTORY_FILE", a.config.display())),
            ),
            Some(p) => {
                let name = p.display().to_string();
                let r = each_line(&p, |n, l| h.line(&name, n, l));
                (Some(p), r.err().map(|e| e.to_string()))
            }
        },
    };
    let mut s = h.snapshot(now, file.as_deref(), error.clone(), note, tz);
    if file.is_none()
        && let Some(e) = error
    {
        s.note = Some(format!("{}; {e}", s.note.unwrap_or_default()));
    }
    (s, code)
}

/// `portsentry report`: returns the exit status.
pub fn report_main(args: Vec<OsString>) -> i32 {
    let a = match ReportArgs::try_parse_from(args.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match report(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("portsentry report: {e}");
            1
        }
    }
}

fn report(a: &ReportArgs) -> Result<(), String> {
    let tz = local_zone();
    let now = clock::epoch();
    let (since, until) = insight::period(a, now, &tz)?;
    let cfg = read_config(&a.config)?;
    let history: PathBuf = cfg
        .history_file
        .clone()
        .ok_or_else(|| format!("{} sets no HISTORY_FILE", a.config.display()))?;
    let mut s = Summary::new(since, until);
    let name = history.display().to_string();
    each_line(&history, |n, l| s.history(&name, n, l))
        .map_err(|e| format!("{}: {e}", history.display()))?;
    let mut files = Files {
        history: Some(name),
        events: None,
    };
    if let Some(ev) = cfg.events_file.as_ref().filter(|p| p.as_os_str() != "-") {
        let ename = ev.display().to_string();
        match each_line(ev, |n, l| s.event(&ename, n, l)) {
            Ok(()) => files.events = Some(ename),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("portsentry report: note: events file {ename} does not exist (yet)");
            }
            Err(e) => return Err(format!("{ename}: {e}")),
        }
    }
    let r = s.finish(files, &tz);
    let out = if a.json {
        serde_json::to_string_pretty(&r).map_err(|e| e.to_string())? + "\n"
    } else {
        text::render(&r)
    };
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())?;
    if let Some(h) = &a.html {
        atomic::write(h, html::page(&r, &tz).as_bytes(), 0o644)
            .map_err(|e| format!("{}: {e}", h.display()))?;
        eprintln!("portsentry report: wrote {}", h.display());
    }
    Ok(())
}
