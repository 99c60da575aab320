//! Which hosts.deny lines a block wrote, so that they can be removed when the block ends
//! (BLOCK_TIMEOUT expiry, `portsentry blocked del`). 1.2 never removed a line; here the line a
//! block added goes with the block.
//!
//! Pure: text in, the text to keep and the lines dropped out. It never reads or writes the
//! file (that is `sys::block::files`) and never drops a line that is not, exactly, a rendering
//! of KILL_HOSTS_DENY for the host: comments, the admin's own lines, other hosts and lines
//! that merely contain the address (`10.0.0.1` in `ALL: 10.0.0.12`) stay, byte for byte.
//!
//! Two renderings count, for an IPv6 host: the bracketed one written now (hosts_access(5)
//! reads IPv6 patterns only in brackets) and the bare one earlier versions wrote (it denied
//! nothing, but names the same host). Blocks restored from the nftables sets at start-up
//! (made by an earlier run) do not know the port and mode of their hit: `$PORT$` then matches
//! any port number and `$MODE$` any mode name.

use std::net::IpAddr;

use crate::block::template::{MODE, PORT, TARGET};
use crate::config::mode::Mode;

/// The KILL_HOSTS_DENY line a block wrote, as the template and the values substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyLine {
    /// KILL_HOSTS_DENY when the block was made (a reload may change the key; the block's
    /// line is the one its own template rendered).
    pub template: String,
    /// The port hit; None: unknown (matches any port number).
    pub port: Option<u16>,
    /// The mode that saw it; None: unknown (matches any mode name).
    pub mode: Option<Mode>,
}

impl DenyLine {
    /// The line of a block made here, with the values it was rendered with.
    pub fn new(template: &str, port: u16, mode: Mode) -> DenyLine {
        DenyLine {
            template: template.to_string(),
            port: Some(port),
            mode: Some(mode),
        }
    }

    /// The line of a block known only by its address (restored from the nftables sets).
    pub fn unknown_hit(template: &str) -> DenyLine {
        DenyLine {
            template: template.to_string(),
            port: None,
            mode: None,
        }
    }

    /// Is `line` (without its line end) a rendering of this template for `ip`: the bracketed
    /// form written now, or, for IPv6, the bare form of earlier versions?
    pub fn matches(&self, ip: IpAddr, line: &str) -> bool {
        let toks = tokens(&self.template);
        let mut forms = vec![self.pattern(&toks, ip, true)];
        if ip.is_ipv6() {
            forms.push(self.pattern(&toks, ip, false));
        }
        forms.iter().any(|p| {
            let mut budget = MATCH_BUDGET;
            matches(p, line, &mut budget)
        })
    }

    fn pattern(&self, toks: &[Tok<'_>], ip: IpAddr, brackets: bool) -> Vec<Pat> {
        let bare = ip.to_string();
        let bracketed = format!("[{bare}]");
        let mut out: Vec<Pat> = Vec::new();
        let lit = |out: &mut Vec<Pat>, s: &str| match out.last_mut() {
            Some(Pat::Lit(l)) => l.push_str(s),
            _ => out.push(Pat::Lit(s.to_string())),
        };
        for t in toks {
            match t {
                Tok::Lit(s) => lit(&mut out, s),
                Tok::Target { bracketed: already } => {
                    let v4 = ip.is_ipv4();
                    lit(
                        &mut out,
                        if brackets && !v4 && !already {
                            &bracketed
                        } else {
                            &bare
                        },
                    )
                }
                Tok::Port => match self.port {
                    Some(p) => lit(&mut out, &p.to_string()),
                    None => out.push(Pat::AnyPort),
                },
                Tok::Mode => match self.mode {
                    Some(m) => lit(&mut out, m.as_str()),
                    None => out.push(Pat::AnyMode),
                },
            }
        }
        out
    }
}

/// What [`drop_lines`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The file's new contents: every other line, byte for byte, in order.
    pub kept: Vec<u8>,
    /// The lines removed (without their line ends).
    pub lines: Vec<String>,
}

/// Split hosts.deny `text` into the lines `deny` wrote for `ip` and the rest. Lines end in LF
/// (a CR before it is ignored for the comparison and kept otherwise); a last line without
/// LF counts too. Lines that are not UTF-8 are never ours.
pub fn drop_lines(text: &[u8], ip: IpAddr, deny: &DenyLine) -> Dropped {
    let mut out = Dropped {
        kept: Vec::with_capacity(text.len()),
        lines: Vec::new(),
    };
    for raw in text.split_inclusive(|b| *b == b'\n') {
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        match std::str::from_utf8(body) {
            Ok(line) if deny.matches(ip, line) => out.lines.push(line.to_string()),
            _ => out.kept.extend_from_slice(raw),
        }
    }
    out
}

