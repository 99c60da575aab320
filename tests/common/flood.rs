//! A forged-source flood for the end-to-end tests (issue 23): raw IPv4 and IPv6 packets (TCP
//! SYNs or UDP datagrams) from a new source address each, sent with `sendmmsg` in batches
//! from the scanner namespace, bounded in count and in time, optionally paced to a rate.
//! Sources are drawn from all of IPv4 (1.0.0.0-223.255.255.255, minus the test's own
//! 198.51.100.0/24), or from an IPv6 prefix, or counted up from a base (the older flood test's
//! "100,000 sources in one /64").
//!
//! Packets are built once per batch slot and only their source address (and the checksums,
//! updated incrementally, RFC 1624) changes, so the sender keeps up with 200,000 packets a
//! second even in a debug build.
//!
//! Self-contained (no `super::`): `examples/forge.rs` includes this file as its sender for
//! `bench/flood.py`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A small xorshift generator (reproducible floods; not for anything secret).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Run `f` on a thread of its own inside network namespace `ns` (`/run/netns/NS`).
pub fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f_ns = std::fs::File::open(&path).expect("netns file");
        nix::sched::setns(f_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Where the forged sources come from.
#[derive(Debug, Clone, Copy)]
pub enum Sources {
    /// Anywhere in 1.0.0.0-223.255.255.255 but 198.51.100.0/24, pseudo-random (`--rand-source`).
    AllV4,
    /// Pseudo-random in `prefix`/`len` (IPv4).
    V4In { prefix: Ipv4Addr, len: u8 },
    /// Pseudo-random in `prefix`/`len`.
    V6In { prefix: Ipv6Addr, len: u8 },
    /// `base`, `base + 1`, ... (one new address per packet).
    V6Counting { base: Ipv6Addr },
}

/// What each packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP SYN.
    Syn,
    /// A UDP datagram with a 5-byte payload.
    Udp,
}

/// One flood's orders.
#[derive(Debug, Clone)]
pub struct Orders {
    pub sources: Sources,
    /// The target address (its family must match the sources').
    pub target: IpAddr,
    pub kind: Kind,
    /// Destination ports, used in turn.
    pub ports: Vec<u16>,
    /// At most this many packets...
    pub count: u64,
    /// ...and for at most this long.
    pub max: Duration,
    /// Packets per second (None: as fast as the kernel takes them).
    pub rate: Option<u64>,
    /// Pseudo-random seed.
    pub seed: u64,
    /// Stop early once this is set.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub packets: u64,
    pub secs: f64,
    /// Times the kernel refused a batch for lack of buffer (the target's backlog was full;
    /// the sender waited and sent again, so nothing was counted twice).
    pub enobufs: u64,
}

impl Sent {
    pub fn rate(&self) -> f64 {
        self.packets as f64 / self.secs.max(1e-9)
    }
}

const BATCH: usize = 64;

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// The transport header (and payload) with its checksum for `src` -> `dst`.
fn transport(kind: Kind, src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
    let mut t = match kind {
        Kind::Syn => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&40000u16.to_be_bytes());
            t[2..4].copy_from_slice(&port.to_be_bytes());
            t[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = 0x02; // SYN
            t[14..16].copy_from_slice(&1024u16.to_be_bytes());
            t
        }
        Kind::Udp => {
            let mut t = vec![0u8; 13];
            t[0..2].copy_from_slice(&40000u16.to_be_bytes());
            t[2..4].copy_from_slice(&port.to_be_bytes());
            t[4..6].copy_from_slice(&13u16.to_be_bytes());
            t[8..].copy_from_slice(b"probe");
            t
        }
    };
    let proto: u32 = if kind == Kind::Syn { 6 } else { 17 };
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum16(&s.octets()) + sum16(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum16(&s.octets()) + sum16(&d.octets()),
        _ => panic!("mixed families"),
    } + proto
        + t.len() as u32;
    let c = !fold(pseudo + sum16(&t));
    let at = if kind == Kind::Syn { 16 } else { 6 };
    let c = if kind == Kind::Udp && c == 0 {
        0xffff
    } else {
        c
    };
    t[at..at + 2].copy_from_slice(&c.to_be_bytes());
    t
}

/// A whole packet from `src`, IP header included.
pub fn packet(kind: Kind, src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
    let t = transport(kind, src, dst, port);
    let proto = if kind == Kind::Syn { 6 } else { 17 };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = vec![0u8; 20];
            p[0] = 0x45;
            p[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
            p[8] = 64;
            p[9] = proto;
            p[12..16].copy_from_slice(&s.octets());
            p[16..20].copy_from_slice(&d.octets());
            let c = !fold(sum16(&p));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p.extend_from_slice(&t);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = vec![0u8; 40];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&(t.len() as u16).to_be_bytes());
            p[6] = proto;
            p[7] = 64;
            p[8..24].copy_from_slice(&s.octets());
            p[24..40].copy_from_slice(&d.octets());
            p.extend_from_slice(&t);
            p
        }
        _ => panic!("mixed families"),
    }
}

/// Replace the 16-bit words of a checksummed area: RFC 1624, HC' = ~(~HC + ~m + m').
fn adjust(csum: &mut [u8], old: &[u8], new: &[u8]) {
    let mut s = u32::from(!u16::from_be_bytes([csum[0], csum[1]]));
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        s += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    let c = !fold(s);
    csum.copy_from_slice(&c.to_be_bytes());
}

