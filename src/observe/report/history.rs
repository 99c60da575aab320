//! The blocked-file and history-file line (§7.3), read by fail2ban's stock `portsentry`
//! filter and by `portsentry report`.

use std::net::IpAddr;

use crate::config::mode::Proto;

use super::host;

/// Broken-down local time, as `localtime(3)` gives it; the shell fills it in (this module never
/// reads the clock or the time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Year, four digits.
    pub year: i32,
    /// Month, 1-12.
    pub month: u8,
    /// Day of the month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
}

/// One line of the blocked and history files, **with** its trailing LF (§7.3):
/// `{epoch} - {MM}/{DD}/{YYYY} {hh}:{mm}:{ss} Host: {name}/{ip} Port: {port} {TCP|UDP} Blocked`
///
/// US month/day order, zero-padded, 24-hour, 4-digit year. fail2ban's stock filter reads it with
/// `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`; the name is sanitized, so the line holds exactly
/// one `/` and that one stands before the IP.
pub fn history_line(
    epoch: i64,
    t: &LocalTime,
    name: &str,
    ip: IpAddr,
    port: u16,
    proto: Proto,
) -> String {
    format!(
        "{epoch} - {:02}/{:02}/{:04} {:02}:{:02}:{:02} Host: {} Port: {port} {proto} Blocked\n",
        t.month,
        t.day,
        t.year,
        t.hour,
        t.minute,
        t.second,
        host(name, ip)
    )
}

