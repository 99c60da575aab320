//! Linux capability names, the set the daemon keeps after start-up (KEEP_CAPABILITIES), and
//! what a missing capability means for the configured modes and responses.
//! Pure: names in, numbers out, a set in, findings out. The shell (`sys::config::caps`) reads the
//! process's sets and applies the kept set.
//!
//! Containers (Docker, systemd-nspawn) and units with `CapabilityBoundingSet=` start the daemon
//! without some capabilities, most often CAP_NET_ADMIN. The daemon keeps
//! KEEP_CAPABILITIES ∩ what it has, names each missing one once with what it disables
//! ([`assess`]), and refuses to start only when a configured mode or BLOCK_METHOD cannot work
//! at all.

use crate::config::mode::{Kind, Mode};
use crate::config::{BlockMethod, Config};

/// Capability names in number order (linux/capability.h, up to CAP_CHECKPOINT_RESTORE = 40).
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What the daemon needs itself: raw capture, firewall changes (KILL_ROUTE with ip, iptables
/// or nft), and binding trap ports below 1024 again on reload.
pub const DEFAULT_KEEP: &[&str] = &["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"];

/// The number of a capability name (`CAP_NET_RAW` or `net_raw`, any case).
pub fn number(name: &str) -> Option<u8> {
    let up = name.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u8)
}

/// Parse a KEEP_CAPABILITIES value: `all` (keep everything: no dropping), or a comma
/// separated list of names. Err names the first unknown entry.
pub fn parse_keep(v: &str) -> Result<Option<Vec<u8>>, String> {
    if v.trim().eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let mut out = Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match number(t) {
            Some(n) if !out.contains(&n) => out.push(n),
            Some(_) => {}
            None => return Err(format!("unknown capability {t:?}")),
        }
    }
    out.sort_unstable();
    Ok(Some(out))
}

/// The default kept set as numbers.
pub fn default_keep() -> Vec<u8> {
    let mut v: Vec<u8> = DEFAULT_KEEP.iter().filter_map(|n| number(n)).collect();
    v.sort_unstable();
    v
}

/// Binding ports below 1024.
pub const CAP_NET_BIND_SERVICE: u8 = 10;
/// Firewall and route changes, nftables.
pub const CAP_NET_ADMIN: u8 = 12;
/// Raw and packet sockets (the capture).
pub const CAP_NET_RAW: u8 = 13;

/// A set of capabilities as a bit mask (bit n = capability n), as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Every capability up to number `last` (the kernel's `cap_last_cap`).
    pub fn all(last: u8) -> CapSet {
        CapSet(if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        })
    }

    /// Does the set hold `cap`?
    pub fn has(self, cap: u8) -> bool {
        cap < 64 && self.0 & (1u64 << cap) != 0
    }

    /// The capabilities of `keep` this set has, in `keep`'s order.
    pub fn intersect(self, keep: &[u8]) -> Vec<u8> {
        keep.iter().copied().filter(|&c| self.has(c)).collect()
    }
}

/// The name of capability `cap` (`CAP_NET_RAW`), or `cap_<n>` for a number the table lacks.
pub fn name(cap: u8) -> String {
    NAMES
        .get(usize::from(cap))
        .map_or_else(|| format!("cap_{cap}"), |n| (*n).to_string())
}

/// What one missing capability means here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A configured mode or setting cannot work without it: start-up stops.
    /// `setting` names what needs it (`mode -stcp`, `BLOCK_METHOD="nftables"`).
    Fatal {
        /// The capability.
        cap: u8,
        /// What needs it.
        setting: String,
    },
    /// Kept in KEEP_CAPABILITIES but not available: `disables` says what will not work.
    Missing {
        /// The capability.
        cap: u8,
        /// What lacking it disables.
        disables: String,
    },
}

impl Finding {
    /// The capability the finding is about.
    pub fn cap(&self) -> u8 {
        match self {
            Finding::Fatal { cap, .. } | Finding::Missing { cap, .. } => *cap,
        }
    }
}

/// What lacking `cap` disables, in words an admin acts on.
fn disables(cap: u8) -> String {
    match cap {
        CAP_NET_ADMIN => "KILL_ROUTE with ip, iptables or nft will fail, and BLOCK_METHOD=\"nftables\" cannot be used".into(),
        CAP_NET_RAW => "the stealth and advanced modes (-stcp, -sudp, -atcp, -audp) cannot start".into(),
        CAP_NET_BIND_SERVICE => "the classic modes cannot bind ports below 1024".into(),
        _ => "commands run by the daemon (KILL_ROUTE, KILL_RUN_CMD) will not have it".into(),
    }
}

