//! Packet capture for the stealth and advanced modes: an AF_PACKET `SOCK_DGRAM` socket (so
//! each packet starts at its IP header), a TPACKET_V3 receive ring shared with the kernel by
//! mmap, and the classic BPF program from `bpf` attached with SO_ATTACH_FILTER (DESIGN
//! "Capture": measured at ~1% CPU for a 300k packet/s flood, with no loss).
//!
//! Beside the ring, a plain AF_PACKET socket with the same filter, the doorbell, hands a
//! lone packet over at once instead of when the ring's block timer fires (8 ms): while
//! traffic is light the loop reads both, and `dedup` lets exactly one copy of each packet
//! through; under load (a ring pass with many packets) the doorbell is not read, its small
//! buffer simply overflows in the kernel, and the ring does all the work.
//!
//! It owns the sockets and the ring and hands out packet bytes; it never parses or decides.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::capture::bpf::{Insn, SNAPLEN};
use crate::capture::dedup::{self, Dedup, Key};
use crate::capture::watch;

/// Ring geometry: 64 blocks of 32 KiB (2 MiB, all resident once mapped). A block retired by
/// its timer before it is full wastes the rest, so what bounds the ring in packets is the
/// number of blocks: with 8 blocks of 256 KiB and a 1 ms timer, a 100,000-source burst
/// (tests/e2e_hardening.rs) lost 5-18% of its packets; with 64 of 32 KiB (~230 probes each),
/// none, at up to 185k packets/s. Same memory.
const BLOCK_SIZE: u32 = 1 << 15;
const BLOCK_NR: u32 = 64;
/// Only a sanity bound for TPACKET_V3 (packets are packed in blocks), but it must divide the
/// block and hold a header plus the snap length.
const FRAME_SIZE: u32 = 2048;
/// A block is handed to us when full or after this many ms, whichever is first. The kernel's
/// retire timer fires every period whether or not a packet came, in softirq, on the CPU of
/// whatever else runs: it is what an idle capture costs the machine. `bench/idle-cost.py`, 40
/// idle `-stcp` daemons, each in a namespace of its own (2026-12-07, this 2-core VM): at 1 ms
/// 1,003 timer expirations a second and 0.47% of a core per idle daemon; at 8 ms 129 and
/// 0.04% (Debian's 1.2, no ring: 0.03%). A lone probe does not wait for it
/// (the doorbell hands it over at once); what waits is a probe with ACK or RST (judged from
/// the ring's copy, `dedup::acks`), and packets under load, whose blocks fill in 1-3 ms at
/// 100,000 packets/s anyway. 8 ms is also the kernel's default for TPACKET_V3.
const BLOCK_TIMEOUT_MS: u32 = 8;
/// The doorbell's receive buffer: a handful of packets. It only has to hold what arrives
/// between two loop turns while traffic is light.
const BELL_RCVBUF: libc::c_int = 32 * 1024;
/// A ring pass with at least this many packets means load: the doorbell rests until a pass
/// brings fewer.
const BELL_BUSY: usize = 16;
/// Packets read from the doorbell per loop turn at most.
const BELL_BURST: usize = 32;
/// A ring pass with at least this many packets (about half a block) means a flood: the loop
/// then leaves the ring alone for [`REST_MS`] before the next pass (`Capture::busy`)...
const REST_AFTER: usize = 128;
/// ...unless the pass took this many blocks or more (an eighth of the ring): the loop is
/// behind, and a rest would only let the ring fill further. At full speed on this 2-core
/// machine a rest after every busy pass gave the senders the daemon's CPU and the ring lost
/// 9-13% of the packets (0.4-0.8% without it).
const REST_BLOCKS_MAX: u32 = BLOCK_NR / 8;
/// How long the loop leaves the ring after a busy pass, so that the next pass takes several
/// blocks at once. Each pass has costs of its own whatever it holds: a wake-up, and the
/// fresh read of the listening sockets that Smart-Verify makes once per pass (27 µs on this
/// machine when the kernel walked its whole listening hash for each family; one walk for
/// both since, `sockdiag::asks`). At 200,000 forged
/// packets a second a block filled every 1.2 ms and each was a pass of its own: the socket
/// reads were 14% of the daemon's CPU and the wake-ups 7%. The packets wait at most this
/// much longer in a ring that holds 64 blocks (26 ms of the fastest flood this machine
/// sends); a lone probe under light traffic never waits for it (the pass before it was not
/// busy, and the doorbell hands it over).
pub const REST_MS: u64 = 4;

