//! Every line the daemon can write to syslog, generated from the functions that format them,
//! each with the logcheck class it must fall in. One place: the logcheck and logwatch tests
//! read it, and [`unlisted_functions`] fails when a log-line function is added without being
//! listed here (so a new line cannot go out without a rule).
//!
//! Where the functions live is in [`SOURCES`]; the lead's move of `src/report.rs` into
//! `src/report/` is followed automatically (every `.rs` file of that folder is read).
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

use portsentry::mode::{Mode, Proto};
use portsentry::nft::Set;
use portsentry::report::{self as r, Action, CommandFailure, Family, Macro, ScanKind, TcpScanType};

/// Which section of a logcheck report a line belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `violations.d`: detections, blocks, refusals, errors ("Security Events").
    Security,
    /// `ignore.d.server`: routine start-up, listen and reload lines (not reported).
    Routine,
    /// Neither: reported under "System Events" (configuration warnings, recoveries).
    System,
}

/// Files holding log-line functions, and which `pub fn`s there are log lines (a name prefix,
/// or "" for all). Functions that are not log lines are listed in [`NOT_LOG_LINES`].
pub const SOURCES: &[(&str, &str)] = &[
    ("src/report.rs", ""),
    ("src/report", ""),
    ("src/nft.rs", "msg_"),
    ("src/insight.rs", ""),
];

/// `pub fn`s in [`SOURCES`] that do not produce a syslog line.
pub const NOT_LOG_LINES: &[&str] = &[
    "sanitize_name", // a helper of the lines
    "history_line",  // a file line (tested by the fail2ban tests), not syslog
    "status_selected",
    "report_selected",
    "socket_path",
    "period",
];

fn v4() -> IpAddr {
    "198.51.100.2".parse().unwrap()
}

fn v6() -> IpAddr {
    "2001:db8::2".parse().unwrap()
}

