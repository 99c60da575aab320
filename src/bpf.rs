//! The classic BPF program the capture socket runs in the kernel, generated from the watched
//! ports, so a flood at unwatched ports never reaches the daemon (DESIGN "Capture").
//!
//! It runs on an AF_PACKET `SOCK_DGRAM` socket, so offset 0 is the IP header, and it reads
//! the link-layer protocol and packet type through the kernel's ancillary loads
//! (`SKF_AD_PROTOCOL`, `SKF_AD_PKTTYPE`). It accepts:
//! - of what the host sends (`PACKET_OUTGOING`), only TCP segments with SYN and UDP
//!   datagrams from a watched port: they tell userspace about this host's own flows before
//!   any reply;
//! - IPv4 TCP/UDP, unfragmented, to a watched port of that protocol;
//! - every IPv4 fragment, whatever its protocol: a later fragment has no ports to test, and
//!   userspace reassembles them as the host will (`defrag`, issue 18; the protocols nobody
//!   watches only count towards `ipfrag_max_dist` there);
//! - IPv4 with a header length below 5 words, so the shell can log 1.2's line (§3.2);
//! - IPv6 TCP/UDP without extension headers to a watched port; IPv6 whose first next
//!   header is an extension header (a fragment header among them) goes to userspace, which
//!   walks the chain (`wire`);
//! - with [`FilterSpec::other`] (the TCP stealth and advanced modes): SCTP to a watched TCP
//!   port (SCTP shares TCP's port numbers, RFC 9260 §3.1), ICMP echo, timestamp and
//!   address-mask requests, ICMPv6 echo requests.
//!
//! The accepted set may be a superset of what alerts (the shell checks ports exactly); when
//! a port set has too many ranges for the kernel's 4096-instruction limit, the closest
//! ranges are merged until it fits.
//!
//! Pure: ports in, instructions out. The shell converts [`Insn`] to `libc::sock_filter`.

use std::collections::BTreeSet;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// The operation: class, size, mode, source bits.
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when it does not.
    pub jf: u8,
    /// The operand.
    pub k: u32,
}

/// Opcodes and constants from linux/filter.h, linux/bpf_common.h and linux/if_packet.h.
pub mod op {
    /// Class: load into A.
    pub const LD: u16 = 0x00;
    /// Class: load into X.
    pub const LDX: u16 = 0x01;
    /// Class: store A.
    pub const ST: u16 = 0x02;
    /// Class: arithmetic.
    pub const ALU: u16 = 0x04;
    /// Class: jump.
    pub const JMP: u16 = 0x05;
    /// Class: return.
    pub const RET: u16 = 0x06;
    /// Class: register transfer.
    pub const MISC: u16 = 0x07;
    /// Size: 32-bit word.
    pub const W: u16 = 0x00;
    /// Size: 16-bit half word.
    pub const H: u16 = 0x08;
    /// Size: byte.
    pub const B: u16 = 0x10;
    /// Mode: absolute offset.
    pub const ABS: u16 = 0x20;
    /// Mode: offset from X.
    pub const IND: u16 = 0x40;
    /// Mode: scratch memory.
    pub const MEM: u16 = 0x60;
    /// Mode: immediate.
    pub const IMM: u16 = 0x00;
    /// Mode: 4 * (byte & 0xf), the IPv4 header length.
    pub const MSH: u16 = 0xa0;
    /// ALU: and.
    pub const AND: u16 = 0x50;
    /// Jump: always.
    pub const JA: u16 = 0x00;
    /// Jump: if equal.
    pub const JEQ: u16 = 0x10;
    /// Jump: if greater.
    pub const JGT: u16 = 0x20;
    /// Jump: if greater or equal.
    pub const JGE: u16 = 0x30;
    /// Jump: if any bit set.
    pub const JSET: u16 = 0x40;
    /// Source: the constant k.
    pub const K: u16 = 0x00;
    /// Misc: A to X.
    pub const TAX: u16 = 0x00;
    /// Misc: X to A.
    pub const TXA: u16 = 0x80;
    /// `SKF_AD_OFF` (-0x1000) as the unsigned `k` of an absolute load.
    pub const AD_OFF: u32 = 0xffff_f000;
    /// Ancillary data offset: the packet's protocol (SKF_AD_PROTOCOL).
    pub const AD_PROTOCOL: u32 = 0;
    /// Ancillary data offset: the packet type (SKF_AD_PKTTYPE).
    pub const AD_PKTTYPE: u32 = 4;
    /// Packet type: sent by this host.
    pub const PACKET_OUTGOING: u32 = 4;
    /// EtherType IPv4.
    pub const ETH_P_IP: u32 = 0x0800;
    /// EtherType IPv6.
    pub const ETH_P_IPV6: u32 = 0x86dd;
    /// BPF_MAXINSNS.
    pub const MAX_INSNS: usize = 4096;
}

