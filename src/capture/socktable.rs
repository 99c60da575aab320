//! The local socket table, as the kernel shows it in `/proc/net/{tcp,tcp6,udp,udp6}`: which
//! TCP ports have a listener, which UDP ports are bound, and which TCP flows exist.
//!
//! It gives the stealth and advanced modes (`sys::capture::stealth`) their facts about this host:
//! - Smart-Verify (§3.2, §3.3): a port is in use, and no trap, only where the host would
//!   accept the probe: a TCP listener, or a UDP socket that would receive the datagram
//!   (unconnected, or connected to its sender). TIME_WAIT, established connections and the
//!   local ports of outgoing connections (TCP or connected UDP) never make a port unwatched:
//!   the kernel answers a SYN there with a RST, so it is a probe (issue 24; 1.2's bind test
//!   counted them, and missed the scan). The table, read every 2 s, builds the kernel
//!   filter; a service started since is seen by a fresh read, once per drain round.
//! - ACK/RST-bearing packets (see `classify`) alert only if no local TCP socket owns their
//!   4-tuple, so packets of real connections never count.
//!
//! Two sources fill it: the `/proc` text, and `NETLINK_SOCK_DIAG` dumps (linux/inet_diag.h),
//! which the kernel answers from its listening hash alone when only LISTEN is asked for,
//! instead of walking every connection as `/proc/net/tcp` does (measured: ~4 ms of kernel
//! time per read here with a handful of sockets).
//!
//! Pure: text or message bytes in, a table out. Lines or messages that do not parse are
//! counted, not fatal. `/proc` prints addresses as 32-bit words in host byte order (`%08X` of
//! the raw `__be32`), so they are decoded with native endianness: the text comes from the host
//! we run on.

use foldhash::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which `/proc/net` file a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcFile {
    /// /proc/net/tcp
    Tcp,
    /// /proc/net/tcp6
    Tcp6,
    /// /proc/net/udp
    Udp,
    /// /proc/net/udp6
    Udp6,
}

impl ProcFile {
    /// All four files.
    pub const ALL: [ProcFile; 4] = [ProcFile::Tcp, ProcFile::Tcp6, ProcFile::Udp, ProcFile::Udp6];

    /// The file's path.
    pub fn path(self) -> &'static str {
        match self {
            ProcFile::Tcp => "/proc/net/tcp",
            ProcFile::Tcp6 => "/proc/net/tcp6",
            ProcFile::Udp => "/proc/net/udp",
            ProcFile::Udp6 => "/proc/net/udp6",
        }
    }
}

/// The ports of the listening SCTP endpoints in `/proc/net/sctp/eps` (the file exists only
/// while the kernel's SCTP module is loaded; its sixth column is LPORT, in decimal). A line
/// that does not parse is skipped.
pub fn sctp_eps_ports(text: &str) -> HashSet<u16> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect()
}

/// TCP_LISTEN in include/net/tcp_states.h.
const TCP_LISTEN: u8 = 0x0a;

/// linux/sock_diag.h, linux/netlink.h.
pub mod diag {
    /// The sock_diag request type.
    pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
    /// Netlink flag: a request.
    pub const NLM_F_REQUEST: u16 = 0x1;
    /// Netlink flags: a dump.
    pub const NLM_F_DUMP: u16 = 0x300;
    /// Netlink message type: an error.
    pub const NLMSG_ERROR: u16 = 2;
    /// Netlink message type: end of a dump.
    pub const NLMSG_DONE: u16 = 3;
    /// Length of a netlink message header.
    pub const NLMSG_HDRLEN: usize = 16;
    /// `struct inet_diag_req_v2`.
    pub const REQ_LEN: usize = 56;
    /// `struct inet_diag_msg` up to the end of `id` (what we read).
    pub const MSG_MIN: usize = 52;
    /// Address family IPv4.
    pub const AF_INET: u8 = 2;
    /// Address family IPv6.
    pub const AF_INET6: u8 = 10;
    /// Protocol TCP.
    pub const IPPROTO_TCP: u8 = 6;
    /// Protocol UDP.
    pub const IPPROTO_UDP: u8 = 17;
    /// All TCP states but the request minisocks' NEW_SYN_RECV.
    pub const ALL_STATES: u32 = 0xfff;
    /// State mask: listening sockets only.
    pub const LISTEN_ONLY: u32 = 1 << super::TCP_LISTEN;
    /// Address family unspecified: in our asks, "both families in one dump" (TCP only,
    /// [`super::tcp_request`]).
    pub const AF_UNSPEC: u8 = 0;
    /// The old inet_diag request type for TCP (`TCPDIAG_GETSOCK`, which the kernel still
    /// serves): its dump is of both families, in one walk of the listening hash.
    pub const TCPDIAG_GETSOCK: u16 = 18;
    /// `struct inet_diag_req` (the old request).
    pub const OLD_REQ_LEN: usize = 60;
}