/// (function name, class, text) for every line, with every variant that changes the text
/// (protocols, modes, scan kinds, IPv4 and IPv6).
pub fn every_line() -> Vec<(&'static str, Class, String)> {
    use Class::*;
    let cfg = Path::new("/etc/portsentry/portsentry.conf");
    let hist = Path::new("/var/lib/portsentry/portsentry.history");
    let blocked = Path::new("/var/lib/portsentry/portsentry.blocked.stcp");
    let mut v: Vec<(&'static str, Class, String)> = Vec::new();
    let mut add = |f: &'static str, c: Class, s: String| v.push((f, c, s));

    add("starting", Routine, r::starting());
    add("now_active", Routine, r::now_active());
    let [sec, adm] = r::shutting_down();
    add("shutting_down", Security, sec);
    add("shutting_down", Routine, adm);
    add(
        "cannot_open_config_exiting",
        Security,
        r::cannot_open_config_exiting(cfg),
    );
    add("cannot_open_config", Security, r::cannot_open_config(cfg));
    add("config_files_missing", Security, r::config_files_missing());
    add(
        "config_missing_mandatory_option",
        Security,
        r::config_missing_mandatory_option(),
    );
    add("could_not_daemonize", Security, r::could_not_daemonize());
    add("could_not_enter_mode", Security, r::could_not_enter_mode());
    add("quotes_missing", System, r::quotes_missing("BLOCK_TCP"));
    add("scan_trigger_missing", Security, r::scan_trigger_missing());
    add(
        "cannot_retrieve_option",
        Security,
        r::cannot_retrieve_option("HISTORY_FILE"),
    );
    add(
        "blocked_filename_too_long",
        Security,
        r::blocked_filename_too_long(blocked),
    );
    add(
        "cannot_delete_blocked_file",
        Security,
        r::cannot_delete_blocked_file(blocked),
    );
    for p in [Proto::Tcp, Proto::Udp] {
        add("could_not_read_ports", Security, r::could_not_read_ports(p));
        add("no_ports_supplied", Security, r::no_ports_supplied(p));
        add(
            "going_into_listen_mode",
            Routine,
            r::going_into_listen_mode(p, 143),
        );
        add("could_not_bind", Security, r::could_not_bind(p, 143));
        add("could_not_bind_any", Security, r::could_not_bind_any(p));
        add(
            "going_into_stealth_listen_mode",
            Routine,
            r::going_into_stealth_listen_mode(p, 143),
        );
        add("all_sockets_in_use", Security, r::all_sockets_in_use(p));
        add(
            "could_not_open_raw_socket",
            Security,
            r::could_not_open_raw_socket(p),
        );
        add(
            "advanced_ports_missing",
            Security,
            r::advanced_ports_missing(p),
        );
        add(
            "advanced_ignored_port",
            Routine,
            r::advanced_ignored_port(p, 111),
        );
        add(
            "could_not_open_smart_verify_socket",
            Security,
            r::could_not_open_smart_verify_socket(p),
        );
        add("ignoring_response", Security, r::ignoring_response(p));
        for f in [Family::Ipv4, Family::Ipv6] {
            add(
                "could_not_bind_family",
                Security,
                r::could_not_bind_family(p, 143, f, "Address already in use (os error 98)"),
            );
        }
        for ip in [v4(), v6()] {
            add(
                "connect_from",
                Security,
                r::connect_from("scanner.example", ip, p, 143),
            );
            add(
                "ip_options_set",
                Security,
                r::ip_options_set("", ip, p, 143),
            );
        }
        add(
            "illegal_header_length",
            Security,
            r::illegal_header_length(p, 3, v4()),
        );
    }
    for m in Mode::ALL {
        add(
            "could_not_open_socket",
            Security,
            r::could_not_open_socket(m),
        );
        for ip in [v4(), v6()] {
            add("already_blocked", Security, r::already_blocked(m, "", ip));
            add(
                "could_not_block",
                Security,
                r::could_not_block(m, "scanner.example", ip),
            );
        }
    }
    add("socket_in_use", Security, r::socket_in_use(143));
    add(
        "advanced_monitor_first",
        Routine,
        r::advanced_monitor_first(1024),
    );
    add(
        "advanced_manually_exclude",
        Routine,
        r::advanced_manually_exclude(113),
    );
    add(
        "advanced_manually_exclude_none",
        Routine,
        r::advanced_manually_exclude_none(),
    );
    add("select_failed", Security, r::select_failed());
    add(
        "could_not_accept_udp",
        Security,
        r::could_not_accept_udp(143),
    );
    let kinds = [
        ScanKind::Tcp(TcpScanType::Null),
        ScanKind::Tcp(TcpScanType::Xmas),
        ScanKind::Tcp(TcpScanType::Fin),
        ScanKind::Tcp(TcpScanType::Syn),
        ScanKind::Tcp(TcpScanType::Unknown { flags: 0x03 }),
        ScanKind::Tcp(TcpScanType::Ack),
        ScanKind::Tcp(TcpScanType::Window),
        ScanKind::Tcp(TcpScanType::Maimon),
        ScanKind::Tcp(TcpScanType::SynRst),
        ScanKind::Tcp(TcpScanType::All),
        ScanKind::Udp,
    ];
    for k in kinds {
        for ip in [v4(), v6()] {
            add("scan_detected", Security, r::scan_detected(k, "", ip, 143));
        }
    }
    add("accept_failed", Security, r::accept_failed(143));
    for ip in [v4(), v6()] {
        add(
            "blocked_via_wrappers",
            Security,
            r::blocked_via_wrappers(ip, &format!("ALL: {ip}")),
        );
        add(
            "blocked_via_route",
            Security,
            r::blocked_via_route(ip, &format!("/sbin/ip route add blackhole {ip}")),
        );
        add(
            "external_command_run",
            Security,
            r::external_command_run(ip, &format!("/usr/local/bin/notify {ip} 143 stcp")),
        );
    }
    add(
        "cannot_open_ignore_file",
        Security,
        r::cannot_open_ignore_file(),
    );
    add("invalid_netmask", System, r::invalid_netmask("10.0.0.0/33"));
    add(
        "cannot_open_blocked_file_for_reading",
        Security,
        r::cannot_open_blocked_file_for_reading(blocked),
    );
    add(
        "cannot_open_blocked_file",
        Security,
        r::cannot_open_blocked_file(blocked),
    );
    add(
        "cannot_open_history_file",
        Security,
        r::cannot_open_history_file(hist),
    );
    for a in [Action::Route, Action::HostsDeny, Action::RunCmd] {
        add("no_target_variable", Security, r::no_target_variable(a));
        for t in [Macro::Target, Macro::Port, Macro::Mode] {
            add("token_parse_error", Security, r::token_parse_error(t, a));
        }
    }
    for f in [CommandFailure::Exec, CommandFailure::System] {
        add(
            "block_command_failed",
            Security,
            r::block_command_failed(f, v4()),
        );
        add(
            "run_command_failed",
            Security,
            r::run_command_failed(f, v6()),
        );
    }
    add(
        "cannot_open_hosts_deny",
        Security,
        r::cannot_open_hosts_deny(Path::new("/etc/hosts.deny")),
    );
    add(
        "hosts_deny_block_failed",
        Security,
        r::hosts_deny_block_failed(v4()),
    );
    for l in r::trigger_exceeds_capacity(100_000, 65_536) {
        add("trigger_exceeds_capacity", Security, l);
    }
    add(
        "command_exited",
        Security,
        r::command_exited(v4(), 1, "/sbin/ip route add blackhole 198.51.100.2"),
    );
    add(
        "command_killed",
        Security,
        r::command_killed(v6(), 9, "/usr/local/bin/notify"),
    );
    add(
        "command_timed_out",
        Security,
        r::command_timed_out(v4(), 30, "/usr/local/bin/notify"),
    );
    add(
        "command_not_started",
        Security,
        r::command_not_started(
            v4(),
            "No such file or directory (os error 2)",
            "/nonexistent",
        ),
    );
    add("reloading", Routine, r::reloading());
    add("reloaded", Routine, r::reloaded());
    add(
        "reports_rate_limited",
        Security,
        r::reports_rate_limited(940, 10, &[(v6(), 64, 900), (v4(), 24, 40)], 0),
    );
    add(
        "reports_rate_limited",
        Security,
        r::reports_rate_limited(12, 10, &[], 12),
    );
    add(
        "block_rate_limit_reached",
        Security,
        r::block_rate_limit_reached(30),
    );
    add(
        "block_refused_rate",
        Security,
        r::block_refused_rate("", v6()),
    );
    add("blocks_refused", Security, r::blocks_refused(7, 10));
    add(
        "refusing_to_block",
        Security,
        r::refusing_to_block(v4(), "this host's own address"),
    );
    add(
        "already_in_hosts_deny",
        Security,
        r::already_in_hosts_deny(v4()),
    );
    add(
        "blocked_memory_full",
        Security,
        r::blocked_memory_full(1_000_000),
    );
    add(
        "reload_rejected",
        Security,
        r::reload_rejected(
            "error: /etc/portsentry/portsentry.conf:12: BLOCK_TCP: must be 0, 1 or 2, got \"3\"",
        ),
    );
    add(
        "hits_suppressed",
        Security,
        r::hits_suppressed(41, v4(), 60),
    );
    add(
        "ignore_file_entry_ignored",
        System,
        r::ignore_file_entry_ignored(
            Path::new("/etc/portsentry/portsentry.ignore"),
            7,
            "not an address: \"gateway\"",
        ),
    );
    add(
        "capture_losses",
        Security,
        r::capture_losses(12, 3, "short=2 bad_ihl=1"),
    );
    add("capture_losses", Security, r::capture_losses(1, 0, ""));
    add(
        "capture_error",
        Security,
        r::capture_error("Operation not permitted (os error 1)"),
    );
    add(
        "resolve_timed_out",
        Security,
        r::resolve_timed_out(v4(), 1000, 30),
    );

    // src/nft.rs
    use portsentry::nft;
    for ip in [v4(), v6()] {
        add("msg_blocked", Security, nft::msg_blocked(ip, 0));
        add("msg_blocked", Security, nft::msg_blocked(ip, 3600));
        add(
            "msg_add_failed",
            Security,
            nft::msg_add_failed(ip, "No space left on device"),
        );
        add(
            "msg_undo_run",
            Security,
            nft::msg_undo_run(ip, "/sbin/ip route del blackhole 198.51.100.2"),
        );
        add("msg_expired", Security, nft::msg_expired(ip, Mode::Stcp));
    }
    for s in Set::ALL {
        add("msg_set_full", Security, nft::msg_set_full(s, 1_048_576));
        add("msg_set_room", Routine, nft::msg_set_room(s));
    }
    add("msg_ready", Routine, nft::msg_ready(3));

    // src/insight.rs
    use portsentry::insight as i;
    let prom = Path::new("/var/lib/prometheus/node-exporter/portsentry.prom");
    add(
        "metrics_failed",
        Security,
        i::metrics_failed(prom, "No such file or directory (os error 2)"),
    );
    add("metrics_recovered", System, i::metrics_recovered(prom));
    add(
        "events_failed",
        Security,
        i::events_failed(
            "/var/log/portsentry/events.jsonl",
            "No space left on device (os error 28)",
            4,
        ),
    );
    add(
        "events_recovered",
        System,
        i::events_recovered("/var/log/portsentry/events.jsonl", 4),
    );
    add(
        "events_unusable",
        Security,
        i::events_unusable(
            "EVENTS_FILE \"-\" (standard output) needs -f (foreground); no events are written",
        ),
    );
    add(
        "status_socket_failed",
        Security,
        i::status_socket_failed(
            Path::new("/run/portsentry.sock"),
            "Permission denied (os error 13)",
        ),
    );

    // Lines formatted inline in src/sys/run.rs (no function to call): the same texts.
    add("run.rs:config diagnostic", System, "adminalert: warning: /etc/portsentry/portsentry.conf:4: TCP_PORTS: a tab follows the key; 1.2 reads the line anyway".into());
    add("run.rs:config diagnostic", Security, "adminalert: error: /etc/portsentry/portsentry.conf:12: BLOCK_TCP: must be 0, 1 or 2, got \"3\"".into());
    add(
        "run.rs:poll",
        Security,
        "adminalert: ERROR: poll failed: Bad file descriptor (os error 9). Shutting down.".into(),
    );
    add(
        "run.rs:resync",
        Routine,
        "adminalert: blocked hosts re-read from nftables: 3 hosts".into(),
    );
    add(
        "run.rs:nft list",
        Security,
        "adminalert: ERROR: cannot list nftables table inet portsentry: No such file or directory"
            .into(),
    );
    v
}

/// `pub fn` names in the files of [`SOURCES`] that are neither in [`every_line`] nor in
/// [`NOT_LOG_LINES`]. Must be empty.
pub fn unlisted_functions() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed: std::collections::BTreeSet<&str> = every_line().iter().map(|l| l.0).collect();
    let mut files = Vec::new();
    for (src, prefix) in SOURCES {
        let p = root.join(src);
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let f = e.unwrap().path();
                if f.extension().is_some_and(|x| x == "rs") {
                    files.push((f, *prefix));
                }
            }
        } else if p.is_file() {
            files.push((p, *prefix));
        }
    }
    let mut out = Vec::new();
    for (f, prefix) in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with(prefix)
                && !listed.contains(name.as_str())
                && !NOT_LOG_LINES.contains(&name.as_str())
            {
                out.push(format!("{}: {name}", f.display()));
            }
        }
    }
    out
}

/// A syslog line as rsyslog writes it on Debian 12 (RFC 3339 time) or traditionally.
pub fn syslog_line(text: &str, rfc3339: bool) -> String {
    if rfc3339 {
        format!("2026-11-30T14:03:12.345678+01:00 target portsentry[4242]: {text}")
    } else {
        format!("Nov 30 14:03:12 target portsentry[4242]: {text}")
    }
}
