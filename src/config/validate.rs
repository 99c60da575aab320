//! Checks that need to know which modes will run: required keys (§2.3, §2.4) and response
//! settings that cannot do what they say (§6.1, §6.2). Pure: no I/O.

use std::path::Path;

use super::{BlockMethod, BlockMode, Config, Diagnostic, Severity};
use crate::config::mode::{Kind, Mode, Proto};

impl Config {
    /// Diagnostics for running `modes` with this config. A key that is present but invalid was
    /// already reported by `parse`, so it is not reported again as missing.
    pub fn validate(&self, modes: &[Mode], path: &Path) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut push = |severity, key: &str, message: String| {
            out.push(Diagnostic {
                path: path.to_path_buf(),
                line: self.lines.get(key).copied(),
                key: Some(key.to_string()),
                severity,
                message,
            })
        };

        // 1.2's InitConfig aborts without these, whatever the mode (§2.4).
        for (key, value) in [
            ("BLOCKED_FILE", &self.blocked_file),
            ("HISTORY_FILE", &self.history_file),
            ("IGNORE_FILE", &self.ignore_file),
        ] {
            if value.is_none() && !self.is_present(key) {
                push(Severity::Error, key, "missing required key".to_string());
            }
        }

        for proto in [Proto::Tcp, Proto::Udp] {
            let using: Vec<Mode> = modes
                .iter()
                .copied()
                .filter(|m| m.proto() == proto)
                .collect();
            if using.is_empty() {
                continue;
            }
            let (ports_key, ports, block_key, block) = match proto {
                Proto::Tcp => ("TCP_PORTS", &self.tcp_ports, "BLOCK_TCP", self.block_tcp),
                Proto::Udp => ("UDP_PORTS", &self.udp_ports, "BLOCK_UDP", self.block_udp),
            };

            // The port list is read only by the classic and stealth modes (§2.3).
            let needing: Vec<String> = using
                .iter()
                .filter(|m| m.kind() != Kind::Advanced)
                .map(|m| format!("-{m}"))
                .collect();
            if !needing.is_empty() {
                let by = needing.join(" and ");
                match ports {
                    None if !self.is_present(ports_key) => push(
                        Severity::Error,
                        ports_key,
                        format!("missing required key (needed by {by})"),
                    ),
                    Some(p) if p.is_empty() => push(
                        Severity::Error,
                        ports_key,
                        format!("No {} ports supplied (needed by {by})", proto.upper()),
                    ),
                    _ => {}
                }
            }

            match block {
                BlockMode::Block
                    if self.block_method == BlockMethod::Command
                        && self.kill_route.is_none()
                        && self.kill_hosts_deny.is_none()
                        && self.kill_run_cmd.is_none() =>
                {
                    push(
                        Severity::Warning,
                        block_key,
                        "is 1 but none of KILL_ROUTE, KILL_HOSTS_DENY, KILL_RUN_CMD is set: nothing will be blocked".to_string(),
                    )
                }
                BlockMode::RunCmdOnly if self.kill_run_cmd.is_none() => push(
                    Severity::Warning,
                    block_key,
                    "is 2 but KILL_RUN_CMD is not set: nothing will be run".to_string(),
                ),
                _ => {}
            }
        }

        // §6.2: without $TARGET$ 1.2 skips the action and counts the block as failed.
        for (key, value) in [
            ("KILL_ROUTE", &self.kill_route),
            ("KILL_HOSTS_DENY", &self.kill_hosts_deny),
        ] {
            if value.as_deref().is_some_and(|v| !v.contains("$TARGET$")) {
                push(
                    Severity::Warning,
                    key,
                    "has no $TARGET$: the action is skipped and counts as failed, as in 1.2"
                        .to_string(),
                );
            }
        }
        // Blocking extensions (issue 4): settings that cannot do what they say.
        if self.kill_route_undo.is_some() && self.block_timeout == 0 {
            push(
                Severity::Warning,
                "KILL_ROUTE_UNDO",
                "is set but BLOCK_TIMEOUT is 0: blocks never expire, so it never runs".to_string(),
            );
        }
        if self.kill_route_undo.is_some() && self.kill_route.is_none() {
            push(
                Severity::Warning,
                "KILL_ROUTE_UNDO",
                "is set but KILL_ROUTE is not: it undoes KILL_ROUTE blocks only (nftables elements expire by themselves)"
                    .to_string(),
            );
        }
        if self.block_method == BlockMethod::Nftables
            && self.block_tcp != BlockMode::Block
            && self.block_udp != BlockMode::Block
        {
            push(
                Severity::Warning,
                "BLOCK_METHOD",
                "is \"nftables\" but neither BLOCK_TCP nor BLOCK_UDP is 1: nothing is added to the set".to_string(),
            );
        }
        out.extend(crate::fleet::validate(self, path));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{has_errors, parse};
    use std::path::PathBuf;

