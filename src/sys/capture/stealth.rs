//! The stealth (`-stcp`, `-sudp`, §3.2) and advanced (`-atcp`, `-audp`, §3.3) modes: their
//! start-up sequences and log lines (§3.4, §8.2), one capture for all of them, and the facts
//! about this host that the per-packet decision needs: its addresses, its listening and bound
//! sockets, and the connections it opened.
//!
//! One packet, top to bottom ([`Stealth::drain`]): the capture hands over its bytes
//! (`capture`, de-duplicated between the ring and its doorbell by `dedup`); `wire::parse`
//! verifies what the host's stack would (checksums, lengths) and makes a typed `Probe` (or an
//! SCTP or ICMP `Other`), counts a malformed or bad-checksum packet, or hands a fragment to
//! `defrag`, whose completed datagrams are parsed again as whole packets (issue 18);
//! `watch::screen` decides with this host's addresses whether it can be a probe; this module
//! finds the facts a candidate needs (is its port in use now, is its flow ours);
//! `watch::decide` makes it a `Hit`, which goes back to the event loop and the engine.
//!
//! In use means: the host would accept the probe (a TCP listener; a UDP socket that would
//! receive the datagram). TIME_WAIT, established connections and the local ports of outgoing
//! connections never hide a port (issue 24; 1.2's bind test counted them, so a stale socket
//! blinded a watched port). The listening sockets are read with sock_diag (`sockdiag`) every
//! [`REFRESH_MS`]: ports in use are taken out of the kernel filter, so a busy service's
//! traffic never reaches us, and a watched port that becomes unwatched is said once in
//! syslog and listed by `portsentry status`. A candidate whose port the table does not list
//! gets a fresh read (once per protocol and drain round), so a service started a moment ago
//! is seen. A packet to an address not yet known makes the address list be read again first
//! (once per round).
//!
//! This host's own outgoing SYN and SYN+ACK segments and UDP datagrams from watched ports
//! also come through the ring (see `bpf`) and feed [`RecentFlows`], so replies on a flow
//! whose socket is already gone are still known to be ours.
//!
//! It never decides whether a packet is a hit (`watch` does) nor what to do about one (the
//! engine does).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::capture::bpf;
use crate::capture::defrag::{self, Defrag};
use crate::capture::socktable::SockTable;
use crate::capture::watch::{self, Candidate, Facts, RecentFlows, Watches};
use crate::capture::wire::{self, Drops, Other, Packet, Probe, WireError};
use crate::config::Config;
use crate::config::mode::{Kind, Mode, Proto};
use crate::engine::Hit;
use crate::observe::report;
use crate::observe::stats::CapturePath;

use crate::sys::capture::ring::{Capture, PacketMeta, PendingRing};
use crate::sys::capture::sockdiag;
pub use crate::sys::capture::watches::StartError;
use crate::sys::capture::watches::{
    HostState, build_watches, busy_ports, read_addrs, read_host, receives, screen_fresh,
    unwatched_ports,
};
use crate::sys::clock;
use crate::sys::observe::log::Logger;

/// Periodic re-read of the socket table and interface addresses.
pub const REFRESH_MS: u64 = 2_000;
/// Capture losses are logged at most this often, and only when non-zero.
const LOSS_REPORT_MS: u64 = 60_000;
/// At most one "illegal header length" line per this many ms (the rest are counted).
const IHL_LOG_MS: u64 = 1_000;

/// How long a connection learned from our own SYN counts as ours (TIME_WAIT is 60 s).
const RECENT_FLOW_MS: u64 = 120_000;
const RECENT_FLOW_CAP: usize = 65_536;

/// and from raw sockets neither bit).
fn csum_state(m: PacketMeta) -> wire::Csum {
    if m.status & libc::TP_STATUS_CSUMNOTREADY != 0 {
        wire::Csum::Partial
    } else if m.status & libc::TP_STATUS_CSUM_VALID != 0 {
        wire::Csum::Valid
    } else {
        wire::Csum::Unknown
    }
}

