//! The fleet (issue 12): all network I/O with a CrowdSec LAPI, on a thread of its own, off
//! the event loop.
//!
//! The loop's whole interface is [`Fleet`]: `start`, `record_block` / `record_report` (a push
//! onto a vector), `flush` (one write of the turn's records to the spool, then a wake-up),
//! `fd` (readable when the thread has log lines for the loop), `take_log`, `reconfigure`
//! (SIGHUP: the thread takes the new settings between two requests), `status` and
//! `shutdown`. The thread (`worker`: its loop, pace and reloads; `shared`: what it shares
//! with the loop) pushes what the spool holds (`push`: in order, in batches, with the limits
//! of `fleet::limit`), follows the decision stream into the nftables sets `fleet4`/`fleet6`
//! (`pull`, with the holes of `apply`), and retries with back-off; the loop never waits for
//! it.
//!
//! Delivery: a record is on disk (spool, page cache) before the thread can send it; an `S`
//! line goes to disk (fdatasync) before each request, an `A` line after its 201. A request
//! whose outcome is unknown (kill -9 between the request and its `A` line, a timeout or reset
//! after sending, a 5xx after which the LAPI may have kept part of it) is never simply sent
//! again: the thread first asks the LAPI (`GET /v1/alerts`) which of its records arrived
//! (every alert names its records in meta `portsentry_records`) and sends only the others.
//! So each record reaches the LAPI once, in order, across kill -9 and LAPI outages. Limits:
//! a power loss may lose the records of the last few ms not yet synced, and a LAPI that loses
//! its database loses what it had.

pub mod apply;
#[cfg(test)]
mod fake_lapi;
pub mod http;
mod pull;
mod push;
mod settings;
#[cfg(test)]
mod settings_tests;
mod shared;
pub mod spool;
pub mod tls;
mod worker;

pub use settings::{
    LoadError, Problem, Pull, Push, Settings, describe, load, main, spool_path, test_login,
};

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::config::mode::Mode;
use crate::fleet::alert::{Record, Scan};
use crate::fleet::link;
use crate::observe::report;

use self::shared::{Reconfig, Shared};
use self::spool::Spool;
use self::worker::Worker;

/// The link's state as `portsentry status` (issue 13) will show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// The push side's link (None: not pushing).
    pub push: Option<link::State>,
    /// The pull side's link (None: not pulling).
    pub pull: Option<link::State>,
    /// Records in the spool not yet delivered.
    pub waiting: u64,
    /// Records delivered since start.
    pub sent: u64,
    /// Records dropped (spool full, or refused by the LAPI).
    pub dropped: u64,
    /// Decisions in force from the stream.
    pub decisions: usize,
    /// The interval the pulls keep now (ms): CROWDSEC_PULL_INTERVAL, stretched while the LAPI
    /// answers slowly (0: not pulling).
    pub pull_every_ms: u64,
    /// How long the last pull's answer took (ms).
    pub pull_took_ms: u64,
    /// How far behind the LAPI's decisions this host may be (ms since the last pull that
    /// worked, once over twice the interval; 0: keeping pace).
    pub pull_behind_ms: u64,
}

