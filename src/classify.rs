//! TCP probe classification from the raw flag byte (all 8 bits, STYLE 2).
//!
//! Packets without ACK and RST get 1.2's names exactly (`ReportPacketType`, §3.2), through
//! [`TcpScanType::from_flags_v12`]. 1.2 drops every packet with ACK or RST; we go further
//! (DESIGN "What we fix") and name ACK (nmap `-sA`, and `-sW`, whose probe is the same bare
//! ACK: the two differ only in how nmap reads the reply, so both are reported as an ACK scan),
//! Maimon (FIN+ACK, `-sM`), SYN+RST and all-flags probes. Those packets could also belong to
//! a real connection of this host, so they are only [`TcpClass::Candidate`]s: the shell must
//! first check that no local socket owns the flow (see `socktable`).
//!
//! The flag constants and the scan kinds live here, with the rules that use them; the
//! words of the detection lines are `report`'s.
//!
//! Pure: flags in, a class out.

use crate::mode::Proto;
use tcp_flags::*;

/// TCP header flag bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
pub mod tcp_flags {
    /// FIN: no more data.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// RST: reset.
    pub const RST: u8 = 0x04;
    /// PSH: push.
    pub const PSH: u8 = 0x08;
    /// ACK: acknowledgement valid.
    pub const ACK: u8 = 0x10;
    /// URG: urgent pointer valid.
    pub const URG: u8 = 0x20;
    /// ECE: ECN echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// CWR: congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// What kind of TCP probe a stealth-mode detection line names (§3.2). The first five are 1.2's
/// names; the rest are probes 1.2 drops (it ignores every packet with ACK or RST set) and that
/// this implementation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpScanType {
    /// No flag among SYN FIN ACK PSH RST URG: ` TCP NULL scan` (leading space, as 1.2).
    Null,
    /// FIN, URG and PSH set: `TCP XMAS scan`.
    Xmas,
    /// FIN only: `TCP FIN scan`.
    Fin,
    /// SYN only (ECE and CWR do not count): `TCP SYN/Normal scan`.
    Syn,
    /// Anything else, described from the raw flag byte as 1.2's `ReportPacketType` does.
    Unknown {
        /// The raw flag byte.
        flags: u8,
    },
    /// ACK alone outside any known connection (nmap `-sA`): `TCP ACK scan`.
    Ack,
    /// FIN+ACK (nmap `-sM`): `TCP Maimon scan`.
    Maimon,
    /// SYN and RST together, never seen in a real connection: `TCP SYN/RST scan`.
    SynRst,
    /// All six classic flags set: `TCP ALL flags scan`.
    All,
}

impl TcpScanType {
    /// 1.2's `ReportPacketType` (§3.2): the first rule that matches wins. ECE and CWR are never
    /// looked at. 1.2 only ever calls it for packets without ACK and RST; with them set the
    /// rules still give XMAS or Unknown, as 1.2's function would.
    pub fn from_flags_v12(flags: u8) -> TcpScanType {
        use tcp_flags::*;
        let six = flags & (SYN | FIN | ACK | PSH | RST | URG);
        if six == 0 {
            TcpScanType::Null
        } else if six & (FIN | URG | PSH) == (FIN | URG | PSH) {
            TcpScanType::Xmas
        } else if six == FIN {
            TcpScanType::Fin
        } else if six == SYN {
            TcpScanType::Syn
        } else {
            TcpScanType::Unknown { flags }
        }
    }
}

/// What a stealth or advanced mode saw: a typed TCP probe or a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// A TCP probe of this type.
    Tcp(TcpScanType),
    /// A UDP datagram.
    Udp,
}

impl ScanKind {
    /// The protocol of the probe.
    pub fn proto(self) -> Proto {
        match self {
            ScanKind::Tcp(_) => Proto::Tcp,
            ScanKind::Udp => Proto::Udp,
        }
    }
}