/// Bytes of an accepted packet copied to the ring: all of it, so its checksum can be verified
/// and a fragment stored (issue 18), up to a jumbo frame's 9000 bytes and more. Only local
/// GRO and GSO traffic is longer (checksummed by the kernel already, `Csum::Valid`, or not
/// verifiable, see `wire`); the bound stays below the ring's largest frame (a block less its
/// header), past which the kernel clamps with a log line.
pub const SNAPLEN: u32 = 16 * 1024;

/// A set of ports as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// The set of `ports`.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> PortSet {
        let set: BTreeSet<u16> = ports.into_iter().collect();
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for p in set {
            match ranges.last_mut() {
                Some((_, hi)) if u32::from(*hi) + 1 == u32::from(p) => *hi = p,
                _ => ranges.push((p, p)),
            }
        }
        PortSet { ranges }
    }

    /// Ports `0..limit` (limit exclusive, up to 65536) minus `excluded`.
    pub fn below_except(limit: u32, excluded: impl IntoIterator<Item = u16>) -> PortSet {
        let ex: BTreeSet<u16> = excluded.into_iter().collect();
        let mut ranges = Vec::new();
        let mut start: u32 = 0;
        let limit = limit.min(65536);
        for e in ex.into_iter().map(u32::from).filter(|&e| e < limit) {
            if e > start {
                ranges.push((start as u16, (e - 1) as u16));
            }
            start = e + 1;
        }
        if start < limit {
            ranges.push((start as u16, (limit - 1) as u16));
        }
        PortSet { ranges }
    }

    /// This set without the ports in `ex`.
    pub fn minus(&self, ex: impl IntoIterator<Item = u16>) -> PortSet {
        let ex: BTreeSet<u16> = ex.into_iter().collect();
        let mut ranges = Vec::new();
        for &(lo, hi) in &self.ranges {
            let mut start = u32::from(lo);
            for e in ex.range(lo..=hi).map(|&e| u32::from(e)) {
                if e > start {
                    ranges.push((start as u16, (e - 1) as u16));
                }
                start = e + 1;
            }
            if start <= u32::from(hi) {
                ranges.push((start as u16, hi));
            }
        }
        PortSet { ranges }
    }

    /// Is `port` in the set?
    pub fn contains(&self, port: u16) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < port);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= port)
    }

    /// No port at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many ports the set holds.
    pub fn len(&self) -> usize {
        self.ranges
            .iter()
            .map(|&(lo, hi)| usize::from(hi) - usize::from(lo) + 1)
            .sum()
    }

    /// The ranges, inclusive, ascending, disjoint.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// A superset with at most `max` ranges: the smallest gaps are filled first.
    pub fn coarsened(&self, max: usize) -> PortSet {
        let max = max.max(1);
        if self.ranges.len() <= max {
            return self.clone();
        }
        let mut gaps: Vec<u32> = self
            .ranges
            .windows(2)
            .map(|w| u32::from(w[1].0) - u32::from(w[0].1))
            .collect();
        gaps.sort_unstable();
        // Filling every gap up to this size leaves at most `max` ranges.
        let cut = gaps[self.ranges.len() - max - 1];
        let mut out: Vec<(u16, u16)> = Vec::new();
        for &(lo, hi) in &self.ranges {
            match out.last_mut() {
                Some((_, h)) if u32::from(lo) - u32::from(*h) <= cut => *h = hi,
                _ => out.push((lo, hi)),
            }
        }
        PortSet { ranges: out }
    }
}

