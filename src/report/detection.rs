//! Detection lines (§8.3, §3.2): what was seen, from whom, on which port, in 1.2's words;
//! and the lines that account for what was not reported one by one (rate limits, capture
//! losses).

use std::fmt::Display;
use std::net::IpAddr;

use crate::classify::{OtherProbe, ScanKind, TcpScanType, tcp_flags};
use crate::mode::Proto;

use super::host;

/// The text that starts a TCP detection line, after `attackalert: ` (1.2's
/// `ReportPacketType` names for the first five, §3.2).
pub fn tcp_scan_text(t: TcpScanType) -> String {
    match t {
        TcpScanType::Null => " TCP NULL scan".to_owned(),
        TcpScanType::Xmas => "TCP XMAS scan".to_owned(),
        TcpScanType::Fin => "TCP FIN scan".to_owned(),
        TcpScanType::Syn => "TCP SYN/Normal scan".to_owned(),
        TcpScanType::Unknown { flags } => {
            use tcp_flags::*;
            let bit = |mask: u8| u8::from(flags & mask != 0);
            format!(
                "Unknown Type: TCP Packet Flags: SYN: {} FIN: {} ACK: {} PSH: {} URG: {} RST: {}",
                bit(SYN),
                bit(FIN),
                bit(ACK),
                bit(PSH),
                bit(URG),
                bit(RST)
            )
        }
        TcpScanType::Ack => "TCP ACK scan".to_owned(),
        TcpScanType::Maimon => "TCP Maimon scan".to_owned(),
        TcpScanType::SynRst => "TCP SYN/RST scan".to_owned(),
        TcpScanType::All => "TCP ALL flags scan".to_owned(),
    }
}

/// The type text of a detection line: [`tcp_scan_text`], or `UDP scan` (§3.2).
pub fn scan_text(kind: ScanKind) -> String {
    match kind {
        ScanKind::Tcp(t) => tcp_scan_text(t),
        ScanKind::Udp => "UDP scan".to_owned(),
    }
}

/// `attackalert: Connect from host: {name}/{ip} to {TCP|UDP} port: {p}` (`-tcp`, `-udp`)
pub fn connect_from(name: &str, ip: IpAddr, proto: Proto, port: u16) -> String {
    format!(
        "attackalert: Connect from host: {} to {proto} port: {port}",
        host(name, ip)
    )
}

/// `attackalert: {type} from host: {name}/{ip} to {TCP|UDP} port: {p}` (stealth and advanced
/// modes). `{type}` is [`scan_text`]; the protocol word follows the kind, so a TCP kind can
/// never be printed with `UDP port`. A NULL scan reads `attackalert:  TCP NULL scan from …`.
pub fn scan_detected(kind: ScanKind, name: &str, ip: IpAddr, port: u16) -> String {
    format!(
        "attackalert: {} from host: {} to {} port: {port}",
        scan_text(kind),
        host(name, ip),
        kind.proto()
    )
}

/// The type text of an SCTP or ICMP probe's detection line (not in 1.2; issue 18).
pub fn other_probe_text(kind: OtherProbe) -> &'static str {
    match kind {
        OtherProbe::SctpInit => "SCTP INIT scan",
        OtherProbe::SctpCookieEcho => "SCTP COOKIE-ECHO scan",
        OtherProbe::IcmpEcho => "ICMP echo scan",
        OtherProbe::IcmpTimestamp => "ICMP timestamp scan",
        OtherProbe::IcmpAddressMask => "ICMP address mask scan",
        OtherProbe::Icmp6Echo => "ICMPv6 echo scan",
    }
}