/// At most this many steps per match: templates are short, but a template of many `$PORT$`
/// next to digits could otherwise backtrack for long. Past it the line is kept.
const MATCH_BUDGET: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Lit(&'a str),
    /// `$TARGET$`; `bracketed`: the template puts it in brackets itself (`[$TARGET$]`).
    Target {
        bracketed: bool,
    },
    Port,
    Mode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pat {
    Lit(String),
    AnyPort,
    AnyMode,
}

/// The template's pieces, split as `template::substitute_hosts_deny` substitutes: on
/// `$TARGET$` first, then `$PORT$`, then `$MODE$` inside the literal pieces.
fn tokens(template: &str) -> Vec<Tok<'_>> {
    let pieces: Vec<&str> = template.split(TARGET).collect();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(before) = i.checked_sub(1).and_then(|j| pieces.get(j)) {
            out.push(Tok::Target {
                bracketed: before.ends_with('[') && piece.starts_with(']'),
            });
        }
        for (j, p) in piece.split(PORT).enumerate() {
            if j > 0 {
                out.push(Tok::Port);
            }
            for (k, m) in p.split(MODE).enumerate() {
                if k > 0 {
                    out.push(Tok::Mode);
                }
                if !m.is_empty() {
                    out.push(Tok::Lit(m));
                }
            }
        }
    }
    out
}

