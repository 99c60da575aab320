//! Every syslog message and every blocked/history file line portsentry writes, formatted byte for
//! byte as PortSentry 1.2 (Debian 1.2-14) writes them (reference §8, §7.3, §3, §5.2, §6).
//!
//! Log watchers (logcheck rules, fail2ban, home-grown scripts) match these texts, so each 1.2
//! template is kept word for word, with its quirks: the `adminalert: ` / `attackalert: ` /
//! `securityalert: ` prefixes, the two spaces in `attackalert:  TCP NULL scan`, `already blocked.
//! Ignoring` (classic modes) against `already blocked Ignoring` (stealth modes), ` !!` against
//! `!!`, the trailing space after `manually exclude port: {p} `, the missing period in the `-udp`
//! socket error, and so on. Every function quotes its template in its doc comment and is
//! golden-tested below.
//!
//! Conventions:
//!
//! * Syslog texts are returned **without** 1.2's trailing line feed (the `⏎` of §8). rsyslog and
//!   journald drop a trailing LF on receipt, so an admin's log file reads the same either way,
//!   and a message without it cannot leave an empty record with receivers that keep it.
//!   [`history_line`] is the exception: a file line ends with LF.
//! * Messages are not cut at 1023 bytes as 1.2 cuts them; any limit belongs to the syslog writer.
//! * `{ip}` is the address as [`IpAddr`] prints it: dotted quad for IPv4, RFC 5952 compressed form
//!   for IPv6. IPv4-mapped IPv6 addresses are printed as given (`::ffff:a.b.c.d`); the code that
//!   builds probes turns them into IPv4 once, so that logs, files and `$TARGET$` agree.
//! * `{name}` is the raw resolver answer (or the IP text when nothing was resolved). Functions
//!   that print a name pass it through [`sanitize_name`] themselves, so a hostile PTR record can
//!   never inject spaces, `/`, `Port:`, line feeds or shell metacharacters into a log or file
//!   line. Callers must therefore hand over the *unsanitized* name. A name equal to the IP's text
//!   (unresolved, as 1.2 does with `RESOLVE_HOST=0`) or empty is printed as the IP.
//!
//! Where a line lives, by what it is about: [`startup`] (start-up, reload, shutdown,
//! listening), [`detection`] (what was seen), [`responses`] (blocks, commands, refusals),
//! [`history`] (the file line), [`extensions`] (features 1.2 lacks), [`fleet`] (the CrowdSec
//! link, issue 12). Everything is re-exported
//! here, so callers write `report::connect_from(...)`.
//!
//! Pure: no I/O, no clock (the caller passes epoch and local time), no syslog calls.

use std::fmt::Write as _;
use std::net::IpAddr;

pub mod detection;
pub mod extensions;
pub mod fleet;
pub mod history;
pub mod responses;
pub mod startup;

pub use detection::*;
pub use extensions::*;
pub use fleet::*;
pub use history::*;
pub use responses::*;
pub use startup::*;

use crate::capture::classify::ScanKind;
use crate::engine::{Detail, Event};