/// A netlink header of a dump request of `len` bytes in all, of type `ty`.
fn dump_header(len: usize, ty: u16, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(diag::NLM_F_REQUEST | diag::NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    m
}

/// A dump request (`nlmsghdr` + `inet_diag_req_v2`) for one family and protocol.
pub fn diag_request(family: u8, proto: u8, states: u32, seq: u32) -> Vec<u8> {
    let len = diag::NLMSG_HDRLEN + diag::REQ_LEN;
    let mut m = dump_header(len, diag::SOCK_DIAG_BY_FAMILY, seq);
    m.extend_from_slice(&[family, proto, 0, 0]); // family, protocol, ext, pad
    m.extend_from_slice(&states.to_ne_bytes());
    m.resize(len, 0); // inet_diag_sockid: all zero (no filter)
    m
}

/// A dump request of TCP sockets in `states` of both families at once (`nlmsghdr` + the old
/// `struct inet_diag_req`, type `TCPDIAG_GETSOCK`): the kernel answers it with
/// `sdiag_family` AF_UNSPEC, one walk of its listening hash for IPv4 and IPv6 where two
/// `SOCK_DIAG_BY_FAMILY` requests walk it twice (measured in a namespace with one listener
/// each: 15.5 us against 31 us). Its answers carry this type.
pub fn tcp_request(states: u32, seq: u32) -> Vec<u8> {
    let mut m = dump_header(
        diag::NLMSG_HDRLEN + diag::OLD_REQ_LEN,
        diag::TCPDIAG_GETSOCK,
        seq,
    );
    // family (ignored: both), src_len, dst_len, ext; inet_diag_sockid all zero (no filter)
    m.extend_from_slice(&[diag::AF_UNSPEC, 0, 0, 0]);
    m.resize(diag::NLMSG_HDRLEN + 4 + 48, 0);
    m.extend_from_slice(&states.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // idiag_dbs
    m
}

/// What one received datagram of a dump said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagStatus {
    /// More datagrams follow.
    More,
    /// NLMSG_DONE seen.
    Done,
    /// NLMSG_ERROR with this (positive) errno.
    Error(i32),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
/// This host's listening TCP sockets, bound UDP sockets and TCP flows, as read.
pub struct SockTable {
    tcp_listen: HashSet<u16>,
    /// Ports of unconnected UDP sockets (they receive from anyone).
    udp_bound: HashSet<u16>,
    /// (local port, remote) of connected UDP sockets (they receive from that remote only).
    udp_connected: HashSet<(u16, SocketAddr)>,
    /// (local, remote) of every TCP socket that is not listening, any state.
    tcp_flows: HashSet<(SocketAddr, SocketAddr)>,
    /// Lines that did not parse.
    pub bad_lines: usize,
}

impl SockTable {
    /// Add one file's text (header line included).
    pub fn add(&mut self, file: ProcFile, text: &str) {
        for line in text.lines().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line) {
                Some((local, remote, state)) => match file {
                    ProcFile::Tcp | ProcFile::Tcp6 => {
                        if state == TCP_LISTEN {
                            self.tcp_listen.insert(local.port());
                        } else {
                            self.tcp_flows.insert((local, remote));
                        }
                    }
                    ProcFile::Udp | ProcFile::Udp6 => self.add_udp(local, remote),
                },
                None => self.bad_lines += 1,
            }
        }
    }

    /// Add the messages of one received dump datagram for `proto` (TCP or UDP).
    pub fn add_diag(&mut self, udp: bool, buf: &[u8]) -> DiagStatus {
        let mut at = 0usize;
        while let Some(hdr) = buf.get(at..at + diag::NLMSG_HDRLEN) {
            let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let ty = u16::from_ne_bytes([hdr[4], hdr[5]]);
            if len < diag::NLMSG_HDRLEN {
                self.bad_lines += 1;
                return DiagStatus::Done;
            }
            let body = buf.get(at + diag::NLMSG_HDRLEN..at + len).unwrap_or(&[]);
            match ty {
                diag::NLMSG_DONE => return DiagStatus::Done,
                diag::NLMSG_ERROR => {
                    let e = body
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    return DiagStatus::Error(e.saturating_neg());
                }
                diag::SOCK_DIAG_BY_FAMILY | diag::TCPDIAG_GETSOCK => match parse_diag_msg(body) {
                    Some((local, remote, state)) => {
                        if udp {
                            self.add_udp(local, remote);
                        } else if state == TCP_LISTEN {
                            self.tcp_listen.insert(local.port());
                        } else {
                            self.tcp_flows.insert((local, remote));
                        }
                    }
                    None => self.bad_lines += 1,
                },
                _ => {}
            }
            // Messages are 4-byte aligned (NLMSG_ALIGN).
            at += (len + 3) & !3;
        }
        DiagStatus::More
    }

    fn add_udp(&mut self, local: SocketAddr, remote: SocketAddr) {
        if remote.port() == 0 {
            self.udp_bound.insert(local.port());
        } else {
            let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
            self.udp_connected.insert((local.port(), remote));
        }
    }

    /// A TCP listener exists on `port` (any local address).
    pub fn tcp_listening(&self, port: u16) -> bool {
        self.tcp_listen.contains(&port)
    }

    /// An unconnected UDP socket is bound to `port` (any local address): it receives
    /// datagrams from anyone.
    pub fn udp_bound(&self, port: u16) -> bool {
        self.udp_bound.contains(&port)
    }

    /// A UDP socket would receive a datagram from `remote` to local `port`: an unconnected
    /// one on the port, or one connected from the port to `remote`.
    pub fn udp_receives(&self, port: u16, remote: SocketAddr) -> bool {
        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        self.udp_bound(port) || self.udp_connected.contains(&(port, remote))
    }

    /// A TCP socket owns the flow `local` <-> `remote` (any state but LISTEN).
    pub fn owns_flow(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        self.tcp_flows.contains(&(canon(local), canon(remote)))
    }

    /// Ports with a listening TCP socket.
    pub fn tcp_listen_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.tcp_listen.iter().copied()
    }

    /// Ports with an unconnected UDP socket.
    pub fn udp_bound_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.udp_bound.iter().copied()
    }
}