/// Command-line choices for the capture.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Capture on this interface only (default: all).
    pub interface: Option<String>,
    /// Also act on packets from this host's own addresses.
    pub act_on_own_addresses: bool,
}

/// The stealth and advanced modes of one daemon: the capture, what it watches, and the facts about this host.
pub struct Stealth {
    capture: Capture,
    watches: Watches,
    host: HostState,
    recent: RecentFlows,
    /// When `host` was read (ms, monotonic).
    host_at: u64,
    /// The busy ports taken out of the current filter.
    filtered_busy: (Vec<u16>, Vec<u16>),
    /// Watched ports not watched now (a local socket would answer them), and the ones said
    /// in syslog already (each once per run; the start-up lines count).
    unwatched: BTreeSet<(Mode, u16)>,
    said_unwatched: HashSet<(Mode, u16)>,
    drops: Drops,
    ring_drops: u64,
    /// Fragments on their way to a datagram (issue 18).
    defrag: Defrag,
    /// Packets dropped for a bad IP header or transport checksum (the host drops them too).
    bad_checksum: u64,
    /// Since start, stage by stage, for `portsentry status` and the metrics file.
    totals: CapturePath,
    last_loss_report: u64,
    last_ihl_log: Option<u64>,
    last_tick: u64,
    /// A ring pass's parsed packets, kept from one pass to the next (see [`reuse`]).
    probes: Vec<(u8, Probe)>,
    others: Vec<(u8, Other)>,
}

/// Room for this many items is kept in a buffer from one ring pass to the next (a pass of a
/// flood holds about 900 packets at 200,000 a second; a bigger one after a stall gives its
/// room back).
const KEEP_ITEMS: usize = 16_384;

/// `v`, emptied, to be filled again by the next ring pass: allocating a pass's buffers anew
/// each time made glibc give the freed top of its heap back to the kernel and take it again
/// (`brk`, 55 a second under the `prefix4` flood, each with a TLB flush: 2% of the daemon's
/// samples), besides the page faults of new memory.
pub fn reuse<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    if v.capacity() > KEEP_ITEMS {
        Vec::new()
    } else {
        v
    }
}

/// The modes this module runs.
pub fn capture_modes(modes: &[Mode]) -> Vec<Mode> {
    modes
        .iter()
        .copied()
        .filter(|m| m.kind() != Kind::Classic)
        .collect()
}

impl Stealth {
    /// Run the start-up sequences of the capture `modes` and open the capture. Err carries
    /// the reason (already logged).
    /// `ring`: the capture ring being prepared on a thread (see `capture::Ring`), or None to
    /// prepare it here.
    pub fn start(
        cfg: &Config,
        modes: &[Mode],
        opts: &Options,
        log: &mut Logger,
        ring: Option<PendingRing>,
    ) -> Result<Stealth, StartError> {
        let host = read_host();
        let mut watches = build_watches(cfg, modes, &host, log)?;
        let unwatched = unwatched_ports(&watches, &host.table);
        watches.own_sources = opts.act_on_own_addresses;
        let busy = (
            busy_ports(&host.table, Proto::Tcp),
            busy_ports(&host.table, Proto::Udp),
        );
        let prog = bpf::compile(&watches.filter(&busy.0, &busy.1));
        // Active at once on the doorbell; the ring joins when its thread is done.
        let capture = match Capture::open(&prog, opts.interface.as_deref(), ring) {
            Ok(c) => c,
            Err(e) => {
                let proto = modes.first().map_or(Proto::Tcp, |m| m.proto());
                log.log(&report::could_not_open_raw_socket(proto));
                log.log(&report::capture_error(&e));
                return Err(StartError::Capture(e));
            }
        };
        let now = clock::now_ms();
        Ok(Stealth {
            capture,
            watches,
            host,
            recent: RecentFlows::new(RECENT_FLOW_MS, RECENT_FLOW_CAP),
            host_at: now,
            filtered_busy: busy,
            // The start-up lines said these.
            said_unwatched: unwatched.iter().copied().collect(),
            unwatched,
            drops: Drops::default(),
            ring_drops: 0,
            defrag: Defrag::default(),
            bad_checksum: 0,
            totals: CapturePath::default(),
            last_loss_report: now,
            last_ihl_log: None,
            last_tick: now,
            probes: Vec::new(),
            others: Vec::new(),
        })
    }