/// What the capture watches: the ports per protocol (`None`: that protocol is not watched).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// TCP ports to pass (None: no TCP mode).
    pub tcp: Option<PortSet>,
    /// UDP ports to pass (None: no UDP mode).
    pub udp: Option<PortSet>,
    /// Also SCTP to the TCP ports, and ICMP/ICMPv6 requests (see the module doc).
    pub other: bool,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A tiny assembler: unconditional jumps to labels, resolved at the end (conditional jumps
/// are only ever short and written with literal offsets).
struct Asm {
    code: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn new() -> Asm {
        Asm {
            code: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
        }
    }
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn here(&mut self, l: usize) {
        if let Some(s) = self.labels.get_mut(l) {
            *s = Some(self.code.len());
        }
    }
    fn emit(&mut self, i: Insn) {
        self.code.push(i);
    }
    fn ja(&mut self, l: usize) {
        self.fixups.push((self.code.len(), l));
        self.code.push(stmt(op::JMP | op::JA, 0));
    }
    fn ret(&mut self, k: u32) {
        self.emit(stmt(op::RET | op::K, k));
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in self.fixups {
            let target = self.labels.get(l).copied().flatten().unwrap_or(at + 1);
            if let Some(i) = self.code.get_mut(at) {
                // Classic BPF only jumps forward; every label here is placed after its jumps.
                debug_assert!(target > at, "backward jump");
                i.k = target.saturating_sub(at + 1) as u32;
            }
        }
        self.code
    }
}

/// Emit the range test for `set` on the port in A: accept on a match, else fall through.
fn ranges(a: &mut Asm, set: &PortSet) {
    for &(lo, hi) in set.ranges() {
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        if lo == hi {
            a.emit(jump(op::JMP | op::JEQ | op::K, lo, 0, 1));
        } else if lo == 0 {
            a.emit(jump(op::JMP | op::JGT | op::K, hi, 1, 0));
        } else {
            a.emit(jump(op::JMP | op::JGE | op::K, lo, 0, 2));
            a.emit(jump(op::JMP | op::JGT | op::K, hi, 1, 0));
        }
        a.ret(SNAPLEN);
    }
}

/// Fixed instructions outside the two port tests (an upper bound).
const FIXED: usize = 128;

/// Build the filter program.
pub fn compile(spec: &FilterSpec) -> Vec<Insn> {
    // Each range costs at most 3 instructions; share the budget between the protocols.
    let per_proto = (op::MAX_INSNS - FIXED) / 2 / 3;
    let tcp = spec.tcp.as_ref().map(|s| s.coarsened(per_proto));
    let udp = spec.udp.as_ref().map(|s| s.coarsened(per_proto));

    let mut a = Asm::new();
    let (v4, v6, ports, tcp_l, udp_l, snap) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    let out = a.label();
    let ld_abs = |size: u16, k: u32| stmt(op::LD | size | op::ABS, k);

    // What the host sends goes to `out`.
    a.emit(ld_abs(op::W, op::AD_OFF + op::AD_PKTTYPE));
    a.emit(jump(op::JMP | op::JEQ | op::K, op::PACKET_OUTGOING, 0, 1));
    a.ja(out);
    a.emit(ld_abs(op::W, op::AD_OFF + op::AD_PROTOCOL));
    a.emit(jump(op::JMP | op::JEQ | op::K, op::ETH_P_IP, 0, 1));
    a.ja(v4);
    a.emit(jump(op::JMP | op::JEQ | op::K, op::ETH_P_IPV6, 0, 1));
    a.ja(v6);
    a.ret(0);

    // Outgoing: TCP segments with SYN (a connection this host opens or accepts) and UDP
    // datagrams, from a watched port, so userspace learns the flow before the first reply
    // arrives, however short-lived its socket. The source port goes through the port test.
    a.here(out);
    let (out6, out4_tcp, out4_udp) = (a.label(), a.label(), a.label());
    let (out6_tcp, out6_udp) = (a.label(), a.label());
    a.emit(ld_abs(op::W, op::AD_OFF + op::AD_PROTOCOL));
    a.emit(jump(op::JMP | op::JEQ | op::K, op::ETH_P_IPV6, 0, 1));
    a.ja(out6);
    a.emit(jump(op::JMP | op::JEQ | op::K, op::ETH_P_IP, 1, 0));
    a.ret(0);
    // A later fragment of ours has no transport header to read.
    a.emit(ld_abs(op::H, 6));
    a.emit(jump(op::JMP | op::JSET | op::K, 0x1fff, 0, 1));
    a.ret(0);
    a.emit(ld_abs(op::B, 9));
    a.emit(stmt(op::ST, 0));
    a.emit(stmt(op::LDX | op::B | op::MSH, 0));
    a.emit(jump(op::JMP | op::JEQ | op::K, 6, 0, 1));
    a.ja(out4_tcp);
    a.emit(jump(op::JMP | op::JEQ | op::K, 17, 0, 1));
    a.ja(out4_udp);
    a.ret(0);
    a.here(out4_tcp);
    a.emit(stmt(op::LD | op::B | op::IND, 13));
    a.emit(jump(op::JMP | op::JSET | op::K, 0x02, 1, 0));
    a.ret(0);
    a.here(out4_udp);
    a.emit(stmt(op::LD | op::H | op::IND, 0));
    a.ja(ports);
    a.here(out6);
    a.emit(ld_abs(op::B, 6));
    a.emit(stmt(op::ST, 0));
    a.emit(jump(op::JMP | op::JEQ | op::K, 6, 0, 1));
    a.ja(out6_tcp);
    a.emit(jump(op::JMP | op::JEQ | op::K, 17, 0, 1));
    a.ja(out6_udp);
    a.ret(0);
    a.here(out6_tcp);
    a.emit(ld_abs(op::B, 53));
    a.emit(jump(op::JMP | op::JSET | op::K, 0x02, 1, 0));
    a.ret(0);
    a.here(out6_udp);
    a.emit(ld_abs(op::H, 40));
    a.ja(ports);

    // IPv4.
    let (sctp4, icmp4) = (a.label(), a.label());
    a.here(v4);
    a.emit(ld_abs(op::B, 0));
    a.emit(stmt(op::ALU | op::AND | op::K, 0x0f));
    a.emit(jump(op::JMP | op::JGE | op::K, 5, 1, 0));
    a.ret(SNAPLEN); // IHL < 5: userspace logs it (§3.2)
    a.emit(ld_abs(op::H, 6));
    a.emit(jump(op::JMP | op::JSET | op::K, 0x3fff, 0, 1));
    a.ret(SNAPLEN); // MF or an offset: a fragment, for `defrag`
    a.emit(ld_abs(op::B, 9));
    a.emit(stmt(op::ST, 0));
    a.emit(stmt(op::LDX | op::B | op::MSH, 0));
    if spec.other {
        a.emit(jump(op::JMP | op::JEQ | op::K, 132, 0, 1));
        a.ja(sctp4);
        a.emit(jump(op::JMP | op::JEQ | op::K, 1, 0, 1));
        a.ja(icmp4);
    }
    a.emit(stmt(op::LD | op::H | op::IND, 2));
    a.ja(ports);
    if spec.other {
        // SCTP: the destination port, tested against the TCP ports.
        a.here(sctp4);
        a.emit(stmt(op::LD | op::IMM, 6));
        a.emit(stmt(op::ST, 0));
        a.emit(stmt(op::LD | op::H | op::IND, 2));
        a.ja(ports);
        // ICMP: echo (8), timestamp (13) and address-mask (17) requests.
        a.here(icmp4);
        a.emit(stmt(op::LD | op::B | op::IND, 0));
        for ty in [8u32, 13, 17] {
            a.emit(jump(op::JMP | op::JEQ | op::K, ty, 0, 1));
            a.ja(snap);
        }
        a.ret(0);
    }

    // IPv6.
    let (v6ports, sctp6, icmp6) = (a.label(), a.label(), a.label());
    a.here(v6);
    a.emit(ld_abs(op::B, 6));
    a.emit(stmt(op::ST, 0));
    for nh in [6u32, 17] {
        a.emit(jump(op::JMP | op::JEQ | op::K, nh, 0, 1));
        a.ja(v6ports);
    }
    // Hop-by-hop, routing, fragment, destination options, AH: userspace walks them.
    for nh in [0u32, 43, 44, 60, 51] {
        a.emit(jump(op::JMP | op::JEQ | op::K, nh, 0, 1));
        a.ja(snap);
    }
    if spec.other {
        a.emit(jump(op::JMP | op::JEQ | op::K, 132, 0, 1));
        a.ja(sctp6);
        a.emit(jump(op::JMP | op::JEQ | op::K, 58, 0, 1));
        a.ja(icmp6);
    }
    a.ret(0);
    if spec.other {
        a.here(sctp6);
        a.emit(stmt(op::LD | op::IMM, 6));
        a.emit(stmt(op::ST, 0));
        a.emit(ld_abs(op::H, 42));
        a.ja(ports);
        // ICMPv6 echo request (128).
        a.here(icmp6);
        a.emit(ld_abs(op::B, 40));
        a.emit(jump(op::JMP | op::JEQ | op::K, 128, 0, 1));
        a.ja(snap);
        a.ret(0);
    }
    a.here(v6ports);
    a.emit(ld_abs(op::H, 42));

    // Port in A, protocol in M[0].
    a.here(ports);
    a.emit(stmt(op::MISC | op::TAX, 0));
    a.emit(stmt(op::LD | op::W | op::MEM, 0));
    a.emit(jump(op::JMP | op::JEQ | op::K, 6, 0, 1));
    a.ja(tcp_l);
    a.emit(jump(op::JMP | op::JEQ | op::K, 17, 0, 1));
    a.ja(udp_l);
    a.ret(0);

    a.here(snap);
    a.ret(SNAPLEN);

    a.here(tcp_l);
    a.emit(stmt(op::MISC | op::TXA, 0));
    if let Some(s) = &tcp {
        ranges(&mut a, s);
    }
    a.ret(0);

    a.here(udp_l);
    a.emit(stmt(op::MISC | op::TXA, 0));
    if let Some(s) = &udp {
        ranges(&mut a, s);
    }
    a.ret(0);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tcp_flags::*;
    use crate::wire::fixtures::*;
    use crate::wire::ipproto;

    const HOST: u32 = 0;

    /// A classic BPF interpreter for the instructions `compile` uses, with the kernel's
    /// semantics: a load outside the packet ends the program with 0 (drop).
    fn run(prog: &[Insn], pkttype: u32, ethertype: u32, pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        let load = |at: u32, size: usize| -> Option<u32> {
            if at >= op::AD_OFF {
                return match at - op::AD_OFF {
                    op::AD_PROTOCOL => Some(ethertype),
                    op::AD_PKTTYPE => Some(pkttype),
                    _ => None,
                };
            }
            let s = pkt.get(at as usize..at as usize + size)?;
            Some(s.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)))
        };
        for _ in 0..10_000 {
            let i = prog[pc];
            pc += 1;
            let size = |c: u16| match c & 0x18 {
                op::W => 4,
                op::H => 2,
                _ => 1,
            };
            match i.code & 0x07 {
                op::LD => match i.code & 0xe0 {
                    op::ABS => match load(i.k, size(i.code)) {
                        Some(v) => a = v,
                        None => return 0,
                    },
                    op::IND => match load(x.wrapping_add(i.k), size(i.code)) {
                        Some(v) => a = v,
                        None => return 0,
                    },
                    op::MEM => a = mem[i.k as usize],
                    op::IMM => a = i.k,
                    c => panic!("ld mode {c:#x}"),
                },
                op::LDX => match i.code & 0xe0 {
                    op::MSH => match load(i.k, 1) {
                        Some(v) => x = (v & 0x0f) * 4,
                        None => return 0,
                    },
                    c => panic!("ldx mode {c:#x}"),
                },
                op::ST => mem[i.k as usize] = a,
                op::ALU => match i.code & 0xf0 {
                    op::AND => a &= i.k,
                    c => panic!("alu {c:#x}"),
                },
                op::JMP => {
                    let take = match i.code & 0xf0 {
                        op::JA => {
                            pc += i.k as usize;
                            continue;
                        }
                        op::JEQ => a == i.k,
                        op::JGT => a > i.k,
                        op::JGE => a >= i.k,
                        op::JSET => a & i.k != 0,
                        c => panic!("jmp {c:#x}"),
                    };
                    pc += usize::from(if take { i.jt } else { i.jf });
                }
                op::RET => return i.k,
                op::MISC => match i.code & 0xf8 {
                    op::TAX => x = a,
                    op::TXA => a = x,
                    c => panic!("misc {c:#x}"),
                },
                c => panic!("class {c:#x}"),
            }
        }
        panic!("program did not end");
    }

    /// What the kernel's checker insists on: size, jumps inside the program, a final return.
    fn check(prog: &[Insn]) {
        assert!(
            !prog.is_empty() && prog.len() <= op::MAX_INSNS,
            "{}",
            prog.len()
        );
        for (pc, i) in prog.iter().enumerate() {
            if i.code & 0x07 == op::JMP {
                let far = if i.code & 0xf0 == op::JA {
                    i.k as usize
                } else {
                    usize::from(i.jt.max(i.jf))
                };
                assert!(pc + 1 + far < prog.len(), "jump out at {pc}");
            }
        }
        assert_eq!(prog.last().unwrap().code, op::RET | op::K);
    }

    fn v4_run(prog: &[Insn], pkt: &[u8]) -> u32 {
        run(prog, HOST, op::ETH_P_IP, pkt)
    }
    fn v6_run(prog: &[Insn], pkt: &[u8]) -> u32 {
        run(prog, HOST, op::ETH_P_IPV6, pkt)
    }

    fn stealth() -> Vec<Insn> {
        let p = compile(&FilterSpec {
            tcp: Some(PortSet::from_ports([1, 11, 31337, 31338, 31339])),
            udp: Some(PortSet::from_ports([7, 513])),
            other: false,
        });
        check(&p);
        p
    }

    #[test]
    fn port_set_len_counts_ports() {
        assert_eq!(PortSet::from_ports([1, 11, 31337, 31338, 31339]).len(), 5);
        assert_eq!(PortSet::below_except(1024, [22, 80]).len(), 1022);
        assert_eq!(PortSet::below_except(65536, []).len(), 65536);
        assert_eq!(PortSet::from_ports([]).len(), 0);
    }

    #[test]
    fn ipv4_watched_ports_pass_and_others_drop() {
        let p = stealth();
        for port in [1, 11, 31337, 31338, 31339] {
            assert_eq!(v4_run(&p, &v4(6, &[], &tcp(port, SYN))), SNAPLEN, "{port}");
        }
        for port in [0, 2, 10, 12, 31336, 31340, 7, 65535] {
            assert_eq!(v4_run(&p, &v4(6, &[], &tcp(port, SYN))), 0, "{port}");
        }
        assert_eq!(v4_run(&p, &v4(17, &[], &udp(513))), SNAPLEN);
        assert_eq!(v4_run(&p, &v4(17, &[], &udp(11))), 0);
        // ICMP, and the host's own outgoing packets.
        assert_eq!(v4_run(&p, &v4(1, &[], &[8, 0, 0, 0, 0, 0, 0, 0])), 0);
        // Outgoing: SYN and SYN+ACK from a watched port pass; other flags, other source
        // ports (the destination port does not matter) and other protocols do not.
        let from = |sport: u16, flags: u8| {
            let mut t = tcp(80, flags);
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t
        };
        for (sport, flags, want) in [
            (11, SYN, SNAPLEN),
            (31338, SYN | ACK, SNAPLEN),
            (11, ACK, 0),
            (11, FIN, 0),
            (12, SYN, 0),
            (40000, SYN, 0),
        ] {
            let out = v4(6, &[], &from(sport, flags));
            assert_eq!(
                run(&p, op::PACKET_OUTGOING, op::ETH_P_IP, &out),
                want,
                "{sport}"
            );
            let out = v4(6, &[7, 7, 4, 0, 0, 0, 0, 0], &from(sport, flags));
            assert_eq!(
                run(&p, op::PACKET_OUTGOING, op::ETH_P_IP, &out),
                want,
                "{sport}"
            );
            let out = v6(6, &from(sport, flags));
            assert_eq!(
                run(&p, op::PACKET_OUTGOING, op::ETH_P_IPV6, &out),
                want,
                "{sport}"
            );
        }
        // Outgoing UDP from a watched port (7) passes, from another port not.
        let dgram = |sport: u16| {
            let mut u = udp(53);
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u
        };
        assert_eq!(
            run(
                &p,
                op::PACKET_OUTGOING,
                op::ETH_P_IP,
                &v4(17, &[], &dgram(7))
            ),
            SNAPLEN
        );
        assert_eq!(
            run(
                &p,
                op::PACKET_OUTGOING,
                op::ETH_P_IPV6,
                &v6(17, &dgram(513))
            ),
            SNAPLEN
        );
        assert_eq!(
            run(
                &p,
                op::PACKET_OUTGOING,
                op::ETH_P_IP,
                &v4(17, &[], &dgram(8))
            ),
            0
        );
        assert_eq!(
            run(&p, op::PACKET_OUTGOING, op::ETH_P_IP, &v4(1, &[], &[8; 8])),
            0
        );
        let out = v4(6, &[], &tcp(1, SYN));
        // ARP and others.
        assert_eq!(run(&p, HOST, 0x0806, &out), 0);
    }

    #[test]
    fn ipv4_options_shift_the_transport_header() {
        let p = stealth();
        let opts = [7, 7, 4, 0, 0, 0, 0, 0];
        assert_eq!(v4_run(&p, &v4(6, &opts, &tcp(11, FIN))), SNAPLEN);
        assert_eq!(v4_run(&p, &v4(6, &opts, &tcp(12, FIN))), 0);
    }

    #[test]
    fn ipv4_illegal_ihl_and_every_fragment_go_to_userspace() {
        let p = stealth();
        let mut pkt = v4(6, &[], &tcp(2, SYN));
        pkt[0] = 0x43;
        assert_eq!(v4_run(&p, &pkt), SNAPLEN);
        // Later fragments (no ports) and first fragments (MF), of any protocol and to any
        // port: `defrag` needs them all.
        for (hi, lo) in [(0x00, 0x10), (0x20, 0x00), (0x3f, 0xff), (0x60, 0x01)] {
            for (proto, l4) in [(6, tcp(2, SYN)), (17, udp(9)), (47, vec![0; 8])] {
                let mut pkt = v4(proto, &[], &l4);
                pkt[6] = hi;
                pkt[7] = lo;
                assert_eq!(v4_run(&p, &pkt), SNAPLEN, "{proto} {hi:#x}{lo:02x}");
            }
        }
        // DF alone is no fragment.
        let mut pkt = v4(6, &[], &tcp(2, SYN));
        pkt[6] = 0x40;
        assert_eq!(v4_run(&p, &pkt), 0);
        // Our own later fragments are never wanted.
        let mut out = v4(17, &[], &udp(7));
        out[0..2].copy_from_slice(&[0x45, 0]);
        out[7] = 0x10;
        assert_eq!(run(&p, op::PACKET_OUTGOING, op::ETH_P_IP, &out), 0);
        // Truncated before the ports: the kernel's load fails, the packet is dropped.
        assert_eq!(v4_run(&p, &v4(6, &[], &[0x9c])), 0);
    }

    #[test]
    fn sctp_and_icmp_requests_pass_only_with_other() {
        use crate::wire::fixtures::{icmp, sctp};
        let plain = stealth();
        let p = compile(&FilterSpec {
            tcp: Some(PortSet::from_ports([1, 11, 31337])),
            udp: Some(PortSet::from_ports([7])),
            other: true,
        });
        check(&p);
        for (port, want) in [(11, SNAPLEN), (31337, SNAPLEN), (7, 0), (80, 0)] {
            let s4 = v4(ipproto::SCTP, &[], &sctp(port, 1));
            let s6 = v6(ipproto::SCTP, &sctp(port, 10));
            assert_eq!(v4_run(&p, &s4), want, "sctp {port}");
            assert_eq!(v6_run(&p, &s6), want, "sctp6 {port}");
            assert_eq!(v4_run(&plain, &s4), 0);
            assert_eq!(v6_run(&plain, &s6), 0);
        }
        for (ty, want) in [
            (8, SNAPLEN),
            (13, SNAPLEN),
            (17, SNAPLEN),
            (0, 0),
            (3, 0),
            (11, 0),
        ] {
            let i4 = v4(ipproto::ICMP, &[], &icmp(ty));
            assert_eq!(v4_run(&p, &i4), want, "icmp {ty}");
            assert_eq!(v4_run(&plain, &i4), 0);
            let opts = [7, 7, 4, 0, 0, 0, 0, 0];
            assert_eq!(v4_run(&p, &v4(ipproto::ICMP, &opts, &icmp(ty))), want);
        }
        for (ty, want) in [(128, SNAPLEN), (129, 0), (135, 0), (136, 0), (1, 0)] {
            let i6 = v6(ipproto::ICMPV6, &icmp(ty));
            assert_eq!(v6_run(&p, &i6), want, "icmp6 {ty}");
            assert_eq!(v6_run(&plain, &i6), 0);
        }
        // TCP and UDP are unchanged.
        assert_eq!(v4_run(&p, &v4(6, &[], &tcp(11, SYN))), SNAPLEN);
        assert_eq!(v4_run(&p, &v4(6, &[], &tcp(12, SYN))), 0);
        assert_eq!(v6_run(&p, &v6(17, &udp(7))), SNAPLEN);
        assert_eq!(v6_run(&p, &v6(17, &udp(8))), 0);
    }

    #[test]
    fn ipv6_plain_and_extension_headers() {
        let p = stealth();
        assert_eq!(v6_run(&p, &v6(6, &tcp(31338, SYN))), SNAPLEN);
        assert_eq!(v6_run(&p, &v6(6, &tcp(22, SYN))), 0);
        assert_eq!(v6_run(&p, &v6(17, &udp(7))), SNAPLEN);
        assert_eq!(v6_run(&p, &v6(17, &udp(8))), 0);
        assert_eq!(v6_run(&p, &v6(58, &[128, 0, 0, 0])), 0); // ICMPv6
        for nh in [
            ipproto::HOPOPT,
            ipproto::ROUTING,
            ipproto::FRAGMENT,
            ipproto::DSTOPTS,
            ipproto::AH,
        ] {
            let mut rest = vec![ipproto::TCP, 0, 0, 0, 0, 0, 0, 0];
            rest.extend_from_slice(&tcp(22, SYN));
            assert_eq!(v6_run(&p, &v6(nh, &rest)), SNAPLEN, "nh {nh}");
        }
        assert_eq!(
            run(
                &p,
                op::PACKET_OUTGOING,
                op::ETH_P_IPV6,
                &v6(6, &tcp(1, ACK))
            ),
            0
        );
    }

    #[test]
    fn advanced_ranges_and_an_unwatched_protocol() {
        let p = compile(&FilterSpec {
            tcp: Some(PortSet::below_except(1024, [22, 113, 139, 2000])),
            udp: None,
            other: false,
        });
        check(&p);
        for (port, want) in [
            (0, SNAPLEN),
            (21, SNAPLEN),
            (22, 0),
            (23, SNAPLEN),
            (113, 0),
            (139, 0),
            (1023, SNAPLEN),
            (1024, 0),
            (2000, 0),
        ] {
            assert_eq!(v4_run(&p, &v4(6, &[], &tcp(port, ACK))), want, "{port}");
            assert_eq!(v6_run(&p, &v6(6, &tcp(port, ACK))), want, "v6 {port}");
        }
        assert_eq!(v4_run(&p, &v4(17, &[], &udp(53))), 0);
        let all = compile(&FilterSpec {
            tcp: Some(PortSet::below_except(65536, [])),
            udp: Some(PortSet::default()),
            other: false,
        });
        check(&all);
        assert_eq!(v4_run(&all, &v4(6, &[], &tcp(65535, SYN))), SNAPLEN);
        assert_eq!(v4_run(&all, &v4(17, &[], &udp(1))), 0);
        // UDP only: nothing outgoing is wanted.
        let u = compile(&FilterSpec {
            tcp: None,
            udp: Some(PortSet::from_ports([7])),
            other: false,
        });
        check(&u);
        let out = v4(6, &[], &tcp(1, SYN));
        assert_eq!(run(&u, op::PACKET_OUTGOING, op::ETH_P_IP, &out), 0);
    }

    #[test]
    fn too_many_ranges_become_a_superset_that_fits() {
        // Every third port excluded: ~21845 ranges.
        let ex: Vec<u16> = (0..=65535u16).filter(|p| p % 3 == 0).collect();
        let set = PortSet::below_except(65536, ex.iter().copied());
        let p = compile(&FilterSpec {
            tcp: Some(set.clone()),
            udp: Some(set.clone()),
            other: false,
        });
        check(&p);
        // Never a false drop: every watched port still passes.
        for port in (0..=65535u16).step_by(97) {
            let got = v4_run(&p, &v4(6, &[], &tcp(port, SYN)));
            if set.contains(port) {
                assert_eq!(got, SNAPLEN, "{port}");
            }
        }
    }

    /// Random port sets: the program's verdict equals `PortSet::contains` (exactly while the
    /// set fits, a superset once it is coarsened), for TCP and UDP, IPv4 and IPv6.
    #[test]
    fn random_sets_match_contains() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40 {
            let n = (rnd() % 2000) as usize;
            let ex: Vec<u16> = (0..n).map(|_| rnd() as u16).collect();
            let tcp = PortSet::below_except((rnd() % 65537) as u32, ex.iter().copied());
            let udp_set = PortSet::from_ports((0..(rnd() % 50)).map(|_| rnd() as u16));
            let p = compile(&FilterSpec {
                tcp: Some(tcp.clone()),
                udp: Some(udp_set.clone()),
                other: false,
            });
            check(&p);
            let fits = tcp.ranges().len() <= (op::MAX_INSNS - FIXED) / 2 / 3;
            for _ in 0..300 {
                let port = if rnd() % 4 == 0 {
                    ex.get((rnd() as usize) % ex.len().max(1))
                        .copied()
                        .unwrap_or(0)
                } else {
                    rnd() as u16
                };
                let t4 = v4_run(&p, &v4(6, &[], &tcp_hdr(port))) == SNAPLEN;
                let t6 = v6_run(&p, &v6(6, &tcp_hdr(port))) == SNAPLEN;
                let u4 = v4_run(&p, &v4(17, &[], &udp(port))) == SNAPLEN;
                assert_eq!(t4, t6, "round {round} port {port}");
                if fits {
                    assert_eq!(t4, tcp.contains(port), "round {round} port {port}");
                } else if tcp.contains(port) {
                    assert!(t4, "false drop: round {round} port {port}");
                }
                assert_eq!(u4, udp_set.contains(port), "round {round} udp {port}");
            }
        }
    }

    fn tcp_hdr(port: u16) -> Vec<u8> {
        tcp(port, SYN)
    }

    #[test]
    fn port_sets() {
        let s = PortSet::from_ports([5, 3, 4, 9, 65535, 65534]);
        assert_eq!(s.ranges(), &[(3, 5), (9, 9), (65534, 65535)]);
        assert!(s.contains(4) && s.contains(65535) && !s.contains(6) && !s.contains(0));
        let b = PortSet::below_except(10, [0, 3, 4, 9, 20]);
        assert_eq!(b.ranges(), &[(1, 2), (5, 8)]);
        assert!(PortSet::below_except(0, []).is_empty());
        let m = PortSet::below_except(100, [50]).minus([0, 10, 11, 49, 51, 99, 200]);
        assert_eq!(m.ranges(), &[(1, 9), (12, 48), (52, 98)]);
        let c = PortSet::from_ports([1, 3, 10, 12, 100]).coarsened(2);
        assert_eq!(c.ranges(), &[(1, 12), (100, 100)]);
    }
}
