//! A sock_diag client: this host's listening TCP sockets and bound UDP sockets from the
//! kernel's NETLINK_SOCK_DIAG dumps (for TCP the kernel walks only its listening hash), with
//! the `/proc/net` text files as the fallback (they walk every connection: milliseconds per
//! read on a busy host). `socktable` parses both; this module only talks to the kernel.

use std::os::fd::AsRawFd;

use crate::socktable::{DiagStatus, ProcFile, SockTable, diag, diag_request};

/// Listening TCP sockets and bound UDP sockets, from NETLINK_SOCK_DIAG dumps (the kernel
/// walks only its listening hash for TCP); the `/proc` text if netlink fails.
pub fn read_listeners() -> SockTable {
    match diag_listeners() {
        Ok(t) => t,
        Err(_) => read_table(),
    }
}

fn diag_listeners() -> nix::Result<SockTable> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        socket,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let mut t = SockTable::default();
    let mut buf = vec![0u8; 32 * 1024];
    let asks = [
        (diag::AF_INET, diag::IPPROTO_TCP, diag::LISTEN_ONLY),
        (diag::AF_INET6, diag::IPPROTO_TCP, diag::LISTEN_ONLY),
        (diag::AF_INET, diag::IPPROTO_UDP, diag::ALL_STATES),
        (diag::AF_INET6, diag::IPPROTO_UDP, diag::ALL_STATES),
    ];
    for (seq, (family, proto, states)) in asks.into_iter().enumerate() {
        let req = diag_request(family, proto, states, seq as u32 + 1);
        sendto(
            fd.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        // Bounded: a dump ends with NLMSG_DONE; a kernel that never sends it is not waited
        // for beyond this many datagrams.
        for _ in 0..100_000 {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            match t.add_diag(proto == diag::IPPROTO_UDP, buf.get(..n).unwrap_or(&[])) {
                DiagStatus::More => {}
                DiagStatus::Done => break,
                // EAFNOSUPPORT etc.: IPv6 or UDP diag not available; the others still count.
                DiagStatus::Error(_) => break,
            }
        }
    }
    Ok(t)
}

/// The ports with a listening SCTP endpoint (none when the SCTP module is not loaded: then no
/// SCTP service can exist; reading the file never loads it).
pub fn read_sctp_listeners() -> std::collections::HashSet<u16> {
    std::fs::read_to_string("/proc/net/sctp/eps")
        .map(|t| crate::socktable::sctp_eps_ports(&t))
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
        let t = diag_listeners().expect("sock_diag");
        assert!(t.tcp_listening(l4.local_addr().unwrap().port()));
        assert!(t.tcp_listening(l6.local_addr().unwrap().port()));
        assert!(t.udp_bound(u.local_addr().unwrap().port()));
        assert_eq!(t.bad_lines, 0);
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
