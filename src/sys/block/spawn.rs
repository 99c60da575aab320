//! Starting `/bin/sh` for the response commands and the spare shells, with nix's
//! `posix_spawn` (vfork-like: no copy of the daemon's page tables).
//!
//! Why not `std::process::Command`: it leaves the child the signal mask of the thread that
//! starts it, and the daemon's threads block SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGCHLD
//! (they are read through a signalfd). Measured: a spare shell started by it showed
//! `SigBlk: 0000000000014203` in /proc; systemd's SIGTERM at `systemctl stop` then stayed
//! pending in it, and a stop waited for the unit's 90 s timeout (`tests/systemd.sh`, seen on
//! this machine). Forcing std to reset the mask needs a `pre_exec` closure, which makes it
//! fork (copy the page tables) for every command. Here the child starts with an empty mask,
//! every signal at its default action (SIGPIPE, which the Rust runtime ignores, included), in
//! a process group of its own (so a terminal's ^C on a foreground daemon does not reach it,
//! and a timeout can kill the whole group), stdout and stderr on /dev/null, and stdin on
//! /dev/null or the pipe the spare shell reads its command line from.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// Exit status 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// A started shell, leader of its own process group. Reaped by [`Proc::try_wait`] or
/// [`Proc::kill_and_reap`]; the executor does one or the other for every one it starts.
#[derive(Debug)]
pub struct Proc {
    pid: Pid,
}

impl Proc {
    /// Its process id (also its process group's).
    pub fn id(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// How it ended, if it has (and then it is reaped); None while it runs.
    pub fn try_wait(&self) -> io::Result<Option<Exit>> {
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(Exit::Code(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(Exit::Signal(sig as i32))),
            Ok(_) => Ok(None),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Kill its whole process group (the shell and whatever it started) and reap it.
    pub fn kill_and_reap(&self) {
        let _ = killpg(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Where the shell's stdin comes from.
pub enum Stdin<'a> {
    /// /dev/null.
    Null,
    /// This descriptor (a pipe's read end; the caller closes its copy).
    Fd(&'a OwnedFd),
}

/// Start `/bin/sh -c SCRIPT` as described in the module docs.
pub fn shell(script: &str, stdin: Stdin) -> io::Result<Proc> {
    // Opened once for every shell (close-on-exec; the children get dup2'd copies).
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    let null = match NULL.get() {
        Some(n) => n,
        None => {
            let n = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
            NULL.get_or_init(|| n)
        }
    };
    let mut actions = PosixSpawnFileActions::init()?;
    let input = match stdin {
        Stdin::Null => null.as_raw_fd(),
        Stdin::Fd(fd) => fd.as_raw_fd(),
    };
    // dup2 clears close-on-exec on the copies; the originals (all close-on-exec) go at exec.
    actions.add_dup2(input, 0)?;
    actions.add_dup2(null.as_raw_fd(), 1)?;
    actions.add_dup2(null.as_raw_fd(), 2)?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
            | PosixSpawnFlags::POSIX_SPAWN_SETPGROUP,
    )?;
    let args = [cstr("/bin/sh")?, cstr("-c")?, cstr(script)?];
    let env = environment()?;
    let pid = posix_spawn(c"/bin/sh", &actions, &attr, &args, &env).map_err(|e| match e {
        Errno::UnknownErrno => io::Error::other("posix_spawn failed"),
        e => io::Error::from(e),
    })?;
    Ok(Proc { pid })
}

fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a command"))
}

/// The daemon's environment for the commands, with a PATH if it has none (an init script or
/// a unit may start it without one).
fn environment() -> io::Result<Vec<CString>> {
    let mut env = Vec::new();
    let mut path = false;
    for (k, v) in std::env::vars_os() {
        path |= k == "PATH";
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    if !path {
        env.push(cstr(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )?);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell starts with nothing blocked and no signal ignored (but glibc's two reserved
    /// ones), whatever the starting thread blocks, in a process group of its own, with its
    /// stdio on /dev/null.
    #[test]
    fn a_shell_starts_with_a_clean_signal_state_in_its_own_group() {
        let p = std::thread::spawn(|| {
            let mut block = SigSet::empty();
            block.add(Signal::SIGTERM);
            block.add(Signal::SIGHUP);
            block.add(Signal::SIGCHLD);
            block.thread_block().unwrap();
            shell("exec sleep 5", Stdin::Null).unwrap()
        })
        .join()
        .unwrap();
        let pid = p.id();
        // Wait for the exec of sleep (same pid).
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(t0.elapsed() < std::time::Duration::from_secs(5));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            let l = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{status}");
        // Signals 32 and 33 are glibc's own (never reset); nothing else is ignored.
        assert_eq!(field("SigIgn:") & !(3 << 31), 0, "{status}");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let pgid = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split_whitespace()
            .nth(2)
            .unwrap();
        assert_eq!(pgid, pid.to_string(), "its own process group");
        for fd in 0..3 {
            let t = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(t, std::path::Path::new("/dev/null"), "fd {fd}");
        }
        assert!(p.try_wait().unwrap().is_none());
        p.kill_and_reap();
    }

    #[test]
    fn a_signal_death_and_a_killed_group_are_reported() {
        let p = shell("kill -9 $$", Stdin::Null).unwrap();
        let t0 = std::time::Instant::now();
        let exit = loop {
            if let Some(e) = p.try_wait().unwrap() {
                break e;
            }
            assert!(t0.elapsed() < std::time::Duration::from_secs(5));
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(exit, Exit::Signal(9));
        let p = shell("sleep 30 & sleep 30", Stdin::Null).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        p.kill_and_reap();
        // Gone and reaped: a second look finds no child.
        assert!(p.try_wait().is_err());
    }
}
