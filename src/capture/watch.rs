//! What the stealth and advanced modes watch, and the decision for one captured packet: a
//! [`Hit`] for the engine, or the reason it is not one. Two pure steps with the shell's facts
//! between them:
//!
//! 1. [`screen`] with this host's addresses: watched protocol and port, not from ourselves,
//!    addressed to us, a probe by its TCP flags (ACK/RST packets are only candidates);
//! 2. the shell finds the two facts a candidate needs ([`Facts`]: does a local socket hold
//!    the port now, does one own the flow), with a system call or two;
//! 3. [`decide`]: Smart-Verify (a port with a live local listener, or a bound UDP socket, is
//!    never a trap) and, for candidates, no local flow.
//!
//! The order follows 1.2 (§3.2, §3.3) with our fixes: packets from one of this host's own
//! addresses, and packets not addressed to this host (forwarded traffic a router's capture
//! also sees), are never hits.
//!
//! The TCP mode also watches SCTP and ICMP probes (issue 18, [`screen_other`]): SCTP INIT and
//! COOKIE ECHO to the ports it watches for TCP (SCTP shares TCP's port numbers, and nmap's
//! `-sY`/`-sZ` take the same port lists), and ICMP echo, timestamp and address-mask requests
//! (ICMPv6 echo requests) to any of this host's addresses: host discovery before a TCP scan.
//! One process per protocol (Debian's default) thus reports each of them once.
//!
//! Pure: facts come in as data.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::capture::bpf::{FilterSpec, PortSet};
use crate::capture::classify::{TcpClass, classify_tcp};
use crate::capture::wire::{Other, Probe, ipproto};
use crate::config::mode::{Kind, Mode, Proto};
use crate::engine::{Detail, Hit};

/// `sll_pkttype` of a link-layer broadcast (linux/if_packet.h).
pub const PACKET_BROADCAST: u8 = 1;

/// One capture mode and its ports. For an advanced mode `ports` is "below N minus the manual
/// exclusions"; live listeners are checked per packet, not removed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The mode.
    pub mode: Mode,
    /// The ports it watches.
    pub ports: PortSet,
}

/// At most one TCP and one UDP capture mode per process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watches {
    /// The TCP capture mode, if any.
    pub tcp: Option<Watch>,
    /// The UDP capture mode, if any.
    pub udp: Option<Watch>,
    /// Also act on packets from this host's own addresses (off by default).
    pub own_sources: bool,
}

impl Watches {
    /// The mode watching `proto`.
    pub fn get(&self, proto: Proto) -> Option<&Watch> {
        match proto {
            Proto::Tcp => self.tcp.as_ref(),
            Proto::Udp => self.udp.as_ref(),
        }
    }

    /// Set the mode of `w`'s protocol.
    pub fn set(&mut self, w: Watch) {
        match w.mode.proto() {
            Proto::Tcp => self.tcp = Some(w),
            Proto::Udp => self.udp = Some(w),
        }
    }

    /// An advanced mode is among them.
    pub fn has_advanced(&self) -> bool {
        [&self.tcp, &self.udp]
            .into_iter()
            .flatten()
            .any(|w| w.mode.kind() == Kind::Advanced)
    }

    /// No capture mode.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.udp.is_none()
    }

    /// Can an IPv4 datagram of this protocol be a hit? (`defrag` keeps only their fragments.)
    pub fn judges_v4(&self, proto: u8) -> bool {
        match proto {
            ipproto::TCP | ipproto::SCTP | ipproto::ICMP => self.tcp.is_some(),
            ipproto::UDP => self.udp.is_some(),
            _ => false,
        }
    }

    /// The kernel filter: watched ports, minus ports an advanced mode sees a listener on
    /// (`busy`), so a busy service's traffic never reaches userspace. Stealth modes keep
    /// their ports: a service there is rare and Smart-Verify handles it.
    pub fn filter(&self, busy_tcp: &[u16], busy_udp: &[u16]) -> FilterSpec {
        let spec = |w: &Option<Watch>, busy: &[u16]| {
            // Ports a local socket would answer are no trap (§3.2, §3.3): their traffic
            // stays in the kernel.
            w.as_ref().map(|w| w.ports.minus(busy.iter().copied()))
        };
        FilterSpec {
            tcp: spec(&self.tcp, busy_tcp),
            udp: spec(&self.udp, busy_udp),
            other: self.tcp.is_some(),
        }
    }
}

