//! `portsentry status` and `portsentry report`: their command lines (each its own clap
//! parser, chosen by `main` from argv[1], so the daemon's 1.2 command line is untouched),
//! the status socket's path, and the "not running" status built from the history file. Pure;
//! the shell side is `sys::observe::insight` (the writers' log lines are `report`'s).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use jiff::tz::TimeZone;

use crate::config::cli::DEFAULT_CONFIG;
use crate::observe::stats::snapshot::{HistoryBrief, Snapshot};
use crate::observe::stats::{Top, TopLists};
use crate::observe::summary::{Files, Summary};
use crate::observe::timefmt;

/// Exit codes of `status`, as the init script's (LSB): 0 running, 1 dead but the pid file
/// remains, 3 not running; 4 the status could not be read (permission, no answer).
pub const STATUS_RUNNING: i32 = 0;
/// Exit code: the pid file names a process that is gone.
pub const STATUS_DEAD_PIDFILE: i32 = 1;
/// Exit code: no daemon runs.
pub const STATUS_NOT_RUNNING: i32 = 3;
/// Exit code: the status could not be read.
pub const STATUS_UNKNOWN: i32 = 4;

/// Default pid file (and so status socket) of the daemon.
pub const DEFAULT_PIDFILE: &str = "/run/portsentry.pid";

/// Show whether portsentry runs, its counters, blocks and top sources and ports.
#[derive(Debug, Parser, Clone, PartialEq, Eq)]
#[command(name = "portsentry status", bin_name = "portsentry status", version)]
pub struct StatusArgs {
    /// Print JSON (for scripts) instead of text
    #[arg(long)]
    pub json: bool,
    /// Configuration file (its HISTORY_FILE is summarised when the daemon is not running)
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The daemon's pid file; its status socket is beside it (FILE with .sock for .pid)
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PIDFILE)]
    pub pidfile: PathBuf,
}

/// Summarise the history (and events) file over a period, as text, JSON or an HTML page.
#[derive(Debug, Parser, Clone, PartialEq, Eq)]
#[command(
    name = "portsentry report",
    bin_name = "portsentry report",
    version,
    after_help = "TIME: RFC 3339 (2026-11-30T14:00:00+01:00), a local date (2026-11-30) or \
                  date and time (2026-11-30 14:00), @EPOCH, an age (24h, 7d, 90m, 2w), now, \
                  today, yesterday."
)]
pub struct ReportArgs {
    /// Start of the period (default: the first record)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End of the period, not included (default: now)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page with charts to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Configuration file: HISTORY_FILE and EVENTS_FILE are read from it
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// argv selects `portsentry status`.
pub fn status_selected(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "status")
}

/// argv selects `portsentry report`.
pub fn report_selected(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "report")
}

/// The status socket beside a pid file: `/run/portsentry.pid` → `/run/portsentry.sock`
/// (any other name gets `.sock` appended).
pub fn socket_path(pidfile: &Path) -> PathBuf {
    if pidfile.extension().is_some_and(|e| e == "pid") {
        pidfile.with_extension("sock")
    } else {
        let mut s = pidfile.as_os_str().to_os_string();
        s.push(".sock");
        PathBuf::from(s)
    }
}

/// The period of a report: `(since, until)` in epoch seconds.
pub fn period(a: &ReportArgs, now: i64, tz: &TimeZone) -> Result<(Option<i64>, i64), String> {
    let since = a
        .since
        .as_deref()
        .map(|s| timefmt::parse_when(s, now, tz).map_err(|e| format!("--since: {e}")))
        .transpose()?;
    let until = match a.until.as_deref() {
        Some(u) => timefmt::parse_when(u, now, tz).map_err(|e| format!("--until: {e}"))?,
        // Now, and the second it is in: a record written this second is included.
        None => now + 1,
    };
    if let Some(s) = since
        && s >= until
    {
        return Err(format!(
            "the period is empty: --since {} is not before --until {}",
            timefmt::rfc3339(s, tz),
            timefmt::rfc3339(until, tz)
        ));
    }
    Ok((since, until))
}

/// The history file read for a status when the daemon is not running: the last hour's and
/// the last day's summaries, fed line by line.
pub struct HistoryStatus {
    hour: Summary,
    day: Summary,
    all: Summary,
}

impl HistoryStatus {
    /// Summaries of the last hour, the last day and all of it, as of `now`.
    pub fn new(now: i64) -> HistoryStatus {
        HistoryStatus {
            hour: Summary::new(Some(now - 3600), now + 1),
            day: Summary::new(Some(now - 86_400), now + 1),
            all: Summary::new(None, i64::MAX),
        }
    }

    /// One history line (`n`: its number in `file`).
    pub fn line(&mut self, file: &str, n: u64, line: &str) {
        self.hour.history(file, n, line);
        self.day.history(file, n, line);
        self.all.history(file, n, line);
    }

