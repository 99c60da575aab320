//! The key table: every portsentry.conf key defined once, with its name, a one-line doc, its
//! default and the parser that turns its extracted value into a `Config` field (reference
//! §2.2–§2.4). The tables of doc/admin-guide.md and the man page are checked against `KEYS`.
//!
//! Value parsers only see the string 1.2 would extract (printable ASCII, no `"`); they report
//! problems through `Ctx`, which already knows the file, line and key. Pure: no I/O.

use std::path::PathBuf;

use super::{BlockMethod, BlockMode, Config, Diagnostic, Severity};

/// Where a value came from, and the sink for its diagnostics.
pub(crate) struct Ctx<'a> {
    pub path: &'a std::path::Path,
    pub line: usize,
    pub key: &'static str,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn push(&mut self, severity: Severity, message: String) {
        self.out.push(Diagnostic {
            path: self.path.to_path_buf(),
            line: Some(self.line),
            key: Some(self.key.to_string()),
            severity,
            message,
        });
    }
    pub fn error(&mut self, message: String) {
        self.push(Severity::Error, message);
    }
}

/// One config key.
pub struct KeyDef {
    /// The name as written in the file (case-sensitive, as in 1.2).
    pub name: &'static str,
    /// One line for the tables of doc/admin-guide.md and the man page.
    pub doc: &'static str,
    /// The value used when the key is absent, in words.
    pub default: &'static str,
    /// Not a 1.2 key: an extension of this implementation (1.2 ignores it).
    pub extension: bool,
    apply: fn(&mut Config, &str, &mut Ctx<'_>),
}

impl KeyDef {
    pub(crate) fn apply(&self, config: &mut Config, value: &str, ctx: &mut Ctx<'_>) {
        (self.apply)(config, value, ctx)
    }
}

impl std::fmt::Debug for KeyDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDef")
            .field("name", &self.name)
            .field("default", &self.default)
            .field("extension", &self.extension)
            .finish()
    }
}