/// `sll_pkttype` of a packet this host sends.
pub const PACKET_OUTGOING: u8 = 4;

/// Flows this host opened recently, learned from its own outgoing packets: TCP SYN and
/// SYN+ACK segments, and UDP datagrams. A socket check misses a TCP connection already gone
/// (closed by RST, without TIME_WAIT) and a late UDP reply to a client socket already closed
/// (a DNS answer after the resolver gave up); the ring delivers our packet before the
/// peer's reply, so this does not. Bounded; entries expire after `ttl_ms`.
#[derive(Debug, Clone)]
pub struct RecentFlows {
    seen: HashMap<(Proto, SocketAddr, SocketAddr), u64>,
    ttl_ms: u64,
    cap: usize,
}

impl RecentFlows {
    /// Remember flows for `ttl_ms`, at most `cap` of them.
    pub fn new(ttl_ms: u64, cap: usize) -> RecentFlows {
        RecentFlows {
            seen: HashMap::new(),
            ttl_ms,
            cap: cap.max(1),
        }
    }

    /// Record an outgoing packet: a UDP datagram, or a TCP segment with SYN.
    pub fn note_outgoing(&mut self, p: &Probe, now: u64) {
        if p.proto == Proto::Tcp && p.tcp_flags & crate::capture::classify::tcp_flags::SYN == 0 {
            return;
        }
        if self.seen.len() >= self.cap {
            let ttl = self.ttl_ms;
            self.seen.retain(|_, t| now.saturating_sub(*t) < ttl);
            if self.seen.len() >= self.cap {
                // Still full of live entries: start over rather than grow without bound.
                self.seen.clear();
            }
        }
        let key = (
            p.proto,
            SocketAddr::new(p.src.to_canonical(), p.src_port),
            SocketAddr::new(p.dst.to_canonical(), p.dst_port),
        );
        self.seen.insert(key, now);
    }

    /// Did this host open `local` <-> `remote` lately?
    pub fn contains(&self, proto: Proto, local: SocketAddr, remote: SocketAddr, now: u64) -> bool {
        let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        self.seen
            .get(&(proto, canon(local), canon(remote)))
            .is_some_and(|t| now.saturating_sub(*t) < self.ttl_ms)
    }

    /// How many flows are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// None remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Why a packet is not a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a watched protocol or port (the kernel filter passes a superset).
    Unwatched,
    /// From one of this host's own addresses.
    OwnSource,
    /// Not addressed to this host (forwarded, or multicast), and not a UDP broadcast.
    NotForUs,
    /// Bare RST or RST+ACK (see `classify`).
    NotAProbe,
    /// Smart-Verify: a local socket listens on (TCP) or is bound to (UDP) the port.
    InUse,
    /// ACK/RST-bearing TCP, or UDP, of a flow this host owns or opened: a reply, not a probe.
    OwnFlow,
}

/// A packet [`screen`] let through: a hit unless the facts about its port and flow say
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The hit it becomes.
    pub hit: Hit,
    /// This host's end of the flow (destination address and port).
    pub local: SocketAddr,
    /// The sender's end.
    pub remote: SocketAddr,
    /// Whether a local flow would explain it (TCP with ACK or RST, and UDP): then the shell
    /// must find out whether one does.
    pub needs_flow_check: bool,
}

/// What the shell found out about a candidate's port and flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// A socket would accept the probe: TCP, a listener on the port; UDP, an unconnected
    /// socket on it or one connected to the sender (never TIME_WAIT, a connection or an
    /// outgoing connection's local port).
    pub port_in_use: bool,
    /// A local socket owns the flow, or this host opened it recently (only asked when
    /// [`Candidate::needs_flow_check`]).
    pub flow_is_ours: bool,
}