    /// Each capture mode with the number of ports it watches now (ports with a live
    /// listener not counted).
    pub fn watched(&self) -> Vec<(Mode, usize)> {
        let spec = self
            .watches
            .filter(&self.filtered_busy.0, &self.filtered_busy.1);
        [(&self.watches.tcp, spec.tcp), (&self.watches.udp, spec.udp)]
            .into_iter()
            .filter_map(|(w, ports)| Some((w.as_ref()?.mode, ports.map_or(0, |p| p.len()))))
            .collect()
    }

    /// The watched ports not watched now, by mode: a local socket would answer them (a
    /// TCP listener, an unconnected UDP socket), as of the last read of the socket table.
    pub fn unwatched(&self) -> Vec<(Mode, Vec<u16>)> {
        let mut out: Vec<(Mode, Vec<u16>)> = Vec::new();
        for &(m, p) in &self.unwatched {
            match out.last_mut() {
                Some((last, ports)) if *last == m => ports.push(p),
                _ => out.push((m, vec![p])),
            }
        }
        out
    }

    /// The ring's socket, once attached (see [`Stealth::attach_ring`]).
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.capture.fd()
    }

    /// The last ring pass held a flood's worth of packets: the loop leaves the ring alone
    /// for [`REST_MS`](crate::sys::capture::ring::REST_MS) (see there).
    pub fn busy(&self) -> bool {
        self.capture.busy()
    }

    /// While the ring is being set up, the loop polls every few ms and calls this.
    pub fn ring_pending(&self) -> bool {
        self.capture.ring_pending()
    }

    /// Attach the ring if its thread has finished. Err (logged here) when it could not be
    /// set up: the daemon cannot capture reliably and stops.
    pub fn attach_ring(&mut self, log: &mut Logger) -> std::io::Result<()> {
        self.capture
            .attach_ring()
            .inspect_err(|e| log.log(&report::capture_error(e)))
    }

    /// New config on SIGHUP: rebuild the watched sets (with their start-up lines) and the
    /// filter. On error the old watches stay.
    pub fn reload(&mut self, cfg: &Config, modes: &[Mode], log: &mut Logger) {
        self.host = read_host();
        self.host_at = clock::now_ms();
        if let Ok(mut w) = build_watches(cfg, modes, &self.host, log) {
            w.own_sources = self.watches.own_sources;
            self.watches = w;
            self.filtered_busy = (Vec::new(), Vec::new());
            self.update_filter(log, true);
            // The start-up lines have just said these again.
            self.unwatched = unwatched_ports(&self.watches, &self.host.table);
            self.said_unwatched.extend(self.unwatched.iter().copied());
        }
    }

    /// The doorbell socket while traffic is light (see `capture`): poll it too and call
    /// [`Stealth::ring_bell`] when it is ready, before [`Stealth::drain`].
    pub fn bell_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.capture.bell_fd()
    }

    /// The hits among the packets waiting on the doorbell, added to `hits`. `blocked` says
    /// which sources the engine has blocked already (their packets skip the fresh socket
    /// reads, see `port_in_use`).
    pub fn ring_bell(
        &mut self,
        log: &mut Logger,
        blocked: &dyn Fn(IpAddr, Proto) -> bool,
        hits: &mut Vec<Hit>,
    ) {
        self.take(log, true, blocked, hits)
    }

    /// Read every packet the ring holds and add the hits to `hits`, in arrival order
    /// (`blocked` as for [`Stealth::ring_bell`]).
    pub fn drain(
        &mut self,
        log: &mut Logger,
        blocked: &dyn Fn(IpAddr, Proto) -> bool,
        hits: &mut Vec<Hit>,
    ) {
        self.take(log, false, blocked, hits)
    }

    fn take(
        &mut self,
        log: &mut Logger,
        bell: bool,
        blocked: &dyn Fn(IpAddr, Proto) -> bool,
        hits: &mut Vec<Hit>,
    ) {
        let round = clock::now_ms();
        let mut probes = std::mem::take(&mut self.probes);
        let mut others = std::mem::take(&mut self.others);
        let mut bad_ihl = Vec::new();
        let (drops, totals) = (&mut self.drops, &mut self.totals);
        let mut bad_checksum = 0u64;
        let (defrag, watches, addrs) = (&mut self.defrag, &self.watches, &self.host.addrs);
        let mut each = |meta: PacketMeta, bytes: &[u8]| {
            totals.parsed += 1;
            let m = wire::Meta {
                wire_len: meta.wire_len as usize,
                csum: csum_state(meta),
                reassembled: false,
            };
            let mut count = |e: WireError| {
                drops.count(e);
                if e.is_bad_checksum() {
                    bad_checksum += 1;
                } else if e == WireError::NotTcpUdp {
                    totals.not_tcp_udp += 1;
                } else {
                    totals.malformed += 1;
                }
                if let WireError::IllegalHeaderLength {
                    ihl,
                    src,
                    proto: Some(proto),
                } = e
                {
                    bad_ihl.push((proto, ihl, src));
                }
            };
            match wire::parse(bytes, m) {
                Ok(Packet::Probe(p)) => probes.push((meta.pkttype, p)),
                Ok(Packet::Other(o)) => others.push((meta.pkttype, o)),
                // Only what the host itself reassembles: fragments from elsewhere to one of
                // its addresses (or an IPv4 broadcast, for UDP), never its own.
                Ok(Packet::Fragment(f))
                    if meta.pkttype != watch::PACKET_OUTGOING
                        && (addrs.contains(&f.dst.to_canonical())
                            || matches!(f.dst, IpAddr::V4(a) if a.is_broadcast())
                            || meta.pkttype == watch::PACKET_BROADCAST) =>
                {
                    let keep = f.dst.is_ipv6() || watches.judges_v4(f.proto);
                    if let defrag::Outcome::Complete(d) = defrag.push(round, &f, keep) {
                        let m = wire::Meta {
                            reassembled: true,
                            ..wire::Meta::whole(d.len())
                        };
                        match wire::parse(&d, m) {
                            Ok(Packet::Probe(p)) => probes.push((meta.pkttype, p)),
                            Ok(Packet::Other(o)) => others.push((meta.pkttype, o)),
                            Ok(Packet::Fragment(_)) => {}
                            Err(e) => count(e),
                        }
                    }
                }
                Ok(Packet::Fragment(_)) => {}
                Err(e) => count(e),
            }
        };
        if bell {
            self.capture.ring_bell(&mut each);
        } else {
            self.capture.drain(&mut each);
        }
        self.bad_checksum += bad_checksum;
        let copies = self.capture.counts();
        (self.totals.bell_packets, self.totals.copies_skipped) = (copies.bell, copies.skipped);
        (self.totals.ring_passes, self.totals.ring_rests) = (copies.passes, copies.rests);
        for (proto, ihl, src) in bad_ihl {
            if self.watches.get(proto).is_none() {
                continue;
            }
            let quiet = self
                .last_ihl_log
                .is_some_and(|t| round.saturating_sub(t) < IHL_LOG_MS);
            if !quiet {
                log.log(&report::illegal_header_length(proto, ihl, IpAddr::V4(src)));
                self.last_ihl_log = Some(round);
            }
        }
        let before = hits.len();
        // Smart-Verify: a fresh read of the sockets, at most once per protocol and round.
        let mut fresh = HashMap::new();
        // The TCP connections, looked up by 4-tuple (each at most once per round), for an
        // ACK-bearing packet on no flow known yet (a connection older than the daemon whose
        // listener has closed).
        let mut fresh_flows = sockdiag::FlowLookup::default();
        let mut addrs_fresh = false;
        for (pkttype, p) in probes.drain(..) {
            if pkttype == watch::PACKET_OUTGOING {
                self.totals.outgoing += 1;
                self.recent.note_outgoing(&p, round);
                continue;
            }
            let watches = &self.watches;
            let screened = screen_fresh(&mut self.host.addrs, p.dst, &mut addrs_fresh, |a| {
                watch::screen(watches, &p, pkttype, a)
            });
            let Ok(c) = screened else {
                self.totals.not_probes += 1;
                continue;
            };
            let proto = c.hit.mode.proto();
            // Asked only when a fresh read is at stake (at most once per packet): under a
            // flood the round's first candidate makes the fresh read, and the rest need not
            // look the source up in the engine's blocks at all.
            let mut asked = None;
            let mut source_blocked = || *asked.get_or_insert_with(|| blocked(c.hit.src, proto));
            let facts = Facts {
                port_in_use: self.port_in_use(
                    proto,
                    c.hit.port,
                    c.remote,
                    &mut source_blocked,
                    &mut fresh,
                ),
                flow_is_ours: c.needs_flow_check
                    && self.flow_is_ours(proto, c, round, &mut source_blocked, &mut fresh_flows),
            };
            match watch::decide(c, facts) {
                Ok(h) => hits.push(h),
                Err(_) => self.totals.not_probes += 1,
            }
        }
        for (pkttype, o) in others.drain(..) {
            if pkttype == watch::PACKET_OUTGOING {
                self.totals.outgoing += 1;
                continue;
            }
            let watches = &self.watches;
            let screened = screen_fresh(&mut self.host.addrs, o.dst, &mut addrs_fresh, |a| {
                watch::screen_other(watches, &o, a)
            });
            let Ok(c) = screened else {
                self.totals.not_probes += 1;
                continue;
            };
            // Smart-Verify for SCTP: a local SCTP endpoint on the port (an ICMP probe has
            // no port).
            let facts = Facts {
                port_in_use: o.kind.is_sctp() && self.host.sctp.contains(&o.dst_port),
                flow_is_ours: false,
            };
            match watch::decide(c, facts) {
                Ok(h) => hits.push(h),
                Err(_) => self.totals.not_probes += 1,
            }
        }
        self.totals.hits += (hits.len() - before) as u64;
        self.probes = reuse(probes);
        self.others = reuse(others);
    }

    /// Fact: a local socket would accept this probe now (see [`receives`]): the socket
    /// table (refreshed every [`REFRESH_MS`]) or, for a socket opened since, a fresh read
    /// (once per protocol and round, in `fresh`). A fresh read this round already made
    /// answers for every source. Before it, for a source the engine has blocked already (or
    /// is blocking) the table's answer stands and no read is made: the engine will only say
    /// "already blocked" (once a minute), and a check per packet was most of the daemon's CPU
    /// under a flood of forged sources sweeping every port (bench scenario E: 7 µs per hit
    /// with 1.2's bind test, 1.1-1.4 µs without). So `source_blocked` is asked only then.
    fn port_in_use(
        &self,
        proto: Proto,
        port: u16,
        remote: SocketAddr,
        source_blocked: &mut dyn FnMut() -> bool,
        fresh: &mut HashMap<Proto, SockTable>,
    ) -> bool {
        if receives(&self.host.table, proto, port, remote) {
            return true;
        }
        let table = match fresh.get(&proto) {
            Some(t) => t,
            None if source_blocked() => return false,
            None => fresh
                .entry(proto)
                .or_insert_with(|| sockdiag::read_receivers(proto)),
        };
        receives(table, proto, port, remote)
    }

    /// Fact: the candidate's flow is this host's: opened by it lately (its outgoing SYN or
    /// datagram), or a TCP connection in the socket table or, unless the source is blocked
    /// already, found by an exact sock_diag lookup of its 4-tuple (`fresh`: each tuple
    /// once per round): the connections of a service whose listener has gone (its port is
    /// watched again) are not its clients' scans.
    fn flow_is_ours(
        &self,
        proto: Proto,
        c: Candidate,
        now: u64,
        source_blocked: &mut dyn FnMut() -> bool,
        fresh: &mut sockdiag::FlowLookup,
    ) -> bool {
        self.recent.contains(proto, c.local, c.remote, now)
            || proto == Proto::Tcp
                && (self.host.table.owns_flow(c.local, c.remote)
                    || !source_blocked() && fresh.owns(c.local, c.remote))
    }

    /// What the capture counted since start, stage by stage (the ring's figures as of the
    /// last [`Stealth::tick`]).
    pub fn totals(&self) -> CapturePath {
        self.totals
    }

    /// Bad checksums and the reassembly's counters since start (issue 18).
    pub fn evasion(&self) -> crate::observe::stats::Evasion {
        let d = self.defrag.stats();
        crate::observe::stats::Evasion {
            bad_checksum: self.bad_checksum,
            fragments: d.fragments,
            reassembled: d.reassembled,
            unassembled: d.failed(),
            cache_bytes: self.defrag.bytes() as u64,
            cache_peak_bytes: d.peak_bytes as u64,
        }
    }

    /// Periodic work: refresh the host view, update the filter, report losses.
    /// Cheap to call on every loop turn: does nothing until [`REFRESH_MS`] has passed.
    pub fn tick(&mut self, log: &mut Logger) {
        let now = clock::now_ms();
        if now.saturating_sub(self.last_tick) < REFRESH_MS {
            return;
        }
        self.last_tick = now;
        self.defrag.expire(now);
        if now.saturating_sub(self.host_at) >= REFRESH_MS {
            self.host.addrs = read_addrs();
            self.host.sctp = sockdiag::read_sctp_listeners();
            // Listeners only (the kernel walks its listening hash) and UDP sockets.
            self.host.table = sockdiag::read_listeners();
            self.update_filter(log, false);
            self.note_unwatched(log);
            self.host_at = now;
        }
        match self.capture.stats() {
            Ok(s) => {
                self.ring_drops = self.ring_drops.saturating_add(u64::from(s.drops));
                self.totals.ring_drops = self.totals.ring_drops.saturating_add(u64::from(s.drops));
                // tp_packets counts the dropped packets too (af_packet's getsockopt adds them).
                self.totals.ring_packets = self
                    .totals
                    .ring_packets
                    .saturating_add(u64::from(s.packets));
            }
            Err(e) => log.log(&report::capture_error(e)),
        }
        if now.saturating_sub(self.last_loss_report) >= LOSS_REPORT_MS {
            // Packets that are simply not a probe kind are not losses.
            let mut real = self.drops;
            real.0[WireError::NotTcpUdp.kind()] = 0;
            if self.ring_drops > 0 || real.total() > 0 {
                log.log(&report::capture_losses(
                    self.ring_drops,
                    real.total(),
                    &real.summary(),
                ));
            }
            self.ring_drops = 0;
            self.drops = Drops::default();
            self.last_loss_report = now;
        }
    }

    /// Say once (per port and run) each watched port that a local socket has taken since the
    /// last read, and keep the list `portsentry status` shows.
    fn note_unwatched(&mut self, log: &mut Logger) {
        self.unwatched = unwatched_ports(&self.watches, &self.host.table);
        for &(m, p) in &self.unwatched {
            if self.said_unwatched.insert((m, p)) {
                log.log(&report::port_now_in_use(m, p));
            }
        }
    }

    /// Keep ports with a live listener out of the kernel filter.
    fn update_filter(&mut self, log: &mut Logger, force: bool) {
        let busy = (
            busy_ports(&self.host.table, Proto::Tcp),
            busy_ports(&self.host.table, Proto::Udp),
        );
        if !force && busy == self.filtered_busy {
            return;
        }
        let prog = bpf::compile(&self.watches.filter(&busy.0, &busy.1));
        match self.capture.set_filter(&prog) {
            Ok(()) => self.filtered_busy = busy,
            Err(e) => log.log(&report::capture_error(e)),
        }
    }
}