/// Every key, in the order 1.2 documents them in its shipped file.
pub const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "TCP_PORTS",
        doc: "TCP ports watched by -tcp and -stcp: comma-separated ports and ranges a-b",
        default: "none (required by -tcp and -stcp)",
        extension: false,
        apply: |c, v, x| c.tcp_ports = Some(port_list(v, x)),
    },
    KeyDef {
        name: "UDP_PORTS",
        doc: "UDP ports watched by -udp and -sudp: comma-separated ports and ranges a-b",
        default: "none (required by -udp and -sudp)",
        extension: false,
        apply: |c, v, x| c.udp_ports = Some(port_list(v, x)),
    },
    KeyDef {
        name: "ADVANCED_PORTS_TCP",
        doc: "-atcp watches every unused TCP port below this number (1-65535)",
        default: "1024",
        extension: false,
        apply: |c, v, x| {
            if let Some(n) = advanced_limit(v, x) {
                c.advanced_ports_tcp = n;
            }
        },
    },
    KeyDef {
        name: "ADVANCED_PORTS_UDP",
        doc: "-audp watches every unused UDP port below this number (1-65535)",
        default: "1024",
        extension: false,
        apply: |c, v, x| {
            if let Some(n) = advanced_limit(v, x) {
                c.advanced_ports_udp = n;
            }
        },
    },
    KeyDef {
        name: "ADVANCED_EXCLUDE_TCP",
        doc: "TCP ports -atcp never reacts to: comma-separated ports and ranges a-b",
        default: "none",
        extension: false,
        apply: |c, v, x| c.advanced_exclude_tcp = port_list(v, x),
    },
    KeyDef {
        name: "ADVANCED_EXCLUDE_UDP",
        doc: "UDP ports -audp never reacts to: comma-separated ports and ranges a-b",
        default: "none",
        extension: false,
        apply: |c, v, x| c.advanced_exclude_udp = port_list(v, x),
    },
    KeyDef {
        name: "IGNORE_FILE",
        doc: "file of addresses and networks that are never blocked",
        default: "none (required)",
        extension: false,
        apply: |c, v, x| c.ignore_file = path(v, x),
    },
    KeyDef {
        name: "HISTORY_FILE",
        doc: "file every blocked host is appended to, kept across restarts",
        default: "none (required)",
        extension: false,
        apply: |c, v, x| c.history_file = path(v, x),
    },
    KeyDef {
        name: "BLOCKED_FILE",
        doc: "blocked-hosts file; .<mode> is appended and it is cleared on start",
        default: "none (required)",
        extension: false,
        apply: |c, v, x| c.blocked_file = path(v, x),
    },
    KeyDef {
        name: "RESOLVE_HOST",
        doc: "non-zero: look up the name of each attacking host",
        default: "0",
        extension: false,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                c.resolve_host = n != 0;
            }
        },
    },
    KeyDef {
        name: "BLOCK_UDP",
        doc: "UDP response: 0 log only, 1 run the KILL_* actions, 2 run KILL_RUN_CMD only",
        default: "0",
        extension: false,
        apply: |c, v, x| {
            if let Some(m) = block_mode(v, x) {
                c.block_udp = m;
            }
        },
    },
    KeyDef {
        name: "BLOCK_TCP",
        doc: "TCP response: 0 log only, 1 run the KILL_* actions, 2 run KILL_RUN_CMD only",
        default: "0",
        extension: false,
        apply: |c, v, x| {
            if let Some(m) = block_mode(v, x) {
                c.block_tcp = m;
            }
        },
    },
    KeyDef {
        name: "KILL_ROUTE",
        doc: "shell command that drops the attacker's route; must contain $TARGET$",
        default: "none (skipped)",
        extension: false,
        apply: |c, v, _| c.kill_route = non_empty(v),
    },
    KeyDef {
        name: "KILL_HOSTS_DENY",
        doc: "line appended to the hosts.deny file; must contain $TARGET$",
        default: "none (skipped)",
        extension: false,
        apply: |c, v, _| c.kill_hosts_deny = non_empty(v),
    },
    KeyDef {
        name: "KILL_RUN_CMD",
        doc: "shell command run for each blocked host ($TARGET$ $PORT$ $MODE$ substituted)",
        default: "none (skipped)",
        extension: false,
        apply: |c, v, _| c.kill_run_cmd = non_empty(v),
    },
    KeyDef {
        name: "KILL_RUN_CMD_FIRST",
        doc: "non-zero: run KILL_RUN_CMD before the route and hosts.deny actions",
        default: "0",
        extension: false,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                c.kill_run_cmd_first = n != 0;
            }
        },
    },
    KeyDef {
        name: "SCAN_TRIGGER",
        doc: "react on this many hits from one host (0 and 1: on the first hit)",
        default: "0",
        extension: false,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                match u32::try_from(n) {
                    Ok(n) => c.scan_trigger = n,
                    Err(_) => x.error(format!("must be an integer >= 0, got \"{v}\"")),
                }
            }
        },
    },
    KeyDef {
        name: "PORT_BANNER",
        doc: "text sent to a connecting host in -tcp and -udp (present but empty: empty reply)",
        default: "none (no reply)",
        extension: false,
        apply: |c, v, _| c.port_banner = Some(v.to_string()),
    },
    KeyDef {
        name: "HOSTS_DENY_FILE",
        doc: "file KILL_HOSTS_DENY lines are appended to (1.2 hard-codes /etc/hosts.deny)",
        default: "/etc/hosts.deny",
        extension: true,
        apply: |c, v, x| {
            if let Some(p) = path(v, x) {
                c.hosts_deny_file = p;
            }
        },
    },
    // Blocking extensions (issue 4). Absent, a 1.2 file blocks exactly as before.
    KeyDef {
        name: "BLOCK_METHOD",
        doc: "\"command\": KILL_ROUTE etc. only; \"nftables\": also add the host to the set of table inet portsentry",
        default: "command",
        extension: true,
        apply: |c, v, x| match v.trim_matches(' ') {
            "command" => c.block_method = BlockMethod::Command,
            "nftables" => c.block_method = BlockMethod::Nftables,
            _ => x.error(format!(
                "must be \"command\" or \"nftables\", got \"{}\"",
                shorten(v)
            )),
        },
    },
    KeyDef {
        name: "BLOCK_TIMEOUT",
        doc: "seconds a block lasts (nftables element timeout, or KILL_ROUTE_UNDO run after it); 0: forever",
        default: "0",
        extension: true,
        apply: |c, v, x| {
            // nft prints and accepts timeouts in seconds up to ~49 days * 1000 on old
            // kernels (a 32-bit millisecond field before 5.x); one year is plenty.
            match integer(v, x).map(u64::try_from) {
                Some(Ok(n)) if n <= MAX_BLOCK_TIMEOUT => c.block_timeout = n,
                Some(_) => x.error(format!(
                    "must be 0-{MAX_BLOCK_TIMEOUT} seconds, got \"{}\"",
                    shorten(v)
                )),
                None => {}
            }
        },
    },
    KeyDef {
        name: "BLOCK_SET_SIZE",
        doc: "maximum elements of each nftables set (the kernel silently caps sets without a size at 65535)",
        default: "1048576",
        extension: true,
        apply: |c, v, x| match integer(v, x).map(u32::try_from) {
            Some(Ok(n)) if n >= 1 => c.block_set_size = n,
            Some(_) => x.error(format!("must be 1-4294967295, got \"{}\"", shorten(v))),
            None => {}
        },
    },
    KeyDef {
        name: "KILL_ROUTE_UNDO",
        doc: "with BLOCK_TIMEOUT > 0: shell command run when a block expires ($TARGET$ $PORT$ $MODE$ substituted)",
        default: "none (skipped)",
        extension: true,
        apply: |c, v, _| c.kill_route_undo = non_empty(v),
    },
    KeyDef {
        name: "BLOCK_FLUSH_ON_STOP",
        doc: "non-zero: delete table inet portsentry when the daemon stops (default: blocks stay in force)",
        default: "0",
        extension: true,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                c.block_flush_on_stop = n != 0;
            }
        },
    },
    KeyDef {
        name: "BLOCK_RATE_LIMIT",
        doc: "at most this many blocks (BLOCK_x=1 or 2) per minute, the rest are logged and refused; 0: no cap",
        default: "0",
        extension: true,
        apply: |c, v, x| match integer(v, x).map(u32::try_from) {
            Some(Ok(n)) => c.block_rate_limit = n,
            Some(_) => x.error(format!("must be 0-4294967295, got \"{}\"", shorten(v))),
            None => {}
        },
    },
    KeyDef {
        name: "NEVER_BLOCK",
        doc: "addresses and networks (CIDR, IPv4 and IPv6, comma- or space-separated) the host depends on (NTP, monitoring, jump hosts): never blocked, locally or from the fleet, like the gateways; a hit is logged as refused",
        default: "none (the LAPI, the nameservers of /etc/resolv.conf, the gateways and this host are protected anyway)",
        extension: true,
        apply: |c, v, x| {
            let mut nets = Vec::new();
            for item in v.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
                match crate::config::ignore::parse_net(item) {
                    Ok(n) => nets.push(n),
                    Err(e) => x.error(e),
                }
            }
            c.never_block = nets;
        },
    },
    KeyDef {
        name: "BLOCK_PREFIX_BUDGET",
        doc: "blocks per source prefix (IPv4 /24, IPv6 /64): `burst,per-minute`; over it a scan is logged, not blocked, unless its evidence is twice that of those blocked; 0: no budget",
        default: "16,4",
        extension: true,
        apply: |c, v, x| match parse_budget(v) {
            Ok(b) => c.block_prefix_budget = b,
            Err(e) => x.error(format!("{e}, got \"{}\"", shorten(v))),
        },
    },
    KeyDef {
        name: "BLOCK_LONE_BUDGET",
        doc: "blocks of sources seen once (one packet to one port, what a forged source shows), over all prefixes: `burst,per-minute`; over it such a source is logged, not blocked, until it shows more; 0: no budget",
        default: "1000,6000",
        extension: true,
        apply: |c, v, x| match parse_budget(v) {
            Ok(b) => c.block_lone_budget = b,
            Err(e) => x.error(format!("{e}, got \"{}\"", shorten(v))),
        },
    },
    KeyDef {
        name: "BLOCK_ICMP_SCTP",
        doc: "non-zero: SCTP INIT/COOKIE-ECHO and ICMP echo/timestamp/mask probes (seen by -stcp and -atcp) count towards SCAN_TRIGGER and are answered as BLOCK_TCP says; 0: reported only",
        default: "0",
        extension: true,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                c.block_icmp_sctp = n != 0;
            }
        },
    },
    KeyDef {
        name: "KEEP_CAPABILITIES",
        doc: "capabilities kept after start-up, also the most KILL_* commands get; `all` keeps every one",
        default: "CAP_NET_ADMIN,CAP_NET_RAW,CAP_NET_BIND_SERVICE",
        extension: true,
        apply: |c, v, x| match crate::config::caps::parse_keep(v) {
            Ok(k) => c.keep_capabilities = k,
            Err(e) => x.error(e),
        },
    },
    // What the admin sees (issue 13). Absent: nothing is written.
    KeyDef {
        name: "METRICS_FILE",
        doc: "Prometheus text file the daemon rewrites atomically every 5 s (e.g. /var/lib/prometheus/node-exporter/portsentry.prom)",
        default: "none (no metrics file)",
        extension: true,
        apply: |c, v, x| c.metrics_file = path(v, x),
    },
    KeyDef {
        name: "EVENTS_FILE",
        doc: "file that gets one JSON line per detection, block, refusal, expiry and unblock; `-`: standard output (with -f)",
        default: "none (no event lines)",
        extension: true,
        apply: |c, v, x| c.events_file = path(v, x),
    },
    // Fleets through CrowdSec's Local API (issue 12, `crate::fleet`). Absent: no fleet.
    KeyDef {
        name: "CROWDSEC_CREDENTIALS",
        doc: "CrowdSec LAPI credentials file (local_api_credentials.yaml format: url, login and password or cert_path and key_path, ca_cert_path); set: push every block to the LAPI as an alert with a ban",
        default: "none (no push)",
        extension: true,
        apply: |c, v, x| c.fleet.credentials = path(v, x),
    },
    KeyDef {
        name: "CROWDSEC_BOUNCER_KEY_FILE",
        doc: "file holding one CrowdSec bouncer API key (cscli bouncers add); set: pull the LAPI's bans into sets fleet4/fleet6 (needs BLOCK_METHOD=\"nftables\")",
        default: "none (no pull)",
        extension: true,
        apply: |c, v, x| c.fleet.bouncer_key_file = path(v, x),
    },
    KeyDef {
        name: "CROWDSEC_BOUNCER_CERT_FILE",
        doc: "PEM TLS client certificate the bouncer side presents instead of an API key (the LAPI's tls: bouncers_allowed_ou); set: pull, as CROWDSEC_BOUNCER_KEY_FILE does (https only)",
        default: "none",
        extension: true,
        apply: |c, v, x| c.fleet.bouncer_cert_file = path(v, x),
    },
    KeyDef {
        name: "CROWDSEC_BOUNCER_CERT_KEY_FILE",
        doc: "PEM private key of CROWDSEC_BOUNCER_CERT_FILE (root's, mode 0600)",
        default: "none",
        extension: true,
        apply: |c, v, x| c.fleet.bouncer_cert_key_file = path(v, x),
    },
    KeyDef {
        name: "CROWDSEC_LAPI_URL",
        doc: "LAPI URL for pulling when CROWDSEC_CREDENTIALS is not set (else its url is used)",
        default: "none",
        extension: true,
        apply: |c, v, x| match crate::fleet::creds::LapiUrl::parse(v) {
            Ok(_) => c.fleet.lapi_url = Some(v.trim().to_string()),
            Err(e) => x.error(e),
        },
    },
    KeyDef {
        name: "CROWDSEC_PULL_INTERVAL",
        doc: "seconds between two pulls of the LAPI's decision stream (1-3600)",
        default: "1",
        extension: true,
        apply: |c, v, x| match integer(v, x).map(u64::try_from) {
            Some(Ok(n @ 1..=crate::fleet::keys::MAX_PULL_S)) => c.fleet.pull_interval_s = Some(n),
            Some(_) => x.error(format!("must be 1-3600 seconds, got \"{}\"", shorten(v))),
            None => {}
        },
    },
    KeyDef {
        name: "CROWDSEC_WIDEST_BAN",
        doc: "widest pulled ban applied, as IPv4,IPv6 prefix lengths (e.g. 8,32 or /16,/48): a Range decision wider than that is refused and logged",
        default: "8,32 (an IPv4 /8, an IPv6 /32)",
        extension: true,
        apply: |c, v, x| {
            match crate::fleet::keys::parse_widest(v) {
            Some(w) => c.fleet.widest_ban = Some(w),
            None => x.error(format!(
                "must be two prefix lengths, IPv4 (0-32) and IPv6 (0-128), e.g. \"8,32\", got \"{}\"",
                shorten(v)
            )),
        }
        },
    },
    KeyDef {
        name: "CROWDSEC_BAN_DURATION",
        doc: "seconds a pushed ban decision lasts (1-31536000; never forever)",
        default: "BLOCK_TIMEOUT, or 14400 (4 hours) when BLOCK_TIMEOUT is 0",
        extension: true,
        apply: |c, v, x| match integer(v, x).map(u64::try_from) {
            Some(Ok(n @ 1..=crate::fleet::keys::MAX_BAN_S)) => c.fleet.ban_duration_s = Some(n),
            Some(_) => x.error(format!(
                "must be 1-31536000 seconds, got \"{}\"",
                shorten(v)
            )),
            None => {}
        },
    },
    KeyDef {
        name: "CROWDSEC_SEND_LOG_ONLY",
        doc: "non-zero: also send BLOCK_x=0 reports to the LAPI, as alerts without a decision",
        default: "0",
        extension: true,
        apply: |c, v, x| {
            if let Some(n) = integer(v, x) {
                c.fleet.send_log_only = n != 0;
            }
        },
    },
];