/// Findings for running `modes` with `cfg` when the process has `have`. Every capability of
/// KEEP_CAPABILITIES (the default set when it is `all`) that `have` lacks is named once:
/// as [`Finding::Fatal`] when a configured mode or BLOCK_METHOD cannot work at all, else as
/// [`Finding::Missing`]. Fatal findings come first.
pub fn assess(modes: &[Mode], cfg: &Config, have: CapSet) -> Vec<Finding> {
    let wanted = cfg.keep_capabilities.clone().unwrap_or_else(default_keep);
    let mut needed: Vec<u8> = wanted;
    for c in default_keep() {
        if !needed.contains(&c) {
            needed.push(c);
        }
    }
    let capture = modes.iter().find(|m| m.kind() != Kind::Classic);
    let mut fatal = Vec::new();
    let mut missing = Vec::new();
    for cap in needed {
        if have.has(cap) {
            continue;
        }
        let setting = match cap {
            CAP_NET_RAW => capture.map(|m| format!("mode -{}", m.as_str())),
            CAP_NET_ADMIN if cfg.block_method == BlockMethod::Nftables => {
                Some("BLOCK_METHOD=\"nftables\"".to_string())
            }
            _ => None,
        };
        match setting {
            Some(setting) => fatal.push(Finding::Fatal { cap, setting }),
            // Only what the admin asked to keep, or what the daemon itself uses, is named.
            None => missing.push(Finding::Missing {
                cap,
                disables: disables(cap),
            }),
        }
    }
    fatal.extend(missing);
    fatal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn set(caps: &[u8]) -> CapSet {
        CapSet(caps.iter().fold(0, |m, &c| m | 1 << c))
    }

    #[test]
    fn everything_there_means_no_findings() {
        let cfg = Config::default();
        let all = CapSet::all(40);
        assert!(assess(&[Mode::Stcp, Mode::Audp], &cfg, all).is_empty());
        assert_eq!(all.intersect(&[10, 12, 13]), vec![10, 12, 13]);
    }

    #[test]
    fn no_net_admin_is_a_warning_for_classic_modes_and_fatal_for_nftables() {
        // Docker's and systemd-nspawn's default: no CAP_NET_ADMIN.
        let have = set(&[CAP_NET_RAW, CAP_NET_BIND_SERVICE, 0, 1]);
        let cfg = Config::default();
        let f = assess(&[Mode::Tcp, Mode::Udp], &cfg, have);
        assert_eq!(f.len(), 1);
        assert!(
            matches!(&f[0], Finding::Missing { cap: CAP_NET_ADMIN, disables } if disables.contains("KILL_ROUTE") && disables.contains("nftables")),
            "{f:?}"
        );
        assert_eq!(have.intersect(&default_keep()), vec![10, 13]);
        let nft = Config {
            block_method: BlockMethod::Nftables,
            ..Config::default()
        };
        assert_eq!(
            assess(&[Mode::Tcp], &nft, have),
            vec![Finding::Fatal {
                cap: CAP_NET_ADMIN,
                setting: "BLOCK_METHOD=\"nftables\"".into()
            }]
        );
    }

    #[test]
    fn no_net_raw_is_fatal_only_for_capture_modes() {
        let have = set(&[CAP_NET_ADMIN, CAP_NET_BIND_SERVICE]);
        let cfg = Config::default();
        let f = assess(&[Mode::Tcp, Mode::Udp], &cfg, have);
        assert!(
            matches!(
                f.as_slice(),
                [Finding::Missing {
                    cap: CAP_NET_RAW,
                    ..
                }]
            ),
            "{f:?}"
        );
        let f = assess(&[Mode::Tcp, Mode::Audp], &cfg, have);
        assert_eq!(
            f,
            vec![Finding::Fatal {
                cap: CAP_NET_RAW,
                setting: "mode -audp".into()
            }]
        );
    }

    #[test]
    fn extra_kept_capabilities_are_named_and_fatal_ones_come_first() {
        let have = set(&[CAP_NET_BIND_SERVICE]);
        let cfg = Config {
            keep_capabilities: Some(vec![1, 10, 12, 13]),
            block_method: BlockMethod::Nftables,
            ..Config::default()
        };
        let f = assess(&[Mode::Stcp], &cfg, have);
        let caps: Vec<u8> = f.iter().map(Finding::cap).collect();
        assert_eq!(caps, vec![12, 13, 1]);
        assert!(matches!(f[0], Finding::Fatal { .. }) && matches!(f[1], Finding::Fatal { .. }));
        assert!(
            matches!(&f[2], Finding::Missing { cap: 1, disables } if disables.contains("KILL_RUN_CMD"))
        );
        assert_eq!(name(1), "CAP_DAC_OVERRIDE");
        assert_eq!(name(63), "cap_63");
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("CAP_NET_BIND_SERVICE"), Some(10));
        assert_eq!(number("net_admin"), Some(12));
        assert_eq!(number("CAP_NET_RAW"), Some(13));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(default_keep(), vec![10, 12, 13]);
        assert_eq!(Config::default().keep_capabilities, Some(default_keep()));
        assert_eq!(parse_keep("all"), Ok(None));
        assert_eq!(parse_keep(" ALL "), Ok(None));
        assert_eq!(
            parse_keep("CAP_NET_RAW, cap_dac_override,,net_raw"),
            Ok(Some(vec![1, 13]))
        );
        assert_eq!(parse_keep(""), Ok(Some(vec![])));
        assert!(
            parse_keep("CAP_NET_RAW,bogus")
                .unwrap_err()
                .contains("bogus")
        );
    }
}