/// Step 1 for one packet: `pkttype` is the capture's `sll_pkttype`, `own` this host's
/// addresses (canonical: IPv4-mapped as IPv4).
pub fn screen(
    w: &Watches,
    p: &Probe,
    pkttype: u8,
    own: &HashSet<IpAddr>,
) -> Result<Candidate, Skip> {
    let watch = w.get(p.proto).ok_or(Skip::Unwatched)?;
    if !watch.ports.contains(p.dst_port) {
        return Err(Skip::Unwatched);
    }
    let src = p.src.to_canonical();
    if !w.own_sources && own.contains(&src) {
        return Err(Skip::OwnSource);
    }
    // 1.2's raw socket sees IPv4 broadcasts (hence Debian's ADVANCED_EXCLUDE_UDP of 137, 138,
    // 67, 520), but multicast only for groups a local socket joined, which then also holds
    // the port; so multicast (mDNS, SSDP, ...) is never a probe here.
    let broadcast = !p.dst.is_multicast()
        && (pkttype == PACKET_BROADCAST || matches!(p.dst, IpAddr::V4(a) if a.is_broadcast()));
    let for_us = own.contains(&p.dst.to_canonical()) || (p.proto == Proto::Udp && broadcast);
    if !for_us {
        return Err(Skip::NotForUs);
    }
    let (detail, candidate) = match p.proto {
        Proto::Udp => (Detail::UdpScan, false),
        Proto::Tcp => match classify_tcp(p.tcp_flags) {
            TcpClass::Probe(t) => (Detail::TcpScan(t), false),
            TcpClass::Candidate(t) => (Detail::TcpScan(t), true),
            TcpClass::NotAProbe => return Err(Skip::NotAProbe),
        },
    };
    Ok(Candidate {
        hit: Hit {
            src,
            port: p.dst_port,
            mode: watch.mode,
            detail,
            ip_options: p.ip_options,
        },
        local: SocketAddr::new(p.dst, p.dst_port),
        remote: SocketAddr::new(p.src, p.src_port),
        needs_flow_check: candidate || p.proto == Proto::Udp,
    })
}

/// Step 1 for an SCTP or ICMP probe: the TCP mode watches them (see the module doc), from
/// sources other than this host, to one of its own addresses (not broadcast or multicast,
/// which the kernel answers for ICMP only when told to).
pub fn screen_other(w: &Watches, o: &Other, own: &HashSet<IpAddr>) -> Result<Candidate, Skip> {
    let watch = w.tcp.as_ref().ok_or(Skip::Unwatched)?;
    if o.kind.is_sctp() && !watch.ports.contains(o.dst_port) {
        return Err(Skip::Unwatched);
    }
    let src = o.src.to_canonical();
    if !w.own_sources && own.contains(&src) {
        return Err(Skip::OwnSource);
    }
    if !own.contains(&o.dst.to_canonical()) {
        return Err(Skip::NotForUs);
    }
    Ok(Candidate {
        hit: Hit {
            src,
            port: o.dst_port,
            mode: watch.mode,
            detail: Detail::Other(o.kind),
            ip_options: o.ip_options,
        },
        local: SocketAddr::new(o.dst, o.dst_port),
        remote: SocketAddr::new(o.src, o.src_port),
        needs_flow_check: false,
    })
}

/// Step 3: the candidate with the facts about its port and flow.
pub fn decide(c: Candidate, facts: Facts) -> Result<Hit, Skip> {
    if facts.port_in_use {
        return Err(Skip::InUse);
    }
    if c.needs_flow_check && facts.flow_is_ours {
        return Err(Skip::OwnFlow);
    }
    Ok(c.hit)
}