/// The host a blocked-file or history line names (`... Host: NAME/IP Port: N TCP Blocked`), so
/// the blocked file can be kept in step with the nftables set across restarts.
pub fn blocked_line_host(line: &str) -> Option<IpAddr> {
    let (_, rest) = line.split_once(" Host: ")?;
    let (head, _) = rest.rsplit_once(" Port: ")?;
    let ip = match head.rsplit_once('/') {
        Some((_, ip)) => ip,
        None => head,
    };
    ip.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::fixtures::*;
    use crate::observe::report::*;

    fn verified_time() -> LocalTime {
        LocalTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 21,
            minute: 39,
            second: 2,
        }
    }

    #[test]
    fn history_line_matches_the_verified_1_2_line() {
        assert_eq!(
            history_line(
                1795383542,
                &verified_time(),
                "127.0.0.2",
                v4(127, 0, 0, 2),
                2,
                Proto::Tcp
            ),
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked\n"
        );
    }

    #[test]
    fn history_line_pads_every_field() {
        let t = LocalTime {
            year: 2027,
            month: 1,
            day: 5,
            hour: 0,
            minute: 7,
            second: 9,
        };
        assert_eq!(
            history_line(
                1799107629,
                &t,
                "h.example",
                v4(1, 2, 3, 4),
                54321,
                Proto::Udp
            ),
            "1799107629 - 01/05/2027 00:07:09 Host: h.example/1.2.3.4 Port: 54321 UDP Blocked\n"
        );
    }

    /// fail2ban's stock filter, `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`, by hand: the line
    /// (fail2ban strips the LF) must end in ` Port: {digits} {TCP|UDP} Blocked`, and the host is
    /// what follows the leftmost `/` in the space-free token before it. Returns that host.
    fn fail2ban_stock_host(line: &str) -> Option<&str> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line.strip_suffix(" Blocked")?;
        let rest = rest
            .strip_suffix(" TCP")
            .or_else(|| rest.strip_suffix(" UDP"))?;
        let digits_start = rest.rfind(|c: char| !c.is_ascii_digit())? + 1;
        if digits_start == rest.len() {
            return None;
        }
        let rest = rest[..digits_start].strip_suffix(" Port: ")?;
        let token = &rest[rest.rfind(' ').map_or(0, |i| i + 1)..];
        let (_, host) = token.split_once('/')?;
        // fail2ban's <HOST> admits no '/' and no whitespace.
        if host.is_empty() || host.contains('/') {
            return None;
        }
        Some(host)
    }

    /// The 1.2.3 backport filter, `^\d* - \d{2}\/\d{2}\/\d{4} \d{2}:\d{2}:\d{2} Host: <HOST>`, by
    /// hand. Returns the text `<HOST>` starts at, up to the `/`.
    fn backport_host(line: &str) -> Option<&str> {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let (epoch, rest) = line.split_once(" - ")?;
        if !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let date = rest.get(..10)?;
        let mut d = date.split('/');
        let (mm, dd, yyyy) = (d.next()?, d.next()?, d.next()?);
        if !(digits(mm, 2) && digits(dd, 2) && digits(yyyy, 4)) {
            return None;
        }
        let rest = rest[10..].strip_prefix(' ')?;
        let time = rest.get(..8)?;
        let mut t = time.split(':');
        let (h, m, s) = (t.next()?, t.next()?, t.next()?);
        if !(digits(h, 2) && digits(m, 2) && digits(s, 2)) {
            return None;
        }
        let rest = rest[8..].strip_prefix(" Host: ")?;
        let host = &rest[..rest.find('/')?];
        // <HOST>: an IP or a name of word characters, '-' and '.'. A `\` from sanitizing is
        // let through: the real regex is unanchored after <HOST> and takes the part before it.
        let ok = host.parse::<IpAddr>().is_ok()
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._\\".contains(&b)));
        ok.then_some(host)
    }

    #[test]
    fn history_line_parses_with_fail2ban_filters_v4_and_v6() {
        let t = verified_time();
        let v6ip = v6("2001:db8::1");
        let cases = [
            (v4(127, 0, 0, 2), "127.0.0.2"),
            (v4(198, 51, 100, 7), "scanner.example.net"),
            (v6ip, "2001:db8::1"),
            (v6ip, "v6.scanner.example"),
        ];
        for (ip, name) in cases {
            for proto in [Proto::Tcp, Proto::Udp] {
                let line = history_line(1795383542, &t, name, ip, 2, proto);
                assert_eq!(
                    fail2ban_stock_host(&line),
                    Some(ip.to_string().as_str()),
                    "{line:?}"
                );
                assert_eq!(backport_host(&line), Some(name), "{line:?}");
            }
        }
    }

    #[test]
    fn the_hand_rolled_filters_reject_what_the_regexes_reject() {
        // Guards the matchers above: they must be able to fail.
        let good = "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked";
        assert_eq!(fail2ban_stock_host(good), Some("127.0.0.2"));
        assert_eq!(backport_host(good), Some("127.0.0.2"));
        for bad in [
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 ICMP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port:  TCP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2 Port: 2 TCP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked x",
        ] {
            assert_eq!(fail2ban_stock_host(bad), None, "{bad}");
        }
        for bad in [
            "1795383542 - 2026-11-22 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
            "1795383542 - 11/22/2026 21:39 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
            "x - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
        ] {
            assert_eq!(backport_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_names_cannot_forge_history_records() {
        let t = verified_time();
        let ip = v4(203, 0, 113, 9);
        for name in HOSTILE_NAMES {
            let line = history_line(1795383542, &t, name, ip, 1, Proto::Tcp);
            let body = line.strip_suffix('\n').expect("ends with LF");
            assert!(!body.contains(['\n', '\r', '\0', '\t']), "{line:?}");
            assert_eq!(
                line.matches('/').count(),
                3,
                "two in the date, one before the IP: {line:?}"
            );
            assert_eq!(line.matches(" Port: ").count(), 1, "{line:?}");
            assert_eq!(fail2ban_stock_host(&line), Some("203.0.113.9"), "{line:?}");
            assert_eq!(
                backport_host(&line),
                Some(sanitize_name(name).as_str()),
                "{line:?}"
            );
            // epoch - date time Host: name/ip Port: port proto Blocked
            assert_eq!(body.split(' ').count(), 10, "{line:?}");
            assert!(
                !body.contains(['$', '`', ';', '|', '&', '<', '>', '(', ')', '"', '\''].as_slice()),
                "{line:?}"
            );
        }
    }

    #[test]
    fn the_host_of_a_blocked_line() {
        let line =
            "1700000000 - 11/14/2023 22:13:20 Host: scanner.example/192.0.2.2 Port: 1 TCP Blocked";
        assert_eq!(blocked_line_host(line), Some("192.0.2.2".parse().unwrap()));
        let line6 = "1 - 01/01/1970 00:00:01 Host: 2001:db8::2/2001:db8::2 Port: 9 UDP Blocked";
        assert_eq!(
            blocked_line_host(line6),
            Some("2001:db8::2".parse().unwrap())
        );
        assert_eq!(blocked_line_host("garbage"), None);
        assert_eq!(blocked_line_host(" Host: a/b Port: 1"), None);
    }
}
