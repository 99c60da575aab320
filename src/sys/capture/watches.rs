//! What the stealth and advanced modes watch, and this host's facts they are checked against:
//! the start-up sequences of §3.2 and §3.3 with their log lines (which ports are watched, which
//! are in use and said so), and when a port counts as in use (Smart-Verify): where a socket
//! would accept the probe (a TCP listener; a UDP socket that would receive the datagram), never
//! TIME_WAIT, established or outgoing connections (issue 24). `stealth` runs the capture.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use foldhash::HashSet;

use crate::capture::bpf::PortSet;
use crate::capture::socktable::SockTable;
use crate::capture::watch::{self, Skip, Watch, Watches};
use crate::config::Config;
use crate::config::mode::{Kind, Mode, Proto};
use crate::observe::report;
use crate::sys::capture::sockdiag;
use crate::sys::observe::log::Logger;

/// This host as last seen: its addresses, its listening and bound sockets, and the ports of
/// its SCTP endpoints.
#[derive(Default)]
pub(super) struct HostState {
    pub(super) addrs: HashSet<IpAddr>,
    pub(super) table: SockTable,
    pub(super) sctp: HashSet<u16>,
}

/// Smart-Verify (§3.2, §3.3): a socket in `t` would accept a probe of `proto` from `remote`
/// to local `port` (a TCP listener; an unconnected UDP socket, or one connected to `remote`).
pub(super) fn receives(t: &SockTable, proto: Proto, port: u16, remote: SocketAddr) -> bool {
    match proto {
        Proto::Tcp => t.tcp_listening(port),
        Proto::Udp => t.udp_receives(port, remote),
    }
}

pub(super) fn read_addrs() -> HashSet<IpAddr> {
    let mut s: HashSet<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.iter().map(|i| i.ip().to_canonical()).collect())
        .unwrap_or_default();
    s.insert(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    s.insert(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    s
}

/// `screen` a packet to `dst` against this host's addresses `addrs`. One found not for us, to
/// an address not known yet (added since the last refresh), is screened again after `addrs`
/// is read again (cheap, netlink), at most once per round (`read`: done this round), so a
/// probe to a new address is not missed; only such a packet asks (a lookup less for every
/// other packet).
pub(super) fn screen_fresh<T>(
    addrs: &mut HashSet<IpAddr>,
    dst: IpAddr,
    read: &mut bool,
    screen: impl Fn(&HashSet<IpAddr>) -> Result<T, Skip>,
) -> Result<T, Skip> {
    let screened = screen(addrs);
    if matches!(screened, Err(Skip::NotForUs)) && !*read && watch::unknown_destination(dst, addrs) {
        *addrs = read_addrs();
        *read = true;
        return screen(addrs);
    }
    screened
}

pub(super) fn read_host() -> HostState {
    HostState {
        addrs: read_addrs(),
        table: sockdiag::read_listeners(),
        sctp: sockdiag::read_sctp_listeners(),
    }
}

/// The kernel's word on a packet's transport checksum (`tp_status`, measured: local TCP and
/// UDP traffic on veth and loopback carries TP_STATUS_CSUMNOTREADY, packets from other hosts
/// Why the stealth or advanced modes could not start (logged already).
#[derive(Debug)]
pub enum StartError {
    /// Every port of a stealth mode is in use (1.2's line).
    AllInUse(Proto),
    /// The capture could not be opened.
    Capture(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AllInUse(proto) => f.write_str(&report::all_sockets_in_use(*proto)),
            StartError::Capture(e) => write!(f, "{e}"),
        }
    }
}
/// The configured ports of a stealth mode (TCP_PORTS / UDP_PORTS).
fn list_ports(cfg: &Config, proto: Proto) -> Vec<u16> {
    match proto {
        Proto::Tcp => cfg.tcp_ports.clone().unwrap_or_default(),
        Proto::Udp => cfg.udp_ports.clone().unwrap_or_default(),
    }
}

/// ADVANCED_PORTS_x, ADVANCED_EXCLUDE_x, and whether each key was present.
fn advanced_keys(cfg: &Config, proto: Proto) -> (u16, &[u16], bool, bool) {
    match proto {
        Proto::Tcp => (
            cfg.advanced_ports_tcp,
            &cfg.advanced_exclude_tcp,
            cfg.is_present("ADVANCED_PORTS_TCP"),
            cfg.is_present("ADVANCED_EXCLUDE_TCP"),
        ),
        Proto::Udp => (
            cfg.advanced_ports_udp,
            &cfg.advanced_exclude_udp,
            cfg.is_present("ADVANCED_PORTS_UDP"),
            cfg.is_present("ADVANCED_EXCLUDE_UDP"),
        ),
    }
}