    const FILES: &str = "IGNORE_FILE=\"/i\"\nHISTORY_FILE=\"/h\"\nBLOCKED_FILE=\"/b\"\n";

    fn check(extra: &str, modes: &[Mode]) -> Vec<Diagnostic> {
        let text = format!("{FILES}{extra}");
        let p = parse(text.as_bytes(), Path::new("/c"));
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        p.config.validate(modes, Path::new("/c"))
    }

    fn messages(d: &[Diagnostic]) -> Vec<String> {
        d.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn required_files_always() {
        let d = Config::default().validate(&[], Path::new("/c"));
        assert_eq!(
            messages(&d),
            [
                "error: /c: BLOCKED_FILE: missing required key",
                "error: /c: HISTORY_FILE: missing required key",
                "error: /c: IGNORE_FILE: missing required key",
            ]
        );
        assert!(check("", &[]).is_empty());
        assert!(check("", &[Mode::Atcp, Mode::Audp]).is_empty());
    }

    #[test]
    fn present_but_empty_path_is_reported_once_by_parse() {
        let p = parse(
            b"IGNORE_FILE=\"\"\nHISTORY_FILE=\"/h\"\nBLOCKED_FILE=\"/b\"\n",
            Path::new("/c"),
        );
        assert_eq!(p.diagnostics.len(), 1);
        assert!(
            p.config
                .validate(&Mode::ALL, Path::new("/c"))
                .iter()
                .all(|d| d.key.as_deref() != Some("IGNORE_FILE"))
        );
    }

    #[test]
    fn port_lists_required_by_classic_and_stealth_modes() {
        for m in [Mode::Tcp, Mode::Stcp] {
            let d = check("", &[m]);
            assert_eq!(
                messages(&d),
                [format!(
                    "error: /c: TCP_PORTS: missing required key (needed by -{m})"
                )]
            );
        }
        for m in [Mode::Udp, Mode::Sudp] {
            let d = check("", &[m]);
            assert_eq!(
                messages(&d),
                [format!(
                    "error: /c: UDP_PORTS: missing required key (needed by -{m})"
                )]
            );
        }
        let d = check("", &[Mode::Tcp, Mode::Stcp, Mode::Atcp]);
        assert_eq!(d.len(), 1);
        assert!(d[0].message.ends_with("(needed by -tcp and -stcp)"));

        let d = check("TCP_PORTS=\",\"\n", &[Mode::Stcp]);
        assert_eq!(
            messages(&d),
            ["error: /c:4: TCP_PORTS: No TCP ports supplied (needed by -stcp)"]
        );
        // Not asked for: not an error.
        assert!(check("TCP_PORTS=\"\"\n", &[Mode::Udp, Mode::Atcp]).len() == 1);
        assert!(
            check(
                "TCP_PORTS=\"\"\nUDP_PORTS=\"1\"\n",
                &[Mode::Udp, Mode::Atcp]
            )
            .is_empty()
        );
        let d = check("UDP_PORTS=\"\"\n", &[Mode::Sudp]);
        assert!(has_errors(&d));
        assert_eq!(d[0].line, Some(4));
        assert!(d[0].message.starts_with("No UDP ports supplied"));
    }

    #[test]
    fn block_without_actions_warns_for_the_used_protocol() {
        let d = check("BLOCK_TCP=\"1\"\nTCP_PORTS=\"1\"\n", &[Mode::Tcp]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, Severity::Warning);
        assert_eq!(
            (d[0].key.as_deref(), d[0].line),
            (Some("BLOCK_TCP"), Some(4))
        );
        assert!(d[0].message.contains("nothing will be blocked"));
        // UDP modes do not use BLOCK_TCP.
        assert!(check("BLOCK_TCP=\"1\"\nUDP_PORTS=\"1\"\n", &[Mode::Udp]).is_empty());
        // Any one action is enough.
        for a in [
            "KILL_ROUTE=\"r $TARGET$\"",
            "KILL_HOSTS_DENY=\"ALL: $TARGET$\"",
            "KILL_RUN_CMD=\"x\"",
        ] {
            assert!(check(&format!("BLOCK_UDP=\"1\"\n{a}\n"), &[Mode::Audp]).is_empty());
        }
        let d = check(
            "BLOCK_UDP=\"2\"\nKILL_ROUTE=\"r $TARGET$\"\n",
            &[Mode::Audp],
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key.as_deref(), Some("BLOCK_UDP"));
        assert!(d[0].message.contains("KILL_RUN_CMD is not set"));
        assert!(check("BLOCK_UDP=\"2\"\nKILL_RUN_CMD=\"x\"\n", &[Mode::Audp]).is_empty());
        assert!(check("BLOCK_TCP=\"2\"\n", &[Mode::Audp]).is_empty());
    }

    #[test]
    fn target_macro_required_in_route_and_hosts_deny() {
        let d = check(
            "KILL_ROUTE=\"/sbin/route add -host reject\"\nKILL_HOSTS_DENY=\"ALL: $target$\"\nKILL_RUN_CMD=\"/bin/true\"\n",
            &[],
        );
        assert_eq!(
            d.iter()
                .map(|d| (d.key.as_deref(), d.line))
                .collect::<Vec<_>>(),
            [
                (Some("KILL_ROUTE"), Some(4)),
                (Some("KILL_HOSTS_DENY"), Some(5))
            ]
        );
        assert!(!has_errors(&d));
    }

    #[test]
    fn validate_uses_config_fields_not_only_lines() {
        let c = Config {
            blocked_file: Some(PathBuf::from("/b")),
            history_file: Some(PathBuf::from("/h")),
            ignore_file: Some(PathBuf::from("/i")),
            udp_ports: Some(vec![1]),
            ..Config::default()
        };
        assert!(c.validate(&Mode::ALL[1..2], Path::new("/c")).is_empty());
        let d = c.validate(&[Mode::Tcp], Path::new("/c"));
        assert_eq!(d[0].line, None);
    }

    #[test]
    fn blocking_extension_checks() {
        // nftables is an action of its own: BLOCK_x=1 with no KILL_* key blocks.
        let nft = "BLOCK_METHOD=\"nftables\"\nBLOCK_TCP=\"1\"\nTCP_PORTS=\"1\"\n";
        assert!(check(nft, &[Mode::Tcp]).is_empty());
        let d = check("BLOCK_METHOD=\"nftables\"\n", &[]);
        assert_eq!(
            (d.len(), d[0].key.as_deref(), d[0].line),
            (1, Some("BLOCK_METHOD"), Some(4))
        );
        let route = "KILL_ROUTE=\"r $TARGET$\"\n";
        let d = check(&format!("{route}KILL_ROUTE_UNDO=\"u $TARGET$\"\n"), &[]);
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("BLOCK_TIMEOUT is 0"));
        assert!(
            check(
                &format!("{route}KILL_ROUTE_UNDO=\"u $TARGET$\"\nBLOCK_TIMEOUT=\"5\"\n"),
                &[]
            )
            .is_empty()
        );
        let d = check(
            "KILL_ROUTE_UNDO=\"r\"\nBLOCK_TIMEOUT=\"5\"\nBLOCK_METHOD=\"nftables\"\nBLOCK_UDP=\"1\"\n",
            &[],
        );
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("expire by themselves"));
        assert!(!has_errors(&d));
    }
}