/// `struct inet_diag_msg` -> (local, remote, state). Ports and addresses are big-endian.
pub(crate) fn parse_diag_msg(b: &[u8]) -> Option<(SocketAddr, SocketAddr, u8)> {
    let m = b.get(..diag::MSG_MIN)?;
    let family = m[0];
    let state = m[1];
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let addr = |at: usize| -> Option<IpAddr> {
        match family {
            diag::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                m[at],
                m[at + 1],
                m[at + 2],
                m[at + 3],
            ))),
            diag::AF_INET6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&m[at..at + 16]);
                Some(IpAddr::V6(Ipv6Addr::from(a)).to_canonical())
            }
            _ => None,
        }
    };
    Some((
        SocketAddr::new(addr(8)?, sport),
        SocketAddr::new(addr(24)?, dport),
        state,
    ))
}

/// `  sl  local_address rem_address   st ...` -> (local, remote, state).
fn parse_line(line: &str) -> Option<(SocketAddr, SocketAddr, u8)> {
    let mut f = line.split_ascii_whitespace();
    let _slot = f.next()?;
    let local = parse_addr(f.next()?)?;
    let remote = parse_addr(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    Some((local, remote, state))
}

/// `0100007F:0016` or `00000000000000000000000001000000:0016`.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b.get_mut(i * 4..i * 4 + 4)?.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip.to_canonical(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address word of `/proc` text as a host of the other byte order prints it.
    fn swap_words(addr: &str) -> String {
        addr.as_bytes()
            .chunks(8)
            .map(|w| {
                (0..w.len() / 2)
                    .rev()
                    .map(|i| String::from_utf8_lossy(&w[i * 2..i * 2 + 2]).into_owned())
                    .collect::<String>()
            })
            .collect()
    }

    /// The fixtures below were read on a little-endian host; `/proc` prints each 32-bit word
    /// of an address in host byte order, so a big-endian host sees the words reversed. This
    /// gives the text as the host running the tests would print it.
    fn host_order(text: &str) -> String {
        if cfg!(target_endian = "little") {
            return text.to_string();
        }
        text.split_inclusive(char::is_whitespace)
            .map(|tok| match tok.trim_end().split_once(':') {
                Some((addr, port))
                    if (addr.len() == 8 || addr.len() == 32)
                        && port.len() == 4
                        && addr.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    tok.replacen(addr, &swap_words(addr), 1)
                }
                _ => tok.to_string(),
            })
            .collect()
    }

    #[test]
    fn fixtures_follow_the_host_byte_order() {
        assert_eq!(swap_words("0100007F"), "7F000001");
        assert_eq!(
            swap_words("B80D0120000000000000000001000000"),
            "20010DB8000000000000000000000001"
        );
        let line = "   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000";
        if cfg!(target_endian = "big") {
            assert!(host_order(line).contains(" 7F000001:0277 "));
        } else {
            assert_eq!(host_order(line), line);
        }
        // Whatever the host, the parsed table is the same.
        let mut t = SockTable::default();
        t.add(ProcFile::Tcp, &host_order(TCP));
        assert!(t.owns_flow(sa("192.0.2.1:22"), sa("192.0.2.2:40000")));
    }

    // Real lines from a little-endian host (trimmed after the inode column).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002
   2: 010200C0:0016 020200C0:9C40 01 00000000:00000000 02:000A7B2E 00000000     0        0 1003
   3: 010200C0:8AE2 020200C0:0050 06 00000000:00000000 03:00001770 00000000     0        0 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001
   1: B80D0120000000000000000001000000:0016 B80D0120000000000000000002000000:A000 01 00000000:00000000 00:00000000 00000000     0        0 2002
   2: 0000000000000000FFFF0000010200C0:0019 0000000000000000FFFF0000020200C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 2003
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 3001 2 0000000000000000 0
  101: 010200C0:9C41 350200C0:0035 01 00000000:00000000 00:00000000 00000000     0        0 3002 2 0000000000000000 0