/// Why the fleet could not start (start-up fails with it) or take new settings (a reload is
/// refused with it).
#[derive(Debug)]
pub enum StartError {
    /// The spool cannot be opened or created.
    Spool {
        /// The spool file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// The eventfds between the loop and the thread cannot be made.
    EventFd(nix::Error),
    /// The thread cannot be started.
    Thread(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spool { path, err } => {
                write!(
                    f,
                    "cannot open the CrowdSec spool {}: {err}",
                    path.display()
                )
            }
            StartError::EventFd(e) => write!(f, "cannot make the fleet's eventfd: {e}"),
            StartError::Thread(e) => write!(f, "cannot start the fleet thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The push options the loop applies when it records (the thread has the rest).
#[derive(Debug, Clone, Copy)]
struct PushOpts {
    ban_s: u64,
    send_log_only: bool,
}

/// The event loop's handle on the fleet thread.
pub struct Fleet {
    shared: Arc<Shared>,
    pending: Vec<Record>,
    push: Option<PushOpts>,
    thread: Option<JoinHandle<()>>,
    /// The generation of the LAPI's addresses last taken by the loop.
    lapi_seen: u64,
}

/// Opens the spool of `p`; its start-up lines (a torn tail cut, damaged lines, a file set
/// aside) are queued for the loop.
fn open_spool(
    p: &Push,
    shared: &Shared,
) -> Result<(Spool, crate::fleet::spool::Scanned), StartError> {
    let o = Spool::open(&p.spool_path).map_err(|err| StartError::Spool {
        path: p.spool_path.clone(),
        err,
    })?;
    if o.torn_bytes > 0 {
        shared.log(report::fleet_spool_torn(o.torn_bytes));
    }
    if o.scanned.bad_lines > 0 {
        shared.log(report::fleet_spool_corrupt(o.scanned.bad_lines));
    }
    if let Some(bad) = &o.set_aside {
        shared.log(report::fleet_spool_set_aside(&p.spool_path, bad));
    }
    Ok((o.spool, o.scanned))
}

impl Fleet {
    /// Opens the spool (reading it whole: up to [`spool::MAX_BYTES`]) and starts the thread.
    /// Call it after KEEP_CAPABILITIES is applied: the thread (and the `nft` it runs) gets
    /// the capabilities the loop has at that moment.
    pub fn start(settings: Settings) -> Result<Fleet, StartError> {
        let efd = || {
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(StartError::EventFd)
        };
        let shared = Arc::new(Shared::new(efd()?, efd()?));
        // Addresses written in the URLs are protected before the loop's first turn; names
        // follow when the thread has resolved them.
        shared.set_lapi_addrs(settings.literal_addrs());
        let mut scanned = None;
        if let Some(p) = &settings.push {
            let (s, sc) = open_spool(p, &shared)?;
            scanned = Some(sc);
            shared.set_spool(s);
        }
        let push = settings.push.as_ref().map(|p| PushOpts {
            ban_s: p.ban_s,
            send_log_only: p.send_log_only,
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || Worker::new(settings, sh, scanned).run())
            .map_err(StartError::Thread)?;
        Ok(Fleet {
            shared,
            pending: Vec::new(),
            push,
            thread: Some(thread),
            lapi_seen: 0,
        })
    }

    /// The LAPI's addresses (literal, and as the thread last resolved its name).
    pub fn lapi_addrs(&self) -> Vec<IpAddr> {
        self.shared.lapi_addrs().1
    }

    /// True once after the thread published other LAPI addresses (the loop then reads the
    /// protected addresses again).
    pub fn take_lapi_moved(&mut self) -> bool {
        let g = self.shared.lapi_addrs().0;
        std::mem::replace(&mut self.lapi_seen, g) != g
    }

    /// SIGHUP with fleet settings (`load` of the new config): the thread takes them between
    /// two requests, keeping what the old and new settings share (the spool and its
    /// delivery state, a login whose credentials did not change, the pulled bans). Pushing
    /// turned on opens the spool here; the spool opened first stays for the process's life
    /// (a new HISTORY_FILE directory moves it at the next start).
    pub fn reconfigure(&mut self, mut settings: Settings) -> Result<(), StartError> {
        let mut scanned = None;
        if let Some(p) = &mut settings.push {
            match self.shared.spool_path() {
                Some(open) => p.spool_path = open,
                None => {
                    let (s, sc) = open_spool(p, &self.shared)?;
                    scanned = Some(sc);
                    self.shared.set_spool(s);
                }
            }
        }
        self.flush();
        // The new URLs' literal addresses at once, the old ones kept until the thread has
        // resolved the new names (protecting an address a moment too long harms nothing).
        let mut addrs = settings.literal_addrs();
        addrs.extend(self.lapi_addrs());
        self.shared.set_lapi_addrs(addrs);
        self.push = settings.push.as_ref().map(|p| PushOpts {
            ban_s: p.ban_s,
            send_log_only: p.send_log_only,
        });
        self.shared.reconfigure(Reconfig { settings, scanned });
        Ok(())
    }

    /// Pushing is on (a block recorded now is sent).
    pub fn pushing(&self) -> bool {
        self.push.is_some()
    }

    /// A host was blocked (BLOCK_x=1/2): an alert with a ban. Cheap: no I/O.
    pub fn record_block(&mut self, epoch_ms: i64, ip: IpAddr, port: u16, mode: Mode, scan: Scan) {
        if let Some(p) = self.push {
            self.pending.push(Record {
                epoch_ms,
                ip: ip.to_canonical(),
                port,
                mode,
                scan,
                ban_s: p.ban_s,
            });
        }
    }

    /// A log-only report (BLOCK_x=0): an alert without a decision, with CROWDSEC_SEND_LOG_ONLY.
    pub fn record_report(&mut self, epoch_ms: i64, ip: IpAddr, port: u16, mode: Mode, scan: Scan) {
        if self.push.is_some_and(|p| p.send_log_only) {
            self.pending.push(Record {
                epoch_ms,
                ip: ip.to_canonical(),
                port,
                mode,
                scan,
                ban_s: 0,
            });
        }
    }

    /// Once per loop turn: one write of the turn's records to the spool, then wake the thread.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err((path, e)) = self.shared.append(&self.pending) {
            self.shared.log(report::fleet_spool_write_failed(
                &path,
                &e.to_string(),
                self.pending.len(),
            ));
        }
        self.pending.clear();
        self.shared.wake();
    }

    /// Readable when [`Fleet::take_log`] has lines.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.back.as_fd()
    }

    /// The thread's log lines since the last call (clears `fd`).
    pub fn take_log(&mut self) -> Vec<String> {
        self.shared.take_log()
    }

    /// The link, the spool and the decisions, as the thread last published them.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Stops the thread: the turn's records are written first, then it waits at most ~2 s
    /// (an HTTP exchange in progress is left to end with the process; the spool says what
    /// was in flight). The spool stays for the next start. Returns the thread's last log
    /// lines.
    pub fn shutdown(mut self) -> Vec<String> {
        self.flush();
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            for _ in 0..200 {
                if t.is_finished() {
                    let _ = t.join();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        self.shared.take_log()
    }
}