/// A count with its noun, `1 alert` or `3 alerts` (in the lines 1.2 does not have; its own
/// keep its words).
fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The syslog line of one engine event.
pub fn event_line(e: &Event) -> String {
    match e {
        Event::Detected {
            host,
            port,
            mode,
            detail,
        } => {
            let name = host.name_text();
            match detail {
                Detail::Connect => connect_from(&name, host.ip, mode.proto(), *port),
                Detail::TcpScan(t) => scan_detected(ScanKind::Tcp(*t), &name, host.ip, *port),
                Detail::UdpScan => scan_detected(ScanKind::Udp, &name, host.ip, *port),
                Detail::Other(k) => other_probe_detected(*k, &name, host.ip, *port),
            }
        }
        Event::IpOptions { host, proto, port } => {
            ip_options_set(&host.name_text(), host.ip, *proto, *port)
        }
        Event::HitsSuppressed { ip, count, seconds } => hits_suppressed(*count, *ip, *seconds),
        Event::AlreadyBlocked { host, mode } => already_blocked(*mode, &host.name_text(), host.ip),
        Event::Refused { ip, reason } => refusing_to_block(*ip, reason.text()),
        Event::BlockCapReached { per_minute } => block_rate_limit_reached(*per_minute),
        Event::BlockCapRefused { host } => block_refused_rate(&host.name_text(), host.ip),
        Event::LogOnly { proto } => ignoring_response(*proto),
        Event::NoTarget { action } => no_target_variable(*action),
        Event::CouldNotBlock { host, mode } => could_not_block(*mode, &host.name_text(), host.ip),
        Event::MemoryFull { max } => blocked_memory_full(*max),
        Event::Evicted {
            old,
            old_evidence,
            new,
            new_evidence,
        } => nft_evicted(*old, *new, *old_evidence, *new_evidence),
        Event::Expired { ip, mode } => block_expired(*ip, *mode),
        Event::ReportsSuppressed {
            count,
            seconds,
            by_prefix,
            others,
        } => reports_rate_limited(*count, *seconds, by_prefix, *others),
        Event::BlocksRefused { count, seconds } => blocks_refused(*count, *seconds),
        Event::BudgetSpent {
            prefix,
            len,
            burst,
            per_minute,
        } => block_budget_spent(*prefix, *len, *burst, *per_minute),
        Event::LoneBudgetSpent { burst, per_minute } => lone_budget_spent(*burst, *per_minute),
        Event::LoneRefused { host } => block_refused_lone(&host.name_text(), host.ip),
        Event::LoneRefusals { count, seconds } => lone_refusals(*count, *seconds),
        Event::BudgetRefused { host, prefix, len } => {
            block_refused_budget(&host.name_text(), host.ip, *prefix, *len)
        }
        Event::BudgetRefusals {
            count,
            seconds,
            by_prefix,
            others,
        } => budget_refusals(*count, *seconds, by_prefix, *others),
        Event::BlocksShed { count, seconds } => {
            blocks_shed(*count, *seconds, crate::engine::FLOOD_QUEUE_MAX)
        }
        Event::QuietEvictions { count, seconds } => nft_evicted_quietly(*count, *seconds),
    }
}

/// Makes a resolver answer safe for log and file lines: ASCII letters, digits, `.`, `-` and `_`
/// are kept, every other byte (UTF-8 bytes one by one) becomes `\xHH` (lower-case hex).
///
/// 1.2 wrote names unchecked (§6.6, §10.1 item 19): a PTR or `/etc/hosts` entry holding a space,
/// `/` or LF could forge a `Host: x/1.2.3.4 Port: …` history record that fail2ban would act on.
/// `\` itself is escaped, so the escaped form is unambiguous.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The `{name}` column: the IP text when the name is empty or is the IP itself (an unresolved
/// IPv6 address must keep its `:`), otherwise the sanitized name.
fn name_field(name: &str, ip: IpAddr) -> String {
    let ip_text = ip.to_string();
    if name.is_empty() || name == ip_text {
        ip_text
    } else {
        sanitize_name(name)
    }
}

/// `{name}/{ip}` as 1.2 prints the host in detection lines and files.
fn host(name: &str, ip: IpAddr) -> String {
    format!("{}/{}", name_field(name, ip), ip)
}

