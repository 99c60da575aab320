//! A sock_diag client: this host's listening TCP sockets and bound UDP sockets from the
//! kernel's NETLINK_SOCK_DIAG dumps (for TCP the kernel walks only its listening hash), with
//! the `/proc/net` text files as the fallback (they walk every connection: milliseconds per
//! read on a busy host). `socktable` parses both; this module only talks to the kernel.
//! One TCP connection is looked up by its 4-tuple ([`FlowLookup`], `socklookup`): the kernel
//! then searches its hash tables instead of walking every connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::capture::socklookup::{self, Answer};
use crate::capture::socktable::{DiagStatus, ProcFile, SockTable, diag, diag_request};
use crate::config::mode::Proto;

/// The dumps of one protocol: TCP listeners only, IPv4 and IPv6 in one dump (AF_UNSPEC:
/// `socktable::tcp_request`; the kernel walks its listening hash once, not once per family:
/// under a flood this read is made once per ring pass), UDP every socket (connected ones
/// too: the table tells them apart), IPv4 and IPv6.
fn asks(proto: Proto) -> &'static [(u8, u8, u32)] {
    match proto {
        Proto::Tcp => &[(diag::AF_UNSPEC, diag::IPPROTO_TCP, diag::LISTEN_ONLY)],
        Proto::Udp => &[
            (diag::AF_INET, diag::IPPROTO_UDP, diag::ALL_STATES),
            (diag::AF_INET6, diag::IPPROTO_UDP, diag::ALL_STATES),
        ],
    }
}

/// Listening TCP sockets and UDP sockets, from NETLINK_SOCK_DIAG dumps (the kernel
/// walks only its listening hash for TCP); the `/proc` text if netlink fails.
pub fn read_listeners() -> SockTable {
    let both = [asks(Proto::Tcp), asks(Proto::Udp)].concat();
    diag_dump(&both).unwrap_or_else(|_| read_table())
}

/// What would receive a probe of `proto` now: TCP listeners, or UDP sockets (one protocol's
/// dumps only; the per-round check of `sys::stealth`, for a socket opened since the last
/// full read).
pub fn read_receivers(proto: Proto) -> SockTable {
    diag_dump(asks(proto)).unwrap_or_else(|_| read_table())
}

/// Every TCP socket (connections in any state, listeners): the kernel walks its whole
/// connection table (16 ms with 10,000 sockets), so this is only the fallback of
/// [`FlowLookup`] where the exact lookup is not available.
pub fn read_tcp_flows() -> SockTable {
    diag_dump(&[
        (diag::AF_INET, diag::IPPROTO_TCP, diag::ALL_STATES),
        (diag::AF_INET6, diag::IPPROTO_TCP, diag::ALL_STATES),
    ])
    .unwrap_or_else(|_| read_table())
}

/// Is a packet's flow a TCP connection of this host (any state but LISTEN)? One exact
/// sock_diag lookup per 4-tuple (microseconds, whatever the number of connections), each
/// answer kept for the life of the value (one batch of packets: a flood repeating a tuple
/// costs one lookup). Where the lookup fails (no inet_diag for the family: an old or
/// stripped kernel) it reads every TCP socket once instead, as before.
#[derive(Default)]
pub struct FlowLookup {
    fd: Option<OwnedFd>,
    seq: u32,
    known: HashMap<(SocketAddr, SocketAddr), bool>,
    /// The fallback: every TCP socket, read once.
    table: Option<SockTable>,
    /// Lookups sent to the kernel (for the benchmark and tests).
    pub lookups: u64,
}

impl FlowLookup {
    /// Does a TCP connection have local end `local` and remote end `remote`?
    pub fn owns(&mut self, local: SocketAddr, remote: SocketAddr) -> bool {
        if let Some(&b) = self.known.get(&(local, remote)) {
            return b;
        }
        let b = match &self.table {
            Some(t) => t.owns_flow(local, remote),
            None => match self.lookup(local, remote) {
                Ok(b) => b,
                Err(_) => self
                    .table
                    .get_or_insert_with(read_tcp_flows)
                    .owns_flow(local, remote),
            },
        };
        self.known.insert((local, remote), b);
        b
    }

    fn lookup(&mut self, local: SocketAddr, remote: SocketAddr) -> nix::Result<bool> {
        use nix::sys::socket::{MsgFlags, NetlinkAddr, recv, sendto};
        let fd = match &self.fd {
            Some(fd) => fd,
            None => self.fd.insert(diag_socket()?),
        };
        self.seq = self.seq.wrapping_add(1);
        self.lookups += 1;
        let req = socklookup::request(local, remote, self.seq);
        sendto(
            fd.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        // The kernel answers an exact request while handling the send: the reply is queued
        // when sendto returns, so a receive that would wait means something is wrong.
        let mut buf = [0u8; 1024];
        for _ in 0..4 {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?;
            match socklookup::answer(buf.get(..n).unwrap_or(&[]), self.seq, local, remote) {
                Some(Answer::Flow) => return Ok(true),
                Some(Answer::NoFlow) => return Ok(false),
                Some(Answer::Failed(e)) => return Err(nix::errno::Errno::from_raw(e)),
                // A stale reply to an earlier request: read on.
                None => {}
            }
        }
        Err(nix::errno::Errno::EPROTO)
    }
}

/// A NETLINK_SOCK_DIAG socket (for a dump or an exact lookup).
fn diag_socket() -> nix::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
    socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
}

