//! The nftables side of blocking (issue 4), as text: the script that creates the daemon's own
//! table, batches that add, delete and flush elements, and the parser of `nft -T list table`
//! output used to rebuild the blocked state after a restart and by `portsentry blocked list`.
//!
//! Pure: it never runs `nft`, never reads the clock. The shell (`sys::block::nftables`) feeds these
//! scripts to `nft -f -` and hands the listing text back here. The daemon's own adds under
//! load skip the text and go over netlink (`crate::block::nfnl`).
//!
//! Layout, one table `inet portsentry` that nothing else uses, so other tables are never
//! touched:
//! - `blocked4` / `blocked6`: hash sets of single addresses, `flags timeout` and an explicit
//!   `size` (without one the kernel silently caps a set at 65,535 elements). The daemon adds
//!   scanners here; a hash lookup costs the same for 10 or 1,000,000 elements, unlike one
//!   iptables rule per host that every packet walks.
//! - `nets4` / `nets6`: interval sets for prefixes blocked by hand (`blocked add 10.0.0.0/8`);
//!   the hot path never writes them (interval inserts are slower than hash inserts).
//! - `fleet4` / `fleet6`: interval sets (`flags interval,timeout`) that only the fleet thread
//!   writes: the bans pulled from a CrowdSec LAPI (issue 12, `crate::fleet::bans`). Listed
//!   with the origin `crowdsec`; `blocked del` and `blocked flush` leave them alone (the LAPI
//!   owns them: `cscli decisions delete`).
//! - chain `input`, hook input, priority -10 (before the usual filter chains at 0), drop rules
//!   for the four sets. The chain is flushed and refilled on every start in the same
//!   transaction, so restarts never pile up rules.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

/// The table's family.
pub const FAMILY: &str = "inet";
/// The daemon's table.
pub const TABLE: &str = "portsentry";
/// The daemon's input chain.
pub const CHAIN: &str = "input";
/// Elements per `add element` command: nft parses one command with 10,000 elements in a few
/// ms; larger ones only make an error message (which echoes the command) bigger.
pub const CHUNK: usize = 10_000;

/// One of the sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Set {
    /// Single IPv4 hosts (blocked4).
    Hosts4,
    /// Single IPv6 hosts (blocked6).
    Hosts6,
    /// IPv4 networks blocked by hand (nets4).
    Nets4,
    /// IPv6 networks blocked by hand (nets6).
    Nets6,
    /// IPv4 bans pulled from a CrowdSec LAPI (fleet4, `crate::fleet`).
    Fleet4,
    /// IPv6 bans pulled from a CrowdSec LAPI (fleet6, `crate::fleet`).
    Fleet6,
}

impl Set {
    /// Every set of the table.
    pub const ALL: [Set; 6] = [
        Set::Hosts4,
        Set::Hosts6,
        Set::Nets4,
        Set::Nets6,
        Set::Fleet4,
        Set::Fleet6,
    ];
    /// The sets of this host's own blocks (the daemon's and `portsentry blocked`'s).
    pub const LOCAL: [Set; 4] = [Set::Hosts4, Set::Hosts6, Set::Nets4, Set::Nets6];

    /// The set's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Set::Hosts4 => "blocked4",
            Set::Hosts6 => "blocked6",
            Set::Nets4 => "nets4",
            Set::Nets6 => "nets6",
            Set::Fleet4 => "fleet4",
            Set::Fleet6 => "fleet6",
        }
    }

    /// A set the fleet thread fills from the LAPI.
    pub fn is_fleet(self) -> bool {
        matches!(self, Set::Fleet4 | Set::Fleet6)
    }

    /// Where its elements come from, as `portsentry blocked list` shows it.
    pub fn origin(self) -> &'static str {
        if self.is_fleet() { "crowdsec" } else { "local" }
    }

    fn from_name(n: &str) -> Option<Set> {
        Set::ALL.into_iter().find(|s| s.name() == n)
    }

    /// The host set for an address family.
    pub fn hosts_for(ip: IpAddr) -> Set {
        if ip.is_ipv4() {
            Set::Hosts4
        } else {
            Set::Hosts6
        }
    }

    fn decl(self, size: u32) -> String {
        let (ty, flags, _) = self.parts();
        format!(
            "add set {FAMILY} {TABLE} {} {{ type {ty}; flags {flags}; size {size}; }}\n",
            self.name()
        )
    }

    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Set::Hosts4 => ("ipv4_addr", "timeout", "ip saddr"),
            Set::Hosts6 => ("ipv6_addr", "timeout", "ip6 saddr"),
            Set::Nets4 | Set::Fleet4 => ("ipv4_addr", "interval,timeout", "ip saddr"),
            Set::Nets6 | Set::Fleet6 => ("ipv6_addr", "interval,timeout", "ip6 saddr"),
        }
    }
}

