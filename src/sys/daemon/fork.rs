//! Daemon lifecycle: fork with a readiness pipe so the parent exits 0 only once the child is
//! listening (else non-zero with the child's reason), the pid file, and detaching stdio.
//! 1.2 forked before doing anything and always exited 0 (§1 item 6, §10.1 item 17).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Pid, fork, pipe2, setsid};

/// The child's end of the readiness pipe.
pub struct Ready(File);

impl Ready {
    /// The daemon is ready: the parent exits 0.
    pub fn ok(mut self) {
        let _ = self.0.write_all(b"OK\n");
    }
    /// Start-up failed: the parent prints `reason` and exits 1.
    pub fn fail(mut self, reason: &str) {
        let _ = self.0.write_all(format!("ERR {reason}\n").as_bytes());
    }
}

/// Which side of the fork this is.
pub enum Forked {
    /// In the parent: exit with this status.
    Parent(i32),
    /// In the child: report readiness through this.
    Child(Ready),
}

/// Fork. The parent waits for the child's verdict on the pipe and prints its reason on
/// failure. Must be called while the process has a single thread.
pub fn daemonize() -> io::Result<Forked> {
    let (r, w): (OwnedFd, OwnedFd) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the process is single-threaded here (no thread has been spawned yet), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut msg = String::new();
            let _ = File::from(r).read_to_string(&mut msg);
            let msg = msg.trim_end();
            if msg == "OK" {
                Ok(Forked::Parent(0))
            } else {
                let reason = msg
                    .strip_prefix("ERR ")
                    .unwrap_or("the daemon exited before it was ready (see syslog)");
                eprintln!("portsentry: {reason}");
                Ok(Forked::Parent(1))
            }
        }
        ForkResult::Child => {
            drop(r);
            setsid()?;
            std::env::set_current_dir("/")?;
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            detach_stdio()?;
            Ok(Forked::Child(Ready(File::from(w))))
        }
    }
}

/// Point fds 0-2 at /dev/null (1.2 closed them and its sockets took their numbers, §6.3).
fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(null.as_fd())?;
    nix::unistd::dup2_stdout(null.as_fd())?;
    nix::unistd::dup2_stderr(null.as_fd())?;
    Ok(())
}

/// Another portsentry holds the pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Its process id.
    pub pid: i32,
    /// The pid file.
    pub pidfile: PathBuf,
}

impl std::fmt::Display for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "another portsentry (pid {}) is running with pid file {}",
            self.pid,
            self.pidfile.display()
        )
    }
}

/// Refuse to start if the pid file names a live portsentry; a stale one is replaced.
pub fn check_pidfile(path: &Path) -> Result<(), Running> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(());
    };
    if pid <= 0 || pid == std::process::id() as i32 {
        return Ok(());
    }
    let alive = nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok();
    let ours = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .zip(std::env::current_exe().ok())
        .is_some_and(|(a, b)| a == b);
    if alive && ours {
        return Err(Running {
            pid,
            pidfile: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Write the pid file atomically (see `atomic`), 0644 as pid files are.
pub fn write_pidfile(path: &Path) -> io::Result<()> {
    crate::sys::atomic::write(path, format!("{}\n", std::process::id()).as_bytes(), 0o644)
}

/// Remove the pid file if it still names this process.
pub fn remove_pidfile(path: &Path) {
    if let Ok(t) = std::fs::read_to_string(path)
        && t.trim() == std::process::id().to_string()
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Mark every descriptor above stderr close-on-exec. Whatever started us may have leaked
/// descriptors (a supervisor's pipe, a shell's fds); they must not reach the commands we run
/// (1.2 handed its sockets to commands as stdin/stdout/stderr, §6.3). Everything the daemon
/// opens itself is already close-on-exec.
pub fn cloexec_inherited() {
    // SAFETY: close_range only changes descriptor flags; no memory is involved.
    let rc = unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: walk our descriptor table instead.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: F_SETFD on a descriptor number; a closed one just fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}