/// Upper bound of `BLOCK_TIMEOUT`: one year.
pub const MAX_BLOCK_TIMEOUT: u64 = 365 * 24 * 3600;

/// Looks a key up by name.
pub fn key(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// A path value. 1.2 would use an empty one literally (appending `.tcp` to "" for the blocked
/// file); that is never what was meant, so it is an error.
fn path(v: &str, x: &mut Ctx<'_>) -> Option<PathBuf> {
    if v.is_empty() {
        x.error("empty path".to_string());
        None
    } else {
        Some(PathBuf::from(v))
    }
}

/// BLOCK_PREFIX_BUDGET and BLOCK_LONE_BUDGET: `0` (off) or `burst,per-minute`, both
/// 1-1000000.
fn parse_budget(v: &str) -> Result<Option<(u32, u32)>, &'static str> {
    let t = v.trim_matches(' ');
    if t == "0" {
        return Ok(None);
    }
    const WANT: &str = "must be 0 or burst,per-minute (each 1-1000000, e.g. 16,4)";
    let (a, b) = t.split_once(',').ok_or(WANT)?;
    let n = |s: &str| {
        let s = s.trim_matches(' ');
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
    };
    match (n(a), n(b)) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Err(WANT),
    }
}

/// An integer the way 1.2's `atoi` reads it (§2.2: leading spaces, an optional sign), but a
/// value that is not wholly a number (trailing spaces aside) is an error instead of 0.
pub(crate) fn integer(v: &str, x: &mut Ctx<'_>) -> Option<i64> {
    match parse_integer(v) {
        Ok(n) => Some(n),
        Err(why) => {
            x.error(format!("{why}, got \"{v}\""));
            None
        }
    }
}

