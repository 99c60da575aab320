//! Configuration: what the daemon is told to do, read from its inputs. This file owns
//! portsentry.conf; beside it are the command line (`cli`), the modes it selects (`mode`),
//! /etc/default/portsentry (`defaults`), the ignore list and its builder (`ignore`,
//! `ignore_builder`), the addresses never blocked (`protect`) and the capabilities kept
//! (`caps`). Reading the files and the system's addresses is the shell's `sys::config`.
//!
//! portsentry.conf: bytes in, a typed `Config` plus every diagnostic out (reference §2.1–§2.4,
//! §10.1 item 16).
//!
//! Owns the meaning of the file. Every file 1.2 accepts gets the same meaning here: each key is
//! looked up with 1.2's own rule (`scan.rs`): first matching line wins, value between the first
//! `"` and the next `"` or unprintable byte, `#` and `;` inside quotes kept. Where 1.2 silently
//! mis-reads a line (cross-key hijack, tab after the key, missing quotes, indented key, value cut
//! at a tab or non-ASCII byte, duplicate key, line over 1023 bytes) we keep 1.2's reading and
//! add a Warning naming file, line and key, so an upgrade never changes what a working file
//! does. Values 1.2 would turn into nonsense (port 0 or 70000, `BLOCK_TCP="yes"`) are Errors.
//! Unknown keys are ignored silently: other tools may share the file.
//!
//! Must never: touch the file system (the caller reads the file), panic on any input, or stop
//! at the first problem.

pub mod caps;
pub mod cli;
pub mod defaults;
pub mod ignore;
pub mod ignore_builder;
mod keys;
pub mod mode;
pub mod protect;
mod scan;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use keys::{KEYS, KeyDef, key};

/// How serious a diagnostic is: an Error means the config must not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Used, with a warning: 1.2 would have read it the same way, or silently differently.
    Warning,
    /// Stops start-up (and a reload).
    Error,
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based physical line.
    pub line: Option<usize>,
    /// The key, when the problem is with one.
    pub key: Option<String>,
    /// Warning or error.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `error: /etc/portsentry/portsentry.conf:12: BLOCK_TCP: must be 0, 1 or 2, got "3"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: {}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Default `BLOCK_SET_SIZE`: sixteen times the kernel's silent 65,535 cap for sets declared
/// without a size (nf_tables), so a flood does not hit the cap unnoticed.
pub const DEFAULT_SET_SIZE: u32 = 1 << 20;
/// BLOCK_PREFIX_BUDGET's default: 16 blocks per source prefix, then 4 per minute (see
/// `engine::budget` and doc/threat-model.md, `BLOCK_PREFIX_BUDGET`).
pub const DEFAULT_PREFIX_BUDGET: (u32, u32) = (16, 4);

/// BLOCK_LONE_BUDGET's default: 1,000 blocks of sources seen once (one packet to one port),
/// over all prefixes, then 6,000 per minute (100 a second; see `engine::budget::Lone`).
pub const DEFAULT_LONE_BUDGET: (u32, u32) = (1000, 6000);

/// True if any diagnostic is an Error.
pub fn has_errors(d: &[Diagnostic]) -> bool {
    d.iter().any(|d| d.severity == Severity::Error)
}

/// `BLOCK_TCP` / `BLOCK_UDP` (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BlockMode {
    /// 0: log, do not run any action (1.2 still writes the blocked and history lines, §10.1 9).
    #[default]
    LogOnly,
    /// 1: run KILL_RUN_CMD, KILL_HOSTS_DENY and KILL_ROUTE, in the KILL_RUN_CMD_FIRST order.
    Block,
    /// 2: run KILL_RUN_CMD only.
    RunCmdOnly,
}

/// `BLOCK_METHOD` (extension): how a host is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BlockMethod {
    /// "command": only the KILL_ROUTE / KILL_HOSTS_DENY / KILL_RUN_CMD path of 1.2.
    #[default]
    Command,
    /// "nftables": the address also goes into the daemon's own nftables set (see `crate::block::nft`).
    Nftables,
}

