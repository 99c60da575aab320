//! One daemon per mode: a lock file per mode and network namespace, taken at start-up and held
//! until the process exits, so that two daemons never watch the same mode on the same host
//! (`portsentry.service` running `-stcp -sudp` and `portsentry@stcp.service`, or a daemon
//! started by hand beside a unit). Two daemons in one mode fight over the classic ports (the
//! second binds none of those the first holds), report and block every stealth probe twice,
//! and truncate each other's `portsentry.blocked.<mode>`; the second one is refused instead,
//! naming the first one's pid and systemd unit.
//!
//! The lock is `flock(2)` on `portsentry-<mode>.<netns>.lock` in the pid file's directory,
//! `/run/portsentry` for the system's daemons (the units' pid files are there, and a pid file
//! in `/run`, the init script's or a daemon's started by hand, locks there too), where
//! `<netns>` is the inode of
//! `/proc/self/ns/net`: daemons in two network namespaces watch two different stacks and do
//! not conflict, and daemons with their pid files elsewhere (the tests' temporary
//! directories) never meet the system's. The kernel drops the lock when the process ends,
//! however it ends; the holder of a lock is read from `/proc/locks` (for the message); the
//! file is empty, close-on-exec (no command the daemon runs inherits it) and stays in place
//! (removing it would race with the next daemon's open; /run is emptied at boot). Only root
//! writes /run, so no other user can take a mode's lock first.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::mode::Mode;

/// The daemon that holds a mode's lock, as far as it can be found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id (from `/proc/locks`).
    pub pid: i32,
    /// Its systemd unit (from `/proc/PID/cgroup`), when it runs under one.
    pub unit: Option<String>,
}

/// Why the modes' locks could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another daemon runs this mode.
    Taken {
        /// The mode.
        mode: Mode,
        /// Its lock file.
        path: PathBuf,
        /// Who holds it, if that could be read.
        holder: Option<Holder>,
    },
    /// The lock file could not be opened or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// What went wrong.
        err: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Taken { mode, path, holder } => {
                write!(f, "mode -{mode} is already watched by another portsentry (")?;
                match holder {
                    Some(Holder {
                        pid,
                        unit: Some(unit),
                    }) => write!(f, "pid {pid}, unit {unit}")?,
                    Some(Holder { pid, unit: None }) => write!(f, "pid {pid}")?,
                    None => f.write_str("pid unknown")?,
                }
                write!(
                    f,
                    "; lock {}): one mode runs in one daemon at a time, stop that one first.",
                    path.display()
                )
            }
            LockError::Io { path, err } => {
                write!(f, "cannot take the mode lock {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

/// The locks of one daemon's modes; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ModeLocks {
    /// Held, never read: the locks end when their files close.
    _held: Vec<Flock<File>>,
}

/// Held by [`ModeLocks::hold_until_exit`]: the daemon's locks live as long as the process.
static HELD: Mutex<Vec<ModeLocks>> = Mutex::new(Vec::new());

impl ModeLocks {
    /// Keep these locks until the process exits (the kernel then releases them).
    pub fn hold_until_exit(self) {
        HELD.lock().unwrap_or_else(|p| p.into_inner()).push(self);
    }
}

/// The directory of the system's daemons' locks: the package's units keep their pid files in
/// it (their RuntimeDirectory=), the init script and a daemon started by hand theirs in /run.
const SYSTEM_DIR: &str = "/run/portsentry";

/// The lock file of `mode` for a daemon whose pid file is `pidfile`: beside it, except that a
/// pid file in /run locks in /run/portsentry, with the units'.
pub fn lock_path(pidfile: &Path, mode: Mode) -> PathBuf {
    let dir = match pidfile.parent() {
        Some(d) if d == Path::new("/run") => Path::new(SYSTEM_DIR),
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let netns = std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    dir.join(format!("portsentry-{mode}.{netns}.lock"))
}

/// Take the lock of every mode in `modes` (all or none), for a daemon with pid file `pidfile`.
pub fn take(pidfile: &Path, modes: &[Mode]) -> Result<ModeLocks, LockError> {
    let mut held = Vec::new();
    if lock_path(pidfile, Mode::Tcp).starts_with(SYSTEM_DIR) {
        match std::fs::DirBuilder::new()
            .mode(0o755)
            .create(Path::new(SYSTEM_DIR))
        {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(LockError::Io {
                    path: PathBuf::from(SYSTEM_DIR),
                    err: e,
                });
            }
            _ => {}
        }
    }
    for &mode in modes {
        let path = lock_path(pidfile, mode);
        let io = |err| LockError::Io {
            path: path.clone(),
            err,
        };
        // O_NOFOLLOW: a link planted at the path cannot make root create or lock another file.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => held.push(lock),
            Err((file, Errno::EWOULDBLOCK)) => {
                let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
                let holder = file
                    .metadata()
                    .ok()
                    .and_then(|m| flock_holder(&locks, m.dev(), m.ino()))
                    .map(|pid| Holder {
                        pid,
                        unit: std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                            .ok()
                            .and_then(|c| unit_of_cgroup(&c)),
                    });
                return Err(LockError::Taken { mode, holder, path });
            }
            Err((_, e)) => return Err(io(io::Error::from(e))),
        }
    }
    Ok(ModeLocks { _held: held })
}

