//! Blocked-file, history and hosts.deny writes. Lines go out in one `write` on an `O_APPEND`
//! descriptor, so concurrent writers (the tcp and udp daemons share the history, §7.2) never
//! interleave inside a line. The blocked and history lines of one event-loop turn are
//! collected ([`Appends`]) and written with one open and one `write` per file: under a flood
//! of blocks a write per line (open, write, close) was a quarter of the daemon's CPU.
//!
//! Whole lines only: the kernel stops a buffered write early only between pages (a fatal
//! signal) or when the disk is full, so one write of many lines risks no more than a write
//! per line does; and a write cut short with an error has the partial last line it left
//! removed again ([`append_lines`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Append whole lines (`text` ends in LF). Creates the file with `mode`. If the write stops
/// part-way with an error (disk full), the part of a line it left at the end is cut off
/// again, so readers never see half a line from us; the whole lines before it stay.
pub fn append_lines(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .read(true) // to check the tail before cutting it
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)?;
    let b = text.as_bytes();
    let mut done = 0;
    let err = loop {
        let Some(rest) = b.get(done..).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        match f.write(rest) {
            Ok(0) => break io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    let written = b.get(..done).unwrap_or(&[]);
    let whole = written
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let part = written.get(whole..).unwrap_or(&[]);
    if !part.is_empty() {
        // Cut only if the file still ends with our partial line (another daemon may have
        // appended since).
        let size = f.metadata()?.len();
        let at = size.saturating_sub(part.len() as u64);
        let mut tail = vec![0; part.len()];
        if f.read_exact_at(&mut tail, at).is_ok() && tail == part {
            f.set_len(at)?;
        }
    }
    Err(err)
}

/// Lines waiting to be appended, by file, in the order they came; written by [`Appends::flush`]
/// once per event-loop turn.
#[derive(Default)]
pub struct Appends {
    files: Vec<(PathBuf, u32, String)>,
}

impl Appends {
    /// Queue `line` (ending in LF) for `path`, created with `mode` if missing.
    pub fn push(&mut self, path: &Path, line: &str, mode: u32) {
        match self.files.iter_mut().find(|(p, _, _)| p == path) {
            Some((_, _, text)) => text.push_str(line),
            None => self
                .files
                .push((path.to_path_buf(), mode, line.to_string())),
        }
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Write everything queued, one write per file. Returns the files that failed (their
    /// lines are dropped, as a failed single-line write dropped its line).
    pub fn flush(&mut self) -> Vec<PathBuf> {
        let mut failed = Vec::new();
        for (path, mode, text) in self.files.drain(..) {
            if append_lines(&path, &text, mode).is_err() {
                failed.push(path);
            }
        }
        failed
    }
}

/// Truncate (or create) a blocked file at start-up and on reload (§7.1). Mode 0644 as 1.2
/// gets from a usual umask.
pub fn truncate(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map(|_| ())
}

/// Outcome of a hosts.deny append.
#[derive(Debug, PartialEq, Eq)]
pub enum DenyResult {
    /// The line was added.
    Appended,
    /// An identical line was there already.
    AlreadyPresent,
}

/// Append `line` to hosts.deny unless an identical line is already there. Never follows a
/// symlink (O_NOFOLLOW: a planted link cannot redirect the root daemon's write), holds an
/// exclusive lock while reading and appending so two daemons cannot add it twice, and creates
/// the file 0644 (tcpd readers need it; 1.2 created it 0600 by accident of its umask).
pub fn hosts_deny_append(path: &Path, line: &str) -> io::Result<DenyResult> {
    let mut f: File = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    nix::fcntl::Flock::lock(f.try_clone()?, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))
        .and_then(|lock| {
            let mut text = Vec::new();
            f.seek(SeekFrom::Start(0))?;
            f.read_to_end(&mut text)?;
            let present = text
                .split(|b| *b == b'\n')
                .any(|l| l.strip_suffix(b"\r").unwrap_or(l) == line.as_bytes());
            let r = if present {
                DenyResult::AlreadyPresent
            } else {
                let mut out = String::new();
                if !text.is_empty() && !text.ends_with(b"\n") {
                    out.push('\n');
                }
                out.push_str(line);
                out.push('\n');
                f.write_all(out.as_bytes())?;
                DenyResult::Appended
            };
            drop(lock);
            Ok(r)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_deny_once_per_line_and_never_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        std::fs::write(&p, "# existing\nsshd: 1.2.3.4").unwrap();
        assert_eq!(
            hosts_deny_append(&p, "ALL: 192.0.2.9 : DENY").unwrap(),
            DenyResult::Appended
        );
        assert_eq!(
            hosts_deny_append(&p, "ALL: 192.0.2.9 : DENY").unwrap(),
            DenyResult::AlreadyPresent
        );
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# existing\nsshd: 1.2.3.4\nALL: 192.0.2.9 : DENY\n"
        );
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(hosts_deny_append(&link, "ALL: 192.0.2.9 : DENY").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn appends_go_out_per_file_in_order() {
        let d = tempfile::tempdir().unwrap();
        let (h, b) = (d.path().join("h"), d.path().join("b"));
        let mut a = Appends::default();
        assert!(a.is_empty());
        a.push(&h, "1\n", 0o600);
        a.push(&b, "x\n", 0o644);
        a.push(&h, "2\n", 0o600);
        assert!(a.flush().is_empty());
        assert!(a.is_empty());
        assert_eq!(std::fs::read_to_string(&h).unwrap(), "1\n2\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "x\n");
        use std::os::unix::fs::PermissionsExt;
        let m = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((m(&h), m(&b)), (0o600, 0o644));
        a.push(&d.path().join("no/such/dir"), "y\n", 0o600);
        assert_eq!(a.flush(), vec![d.path().join("no/such/dir")]);
    }

    #[test]
    fn a_write_cut_short_by_a_full_disk_leaves_whole_lines() {
        // /dev/full: every write fails with ENOSPC; nothing partial can be left there, so
        // this checks the error path; a RLIMIT_FSIZE cut checks the trimming below.
        assert!(append_lines(Path::new("/dev/full"), "a\n", 0o600).is_err());
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h");
        std::fs::write(&p, "old\n").unwrap();
        let text: String = (0..200).map(|i| format!("l{i:05}\n")).collect();
        // A child process limited to 1,000 bytes per file: its write stops part-way (EFBIG
        // after a short write), as it would on a disk that fills up.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 1 && exec \"$0\" --exact sys::block::files::tests::helper_append --nocapture")
            .arg(std::env::current_exe().unwrap())
            .env("APPEND_TEST_FILE", &p)
            .env("APPEND_TEST_TEXT", &text)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let got = std::fs::read_to_string(&p).unwrap();
        // `ulimit -f 1` is 512 or 1,024 bytes depending on the shell: 72 or 145 whole lines.
        assert!(got.len() <= 1024 && got.len() > 400, "{}", got.len());
        assert!(got.ends_with('\n'), "{got:?}");
        assert!(got.starts_with("old\nl00000\n"));
        for l in got.lines().skip(1) {
            assert_eq!(l.len(), 6, "{l:?}");
        }
    }

    /// Run by the test above in a child with a file size limit; a no-op otherwise.
    #[test]
    fn helper_append() {
        if let (Some(p), Some(t)) = (
            std::env::var_os("APPEND_TEST_FILE"),
            std::env::var("APPEND_TEST_TEXT").ok(),
        ) {
            use nix::sys::signal::{SigHandler, Signal, signal};
            // SAFETY: SIG_IGN installs no handler code; this process only runs this test.
            // (SIGXFSZ would kill it instead of failing the write.)
            unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.unwrap();
            assert!(append_lines(Path::new(&p), &t, 0o600).is_err());
        }
    }

    #[test]
    fn append_and_truncate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h");
        append_lines(&p, "a\n", 0o600).unwrap();
        append_lines(&p, "b\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        truncate(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
    }
}
