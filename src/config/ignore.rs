//! The ignore list: which source addresses portsentry never reacts to (reference §5.1).
//!
//! Owns the line format of `portsentry.ignore` / `portsentry.ignore.static` and the matching
//! of a target address against it. Pure: text in, a typed [`IgnoreList`] and warnings out; it
//! never reads files, never logs and never panics on any input.
//!
//! Differences from 1.2 (reference §10.1 item 15), all deliberate:
//! * IPv6 addresses and prefixes work; a v4 entry also matches the IPv4-mapped IPv6 form
//!   (`::ffff:a.b.c.d`) of its addresses, as dual-stack sockets report v4 peers that way.
//! * `/0` matches everything (1.2 treats it as `/32` through an undefined 32-bit shift).
//! * Dotted netmasks (`/255.255.255.0`) are accepted when contiguous.
//! * Leading/trailing spaces and tabs, CRLF line ends and a last line without LF all work
//!   (1.2 silently turns them into dead entries).
//! * Octal (`010.0.0.1`) and short (`10.1`) `inet_addr` forms, hostnames and garbage are
//!   rejected with a reason instead of silently meaning something unexpected.
//! * As in 1.2 (and unlike 2.0), the host part of an entry is masked: `192.168.1.77/24`
//!   ignores the whole /24.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network of the ignore list. `addr` has its host bits cleared, so two entries that
/// cover the same network compare equal (`10.0.0.1/8` == `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

/// Netmask of a v4 prefix. `checked_shl` because a shift by 32 is exactly the 1.2 bug
/// that made `/0` behave like `/32` (reference §5.1).
fn mask4(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

impl Net {
    /// A network from an address and a prefix; host bits are cleared. Returns `None` when the
    /// prefix is longer than the address family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Net> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(prefix)))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(prefix)))
            }
            _ => return None,
        };
        Some(Net { addr, prefix })
    }

    /// The single-address network of `ip` (`/32` or `/128`).
    pub fn host(ip: IpAddr) -> Net {
        let prefix = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Net { addr: ip, prefix }
    }

    /// True when this network names exactly one address.
    pub fn is_host(&self) -> bool {
        matches!(
            (self.addr, self.prefix),
            (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128)
        )
    }

    /// Whether `ip` lies in this network. A v4 network also matches the IPv4-mapped IPv6
    /// form of its addresses, and a v6 network inside `::ffff:0:0/96` matches the plain v4
    /// addresses it maps, so a host is ignored however the kernel reports it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_match(u32::from(net), mask4(self.prefix), ip),
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| v4_match(u32::from(net), mask4(self.prefix), ip)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_match(u128::from(net), mask6(self.prefix), ip),
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                v6_match(u128::from(net), mask6(self.prefix), ip.to_ipv6_mapped())
            }
        }
    }
}

fn v4_match(net: u32, mask: u32, ip: Ipv4Addr) -> bool {
    u32::from(ip) & mask == net
}

fn v6_match(net: u128, mask: u128, ip: Ipv6Addr) -> bool {
    u128::from(ip) & mask == net
}

/// `10.0.0.1` for a host, `10.0.0.0/8` otherwise: a form both this parser and 1.2 read.
impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// One classified line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Blank or a comment.
    Skip,
    /// An entry.
    Entry(Net),
    /// Not usable; the string says why (it quotes the offending text).
    Invalid(String),
}

/// Spaces, tabs and line ends around a line or a field; CR so that CRLF files work.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Classify one line (with or without its line end).
///
/// Format: optional blanks, then `ADDR` or `ADDR/PREFIX` or `ADDR/DOTTED-MASK` (v4 only),
/// then optionally blanks and/or a `# comment`. A line whose first non-blank character is
/// `#` is a comment.
pub fn parse_line(line: &str) -> Line {
    let body = match line.split_once('#') {
        Some((before, _comment)) => before,
        None => line,
    };
    let body = body.trim_matches(is_blank);
    if body.is_empty() {
        return Line::Skip;
    }
    if let Some(pos) = body.find(is_blank) {
        let rest = body[pos..].trim_matches(is_blank);
        return Line::Invalid(format!(
            "unexpected text '{}' after the address (start a comment with '#')",
            rest.escape_default()
        ));
    }
    match parse_net(body) {
        Ok(net) => Line::Entry(net),
        Err(reason) => Line::Invalid(reason),
    }
}

