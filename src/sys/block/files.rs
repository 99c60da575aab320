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
//!
//! hosts.deny is appended to in place and, when a block ends, rewritten without the block's
//! lines through a temp file renamed over it ([`hosts_deny_remove`]), both under an exclusive
//! `flock` that each writer re-takes if the name was replaced while it waited.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::block::hosts_deny::{self, DenyLine};
use crate::sys::atomic;

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
///
/// Only the exact line counts as present: for an IPv6 host the bracketed line of a block made
/// now is skipped if there, and a bare line left by an earlier version (which denies nothing)
/// gets the bracketed one added after it.
pub fn hosts_deny_append(path: &Path, line: &str) -> io::Result<DenyResult> {
    let mut open = OpenOptions::new();
    open.read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW);
    let mut f = open_locked(path, &open)?;
    let mut text = Vec::new();
    f.seek(SeekFrom::Start(0))?;
    f.read_to_end(&mut text)?;
    let present = text
        .split(|b| *b == b'\n')
        .any(|l| l.strip_suffix(b"\r").unwrap_or(l) == line.as_bytes());
    if present {
        return Ok(DenyResult::AlreadyPresent);
    }
    let mut out = String::new();
    if !text.is_empty() && !text.ends_with(b"\n") {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    f.write_all(out.as_bytes())?;
    Ok(DenyResult::Appended)
}

/// How often a hosts.deny writer tries again when the file was replaced or changed under it.
const HOSTS_DENY_ATTEMPTS: usize = 8;

/// Open `path` with `open` and lock it exclusively. When the name was replaced while we
/// waited for the lock (another daemon's [`hosts_deny_remove`] renamed a new file over it),
/// the lock is on a file nobody reads any more: open the name again.
fn open_locked(path: &Path, open: &OpenOptions) -> io::Result<Flock<File>> {
    for _ in 0..HOSTS_DENY_ATTEMPTS {
        let f = open.open(path)?;
        let f = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        let held = f.metadata()?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(f),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} was replaced {HOSTS_DENY_ATTEMPTS} times while waiting for its lock",
        path.display()
    )))
}

/// Remove the hosts.deny lines `deny` wrote for `ip` (`block::hosts_deny` decides which;
/// every other line stays byte for byte). Returns the lines removed (none when the file or
/// the lines are gone already). Never follows a symlink; keeps the file's mode and owner.
///
/// Written as a temp file beside it, renamed over it, under the lock appends take: tcpd
/// reads hosts.deny on every connection, and a rewrite in place would show it a truncated
/// file (the admin's own denials gone) for a moment, or for good after a crash; a rename
/// shows it the old file or the new one. An admin's editor takes no lock: if the file
/// changed while it was read, it is read again, so an edit saved before the rename is kept
/// (one saved between the check and the rename, a window of a few system calls, is not).
pub fn hosts_deny_remove(path: &Path, ip: IpAddr, deny: &DenyLine) -> io::Result<Vec<String>> {
    let mut open = OpenOptions::new();
    open.read(true).custom_flags(libc::O_NOFOLLOW);
    for _ in 0..HOSTS_DENY_ATTEMPTS {
        let mut f = match open_locked(path, &open) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r?,
        };
        let before = f.metadata()?;
        let mut text = Vec::new();
        f.read_to_end(&mut text)?;
        let d = hosts_deny::drop_lines(&text, ip, deny);
        if d.lines.is_empty() {
            return Ok(Vec::new());
        }
        let after = std::fs::symlink_metadata(path)?;
        if stamp(&after) != stamp(&before) || stamp(&f.metadata()?) != stamp(&before) {
            continue;
        }
        atomic::write_with(path, before.mode() & 0o7777, |t| {
            t.write_all(&d.kept)?;
            std::os::unix::fs::fchown(&*t, Some(before.uid()), Some(before.gid()))
        })?;
        // The lock goes with `f` after the rename: a writer waiting for it finds the name
        // replaced and opens the new file.
        drop(f);
        return Ok(d.lines);
    }
    Err(io::Error::other(format!(
        "{} kept changing while it was read",
        path.display()
    )))
}

/// What tells a file's version: which file, its size, when its contents and inode changed.
fn stamp(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64, i64, i64) {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
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
    fn an_ipv6_bare_line_does_not_count_as_present_the_bracketed_one_does() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        std::fs::write(&p, "ALL: 2001:db8::2\n").unwrap();
        let line = "ALL: [2001:db8::2]";
        assert_eq!(hosts_deny_append(&p, line).unwrap(), DenyResult::Appended);
        assert_eq!(
            hosts_deny_append(&p, line).unwrap(),
            DenyResult::AlreadyPresent
        );
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "ALL: 2001:db8::2\nALL: [2001:db8::2]\n"
        );
    }

    #[test]
    fn remove_drops_the_hosts_lines_only_keeping_mode_owner_and_other_lines() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        let admin = "# admin's file\nsshd: 10.0.0.12\nALL: 10.0.0.12 : DENY\n";
        std::fs::write(&p, format!("{admin}ALL: 10.0.0.1 : DENY\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&p, Some(1), Some(2)).unwrap();
        let deny = DenyLine::new("ALL: $TARGET$ : DENY", 22, crate::config::mode::Mode::Stcp);
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            hosts_deny_remove(&p, host, &deny).unwrap(),
            vec!["ALL: 10.0.0.1 : DENY"]
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), admin);
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!((m.uid(), m.gid()), (1, 2));
        // Gone already, or no file: nothing to do, nothing written.
        assert!(hosts_deny_remove(&p, host, &deny).unwrap().is_empty());
        assert!(
            hosts_deny_remove(&d.path().join("none"), host, &deny)
                .unwrap()
                .is_empty()
        );
        // No temp file left beside it.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Never through a symlink: the file it points to stays as it is.
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "ALL: 10.0.0.1 : DENY\n").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(hosts_deny_remove(&link, host, &deny).is_err());
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "ALL: 10.0.0.1 : DENY\n"
        );
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    /// A writer that waited for the lock while another renamed a new file over the name
    /// writes into the new file, not into the one nobody reads any more.
    #[test]
    fn a_writer_waiting_for_the_lock_follows_a_replaced_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        std::fs::write(&p, "old\n").unwrap();
        let held = Flock::lock(File::open(&p).unwrap(), FlockArg::LockExclusive).unwrap();
        let (q, (tx, rx)) = (p.clone(), std::sync::mpsc::channel());
        let t = std::thread::spawn(move || {
            tx.send(()).unwrap();
            hosts_deny_append(&q, "ALL: 192.0.2.9").unwrap()
        });
        rx.recv().unwrap();
        // Give the thread time to block on the lock (it is correct either way: if it comes
        // later it opens the new file directly).
        std::thread::sleep(std::time::Duration::from_millis(100));
        atomic::write(&p, b"new\n", 0o644).unwrap();
        drop(held);
        assert_eq!(t.join().unwrap(), DenyResult::Appended);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "new\nALL: 192.0.2.9\n"
        );
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