/// Does a packet to `dst` name an address this host may have gained since `own` was read?
/// (Unicast and not in `own`: the shell then reads the addresses again before screening.)
pub fn unknown_destination(dst: IpAddr, own: &HashSet<IpAddr>) -> bool {
    let dst = dst.to_canonical();
    !dst.is_multicast() && !matches!(dst, IpAddr::V4(a) if a.is_broadcast()) && !own.contains(&dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::classify::TcpScanType;
    use crate::capture::classify::tcp_flags::*;

    #[derive(Default)]
    struct Fake {
        own: HashSet<IpAddr>,
        tcp: HashSet<u16>,
        udp: HashSet<u16>,
        flows: HashSet<(SocketAddr, SocketAddr)>,
    }

    /// The shell's part on test data: screen, find the facts, decide.
    fn judge(w: &Watches, p: &Probe, pkttype: u8, f: &Fake) -> Result<Hit, Skip> {
        let c = screen(w, p, pkttype, &f.own)?;
        let port_in_use = match p.proto {
            Proto::Tcp => f.tcp.contains(&c.hit.port),
            Proto::Udp => f.udp.contains(&c.hit.port),
        };
        let facts = Facts {
            port_in_use,
            flow_is_ours: f.flows.contains(&(c.local, c.remote)),
        };
        decide(c, facts)
    }

    #[test]
    fn the_flow_is_only_asked_about_for_ack_rst_and_udp() {
        let (w, f) = (watches(), fake());
        let need = |p: Probe| screen(&w, &p, 0, &f.own).unwrap().needs_flow_check;
        assert!(!need(probe(THEM, ME, Proto::Tcp, 1, SYN)));
        assert!(!need(probe(THEM, ME, Proto::Tcp, 1, FIN | PSH | URG)));
        assert!(need(probe(THEM, ME, Proto::Tcp, 1, ACK)));
        assert!(need(probe(THEM, ME, Proto::Tcp, 1, SYN | RST)));
        assert!(need(probe(THEM, ME, Proto::Udp, 53, 0)));
        // A SYN with a flow that is ours is still a probe (a flow never explains a SYN).
        let c = screen(&w, &probe(THEM, ME, Proto::Tcp, 1, SYN), 0, &f.own).unwrap();
        let facts = Facts {
            port_in_use: false,
            flow_is_ours: true,
        };
        assert!(decide(c, facts).is_ok());
        assert_eq!(
            decide(
                c,
                Facts {
                    port_in_use: true,
                    ..facts
                }
            ),
            Err(Skip::InUse)
        );
    }

    #[test]
    fn unknown_destinations_are_unicast_addresses_not_yet_known() {
        let f = fake();
        assert!(!unknown_destination(ip(ME), &f.own));
        assert!(!unknown_destination(ip("::ffff:192.0.2.1"), &f.own));
        assert!(unknown_destination(ip("192.0.2.99"), &f.own));
        assert!(unknown_destination(ip("2001:db8::99"), &f.own));
        assert!(!unknown_destination(ip("224.0.0.251"), &f.own));
        assert!(!unknown_destination(ip("ff02::1"), &f.own));
        assert!(!unknown_destination(ip("255.255.255.255"), &f.own));
    }

    const ME: &str = "192.0.2.1";
    const THEM: &str = "192.0.2.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.own.insert(ip(ME));
        f.own.insert(ip("2001:db8::1"));
        f.own.insert(ip("127.0.0.1"));
        f
    }

    fn probe(src: &str, dst: &str, proto: Proto, dport: u16, flags: u8) -> Probe {
        Probe {
            src: ip(src),
            dst: ip(dst),
            proto,
            src_port: 40000,
            dst_port: dport,
            tcp_flags: flags,
            ip_options: false,
        }
    }

    fn watches() -> Watches {
        let mut w = Watches::default();
        w.set(Watch {
            mode: Mode::Stcp,
            ports: PortSet::from_ports([1, 11]),
        });
        w.set(Watch {
            mode: Mode::Audp,
            ports: PortSet::below_except(1024, [137]),
        });
        w
    }

    #[test]
    fn probes_become_hits() {
        let (w, f) = (watches(), fake());
        let h = judge(&w, &probe(THEM, ME, Proto::Tcp, 11, FIN), 0, &f).unwrap();
        assert_eq!(
            (h.src, h.port, h.mode, h.detail),
            (ip(THEM), 11, Mode::Stcp, Detail::TcpScan(TcpScanType::Fin))
        );
        let h = judge(&w, &probe(THEM, ME, Proto::Udp, 53, 0), 0, &f).unwrap();
        assert_eq!((h.mode, h.detail), (Mode::Audp, Detail::UdpScan));
        let mut p = probe("2001:db8::2", "2001:db8::1", Proto::Tcp, 1, ACK);
        p.ip_options = true;
        let h = judge(&w, &p, 0, &f).unwrap();
        assert_eq!(h.detail, Detail::TcpScan(TcpScanType::Ack));
        assert!(h.ip_options);
        // A v4-mapped source is reported as plain IPv4.
        let p = probe("::ffff:192.0.2.2", "2001:db8::1", Proto::Tcp, 1, SYN);
        assert_eq!(judge(&w, &p, 0, &f).unwrap().src, ip(THEM));
    }

    #[test]
    fn skips() {
        let (w, mut f) = (watches(), fake());
        let j = |f: &Fake, p: Probe, t: u8| judge(&w, &p, t, f);
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Tcp, 12, SYN), 0),
            Err(Skip::Unwatched)
        );
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Udp, 137, 0), 0),
            Err(Skip::Unwatched)
        );
        assert_eq!(
            j(&f, probe(ME, ME, Proto::Tcp, 1, SYN), 0),
            Err(Skip::OwnSource)
        );
        let mut own = w.clone();
        own.own_sources = true;
        assert!(judge(&own, &probe(ME, ME, Proto::Tcp, 1, SYN), 0, &f).is_ok());
        assert_eq!(
            j(&f, probe(THEM, "198.51.100.9", Proto::Tcp, 1, SYN), 0),
            Err(Skip::NotForUs)
        );
        // UDP broadcast is for us (1.2's raw socket sees it too).
        assert!(
            j(
                &f,
                probe(THEM, "192.0.2.255", Proto::Udp, 7, 0),
                PACKET_BROADCAST
            )
            .is_ok()
        );
        assert!(j(&f, probe(THEM, "255.255.255.255", Proto::Udp, 7, 0), 0).is_ok());
        // Multicast (mDNS here) is not: 1.2 never saw groups nobody joined.
        assert_eq!(
            j(&f, probe(THEM, "224.0.0.251", Proto::Udp, 7, 0), 2),
            Err(Skip::NotForUs)
        );
        assert_eq!(
            j(&f, probe("2001:db8::2", "ff02::fb", Proto::Udp, 7, 0), 2),
            Err(Skip::NotForUs)
        );
        // A TCP segment to a broadcast address is not for us either.
        assert_eq!(
            j(
                &f,
                probe(THEM, "192.0.2.255", Proto::Tcp, 1, SYN),
                PACKET_BROADCAST
            ),
            Err(Skip::NotForUs)
        );
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Tcp, 1, RST | ACK), 0),
            Err(Skip::NotAProbe)
        );
        f.tcp.insert(11);
        f.udp.insert(53);
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Tcp, 11, SYN), 0),
            Err(Skip::InUse)
        );
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Udp, 53, 0), 0),
            Err(Skip::InUse)
        );
        // ACK of a real flow: skipped; the same ACK from another port: an ACK scan.
        let l: SocketAddr = format!("{ME}:1").parse().unwrap();
        let r: SocketAddr = format!("{THEM}:40000").parse().unwrap();
        f.flows.insert((l, r));
        assert_eq!(
            j(&f, probe(THEM, ME, Proto::Tcp, 1, ACK), 0),
            Err(Skip::OwnFlow)
        );
        let mut p = probe(THEM, ME, Proto::Tcp, 1, ACK);
        p.src_port = 40001;
        assert!(j(&f, p, 0).is_ok());
        // A SYN (no ACK) is never matched against flows.
        assert!(j(&f, probe(THEM, ME, Proto::Tcp, 1, SYN), 0).is_ok());
    }

    #[test]
    fn sctp_and_icmp_probes_are_the_tcp_modes() {
        use crate::capture::classify::OtherProbe;
        let (w, f) = (watches(), fake());
        let other = |src: &str, dst: &str, kind, port| Other {
            src: ip(src),
            dst: ip(dst),
            kind,
            src_port: 40000,
            dst_port: port,
            ip_options: false,
        };
        // SCTP to a watched TCP port, ICMP to us: hits of the TCP mode.
        let c = screen_other(&w, &other(THEM, ME, OtherProbe::SctpInit, 11), &f.own).unwrap();
        assert_eq!(
            (c.hit.mode, c.hit.port, c.hit.detail),
            (Mode::Stcp, 11, Detail::Other(OtherProbe::SctpInit))
        );
        assert!(!c.needs_flow_check);
        let c = screen_other(&w, &other(THEM, ME, OtherProbe::IcmpEcho, 0), &f.own).unwrap();
        assert_eq!((c.hit.port, c.hit.src), (0, ip(THEM)));
        let c = screen_other(
            &w,
            &other("2001:db8::2", "2001:db8::1", OtherProbe::Icmp6Echo, 0),
            &f.own,
        )
        .unwrap();
        assert_eq!(c.hit.detail, Detail::Other(OtherProbe::Icmp6Echo));
        // Not a watched port, from ourselves, not for us (broadcast, multicast, elsewhere).
        let skip = |o: Other| screen_other(&w, &o, &f.own).unwrap_err();
        assert_eq!(
            skip(other(THEM, ME, OtherProbe::SctpCookieEcho, 12)),
            Skip::Unwatched
        );
        assert_eq!(
            skip(other(ME, ME, OtherProbe::IcmpEcho, 0)),
            Skip::OwnSource
        );
        for dst in [
            "192.0.2.255",
            "255.255.255.255",
            "224.0.0.1",
            "198.51.100.9",
        ] {
            assert_eq!(
                skip(other(THEM, dst, OtherProbe::IcmpEcho, 0)),
                Skip::NotForUs
            );
        }
        assert_eq!(
            skip(other("2001:db8::2", "ff02::1", OtherProbe::Icmp6Echo, 0)),
            Skip::NotForUs
        );
        // No TCP mode: nobody watches them.
        let mut u = Watches::default();
        u.set(Watch {
            mode: Mode::Sudp,
            ports: PortSet::from_ports([7]),
        });
        assert_eq!(
            screen_other(&u, &other(THEM, ME, OtherProbe::IcmpEcho, 0), &f.own),
            Err(Skip::Unwatched)
        );
        assert!(!u.filter(&[], &[]).other && w.filter(&[], &[]).other);
        assert!(w.judges_v4(6) && w.judges_v4(17) && w.judges_v4(132) && w.judges_v4(1));
        assert!(!w.judges_v4(47) && !u.judges_v4(6) && u.judges_v4(17));
    }

    #[test]
    fn recent_flows_from_outgoing_syns() {
        let mut r = RecentFlows::new(1000, 2);
        let out = probe(ME, THEM, Proto::Tcp, 8000, SYN);
        r.note_outgoing(&out, 10);
        let (l, rem): (SocketAddr, SocketAddr) = (
            format!("{ME}:40000").parse().unwrap(),
            format!("{THEM}:8000").parse().unwrap(),
        );
        assert!(r.contains(Proto::Tcp, l, rem, 500));
        assert!(!r.contains(Proto::Udp, l, rem, 500));
        assert!(!r.contains(Proto::Tcp, rem, l, 500));
        assert!(!r.contains(Proto::Tcp, l, rem, 1010), "expired");
        // TCP without SYN opens nothing; any UDP datagram does.
        r.note_outgoing(&probe(ME, THEM, Proto::Tcp, 8001, ACK), 10);
        assert_eq!(r.len(), 1);
        r.note_outgoing(&probe(ME, THEM, Proto::Udp, 53, 0), 10);
        let dns: SocketAddr = format!("{THEM}:53").parse().unwrap();
        assert!(r.contains(Proto::Udp, l, dns, 20));
        let mut r = RecentFlows::new(1000, 2);
        r.note_outgoing(&out, 10);
        // Bounded: expired entries go first, then everything.
        r.note_outgoing(&probe(ME, THEM, Proto::Tcp, 8003, SYN | ACK), 20);
        r.note_outgoing(&probe(ME, THEM, Proto::Tcp, 8004, SYN), 2000);
        assert_eq!(r.len(), 1);
        r.note_outgoing(&probe(ME, THEM, Proto::Tcp, 8005, SYN), 2001);
        r.note_outgoing(&probe(ME, THEM, Proto::Tcp, 8006, SYN), 2002);
        assert!(r.len() <= 2 && !r.is_empty());
    }

    #[test]
    fn filter_leaves_out_ports_in_use_in_every_mode() {
        let w = watches();
        assert!(w.has_advanced());
        assert!(!Watches::default().has_advanced());
        let spec = w.filter(&[1], &[53, 2000]);
        // A stealth mode's port with a listener stays in the kernel too (issue 24: it is
        // watched again once the listener is gone).
        assert_eq!(spec.tcp.unwrap().ranges(), &[(11, 11)]);
        let udp = spec.udp.unwrap();
        assert!(!udp.contains(53) && !udp.contains(137) && udp.contains(52) && udp.contains(54));
    }
}