/// Parse `ADDR`, `ADDR/PREFIX` or `ADDR/DOTTED-MASK` with nothing around it. The error says
/// what is wrong, quoting the offending part.
pub fn parse_net(s: &str) -> Result<Net, String> {
    // Reasons quote the text and end up in logs: never let control bytes through.
    if s.chars().any(char::is_control) {
        return Err(format!(
            "'{}' contains control characters",
            s.escape_default()
        ));
    }
    let (addr_text, mask_text) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    if addr_text.is_empty() {
        return Err(format!("'{s}': missing address before '/'"));
    }
    let addr = parse_addr(addr_text)?;
    let prefix = match mask_text {
        None => Net::host(addr).prefix,
        Some(m) => parse_prefix(m, addr)?,
    };
    Net::new(addr, prefix).ok_or_else(|| format!("'{s}': prefix /{prefix} is out of range"))
}

/// A v4 address in strict dotted-quad form, or any v6 address `std` accepts.
fn parse_addr(text: &str) -> Result<IpAddr, String> {
    if text.contains(':') {
        if text.contains('%') {
            return Err(format!(
                "'{text}': zone indexes (%...) are not accepted; write the bare address"
            ));
        }
        return text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("'{text}' is not a valid IPv6 address"));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_dotted_quad(text).map(IpAddr::V4);
    }
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(format!(
            "'{text}' looks like a hostname; only IP addresses are accepted"
        ));
    }
    Err(format!("'{text}' is not an IP address"))
}

/// Exactly four decimal parts 0..=255 without leading zeros. `inet_addr` (1.2) also read
/// `10.1` as 10.0.0.1 and `010` as octal 8; both are rejected so that an entry never means
/// something other than what it looks like.
fn parse_dotted_quad(text: &str) -> Result<Ipv4Addr, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "'{text}' is not a dotted-quad IPv4 address (short forms like 10.1 are not accepted)"
        ));
    }
    let mut octets = [0u8; 4];
    for (slot, part) in octets.iter_mut().zip(&parts) {
        if part.is_empty() {
            return Err(format!("'{text}': empty part in IPv4 address"));
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(format!(
                "'{text}': leading zero in '{part}' (1.2 read it as octal); write it without leading zeros"
            ));
        }
        *slot = part
            .parse::<u8>()
            .map_err(|_| format!("'{text}': part '{part}' is greater than 255"))?;
    }
    Ok(Ipv4Addr::from(octets))
}

/// `/n` (0..=32 or 0..=128) or, for v4, a contiguous dotted netmask.
fn parse_prefix(m: &str, addr: IpAddr) -> Result<u8, String> {
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    if m.is_empty() {
        return Err(format!("'{addr}/': missing prefix length after '/'"));
    }
    if m.bytes().all(|b| b.is_ascii_digit()) {
        return match m.parse::<u8>() {
            Ok(p) if p <= max => Ok(p),
            _ => Err(format!("prefix length /{m} is out of range 0-{max}")),
        };
    }
    if addr.is_ipv4() && m.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let mask =
            u32::from(parse_dotted_quad(m).map_err(|e| format!("invalid netmask /{m}: {e}"))?);
        let ones = mask.leading_ones();
        if ones + mask.trailing_zeros() != 32 {
            return Err(format!(
                "netmask /{m} is not contiguous (its one bits must come first)"
            ));
        }
        // ones <= 32, so this cannot fail; the fallback keeps the function panic-free.
        return u8::try_from(ones).map_err(|_| format!("netmask /{m} is invalid"));
    }
    Err(format!(
        "'/{m}' is not a prefix length (0-{max}){}",
        if addr.is_ipv4() {
            " or a dotted netmask"
        } else {
            ""
        }
    ))
}

/// A rejected line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreWarning {
    /// 1-based line number.
    pub line: usize,
    /// The line as read, without its line end (invalid UTF-8 replaced, control characters
    /// kept: escape them before logging).
    pub text: String,
    /// Why the line was skipped.
    pub reason: String,
}

/// The parsed ignore list. Matching runs on every event, so the networks are kept per
/// family as (network, mask) integers and checked with one AND and one compare each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IgnoreList {
    nets: Vec<Net>,
    /// v4 entries, plus v6 entries inside `::ffff:0:0/96` mapped down to v4.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// The v4 network a v6 network covers within the IPv4-mapped range `::ffff:0:0/96`, if any.
