//! The status socket: a unix stream socket beside the pid file (`/run/portsentry.sock`),
//! mode 0600, owned by root. A client connects; the daemon writes its snapshot (JSON) and
//! closes. The daemon reads nothing from the client, so there is nothing to parse or to
//! authenticate beyond the peer's uid (root, or the daemon's own), which is checked too.
//!
//! The event loop polls [`StatusServer::poll_fds`] and calls [`StatusServer::serve`] each
//! turn. Accepts and writes are non-blocking: a client that does not read gets what fits in
//! the socket buffer now and the rest on later turns, and is dropped after
//! [`CLIENT_DEADLINE_MS`]; at most [`MAX_CLIENTS`] wait at once. The loop never blocks on a
//! client.
//!
//! [`fetch`] is the client side (`portsentry status`).

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::PollFlags;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// A client that has not taken its snapshot by then is dropped.
pub const CLIENT_DEADLINE_MS: u64 = 2_000;
/// Clients served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 8;
/// Connections accepted per turn, so a connect flood cannot hold the loop.
const ACCEPTS_PER_TURN: usize = 16;

struct Client {
    stream: UnixStream,
    data: std::sync::Arc<[u8]>,
    sent: usize,
    deadline_ms: u64,
}

/// The listening side, owned by the daemon's loop.
pub struct StatusServer {
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Client>,
    /// Connections refused because their peer was not root nor our uid.
    pub refused: u64,
}

/// Whether `uid` may read the status: root, or the uid the daemon runs as.
fn allowed(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

impl StatusServer {
    /// Binds the socket at `path` (0600). A socket left there by a daemon that died is
    /// replaced (the caller has checked the pid file: no other instance runs); anything else
    /// at that path is an error, never removed.
    pub fn bind(path: &Path) -> io::Result<StatusServer> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Created with the process umask; no one but root can connect before the chmod:
        // connecting needs write permission, which the umask never gives to others here
        // (and the peer check below refuses them anyway).
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(StatusServer {
            path: path.to_path_buf(),
            listener,
            clients: Vec::new(),
            refused: 0,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the loop polls: the listener for new clients, and clients still being written.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut v = vec![(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in &self.clients {
            v.push((c.stream.as_fd(), PollFlags::POLLOUT));
        }
        v
    }

    /// Clients are waiting: the loop should come back within their deadline.
    pub fn busy(&self) -> bool {
        !self.clients.is_empty()
    }

    /// One turn: accept what is waiting, give each new client `snapshot()` (rendered once
    /// per turn, and only if someone asked), push on with earlier clients, drop those past
    /// their deadline. Never blocks.
    pub fn serve(&mut self, now_ms: u64, snapshot: impl FnOnce() -> Vec<u8>) {
        let mut snapshot = Some(snapshot);
        let mut data: Option<std::sync::Arc<[u8]>> = None;
        for _ in 0..ACCEPTS_PER_TURN {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let peer = getsockopt(&stream, PeerCredentials).map(|c| c.uid());
            if !peer.is_ok_and(allowed) || self.clients.len() >= MAX_CLIENTS {
                self.refused += 1;
                continue; // dropped: closed
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let d = match &data {
                Some(d) => d.clone(),
                None => {
                    let bytes = snapshot.take().map(|f| f()).unwrap_or_default();
                    let d: std::sync::Arc<[u8]> = bytes.into();
                    data = Some(d.clone());
                    d
                }
            };
            self.clients.push(Client {
                stream,
                data: d,
                sent: 0,
                deadline_ms: now_ms + CLIENT_DEADLINE_MS,
            });
        }
        self.clients.retain_mut(|c| {
            loop {
                let Some(rest) = c.data.get(c.sent..).filter(|r| !r.is_empty()) else {
                    return false; // all sent: close
                };
                match c.stream.write(rest) {
                    Ok(0) => return false,
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return now_ms < c.deadline_ms,
                    Err(_) => return false, // the client went away
                }
            }
        });
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why [`fetch`] failed.
#[derive(Debug)]
pub enum FetchError {
    /// No socket there, or no one listening: the daemon is not running (or is too old).
    NotListening(io::Error),
    /// The socket exists but we may not connect (not root).
    Denied(io::Error),
    /// Connected, but no complete answer in time.
    NoAnswer(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotListening(e) => write!(f, "nothing listens on the status socket ({e})"),
            FetchError::Denied(e) => write!(f, "the status socket refused us ({e}); run as root"),
            FetchError::NoAnswer(e) => {
                write!(f, "the daemon did not answer on its status socket ({e})")
            }
        }
    }
}

/// Reads one snapshot from the socket at `path`, waiting at most `timeout`.
pub fn fetch(path: &Path, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let mut s = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => FetchError::Denied(e),
        _ => FetchError::NotListening(e),
    })?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| FetchError::NoAnswer(e.to_string()))?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Ok(buf),
        // The daemon closes at once when it refuses a peer.
        Ok(_) => Err(FetchError::Denied(io::Error::new(
            ErrorKind::PermissionDenied,
            "closed without an answer",
        ))),
        Err(e) => Err(FetchError::NoAnswer(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn serve_until(server: &mut StatusServer, done: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !done() && t0.elapsed() < Duration::from_secs(5) {
            server.serve(t0.elapsed().as_millis() as u64, || {
                b"{\"running\":true}\n".to_vec()
            });
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_client_gets_the_snapshot_and_the_socket_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ps.sock");
        let mut server = StatusServer::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let p2 = path.clone();
        let client = std::thread::spawn(move || fetch(&p2, Duration::from_secs(3)));
        serve_until(&mut server, || client.is_finished());
        let got = client.join().unwrap().unwrap();
        assert_eq!(got, b"{\"running\":true}\n");
        drop(server);
        assert!(!path.exists(), "removed on drop");
    }

    #[test]
    fn a_client_that_never_reads_does_not_block_the_loop_and_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ps.sock");
        let mut server = StatusServer::bind(&path).unwrap();
        let _lazy = UnixStream::connect(&path).unwrap();
        let big = vec![b'x'; 8 << 20]; // far more than a socket buffer
        // A serve that blocked on the lazy client would never return: wait for it with a
        // generous bound (a loaded machine is slow, never 10 s slow for one 8 MiB copy).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            server.serve(0, || big.clone());
            let _ = tx.send(server);
        });
        let mut server = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("serve blocked on a client that never reads");
        assert!(server.busy(), "the rest waits for later turns");
        server.serve(CLIENT_DEADLINE_MS + 1, Vec::new);
        assert!(!server.busy(), "dropped after its deadline");
    }

    #[test]
    fn nothing_listening_and_a_foreign_file_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        assert!(matches!(
            fetch(&path, Duration::from_millis(100)),
            Err(FetchError::NotListening(_))
        ));
        std::fs::write(&path, "not a socket").unwrap();
        assert!(StatusServer::bind(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
        // A stale socket (its daemon died) is replaced.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        assert!(StatusServer::bind(&stale).is_ok());
    }
}