fn matches(pats: &[Pat], s: &str, budget: &mut u32) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let Some((first, rest)) = pats.split_first() else {
        return s.is_empty();
    };
    match first {
        Pat::Lit(l) => s
            .strip_prefix(l.as_str())
            .is_some_and(|r| matches(rest, r, budget)),
        Pat::AnyPort => (1..=5).any(|n| {
            let (Some(digits), Some(r)) = (s.get(..n), s.get(n..)) else {
                return false;
            };
            // The decimal form `$PORT$` is written in: no sign, no leading zero.
            digits.parse::<u16>().is_ok_and(|p| p.to_string() == digits) && matches(rest, r, budget)
        }),
        Pat::AnyMode => Mode::ALL.into_iter().any(|m| {
            s.strip_prefix(m.as_str())
                .is_some_and(|r| matches(rest, r, budget))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::template;

    fn render(deny: &DenyLine, ip: IpAddr) -> Option<String> {
        Some(template::substitute_hosts_deny(
            &deny.template,
            ip,
            deny.port?,
            deny.mode?,
        ))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn drop(text: &str, host: &str, deny: &DenyLine) -> (String, Vec<String>) {
        let d = drop_lines(text.as_bytes(), ip(host), deny);
        (String::from_utf8(d.kept).unwrap(), d.lines)
    }

    #[test]
    fn drops_only_the_hosts_own_lines() {
        let deny = DenyLine::new("ALL: $TARGET$", 22, Mode::Stcp);
        let text = "# /etc/hosts.deny: admin's comment mentioning ALL: 10.0.0.1\n\
                    sshd: 192.0.2.0/24\n\
                    ALL: 10.0.0.12\n\
                    ALL: 110.0.0.1\n\
                    ALL: 10.0.0.1\n\
                    ALL: 10.0.0.1 : spawn echo\n\
                    \n\
                    ALL: 10.0.0.1\r\n\
                    ALL: 10.0.0.2\n\
                    ALL: 10.0.0.1";
        let (kept, lines) = drop(text, "10.0.0.1", &deny);
        assert_eq!(
            kept,
            "# /etc/hosts.deny: admin's comment mentioning ALL: 10.0.0.1\n\
             sshd: 192.0.2.0/24\n\
             ALL: 10.0.0.12\n\
             ALL: 110.0.0.1\n\
             ALL: 10.0.0.1 : spawn echo\n\
             \n\
             ALL: 10.0.0.2\n"
        );
        assert_eq!(lines, vec!["ALL: 10.0.0.1"; 3]);
    }

    #[test]
    fn ipv6_bracketed_and_bare_forms_both_go() {
        let deny = DenyLine::new("ALL: $TARGET$ : DENY", 1, Mode::Tcp);
        let text = "ALL: [fd00:232::2] : DENY\n\
                    ALL: fd00:232::2 : DENY\n\
                    ALL: [fd00:232::22] : DENY\n\
                    ALL: [fd00:232::2]\n\
                    ALL: [[fd00:232::2]] : DENY\n\
                    ALL: [FD00:232::2] : DENY\n";
        let (kept, lines) = drop(text, "fd00:232::2", &deny);
        assert_eq!(
            kept,
            "ALL: [fd00:232::22] : DENY\n\
             ALL: [fd00:232::2]\n\
             ALL: [[fd00:232::2]] : DENY\n\
             ALL: [FD00:232::2] : DENY\n"
        );
        assert_eq!(
            lines,
            vec!["ALL: [fd00:232::2] : DENY", "ALL: fd00:232::2 : DENY"]
        );
        // A template that brackets the macro itself: `[addr]` is its one form.
        let own = DenyLine::new("ALL: [$TARGET$]", 1, Mode::Tcp);
        let (kept, lines) = drop(
            "ALL: [2001:db8::2]\nALL: [[2001:db8::2]]\nALL: 2001:db8::2\n",
            "2001:db8::2",
            &own,
        );
        assert_eq!(kept, "ALL: [[2001:db8::2]]\nALL: 2001:db8::2\n");
        assert_eq!(lines, vec!["ALL: [2001:db8::2]"]);
    }

    #[test]
    fn port_and_mode_exact_when_known_any_when_not() {
        let t = "sshd: $TARGET$ # portsentry $MODE$ port $PORT$";
        let text = "sshd: 192.0.2.7 # portsentry stcp port 22\n\
                    sshd: 192.0.2.7 # portsentry atcp port 443\n\
                    sshd: 192.0.2.7 # portsentry xtcp port 443\n\
                    sshd: 192.0.2.7 # portsentry atcp port 0443\n\
                    sshd: 192.0.2.7 # portsentry atcp port 65536\n\
                    sshd: 192.0.2.7 # portsentry atcp port \n";
        let (_, lines) = drop(text, "192.0.2.7", &DenyLine::new(t, 22, Mode::Stcp));
        assert_eq!(lines, vec!["sshd: 192.0.2.7 # portsentry stcp port 22"]);
        let (kept, lines) = drop(text, "192.0.2.7", &DenyLine::unknown_hit(t));
        assert_eq!(
            lines,
            vec![
                "sshd: 192.0.2.7 # portsentry stcp port 22",
                "sshd: 192.0.2.7 # portsentry atcp port 443"
            ]
        );
        assert_eq!(kept.lines().count(), 4);
    }

    #[test]
    fn nothing_to_drop_keeps_the_bytes() {
        let deny = DenyLine::new("ALL: $TARGET$", 1, Mode::Udp);
        let text = b"ALL: 192.0.2.1\n\xff\xfe ALL: 10.0.0.1\nno final newline";
        let d = drop_lines(text, ip("10.0.0.1"), &deny);
        assert_eq!(d.kept, text.to_vec());
        assert!(d.lines.is_empty());
        assert_eq!(drop_lines(b"", ip("10.0.0.1"), &deny).kept, b"");
    }

    /// Every line a block writes is found again, from its own values and from an unknown
    /// hit, for random templates; a line for another host never is.
    #[test]
    fn every_rendering_is_found_again() {
        const PIECES: &[&str] = &[
            "$", "[", "]", "$TARGET$", "$PORT$", "$MODE$", " ", "1", ":", "ALL", "x",
        ];
        let mut rng = crate::testrng::Rng(0x005e_ed0f_4057_5de7);
        let hosts = [ip("2001:db8::a"), ip("192.0.2.1"), ip("::1")];
        for _ in 0..5_000 {
            let n = 1 + rng.below(9);
            let mut t: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            if !template::has_target(&t) {
                t.push_str(TARGET);
            }
            let port = [0, 1, 22, 443, 65535][rng.below(5)];
            let mode = Mode::ALL[rng.below(6)];
            for h in hosts {
                let known = DenyLine::new(&t, port, mode);
                let line = render(&known, h).unwrap();
                assert!(known.matches(h, &line), "{t:?} {line:?}");
                assert!(
                    DenyLine::unknown_hit(&t).matches(h, &line),
                    "{t:?} {line:?}"
                );
                let bare = template::substitute(&t, h, port, mode);
                assert!(known.matches(h, &bare), "{t:?} {bare:?}");
                assert!(!known.matches(ip("2001:db8::b"), &line), "{t:?} {line:?}");
            }
        }
    }

    #[test]
    fn a_runaway_template_is_bounded_and_keeps_the_line() {
        let t = format!("{}$TARGET$", "$PORT$".repeat(40));
        // 201 digits cannot be 40 ports of at most 5 digits: no match, and the search (which
        // would try every split) stops within its budget.
        let line = format!("{}10.0.0.1", "1".repeat(201));
        assert!(!DenyLine::unknown_hit(&t).matches(ip("10.0.0.1"), &line));
    }
}