fn mapped_part(net: Ipv6Addr, prefix: u8) -> Option<(u32, u32)> {
    const MAPPED: u128 = 0xffff_0000_0000;
    let net = u128::from(net);
    if prefix >= 96 {
        // The low 32 bits are the v4 address; the upper 96 must be the mapped prefix.
        (net >> 32 == MAPPED >> 32).then(|| (net as u32, mask4(prefix - 96)))
    } else {
        // A shorter prefix covers either the whole mapped range or none of it.
        (MAPPED & mask6(prefix) == net).then_some((0, 0))
    }
}

impl IgnoreList {
    /// Add one network (duplicates are harmless and kept once).
    pub fn push(&mut self, net: Net) {
        if self.nets.contains(&net) {
            return;
        }
        self.nets.push(net);
        match net.addr {
            IpAddr::V4(a) => self.v4.push((u32::from(a), mask4(net.prefix))),
            IpAddr::V6(a) => {
                self.v6.push((u128::from(a), mask6(net.prefix)));
                if let Some(v4) = mapped_part(a, net.prefix) {
                    self.v4.push(v4);
                }
            }
        }
    }

    /// Whether `ip` is covered by any entry (see [`Net::contains`] for mapped addresses).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.v4_contains(ip),
            IpAddr::V6(ip6) => {
                let x = u128::from(ip6);
                self.v6.iter().any(|&(net, mask)| x & mask == net)
                    || ip6.to_ipv4_mapped().is_some_and(|ip| self.v4_contains(ip))
            }
        }
    }

    fn v4_contains(&self, ip: Ipv4Addr) -> bool {
        let x = u32::from(ip);
        self.v4.iter().any(|&(net, mask)| x & mask == net)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The entries in file order, without duplicates.
    pub fn nets(&self) -> &[Net] {
        &self.nets
    }
}

impl FromIterator<Net> for IgnoreList {
    fn from_iter<I: IntoIterator<Item = Net>>(iter: I) -> Self {
        let mut list = IgnoreList::default();
        for net in iter {
            list.push(net);
        }
        list
    }
}

