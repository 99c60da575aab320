//! Classic-mode sockets (`-tcp`, `-udp`, §3.1): one listening TCP socket or bound UDP socket
//! per port and address family. Fixes from 1.2: SO_REUSEADDR on TCP so a restart is not
//! locked out by TIME_WAIT; IPv6 beside IPv4 (V6ONLY, so each family binds on its own); a
//! failed bind closes its socket; and a port that a real service holds on either family is
//! left entirely to that service. UDP gets no SO_REUSEADDR: with it Linux would let us share
//! a port with a service that also set it, and steal its datagrams.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
    sockopt,
};

use crate::mode::{Mode, Proto};

/// A bound socket of a classic mode.
pub enum Sock {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
}

/// A classic mode's socket on one port and family.
pub struct Listener {
    /// The mode it serves.
    pub mode: Mode,
    /// Its port.
    pub port: u16,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The socket.
    pub sock: Sock,
}

impl Listener {
    /// Its descriptor, for poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.sock {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Udp(s) => s.as_fd(),
        }
    }
}

/// Receive buffer of UDP listening sockets: about 8,000 small datagrams queue.
const UDP_RCVBUF: usize = 8 << 20;

fn open(proto: Proto, v6: bool, port: u16) -> io::Result<OwnedFd> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket(
        family,
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    if proto == Proto::Tcp {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if proto == Proto::Udp {
        // A flood of probes from many sources arrives faster than a burst of blocks is
        // written; the default buffer (~200 small datagrams) overflowed within ms in the
        // nftables benchmark (bench/nft-blocks.sh). Root may exceed rmem_max; best effort.
        let _ = setsockopt(&fd, sockopt::RcvBufForce, &UDP_RCVBUF);
    }
    let addr: SocketAddr = if v6 {
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if proto == Proto::Tcp {
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

/// Why a port could not be watched.
#[derive(Debug)]
pub enum BindError {
    /// A socket on either family holds the port (a real service, or TIME_WAIT on UDP).
    InUse(io::Error),
    /// Any other error.
    Other(io::Error),
}

/// The outcome for one port: its sockets, and a note if only IPv4 could be bound.
pub struct Bound {
    /// The sockets bound (IPv4 and, if it worked, IPv6).
    pub listeners: Vec<Listener>,
    /// Why IPv6 could not be bound, if it could not.
    pub v6_error: Option<io::Error>,
}

fn wrap(mode: Mode, port: u16, v6: bool, fd: OwnedFd) -> Listener {
    let sock = match mode.proto() {
        Proto::Tcp => Sock::Tcp(TcpListener::from(fd)),
        Proto::Udp => Sock::Udp(UdpSocket::from(fd)),
    };
    Listener {
        mode,
        port,
        v6,
        sock,
    }
}

/// Bind `port` for a classic mode on IPv4 and IPv6. If either family reports the port in
/// use, nothing is kept: that port belongs to a real service.
pub fn bind_port(mode: Mode, port: u16) -> Result<Bound, BindError> {
    let proto = mode.proto();
    let v4 = open(proto, false, port);
    let v6 = open(proto, true, port);
    let in_use =
        |r: &io::Result<OwnedFd>| matches!(r, Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE));
    if in_use(&v4) || in_use(&v6) {
        let e = match (v4, v6) {
            (Err(e), _) if e.raw_os_error() == Some(libc::EADDRINUSE) => e,
            (_, Err(e)) => e,
            _ => io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        return Err(BindError::InUse(e));
    }
    match (v4, v6) {
        (Ok(a), Ok(b)) => Ok(Bound {
            listeners: vec![wrap(mode, port, false, a), wrap(mode, port, true, b)],
            v6_error: None,
        }),
        (Ok(a), Err(e)) => Ok(Bound {
            listeners: vec![wrap(mode, port, false, a)],
            v6_error: Some(e),
        }),
        (Err(_), Ok(b)) => Ok(Bound {
            listeners: vec![wrap(mode, port, true, b)],
            v6_error: None,
        }),
        (Err(e), Err(_)) => Err(BindError::Other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_a_service_is_not_claimed() {
        // An ephemeral port held by a "service" on IPv4 only.
        let svc = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = svc.local_addr().unwrap().port();
        match bind_port(Mode::Tcp, port) {
            Err(BindError::InUse(_)) => {}
            Ok(_) => panic!("claimed a port a service listens on"),
            Err(BindError::Other(e)) => panic!("unexpected error {e}"),
        }
        let svc = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = svc.local_addr().unwrap().port();
        assert!(matches!(
            bind_port(Mode::Udp, port),
            Err(BindError::InUse(_))
        ));
    }

    #[test]
    fn binds_free_ports_and_rebinds_after_close() {
        let probe = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let b = bind_port(Mode::Tcp, port).expect("free port binds");
        assert!(!b.listeners.is_empty());
        drop(b);
        assert!(bind_port(Mode::Tcp, port).is_ok(), "SO_REUSEADDR rebind");
    }
}
