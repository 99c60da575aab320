//! EVENTS_FILE: appends the event lines of one loop turn with one `write` on an `O_APPEND`
//! descriptor (whole lines; STYLE §18), or writes them to standard output (`-` with `-f`).
//!
//! Log rotation: before writing, the path is checked (one `stat`); if the file is gone or is
//! another file (device and inode changed: logrotate renamed it and created a new one), it is
//! reopened, so the lines go to the new file and nothing needs a signal. SIGHUP reopens too
//! ([`EventsFile::reopen`]). A line written just before a rotation lands in the rotated file,
//! which is why the shipped logrotate file uses `delaycompress`.
//!
//! While the file cannot be written (disk full, directory gone), the turn's lines are dropped
//! and counted, so memory does not grow; the failure and the recovery are each logged once
//! with the number of lines lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use crate::observe::events::Target;
use crate::observe::report;

/// The events file (or standard output) of a daemon.
pub struct EventsFile {
    target: Target,
    file: Option<(File, u64, u64)>,
    buf: String,
    failing: bool,
    lost: u64,
}

impl EventsFile {
    /// Writes to `target`; opened at the first write.
    pub fn new(target: Target) -> EventsFile {
        EventsFile {
            target,
            file: None,
            buf: String::new(),
            failing: false,
            lost: 0,
        }
    }

    fn name(&self) -> String {
        match &self.target {
            Target::Stdout => "-".to_string(),
            Target::File(p) => p.display().to_string(),
        }
    }

    /// Queue one line (from `events::line`, ending in LF) for this turn's write.
    pub fn push(&mut self, line: &str) {
        self.buf.push_str(line);
    }

    /// Lines queued and not yet written.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// SIGHUP: close; the next write opens the path again.
    pub fn reopen(&mut self) {
        self.file = None;
    }

    /// Writes the queued lines. Returns a line to log on the first failure and on recovery.
    pub fn flush(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let n = self.buf.bytes().filter(|&b| b == b'\n').count() as u64;
        let text = std::mem::take(&mut self.buf);
        let r = match &self.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            Target::File(_) => self.write_file(text.as_bytes()),
        };
        match r {
            Ok(()) if self.failing => {
                self.failing = false;
                let lost = std::mem::take(&mut self.lost);
                Some(report::events_recovered(&self.name(), lost))
            }
            Ok(()) => None,
            Err(e) => {
                self.lost += n;
                self.file = None;
                if self.failing {
                    None
                } else {
                    self.failing = true;
                    Some(report::events_failed(&self.name(), e, self.lost))
                }
            }
        }
    }

    fn write_file(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Target::File(path) = &self.target else {
            return Ok(());
        };
        // Rotated away (gone, or another inode at the path): reopen.
        let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if let Some((_, dev, ino)) = &self.file
            && current != Some((*dev, *ino))
        {
            self.file = None;
        }
        if self.file.is_none() {
            let f = OpenOptions::new()
                .read(true) // to check the tail before cutting a partial line
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            let m = f.metadata()?;
            self.file = Some((f, m.dev(), m.ino()));
        }
        let Some((f, _, _)) = &mut self.file else {
            return Ok(());
        };
        let mut done = 0;
        while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
            match f.write(rest) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    cut_partial_line(f, bytes.get(..done).unwrap_or(&[]));
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// After a write that stopped part-way (disk full), remove the partial last line it left, if
/// the file still ends with it, so readers only ever see whole JSON lines.
fn cut_partial_line(f: &mut File, written: &[u8]) {
    use std::os::unix::fs::FileExt;
    let whole = written
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let part = written.get(whole..).unwrap_or(&[]);
    if part.is_empty() {
        return;
    }
    let Ok(size) = f.metadata().map(|m| m.len()) else {
        return;
    };
    let at = size.saturating_sub(part.len() as u64);
    let mut tail = vec![0; part.len()];
    if f.read_exact_at(&mut tail, at).is_ok() && tail == part {
        let _ = f.set_len(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn lines(p: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn one_turn_is_one_append_and_a_rotation_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut e = EventsFile::new(Target::File(p.clone()));
        assert_eq!(e.flush(), None, "nothing queued, nothing opened");
        assert!(!p.exists());
        e.push("{\"n\":1}\n");
        e.push("{\"n\":2}\n");
        assert_eq!(e.flush(), None);
        assert_eq!(lines(&p), vec!["{\"n\":1}", "{\"n\":2}"]);
        // logrotate: rename, then (create) a new empty file.
        let rotated: PathBuf = dir.path().join("events.jsonl.1");
        std::fs::rename(&p, &rotated).unwrap();
        e.push("{\"n\":3}\n");
        assert_eq!(e.flush(), None);
        assert_eq!(lines(&p), vec!["{\"n\":3}"], "reopened at the path");
        std::fs::rename(&p, dir.path().join("events.jsonl.2")).unwrap();
        std::fs::write(&p, "").unwrap();
        e.push("{\"n\":4}\n");
        e.flush();
        assert_eq!(lines(&p), vec!["{\"n\":4}"], "a new inode is followed too");
        assert_eq!(lines(&rotated), vec!["{\"n\":1}", "{\"n\":2}"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.path().join("events.jsonl.2"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
    }

    #[test]
    fn a_failing_file_drops_and_counts_lines_and_logs_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gone").join("events.jsonl");
        let mut e = EventsFile::new(Target::File(p.clone()));
        e.push("a\n");
        e.push("b\n");
        let first = e.flush().expect("logged");
        assert!(first.contains("2 event lines lost"), "{first}");
        e.push("c\n");
        assert_eq!(e.flush(), None);
        assert!(!e.pending(), "dropped, memory does not grow");
        std::fs::create_dir(p.parent().unwrap()).unwrap();
        e.push("d\n");
        assert_eq!(
            e.flush(),
            Some(report::events_recovered(&p.display().to_string(), 3))
        );
        assert_eq!(lines(&p), vec!["d"]);
    }

    #[test]
    fn sighup_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        let mut e = EventsFile::new(Target::File(p.clone()));
        e.push("1\n");
        e.flush();
        // Copy-then-truncate elsewhere would keep the inode; a reopen is harmless either way.
        e.reopen();
        e.push("2\n");
        e.flush();
        assert_eq!(lines(&p), vec!["1", "2"]);
    }
}