/// A parsed portsentry.conf. `Default` gives 1.2's values for absent keys (§2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None`: key absent. Ranges expanded, duplicates removed, order kept.
    pub tcp_ports: Option<Vec<u16>>,
    /// UDP_PORTS: the ports -udp binds and -sudp watches.
    pub udp_ports: Option<Vec<u16>>,
    /// ADVANCED_PORTS_TCP: -atcp watches the ports below it.
    pub advanced_ports_tcp: u16,
    /// ADVANCED_PORTS_UDP: -audp watches the ports below it.
    pub advanced_ports_udp: u16,
    /// ADVANCED_EXCLUDE_TCP: ports -atcp never reacts to.
    pub advanced_exclude_tcp: Vec<u16>,
    /// ADVANCED_EXCLUDE_UDP: ports -audp never reacts to.
    pub advanced_exclude_udp: Vec<u16>,
    /// IGNORE_FILE.
    pub ignore_file: Option<PathBuf>,
    /// HISTORY_FILE.
    pub history_file: Option<PathBuf>,
    /// BLOCKED_FILE (the mode is appended).
    pub blocked_file: Option<PathBuf>,
    /// RESOLVE_HOST.
    pub resolve_host: bool,
    /// BLOCK_TCP.
    pub block_tcp: BlockMode,
    /// BLOCK_UDP.
    pub block_udp: BlockMode,
    /// `None` when absent or `""`: the action is skipped.
    pub kill_route: Option<String>,
    /// KILL_HOSTS_DENY.
    pub kill_hosts_deny: Option<String>,
    /// KILL_RUN_CMD.
    pub kill_run_cmd: Option<String>,
    /// KILL_RUN_CMD_FIRST.
    pub kill_run_cmd_first: bool,
    /// SCAN_TRIGGER.
    pub scan_trigger: u32,
    /// Present but empty is `Some("")`: 1.2 still sends an empty reply (§2.4).
    pub port_banner: Option<String>,
    /// Extension key `HOSTS_DENY_FILE`; 1.2 hard-codes `/etc/hosts.deny` (§6.4).
    pub hosts_deny_file: PathBuf,
    /// Extension keys for blocking (all off by default: a 1.2 file behaves as before).
    pub block_method: BlockMethod,
    /// `BLOCK_TIMEOUT` seconds; 0 = blocks never expire (1.2's behaviour).
    pub block_timeout: u64,
    /// `BLOCK_SET_SIZE`: explicit size of each nftables set.
    pub block_set_size: u32,
    /// `BLOCK_RATE_LIMIT`: blocks per minute, 0 for no cap.
    pub block_rate_limit: u32,
    /// `BLOCK_PREFIX_BUDGET`: blocks per source prefix (IPv4 /24, IPv6 /64), (burst, per
    /// minute); None: no budget.
    pub block_prefix_budget: Option<(u32, u32)>,
    /// `BLOCK_LONE_BUDGET`: blocks of sources that showed one packet to one port (what a
    /// forged source shows), over all prefixes, (burst, per minute); None: no budget.
    pub block_lone_budget: Option<(u32, u32)>,
    /// `BLOCK_ICMP_SCTP`: SCTP and ICMP probes count towards SCAN_TRIGGER and are answered as
    /// BLOCK_TCP says (false: reported only).
    pub block_icmp_sctp: bool,
    /// `KILL_ROUTE_UNDO`: run on expiry of a command-method block.
    pub kill_route_undo: Option<String>,
    /// `BLOCK_FLUSH_ON_STOP`: delete the nftables table when the daemon stops.
    pub block_flush_on_stop: bool,
    /// `NEVER_BLOCK`: networks never blocked (issue 24), besides the built-in protected ones.
    pub never_block: Vec<crate::config::ignore::Net>,
    /// Capabilities kept after start-up (KEEP_CAPABILITIES); None keeps them all.
    pub keep_capabilities: Option<Vec<u8>>,
    /// `METRICS_FILE`: Prometheus text file, rewritten atomically.
    pub metrics_file: Option<PathBuf>,
    /// `EVENTS_FILE`: JSON lines, one per event; `-` is standard output.
    pub events_file: Option<PathBuf>,
    /// The `CROWDSEC_*` keys (issue 12, `crate::fleet`); all absent: no fleet.
    pub fleet: crate::fleet::Keys,
    /// The 1-based line each present key was read from (also for a present but invalid value;
    /// not for a key 1.2 treats as absent, e.g. "Quotes missing"). Lets callers tell absent
    /// from empty (`ADVANCED_EXCLUDE_*` log differently, §2.4) and point at lines.
    pub lines: BTreeMap<&'static str, usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp_ports: None,
            udp_ports: None,
            advanced_ports_tcp: 1024,
            advanced_ports_udp: 1024,
            advanced_exclude_tcp: Vec::new(),
            advanced_exclude_udp: Vec::new(),
            ignore_file: None,
            history_file: None,
            blocked_file: None,
            resolve_host: false,
            block_tcp: BlockMode::LogOnly,
            block_udp: BlockMode::LogOnly,
            kill_route: None,
            kill_hosts_deny: None,
            kill_run_cmd: None,
            kill_run_cmd_first: false,
            scan_trigger: 0,
            port_banner: None,
            hosts_deny_file: PathBuf::from("/etc/hosts.deny"),
            block_method: BlockMethod::Command,
            block_timeout: 0,
            block_set_size: DEFAULT_SET_SIZE,
            block_rate_limit: 0,
            block_prefix_budget: Some(DEFAULT_PREFIX_BUDGET),
            block_lone_budget: Some(DEFAULT_LONE_BUDGET),
            block_icmp_sctp: false,
            kill_route_undo: None,
            block_flush_on_stop: false,
            never_block: Vec::new(),
            // caps::DEFAULT_KEEP as numbers, sorted (CAP_NET_BIND_SERVICE, CAP_NET_ADMIN,
            // CAP_NET_RAW), written out so this file does not import `caps`, which imports
            // `Config`; `caps`'s test `names_and_numbers` checks the two agree.
            keep_capabilities: Some(vec![10, 12, 13]),
            metrics_file: None,
            events_file: None,
            fleet: crate::fleet::Keys::default(),
            lines: BTreeMap::new(),
        }
    }
}

