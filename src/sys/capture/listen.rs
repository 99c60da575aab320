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

use crate::config::mode::{Mode, Proto};

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

/// Receive buffer asked for UDP listening sockets. The kernel doubles it and charges each
/// queued datagram its buffer's true size: 832 bytes for a small datagram from a veth here
/// (`/proc/net/udp` rx_queue over queued datagrams, IPv4 and IPv6 alike; a NIC driver may
/// use more), so 64 MiB hold ~80,000 probes — the whole 50,000-per-family burst of
/// `bench/nft-blocks.sh` while the daemon does not run at all (8 MiB held 20,420 and lost
/// the rest). Memory is only used while datagrams wait, and all UDP sockets together stay
/// under the kernel's `net.ipv4.udp_mem`.
pub const UDP_RCVBUF: usize = 32 << 20;

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
        // written, and a busy machine may not run the daemon for a while; the default buffer
        // (~250 small datagrams) overflowed within ms in the nftables benchmark
        // (bench/nft-blocks.sh). SO_RCVBUFFORCE (CAP_NET_ADMIN) may exceed
        // net.core.rmem_max; without it SO_RCVBUF gets what rmem_max allows. Best effort:
        // a smaller buffer only loses more of a flood.
        if setsockopt(&fd, sockopt::RcvBufForce, &UDP_RCVBUF).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &UDP_RCVBUF);
        }
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

    /// The receive buffer of a UDP socket bound by `bind_port`.
    fn udp_rcvbuf() -> usize {
        let probe = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let b = bind_port(Mode::Udp, port).expect("free port binds");
        let l = b.listeners.first().expect("a socket");
        nix::sys::socket::getsockopt(&l.fd(), sockopt::RcvBuf).unwrap()
    }

    fn rmem_max() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// capability(7): CAP_NET_ADMIN is number 12.
    const CAP_NET_ADMIN: u32 = 12;

    fn has_net_admin() -> bool {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap();
        eff & (1 << CAP_NET_ADMIN) != 0
    }

    #[test]
    fn udp_sockets_get_a_receive_buffer_for_a_burst() {
        let got = udp_rcvbuf();
        if has_net_admin() {
            // Past rmem_max with CAP_NET_ADMIN; the kernel reports twice what was set.
            assert_eq!(got, 2 * UDP_RCVBUF);
        } else {
            assert_eq!(got, 2 * UDP_RCVBUF.min(rmem_max()));
        }
    }

    #[test]
    fn without_cap_net_admin_udp_sockets_get_what_rmem_max_allows() {
        if !has_net_admin() {
            eprintln!("without_cap_net_admin…: not privileged, the test above covers it");
            return;
        }
        // Capabilities are per thread on Linux: drop CAP_NET_ADMIN from the effective set
        // of a thread of our own, and bind there.
        let got = std::thread::spawn(|| {
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            #[derive(Clone, Copy, Default)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let mut hdr = Header {
                version: 0x2008_0522,
                pid: 0,
            };
            let mut data = [Data::default(); 2];
            // SAFETY: capget writes a version-3 header's two data structs, which we pass.
            let rc = unsafe {
                libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr())
            };
            assert_eq!(rc, 0, "capget");
            data[0].effective &= !(1 << CAP_NET_ADMIN);
            // SAFETY: capset reads a version-3 header and two data structs, which we pass;
            // it changes only this thread's credentials.
            let rc =
                unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
            assert_eq!(rc, 0, "capset");
            assert!(!has_net_admin());
            udp_rcvbuf()
        })
        .join()
        .unwrap();
        assert_eq!(got, 2 * UDP_RCVBUF.min(rmem_max()));
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
