//! Linux capability names and the set the daemon keeps after start-up (KEEP_CAPABILITIES).
//! Pure: names in, numbers out. The shell (`sys::caps`) applies the set.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("CAP_NET_BIND_SERVICE"), Some(10));
        assert_eq!(number("net_admin"), Some(12));
        assert_eq!(number("CAP_NET_RAW"), Some(13));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(default_keep(), vec![10, 12, 13]);
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