/// An SCTP or ICMP probe (the TCP stealth and advanced modes; not in 1.2), in the shape of
/// 1.2's scan lines, so what reads those (logwatch's `portsentry` service, fail2ban-style
/// filters on `from host: NAME/IP`) reads these too: `attackalert: SCTP INIT scan from host:
/// {name}/{ip} to SCTP port: {p}` (also `SCTP COOKIE-ECHO scan`), and `attackalert: ICMP echo
/// scan from host: {name}/{ip} to ICMP port: 0` (also `ICMP timestamp scan`, `ICMP address
/// mask scan`, `ICMPv6 echo scan ... to ICMPv6 port: 0`): ICMP has no port, 0 says so.
pub fn other_probe_detected(kind: OtherProbe, name: &str, ip: IpAddr, port: u16) -> String {
    let (word, port) = match kind {
        OtherProbe::SctpInit | OtherProbe::SctpCookieEcho => ("SCTP", port),
        OtherProbe::Icmp6Echo => ("ICMPv6", 0),
        _ => ("ICMP", 0),
    };
    format!(
        "attackalert: {} from host: {} to {word} port: {port}",
        other_probe_text(kind),
        host(name, ip)
    )
}

/// `attackalert: Packet from host: {name}/{ip} to {TCP|UDP} port: {p} has IP options set
/// (detection avoidance technique).` (one line)
pub fn ip_options_set(name: &str, ip: IpAddr, proto: Proto, port: u16) -> String {
    format!(
        "attackalert: Packet from host: {} to {proto} port: {port} has IP options set (detection avoidance technique).",
        host(name, ip)
    )
}

/// `attackalert: Illegal IP header length detected in {TCP|UDP} packet: {ihl} from (possible)
/// host: {ip}` (one line)
pub fn illegal_header_length(proto: Proto, ihl: u8, ip: IpAddr) -> String {
    format!(
        "attackalert: Illegal IP header length detected in {proto} packet: {ihl} from (possible) host: {ip}"
    )
}

/// `attackalert: Possible stealth scan from unknown host to TCP port: {p} (accept failed)`
pub fn accept_failed(port: u16) -> String {
    format!(
        "attackalert: Possible stealth scan from unknown host to TCP port: {port} (accept failed)"
    )
}

/// `adminalert: ERROR: could not accept incoming socket for UDP port: {p}` (a failed `recvfrom`
/// in `-udp`; 1.2 has no TCP form of this line).
pub fn could_not_accept_udp(port: u16) -> String {
    format!("adminalert: ERROR: could not accept incoming socket for UDP port: {port}")
}

/// Rate-limit summary for a host whose hits were not logged one by one:
/// `attackalert: {n} further hits from host {ip} suppressed in the last {s} seconds`
pub fn hits_suppressed(count: u64, ip: IpAddr, seconds: u64) -> String {
    format!(
        "attackalert: {} from host {ip} suppressed in the last {seconds} seconds",
        super::count(count, "further hit", "further hits")
    )
}

/// `attackalert: Rate limit: {n} reports suppressed in the last {s} seconds.` The report
/// limits (a flood of forged sources) dropped that many detection reports; their blocks still
/// ran. `by_prefix` names the source prefixes that lost the most (address, prefix length,
/// count), `others` counts the rest: `...seconds: 900 from 2001:db8:f::/64, 40 from
/// 198.51.100.0/24, 5 from other prefixes.`
pub fn reports_rate_limited(
    n: u64,
    seconds: u64,
    by_prefix: &[(IpAddr, u8, u64)],
    others: u64,
) -> String {
    let mut s = format!(
        "attackalert: Rate limit: {} suppressed in the last {seconds} seconds",
        super::count(n, "report", "reports")
    );
    let mut sep = ": ";
    for (ip, len, k) in by_prefix {
        s.push_str(&format!("{sep}{k} from {ip}/{len}"));
        sep = ", ";
    }
    if others > 0 {
        s.push_str(&format!("{sep}{others} from other prefixes"));
    }
    s.push('.');
    s
}

/// Capture losses since the last report (stealth and advanced modes; not in 1.2):
/// `adminalert: WARNING: packet capture lost {ring} packets in the ring and dropped {bad}
/// malformed packets ({kinds})` (one line; `kinds` is `name=count ...`, or `none`).
pub fn capture_losses(ring: u64, bad: u64, kinds: &str) -> String {
    let kinds = if kinds.is_empty() { "none" } else { kinds };
    format!(
        "adminalert: WARNING: packet capture lost {} in the ring and dropped {} ({kinds})",
        super::count(ring, "packet", "packets"),
        super::count(bad, "malformed packet", "malformed packets")
    )
}