thread_local! {
    /// The dumps' socket and buffer, kept from one read to the next: Smart-Verify reads the
    /// listening sockets once per ring pass, and opening, closing and zeroing 32 KiB for
    /// each were 4% of the daemon's samples under a flood from one /24 (perf, 200,000
    /// packets a second; in `bench/flood.py` the CPU of three runs each, 0.86-0.96 s before
    /// and 0.83-0.95 s after, is within the noise). A dump that did not end cleanly drops
    /// the socket (its leftovers must not be read as the next dump's).
    static DUMPER: std::cell::RefCell<(Option<OwnedFd>, Vec<u8>)> =
        const { std::cell::RefCell::new((None, Vec::new())) };
}

fn diag_dump(asks: &[(u8, u8, u32)]) -> nix::Result<SockTable> {
    DUMPER.with_borrow_mut(|(sock, buf)| {
        if buf.is_empty() {
            buf.resize(32 * 1024, 0);
        }
        let fd = match sock {
            Some(fd) => fd,
            None => sock.insert(diag_socket()?),
        };
        let r = dump_on(fd, buf, asks);
        if !matches!(r, Ok((_, true))) {
            *sock = None;
        }
        r.map(|(t, _)| t)
    })
}

/// The dumps of `asks` on `fd`; true when each ended (NLMSG_DONE or an error message), so
/// nothing of them is left on the socket. An ask of family AF_UNSPEC (TCP, both families in
/// one dump) that the kernel refuses is made again as one dump per family.
fn dump_on(fd: &OwnedFd, buf: &mut [u8], asks: &[(u8, u8, u32)]) -> nix::Result<(SockTable, bool)> {
    let mut t = SockTable::default();
    let mut clean = true;
    let mut seq = 0;
    for &(family, proto, states) in asks {
        seq += 1;
        let req = if family == diag::AF_UNSPEC {
            crate::capture::socktable::tcp_request(states, seq)
        } else {
            diag_request(family, proto, states, seq)
        };
        let end = dump_one(fd, buf, &mut t, &req, proto == diag::IPPROTO_UDP)?;
        if family == diag::AF_UNSPEC && matches!(end, Some(DiagStatus::Error(_))) {
            for f in [diag::AF_INET, diag::AF_INET6] {
                seq += 1;
                let req = diag_request(f, proto, states, seq);
                clean &= dump_one(fd, buf, &mut t, &req, false)?.is_some();
            }
            continue;
        }
        clean &= end.is_some();
    }
    Ok((t, clean))
}