/// The probes beyond TCP and UDP that the TCP stealth and advanced modes report (issue 18):
/// what nmap's SCTP scans (`-sY`, `-sZ`) and its ICMP host discovery (`-PE`, `-PP`, `-PM`)
/// send, and what psad and Snort's `port_scan` report. Every other ICMP type (replies,
/// errors, neighbour discovery) and every other SCTP chunk is no probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OtherProbe {
    /// An SCTP packet whose first chunk is INIT (type 1, RFC 9260 §3.3.2): `nmap -sY`.
    SctpInit,
    /// An SCTP packet whose first chunk is COOKIE ECHO (type 10, RFC 9260 §3.3.11): `nmap -sZ`.
    SctpCookieEcho,
    /// ICMP echo request (type 8, RFC 792): `ping`, `nmap -PE`.
    IcmpEcho,
    /// ICMP timestamp request (type 13, RFC 792): `nmap -PP`.
    IcmpTimestamp,
    /// ICMP address mask request (type 17, RFC 950): `nmap -PM`.
    IcmpAddressMask,
    /// ICMPv6 echo request (type 128, RFC 4443 §4.1): `ping -6`, `nmap -6 -PE`.
    Icmp6Echo,
}

impl OtherProbe {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [OtherProbe; 6] = [
        OtherProbe::SctpInit,
        OtherProbe::SctpCookieEcho,
        OtherProbe::IcmpEcho,
        OtherProbe::IcmpTimestamp,
        OtherProbe::IcmpAddressMask,
        OtherProbe::Icmp6Echo,
    ];

    /// The probe an ICMP message of this type is (IPv4), if any.
    pub fn from_icmp(ty: u8) -> Option<OtherProbe> {
        match ty {
            8 => Some(OtherProbe::IcmpEcho),
            13 => Some(OtherProbe::IcmpTimestamp),
            17 => Some(OtherProbe::IcmpAddressMask),
            _ => None,
        }
    }

    /// The probe an ICMPv6 message of this type is, if any.
    pub fn from_icmp6(ty: u8) -> Option<OtherProbe> {
        (ty == 128).then_some(OtherProbe::Icmp6Echo)
    }

    /// The probe an SCTP packet whose first chunk has this type is, if any.
    pub fn from_sctp_chunk(ty: u8) -> Option<OtherProbe> {
        match ty {
            1 => Some(OtherProbe::SctpInit),
            10 => Some(OtherProbe::SctpCookieEcho),
            _ => None,
        }
    }

    /// SCTP (a port is probed) rather than ICMP (no port).
    pub fn is_sctp(self) -> bool {
        matches!(self, OtherProbe::SctpInit | OtherProbe::SctpCookieEcho)
    }
}

/// What a TCP packet to a watched port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpClass {
    /// No ACK and no RST: never part of an established flow; a probe (1.2's names).
    Probe(TcpScanType),
    /// ACK or RST set: a probe only if no local socket owns the 4-tuple.
    Candidate(TcpScanType),
    /// Bare RST or RST+ACK: what a host sends back to somebody else's spoofed probe
    /// (backscatter) or to end a flow we already forgot; never a scan of ours.
    NotAProbe,
}

/// The six flags 1.2 looks at; ECE and CWR (RFC 3168) never change the class.
const SIX: u8 = SYN | FIN | ACK | PSH | RST | URG;