/// An address or a network `ADDR/LEN` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// Not an address.
    BadAddress(String),
    /// Not a valid prefix length.
    BadLength(String),
    /// Host bits set below the prefix.
    HostBits {
        /// What was given.
        given: String,
        /// The network it should be.
        network: String,
    },
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixError::BadAddress(s) => write!(f, "not an IPv4 or IPv6 address: \"{s}\""),
            PrefixError::BadLength(s) => write!(f, "bad prefix length: \"{s}\""),
            PrefixError::HostBits { given, network } => {
                write!(f, "{given} has host bits set (did you mean {network}?)")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

fn max_len(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

fn to_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn mask(len: u8, max: u8) -> u128 {
    let all = if max == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    match u32::from(max - len) {
        128 => 0,
        shift => all & (all << shift),
    }
}

impl Prefix {
    /// A single address.
    pub fn host(addr: IpAddr) -> Prefix {
        let addr = addr.to_canonical();
        Prefix {
            addr,
            len: max_len(addr),
        }
    }

    /// Is it a single address?
    pub fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }

    /// Does it contain `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let m = mask(self.len, max_len(ip));
        to_bits(ip) & m == to_bits(self.addr) & m
    }

    /// Every address of `other` is in `self`.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// The set an element for this prefix lives in.
    pub fn set(&self) -> Set {
        match (self.addr.is_ipv4(), self.is_host()) {
            (true, true) => Set::Hosts4,
            (false, true) => Set::Hosts6,
            (true, false) => Set::Nets4,
            (false, false) => Set::Nets6,
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse::<IpAddr>()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?
            .to_canonical();
        let max = max_len(addr);
        let len = match l {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && !l.starts_with('+') => n,
                _ => return Err(PrefixError::BadLength(l.to_string())),
            },
        };
        let bits = to_bits(addr) & mask(len, max);
        let network = match addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(bits as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits)),
        };
        if network != addr {
            return Err(PrefixError::HostBits {
                given: s.to_string(),
                network: format!("{network}/{len}"),
            });
        }
        Ok(Prefix { addr, len })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// The script that creates (or re-uses) the table, its sets and its chain. `add` never fails
/// on an existing object, so it is idempotent; the chain is flushed and refilled within the
/// same transaction, so the rules are exactly these after every start.
pub fn setup_script(size: u32) -> String {
    let mut s = format!("add table {FAMILY} {TABLE}\n");
    for set in Set::ALL {
        s.push_str(&set.decl(size));
    }
    let _ = writeln!(
        s,
        "add chain {FAMILY} {TABLE} {CHAIN} {{ type filter hook input priority -10; policy accept; }}"
    );
    let _ = writeln!(s, "flush chain {FAMILY} {TABLE} {CHAIN}");
    for set in Set::ALL {
        let (_, _, m) = set.parts();
        let _ = writeln!(
            s,
            "add rule {FAMILY} {TABLE} {CHAIN} {m} @{} drop",
            set.name()
        );
    }
    s
}

/// Removes the whole table (`BLOCK_FLUSH_ON_STOP`).
pub fn delete_table_script() -> String {
    format!("delete table {FAMILY} {TABLE}\n")
}

/// Empties the four local sets; table, rules and the fleet's sets stay.
pub fn flush_script() -> String {
    Set::LOCAL
        .iter()
        .map(|s| format!("flush set {FAMILY} {TABLE} {}\n", s.name()))
        .collect()
}

/// `add element` commands for prefixes with a timeout in seconds (0: no timeout, the element
/// stays until deleted). Grouped per set, [`CHUNK`] elements per command.
pub fn add_script(elems: &[(Prefix, u64)]) -> String {
    elements_script("add", elems.iter().map(|&(p, t)| (p, Some(t))))
}

/// `delete element` commands. Deleting a missing element fails the whole batch in nft, so
/// callers delete only what a listing showed.
pub fn delete_script(elems: &[Prefix]) -> String {
    elements_script("delete", elems.iter().map(|&p| (p, None)))
}

fn elements_script(verb: &str, elems: impl Iterator<Item = (Prefix, Option<u64>)>) -> String {
    let mut by_set: [Vec<String>; 6] = Default::default();
    for (p, t) in elems {
        let i = Set::ALL.iter().position(|&s| s == p.set()).unwrap_or(0);
        let e = match t {
            Some(t) if t > 0 => format!("{p} timeout {t}s"),
            _ => p.to_string(),
        };
        if let Some(v) = by_set.get_mut(i) {
            v.push(e);
        }
    }
    let mut s = String::new();
    for (set, items) in Set::ALL.iter().zip(by_set.iter()) {
        for chunk in items.chunks(CHUNK) {
            let _ = writeln!(
                s,
                "{verb} element {FAMILY} {TABLE} {} {{ {} }}",
                set.name(),
                chunk.join(", ")
            );
        }
    }
    s
}

/// The arguments for a listing that [`parse_listing`] reads (`-T`: times in whole seconds).
pub const LIST_ARGS: [&str; 5] = ["-T", "list", "table", FAMILY, TABLE];