    /// A "not running" snapshot: `note` says why, `error` if the history could not be read.
    pub fn snapshot(
        &self,
        now: i64,
        file: Option<&Path>,
        error: Option<String>,
        note: String,
        tz: &TimeZone,
    ) -> Snapshot {
        let hour = self.hour.finish(Files::default(), tz);
        let day = self.day.finish(Files::default(), tz);
        let cut = |v: Vec<Top>| {
            v.into_iter()
                .take(crate::observe::stats::TOP_N)
                .collect::<Vec<_>>()
        };
        Snapshot {
            running: false,
            version: env!("CARGO_PKG_VERSION").to_string(),
            generated: timefmt::rfc3339(now, tz),
            tops_from: "history".to_string(),
            top_sources: cut(hour.top_sources),
            top_prefixes: cut(hour.top_prefixes),
            top_ports: cut(hour.top_ports),
            last_day: TopLists {
                top_sources: cut(day.top_sources),
                top_prefixes: cut(day.top_prefixes),
                top_ports: cut(day.top_ports),
            },
            history: file.map(|f| HistoryBrief {
                file: f.display().to_string(),
                records: self.all.records(),
                records_last_hour: self.hour.records(),
                records_last_day: self.day.records(),
                first: self.all.first().map(|t| timefmt::rfc3339(t, tz)),
                last: self.all.last().map(|t| timefmt::rfc3339(t, tz)),
                malformed: self.all.unreadable(),
                error,
            }),
            note: Some(note),
            ..Snapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(args: &[&str]) -> Result<StatusArgs, clap::Error> {
        StatusArgs::try_parse_from(std::iter::once("status").chain(args.iter().copied()))
    }

    fn report(args: &[&str]) -> Result<ReportArgs, clap::Error> {
        ReportArgs::try_parse_from(std::iter::once("report").chain(args.iter().copied()))
    }

    #[test]
    fn the_commands_are_chosen_by_the_first_argument_only() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(status_selected(&a(&["portsentry", "status"])));
        assert!(report_selected(&a(&["portsentry", "report", "--json"])));
        assert!(!status_selected(&a(&["portsentry", "-tcp"])));
        assert!(!report_selected(&a(&["portsentry", "-c", "report"])));
    }

    #[test]
    fn status_options() {
        let s = status(&[]).unwrap();
        assert!(!s.json);
        assert_eq!(s.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(s.pidfile, PathBuf::from(DEFAULT_PIDFILE));
        let s = status(&["--json", "-c", "/x.conf", "--pidfile", "/run/ps2.pid"]).unwrap();
        assert!(s.json);
        assert_eq!(s.config, PathBuf::from("/x.conf"));
        assert!(status(&["--bogus"]).is_err());
        assert!(status(&["-tcp"]).is_err());
    }

    #[test]
    fn report_options_and_period() {
        let tz = TimeZone::UTC;
        let now = 1_796_043_600;
        let r = report(&[
            "--since",
            "24h",
            "--until",
            "2026-11-30T13:00:00Z",
            "--json",
        ])
        .unwrap();
        assert_eq!(period(&r, now, &tz), Ok((Some(now - 86_400), now)));
        let r = report(&["--html", "/tmp/r.html"]).unwrap();
        assert_eq!(r.html, Some(PathBuf::from("/tmp/r.html")));
        assert_eq!(period(&r, now, &tz), Ok((None, now + 1)));
        let r = report(&["--since", "1h", "--until", "2h"]).unwrap();
        assert!(
            period(&r, now, &tz)
                .unwrap_err()
                .contains("the period is empty")
        );
        let r = report(&["--since", "last tuesday"]).unwrap();
        assert!(
            period(&r, now, &tz)
                .unwrap_err()
                .starts_with("--since: cannot read")
        );
        assert!(report(&["--since"]).is_err());
    }

    #[test]
    fn the_socket_sits_beside_the_pid_file() {
        assert_eq!(
            socket_path(Path::new("/run/portsentry.pid")),
            PathBuf::from("/run/portsentry.sock")
        );
        assert_eq!(
            socket_path(Path::new("/tmp/x/ps")),
            PathBuf::from("/tmp/x/ps.sock")
        );
    }

    #[test]
    fn a_history_status_counts_the_windows() {
        use crate::config::mode::Proto;
        use crate::observe::report::{LocalTime, history_line};
        let now = 1_796_043_600;
        let t = LocalTime {
            year: 2026,
            month: 11,
            day: 30,
            hour: 0,
            minute: 0,
            second: 0,
        };
        let mut h = HistoryStatus::new(now);
        for (i, (age, ip)) in [
            (10, "192.0.2.1"),
            (7200, "192.0.2.1"),
            (200_000, "192.0.2.2"),
        ]
        .iter()
        .enumerate()
        {
            let l = history_line(now - age, &t, "", ip.parse().unwrap(), 22, Proto::Tcp);
            h.line("h", i as u64 + 1, &l);
        }
        h.line("h", 4, "junk");
        let s = h.snapshot(
            now,
            Some(Path::new("/h")),
            None,
            "no pid file".into(),
            &TimeZone::UTC,
        );
        assert!(!s.running && s.counters.is_none() && s.pid.is_none());
        let b = s.history.unwrap();
        assert_eq!(
            (
                b.records,
                b.records_last_hour,
                b.records_last_day,
                b.malformed
            ),
            (3, 1, 2, 1)
        );
        assert_eq!(s.top_sources[0].value, "192.0.2.1");
        assert_eq!(s.top_sources[0].count, 1);
        assert_eq!(s.last_day.top_sources[0].count, 2);
        assert_eq!(s.tops_from, "history");
    }
}