/// What the kernel says about one captured packet besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// `sll_pkttype`: to us, broadcast, ..., or sent by this host.
    pub pkttype: u8,
    /// `tp_status`: its TP_STATUS_CSUMNOTREADY and TP_STATUS_CSUM_VALID bits say whether the
    /// kernel verified the checksum or never filled it in (a local packet).
    pub status: u32,
    /// `tp_len`: the packet's length before the snap length cut it.
    pub wire_len: u32,
}

/// Ring statistics since the last read (`PACKET_STATISTICS` resets on read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Packets the ring took since the last reading.
    pub packets: u32,
    /// Packets the ring dropped since the last reading.
    pub drops: u32,
}

/// A packet socket with its receive ring mapped, not bound yet: it receives nothing (protocol
/// 0). Setting up a ring waits for an RCU grace period in the kernel (`packet_set_ring` calls
/// `synchronize_net`), measured at several ms here, so the daemon prepares it on a thread
/// while it reads its configuration and the socket table ([`Ring::prepare`]).
pub struct Ring {
    fd: OwnedFd,
    /// The mapping's address (an integer, so a prepared ring can cross threads).
    addr: usize,
    len: usize,
}

/// A ring still being prepared on its thread.
pub type PendingRing = std::thread::JoinHandle<io::Result<Ring>>;

/// The capture: the ring (once attached) and its doorbell.
pub struct Capture {
    /// None until the ring prepared on its thread is attached ([`Capture::attach_ring`]);
    /// meanwhile the doorbell alone captures.
    rx: Option<Ring>,
    pending: Option<PendingRing>,
    ifindex: i32,
    /// The current filter, for a ring attached later.
    prog: Vec<Insn>,
    next_block: u32,
    bell: OwnedFd,
    bell_on: bool,
    /// The last ring pass held at least [`REST_AFTER`] packets in fewer than
    /// [`REST_BLOCKS_MAX`] blocks.
    busy: bool,
    dedup: Dedup,
    /// Packets read from the doorbell, and copies (from either socket) not handed on
    /// because the other copy had been: the capture's share of the packet-path counters.
    counts: CopyCounts,
}

/// What the capture read beside the ring (see [`Capture::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyCounts {
    /// Packets read from the doorbell.
    pub bell: u64,
    /// Packets (from the ring or the doorbell) skipped as the second copy of one judged.
    pub skipped: u64,
    /// Ring passes that read packets.
    pub passes: u64,
    /// Of those, the busy ones (a rest follows: [`Capture::busy`]).
    pub rests: u64,
}

fn last_err<T>(what: &str) -> io::Result<T> {
    let e = io::Error::last_os_error();
    Err(io::Error::new(e.kind(), format!("{what}: {e}")))
}

fn setopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T, what: &str) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T and the length passed is its size; the
    // kernel only reads it during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return last_err(what);
    }
    Ok(())
}

fn attach(fd: &OwnedFd, prog: &[Insn]) -> io::Result<()> {
    let mut code: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = u16::try_from(code.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: code.as_mut_ptr(),
    };
    // The kernel copies the program during setsockopt; `code` outlives the call.
    setopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        "SO_ATTACH_FILTER",
    )
}

