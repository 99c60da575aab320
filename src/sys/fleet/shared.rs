//! What the fleet thread shares with the event loop ([`Shared`]: the spool under a mutex, the
//! log lines, the status, new settings after a reload, the stop flag and two eventfds), and
//! the helpers both sides of the thread use.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError};

use nix::sys::eventfd::EventFd;

use super::http::Client;
use super::spool::Spool;
use super::{Settings, Status};
use crate::fleet::alert::Record;
use crate::fleet::creds::LapiUrl;
use crate::fleet::spool::Scanned;
use crate::observe::report;
use crate::sys::clock;

/// Log lines waiting for the loop, at most (a loop that stopped reading must not make the
/// thread grow).
const MAX_LOG_LINES: usize = 10_000;

/// New settings from a reload, with the spool's state when pushing was just turned on.
pub(super) struct Reconfig {
    pub(super) settings: Settings,
    pub(super) scanned: Option<Scanned>,
}

/// A lock whose other holder panicked is taken all the same: the loop must go on after the
/// thread failed, and the thread after a caught panic (issue 24); every value behind these
/// locks is whole between two statements.
pub(super) fn relock<G>(e: PoisonError<G>) -> Result<G, PoisonError<G>> {
    Ok(e.into_inner())
}

/// What the loop and the thread share.
pub(super) struct Shared {
    spool: Mutex<Option<Spool>>,
    log: Mutex<Vec<String>>,
    pub(super) status: Mutex<Status>,
    pub(super) reconfig: Mutex<Option<Reconfig>>,
    /// The LAPI's addresses, with a generation that changes when they do.
    lapi: Mutex<(u64, Vec<IpAddr>)>,
    /// Set by the loop's `shutdown`; the thread ends at its next turn.
    pub(super) stop: AtomicBool,
    /// The thread waits on this; the loop writes it.
    pub(super) wake: EventFd,
    /// The loop polls this; the thread writes it with log lines.
    pub(super) back: EventFd,
}

impl Shared {
    pub(super) fn new(wake: EventFd, back: EventFd) -> Shared {
        Shared {
            spool: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            status: Mutex::new(Status::default()),
            reconfig: Mutex::new(None),
            lapi: Mutex::new((0, Vec::new())),
            stop: AtomicBool::new(false),
            wake,
            back,
        }
    }

    /// A line for the loop to log.
    pub(super) fn log(&self, line: String) {
        if let Ok(mut l) = self.log.lock().or_else(relock)
            && l.len() < MAX_LOG_LINES
        {
            l.push(line);
        }
        let _ = self.back.write(1);
    }

    pub(super) fn take_log(&self) -> Vec<String> {
        let _ = self.back.read();
        self.log
            .lock()
            .or_else(relock)
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub(super) fn wake(&self) {
        let _ = self.wake.write(1);
    }

    /// The LAPI's addresses and their generation.
    pub(super) fn lapi_addrs(&self) -> (u64, Vec<IpAddr>) {
        self.lapi
            .lock()
            .or_else(relock)
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Publishes the LAPI's addresses (a new generation when they differ) and wakes the loop.
    pub(super) fn set_lapi_addrs(&self, mut addrs: Vec<IpAddr>) {
        addrs.sort_unstable();
        addrs.dedup();
        let changed = match self.lapi.lock().or_else(relock) {
            Ok(mut g) if g.1 != addrs => {
                g.0 += 1;
                g.1 = addrs;
                true
            }
            _ => false,
        };
        if changed {
            let _ = self.back.write(1);
        }
    }

    pub(super) fn status(&self) -> Status {
        self.status
            .lock()
            .or_else(relock)
            .map(|s| *s)
            .unwrap_or_default()
    }

    pub(super) fn set_spool(&self, s: Spool) {
        if let Ok(mut g) = self.spool.lock().or_else(relock) {
            *g = Some(s);
        }
    }

    /// The open spool's path, if one is open.
    pub(super) fn spool_path(&self) -> Option<PathBuf> {
        self.spool
            .lock()
            .or_else(relock)
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.path().to_path_buf()))
    }

    /// The loop's one write per turn. Err: the spool's path and the error (the records are
    /// lost for the fleet).
    pub(super) fn append(&self, records: &[Record]) -> Result<(), (PathBuf, io::Error)> {
        let Ok(mut g) = self.spool.lock().or_else(relock) else {
            return Ok(());
        };
        match g.as_mut() {
            Some(s) => s
                .append(records)
                .map(|_| ())
                .map_err(|e| (s.path().to_path_buf(), e)),
            None => Ok(()),
        }
    }

    pub(super) fn reconfigure(&self, r: Reconfig) {
        if let Ok(mut g) = self.reconfig.lock().or_else(relock) {
            *g = Some(r);
        }
        self.wake();
    }

    /// Runs `f` on the open spool (None when none is open or the lock is poisoned).
    pub(super) fn with_spool<T>(&self, f: impl FnOnce(&mut Spool) -> T) -> Option<T> {
        self.spool.lock().or_else(relock).ok()?.as_mut().map(f)
    }
}

/// The HTTP client for `url`; None (logged) when the CA is unusable, which `load` already
/// refuses, so only a CA file changed under a running daemon gets here.
pub(super) fn client(
    url: &LapiUrl,
    tls: &super::tls::Tls,
    file: &Path,
    sh: &Shared,
) -> Option<Client> {
    Client::new(url.clone(), tls)
        .map_err(|e| sh.log(report::fleet_client_failed(url.as_str(), file, &e)))
        .ok()
}

/// A random number (a hash of the time with a random key), for jitter.
pub(super) fn rand64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(clock::now_ms());
    h.finish()
}