fn parse_integer(v: &str) -> Result<i64, &'static str> {
    let t = v.trim_matches(' ');
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not an integer");
    }
    let magnitude: i64 = digits.parse().map_err(|_| "integer too large")?;
    Ok(if negative { -magnitude } else { magnitude })
}

fn block_mode(v: &str, x: &mut Ctx<'_>) -> Option<BlockMode> {
    // 1.2 treats every value but 1 and 2 as "log only" (§6.1); a typo there silently disables
    // blocking, so only the three documented values are accepted.
    match parse_integer(v) {
        Ok(0) => Some(BlockMode::LogOnly),
        Ok(1) => Some(BlockMode::Block),
        Ok(2) => Some(BlockMode::RunCmdOnly),
        _ => {
            x.error(format!("must be 0, 1 or 2, got \"{v}\""));
            None
        }
    }
}

fn advanced_limit(v: &str, x: &mut Ctx<'_>) -> Option<u16> {
    // 1.2 reads it into an unsigned int: a negative value means ~4 billion ports (§10.1 item 4).
    match parse_integer(v).map(u16::try_from) {
        Ok(Ok(n)) if n >= 1 => Some(n),
        _ => {
            x.error(format!("must be a port number 1-65535, got \"{v}\""));
            None
        }
    }
}

/// A port list (§2.3): comma-separated, empty fields skipped, spaces around tokens allowed.
/// Unlike 1.2 it accepts ranges `a-b`, has no 64-entry limit, removes duplicates (keeping the
/// first occurrence's order) and rejects what 1.2 would silently truncate or turn into port 0.
/// Every bad token is reported; the good ones are kept.
pub(crate) fn port_list(v: &str, x: &mut Ctx<'_>) -> Vec<u16> {
    let mut seen = vec![false; 65536];
    let mut out = Vec::new();
    let mut add = |p: u16| {
        if let Some(s) = seen.get_mut(usize::from(p))
            && !*s
        {
            *s = true;
            out.push(p);
        }
    };
    for token in v.split(',') {
        let t = token.trim_matches(' ');
        if t.is_empty() {
            continue;
        }
        match parse_token(t) {
            Ok((a, b)) => (a..=b).for_each(&mut add),
            Err(why) => x.error(format!("{why}: \"{}\"", shorten(t))),
        }
    }
    out
}