/// One dump into `t`: how it ended (NLMSG_DONE or an error message), None if it did not.
fn dump_one(
    fd: &OwnedFd,
    buf: &mut [u8],
    t: &mut SockTable,
    req: &[u8],
    udp: bool,
) -> nix::Result<Option<DiagStatus>> {
    use nix::sys::socket::{MsgFlags, NetlinkAddr, recv, sendto};
    sendto(
        fd.as_raw_fd(),
        req,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    // Bounded: a dump ends with NLMSG_DONE; a kernel that never sends it is not waited
    // for beyond this many datagrams.
    for _ in 0..100_000 {
        let n = recv(fd.as_raw_fd(), buf, MsgFlags::empty())?;
        match t.add_diag(udp, buf.get(..n).unwrap_or(&[])) {
            DiagStatus::More => {}
            // An error (EAFNOSUPPORT etc.: IPv6 or UDP diag not available) ends this dump
            // too; the others still count.
            end => return Ok(Some(end)),
        }
    }
    Ok(None)
}

/// The ports with a listening SCTP endpoint (none when the SCTP module is not loaded: then no
/// SCTP service can exist; reading the file never loads it).
pub fn read_sctp_listeners() -> foldhash::HashSet<u16> {
    std::fs::read_to_string("/proc/net/sctp/eps")
        .map(|t| crate::capture::socktable::sctp_eps_ports(&t))
        .unwrap_or_default()
}

/// The socket table from the `/proc/net` files (slow: they walk every connection).
pub fn read_table() -> SockTable {
    let mut t = SockTable::default();
    for f in ProcFile::ALL {
        // A missing file (IPv6 disabled) simply adds nothing.
        if let Ok(text) = std::fs::read_to_string(f.path()) {
            t.add(f, &text);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_diag_sees_listeners_and_bound_sockets() {
        let l4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // An established connection and a connected UDP socket: their local ports are no
        // listeners, and the UDP one receives only from its peer.
        let c = std::net::TcpStream::connect(l4.local_addr().unwrap()).unwrap();
        let (served, _) = l4.accept().unwrap();
        let cu = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        cu.connect(u.local_addr().unwrap()).unwrap();
        let t = read_listeners();
        assert!(t.tcp_listening(l4.local_addr().unwrap().port()));
        assert!(t.tcp_listening(l6.local_addr().unwrap().port()));
        assert!(t.udp_bound(u.local_addr().unwrap().port()));
        assert!(!t.tcp_listening(c.local_addr().unwrap().port()));
        let cport = cu.local_addr().unwrap().port();
        assert!(!t.udp_bound(cport));
        assert!(t.udp_receives(cport, u.local_addr().unwrap()));
        assert!(!t.udp_receives(cport, "127.0.0.1:9".parse().unwrap()));
        assert_eq!(t.bad_lines, 0);
        // The per-round reads see the same, on the same socket (kept between reads).
        let kept = || DUMPER.with_borrow(|(s, _)| s.as_ref().map(|f| f.as_raw_fd()));
        let first = kept();
        assert!(first.is_some());
        let tcp = read_receivers(Proto::Tcp);
        assert_eq!(kept(), first);
        assert!(tcp.tcp_listening(l4.local_addr().unwrap().port()));
        assert!(!tcp.udp_bound(u.local_addr().unwrap().port()));
        let udp = read_receivers(Proto::Udp);
        assert!(udp.udp_bound(u.local_addr().unwrap().port()));
        // Once the listener is closed, the port with a connection left on it is free, and
        // the connection is still known by its 4-tuple.
        let port = l4.local_addr().unwrap().port();
        drop(l4);
        assert!(!read_receivers(Proto::Tcp).tcp_listening(port));
        let flows = read_tcp_flows();
        assert!(flows.owns_flow(served.local_addr().unwrap(), served.peer_addr().unwrap()));
        assert!(flows.owns_flow(c.local_addr().unwrap(), c.peer_addr().unwrap()));
        drop((c, served));
    }

    /// One dump gives the TCP listeners of both families (the kernel walks its listening
    /// hash once), the same as one dump per family.
    #[test]
    fn one_tcp_dump_finds_both_families_as_one_dump_each_does() {
        let l4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let (p4, p6) = (
            l4.local_addr().unwrap().port(),
            l6.local_addr().unwrap().port(),
        );
        let one = diag_dump(asks(Proto::Tcp)).unwrap();
        let each = diag_dump(&[
            (diag::AF_INET, diag::IPPROTO_TCP, diag::LISTEN_ONLY),
            (diag::AF_INET6, diag::IPPROTO_TCP, diag::LISTEN_ONLY),
        ])
        .unwrap();
        for t in [&one, &each] {
            assert!(t.tcp_listening(p4) && t.tcp_listening(p6));
            assert_eq!(t.bad_lines, 0);
        }
        drop(l6);
        let one = diag_dump(asks(Proto::Tcp)).unwrap();
        assert!(one.tcp_listening(p4) && !one.tcp_listening(p6));
    }

    /// The exact lookup finds a connection by its 4-tuple, both ends, IPv4 and IPv6, also in
    /// TIME_WAIT; not a tuple nobody has, nor a listener's port, and agrees with the dump.
    #[test]
    fn the_exact_lookup_finds_connections_by_their_tuple() {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let l = std::net::TcpListener::bind(any).unwrap();
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (served, _) = l.accept().unwrap();
            let (cl, cr) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
            let mut f = FlowLookup::default();
            assert!(f.owns(cl, cr), "{cl} {cr}");
            assert!(f.owns(cr, cl), "the served end");
            let stranger = SocketAddr::new(cl.ip(), 9);
            // The listener's port with a tuple nobody has: the kernel falls back to the
            // listener, which is no flow.
            assert!(!f.owns(cr, stranger));
            assert!(!f.owns(stranger, cr));
            assert_eq!(f.lookups, 4);
            // Known answers are not asked again.
            assert!(f.owns(cl, cr));
            assert_eq!(f.lookups, 4);
            assert!(f.table.is_none(), "no fallback needed");
            // The side that closes first is left in TIME_WAIT: still a flow of this host.
            drop(c);
            let mut buf = [0u8; 1];
            let _ = std::io::Read::read(&mut &served, &mut buf);
            drop(served);
            let t0 = std::time::Instant::now();
            while !read_tcp_flows().owns_flow(cl, cr) && t0.elapsed().as_secs() < 10 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(read_tcp_flows().owns_flow(cl, cr), "TIME_WAIT in the dump");
            assert!(FlowLookup::default().owns(cl, cr), "TIME_WAIT {cl} {cr}");
        }
    }

    #[test]
    fn the_live_table_sees_listeners_bound_sockets_and_flows() {
        let l4 = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let l6 = std::net::TcpListener::bind("[::]:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l4.local_addr().unwrap()).unwrap();
        let t = read_table();
        assert!(t.tcp_listening(l4.local_addr().unwrap().port()));
        assert!(t.tcp_listening(l6.local_addr().unwrap().port()));
        assert!(t.udp_bound(u.local_addr().unwrap().port()));
        assert!(t.owns_flow(c.local_addr().unwrap(), c.peer_addr().unwrap()));
    }
}
