//! Spare shells, started off the event loop. Starting `/bin/sh` (exec, the dynamic loader,
//! libc) is most of the time between a probe and its KILL_ROUTE, and `posix_spawn` returns only
//! once the child has exec'd: about a millisecond on a busy machine, during which the loop
//! would stand still. Measured under a forged-source flood (bench scenario E): the loop spent
//! 1.15 ms per block waiting for spawns, so a real probe in the ring waited behind a thousand
//! forged hosts' spawns for up to a second; with the spawns on this thread, 18 µs per block.
//!
//! When the executor has no spare it asks this module's thread for one; the thread starts it
//! (`IFS= read -r c; eval "$c"`: the same parsing as `sh -c`), hands it over and writes a
//! byte to a pipe the loop polls. So one spare waits while commands are configured, and the
//! loop never waits for a spawn. A spare exits when the daemon does (its stdin pipe closes),
//! even after `kill -9`. Dropping [`Spares`] stops the thread; a spare not taken yet is ended.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

use crate::sys::block::spawn::{self, Proc, Stdin};

/// What a spare shell runs: one line from its stdin, evaluated as `sh -c` would. After the
/// line, stdin is /dev/null as for any other command.
const SPARE_SCRIPT: &str = "IFS= read -r c || exit 126; exec </dev/null; eval \"$c\"";

/// A `/bin/sh` already started, waiting for its command line on stdin.
pub struct Spare {
    child: Proc,
    stdin: File,
}

impl Spare {
    /// Hand `command` (one line) to the shell; it runs as `sh -c` would run it. Err when the
    /// shell is gone or the command has a line break (its `read` would end early): the
    /// caller starts a shell of its own then.
    pub fn run(mut self, command: &str) -> Result<Proc, Spare> {
        if command.contains('\n') || !matches!(self.child.try_wait(), Ok(None)) {
            return Err(self);
        }
        let line = format!("{command}\n");
        if self.stdin.write_all(line.as_bytes()).is_err() {
            return Err(self);
        }
        drop(self.stdin); // end of file after the line
        Ok(self.child)
    }

    /// The shell's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// End the shell and reap it.
    pub fn dismiss(self) {
        drop(self.stdin);
        self.child.kill_and_reap();
    }

    fn start() -> io::Result<Spare> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let child = spawn::shell(SPARE_SCRIPT, Stdin::Fd(&read))?;
        Ok(Spare {
            child,
            stdin: File::from(write),
        })
    }
}

/// The thread that starts spare shells when asked, and the pipe it wakes the loop through.
pub struct Spares {
    /// None only while dropping.
    ask: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    rx: Receiver<io::Result<Spare>>,
    wake: OwnedFd,
    /// A spare was asked for and has not been taken yet.
    asked: bool,
}

impl Spares {
    /// Start the thread (it starts a spare when [`Spares::ask`] says so).
    pub fn start() -> io::Result<Spares> {
        use nix::fcntl::OFlag;
        let (wake, ring) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let (ask, asks) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel::<io::Result<Spare>>();
        let thread = std::thread::Builder::new()
            .name("spares".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Ends when the executor drops its end (reload without commands, exit).
                for () in asks {
                    if let Err(mpsc::SendError(Ok(spare))) = tx.send(Spare::start()) {
                        return spare.dismiss();
                    }
                    // After the send, so the loop finds the spare when it wakes.
                    let _ = nix::unistd::write(&ring, b"s");
                }
            })?;
        Ok(Spares {
            ask: Some(ask),
            thread: Some(thread),
            rx,
            wake,
            asked: false,
        })
    }

    /// Ask for a spare, unless one is on its way.
    pub fn ask(&mut self) {
        if !self.asked {
            self.asked = self.ask.as_ref().is_some_and(|a| a.send(()).is_ok());
        }
    }

    /// While a spare is on its way: readable once it is ready (poll it then).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.asked.then(|| self.wake.as_fd())
    }

    /// The spare asked for, once ready: Err when it could not be started.
    pub fn take(&mut self) -> Option<io::Result<Spare>> {
        let s = match self.rx.try_recv() {
            Ok(s) => s,
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return None,
        };
        let mut buf = [0u8; 8];
        while matches!(nix::unistd::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
        self.asked = false;
        Some(s)
    }
}

impl Drop for Spares {
    /// Stops the thread (after the spawn it may be in: milliseconds) and ends a spare started
    /// but not taken, so none is left a zombie.
    fn drop(&mut self) {
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        while let Ok(s) = self.rx.try_recv() {
            if let Ok(spare) = s {
                spare.dismiss();
            }
        }
    }
}
