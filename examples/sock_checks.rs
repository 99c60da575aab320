//! Measures the socket checks of the stealth and advanced modes (issue 24) against 1.2's bind
//! test they replace, with L listeners and C established loopback connections open in the
//! current network namespace: `unshare -n sh -c 'ip link set lo up; ulimit -n 65536;
//! cargo run --release --example sock_checks [L] [C]'`. Prints µs per call: the dump of
//! every TCP socket the flow check used per batch before, and the exact lookup of one
//! 4-tuple it uses now.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use portsentry::config::mode::Proto;
use portsentry::sys::capture::sockdiag;

/// 1.2's Smart-Verify as the daemon ran it before issue 24: bind the wildcard address, IPv4
/// and IPv6, without SO_REUSEADDR.
fn bind_test(port: u16) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, socket};
    for (family, addr) in [
        (AddressFamily::Inet, SocketAddr::from(([0u8; 4], port))),
        (AddressFamily::Inet6, SocketAddr::from(([0u16; 8], port))),
    ] {
        let Ok(fd) = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None) else {
            continue;
        };
        if family == AddressFamily::Inet6 {
            let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Ipv6V6Only, &true);
        }
        if bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)) == Err(nix::errno::Errno::EADDRINUSE)
        {
            return true;
        }
    }
    false
}

fn time(what: &str, n: u32, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    let mut yes = 0;
    for _ in 0..n {
        yes += u32::from(f());
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{what:<48} {us:>9.1} µs per call ({yes}/{n} true)");
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let listeners = args.next().flatten().unwrap_or(100);
    let conns = args.next().flatten().unwrap_or(5_000);
    let ls: Vec<TcpListener> = (0..listeners)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut keep = Vec::with_capacity(conns * 2);
    for _ in 0..conns {
        keep.push(TcpStream::connect(server.local_addr().unwrap()).unwrap());
        keep.push(server.accept().unwrap().0);
    }
    let lport = ls[0].local_addr().unwrap().port();
    let free = 1;
    println!("{listeners} listeners, {conns} established connections (both ends here)");
    time("1.2's bind test, a free port", 2_000, || bind_test(free));
    time("1.2's bind test, a listener's port", 2_000, || {
        bind_test(lport)
    });
    time("read_receivers(TCP): listeners only", 2_000, || {
        sockdiag::read_receivers(Proto::Tcp).tcp_listening(lport)
    });
    time("read_receivers(UDP): every UDP socket", 2_000, || {
        sockdiag::read_receivers(Proto::Udp).udp_bound(free)
    });
    let (a, b) = (keep[0].local_addr().unwrap(), keep[0].peer_addr().unwrap());
    time("read_tcp_flows: every TCP socket (before)", 50, || {
        sockdiag::read_tcp_flows().owns_flow(a, b)
    });
    // The exact lookup of one 4-tuple (a fresh FlowLookup each call: no answer kept, one
    // netlink socket opened per call as per batch), a connection's and a forged ACK's.
    time("FlowLookup: a connection's 4-tuple", 2_000, || {
        sockdiag::FlowLookup::default().owns(a, b)
    });
    let forged = SocketAddr::from(([127, 0, 0, 9], 40_000));
    time("FlowLookup: a forged ACK's 4-tuple", 2_000, || {
        sockdiag::FlowLookup::default().owns(a, forged)
    });
    // A flood of forged ACKs in one batch: one socket, one lookup per distinct tuple.
    let mut one = sockdiag::FlowLookup::default();
    let mut port = 0u16;
    time("FlowLookup: per forged tuple, one batch", 20_000, || {
        port = port.wrapping_add(1);
        one.owns(a, SocketAddr::from(([127, 0, 0, 9], port)))
    });
    time("read_listeners (the 2 s refresh)", 2_000, || {
        sockdiag::read_listeners().tcp_listening(lport)
    });
}