impl Ring {
    /// Open the socket and map its ring; bind nothing yet (see [`Capture::open`] and `Capture::attach_ring`).
    pub fn prepare() -> io::Result<Ring> {
        let fd = unbound_packet_socket()?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION",
        )?;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let ring_len = (BLOCK_SIZE * BLOCK_NR) as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; the mapping is
        // unmapped in Drop before the fd closes, and never aliased as Rust references.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        // MAP_LOCKED may fail under RLIMIT_MEMLOCK; retry without it.
        let p = if p == libc::MAP_FAILED {
            // SAFETY: as above.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ring_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            }
        } else {
            p
        };
        if p == libc::MAP_FAILED {
            return last_err("mmap(packet ring)");
        }
        if p.is_null() {
            return Err(io::Error::other("mmap returned null"));
        }
        Ok(Ring {
            fd,
            addr: p as usize,
            len: ring_len,
        })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in prepare; a Capture that borrowed it for
        // drain owns this Ring, so nothing refers to it any more.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

impl Capture {
    /// Open the capture on `interface` (or every interface) with `prog`: the doorbell at once,
    /// the ring when `ring` (being prepared on a thread) is ready, see
    /// [`Capture::attach_ring`]. With no `ring`, prepare one here first.
    pub fn open(
        prog: &[Insn],
        interface: Option<&str>,
        ring: Option<PendingRing>,
    ) -> io::Result<Capture> {
        let ifindex = match interface {
            None => 0,
            Some(name) => {
                let c = std::ffi::CString::new(name)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
                // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
                let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
                if i == 0 {
                    return last_err(&format!("interface {name}"));
                }
                i as i32
            }
        };
        let rx = match ring {
            Some(_) => None,
            None => Some(Ring::prepare()?),
        };
        // The doorbell: same filter, a small buffer, kernel receive timestamps (which also
        // turns on timestamping of every received packet, so both copies carry the same one).
        let bell = packet_socket(prog)?;
        setopt(
            &bell,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &BELL_RCVBUF,
            "SO_RCVBUF",
        )?;
        setopt(
            &bell,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1 as &libc::c_int,
            "SO_TIMESTAMPNS",
        )?;
        setopt(
            &bell,
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &1 as &libc::c_int,
            "SO_RXQ_OVFL",
        )?;
        // The checksum status and the length before the snap length (the ring has them in
        // its frame headers).
        setopt(
            &bell,
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &1 as &libc::c_int,
            "PACKET_AUXDATA",
        )?;
        let mut cap = Capture {
            rx: None,
            pending: ring,
            ifindex,
            prog: prog.to_vec(),
            next_block: 0,
            bell,
            bell_on: true,
            busy: false,
            dedup: Dedup::new(),
            counts: CopyCounts::default(),
        };
        if let Some(r) = rx {
            cap.bind_ring(r)?;
        }
        bind(&cap.bell, ifindex)?;
        Ok(cap)
    }

    /// Filter and bind the ring; from now on the doorbell's packets have ring copies.
    fn bind_ring(&mut self, r: Ring) -> io::Result<()> {
        attach(&r.fd, &self.prog)?;
        bind(&r.fd, self.ifindex)?;
        self.dedup.ring_attached(crate::sys::clock::realtime_ns());
        self.rx = Some(r);
        Ok(())
    }