/// The capture could not be set up or updated: `adminalert: ERROR: packet capture: {err}`
pub fn capture_error(err: impl Display) -> String {
    format!("adminalert: ERROR: packet capture: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;

    #[test]
    fn connect_lines() {
        let ip = v4(198, 51, 100, 7);
        assert_eq!(
            connect_from("198.51.100.7", ip, Proto::Tcp, 111),
            "attackalert: Connect from host: 198.51.100.7/198.51.100.7 to TCP port: 111"
        );
        assert_eq!(
            connect_from("scanner.example.net", ip, Proto::Udp, 7),
            "attackalert: Connect from host: scanner.example.net/198.51.100.7 to UDP port: 7"
        );
        assert_eq!(
            accept_failed(143),
            "attackalert: Possible stealth scan from unknown host to TCP port: 143 (accept failed)"
        );
    }

    #[test]
    fn sctp_and_icmp_probe_lines() {
        let ip = v4(198, 51, 100, 7);
        let ip6 = v6("2001:db8::7");
        assert_eq!(
            other_probe_detected(OtherProbe::SctpInit, "198.51.100.7", ip, 80),
            "attackalert: SCTP INIT scan from host: 198.51.100.7/198.51.100.7 to SCTP port: 80"
        );
        assert_eq!(
            other_probe_detected(OtherProbe::SctpCookieEcho, "x.example", ip, 3868),
            "attackalert: SCTP COOKIE-ECHO scan from host: x.example/198.51.100.7 to SCTP port: 3868"
        );
        assert_eq!(
            other_probe_detected(OtherProbe::IcmpEcho, "198.51.100.7", ip, 0),
            "attackalert: ICMP echo scan from host: 198.51.100.7/198.51.100.7 to ICMP port: 0"
        );
        assert_eq!(
            other_probe_detected(OtherProbe::IcmpTimestamp, "198.51.100.7", ip, 0),
            "attackalert: ICMP timestamp scan from host: 198.51.100.7/198.51.100.7 to ICMP port: 0"
        );
        assert_eq!(
            other_probe_detected(OtherProbe::IcmpAddressMask, "198.51.100.7", ip, 9),
            "attackalert: ICMP address mask scan from host: 198.51.100.7/198.51.100.7 to ICMP port: 0"
        );
        assert_eq!(
            other_probe_detected(OtherProbe::Icmp6Echo, "2001:db8::7", ip6, 0),
            "attackalert: ICMPv6 echo scan from host: 2001:db8::7/2001:db8::7 to ICMPv6 port: 0"
        );
        // A hostile name cannot forge a line.
        for n in HOSTILE_NAMES {
            let l = other_probe_detected(OtherProbe::IcmpEcho, n, ip, 0);
            assert_eq!(l.matches('/').count(), 1, "{l}");
            assert!(!l.contains('\n'));
        }
    }

    #[test]
    fn capture_lines() {
        assert_eq!(
            capture_losses(3, 2, "truncated-ip=2"),
            "adminalert: WARNING: packet capture lost 3 packets in the ring and dropped 2 malformed packets (truncated-ip=2)"
        );
        assert_eq!(
            capture_losses(1, 0, ""),
            "adminalert: WARNING: packet capture lost 1 packet in the ring and dropped 0 malformed packets (none)"
        );
        assert_eq!(
            capture_error("bind: EPERM"),
            "adminalert: ERROR: packet capture: bind: EPERM"
        );
    }

    #[test]
    fn tcp_scan_texts() {
        use tcp_flags::*;
        let cases = [
            (TcpScanType::Null, " TCP NULL scan"),
            (TcpScanType::Xmas, "TCP XMAS scan"),
            (TcpScanType::Fin, "TCP FIN scan"),
            (TcpScanType::Syn, "TCP SYN/Normal scan"),
            (
                TcpScanType::Unknown { flags: SYN | FIN },
                "Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0",
            ),
            (
                TcpScanType::Unknown { flags: PSH },
                "Unknown Type: TCP Packet Flags: SYN: 0 FIN: 0 ACK: 0 PSH: 1 URG: 0 RST: 0",
            ),
            (
                TcpScanType::Unknown {
                    flags: ACK | URG | RST | ECE,
                },
                "Unknown Type: TCP Packet Flags: SYN: 0 FIN: 0 ACK: 1 PSH: 0 URG: 1 RST: 1",
            ),
            (TcpScanType::Ack, "TCP ACK scan"),
            (TcpScanType::Maimon, "TCP Maimon scan"),
            (TcpScanType::SynRst, "TCP SYN/RST scan"),
            (TcpScanType::All, "TCP ALL flags scan"),
        ];
        for (t, want) in cases {
            assert_eq!(tcp_scan_text(t), want);
        }
        assert_eq!(scan_text(ScanKind::Udp), "UDP scan");
    }

    #[test]
    fn stealth_detection_lines() {
        let ip = v4(127, 0, 0, 2);
        assert_eq!(
            scan_detected(ScanKind::Tcp(TcpScanType::Null), "127.0.0.2", ip, 1),
            "attackalert:  TCP NULL scan from host: 127.0.0.2/127.0.0.2 to TCP port: 1"
        );
        assert_eq!(
            scan_detected(ScanKind::Tcp(TcpScanType::Syn), "127.0.0.2", ip, 5000),
            "attackalert: TCP SYN/Normal scan from host: 127.0.0.2/127.0.0.2 to TCP port: 5000"
        );
        assert_eq!(
            scan_detected(
                ScanKind::Tcp(TcpScanType::Unknown {
                    flags: tcp_flags::SYN | tcp_flags::FIN
                }),
                "127.0.0.2",
                ip,
                2
            ),
            "attackalert: Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0 from host: 127.0.0.2/127.0.0.2 to TCP port: 2"
        );
        assert_eq!(
            scan_detected(ScanKind::Udp, "127.0.0.2", ip, 9),
            "attackalert: UDP scan from host: 127.0.0.2/127.0.0.2 to UDP port: 9"
        );
        assert_eq!(
            ip_options_set("127.0.0.2", ip, Proto::Tcp, 1),
            "attackalert: Packet from host: 127.0.0.2/127.0.0.2 to TCP port: 1 has IP options set (detection avoidance technique)."
        );
        assert_eq!(
            illegal_header_length(Proto::Udp, 3, ip),
            "attackalert: Illegal IP header length detected in UDP packet: 3 from (possible) host: 127.0.0.2"
        );
    }

    #[test]
    fn rate_limit_summaries() {
        assert_eq!(
            reports_rate_limited(7, 10, &[], 7),
            "attackalert: Rate limit: 7 reports suppressed in the last 10 seconds: 7 from other prefixes."
        );
        let by = [
            ("2001:db8:f::".parse().unwrap(), 64, 900),
            (v4(198, 51, 100, 0), 24, 40),
        ];
        assert_eq!(
            reports_rate_limited(945, 11, &by, 5),
            "attackalert: Rate limit: 945 reports suppressed in the last 11 seconds: 900 from 2001:db8:f::/64, 40 from 198.51.100.0/24, 5 from other prefixes."
        );
        assert_eq!(
            reports_rate_limited(940, 11, &by, 0),
            "attackalert: Rate limit: 940 reports suppressed in the last 11 seconds: 900 from 2001:db8:f::/64, 40 from 198.51.100.0/24."
        );
    }

    #[test]
    fn suppressed_hits_line() {
        let ip = v6("2001:db8:0:0:0:0:0:7");
        let cases: Vec<(String, String)> = vec![(
            hits_suppressed(120, ip, 60),
            "attackalert: 120 further hits from host 2001:db8::7 suppressed in the last 60 seconds"
                .to_owned(),
        )];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