/// Put `src` into `p` (built by [`packet`] for another source), fixing the checksums.
pub fn set_source(p: &mut [u8], kind: Kind, src: IpAddr) {
    let v4 = p[0] >> 4 == 4;
    let (range, l4) = if v4 { (12..16, 20) } else { (8..24, 40) };
    let old = p[range.clone()].to_vec();
    let new: Vec<u8> = match src {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    p[range].copy_from_slice(&new);
    if v4 {
        let (head, _) = p.split_at_mut(20);
        let mut c = [head[10], head[11]];
        adjust(&mut c, &old, &new);
        head[10..12].copy_from_slice(&c);
    }
    let at = l4 + if kind == Kind::Syn { 16 } else { 6 };
    let mut c = [p[at], p[at + 1]];
    adjust(&mut c, &old, &new);
    if kind == Kind::Udp && c == [0, 0] {
        c = [0xff, 0xff];
    }
    p[at..at + 2].copy_from_slice(&c);
}

fn next_source(sources: Sources, rng: &mut Rng, n: u64) -> IpAddr {
    match sources {
        Sources::AllV4 => loop {
            let a = Ipv4Addr::from(rng.next() as u32);
            let o = a.octets();
            if (1..224).contains(&o[0]) && !(o[0] == 198 && o[1] == 51 && o[2] == 100) {
                return IpAddr::V4(a);
            }
        },
        Sources::V4In { prefix, len } => {
            let host = (rng.next() as u32) & (u32::MAX >> len.min(31));
            IpAddr::V4(Ipv4Addr::from(u32::from(prefix) | host))
        }
        Sources::V6In { prefix, len } => {
            let host = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
                & (u128::MAX >> len.min(127));
            IpAddr::V6(Ipv6Addr::from(u128::from(prefix) | host))
        }
        Sources::V6Counting { base } => {
            IpAddr::V6(Ipv6Addr::from(u128::from(base).wrapping_add(u128::from(n))))
        }
    }
}

/// Run the flood from namespace `ns` (blocking; call it on a thread of its own, it enters the
/// namespace itself). `progress` counts the packets sent so far.
pub fn run(ns: &str, o: Orders, progress: Arc<AtomicU64>) -> Sent {
    in_namespace(ns, move || send(o, &progress))
}

/// Send the flood from the current network namespace (blocking).
pub fn send(o: Orders, progress: &AtomicU64) -> Sent {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockProtocol, SockType, SockaddrIn,
        SockaddrIn6, sendmmsg,
    };
    let v4 = o.target.is_ipv4();
    let fd = nix::sys::socket::socket(
        if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        },
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .expect("raw socket (root)");
    let mut rng = Rng(o.seed | 1);
    let placeholder = if v4 {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xfff, 0, 0, 0, 0, 1))
    };
    let mut bufs: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| packet(o.kind, placeholder, o.target, o.ports[i % o.ports.len()]))
        .collect();
    let t0 = Instant::now();
    let mut out = Sent::default();
    let mut port_at = 0usize;
    let to4 = match o.target {
        IpAddr::V4(t) => Some(SockaddrIn::from(std::net::SocketAddrV4::new(t, 0))),
        IpAddr::V6(_) => None,
    };
    let to6 = match o.target {
        IpAddr::V6(t) => Some(SockaddrIn6::from(std::net::SocketAddrV6::new(t, 0, 0, 0))),
        IpAddr::V4(_) => None,
    };
    let addrs4 = vec![to4; BATCH];
    let addrs6 = vec![to6; BATCH];
    let mut h4 = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut h6 = MultiHeaders::<SockaddrIn6>::preallocate(BATCH, None);
    let dport_at = if v4 { 22 } else { 42 };
    // Slots filled with a new source, not sent yet (a refused batch is sent again as is).
    let mut ready = 0usize;
    let stopped = || o.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    while out.packets < o.count && t0.elapsed() < o.max && !stopped() {
        if let Some(rate) = o.rate {
            let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
            if out.packets >= due {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        }
        let n = (o.count - out.packets).min(BATCH as u64) as usize;
        for b in bufs.iter_mut().take(n).skip(ready) {
            let src = next_source(o.sources, &mut rng, port_at as u64);
            let port = o.ports[port_at % o.ports.len()];
            port_at += 1;
            // The destination port changes too: rebuild only when it does.
            if u16::from_be_bytes([b[dport_at], b[dport_at + 1]]) != port {
                *b = packet(o.kind, src, o.target, port);
            } else {
                set_source(b, o.kind, src);
            }
        }
        ready = ready.max(n);
        let iovs: Vec<[std::io::IoSlice; 1]> = bufs[..n]
            .iter()
            .map(|s| [std::io::IoSlice::new(s)])
            .collect();
        let r = if v4 {
            sendmmsg(
                fd.as_raw_fd(),
                &mut h4,
                &iovs,
                &addrs4[..n],
                [],
                MsgFlags::empty(),
            )
            .map(|r| r.count())
        } else {
            sendmmsg(
                fd.as_raw_fd(),
                &mut h6,
                &iovs,
                &addrs6[..n],
                [],
                MsgFlags::empty(),
            )
            .map(|r| r.count())
        };
        match r {
            Ok(k) => {
                out.packets += k as u64;
                progress.store(out.packets, Ordering::Relaxed);
                if k < n {
                    // The rest was refused (ENOBUFS on the next one): those slots move to
                    // the front and go again after a pause.
                    bufs[..n].rotate_left(k);
                    ready = n - k;
                    out.enobufs += 1;
                    std::thread::sleep(Duration::from_micros(200));
                } else {
                    ready = 0;
                }
            }
            Err(nix::errno::Errno::ENOBUFS) => {
                out.enobufs += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("sendmmsg: {e}"),
        }
    }
    out.secs = t0.elapsed().as_secs_f64();
    out
}