impl Config {
    /// True if the file had a line 1.2 would read for `key`, with quotes.
    pub fn is_present(&self, key: &str) -> bool {
        self.lines.contains_key(key)
    }
}

/// The result of `parse`: the config and every diagnostic, sorted by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The configuration (defaults where a key is missing or bad).
    pub config: Config,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses the contents of a portsentry.conf (`path` is only used in diagnostics).
pub fn parse(text: &[u8], path: &Path) -> Parsed {
    let (segments, split_lines) = scan::segments(text);
    let mut config = Config::default();
    let mut out = Vec::new();
    let diag = |line: usize, key: Option<&str>, severity, message: String| Diagnostic {
        path: path.to_path_buf(),
        line: Some(line),
        key: key.map(str::to_string),
        severity,
        message,
    };

    for line in split_lines {
        let first = segments.iter().find(|s| s.line == line);
        let key = first.and_then(|s| {
            KEYS.iter()
                .find(|k| scan::lead(s.text, k.name) == scan::Lead::Proper)
        });
        out.push(diag(
            line,
            key.map(|k| k.name),
            Severity::Warning,
            format!(
                "line is longer than {} bytes: 1.2 reads it in {0}-byte pieces, each as a new line",
                scan::FGETS_MAX
            ),
        ));
    }

    for k in KEYS {
        lookup(k, &segments, path, &mut config, &mut out);
    }

    out.sort_by_key(|d| d.line);
    Parsed {
        config,
        diagnostics: out,
    }
}

