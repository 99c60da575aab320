//! Syslog output: ident `portsentry`, facility daemon, level notice, pid in the tag, as 1.2
//! (§8). Wraps the `syslog` crate, which never reconnects on its own: after a send error
//! (syslogd restarted, socket gone) the connection is rebuilt and the message sent again.
//! With `-f` every line is also written to stderr, unless stderr is systemd's journal
//! (`JOURNAL_STREAM`, as under the shipped unit), which already gets the syslog line: the
//! journal would show every line twice. A missing syslog socket is not fatal: the daemon
//! keeps working and retries on the next message.

use std::io::Write;
use std::path::PathBuf;

use syslog::{Facility, Formatter3164, Logger as SysLogger, LoggerBackend};

/// The syslog socket when `--syslog-socket` is not given.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// Writes log lines to syslog (and stderr with -f).
pub struct Logger {
    socket: PathBuf,
    stderr: bool,
    conn: Option<SysLogger<LoggerBackend, Formatter3164>>,
}

impl Logger {
    /// A logger for `socket`; with `stderr`, lines are also written there (unless stderr is the journal).
    pub fn new(socket: PathBuf, stderr: bool) -> Logger {
        Logger {
            socket,
            stderr: stderr && !stderr_is_journal(),
            conn: None,
        }
    }

    /// Stop (or start) writing lines to stderr, e.g. once daemonized.
    pub fn set_stderr(&mut self, on: bool) {
        self.stderr = on;
    }

    /// Forget the connection, e.g. after fork so the tag carries the new pid.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn connect(&self) -> Option<SysLogger<LoggerBackend, Formatter3164>> {
        let f = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: "portsentry".into(),
            pid: std::process::id(),
        };
        syslog::unix_custom(f, &self.socket).ok()
    }

    /// Log one line at daemon.notice (1.2 logs everything at notice).
    pub fn log(&mut self, msg: &str) {
        if self.stderr {
            let _ = writeln!(std::io::stderr(), "{msg}");
        }
        for _ in 0..2 {
            if self.conn.is_none() {
                self.conn = self.connect();
            }
            match self.conn.as_mut() {
                None => return,
                Some(c) => {
                    if c.notice(msg).is_ok() {
                        return;
                    }
                    self.conn = None;
                }
            }
        }
    }
}

/// Is stderr the journal? systemd sets `JOURNAL_STREAM=<device>:<inode>` of the stream it
/// connects stdout/stderr to (systemd.exec(5)); a redirect since then changes the pair.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf).expect("a syslog datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_daemon_notice_with_ident_and_reconnects_after_syslogd_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut l = Logger::new(path.clone(), false);
        l.log("adminalert: PortSentry is now active and listening.");
        let got = recv(&rx);
        // <29> = daemon(3)*8 + notice(5)
        assert!(got.starts_with("<29>"), "{got}");
        assert!(
            got.ends_with(&format!(
                "portsentry[{}]: adminalert: PortSentry is now active and listening.",
                std::process::id()
            )),
            "{got}"
        );
        // syslogd restarts: its socket is removed and created anew.
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        l.log("attackalert: second");
        assert!(recv(&rx).ends_with("attackalert: second"));
    }

    #[test]
    fn missing_socket_is_not_fatal() {
        let mut l = Logger::new(PathBuf::from("/nonexistent/portsentry-test/log"), false);
        l.log("nothing listens");
    }
}