";

    fn table() -> SockTable {
        let mut t = SockTable::default();
        t.add(ProcFile::Tcp, &host_order(TCP));
        t.add(ProcFile::Tcp6, &host_order(TCP6));
        t.add(ProcFile::Udp, &host_order(UDP));
        t.add(ProcFile::Udp6, "  sl  local_address\n garbage line\n");
        t
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listeners_and_bound_ports() {
        let t = table();
        for p in [22, 631, 8080] {
            assert!(t.tcp_listening(p), "{p}");
        }
        assert!(!t.tcp_listening(80));
        assert!(t.udp_bound(53));
        assert!(!t.udp_bound(22));
        // A connected UDP socket (an outgoing query from 40001 to 192.0.2.53:53) receives
        // only its peer's datagrams.
        assert!(!t.udp_bound(40001));
        assert!(t.udp_receives(40001, sa("192.0.2.53:53")));
        assert!(!t.udp_receives(40001, sa("192.0.2.2:53")));
        assert_eq!(t.udp_bound_ports().collect::<Vec<_>>(), vec![53]);
        assert_eq!(t.bad_lines, 1);
    }

    #[test]
    fn flows_in_any_state_match_by_four_tuple() {
        let t = table();
        assert!(t.owns_flow(sa("192.0.2.1:22"), sa("192.0.2.2:40000")));
        // TIME_WAIT (06) of an outgoing connection.
        assert!(t.owns_flow(sa("192.0.2.1:35554"), sa("192.0.2.2:80")));
        assert!(t.owns_flow(sa("[2001:db8::1]:22"), sa("[2001:db8::2]:40960")));
        // A v4-mapped flow on a v6 socket matches the plain v4 packet.
        assert!(t.owns_flow(sa("192.0.2.1:25"), sa("192.0.2.2:50000")));
        // Another remote port, or another remote host: not ours.
        assert!(!t.owns_flow(sa("192.0.2.1:22"), sa("192.0.2.2:40001")));
        assert!(!t.owns_flow(sa("192.0.2.1:22"), sa("192.0.2.3:40000")));
        // A flow (TIME_WAIT, established, outgoing) is no listener: the port stays a trap.
        assert!(!t.tcp_listening(35554) && !t.tcp_listening(25));
    }

    /// One `SOCK_DIAG_BY_FAMILY` message as the kernel sends it.
    fn diag_msg(family: u8, state: u8, sport: u16, src: &[u8], dport: u16, dst: &[u8]) -> Vec<u8> {
        let mut body = vec![family, state, 0, 0];
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&dport.to_be_bytes());
        let mut a = [0u8; 16];
        a[..src.len()].copy_from_slice(src);
        body.extend_from_slice(&a);
        let mut a = [0u8; 16];
        a[..dst.len()].copy_from_slice(dst);
        body.extend_from_slice(&a);
        body.extend_from_slice(&[0u8; 8 + 20]); // if, cookie, expires, queues, uid, inode
        let len = (16 + body.len()) as u32;
        let mut m = len.to_ne_bytes().to_vec();
        m.extend_from_slice(&diag::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&[2, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn sock_diag_requests_and_replies() {
        let r = diag_request(diag::AF_INET6, diag::IPPROTO_TCP, diag::LISTEN_ONLY, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(&r[0..4], &72u32.to_ne_bytes());
        assert_eq!(&r[4..6], &20u16.to_ne_bytes());
        assert_eq!(&r[6..8], &0x301u16.to_ne_bytes());
        assert_eq!(&r[16..20], &[10, 6, 0, 0]);
        assert_eq!(&r[20..24], &(1u32 << 10).to_ne_bytes());

        let mut t = SockTable::default();
        let mut dgram = diag_msg(2, 0x0a, 22, &[0, 0, 0, 0], 0, &[0, 0, 0, 0]);
        dgram.extend(diag_msg(10, 0x0a, 8080, &[0; 16], 0, &[0; 16]));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        let mut peer = v6;
        peer[15] = 2;
        dgram.extend(diag_msg(10, 0x01, 22, &v6, 40000, &peer));
        assert_eq!(t.add_diag(false, &dgram), DiagStatus::More);
        assert!(t.tcp_listening(22) && t.tcp_listening(8080));
        assert!(t.owns_flow(sa("[2001:db8::1]:22"), sa("[2001:db8::2]:40000")));
        // UDP: an unconnected socket receives from anyone; a connected one (state
        // ESTABLISHED, a remote port) only from its peer.
        assert_eq!(
            t.add_diag(true, &diag_msg(2, 0x07, 53, &[127, 0, 0, 53], 0, &[0; 4])),
            DiagStatus::More
        );
        assert!(t.udp_bound(53));
        assert!(t.udp_receives(53, sa("192.0.2.9:1")));
        assert_eq!(
            t.add_diag(
                true,
                &diag_msg(2, 0x01, 40001, &[192, 0, 2, 1], 53, &[192, 0, 2, 53])
            ),
            DiagStatus::More
        );
        assert!(!t.udp_bound(40001));
        assert!(t.udp_receives(40001, sa("192.0.2.53:53")));
        assert!(t.udp_receives(40001, sa("[::ffff:192.0.2.53]:53")));
        assert!(!t.udp_receives(40001, sa("192.0.2.54:53")));
        assert!(!t.udp_receives(40001, sa("192.0.2.53:54")));
        // DONE and ERROR.
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&3u16.to_ne_bytes());
        done.extend_from_slice(&[0; 14]);
        assert_eq!(t.add_diag(false, &done), DiagStatus::Done);
        let mut err = 36u32.to_ne_bytes().to_vec();
        err.extend_from_slice(&2u16.to_ne_bytes());
        err.extend_from_slice(&[0; 10]);
        err.extend_from_slice(&(-22i32).to_ne_bytes());
        err.extend_from_slice(&[0; 16]);
        assert_eq!(t.add_diag(false, &err), DiagStatus::Error(22));
        // Garbage: a short message, a bad length, a truncated body; never a panic.
        assert_eq!(t.add_diag(false, &[1, 2, 3]), DiagStatus::More);
        let mut bad = 8u32.to_ne_bytes().to_vec();
        bad.extend_from_slice(&[0; 12]);
        assert_eq!(t.add_diag(false, &bad), DiagStatus::Done);
        let mut cut = diag_msg(2, 0x0a, 9, &[0; 4], 0, &[0; 4]);
        cut.truncate(40);
        let before = t.bad_lines;
        t.add_diag(false, &cut);
        assert_eq!(t.bad_lines, before + 1);
        assert!(!t.tcp_listening(9));
    }

    /// Pseudo-random fuzzing of both inputs: mutated `/proc` text and mutated netlink
    /// datagrams never panic.
    #[test]
    fn fuzz_proc_text_and_diag_bytes() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut dgram = diag_msg(2, 0x0a, 22, &[0, 0, 0, 0], 0, &[0, 0, 0, 0]);
        dgram.extend(diag_msg(10, 0x01, 22, &[1; 16], 40000, &[2; 16]));
        let texts = [TCP, TCP6, UDP];
        let mut t = SockTable::default();
        for i in 0..5_000usize {
            let mut d = dgram.clone();
            for _ in 0..(rnd() % 4) {
                let at = (rnd() as usize) % d.len();
                d[at] = rnd() as u8;
            }
            d.truncate((rnd() as usize) % (d.len() + 1));
            t.add_diag(i % 2 == 0, &d);
            let mut b = texts[i % 3].as_bytes().to_vec();
            for _ in 0..(rnd() % 6) {
                let at = (rnd() as usize) % b.len();
                b[at] = b"0123456789ABCDEF: \nZ"[(rnd() % 20) as usize];
            }
            t.add(ProcFile::ALL[i % 4], &String::from_utf8_lossy(&b));
        }
        assert!(t.bad_lines > 0);
        assert!(t.tcp_listening(22));
    }

    #[test]
    fn malformed_lines_are_counted() {
        let mut t = SockTable::default();
        t.add(
            ProcFile::Tcp,
            "hdr\n 0: 0100007F 00000000:0000 0A\n 1: ZZ00007F:0016 00000000:0000 0A\n 2: 0100007F:0016 00000000:0000\n 3: 01007F:0016 00000000:0000 0A\n",
        );
        assert_eq!(t.bad_lines, 4);
        assert!(!t.tcp_listening(22));
    }

    #[test]
    fn sctp_endpoints() {
        // net/sctp/proc.c sctp_eps_seq_show: ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS.
        let text = " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n\
                    ffff8881 ffff8882 2   10  29   3868      0 12345 10.0.0.1 \n\
                    ffff8883 ffff8884 1   10  2    36412     0 12346 *\n\
                    garbage\n";
        let p = sctp_eps_ports(text);
        assert_eq!(p.len(), 2);
        assert!(p.contains(&3868) && p.contains(&36412));
        assert!(sctp_eps_ports("").is_empty());
    }

    /// The one-dump TCP request is the old `inet_diag_req` after a netlink header: 76 bytes,
    /// type TCPDIAG_GETSOCK, a dump, the states at offset 68.
    #[test]
    fn the_one_dump_tcp_request_is_the_old_inet_diag_req() {
        let m = tcp_request(diag::LISTEN_ONLY, 7);
        assert_eq!(m.len(), 76);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 76);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 18);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(m[68..72].try_into().unwrap()), 1 << 10);
        assert!(
            m[16..68].iter().all(|&b| b == 0),
            "both families, no filter"
        );
    }
}