/// A token for a message: long junk (a value may be 1022 bytes) is cut to 40 bytes.
fn shorten(t: &str) -> String {
    match t.get(..40) {
        Some(head) if t.len() > 40 => format!("{head}..."),
        _ => t.to_string(),
    }
}

fn parse_token(t: &str) -> Result<(u16, u16), &'static str> {
    match t.split_once('-') {
        // A leading '-' is a negative number, not a range: 1.2 used atoi (§2.3).
        Some((a, b)) if !a.trim_matches(' ').is_empty() => {
            let a = port(a.trim_matches(' '))?;
            let b = port(b.trim_matches(' '))?;
            if a > b {
                return Err("reversed port range");
            }
            Ok((a, b))
        }
        _ => port(t).map(|p| (p, p)),
    }
}

fn port(t: &str) -> Result<u16, &'static str> {
    // atoi accepted "+5" as 5 (§2.3); keep that.
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a port number");
    }
    match digits.parse::<u64>() {
        Ok(n @ 1..=65535) => u16::try_from(n).map_err(|_| "port out of range 1-65535"),
        _ => Err("port out of range 1-65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Runs one key's parser on `value`; returns the config and the diagnostics.
    fn run(name: &str, value: &str) -> (Config, Vec<Diagnostic>) {
        let mut c = Config::default();
        let mut out = Vec::new();
        let k = key(name).unwrap();
        let mut ctx = Ctx {
            path: Path::new("/p.conf"),
            line: 7,
            key: k.name,
            out: &mut out,
        };
        k.apply(&mut c, value, &mut ctx);
        (c, out)
    }

    fn ok(name: &str, value: &str) -> Config {
        let (c, d) = run(name, value);
        assert!(d.is_empty(), "{name}={value:?}: {d:?}");
        c
    }

    /// The single error for `name=value`, checked to name line 7 and the key.
    fn err(name: &str, value: &str) -> String {
        let (_, d) = run(name, value);
        assert_eq!(d.len(), 1, "{name}={value:?}: {d:?}");
        assert_eq!(d[0].severity, Severity::Error);
        assert_eq!(d[0].line, Some(7));
        assert_eq!(d[0].key.as_deref(), Some(name));
        d[0].message.clone()
    }

    #[test]
    fn table_is_consistent() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(!k.doc.is_empty() && !k.default.is_empty(), "{}", k.name);
            assert!(
                k.name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                k.name
            );
            assert!(
                KEYS.iter().skip(i + 1).all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
        }
        assert_eq!(KEYS.len(), 41);
        assert_eq!(KEYS.iter().filter(|k| k.extension).count(), 23);
        assert!(key("NOPE").is_none());
    }

    #[test]
    fn port_lists() {
        let c = ok("TCP_PORTS", " 1, 7 ,,9,+10,3-5, 8 - 8,1,");
        assert_eq!(c.tcp_ports, Some(vec![1, 7, 9, 10, 3, 4, 5, 8]));
        assert_eq!(ok("UDP_PORTS", "").udp_ports, Some(vec![]));
        assert_eq!(ok("UDP_PORTS", ",").udp_ports, Some(vec![]));
        assert_eq!(ok("UDP_PORTS", "65535").udp_ports, Some(vec![65535]));
        // No 64-entry limit, duplicates removed.
        let c = ok("ADVANCED_EXCLUDE_TCP", "1-100,50-150");
        assert_eq!(c.advanced_exclude_tcp, (1..=150).collect::<Vec<_>>());
        let c = ok("ADVANCED_EXCLUDE_UDP", "520,138,137,67");
        assert_eq!(c.advanced_exclude_udp, [520, 138, 137, 67]);
        assert_eq!(
            ok("TCP_PORTS", "1-65535").tcp_ports.map(|v| v.len()),
            Some(65535)
        );
    }

    #[test]
    fn port_list_errors_name_the_token_and_keep_the_rest() {
        assert!(err("TCP_PORTS", "0").contains("\"0\""));
        assert!(err("TCP_PORTS", "70000").contains("out of range"));
        assert!(err("TCP_PORTS", "99999999999999999999999").contains("out of range"));
        assert!(err("TCP_PORTS", "abc").contains("not a port number: \"abc\""));
        assert!(err("TCP_PORTS", "-1").contains("\"-1\""));
        assert!(err("TCP_PORTS", "5-3").contains("reversed port range: \"5-3\""));
        assert!(err("TCP_PORTS", "1-").contains("\"1-\""));
        assert!(err("TCP_PORTS", "1-2-3").contains("\"1-2-3\""));
        assert!(err("TCP_PORTS", "0-5").contains("\"0-5\""));
        assert!(err("UDP_PORTS", "1 2").contains("\"1 2\""));
        let (c, d) = run("UDP_PORTS", "1,x,2,0");
        assert_eq!(c.udp_ports, Some(vec![1, 2]));
        assert_eq!(d.len(), 2);
        let (c, d) = run("ADVANCED_EXCLUDE_TCP", "113,oops");
        assert_eq!((c.advanced_exclude_tcp, d.len()), (vec![113], 1));
        assert_eq!(err("ADVANCED_EXCLUDE_UDP", "x"), "not a port number: \"x\"");
        let long = "7".repeat(100);
        assert_eq!(
            err("UDP_PORTS", &long),
            format!("port out of range 1-65535: \"{}...\"", &long[..40])
        );
    }

    #[test]
    fn advanced_ports() {
        assert_eq!(ok("ADVANCED_PORTS_TCP", "2048").advanced_ports_tcp, 2048);
        assert_eq!(ok("ADVANCED_PORTS_UDP", " 65535").advanced_ports_udp, 65535);
        for bad in ["0", "-1", "65536", "", "1k", "4294967296"] {
            assert!(err("ADVANCED_PORTS_TCP", bad).contains("1-65535"), "{bad}");
        }
        let (c, _) = run("ADVANCED_PORTS_UDP", "x");
        assert_eq!(c.advanced_ports_udp, 1024);
    }

    #[test]
    fn block_modes() {
        assert_eq!(ok("BLOCK_TCP", "0").block_tcp, BlockMode::LogOnly);
        assert_eq!(ok("BLOCK_TCP", "1").block_tcp, BlockMode::Block);
        assert_eq!(ok("BLOCK_TCP", " 2").block_tcp, BlockMode::RunCmdOnly);
        assert_eq!(ok("BLOCK_UDP", "+1").block_udp, BlockMode::Block);
        assert_eq!(ok("BLOCK_UDP", "2 ").block_udp, BlockMode::RunCmdOnly);
        for bad in ["3", "-1", "yes", "", "1x"] {
            let m = err("BLOCK_UDP", bad);
            assert_eq!(m, format!("must be 0, 1 or 2, got \"{bad}\""));
        }
    }

    #[test]
    fn flags_are_non_zero_integers() {
        assert!(ok("RESOLVE_HOST", "1").resolve_host);
        assert!(ok("RESOLVE_HOST", "  -3").resolve_host);
        assert!(!ok("RESOLVE_HOST", "0").resolve_host);
        assert!(ok("KILL_RUN_CMD_FIRST", "7").kill_run_cmd_first);
        assert!(!ok("KILL_RUN_CMD_FIRST", "00").kill_run_cmd_first);
        assert!(err("RESOLVE_HOST", "yes").contains("not an integer, got \"yes\""));
        assert!(err("KILL_RUN_CMD_FIRST", " 2x").contains("not an integer"));
        assert!(err("RESOLVE_HOST", "").contains("not an integer"));
        assert!(err("RESOLVE_HOST", "99999999999999999999").contains("too large"));
    }

    #[test]
    fn scan_trigger() {
        assert_eq!(ok("SCAN_TRIGGER", "0").scan_trigger, 0);
        assert_eq!(ok("SCAN_TRIGGER", "3").scan_trigger, 3);
        assert!(err("SCAN_TRIGGER", "-1").contains(">= 0"));
        assert!(err("SCAN_TRIGGER", "4294967296").contains(">= 0"));
        assert!(err("SCAN_TRIGGER", "two").contains("not an integer"));
    }

    #[test]
    fn strings_and_paths() {
        let c = ok("KILL_ROUTE", "/sbin/route add -host $TARGET$ reject");
        assert_eq!(
            c.kill_route.as_deref(),
            Some("/sbin/route add -host $TARGET$ reject")
        );
        assert_eq!(ok("KILL_ROUTE", "").kill_route, None);
        assert_eq!(ok("KILL_HOSTS_DENY", "").kill_hosts_deny, None);
        let c = ok("KILL_HOSTS_DENY", "ALL: $TARGET$ : DENY");
        assert_eq!(c.kill_hosts_deny.as_deref(), Some("ALL: $TARGET$ : DENY"));
        let c = ok("KILL_RUN_CMD", "/x $TARGET$ $PORT$ $MODE$; echo '#'");
        assert_eq!(
            c.kill_run_cmd.as_deref(),
            Some("/x $TARGET$ $PORT$ $MODE$; echo '#'")
        );
        assert_eq!(ok("KILL_RUN_CMD", "").kill_run_cmd, None);
        assert_eq!(ok("PORT_BANNER", "").port_banner.as_deref(), Some(""));
        assert_eq!(
            ok("PORT_BANNER", " GO AWAY ").port_banner.as_deref(),
            Some(" GO AWAY ")
        );
        assert_eq!(
            ok("IGNORE_FILE", "/etc/portsentry/portsentry.ignore").ignore_file,
            Some(PathBuf::from("/etc/portsentry/portsentry.ignore"))
        );
        assert_eq!(
            ok("HISTORY_FILE", "h").history_file,
            Some(PathBuf::from("h"))
        );
        assert_eq!(
            ok("BLOCKED_FILE", "/b").blocked_file,
            Some(PathBuf::from("/b"))
        );
        assert_eq!(
            ok("HOSTS_DENY_FILE", "/tmp/deny").hosts_deny_file,
            PathBuf::from("/tmp/deny")
        );
        assert_eq!(
            ok(
                "METRICS_FILE",
                "/var/lib/prometheus/node-exporter/portsentry.prom"
            )
            .metrics_file,
            Some(PathBuf::from(
                "/var/lib/prometheus/node-exporter/portsentry.prom"
            ))
        );
        assert_eq!(ok("EVENTS_FILE", "-").events_file, Some(PathBuf::from("-")));
        assert_eq!(run("EVENTS_FILE", "x").0.metrics_file, None);
        for k in [
            "IGNORE_FILE",
            "HISTORY_FILE",
            "BLOCKED_FILE",
            "HOSTS_DENY_FILE",
            "METRICS_FILE",
            "EVENTS_FILE",
        ] {
            assert_eq!(err(k, ""), "empty path");
        }
        assert_eq!(
            run("HOSTS_DENY_FILE", "").0.hosts_deny_file,
            PathBuf::from("/etc/hosts.deny")
        );
    }

    #[test]
    fn blocking_extensions() {
        let d = Config::default();
        assert_eq!(
            (d.block_method, d.block_timeout, d.block_set_size),
            (BlockMethod::Command, 0, 1 << 20)
        );
        assert_eq!((d.kill_route_undo, d.block_flush_on_stop), (None, false));
        assert_eq!(
            ok("BLOCK_METHOD", "nftables").block_method,
            BlockMethod::Nftables
        );
        assert_eq!(
            ok("BLOCK_METHOD", " command ").block_method,
            BlockMethod::Command
        );
        for bad in ["", "nft", "NFTABLES", "iptables"] {
            assert!(
                err("BLOCK_METHOD", bad).contains("\"command\" or \"nftables\""),
                "{bad}"
            );
        }
        assert_eq!(ok("BLOCK_TIMEOUT", "0").block_timeout, 0);
        assert_eq!(ok("BLOCK_TIMEOUT", "3600").block_timeout, 3600);
        assert_eq!(ok("BLOCK_TIMEOUT", "31536000").block_timeout, 31_536_000);
        for bad in ["-1", "31536001", "1h", ""] {
            let (c, d) = run("BLOCK_TIMEOUT", bad);
            assert_eq!((d.len(), c.block_timeout), (1, 0), "{bad}");
        }
        assert_eq!(ok("BLOCK_SET_SIZE", "2").block_set_size, 2);
        assert_eq!(ok("BLOCK_SET_SIZE", "4294967295").block_set_size, u32::MAX);
        for bad in ["0", "-5", "4294967296", "big"] {
            let (c, d) = run("BLOCK_SET_SIZE", bad);
            assert_eq!((d.len(), c.block_set_size), (1, 1 << 20), "{bad}");
        }
        let c = ok("KILL_ROUTE_UNDO", "/sbin/route del -host $TARGET$ reject");
        assert_eq!(
            c.kill_route_undo.as_deref(),
            Some("/sbin/route del -host $TARGET$ reject")
        );
        assert_eq!(ok("KILL_ROUTE_UNDO", "").kill_route_undo, None);
        assert!(ok("BLOCK_FLUSH_ON_STOP", "1").block_flush_on_stop);
        assert!(!ok("BLOCK_FLUSH_ON_STOP", "0").block_flush_on_stop);
        assert!(err("BLOCK_FLUSH_ON_STOP", "yes").contains("not an integer"));
    }

    #[test]
    fn block_icmp_sctp() {
        assert!(
            !Config::default().block_icmp_sctp,
            "SCTP and ICMP probes are reported only by default"
        );
        assert!(ok("BLOCK_ICMP_SCTP", "1").block_icmp_sctp);
        assert!(!ok("BLOCK_ICMP_SCTP", "0").block_icmp_sctp);
        let (c, d) = run("BLOCK_ICMP_SCTP", "yes");
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("not an integer"), "{d:?}");
        assert!(!c.block_icmp_sctp);
    }

    #[test]
    fn block_rate_limit() {
        assert_eq!(
            Config::default().block_rate_limit,
            0,
            "no cap: 1.2 behaviour"
        );
        assert_eq!(ok("BLOCK_RATE_LIMIT", "0").block_rate_limit, 0);
        assert_eq!(ok("BLOCK_RATE_LIMIT", "30").block_rate_limit, 30);
        assert_eq!(
            ok("BLOCK_RATE_LIMIT", "4294967295").block_rate_limit,
            u32::MAX
        );
        for bad in ["-1", "4294967296", "ten", ""] {
            let (c, d) = run("BLOCK_RATE_LIMIT", bad);
            assert_eq!((d.len(), c.block_rate_limit), (1, 0), "{bad}");
        }
    }

    #[test]
    fn never_block_takes_addresses_and_networks_of_both_families() {
        let c = ok(
            "NEVER_BLOCK",
            "192.0.2.123, 198.51.100.0/24 2001:db8:5::/48,2001:db8::7",
        );
        let shown: Vec<String> = c.never_block.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "192.0.2.123",
                "198.51.100.0/24",
                "2001:db8:5::/48",
                "2001:db8::7"
            ]
        );
        assert!(ok("NEVER_BLOCK", "").never_block.is_empty());
        assert!(err("NEVER_BLOCK", "192.0.2.1, ntp.example").contains("ntp.example"));
        assert!(err("NEVER_BLOCK", "192.0.2.0/33").contains("/33"));
    }

    #[test]
    fn block_lone_budget() {
        assert_eq!(Config::default().block_lone_budget, Some((1000, 6000)));
        assert_eq!(ok("BLOCK_LONE_BUDGET", "0").block_lone_budget, None);
        assert_eq!(
            ok("BLOCK_LONE_BUDGET", "50,600").block_lone_budget,
            Some((50, 600))
        );
        for bad in ["", "100", "0,6000", "a,b", "1,2,3"] {
            let (c, d) = run("BLOCK_LONE_BUDGET", bad);
            assert_eq!(d.len(), 1, "{bad}");
            assert!(d[0].message.contains("burst,per-minute"), "{bad}: {d:?}");
            assert_eq!(d[0].key.as_deref(), Some("BLOCK_LONE_BUDGET"));
            assert_eq!(
                c.block_lone_budget,
                Some((1000, 6000)),
                "{bad}: default kept"
            );
        }
    }

    #[test]
    fn block_prefix_budget() {
        assert_eq!(
            Config::default().block_prefix_budget,
            Some(super::super::DEFAULT_PREFIX_BUDGET)
        );
        assert_eq!(Config::default().block_prefix_budget, Some((16, 4)));
        assert_eq!(ok("BLOCK_PREFIX_BUDGET", "0").block_prefix_budget, None);
        assert_eq!(
            ok("BLOCK_PREFIX_BUDGET", "32,8").block_prefix_budget,
            Some((32, 8))
        );
        assert_eq!(
            ok("BLOCK_PREFIX_BUDGET", " 1, 1000000 ").block_prefix_budget,
            Some((1, 1_000_000))
        );
        for bad in [
            "",
            "16",
            "16,",
            ",4",
            "0,4",
            "16,0",
            "-1,4",
            "a,b",
            "16,4,2",
            "1000001,1",
        ] {
            let (c, d) = run("BLOCK_PREFIX_BUDGET", bad);
            assert_eq!(d.len(), 1, "{bad}");
            assert!(d[0].message.contains("burst,per-minute"), "{bad}: {d:?}");
            assert_eq!(d[0].key.as_deref(), Some("BLOCK_PREFIX_BUDGET"));
            assert_eq!(c.block_prefix_budget, Some((16, 4)), "{bad}: default kept");
        }
    }

    #[test]
    fn fleet_keys() {
        assert_eq!(
            ok("CROWDSEC_CREDENTIALS", "/etc/portsentry/crowdsec-lapi.yaml")
                .fleet
                .credentials,
            Some(PathBuf::from("/etc/portsentry/crowdsec-lapi.yaml"))
        );
        assert_eq!(err("CROWDSEC_CREDENTIALS", ""), "empty path");
        assert_eq!(err("CROWDSEC_BOUNCER_KEY_FILE", ""), "empty path");
        assert_eq!(
            ok("CROWDSEC_BOUNCER_CERT_FILE", "/etc/portsentry/bouncer.pem")
                .fleet
                .bouncer_cert_file,
            Some(PathBuf::from("/etc/portsentry/bouncer.pem"))
        );
        assert_eq!(
            ok(
                "CROWDSEC_BOUNCER_CERT_KEY_FILE",
                "/etc/portsentry/bouncer.key"
            )
            .fleet
            .bouncer_cert_key_file,
            Some(PathBuf::from("/etc/portsentry/bouncer.key"))
        );
        assert_eq!(err("CROWDSEC_BOUNCER_CERT_FILE", ""), "empty path");
        assert_eq!(err("CROWDSEC_BOUNCER_CERT_KEY_FILE", ""), "empty path");
        assert_eq!(
            ok("CROWDSEC_LAPI_URL", "http://192.0.2.1:8080/")
                .fleet
                .lapi_url
                .as_deref(),
            Some("http://192.0.2.1:8080/")
        );
        assert!(err("CROWDSEC_LAPI_URL", "192.0.2.1:8080").contains("http://"));
        assert_eq!(
            ok("CROWDSEC_PULL_INTERVAL", "10").fleet.pull_interval_s,
            Some(10)
        );
        for bad in ["0", "3601", "-1", "1s", ""] {
            let (c, d) = run("CROWDSEC_PULL_INTERVAL", bad);
            assert_eq!((d.len(), c.fleet.pull_interval_s), (1, None), "{bad}");
        }
        assert_eq!(
            ok("CROWDSEC_BAN_DURATION", "600").fleet.ban_duration_s,
            Some(600)
        );
        for bad in ["0", "31536001", "4h"] {
            let (c, d) = run("CROWDSEC_BAN_DURATION", bad);
            assert_eq!((d.len(), c.fleet.ban_duration_s), (1, None), "{bad}");
        }
        assert_eq!(
            ok("CROWDSEC_WIDEST_BAN", "16,48").fleet.widest_ban,
            Some((16, 48))
        );
        assert_eq!(
            ok("CROWDSEC_WIDEST_BAN", " /0 , /0 ").fleet.widest_ban,
            Some((0, 0))
        );
        for bad in ["8", "8,", "33,32", "8,129", "a,b", "8,32,1", "-1,32", ""] {
            assert!(
                err("CROWDSEC_WIDEST_BAN", bad).contains("two prefix lengths"),
                "{bad}"
            );
        }
        assert!(ok("CROWDSEC_SEND_LOG_ONLY", "1").fleet.send_log_only);
        assert!(!ok("CROWDSEC_SEND_LOG_ONLY", "0").fleet.send_log_only);
    }

    #[test]
    fn keep_capabilities() {
        assert_eq!(Config::default().keep_capabilities, Some(vec![10, 12, 13]));
        assert_eq!(ok("KEEP_CAPABILITIES", "all").keep_capabilities, None);
        assert_eq!(
            ok("KEEP_CAPABILITIES", "CAP_NET_ADMIN, CAP_DAC_OVERRIDE").keep_capabilities,
            Some(vec![1, 12])
        );
        assert!(err("KEEP_CAPABILITIES", "CAP_NET_ADMIN,CAP_WIZARD").contains("CAP_WIZARD"));
    }
}