    /// Whether the ring is still being prepared (the loop then polls often and calls
    /// [`Capture::attach_ring`]).
    pub fn ring_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Attach the ring if its thread has finished (else nothing yet); Err when it could not
    /// be set up.
    pub fn attach_ring(&mut self) -> io::Result<()> {
        let Some(h) = self.pending.take_if(|h| h.is_finished()) else {
            return Ok(());
        };
        let r = h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("ring set-up thread panicked")))?;
        self.bind_ring(r)
    }

    /// The doorbell, while it is worth reading (light traffic); None under load.
    pub fn bell_fd(&self) -> Option<BorrowedFd<'_>> {
        self.bell_on.then(|| self.bell.as_fd())
    }

    /// Hand the packets waiting on the doorbell to `f` like [`Capture::drain`], except those
    /// the ring has handed over already. Call it before `drain` in a loop turn.
    pub fn ring_bell(&mut self, mut f: impl FnMut(PacketMeta, &[u8])) -> usize {
        let mut buf = vec![0u8; SNAPLEN as usize];
        let mut n = 0;
        for _ in 0..BELL_BURST {
            let Some((meta, len, ts, drops)) = recv_stamped(&self.bell, &mut buf) else {
                break;
            };
            let bytes = &buf[..len];
            self.counts.bell += 1;
            let key = Key::of(ts, bytes);
            // A reply a flow of this host may explain waits for the ring's copy: it comes
            // after the host's own SYN there (capture::dedup, Dedup::bell_ack).
            let judge = self.bell_on
                && if meta.pkttype != watch::PACKET_OUTGOING && dedup::acks(bytes) {
                    self.dedup.bell_ack(key, drops)
                } else {
                    self.dedup.bell_copy(key, drops)
                };
            if judge {
                f(meta, bytes);
                n += 1;
            } else {
                self.counts.skipped += 1;
            }
        }
        n
    }

    /// Doorbell packets read and copies skipped since start.
    pub fn counts(&self) -> CopyCounts {
        self.counts
    }

    /// The ring's socket, once attached.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.rx.as_ref().map(|r| r.fd.as_fd())
    }

    /// Replace the filter (the kernel swaps it atomically).
    pub fn set_filter(&mut self, prog: &[Insn]) -> io::Result<()> {
        if let Some(r) = &self.rx {
            attach(&r.fd, prog)?;
        }
        attach(&self.bell, prog)?;
        self.prog = prog.to_vec();
        Ok(())
    }

    /// Packets seen and dropped by the ring since the last call.
    pub fn stats(&self) -> io::Result<RingStats> {
        let Some(rx) = &self.rx else {
            return Ok(RingStats::default());
        };
        // SAFETY: tpacket_stats_v3 is plain data; all-zero is valid.
        let mut s: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                rx.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut s as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return last_err("PACKET_STATISTICS");
        }
        Ok(RingStats {
            packets: s.tp_packets,
            drops: s.tp_drops,
        })
    }

    /// Hand every packet of every block the kernel has released to `f` as
    /// ([`PacketMeta`], bytes from the IP header), then give the blocks back. At most one
    /// pass over the ring, so a flood cannot keep the loop here forever.
    pub fn drain(&mut self, mut f: impl FnMut(PacketMeta, &[u8])) -> usize {
        let Some(rx_addr) = self.rx.as_ref().map(|r| r.addr) else {
            return 0;
        };
        let mut n = 0;
        let mut blocks = 0;
        for _ in 0..BLOCK_NR {
            let off = (self.next_block * BLOCK_SIZE) as usize;
            // SAFETY: `off` is a block start inside the mapping (next_block < BLOCK_NR).
            let block = unsafe { (rx_addr as *mut u8).add(off) };
            let status = block_status(block);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the kernel set TP_STATUS_USER, so it no longer writes this block until
            // we hand it back; the block is BLOCK_SIZE bytes of our mapping.
            let bytes = unsafe { std::slice::from_raw_parts(block, BLOCK_SIZE as usize) };
            let (dedup, skipped) = (&mut self.dedup, &mut self.counts.skipped);
            n += walk_block(bytes, &mut |meta, ts, pkt| {
                if dedup.ring_copy(Key::of(ts, pkt)) {
                    f(meta, pkt);
                } else {
                    *skipped += 1;
                }
            });
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (self.next_block + 1) % BLOCK_NR;
            blocks += 1;
        }
        self.dedup.settle();
        if n > 0 {
            self.bell_on = n < BELL_BUSY;
        }
        self.busy = n >= REST_AFTER && blocks < REST_BLOCKS_MAX;
        if n > 0 {
            self.counts.passes += 1;
        }
        if self.busy {
            self.counts.rests += 1;
        }
        n
    }

    /// The last ring pass held a flood's worth of packets, and the loop is not behind: it may
    /// rest [`REST_MS`] before the next.
    pub fn busy(&self) -> bool {
        self.busy
    }
}

/// An AF_PACKET `SOCK_DGRAM` socket (packets start at the IP header) with `prog` attached.
fn packet_socket(prog: &[Insn]) -> io::Result<OwnedFd> {
    let fd = unbound_packet_socket()?;
    attach(&fd, prog)?;
    Ok(fd)
}

/// Protocol 0: the socket receives nothing until it is bound (after its filter is on), so no
/// packet slips in unfiltered.
fn unbound_packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is checked and then owned.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return last_err("socket(AF_PACKET)");
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Bind to all protocols on `ifindex` (0: every interface).
fn bind(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return last_err("bind(AF_PACKET)");
    }
    Ok(())
}

/// One packet from a non-ring packet socket: (its [`PacketMeta`], captured length, receive
/// timestamp in ns, the socket's drop counter when it was queued). None when nothing is
/// waiting (or on an error: the ring has the packet).
fn recv_stamped(fd: &OwnedFd, buf: &mut [u8]) -> Option<(PacketMeta, usize, i64, u32)> {
    // SAFETY: plain data; all-zero is valid for each.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut cbuf = [0u64; 24]; // u64 for cmsghdr alignment
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid, the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given.
    let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if r < 0 {
        return None;
    }
    let mut ts = None;
    // SO_RXQ_OVFL: absent while the counter is zero.
    let mut drops = 0u32;
    let mut aux = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // msg_controllen; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                ts = Some(t.tv_sec * 1_000_000_000 + t.tv_nsec);
            } else if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                drops = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
            } else if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA
            {
                let a =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>());
                aux = Some((a.tp_status, a.tp_len));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // Without a timestamp the copies cannot be matched, and without the auxiliary data the
    // checksum status is unknown: leave the packet to the ring.
    let (status, wire_len) = aux?;
    let meta = PacketMeta {
        pkttype: sll.sll_pkttype,
        status,
        wire_len,
    };
    Some((meta, r as usize, ts?, drops))
}

