//! `$TARGET$`, `$PORT$` and `$MODE$` substitution in KILL_ROUTE, KILL_HOSTS_DENY and
//! KILL_RUN_CMD (reference §6.2).
//!
//! Pure and total: any template and any values give a string; no length limit (1.2's
//! fixed 1024-byte buffer could overflow, §10.1 item 12). It never runs anything and never
//! sees a host name: the target is always the address literal (1.2 never substituted the
//! resolved name either).

use std::net::IpAddr;

use crate::config::mode::Mode;

/// Replaced by the attacking address.
pub const TARGET: &str = "$TARGET$";
/// Replaced by the port hit.
pub const PORT: &str = "$PORT$";
/// Replaced by the mode name.
pub const MODE: &str = "$MODE$";

/// Replace every `$TARGET$`, `$PORT$` and `$MODE$` (case-sensitive). The target is written
/// with `IpAddr`'s `Display`, which gives the compressed RFC 5952 form for IPv6.
///
/// 1.2 replaced `$TARGET$` everywhere, then `$PORT$`, then `$MODE$`. We keep that priority
/// where macros overlap (`$PORT$TARGET$` gives `$PORT` + target), but only the template's own
/// text is ever searched: a substituted value is never scanned again, so no value can form
/// or complete a macro.
pub fn substitute(template: &str, target: IpAddr, port: u16, mode: Mode) -> String {
    let target = target.to_string();
    let port = port.to_string();
    let macros = [
        (TARGET, target.as_str()),
        (PORT, port.as_str()),
        (MODE, mode.as_str()),
    ];
    let mut out = String::with_capacity(template.len() + 64);
    substitute_into(&mut out, template, &macros);
    out
}

/// [`substitute`] for a KILL_HOSTS_DENY line: an IPv6 target is written in brackets
/// (`ALL: [2001:db8::2]`), as hosts_access(5) requires; libwrap reads a bare IPv6 address as
/// no match, so the line would deny nothing (Debian's `tcpdmatch` says "access: granted").
/// A `$TARGET$` the template already brackets (`[$TARGET$]`) is not bracketed twice. IPv4
/// targets, and every other template (KILL_ROUTE, KILL_RUN_CMD, KILL_ROUTE_UNDO), stay bare.
pub fn substitute_hosts_deny(template: &str, target: IpAddr, port: u16, mode: Mode) -> String {
    if target.is_ipv4() {
        return substitute(template, target, port, mode);
    }
    let bare = target.to_string();
    let bracketed = format!("[{bare}]");
    let port = port.to_string();
    let rest = [(PORT, port.as_str()), (MODE, mode.as_str())];
    let pieces: Vec<&str> = template.split(TARGET).collect();
    let mut out = String::with_capacity(template.len() + 64);
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(before) = i.checked_sub(1).and_then(|j| pieces.get(j)) {
            let already = before.ends_with('[') && piece.starts_with(']');
            out.push_str(if already { &bare } else { &bracketed });
        }
        substitute_into(&mut out, piece, &rest);
    }
    out
}

/// Split `text` on the first macro, recurse into the literal pieces with the remaining macros.
fn substitute_into(out: &mut String, text: &str, macros: &[(&str, &str)]) {
    let Some(((name, value), rest)) = macros.split_first() else {
        out.push_str(text);
        return;
    };
    for (i, piece) in text.split(name).enumerate() {
        if i > 0 {
            out.push_str(value);
        }
        substitute_into(out, piece, rest);
    }
}