/// Test fixtures shared by the submodules' golden tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    pub fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
    }

    pub const HOSTILE_NAMES: &[&str] = &[
        "evil.example\n1795383542 - 11/22/2026 21:39:02 Host: 6.6.6.6/6.6.6.6 Port: 1 TCP Blocked",
        "x/10.0.0.1 Port: 1 TCP Blocked",
        "a b",
        "$(reboot)",
        "`id`;rm -rf / | cat & echo >x <y",
        "host\r\nattackalert: fake",
        "tab\there",
        "caf\u{e9}.example",
        "back\\slash",
        "quote\"'",
        "Port:",
        "/",
        "\0nul",
    ];
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::capture::classify::ScanKind;
    use crate::config::mode::{Mode, Proto};

    #[test]
    fn sanitize_keeps_hostname_characters() {
        assert_eq!(
            sanitize_name("mail-1.Example_Host.org"),
            "mail-1.Example_Host.org"
        );
        assert_eq!(sanitize_name("198.51.100.7"), "198.51.100.7");
        assert_eq!(sanitize_name(""), "");
    }

    #[test]
    fn sanitize_escapes_everything_else_as_hex() {
        assert_eq!(sanitize_name("a b"), "a\\x20b");
        assert_eq!(sanitize_name("x/y"), "x\\x2fy");
        assert_eq!(sanitize_name("a\nb"), "a\\x0ab");
        assert_eq!(sanitize_name("Port:"), "Port\\x3a");
        assert_eq!(sanitize_name("back\\slash"), "back\\x5cslash");
        assert_eq!(sanitize_name("caf\u{e9}"), "caf\\xc3\\xa9");
        assert_eq!(
            sanitize_name("$(x);`y`"),
            "\\x24\\x28x\\x29\\x3b\\x60y\\x60"
        );
    }

    #[test]
    fn sanitized_hostile_names_carry_no_separators_or_metacharacters() {
        for name in HOSTILE_NAMES {
            let s = sanitize_name(name);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_\\".contains(&b)),
                "{s:?}"
            );
            // Every backslash starts a complete \xHH escape, so the escaping is reversible.
            let mut rest = s.as_str();
            while let Some(i) = rest.find('\\') {
                let esc = rest.get(i..i + 4).expect("complete escape");
                assert!(esc.starts_with("\\x"), "{esc}");
                assert!(esc[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{esc}");
                rest = &rest[i + 4..];
            }
        }
    }

    #[test]
    fn ipv6_is_printed_compressed_and_unresolved_v6_name_stays_readable() {
        let ip = v6("2001:0db8:0000:0000:0000:ff00:0042:8329");
        assert_eq!(
            connect_from("2001:db8::ff00:42:8329", ip, Proto::Tcp, 1),
            "attackalert: Connect from host: 2001:db8::ff00:42:8329/2001:db8::ff00:42:8329 to TCP port: 1"
        );
        // An empty name is printed as the address, never as `Host: /ip`.
        assert_eq!(
            already_blocked(Mode::Atcp, "", ip),
            "attackalert: Host: 2001:db8::ff00:42:8329/2001:db8::ff00:42:8329 is already blocked Ignoring"
        );
    }

    #[test]
    fn hostile_names_cannot_forge_syslog_lines() {
        let ip = v4(203, 0, 113, 9);
        for name in HOSTILE_NAMES {
            let lines = [
                connect_from(name, ip, Proto::Tcp, 1),
                scan_detected(ScanKind::Udp, name, ip, 1),
                ip_options_set(name, ip, Proto::Udp, 1),
                already_blocked(Mode::Stcp, name, ip),
                could_not_block(Mode::Audp, name, ip),
            ];
            for line in lines {
                assert!(!line.contains(['\n', '\r', '\0', '\t']), "{line:?}");
                assert_eq!(line.matches('/').count(), 1, "{line:?}");
                assert!(line.contains("/203.0.113.9"), "{line:?}");
            }
        }
    }
}

/// `{head}: {k} {word} {prefix}/{len}, ..., {others} {word} other prefixes.`: the summary
/// lines that name the prefixes that lost the most.
fn by_prefix_line(
    mut s: String,
    word: &str,
    by_prefix: &[(std::net::IpAddr, u8, u64)],
    others: u64,
) -> String {
    let mut sep = ": ";
    for (ip, len, k) in by_prefix {
        s.push_str(&format!("{sep}{k} {word} {ip}/{len}"));
        sep = ", ";
    }
    if others > 0 {
        s.push_str(&format!("{sep}{others} {word} other prefixes"));
    }
    s.push('.');
    s
}