/// The pid holding a `flock` on file (`dev`, `ino`), from the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF`: major and minor in hex).
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<i32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // A blocked waiter's line starts with "->"; only holders count.
        (f.first().is_some_and(|n| n.ends_with(':'))
            && f.get(1) == Some(&"FLOCK")
            && f.get(5) == Some(&want.as_str()))
        .then(|| f.get(4)?.parse().ok())
        .flatten()
        .filter(|p: &i32| *p > 0)
    })
}

/// The systemd service a process runs in, from its `/proc/PID/cgroup`: the last `.service`
/// component of its path in systemd's hierarchy (`0::` or `name=systemd`), e.g.
/// `portsentry@stcp.service` from `0::/system.slice/system-portsentry.slice/portsentry@stcp.service`.
fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, hier, path) = (parts.next()?, parts.next()?, parts.next()?);
            (hier.is_empty() || hier == "name=systemd").then_some(path)
        })
        .find_map(|path| {
            path.rsplit('/')
                .find(|c| c.ends_with(".service"))
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_in_a_mode_is_refused_with_the_first_ones_pid() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("portsentry.pid");
        let first = take(&pidfile, &[Mode::Stcp, Mode::Sudp]).unwrap();
        // Another unit's pid file in the same directory, one mode in common.
        let other = d.path().join("portsentry-stcp.pid");
        let err = take(&other, &[Mode::Stcp]).unwrap_err();
        let text = err.to_string();
        let me = std::process::id();
        assert!(
            text.starts_with(&format!(
                "mode -stcp is already watched by another portsentry (pid {me}"
            )),
            "{text}"
        );
        assert!(text.contains(&lock_path(&other, Mode::Stcp).display().to_string()));
        assert!(text.ends_with("one mode runs in one daemon at a time, stop that one first."));
        // All or none: the refused daemon held nothing of its own afterwards.
        assert!(take(&other, &[Mode::Atcp, Mode::Stcp]).is_err());
        take(&other, &[Mode::Atcp, Mode::Tcp, Mode::Udp]).unwrap();
        // The other modes are free, and every mode is once the first one is gone.
        drop(first);
        take(&other, &[Mode::Stcp, Mode::Sudp]).unwrap();
    }

    #[test]
    fn locks_are_per_directory_and_never_follow_a_link() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let _x = take(&a.path().join("p.pid"), &[Mode::Tcp]).unwrap();
        let _y = take(&b.path().join("p.pid"), &[Mode::Tcp]).unwrap();
        let c = tempfile::tempdir().unwrap();
        let pid = c.path().join("p.pid");
        let target = c.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, lock_path(&pid, Mode::Udp)).unwrap();
        assert!(matches!(
            take(&pid, &[Mode::Udp]),
            Err(LockError::Io { .. })
        ));
        assert!(!target.exists());
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 77 fe:01:1234 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fe:01:1234 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 99 00:1a:1234 0 EOF\n";
        let dev = nix::sys::stat::makedev(0xfe, 0x01);
        assert_eq!(flock_holder(locks, dev, 1234), Some(4242));
        assert_eq!(
            flock_holder(locks, nix::sys::stat::makedev(0, 0x1a), 1234),
            Some(99)
        );
        assert_eq!(flock_holder(locks, dev, 1235), None);
        assert_eq!(flock_holder("", dev, 1234), None);
    }

    #[test]
    fn pid_files_in_run_lock_with_the_units_in_run_portsentry() {
        let a = lock_path(Path::new("/run/portsentry.pid"), Mode::Stcp);
        let b = lock_path(Path::new("/run/portsentry/portsentry-stcp.pid"), Mode::Stcp);
        assert_eq!(a, b);
        let a = a.display().to_string();
        assert!(a.starts_with("/run/portsentry/portsentry-stcp."), "{a}");
        assert!(lock_path(Path::new("/tmp/x/p.pid"), Mode::Tcp).starts_with("/tmp/x/"));
    }

    #[test]
    fn the_unit_comes_from_systemds_hierarchy() {
        let v2 = "0::/system.slice/system-portsentry.slice/portsentry@stcp.service\n";
        assert_eq!(
            unit_of_cgroup(v2).as_deref(),
            Some("portsentry@stcp.service")
        );
        let hybrid = "9:name=systemd:/system.slice/portsentry.service\n4:memory:/x.service\n0::/system.slice/portsentry.service\n";
        assert_eq!(
            unit_of_cgroup(hybrid).as_deref(),
            Some("portsentry.service")
        );
        let v1_only = "4:memory:/system.slice/other.service\n";
        assert_eq!(unit_of_cgroup(v1_only), None);
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
    }
}