/// §3.2 start-up for one stealth mode: a port some local socket would answer (a TCP
/// listener, an unconnected UDP socket) gets 1.2's "in use" line; when every port is, the
/// mode stops as in 1.2. Unlike 1.2 (a bind test, which TIME_WAIT and connections fail too),
/// only listeners count, and a busy port stays in the watched set: it is watched again once
/// its service stops (the filter and the per-packet check leave it out meanwhile).
fn stealth_watch(
    m: Mode,
    cfg: &Config,
    host: &HostState,
    log: &mut Logger,
) -> Result<Watch, StartError> {
    let proto = m.proto();
    let ports = list_ports(cfg, proto);
    let busy: BTreeSet<u16> = busy_ports(&host.table, proto).into_iter().collect();
    for &p in &ports {
        log.log(&report::going_into_stealth_listen_mode(proto, p));
        if busy.contains(&p) {
            log.log(&report::socket_in_use(p));
        }
    }
    if ports.iter().all(|p| busy.contains(p)) {
        let err = StartError::AllInUse(proto);
        log.log(&err.to_string());
        return Err(err);
    }
    Ok(Watch {
        mode: m,
        ports: PortSet::from_ports(ports),
    })
}

/// §3.3 start-up for one advanced mode. The listeners found now are logged as ignored, as
/// 1.2 does; unlike 1.2 they are not fixed for the run (they are checked per packet), and
/// only ports below N are watched even when nothing is excluded (§3.3 bug).
fn advanced_watch(m: Mode, cfg: &Config, host: &HostState, log: &mut Logger) -> Watch {
    let proto = m.proto();
    let (n, manual, n_present, ex_present) = advanced_keys(cfg, proto);
    if !n_present {
        log.log(&report::advanced_ports_missing(proto));
    }
    log.log(&report::advanced_monitor_first(u32::from(n)));
    if !ex_present {
        log.log(&report::advanced_manually_exclude_none());
    }
    for &p in manual {
        log.log(&report::advanced_manually_exclude(p));
    }
    let busy: BTreeSet<u16> = busy_ports(&host.table, proto)
        .into_iter()
        .filter(|&p| p < n)
        .collect();
    for &p in busy.iter().chain(manual) {
        log.log(&report::advanced_ignored_port(proto, p));
    }
    Watch {
        mode: m,
        ports: PortSet::below_except(u32::from(n), manual.iter().copied()),
    }
}

pub(super) fn busy_ports(t: &SockTable, proto: Proto) -> Vec<u16> {
    let mut v: Vec<u16> = match proto {
        Proto::Tcp => t.tcp_listen_ports().collect(),
        Proto::Udp => t.udp_bound_ports().collect(),
    };
    v.sort_unstable();
    v
}
/// The watched ports a local socket would answer now, by mode.
pub(super) fn unwatched_ports(w: &Watches, t: &SockTable) -> BTreeSet<(Mode, u16)> {
    [&w.tcp, &w.udp]
        .into_iter()
        .flatten()
        .flat_map(|w| {
            busy_ports(t, w.mode.proto())
                .into_iter()
                .filter(|&p| w.ports.contains(p))
                .map(move |p| (w.mode, p))
        })
        .collect()
}

pub(super) fn build_watches(
    cfg: &Config,
    modes: &[Mode],
    host: &HostState,
    log: &mut Logger,
) -> Result<Watches, StartError> {
    let mut w = Watches::default();
    for &m in modes {
        match m.kind() {
            Kind::Stealth => w.set(stealth_watch(m, cfg, host, log)?),
            Kind::Advanced => w.set(advanced_watch(m, cfg, host, log)),
            Kind::Classic => {}
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_means_a_socket_would_accept_the_probe() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let remote: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served, _) = l.accept().unwrap();
        let t = sockdiag::read_listeners();
        assert!(receives(&t, Proto::Tcp, port, remote));
        // The client end of a connection holds its ephemeral port, but nothing listens
        // there: a SYN to it gets a RST, so it is a probe (1.2's bind test said "in use").
        let cport = c.local_addr().unwrap().port();
        assert!(!receives(&t, Proto::Tcp, cport, remote));
        // The listener gone, the established connection left on its port hides nothing.
        drop(l);
        let t = sockdiag::read_receivers(Proto::Tcp);
        assert!(!receives(&t, Proto::Tcp, port, remote));
        drop((c, served));

        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let pu = u.local_addr().unwrap().port();
        let t = sockdiag::read_receivers(Proto::Udp);
        assert!(receives(&t, Proto::Udp, pu, remote));
        // Connected: only its peer's datagrams reach it.
        u.connect("127.0.0.1:9").unwrap();
        let t = sockdiag::read_receivers(Proto::Udp);
        assert!(!receives(&t, Proto::Udp, pu, remote));
        assert!(receives(&t, Proto::Udp, pu, "127.0.0.1:9".parse().unwrap()));
        drop(u);
        let t = sockdiag::read_receivers(Proto::Udp);
        assert!(!receives(
            &t,
            Proto::Udp,
            pu,
            "127.0.0.1:9".parse().unwrap()
        ));
    }
}