/// `tpacket_block_desc.hdr.bh1.block_status`, which the kernel and we hand over.
fn block_status<'a>(block: *mut u8) -> &'a AtomicU32 {
    // SAFETY: offset 8 of a block is the 4-byte-aligned u32 `block_status` (version and
    // offset_to_priv come first); the kernel also writes it, so it is only ever accessed
    // atomically. The mapping outlives every use (it lives as long as Capture).
    unsafe { AtomicU32::from_ptr(block.add(8).cast::<u32>()) }
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Walk one released block (`struct tpacket_block_desc` + packed `tpacket3_hdr`s). Every
/// offset the kernel wrote is bounds-checked against the block.
fn walk_block(b: &[u8], f: &mut impl FnMut(PacketMeta, i64, &[u8])) -> usize {
    // tpacket_hdr_v1: block_status @8, num_pkts @12, offset_to_first_pkt @16.
    let (Some(num), Some(first)) = (rd32(b, 12), rd32(b, 16)) else {
        return 0;
    };
    let mut at = first as usize;
    let mut n = 0;
    for _ in 0..num {
        // tpacket3_hdr: tp_next_offset @0, tp_sec @4, tp_nsec @8, tp_snaplen @12, tp_len @16,
        // tp_status @20, tp_net @26; sockaddr_ll after the aligned header (48 bytes) with
        // sll_pkttype at its offset 10.
        let (Some(next), Some(sec), Some(nsec), Some(snap), Some(net), Some(pkttype)) = (
            rd32(b, at),
            rd32(b, at + 4),
            rd32(b, at + 8),
            rd32(b, at + 12),
            rd16(b, at + 26),
            b.get(at + 48 + 10).copied(),
        ) else {
            break;
        };
        let meta = PacketMeta {
            pkttype,
            status: rd32(b, at + 20).unwrap_or(0),
            wire_len: rd32(b, at + 16).unwrap_or(snap),
        };
        let start = at + usize::from(net);
        if let Some(pkt) = b.get(start..start + snap as usize) {
            f(meta, i64::from(sec) * 1_000_000_000 + i64::from(nsec), pkt);
            n += 1;
        }
        if next == 0 {
            break;
        }
        at += next as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_block_and_survives_lies() {
        // A block with two packets built by hand as the kernel lays them out.
        let mut b = vec![0u8; 4096];
        b[12..16].copy_from_slice(&2u32.to_ne_bytes()); // num_pkts
        b[16..20].copy_from_slice(&48u32.to_ne_bytes()); // first packet at 48
        let put = |b: &mut Vec<u8>, at: usize, next: u32, data: &[u8], pkttype: u8| {
            b[at..at + 4].copy_from_slice(&next.to_ne_bytes());
            b[at + 12..at + 16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            b[at + 16..at + 20].copy_from_slice(&(data.len() as u32 + 9).to_ne_bytes());
            b[at + 20..at + 24]
                .copy_from_slice(&(1u32 | libc::TP_STATUS_CSUMNOTREADY).to_ne_bytes());
            b[at + 26..at + 28].copy_from_slice(&80u16.to_ne_bytes());
            b[at + 58] = pkttype;
            b[at + 80..at + 80 + data.len()].copy_from_slice(data);
        };
        put(&mut b, 48, 160, b"first", 0);
        put(&mut b, 208, 0, b"second", 3);
        b[48 + 4..48 + 8].copy_from_slice(&7u32.to_ne_bytes()); // tp_sec
        b[48 + 8..48 + 12].copy_from_slice(&5u32.to_ne_bytes()); // tp_nsec
        let mut got = Vec::new();
        let n = walk_block(&b, &mut |m, ts, p| {
            got.push((m.pkttype, ts, p.to_vec(), m.wire_len, m.status))
        });
        assert_eq!(n, 2);
        let st = 1 | libc::TP_STATUS_CSUMNOTREADY;
        assert_eq!(
            got,
            vec![
                (0, 7_000_000_005, b"first".to_vec(), 14, st),
                (3, 0, b"second".to_vec(), 15, st)
            ]
        );
        // A snap length past the block end and a next offset past it: skipped, no panic.
        b[48 + 12..48 + 16].copy_from_slice(&100_000u32.to_ne_bytes());
        b[48..52].copy_from_slice(&1_000_000u32.to_ne_bytes());
        let n = walk_block(&b, &mut |_, _, _| {});
        assert_eq!(n, 0);
        assert_eq!(walk_block(&[0u8; 10], &mut |_, _, _| {}), 0);
    }
}