/// The class of a TCP packet with these flags (all 8 bits).
pub fn classify_tcp(flags: u8) -> TcpClass {
    let six = flags & SIX;
    if six & (ACK | RST) == 0 {
        return TcpClass::Probe(TcpScanType::from_flags_v12(flags));
    }
    let t = if six == SIX {
        TcpScanType::All
    } else if six == ACK {
        TcpScanType::Ack
    } else if six == FIN | ACK {
        TcpScanType::Maimon
    } else if six & (SYN | RST | ACK) == SYN | RST {
        TcpScanType::SynRst
    } else if six == RST || six == RST | ACK {
        return TcpClass::NotAProbe;
    } else {
        // SYN+ACK, PSH+ACK, XMAS+ACK, ...: named as 1.2's function would name them.
        TcpScanType::from_flags_v12(flags)
    };
    TcpClass::Candidate(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected class of every one of the 256 flag bytes, written out independently of
    /// `classify_tcp`'s rule order.
    fn expected(f: u8) -> TcpClass {
        let has = |m: u8| f & m == m;
        let ack_or_rst = has(ACK) || has(RST);
        if !ack_or_rst {
            let t = if f & SIX == 0 {
                TcpScanType::Null
            } else if has(FIN | URG | PSH) {
                TcpScanType::Xmas
            } else if f & SIX == FIN {
                TcpScanType::Fin
            } else if f & SIX == SYN {
                TcpScanType::Syn
            } else {
                TcpScanType::Unknown { flags: f }
            };
            return TcpClass::Probe(t);
        }
        let all = has(SYN) && has(FIN) && has(ACK) && has(PSH) && has(RST) && has(URG);
        if all {
            return TcpClass::Candidate(TcpScanType::All);
        }
        let only = |m: u8| f & SIX == m;
        if only(ACK) {
            TcpClass::Candidate(TcpScanType::Ack)
        } else if only(FIN | ACK) {
            TcpClass::Candidate(TcpScanType::Maimon)
        } else if has(SYN) && has(RST) && !has(ACK) {
            TcpClass::Candidate(TcpScanType::SynRst)
        } else if only(RST) || only(RST | ACK) {
            TcpClass::NotAProbe
        } else if has(FIN | URG | PSH) {
            TcpClass::Candidate(TcpScanType::Xmas)
        } else {
            TcpClass::Candidate(TcpScanType::Unknown { flags: f })
        }
    }

    #[test]
    fn tcp_scan_names_follow_report_packet_type() {
        use tcp_flags::*;
        let cases = [
            (0, TcpScanType::Null),
            (ECE | CWR, TcpScanType::Null),
            (FIN | URG | PSH, TcpScanType::Xmas),
            (FIN | URG | PSH | SYN, TcpScanType::Xmas),
            (FIN | URG | PSH | ACK | RST | SYN, TcpScanType::Xmas),
            (FIN, TcpScanType::Fin),
            (FIN | ECE, TcpScanType::Fin),
            (SYN, TcpScanType::Syn),
            (SYN | ECE | CWR, TcpScanType::Syn),
            (SYN | FIN, TcpScanType::Unknown { flags: SYN | FIN }),
            (PSH, TcpScanType::Unknown { flags: PSH }),
            (FIN | PSH, TcpScanType::Unknown { flags: FIN | PSH }),
        ];
        for (flags, want) in cases {
            assert_eq!(
                TcpScanType::from_flags_v12(flags),
                want,
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn every_flag_combination() {
        let mut seen = std::collections::HashMap::new();
        for f in 0..=255u8 {
            let got = classify_tcp(f);
            assert_eq!(got, expected(f), "flags {f:#04x}");
            *seen
                .entry(format!("{got:?}").split('(').next().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        // 64 six-flag patterns without ACK/RST x 4 (ECE, CWR) are probes.
        assert_eq!(seen["Probe"], 16 * 4);
        assert_eq!(seen["NotAProbe"], 2 * 4);
        assert_eq!(seen["Candidate"], 256 - 64 - 8);
    }

    #[test]
    fn the_scans_nmap_and_hping3_send() {
        use TcpClass::*;
        let cases = [
            (SYN, Probe(TcpScanType::Syn)),              // -sS, -sT's first packet
            (SYN | ECE | CWR, Probe(TcpScanType::Syn)),  // ECN SYN
            (FIN, Probe(TcpScanType::Fin)),              // -sF
            (0, Probe(TcpScanType::Null)),               // -sN
            (FIN | PSH | URG, Probe(TcpScanType::Xmas)), // -sX
            (ACK, Candidate(TcpScanType::Ack)),          // -sA, -sW
            (FIN | ACK, Candidate(TcpScanType::Maimon)), // -sM
            (SYN | RST, Candidate(TcpScanType::SynRst)), // hping3 -S -R
            (SYN | RST | FIN, Candidate(TcpScanType::SynRst)), //
            (SIX, Candidate(TcpScanType::All)),          // hping3 -FSRPAU
            (SIX | ECE | CWR, Candidate(TcpScanType::All)), // hping3 -FSRPAUXY
            (URG | PSH, Probe(TcpScanType::Unknown { flags: URG | PSH })),
            (SYN | FIN, Probe(TcpScanType::Unknown { flags: SYN | FIN })),
            (
                SYN | ACK,
                Candidate(TcpScanType::Unknown { flags: SYN | ACK }),
            ),
            (RST, NotAProbe),
            (RST | ACK, NotAProbe),
        ];
        for (f, want) in cases {
            assert_eq!(classify_tcp(f), want, "flags {f:#04x}");
        }
    }
}