/// Looks up one key with 1.2's rule and applies its value; warns about every line that 1.2
/// reads differently from how it looks.
fn lookup(
    k: &'static KeyDef,
    segments: &[scan::Segment<'_>],
    path: &Path,
    config: &mut Config,
    out: &mut Vec<Diagnostic>,
) {
    use scan::Lead;
    let warn = |out: &mut Vec<Diagnostic>, line: usize, message: String| {
        out.push(Diagnostic {
            path: path.to_path_buf(),
            line: Some(line),
            key: Some(k.name.to_string()),
            severity: Severity::Warning,
            message,
        })
    };
    let name = k.name;
    // Line of the first match, and whether it lacked quotes.
    let mut winner: Option<(usize, bool)> = None;

    for seg in segments {
        let lead = scan::lead(seg.text, name);
        let matched = scan::matches_1_2(seg.text, name);
        if !matched {
            match lead {
                Lead::BadSeparator(Some(b'\t')) => warn(
                    out,
                    seg.line,
                    format!(
                        "TAB after the key: 1.2 does not read this line (write {name}=\"...\")"
                    ),
                ),
                Lead::BadSeparator(None) => warn(
                    out,
                    seg.line,
                    "no value after the key: 1.2 does not read this line".to_string(),
                ),
                Lead::BadSeparator(Some(b)) => warn(
                    out,
                    seg.line,
                    format!(
                        "key followed by {}, not '=' or a space: 1.2 does not read this line",
                        describe(b)
                    ),
                ),
                Lead::Indented => warn(
                    out,
                    seg.line,
                    "indented key: 1.2 ignores this line (start the key in column 1)".to_string(),
                ),
                Lead::Proper | Lead::Other => {}
            }
            continue;
        }
        if let Some((first, no_quotes)) = winner {
            if matches!(lead, Lead::Proper | Lead::Indented) {
                let why = if no_quotes {
                    format!(
                        "ignored: 1.2 reads only the first {name} line (line {first}), which has no quotes, so {name} is treated as absent"
                    )
                } else {
                    format!("duplicate key ignored: the first {name} line (line {first}) wins")
                };
                warn(out, seg.line, why);
            }
            continue;
        }

        // The first match: this is the line 1.2 uses.
        if lead != Lead::Proper {
            let other = KEYS
                .iter()
                .find(|o| o.name != name && scan::lead(seg.text, o.name) == Lead::Proper);
            let what = match (lead, other) {
                (Lead::Indented, _) => "this line is indented, but".to_string(),
                (_, Some(o)) => format!("this is a {} line, but", o.name),
                _ => "this line does not start with the key, but".to_string(),
            };
            warn(
                out,
                seg.line,
                format!(
                    "{what} 1.2 reads it as {name} because it contains \"{name}\" and byte {} is '=' or a space; its value is used for {name}, as 1.2 does",
                    name.len() + 1
                ),
            );
        }
        let Some(e) = scan::extract(seg) else {
            warn(
                out,
                seg.line,
                format!(
                    "quotes missing: 1.2 skips this option and treats {name} as absent (write {name}=\"...\")"
                ),
            );
            winner = Some((seg.line, true));
            continue;
        };
        winner = Some((seg.line, false));
        if lead == Lead::Proper {
            let between = seg.text.get(name.len()..e.open_quote).unwrap_or_default();
            let mut rest = between.trim_ascii();
            rest = rest.strip_prefix(b"=").unwrap_or(rest).trim_ascii();
            if !rest.is_empty() {
                warn(
                    out,
                    seg.line,
                    // Escaped: the text is the file's, and diagnostics go to terminals and
                    // syslog (a raw DEL or ESC here was found by the `config` fuzz target).
                    format!(
                        "text before the opening quote is ignored: \"{}\"",
                        rest.escape_ascii()
                    ),
                );
            }
        }
        match e.stop {
            scan::Stop::Quote => {}
            scan::Stop::EndOfLine => warn(
                out,
                seg.line,
                "missing closing quote: the value runs to the end of the line".to_string(),
            ),
            scan::Stop::Cut { byte, column } => warn(
                out,
                seg.line,
                format!(
                    "value cut at {} (column {column}), as 1.2 does: using \"{}\"",
                    describe(byte),
                    e.value
                ),
            ),
        }
        config.lines.insert(name, seg.line);
        let mut ctx = keys::Ctx {
            path,
            line: seg.line,
            key: name,
            out,
        };
        k.apply(config, &e.value, &mut ctx);
    }
}

fn describe(b: u8) -> String {
    match b {
        b'\t' => "a TAB".to_string(),
        b'\r' => "a carriage return".to_string(),
        0 => "a NUL byte".to_string(),
        0x80.. => format!("non-ASCII byte 0x{b:02X}"),
        0x20..=0x7e => format!("'{}'", char::from(b)),
        _ => format!("control byte 0x{b:02X}"),
    }
}

#[cfg(test)]
mod tests;