/// Whether the template names the target. KILL_ROUTE and KILL_HOSTS_DENY are skipped
/// without it (reference §6.2).
pub fn has_target(template: &str) -> bool {
    template.contains(TARGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(
            substitute(
                "/sbin/route add -host $TARGET$ reject; echo $TARGET$ $PORT$ $MODE$",
                ip("192.0.2.7"),
                31337,
                Mode::Stcp
            ),
            "/sbin/route add -host 192.0.2.7 reject; echo 192.0.2.7 31337 stcp"
        );
        assert_eq!(
            substitute("ALL: $TARGET$ : DENY", ip("10.0.0.1"), 1, Mode::Tcp),
            "ALL: 10.0.0.1 : DENY"
        );
    }

    #[test]
    fn ipv6_is_compressed() {
        assert_eq!(
            substitute(
                "ip6tables -I INPUT -s $TARGET$ -j DROP",
                ip("2001:0db8:0000:0000:0000:0000:0000:0001"),
                0,
                Mode::Atcp
            ),
            "ip6tables -I INPUT -s 2001:db8::1 -j DROP"
        );
    }

    #[test]
    fn case_sensitive_and_partial_macros_stay() {
        let t = "$target$ $Port$ $MODE $TARGET $PORT$$ $$MODE$ $";
        assert_eq!(
            substitute(t, ip("10.0.0.1"), 80, Mode::Udp),
            "$target$ $Port$ $MODE $TARGET 80$ $udp $"
        );
        assert_eq!(substitute("", ip("10.0.0.1"), 80, Mode::Udp), "");
        assert_eq!(
            substitute("no macros", ip("10.0.0.1"), 80, Mode::Udp),
            "no macros"
        );
    }

    #[test]
    fn overlaps_follow_1_2_priority_without_rescanning() {
        // 1.2 substitutes $TARGET$ first, so in "$PORT$TARGET$" the target wins.
        assert_eq!(
            substitute("$PORT$TARGET$", ip("10.0.0.1"), 80, Mode::Tcp),
            "$PORT10.0.0.1"
        );
        assert_eq!(
            substitute("$MODE$PORT$", ip("10.0.0.1"), 80, Mode::Tcp),
            "$MODE80"
        );
        assert_eq!(
            substitute("$TARGET$TARGET$", ip("10.0.0.1"), 80, Mode::Tcp),
            "10.0.0.1TARGET$"
        );
        // Text around a substituted value never joins it into a new macro.
        assert_eq!(
            substitute("$MO$MODE$DE$", ip("10.0.0.1"), 80, Mode::Tcp),
            "$MOtcpDE$"
        );
        assert_eq!(
            substitute("$PO$PORT$RT$", ip("10.0.0.1"), 80, Mode::Tcp),
            "$PO80RT$"
        );
    }

    #[test]
    fn hosts_deny_brackets_ipv6_only() {
        let t = "ALL: $TARGET$ : DENY";
        assert_eq!(
            substitute_hosts_deny(t, ip("fd00:232::2"), 22, Mode::Stcp),
            "ALL: [fd00:232::2] : DENY"
        );
        assert_eq!(
            substitute_hosts_deny(t, ip("192.0.2.7"), 22, Mode::Stcp),
            "ALL: 192.0.2.7 : DENY"
        );
        // Compressed RFC 5952 form inside the brackets; every occurrence; other macros too.
        assert_eq!(
            substitute_hosts_deny(
                "sshd: $TARGET$, $TARGET$ # $PORT$ $MODE$",
                ip("2001:0db8:0:0:0:0:0:0002"),
                443,
                Mode::Atcp
            ),
            "sshd: [2001:db8::2], [2001:db8::2] # 443 atcp"
        );
        // A template that brackets the macro itself is not bracketed twice.
        assert_eq!(
            substitute_hosts_deny("ALL: [$TARGET$]", ip("2001:db8::2"), 1, Mode::Tcp),
            "ALL: [2001:db8::2]"
        );
        assert_eq!(
            substitute_hosts_deny("ALL: [$TARGET$]", ip("10.0.0.1"), 1, Mode::Tcp),
            "ALL: [10.0.0.1]"
        );
        // The other templates keep the bare address (ip, iptables, shell commands want it).
        assert_eq!(
            substitute(
                "ip -6 route add blackhole $TARGET$",
                ip("2001:db8::2"),
                1,
                Mode::Tcp
            ),
            "ip -6 route add blackhole 2001:db8::2"
        );
    }

    /// The hosts.deny variant agrees with `substitute` except for the brackets.
    #[test]
    fn hosts_deny_matches_substitute_but_for_brackets() {
        const PIECES: &[&str] = &["$", "[", "]", "$TARGET$", "$PORT$", "$MODE$", " ", "x"];
        let mut rng = crate::testrng::Rng(0x0bad_5eed_1234_5678);
        for _ in 0..5_000 {
            let n = rng.below(10);
            let t: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            let got = substitute_hosts_deny(&t, ip("2001:db8::a"), 7, Mode::Sudp);
            let want = substitute(&t, ip("2001:db8::a"), 7, Mode::Sudp);
            assert_eq!(
                got.replace(['[', ']'], ""),
                want.replace(['[', ']'], ""),
                "{t:?}"
            );
            assert_eq!(
                substitute_hosts_deny(&t, ip("192.0.2.1"), 7, Mode::Sudp),
                substitute(&t, ip("192.0.2.1"), 7, Mode::Sudp)
            );
        }
    }

    #[test]
    fn has_target_is_exact() {
        assert!(has_target("iptables -I INPUT -s $TARGET$ -j DROP"));
        assert!(!has_target("iptables -I INPUT -s $target$ -j DROP"));
        assert!(!has_target("$TARGET"));
        assert!(!has_target(""));
    }

    /// Deterministic pseudo-random templates: no panic, and the output equals a reference
    /// implementation of 1.2's sequential replacement whenever values cannot form macros
    /// (which holds for real values: digits, dots, colons, lowercase hex and mode names).
    #[test]
    fn random_templates_match_sequential_replacement() {
        const PIECES: &[&str] = &[
            "$", "TARGET", "PORT", "MODE", "$TARGET$", "$PORT$", "$MODE$", " ", "x", "é", "$$",
        ];
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for _ in 0..5_000 {
            let n = (next() % 12) as usize;
            let t: String = (0..n)
                .map(|_| PIECES[(next() >> 8) as usize % PIECES.len()])
                .collect();
            let target = ip("2001:db8::a");
            let got = substitute(&t, target, 443, Mode::Sudp);
            let want = t
                .replace(TARGET, "2001:db8::a")
                .replace(PORT, "443")
                .replace(MODE, "sudp");
            assert_eq!(got, want, "{t:?}");
        }
    }
}