/// The lines of a file without their LF (a last line without LF included, an empty tail after
/// the final LF not).
pub fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = text.is_empty();
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// Parse a whole ignore file. Invalid lines (including non-UTF-8 ones) are skipped and
/// reported; the valid ones still apply.
pub fn parse(text: &[u8]) -> (IgnoreList, Vec<IgnoreWarning>) {
    let mut list = IgnoreList::default();
    let mut warnings = Vec::new();
    for (i, raw) in split_lines(text).enumerate() {
        let line = i + 1;
        let parsed = match std::str::from_utf8(raw) {
            Ok(s) => parse_line(s),
            Err(_) => Line::Invalid("line is not valid UTF-8".to_string()),
        };
        match parsed {
            Line::Skip => {}
            Line::Entry(net) => list.push(net),
            Line::Invalid(reason) => warnings.push(IgnoreWarning {
                line,
                text: String::from_utf8_lossy(raw)
                    .trim_end_matches('\r')
                    .to_string(),
                reason,
            }),
        }
    }
    (list, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn entry(s: &str) -> Net {
        match parse_line(s) {
            Line::Entry(n) => n,
            other => panic!("{s:?} gave {other:?}"),
        }
    }

    fn invalid(s: &str) -> String {
        match parse_line(s) {
            Line::Invalid(r) => r,
            other => panic!("{s:?} gave {other:?}"),
        }
    }

    fn list(text: &str) -> IgnoreList {
        let (l, w) = parse(text.as_bytes());
        assert!(w.is_empty(), "{w:?}");
        l
    }

    #[test]
    fn skips_blank_and_comment_lines() {
        for s in [
            "",
            "\n",
            "   \t ",
            "\r\n",
            "# comment",
            "   # indented comment",
            "#10.0.0.1",
        ] {
            assert_eq!(parse_line(s), Line::Skip, "{s:?}");
        }
    }

    #[test]
    fn plain_addresses_are_hosts() {
        assert_eq!(entry("10.0.0.1"), Net::host(ip("10.0.0.1")));
        assert_eq!(entry("0.0.0.0").prefix, 32);
        assert_eq!(entry("2001:db8::1"), Net::host(ip("2001:db8::1")));
        assert_eq!(entry("2001:DB8::1").addr, ip("2001:db8::1"));
        assert_eq!(entry("::1").prefix, 128);
    }

    #[test]
    fn blanks_crlf_and_trailing_comments_are_accepted() {
        let want = Net::host(ip("127.0.0.5"));
        for s in [
            "  127.0.0.5",
            "\t127.0.0.5\t",
            "127.0.0.5\r\n",
            "127.0.0.5\r",
            "127.0.0.5 # office",
            "127.0.0.5\t#office\r\n",
            "127.0.0.5#office",
        ] {
            assert_eq!(entry(s), want, "{s:?}");
        }
    }

    #[test]
    fn cidr_prefixes_and_host_bits_are_masked() {
        let n = entry("192.168.1.77/24");
        assert_eq!(
            n,
            Net {
                addr: ip("192.168.1.0"),
                prefix: 24
            }
        );
        assert!(n.contains(ip("192.168.1.200")));
        assert!(!n.contains(ip("192.168.2.1")));
        let n = entry("2001:db8:1:2::99/48");
        assert_eq!(
            n,
            Net {
                addr: ip("2001:db8:1::"),
                prefix: 48
            }
        );
        assert!(n.contains(ip("2001:db8:1:ffff::1")));
        assert!(!n.contains(ip("2001:db8:2::1")));
        assert_eq!(entry("10.0.0.1/32"), entry("10.0.0.1"));
        assert_eq!(entry("10.1.2.3/024").prefix, 24);
    }

    #[test]
    fn slash_zero_matches_everything() {
        // 1.2 made /0 behave like /32 (reference §5.1).
        let v4 = entry("127.0.0.0/0");
        assert!(v4.contains(ip("127.0.0.2")));
        assert!(v4.contains(ip("203.0.113.9")));
        assert!(v4.contains(ip("::ffff:203.0.113.9")));
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6 = entry("::/0");
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(
            v6.contains(ip("10.0.0.1")),
            "::/0 covers the mapped range too"
        );
        let l = list("::/0\n");
        assert!(l.contains(ip("10.0.0.1")));
        assert!(l.contains(ip("fe80::1")));
    }

    #[test]
    fn dotted_netmasks() {
        assert_eq!(entry("10.1.2.3/255.255.255.0"), entry("10.1.2.0/24"));
        assert_eq!(entry("10.1.2.3/255.255.255.255").prefix, 32);
        assert_eq!(entry("10.1.2.3/0.0.0.0").prefix, 0);
        assert_eq!(entry("10.1.2.3/255.255.128.0").prefix, 17);
        assert!(invalid("10.0.0.0/255.0.255.0").contains("not contiguous"));
        assert!(invalid("10.0.0.0/0.0.0.255").contains("not contiguous"));
        assert!(invalid("10.0.0.0/255.255.0").contains("netmask"));
        assert!(invalid("2001:db8::/255.255.255.0").contains("prefix length"));
    }

    #[test]
    fn out_of_range_prefixes_are_invalid() {
        assert!(invalid("10.0.0.0/33").contains("out of range 0-32"));
        assert!(invalid("10.0.0.0/99999999999999999999").contains("out of range"));
        assert!(invalid("::/129").contains("out of range 0-128"));
        assert!(invalid("10.0.0.0/").contains("missing prefix"));
        assert!(invalid("/24").contains("missing address"));
        assert!(invalid("10.0.0.0/-1").contains("not a prefix length"));
        assert!(invalid("10.0.0.0/24/8").contains("not a prefix length"));
    }

    #[test]
    fn inet_addr_forms_hostnames_and_garbage_are_invalid() {
        assert!(invalid("010.0.0.1").contains("leading zero"));
        assert!(invalid("10.1").contains("short forms"));
        assert!(invalid("10").contains("short forms"));
        assert!(invalid("1.2.3.4.5").contains("dotted-quad"));
        assert!(invalid("10.0.0.256").contains("greater than 255"));
        assert!(invalid("10..0.1").contains("empty part"));
        assert!(invalid("localhost").contains("hostname"));
        assert!(invalid("host.example.org").contains("hostname"));
        assert!(invalid("fe80::1%eth0").contains("zone"));
        assert!(invalid("1:2:3").contains("IPv6"));
        assert!(invalid("[::1]").contains("not a valid IPv6"));
        assert!(invalid("10.0.0.1,").contains("not an IP address"));
        assert!(invalid("10.0.0.1 10.0.0.2").contains("unexpected text '10.0.0.2'"));
        assert!(invalid("10.0.0.1 foo # x").contains("'foo'"));
        assert!(invalid("ä").contains("not an IP address"));
        assert_eq!(
            invalid("10.0.0.1\x00\x1b[31m"),
            "'10.0.0.1\\u{0}\\u{1b}[31m' contains control characters"
        );
        assert!(invalid("1.2.3.4 \x07").contains("'\\u{7}'"));
    }

    #[test]
    fn v4_entries_match_mapped_v6_and_back() {
        let l = list("10.0.0.0/8\n::ffff:192.0.2.0/120\n");
        assert!(l.contains(ip("10.9.8.7")));
        assert!(l.contains(ip("::ffff:10.9.8.7")));
        assert!(
            !l.contains(ip("::10.9.8.7")),
            "IPv4-compatible form is not mapped"
        );
        assert!(l.contains(ip("192.0.2.55")));
        assert!(l.contains(ip("::ffff:192.0.2.55")));
        assert!(!l.contains(ip("192.0.3.1")));
        assert!(!l.contains(ip("11.0.0.1")));
        let n = entry("::ffff:192.0.2.0/120");
        assert!(n.contains(ip("192.0.2.1")));
        assert!(!n.contains(ip("192.0.3.1")));
        // A short v6 prefix that does not cover the mapped range matches no v4 address.
        let l = list("2001:db8::/32\n");
        assert!(!l.contains(ip("0.0.0.0")));
    }

    #[test]
    fn list_matching_agrees_with_net_contains() {
        let text =
            "127.0.0.1/32\n0.0.0.0\n192.168.1.77/24\n2001:db8::/64\nfe80::1\n::ffff:0:0/96\n::/1\n";
        let l = list(text);
        let targets = [
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "192.168.1.1",
            "192.168.0.1",
            "2001:db8::5",
            "2001:db8:0:1::5",
            "fe80::1",
            "fe80::2",
            "8.8.8.8",
            "::ffff:8.8.8.8",
            "::1",
            "8000::1",
        ];
        for t in targets {
            let by_net = l.nets().iter().any(|n| n.contains(ip(t)));
            assert_eq!(l.contains(ip(t)), by_net, "{t}");
        }
        assert!(!l.contains(ip("8000::1")));
        assert!(
            l.contains(ip("8.8.8.8")),
            "::ffff:0:0/96 covers every v4 address"
        );
    }

    #[test]
    fn whole_file_parsing_reports_lines() {
        let text =
            b"# header\r\n127.0.0.1/32\r\n\r\n  10.0.0.0/8 # lan\r\nbogus\r\n\xff\xfe\n2001:db8::1";
        let (l, w) = parse(text);
        assert_eq!(l.len(), 3);
        assert!(l.contains(ip("127.0.0.1")));
        assert!(l.contains(ip("10.200.0.1")));
        assert!(l.contains(ip("2001:db8::1")), "last line without LF works");
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].line, w[0].text.as_str()), (5, "bogus"));
        assert!(w[0].reason.contains("hostname"));
        assert_eq!(w[1].line, 6);
        assert!(w[1].reason.contains("UTF-8"));
    }

    #[test]
    fn empty_files_and_duplicates() {
        let (l, w) = parse(b"");
        assert!(l.is_empty() && w.is_empty());
        assert!(!l.contains(ip("0.0.0.0")));
        let l = list("10.0.0.1\n10.0.0.1/32\n10.0.0.0/8\n10.1.0.0/8\n");
        assert_eq!(l.nets(), &[Net::host(ip("10.0.0.1")), entry("10.0.0.0/8")]);
    }

    #[test]
    fn split_lines_edges() {
        let v: Vec<&[u8]> = split_lines(b"a\nb").collect();
        assert_eq!(v, [b"a" as &[u8], b"b"]);
        let v: Vec<&[u8]> = split_lines(b"a\n\n").collect();
        assert_eq!(v, [b"a" as &[u8], b""]);
        assert_eq!(split_lines(b"\n").count(), 1);
        assert_eq!(split_lines(b"").count(), 0);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::1",
            "::/0",
        ] {
            let n = entry(s);
            assert_eq!(n.to_string(), s);
            assert_eq!(entry(&n.to_string()), n);
        }
        assert_eq!(entry("10.1.2.3/255.0.0.0").to_string(), "10.0.0.0/8");
    }

    /// Deterministic pseudo-random bytes biased towards address characters: parse must never
    /// panic, and every entry it returns must match its own network address.
    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF.:/# \t\r\n%[]-x\xff\x00";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 8 == 0 {
                        (r >> 8) as u8
                    } else {
                        ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                    }
                })
                .collect();
            let (l, _) = parse(&bytes);
            for n in l.nets() {
                assert!(n.contains(n.addr), "{n:?} from {bytes:?}");
                assert!(l.contains(n.addr));
                let text = n.to_string();
                assert_eq!(parse_line(&text), Line::Entry(*n));
            }
        }
    }
}
