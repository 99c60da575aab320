//! Blocked-file, history and hosts.deny writes. Each line goes out in one `write` on an
//! `O_APPEND` descriptor, so concurrent writers (the tcp and udp daemons share the history,
//! §7.2) never interleave inside a line and a crash never leaves half a line from us.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Append one whole line (which must end in LF). Creates the file with `mode`.
pub fn append_line(path: &Path, line: &str, mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)?;
    f.write_all(line.as_bytes())
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
    Appended,
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
    fn append_and_truncate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h");
        append_line(&p, "a\n", 0o600).unwrap();
        append_line(&p, "b\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        truncate(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
    }
}
