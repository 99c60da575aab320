//! Every line the daemon can write to syslog, generated from the functions that format them,
//! each with the logcheck class it must fall in. One place: the logcheck and logwatch tests
//! read it, and [`unlisted_functions`] fails when a log-line function is added without being
//! listed here (so a new line cannot go out without a rule).
//!
//! Where the functions live is in [`SOURCES`] (every `.rs` file of `src/observe/report/`).
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

use portsentry::block::nft::Set;
use portsentry::capture::classify::{ScanKind, TcpScanType};
use portsentry::config::mode::{Mode, Proto};
use portsentry::engine::Action;
use portsentry::observe::report::{self as r, Family};

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

/// Files (or folders) holding log-line functions, and which `pub fn`s there are log lines
/// (a name prefix, or "" for all). Functions that are not log lines are in [`NOT_LOG_LINES`].
pub const SOURCES: &[(&str, &str)] = &[("src/observe/report", "")];

/// `pub fn`s in [`SOURCES`] that do not produce a syslog line of their own.
pub const NOT_LOG_LINES: &[&str] = &[
    "sanitize_name",     // a helper of the lines
    "tcp_scan_text",     // part of scan_detected's line
    "scan_text",         // part of scan_detected's line
    "other_probe_text",  // part of other_probe_detected's line
    "history_line",      // a file line (tested by the fail2ban tests), not syslog
    "blocked_line_host", // reads a file line
    "event_line",        // words an engine event with one of the functions listed here
    "nft_table_reason",  // the reason inside nft_table_failed's line
    "systemd_status",    // systemd's STATUS= text, not a syslog line
    "status_selected",
    "report_selected",
    "socket_path",
    "period",
    "lapi_text", // escapes and clips the LAPI's strings inside the fleet lines
    "fleet_plain_http_text", // fleet_plain_http's text, also printed by --check
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

    // src/observe/report/startup.rs
    add("starting", Routine, r::starting());
    add("now_active", Routine, r::now_active());
    let [sec, adm] = r::shutting_down();
    add("shutting_down", Security, sec);
    add("shutting_down", Routine, adm);
    add(
        "config_missing_mandatory_option",
        Security,
        r::config_missing_mandatory_option(),
    );
    add("could_not_daemonize", Security, r::could_not_daemonize());
    add("could_not_enter_mode", Security, r::could_not_enter_mode());
    add(
        "cannot_delete_blocked_file",
        Security,
        r::cannot_delete_blocked_file(blocked),
    );
    for p in [Proto::Tcp, Proto::Udp] {
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
    add("socket_in_use", Security, r::socket_in_use(143));
    for m in [Mode::Stcp, Mode::Atcp, Mode::Sudp, Mode::Audp] {
        add("port_now_in_use", Security, r::port_now_in_use(m, 8080));
    }
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
    add("reloading", Routine, r::reloading());
    add("reloaded", Routine, r::reloaded());
    add(
        "reload_rejected",
        Security,
        r::reload_rejected(
            "error: /etc/portsentry/portsentry.conf:12: BLOCK_TCP: must be 0, 1 or 2, got \"3\"",
        ),
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
        "cannot_open_ignore_file",
        Security,
        r::cannot_open_ignore_file(),
    );
    add(
        "config_problem",
        System,
        r::config_problem(format!(
            "warning: {}:4: TCP_PORTS: a tab follows the key; 1.2 reads the line anyway",
            cfg.display()
        )),
    );
    add(
        "config_problem",
        Security,
        r::config_problem(format!(
            "error: {}:12: BLOCK_TCP: must be 0, 1 or 2, got \"3\"",
            cfg.display()
        )),
    );
    add(
        "error",
        Security,
        r::error("cannot write pid file /run/portsentry.pid: Read-only file system (os error 30)"),
    );
    add(
        "poll_failed",
        Security,
        r::poll_failed("Bad file descriptor (os error 9)"),
    );

    // src/observe/report/detection.rs
    let kinds = [
        ScanKind::Tcp(TcpScanType::Null),
        ScanKind::Tcp(TcpScanType::Xmas),
        ScanKind::Tcp(TcpScanType::Fin),
        ScanKind::Tcp(TcpScanType::Syn),
        ScanKind::Tcp(TcpScanType::Unknown { flags: 0x03 }),
        ScanKind::Tcp(TcpScanType::Ack),
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
    for k in portsentry::capture::classify::OtherProbe::ALL {
        for ip in [v4(), v6()] {
            add(
                "other_probe_detected",
                Security,
                r::other_probe_detected(k, "", ip, if k.is_sctp() { 80 } else { 0 }),
            );
        }
    }
    add("accept_failed", Security, r::accept_failed(143));
    add(
        "could_not_accept_udp",
        Security,
        r::could_not_accept_udp(143),
    );
    add(
        "hits_suppressed",
        Security,
        r::hits_suppressed(41, v4(), 60),
    );
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

    // src/observe/report/responses.rs
    for ip in [v4(), v6()] {
        add(
            "blocked_via_wrappers",
            Security,
            r::blocked_via_wrappers(ip, &format!("ALL: {ip}")),
        );
        add(
            "unblocked_via_wrappers",
            Security,
            r::unblocked_via_wrappers(ip, &format!("ALL: {ip}")),
        );
        add("not_in_hosts_deny", Security, r::not_in_hosts_deny(ip));
        add(
            "hosts_deny_remove_failed",
            Security,
            r::hosts_deny_remove_failed(
                ip,
                Path::new("/etc/hosts.deny"),
                &"Permission denied (os error 13)",
            ),
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
    for m in Mode::ALL {
        for ip in [v4(), v6()] {
            add("already_blocked", Security, r::already_blocked(m, "", ip));
            add(
                "could_not_block",
                Security,
                r::could_not_block(m, "scanner.example", ip),
            );
        }
    }
    for a in [Action::Route, Action::HostsDeny] {
        add("no_target_variable", Security, r::no_target_variable(a));
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
    add(
        "already_in_hosts_deny",
        Security,
        r::already_in_hosts_deny(v4()),
    );
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
    add(
        "refusing_to_block",
        Security,
        r::refusing_to_block(v4(), "an address of this host"),
    );
    add(
        "blocked_memory_full",
        Security,
        r::blocked_memory_full(1_000_000),
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

    // src/observe/report/extensions.rs
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
    add("blocks_refused", Security, r::blocks_refused(1, 10));
    add("blocks_shed", Security, r::blocks_shed(9000, 10, 4096));
    add("blocks_shed", Security, r::blocks_shed(1, 10, 4096));
    add(
        "nft_evicted_quietly",
        Security,
        r::nft_evicted_quietly(1, 10),
    );
    add(
        "nft_evicted_quietly",
        Security,
        r::nft_evicted_quietly(350, 10),
    );
    add(
        "block_budget_spent",
        Security,
        r::block_budget_spent("2001:db8:f::".parse().unwrap(), 64, 16, 4),
    );
    add(
        "block_refused_budget",
        Security,
        r::block_refused_budget(
            "scanner.example",
            "2001:db8:f::7".parse().unwrap(),
            "2001:db8:f::".parse().unwrap(),
            64,
        ),
    );
    add(
        "budget_refusals",
        Security,
        r::budget_refusals(5, 10, &[("198.51.100.0".parse().unwrap(), 24, 5)], 0),
    );
    add(
        "budget_refusals",
        Security,
        r::budget_refusals(9, 10, &[("198.51.100.0".parse().unwrap(), 24, 5)], 4),
    );
    add(
        "lone_budget_spent",
        Security,
        r::lone_budget_spent(1000, 6000),
    );
    add(
        "block_refused_lone",
        Security,
        r::block_refused_lone("scanner.example", "198.51.100.7".parse().unwrap()),
    );
    add("lone_refusals", Security, r::lone_refusals(1, 10));
    add("lone_refusals", Security, r::lone_refusals(20000, 10));
    add(
        "resolve_timed_out",
        Security,
        r::resolve_timed_out(v4(), 1000, 30),
    );
    add(
        "capability_missing",
        Security,
        r::capability_missing(
            "CAP_NET_ADMIN",
            "BLOCK_METHOD=\"nftables\" and KILL_ROUTE cannot block",
        ),
    );
    for ip in [v4(), v6()] {
        add("nft_blocked", Security, r::nft_blocked(ip, 0));
        add("nft_blocked", Security, r::nft_blocked(ip, 3600));
        add(
            "nft_add_failed",
            Security,
            r::nft_add_failed(ip, "No space left on device"),
        );
        add(
            "nft_del_failed",
            Security,
            r::nft_del_failed(ip, "netlink: Operation not permitted"),
        );
        add("nft_evicted", Security, r::nft_evicted(ip, ip, 2, 4));
        add(
            "undo_run",
            Security,
            r::undo_run(ip, "/sbin/ip route del blackhole 198.51.100.2"),
        );
        add("block_expired", Security, r::block_expired(ip, Mode::Stcp));
    }
    for s in Set::ALL {
        add("nft_set_full", Security, r::nft_set_full(s, 1_048_576));
        add("nft_set_room", Routine, r::nft_set_room(s));
    }
    add("nft_ready", Routine, r::nft_ready(3));
    add("nft_ready", Routine, r::nft_ready(1));
    add("nft_blocks_reread", Routine, r::nft_blocks_reread(3));
    add("nft_blocks_reread", Routine, r::nft_blocks_reread(1));
    add(
        "nft_table_failed",
        Security,
        r::nft_table_failed("list", "No such file or directory"),
    );

    // src/observe/report/extensions.rs: the status socket, METRICS_FILE and EVENTS_FILE
    use portsentry::observe::report as i;
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
    // src/observe/report/fleet.rs: the CrowdSec LAPI link (issue 12)
    use portsentry::observe::report::Side;
    let lapi = "http://192.0.2.10:8080";
    let creds = Path::new("/etc/portsentry/crowdsec-lapi.yaml");
    let key = Path::new("/etc/portsentry/crowdsec-bouncer.key");
    let spool = Path::new("/var/lib/portsentry/crowdsec.spool");
    add(
        "fleet_started",
        Routine,
        r::fleet_started(lapi, true, true, 3),
    );
    add(
        "fleet_started",
        Routine,
        r::fleet_started(lapi, true, false, 0),
    );
    add(
        "fleet_started",
        Routine,
        r::fleet_started(lapi, true, false, 1),
    );
    add(
        "fleet_started",
        Routine,
        r::fleet_started(lapi, false, true, 0),
    );
    for side in [Side::Push, Side::Pull] {
        add(
            "fleet_link_lost",
            System,
            r::fleet_link_lost(side, lapi, "Connection refused (os error 111)", 0),
        );
        add(
            "fleet_link_lost",
            System,
            r::fleet_link_lost(side, lapi, "HTTP 500: database is locked", 2),
        );
        add(
            "fleet_link_regained",
            System,
            r::fleet_link_regained(side, lapi, 31_000, 200, 1),
        );
    }
    add(
        "fleet_login_refused",
        Security,
        r::fleet_login_refused(lapi, "web1", creds, 401, "incorrect Username or Password"),
    );
    add(
        "fleet_key_refused",
        Security,
        r::fleet_key_refused(lapi, key, 403),
    );
    for side in [Side::Push, Side::Pull] {
        add(
            "fleet_cert_refused",
            Security,
            r::fleet_cert_refused(
                side,
                lapi,
                "the LAPI refused the client certificate /etc/portsentry/agent.pem (CN web1, OU agent-ou) in the TLS handshake (alert BadCertificate): it expired on 2026-12-07T20:26:18Z",
            ),
        );
    }
    add(
        "fleet_batch_refused",
        Security,
        r::fleet_batch_refused(lapi, 7, 422, "bad request"),
    );
    add(
        "fleet_spool_full",
        Security,
        r::fleet_spool_full(5, 32 << 20),
    );
    add("fleet_spool_torn", System, r::fleet_spool_torn(25));
    add("fleet_spool_corrupt", Security, r::fleet_spool_corrupt(2));
    add(
        "fleet_spool_set_aside",
        Security,
        r::fleet_spool_set_aside(spool, &spool.with_extension("spool.bad")),
    );
    add(
        "fleet_spool_write_failed",
        Security,
        r::fleet_spool_write_failed(spool, "No space left on device (os error 28)", 3),
    );
    add(
        "fleet_spool_compact_failed",
        Security,
        r::fleet_spool_compact_failed(spool, "Read-only file system (os error 30)"),
    );
    add(
        "fleet_client_failed",
        Security,
        r::fleet_client_failed(lapi, creds, "ca_cert_path holds no PEM certificate"),
    );
    add("fleet_recovered", System, r::fleet_recovered(3, 2));
    for whole in [true, false] {
        add(
            "fleet_not_applied",
            Security,
            r::fleet_not_applied(
                4,
                "192.0.2.0/24",
                "manual 'ban' from 'cscli'",
                "192.0.2.1 is an address of this host",
                whole,
            ),
        );
    }
    add(
        "fleet_apply_failed",
        Security,
        r::fleet_apply_failed("Error: Could not process rule: No such file or directory"),
    );
    add(
        "fleet_grouped",
        Security,
        r::fleet_grouped(9990, 10, &[(("2001:db8:3::".parse().unwrap(), 64), 9990)]),
    );
    add("fleet_pull_stopped", System, r::fleet_pull_stopped(12));
    // Issues 20 and 24: the pace of the pulls, refused decisions, the LAPI's name, plain http.
    add(
        "fleet_pull_slow",
        System,
        r::fleet_pull_slow(lapi, 1_250, 4_000, 1_000),
    );
    add(
        "fleet_pull_fast",
        System,
        r::fleet_pull_fast(lapi, 40, 1_000),
    );
    add(
        "fleet_refused",
        Security,
        r::fleet_refused(
            17,
            "0.0.0.0/0",
            "x\n\u{1b}[2J",
            "wider than /8 (CROWDSEC_WIDEST_BAN)",
        ),
    );
    add(
        "fleet_refused_more",
        Security,
        r::fleet_refused_more(99_980, 21, 100_000),
    );
    add(
        "fleet_stream_skipped",
        Security,
        r::fleet_stream_skipped(lapi, 1_000, 200_001, 100_000),
    );
    add(
        "fleet_lapi_unresolved",
        Security,
        r::fleet_lapi_unresolved("lapi.test", "Name or service not known"),
    );
    add(
        "fleet_lapi_resolved",
        System,
        r::fleet_lapi_resolved("lapi.test", &[v4(), v6()]),
    );
    add(
        "fleet_plain_http",
        Security,
        r::fleet_plain_http(lapi, "the url of /etc/portsentry/crowdsec-lapi.yaml"),
    );
    add(
        "fleet_thread_failed",
        Security,
        r::fleet_thread_failed("panicked at src/sys/fleet/pull.rs:1:1"),
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
