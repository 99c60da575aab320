//! RESOLVE_HOST: one reverse lookup per reported host, for the log text only (§6.6), with a
//! short timeout so a slow resolver cannot hold up detection for long. The lookup runs on a
//! helper thread; if it has not answered in time the address is used and the thread is left
//! to finish on its own (at most `MAX_INFLIGHT` such threads at once).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const MAX_INFLIGHT: usize = 8;
static INFLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The PTR name of `ip`, or None (no name, timeout, too many lookups in flight).
pub fn reverse(ip: IpAddr, timeout: Duration) -> Option<String> {
    if INFLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_INFLIGHT {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
        return None;
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
        return None;
    }
    rx.recv_timeout(timeout).ok().flatten()
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