/// One element of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The set it is in.
    pub set: Set,
    /// The address or network.
    pub prefix: Prefix,
    /// The element's timeout in ms; None: it never expires.
    pub timeout_ms: Option<u64>,
    /// Time left in ms; None: it never expires.
    pub expires_ms: Option<u64>,
    /// The last address of a range that nft prints as `a-b` (interval sets), else None.
    pub end: Option<IpAddr>,
}

/// A listing that did not parse: the line and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingError {
    /// The line of the listing.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for ListingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nft listing line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ListingError {}

/// Parses `nft [-T] list table inet portsentry` (or `list set ...`) output. Elements of sets
/// that are not ours are skipped; an element that does not parse is an error naming its line
/// (the text comes from another program, so nothing here may panic).
///
/// nft prints `elements = { a timeout 1h expires 59m58s, b,\n  c }`, wrapping long lists over
/// several lines, and ranges in interval sets as `a-b` when they are not a prefix.
pub fn parse_listing(text: &str) -> Result<Vec<Element>, ListingError> {
    let mut out = Vec::new();
    let mut set: Option<Set> = None;
    // (start line, text) of an elements block still open.
    let mut block: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if let Some((start, mut acc)) = block.take() {
            acc.push(' ');
            match line.split_once('}') {
                Some((head, _)) => {
                    acc.push_str(head);
                    elements(set, &acc, start, &mut out)?;
                }
                None => {
                    acc.push_str(line);
                    block = Some((start, acc));
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("set ") {
            set = rest
                .trim_end_matches('{')
                .split_whitespace()
                .next()
                .and_then(Set::from_name);
        } else if let Some(rest) = line.strip_prefix("elements = {") {
            match rest.split_once('}') {
                Some((head, _)) => elements(set, head, n, &mut out)?,
                None => block = Some((n, rest.to_string())),
            }
        } else if line.starts_with("chain ") || line.starts_with("map ") {
            set = None;
        }
    }
    if let Some((start, _)) = block {
        return Err(ListingError {
            line: start,
            reason: "elements list not closed".to_string(),
        });
    }
    Ok(out)
}

fn elements(
    set: Option<Set>,
    text: &str,
    line: usize,
    out: &mut Vec<Element>,
) -> Result<(), ListingError> {
    let Some(set) = set else {
        return Ok(());
    };
    let err = |reason: String| ListingError { line, reason };
    for item in text.split(',') {
        let mut words = item.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        let (prefix, end) =
            match first.split_once('-') {
                // An interval set prints a range that is no prefix as `a-b`: its start as a host
                // (listed and deleted by its first address) and its end.
                Some((a, b)) if !a.is_empty() => (
                    a.parse::<Prefix>(),
                    Some(b.parse::<IpAddr>().map_err(|_| {
                        err(format!("element \"{}\": bad range end", shorten(first)))
                    })?),
                ),
                _ => (first.parse::<Prefix>(), None),
            };
        let prefix = prefix.map_err(|e| err(format!("element \"{}\": {e}", shorten(first))))?;
        let mut e = Element {
            set,
            prefix,
            timeout_ms: None,
            expires_ms: None,
            end,
        };
        while let Some(w) = words.next() {
            let slot = match w {
                "timeout" => &mut e.timeout_ms,
                "expires" => &mut e.expires_ms,
                // Counters, comments and the like: skip their value.
                _ => {
                    words.next();
                    continue;
                }
            };
            let v = words.next().unwrap_or("");
            *slot =
                Some(parse_duration(v).ok_or_else(|| err(format!("bad {w} \"{}\"", shorten(v))))?);
        }
        out.push(e);
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    match s.get(..40) {
        Some(h) if s.len() > 40 => format!("{h}..."),
        _ => s.to_string(),
    }
}

/// nft's durations: `1d2h3m4s500ms`, `99s`, or (with -T on some versions) a bare number of
/// seconds. Returns milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok()?.checked_mul(1000);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().ok()?;
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let ms = match unit {
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1000,
            "ms" => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = tail;
    }
    Some(total)
}

/// How long is left, for people: `never`, `45s`, `1h02m`, `3d04h`.
pub fn human_left(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "never".to_string();
    };
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Why a batch failed, from nft's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The kernel refused an element because the set holds `size` elements (ENFILE, which nft
    /// prints as "Too many open files in system").
    SetFull,
    /// The table or a set is missing (someone deleted the table under us).
    Missing,
    /// Any other failure.
    Other,
}

/// The kind of failure nft's error output describes.
pub fn classify_failure(stderr: &str) -> Failure {
    if stderr.contains("Too many open files in system") {
        Failure::SetFull
    } else if stderr.contains("No such file or directory") {
        Failure::Missing
    } else {
        Failure::Other
    }
}

/// The first line of nft's error output, cut short, for a log line.
pub fn first_error_line(stderr: &str) -> String {
    let l = stderr
        .lines()
        .find(|l| l.starts_with("Error"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("no error output");
    shorten_to(l.trim(), 200)
}

fn shorten_to(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
