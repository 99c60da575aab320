//! The local socket table, as the kernel shows it in `/proc/net/{tcp,tcp6,udp,udp6}`: which
//! TCP ports have a listener, which UDP ports are bound, and which TCP flows exist.
//!
//! It serves two checks of the stealth and advanced modes:
//! - Smart-Verify (§3.2, §3.3): a port some local socket listens on (TCP) or is bound to
//!   (UDP) is never a trap. 1.2 tests this with a bind per packet; a table read gives the same
//!   answer without opening a socket, and also sees services started after the daemon.
//! - ACK/RST-bearing packets (see `classify`) alert only if no local TCP socket owns their
//!   4-tuple, so packets of real connections never count.
//!
//! Pure: text in, a table out. Lines that do not parse are counted, not fatal. Addresses are
//! printed by the kernel as 32-bit words in host byte order (`%08X` of the raw `__be32`), so
//! they are decoded with native endianness: the text comes from the host we run on.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which `/proc/net` file a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcFile {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl ProcFile {
    pub const ALL: [ProcFile; 4] = [ProcFile::Tcp, ProcFile::Tcp6, ProcFile::Udp, ProcFile::Udp6];

    pub fn path(self) -> &'static str {
        match self {
            ProcFile::Tcp => "/proc/net/tcp",
            ProcFile::Tcp6 => "/proc/net/tcp6",
            ProcFile::Udp => "/proc/net/udp",
            ProcFile::Udp6 => "/proc/net/udp6",
        }
    }
}

/// TCP_LISTEN in include/net/tcp_states.h.
const TCP_LISTEN: u8 = 0x0a;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SockTable {
    tcp_listen: HashSet<u16>,
    udp_bound: HashSet<u16>,
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
                    ProcFile::Udp | ProcFile::Udp6 => {
                        self.udp_bound.insert(local.port());
                    }
                },
                None => self.bad_lines += 1,
            }
        }
    }

    /// A TCP listener exists on `port` (any local address).
    pub fn tcp_listening(&self, port: u16) -> bool {
        self.tcp_listen.contains(&port)
    }

    /// A UDP socket is bound to `port` (any local address).
    pub fn udp_bound(&self, port: u16) -> bool {
        self.udp_bound.contains(&port)
    }

    /// A TCP socket owns the flow `local` <-> `remote` (any state but LISTEN).
    pub fn owns_flow(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        self.tcp_flows.contains(&(canon(local), canon(remote)))
    }

    /// Some non-listening TCP socket uses local port `port`.
    pub fn has_flow_on(&self, port: u16) -> bool {
        self.tcp_flows.iter().any(|(l, _)| l.port() == port)
    }

    pub fn tcp_listen_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.tcp_listen.iter().copied()
    }

    pub fn udp_bound_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.udp_bound.iter().copied()
    }
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

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

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
";

    fn table() -> SockTable {
        let mut t = SockTable::default();
        t.add(ProcFile::Tcp, TCP);
        t.add(ProcFile::Tcp6, TCP6);
        t.add(ProcFile::Udp, UDP);
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
        assert!(t.has_flow_on(35554) && t.has_flow_on(22) && !t.has_flow_on(631));
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
}
