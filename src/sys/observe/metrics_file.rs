//! METRICS_FILE: the Prometheus text file, replaced atomically every [`INTERVAL_MS`] (STYLE
//! §18) by `sys::atomic`: written to a temporary `.NAME.PID.N.tmp` beside it (a name the node
//! exporter's textfile collector ignores: it reads only `*.prom`), flushed to disk, renamed
//! over the old one, and the directory synced. A reader sees the old file or the new one,
//! never half of one.
//!
//! The loop asks [`MetricsFile::due`] each turn and, when it is, renders and calls
//! [`MetricsFile::write`], which returns a line to log on the first failure and on recovery
//! only (a missing directory must not log every five seconds).

use std::path::{Path, PathBuf};

use crate::observe::report;

/// How often the file is rewritten.
pub const INTERVAL_MS: u64 = 5_000;

/// METRICS_FILE of a daemon: where, when next, whether failing.
pub struct MetricsFile {
    path: PathBuf,
    next_ms: u64,
    failing: bool,
}

impl MetricsFile {
    /// Writes `path`, the first time at the first turn.
    pub fn new(path: &Path) -> MetricsFile {
        MetricsFile {
            path: path.to_path_buf(),
            next_ms: 0,
            failing: false,
        }
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Time for the next write (the first turn writes at once).
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_ms
    }

    /// Replaces the file with `text`. Returns a log line on the first failure and on the
    /// first success after failures.
    pub fn write(&mut self, now_ms: u64, text: &str) -> Option<String> {
        self.next_ms = now_ms + INTERVAL_MS;
        match crate::sys::atomic::write(&self.path, text.as_bytes(), 0o644) {
            Ok(()) if self.failing => {
                self.failing = false;
                Some(report::metrics_recovered(&self.path))
            }
            Ok(()) => None,
            Err(e) if !self.failing => {
                self.failing = true;
                Some(report::metrics_failed(&self.path, e))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("portsentry.prom");
        let mut m = MetricsFile::new(&p);
        assert!(m.due(0));
        assert_eq!(m.write(0, "a 1\n"), None);
        assert!(!m.due(INTERVAL_MS - 1) && m.due(INTERVAL_MS));
        assert_eq!(m.write(INTERVAL_MS, "a 2\n"), None);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("portsentry.prom")]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_failure_is_logged_once_and_the_recovery_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("node-exporter");
        let p = sub.join("portsentry.prom");
        let mut m = MetricsFile::new(&p);
        let first = m.write(0, "x 1\n").expect("logged");
        assert!(
            first.starts_with("adminalert: ERROR: cannot write metrics file "),
            "{first}"
        );
        assert_eq!(m.write(5_000, "x 1\n"), None, "not again");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            m.write(10_000, "x 1\n"),
            Some(report::metrics_recovered(&p))
        );
        assert_eq!(m.write(15_000, "x 1\n"), None);
    }
}
