//! RESOLVE_HOST: one reverse lookup per reported host, for the log text only (§6.6), with a
//! short timeout so a slow resolver cannot hold up detection for long. The lookup runs on a
//! helper thread; if it has not answered in time the address is used and the thread is left
//! to finish on its own (at most `MAX_INFLIGHT` such threads at once). After a lookup timed
//! out, none is tried for `BACKOFF_MS`: a resolver that does not answer costs one timeout per
//! back-off period, not one per reported host (a flood of reports would otherwise stall the
//! loop a second at a time).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const MAX_INFLIGHT: usize = 8;
static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
/// No lookups for this long after one timed out.
pub const BACKOFF_MS: u64 = 30_000;

/// What a lookup gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reverse {
    /// The name the resolver gave.
    Name(String),
    /// No name (or lookups are resting, or too many are in flight): use the address.
    NoName,
    /// The resolver did not answer in time: use the address; lookups rest for BACKOFF_MS.
    TimedOut,
}

/// Looks up names, resting after a timeout.
#[derive(Debug, Default)]
pub struct Resolver {
    /// No lookup before this (clock ms).
    rest_until: u64,
}

impl Resolver {
    /// The name of `ip` (at most `timeout`), unless lookups are resting.
    pub fn reverse(&mut self, ip: IpAddr, timeout: Duration, now_ms: u64) -> Reverse {
        if now_ms < self.rest_until {
            return Reverse::NoName;
        }
        let r = reverse(ip, timeout);
        if r == Reverse::TimedOut {
            self.rest_until = now_ms.saturating_add(BACKOFF_MS);
        }
        r
    }
}

/// The PTR name of `ip` (see [`Reverse`]).
fn reverse(ip: IpAddr, timeout: Duration) -> Reverse {
    if INFLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_INFLIGHT {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
        return Reverse::NoName;
    }
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let r = lookup(ip);
            INFLIGHT.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
        return Reverse::NoName;
    }
    match rx.recv_timeout(timeout) {
        Ok(Some(n)) => Reverse::Name(n),
        Ok(None) => Reverse::NoName,
        Err(_) => Reverse::TimedOut,
    }
}

fn lookup(ip: IpAddr) -> Option<String> {
    let sa = nix::sys::socket::SockaddrStorage::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a valid sockaddr of the length given; `host` is a writable buffer of the
    // length given; no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            nix::sys::socket::SockaddrLike::as_ptr(&sa),
            nix::sys::socket::SockaddrLike::len(&sa),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates `host` on success.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
