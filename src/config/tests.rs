//! Whole-file tests of `parse`: the Debian-shaped fixture, Debian's own file (from the
//! environment), every 1.2 quirk with its warning, errors with line and key, hostile input.

use super::*;
use crate::config::mode::Mode;

const P: &str = "/etc/portsentry/portsentry.conf";

fn parse_str(text: &str) -> Parsed {
    parse(text.as_bytes(), Path::new(P))
}

/// The diagnostics as (severity, line, key) triples, for compact assertions.
fn shape(p: &Parsed) -> Vec<(Severity, Option<usize>, Option<&str>)> {
    p.diagnostics
        .iter()
        .map(|d| (d.severity, d.line, d.key.as_deref()))
        .collect()
}

fn only_warning(p: &Parsed, line: usize, key: &str) -> String {
    assert_eq!(
        shape(p),
        [(Severity::Warning, Some(line), Some(key))],
        "{:#?}",
        p.diagnostics
    );
    p.diagnostics[0].message.clone()
}

fn assert_debian_values(c: &Config) {
    assert_eq!(
        c.tcp_ports.as_deref(),
        Some(
            &[
                1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, 5742, 6667, 12345, 12346,
                20034, 27665, 31337, 32771, 32772, 32773, 32774, 40421, 49724, 54320
            ][..]
        )
    );
    assert_eq!(
        c.udp_ports.as_deref(),
        Some(
            &[
                1, 7, 9, 69, 161, 162, 513, 635, 640, 641, 700, 37444, 34555, 31335, 32770, 32771,
                32772, 32773, 32774, 31337, 54321
            ][..]
        )
    );
    assert_eq!((c.advanced_ports_tcp, c.advanced_ports_udp), (1024, 1024));
    assert_eq!(c.advanced_exclude_tcp, [113, 139]);
    assert_eq!(c.advanced_exclude_udp, [520, 138, 137, 67]);
    assert_eq!(
        c.ignore_file.as_deref(),
        Some(Path::new("/etc/portsentry/portsentry.ignore"))
    );
    assert_eq!(
        c.history_file.as_deref(),
        Some(Path::new("/var/lib/portsentry/portsentry.history"))
    );
    assert_eq!(
        c.blocked_file.as_deref(),
        Some(Path::new("/var/lib/portsentry/portsentry.blocked"))
    );
    assert!(!c.resolve_host);
    assert_eq!(
        (c.block_tcp, c.block_udp),
        (BlockMode::LogOnly, BlockMode::LogOnly)
    );
    assert_eq!(
        c.kill_route.as_deref(),
        Some("/sbin/route add -host $TARGET$ reject")
    );
    assert_eq!(c.kill_hosts_deny.as_deref(), Some("ALL: $TARGET$ : DENY"));
    assert_eq!(c.kill_run_cmd, None);
    assert!(!c.kill_run_cmd_first);
    assert_eq!(c.scan_trigger, 0);
    assert_eq!(c.port_banner, None);
    assert_eq!(c.hosts_deny_file, Path::new("/etc/hosts.deny"));
}

fn assert_clean_for_every_mode(c: &Config) {
    for m in Mode::ALL {
        let d = c.validate(&[m], Path::new(P));
        assert!(d.is_empty(), "{m}: {d:#?}");
    }
    assert!(c.validate(&Mode::ALL, Path::new(P)).is_empty());
}

#[test]
fn debian_shaped_fixture_parses_cleanly() {
    let p = parse(include_bytes!("testdata/debian-keys.conf"), Path::new(P));
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_debian_values(&p.config);
    assert_clean_for_every_mode(&p.config);
    assert!(p.config.is_present("ADVANCED_EXCLUDE_TCP"));
    assert!(!p.config.is_present("KILL_RUN_CMD"));
    assert_eq!(p.config.lines.get("TCP_PORTS"), Some(&8));
}

/// Debian's shipped file itself, from `PORTSENTRY_DEBIAN_CONF` (CI provides it; the file is
/// never copied into this repository).
#[test]
fn debian_shipped_file_parses_cleanly() {
    let Some(path) = std::env::var_os("PORTSENTRY_DEBIAN_CONF") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "PORTSENTRY_DEBIAN_CONF is not set under CI=true: CI must point it at Debian's \
                 /etc/portsentry/portsentry.conf (from `apt-get download portsentry`)"
            );
        }
        eprintln!("SKIPPED: set PORTSENTRY_DEBIAN_CONF to Debian's portsentry.conf to run this");
        return;
    };
    let path = PathBuf::from(path);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read PORTSENTRY_DEBIAN_CONF={}: {e}", path.display()));
    let p = parse(&bytes, &path);
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_debian_values(&p.config);
    assert_clean_for_every_mode(&p.config);
}

#[test]
fn every_key_end_to_end() {
    let p = parse_str(concat!(
        "TCP_PORTS=\"1,2-4\"\n",
        "UDP_PORTS = \"7\"\n",
        "ADVANCED_PORTS_TCP=\"2000\"\n",
        "ADVANCED_PORTS_UDP \"3000\"\n",
        "ADVANCED_EXCLUDE_TCP=\"113\"\n",
        "ADVANCED_EXCLUDE_UDP=\"\"\n",
        "IGNORE_FILE=\"/i\"\n",
        "HISTORY_FILE=\"/h\"\n",
        "BLOCKED_FILE=\"/b\"\n",
        "RESOLVE_HOST=\"1\"\n",
        "BLOCK_TCP=\"1\"\n",
        "BLOCK_UDP=\"2\"\n",
        "KILL_ROUTE=\"/sbin/iptables -I INPUT -s $TARGET$ -j DROP; echo '# ok'\"\n",
        "KILL_HOSTS_DENY=\"ALL: $TARGET$ : DENY\"\n",
        "KILL_RUN_CMD=\"/x $TARGET$ $PORT$ $MODE$\"\n",
        "KILL_RUN_CMD_FIRST=\"1\"\n",
        "SCAN_TRIGGER=\"2\"\n",
        "PORT_BANNER=\"** GO AWAY **\"\n",
        "HOSTS_DENY_FILE=\"/tmp/hosts.deny\"\n",
        "BLOCK_METHOD=\"nftables\"\n",
        "BLOCK_TIMEOUT=\"600\"\n",
        "BLOCK_SET_SIZE=\"2000000\"\n",
        "KILL_ROUTE_UNDO=\"\"\n",
        "BLOCK_FLUSH_ON_STOP=\"1\"\n",
        "BLOCK_RATE_LIMIT=\"30\"\n",
        "NEVER_BLOCK=\"192.0.2.123 2001:db8:5::/48\"\n",
        "BLOCK_PREFIX_BUDGET=\"8,2\"\n",
        "BLOCK_LONE_BUDGET=\"500,3000\"\n",
        "BLOCK_ICMP_SCTP=\"1\"\n",
        "KEEP_CAPABILITIES=\"CAP_NET_RAW\"\n",
        "METRICS_FILE=\"/var/lib/prometheus/node-exporter/portsentry.prom\"\n",
        "EVENTS_FILE=\"/var/log/portsentry/events.jsonl\"\n",
        "CROWDSEC_CREDENTIALS=\"/etc/portsentry/crowdsec-lapi.yaml\"\n",
        "CROWDSEC_BOUNCER_KEY_FILE=\"/etc/portsentry/crowdsec-bouncer.key\"\n",
        "CROWDSEC_BOUNCER_CERT_FILE=\"/etc/portsentry/crowdsec-bouncer.pem\"\n",
        "CROWDSEC_BOUNCER_CERT_KEY_FILE=\"/etc/portsentry/crowdsec-bouncer-key.pem\"\n",
        "CROWDSEC_LAPI_URL=\"http://192.0.2.1:8080/\"\n",
        "CROWDSEC_PULL_INTERVAL=\"2\"\n",
        "CROWDSEC_WIDEST_BAN=\"16,48\"\n",
        "CROWDSEC_BAN_DURATION=\"900\"\n",
        "CROWDSEC_SEND_LOG_ONLY=\"1\"\n",
    ));
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    let c = &p.config;
    assert_eq!(c.tcp_ports, Some(vec![1, 2, 3, 4]));
    assert_eq!(c.udp_ports, Some(vec![7]));
    assert_eq!((c.advanced_ports_tcp, c.advanced_ports_udp), (2000, 3000));
    assert_eq!(c.advanced_exclude_tcp, [113]);
    assert!(c.advanced_exclude_udp.is_empty() && c.is_present("ADVANCED_EXCLUDE_UDP"));
    assert_eq!(c.ignore_file.as_deref(), Some(Path::new("/i")));
    assert_eq!(c.history_file.as_deref(), Some(Path::new("/h")));
    assert_eq!(c.blocked_file.as_deref(), Some(Path::new("/b")));
    assert!(c.resolve_host && c.kill_run_cmd_first);
    assert_eq!(
        (c.block_tcp, c.block_udp),
        (BlockMode::Block, BlockMode::RunCmdOnly)
    );
    assert_eq!(
        c.kill_route.as_deref(),
        Some("/sbin/iptables -I INPUT -s $TARGET$ -j DROP; echo '# ok'")
    );
    assert_eq!(c.kill_hosts_deny.as_deref(), Some("ALL: $TARGET$ : DENY"));
    assert_eq!(c.kill_run_cmd.as_deref(), Some("/x $TARGET$ $PORT$ $MODE$"));
    assert_eq!(c.scan_trigger, 2);
    assert_eq!(c.port_banner.as_deref(), Some("** GO AWAY **"));
    assert_eq!(c.hosts_deny_file, Path::new("/tmp/hosts.deny"));
    assert_eq!(c.block_method, crate::config::BlockMethod::Nftables);
    assert_eq!((c.block_timeout, c.block_set_size), (600, 2_000_000));
    assert!(c.kill_route_undo.is_none() && c.block_flush_on_stop);
    assert_eq!(c.block_rate_limit, 30);
    assert_eq!(c.block_prefix_budget, Some((8, 2)));
    assert_eq!(c.block_lone_budget, Some((500, 3000)));
    assert!(c.block_icmp_sctp);
    assert_eq!(c.keep_capabilities, Some(vec![13]));
    assert_eq!(c.never_block.len(), 2);
    assert_eq!(c.fleet.widest_ban(), (16, 48));
    assert_eq!(
        c.metrics_file.as_deref(),
        Some(Path::new(
            "/var/lib/prometheus/node-exporter/portsentry.prom"
        ))
    );
    assert_eq!(
        c.events_file.as_deref(),
        Some(Path::new("/var/log/portsentry/events.jsonl"))
    );
    assert_eq!(c.lines.len(), KEYS.len());
    assert!(c.fleet.push() && c.fleet.pull() && c.fleet.send_log_only);
    assert_eq!(
        (c.fleet.pull_interval_s(), c.fleet.ban_duration_s(600)),
        (2, 900)
    );
    assert_eq!(
        c.fleet.bouncer_cert_key_file.as_deref(),
        Some(Path::new("/etc/portsentry/crowdsec-bouncer-key.pem"))
    );
    // Every key at once: the bouncer's key and certificate exclude each other, and the
    // credentials' url wins over CROWDSEC_LAPI_URL.
    let v = c.validate(&Mode::ALL, Path::new(P));
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0].key.as_deref(), Some("CROWDSEC_BOUNCER_CERT_FILE"));
    assert_eq!(v[1].key.as_deref(), Some("CROWDSEC_LAPI_URL"));
}

#[test]
fn defaults_when_empty() {
    let p = parse(b"", Path::new(P));
    assert!(p.diagnostics.is_empty());
    assert_eq!(p.config, Config::default());
    let d = Config::default();
    assert_eq!((d.advanced_ports_tcp, d.advanced_ports_udp), (1024, 1024));
    assert_eq!(d.block_tcp, BlockMode::LogOnly);
    assert_eq!(d.hosts_deny_file, Path::new("/etc/hosts.deny"));
}

#[test]
fn accepted_forms_without_warnings() {
    for line in [
        "TCP_PORTS=\"5\"",
        "TCP_PORTS = \"5\"",
        "TCP_PORTS  =\"5\"",
        "TCP_PORTS \"5\"",
        "TCP_PORTS=\"5\" # trailing text after the closing quote",
        "TCP_PORTS=\"5\"\r",
    ] {
        let p = parse_str(&format!("{line}\n"));
        assert!(p.diagnostics.is_empty(), "{line}: {:#?}", p.diagnostics);
        assert_eq!(p.config.tcp_ports, Some(vec![5]), "{line}");
    }
    // `#` and `;` inside quotes are kept; comments and unknown keys are silent.
    let p = parse_str(concat!(
        "# KILL_ROUTE=\"commented\"\n",
        "FOO_BAR=\"1\"\n",
        "TCP_PORTZ=\"x\"\n",
        "; not a comment in 1.2, but nothing reads it\n",
        "KILL_RUN_CMD_FIRST=\"1\"\n",
        "KILL_ROUTE=\"a; b # c\"\n",
    ));
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_eq!(p.config.kill_route.as_deref(), Some("a; b # c"));
    // KILL_RUN_CMD_FIRST does not satisfy a lookup of KILL_RUN_CMD (§2.1).
    assert_eq!(p.config.kill_run_cmd, None);
    assert!(p.config.kill_run_cmd_first);
}

#[test]
fn cross_key_hijack_keeps_1_2_meaning_and_warns() {
    let p = parse_str("UDP_PORTS=\"1,7\" # see TCP_PORTS\nTCP_PORTS=\"98\"\n");
    assert_eq!(p.config.tcp_ports, Some(vec![1, 7]));
    assert_eq!(p.config.udp_ports, Some(vec![1, 7]));
    assert_eq!(
        shape(&p),
        [
            (Severity::Warning, Some(1), Some("TCP_PORTS")),
            (Severity::Warning, Some(2), Some("TCP_PORTS")),
        ]
    );
    let m = &p.diagnostics[0].message;
    assert!(
        m.contains("this is a UDP_PORTS line") && m.contains("byte 10"),
        "{m}"
    );
    assert!(p.diagnostics[1].message.contains("duplicate key ignored"));
    assert_eq!(p.config.lines.get("TCP_PORTS"), Some(&1));

    // The real line first: no hijack, and the later mention is harmless.
    let p = parse_str("TCP_PORTS=\"98\"\nUDP_PORTS=\"1,7\" # see TCP_PORTS\n");
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_eq!(p.config.tcp_ports, Some(vec![98]));

    // Any line with '=' or ' ' at offset len(KEY) that mentions the key.
    let p = parse_str("something TCP_PORTS=\"5\"\n");
    assert_eq!(p.config.tcp_ports, Some(vec![5]));
    assert!(only_warning(&p, 1, "TCP_PORTS").contains("does not start with the key"));

    let p = parse_str("BLOCK_UDP=\"1\" # not BLOCK_TCP\n");
    assert_eq!(
        (p.config.block_tcp, p.config.block_udp),
        (BlockMode::Block, BlockMode::Block)
    );
    only_warning(&p, 1, "BLOCK_TCP");
}

#[test]
fn tab_after_key_is_not_read_and_warns() {
    let p = parse_str("UDP_PORTS\t=\"1,7\"\n");
    assert_eq!(p.config.udp_ports, None);
    assert!(only_warning(&p, 1, "UDP_PORTS").contains("TAB after the key"));
    let d = p.config.validate(&[Mode::Udp], Path::new(P));
    assert!(
        d.iter()
            .any(|d| d.key.as_deref() == Some("UDP_PORTS") && d.severity == Severity::Error)
    );

    let p = parse_str("UDP_PORTS:\"1\"\nUDP_PORTS\n");
    assert_eq!(p.config.udp_ports, None);
    assert_eq!(p.diagnostics.len(), 2);
    assert!(p.diagnostics[0].message.contains("followed by ':'"));
    assert!(p.diagnostics[1].message.contains("no value"));
}

#[test]
fn missing_quotes_make_the_key_absent_even_with_a_later_good_line() {
    // VERIFIED in 1.2: `BLOCK_TCP=1` then `BLOCK_TCP="1"` leaves blocking off (§2.1 rule 3).
    let p = parse_str("BLOCK_TCP=1\nBLOCK_TCP=\"1\"\n");
    assert_eq!(p.config.block_tcp, BlockMode::LogOnly);
    assert!(!p.config.is_present("BLOCK_TCP"));
    assert_eq!(
        shape(&p),
        [
            (Severity::Warning, Some(1), Some("BLOCK_TCP")),
            (Severity::Warning, Some(2), Some("BLOCK_TCP")),
        ]
    );
    assert!(p.diagnostics[0].message.starts_with("quotes missing"));
    assert!(p.diagnostics[1].message.contains("has no quotes"));
}

#[test]
fn missing_closing_quote_reads_to_end_of_line() {
    for text in [
        "KILL_RUN_CMD=\"/bin/x $TARGET$\n",
        "KILL_RUN_CMD=\"/bin/x $TARGET$\r\n",
        "KILL_RUN_CMD=\"/bin/x $TARGET$",
    ] {
        let p = parse_str(text);
        assert_eq!(p.config.kill_run_cmd.as_deref(), Some("/bin/x $TARGET$"));
        assert!(only_warning(&p, 1, "KILL_RUN_CMD").contains("missing closing quote"));
    }
}

#[test]
fn value_cut_at_tab_or_non_ascii_warns() {
    let p = parse_str("\nPORT_BANNER=\"GO\tAWAY\"\n");
    assert_eq!(p.config.port_banner.as_deref(), Some("GO"));
    let m = only_warning(&p, 2, "PORT_BANNER");
    assert!(
        m.contains("a TAB (column 16)") && m.contains("\"GO\""),
        "{m}"
    );

    let p = parse(b"PORT_BANNER=\"caf\xe9\"\n", Path::new(P));
    assert_eq!(p.config.port_banner.as_deref(), Some("caf"));
    assert!(only_warning(&p, 1, "PORT_BANNER").contains("non-ASCII byte 0xE9"));

    let p = parse(b"KILL_ROUTE=\"r $TARGET$\x00 x\"\n", Path::new(P));
    assert_eq!(p.config.kill_route.as_deref(), Some("r $TARGET$"));
    assert!(only_warning(&p, 1, "KILL_ROUTE").contains("NUL"));
}

#[test]
fn duplicate_key_first_wins() {
    let p = parse_str("SCAN_TRIGGER=\"1\"\n#SCAN_TRIGGER=\"3\"\nSCAN_TRIGGER = \"2\"\n");
    assert_eq!(p.config.scan_trigger, 1);
    assert!(only_warning(&p, 3, "SCAN_TRIGGER").contains("line 1"));
}

#[test]
fn indented_key_is_ignored_with_a_warning() {
    // VERIFIED in 1.2: `  TCP_PORTS="98"` was ignored.
    let p = parse_str("  TCP_PORTS=\"98\"\n\tUDP_PORTS=\"9\"\n");
    assert_eq!(
        (p.config.tcp_ports.clone(), p.config.udp_ports.clone()),
        (None, None)
    );
    assert_eq!(
        shape(&p),
        [
            (Severity::Warning, Some(1), Some("TCP_PORTS")),
            (Severity::Warning, Some(2), Some("UDP_PORTS")),
        ]
    );
    assert!(p.diagnostics[0].message.contains("indented key"));

    // Ten spaces put a space at offset 9: 1.2 does read this one.
    let p = parse_str("          TCP_PORTS=\"98\"\n");
    assert_eq!(p.config.tcp_ports, Some(vec![98]));
    assert!(only_warning(&p, 1, "TCP_PORTS").contains("indented"));
}

#[test]
fn text_before_the_opening_quote_warns() {
    let p = parse_str("TCP_PORTS=1,2 # \"3\"\n");
    assert_eq!(p.config.tcp_ports, Some(vec![3]));
    assert!(only_warning(&p, 1, "TCP_PORTS").contains("\"1,2 #\""));
}

#[test]
fn long_lines_are_split_like_fgets() {
    // The banner is cut at the 1023-byte boundary; the rest is a new (keyless) line.
    let text = format!("PORT_BANNER=\"{}\"\nSCAN_TRIGGER=\"1\"\n", "x".repeat(2000));
    let p = parse_str(&text);
    assert_eq!(
        p.config.port_banner.as_ref().map(String::len),
        Some(1023 - 13)
    );
    assert_eq!(p.config.scan_trigger, 1);
    assert_eq!(
        shape(&p),
        [
            (Severity::Warning, Some(1), Some("PORT_BANNER")),
            (Severity::Warning, Some(1), Some("PORT_BANNER")),
        ]
    );
    assert!(
        p.diagnostics
            .iter()
            .any(|d| d.message.contains("longer than 1023 bytes"))
    );

    // A comment's 1024th byte starts a line 1.2 reads.
    let text = format!("#{}TCP_PORTS=\"7\"\n", "c".repeat(1022));
    let p = parse_str(&text);
    assert_eq!(p.config.tcp_ports, Some(vec![7]));
    assert_eq!(shape(&p), [(Severity::Warning, Some(1), None)]);
}

#[test]
fn errors_name_file_line_and_key_and_all_are_collected() {
    let p = parse_str(concat!(
        "# comment\n",
        "TCP_PORTS=\"1,70000,abc,5-3\"\n",
        "BLOCK_TCP=\"3\"\n",
        "RESOLVE_HOST=\"yes\"\n",
        "SCAN_TRIGGER=\"-1\"\n",
        "ADVANCED_PORTS_UDP=\"0\"\n",
        "BLOCKED_FILE=\"\"\n",
    ));
    let lines: Vec<String> = p.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("error: {P}:2: TCP_PORTS: port out of range 1-65535: \"70000\""),
            format!("error: {P}:2: TCP_PORTS: not a port number: \"abc\""),
            format!("error: {P}:2: TCP_PORTS: reversed port range: \"5-3\""),
            format!("error: {P}:3: BLOCK_TCP: must be 0, 1 or 2, got \"3\""),
            format!("error: {P}:4: RESOLVE_HOST: not an integer, got \"yes\""),
            format!("error: {P}:5: SCAN_TRIGGER: must be an integer >= 0, got \"-1\""),
            format!("error: {P}:6: ADVANCED_PORTS_UDP: must be a port number 1-65535, got \"0\""),
            format!("error: {P}:7: BLOCKED_FILE: empty path"),
        ]
    );
    assert!(has_errors(&p.diagnostics));
    assert_eq!(p.config.tcp_ports, Some(vec![1]));
}

#[test]
fn display_and_has_errors() {
    let mut d = Diagnostic {
        path: PathBuf::from("/x.conf"),
        line: None,
        key: None,
        severity: Severity::Warning,
        message: "m".to_string(),
    };
    assert_eq!(d.to_string(), "warning: /x.conf: m");
    assert!(!has_errors(std::slice::from_ref(&d)));
    d.line = Some(3);
    assert_eq!(d.to_string(), "warning: /x.conf:3: m");
    d.key = Some("K".to_string());
    d.severity = Severity::Error;
    assert_eq!(d.to_string(), "error: /x.conf:3: K: m");
    assert!(has_errors(&[d]));
    assert!(!has_errors(&[]));
}

#[test]
fn hostile_input_never_panics() {
    let crlf =
        "TCP_PORTS=\"1\"\r\nIGNORE_FILE=\"/i\"\r\nHISTORY_FILE=\"/h\"\r\nBLOCKED_FILE=\"/b\"\r\n";
    let p = parse_str(crlf);
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    assert_eq!(p.config.blocked_file.as_deref(), Some(Path::new("/b")));

    let mut huge = b"TCP_PORTS=\"".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 300_000));
    huge.extend_from_slice(b"\"\n\0\0\xff\xfe\n");
    let p = parse(&huge, Path::new(P));
    assert!(has_errors(&p.diagnostics));

    for input in [
        &b"\0"[..],
        b"\"",
        b"=",
        b"TCP_PORTS",
        b"TCP_PORTS=",
        b"TCP_PORTS=\"",
        b"\xff\xfe\xfd\n\r\r\r",
        b"TCP_PORTS=\"\xff",
        b"#",
        b"\n\n\n",
    ] {
        let p = parse(input, Path::new(P));
        let _ = p.config.validate(&Mode::ALL, Path::new(P));
    }
}

use crate::testrng::Rng;

#[test]
fn fuzz_parse_and_validate_never_panic() {
    const PIECES: &[&[u8]] = &[
        b"TCP_PORTS",
        b"UDP_PORTS",
        b"BLOCK_TCP",
        b"BLOCK_UDP",
        b"KILL_RUN_CMD",
        b"KILL_RUN_CMD_FIRST",
        b"ADVANCED_PORTS_TCP",
        b"ADVANCED_EXCLUDE_UDP",
        b"PORT_BANNER",
        b"SCAN_TRIGGER",
        b"BLOCKED_FILE",
        b"HOSTS_DENY_FILE",
        b"=",
        b" ",
        b"  ",
        b"\"",
        b"\t",
        b"\n",
        b"\r\n",
        b"#",
        b",",
        b"-",
        b"0",
        b"1",
        b"2",
        b"65535",
        b"70000",
        b"\0",
        b"\xff",
        b"$TARGET$",
        b"+",
        b"99999999999999999999999",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Counters that prove the generator reaches the interesting paths.
    let (mut with_keys, mut with_warnings, mut with_errors) = (0, 0, 0);
    for _ in 0..1500 {
        let mut input = Vec::new();
        for _ in 0..rng.below(25) {
            // Half the lines are shaped like KEY<sep>"value", so lookups really happen.
            if rng.below(2) == 0 {
                let k = KEYS[rng.below(KEYS.len())].name.as_bytes();
                let sep: &[u8] = [&b"="[..], b" = ", b" ", b"\t", b"", b"  "][rng.below(6)];
                input.extend_from_slice(k);
                input.extend_from_slice(sep);
                if rng.below(8) != 0 {
                    input.push(b'"');
                }
            }
            for _ in 0..rng.below(8) {
                match rng.below(10) {
                    0 => input.push(u8::try_from(rng.next() & 0xff).unwrap_or(0)),
                    1 if rng.below(30) == 0 => input.extend(std::iter::repeat_n(b'x', 1100)),
                    _ => input.extend_from_slice(PIECES[rng.below(PIECES.len())]),
                }
            }
            if rng.below(8) != 0 {
                input.extend_from_slice(b"\"\n");
            }
        }
        let p = parse(&input, Path::new(P));
        let physical_lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
        let mut diags = p.diagnostics.clone();
        diags.extend(p.config.validate(&Mode::ALL, Path::new(P)));
        for d in &diags {
            assert_eq!(d.path, Path::new(P));
            assert!(
                d.line.is_none_or(|l| (1..=physical_lines).contains(&l)),
                "{d:?}"
            );
            let s = d.to_string();
            assert!(
                s.starts_with("warning: ") || s.starts_with("error: "),
                "{s}"
            );
        }
        assert!(p.diagnostics.windows(2).all(|w| w[0].line <= w[1].line));
        assert!(
            p.config
                .lines
                .values()
                .all(|&l| (1..=physical_lines).contains(&l))
        );
        for ports in [&p.config.tcp_ports, &p.config.udp_ports]
            .into_iter()
            .flatten()
        {
            assert!(!ports.contains(&0));
        }
        assert!(p.config.advanced_ports_tcp >= 1 && p.config.advanced_ports_udp >= 1);
        with_keys += usize::from(!p.config.lines.is_empty());
        with_errors += usize::from(has_errors(&p.diagnostics));
        with_warnings += usize::from(
            p.diagnostics
                .iter()
                .any(|d| d.severity == Severity::Warning),
        );
    }
    assert!(
        with_keys > 1000 && with_warnings > 1000 && with_errors > 500,
        "weak fuzz coverage: {with_keys} {with_warnings} {with_errors}"
    );
}

/// Found by the `config` fuzz target: the text between the key and the opening quote was
/// quoted raw, so a DEL, ESC or C1 byte in the file reached the terminal and syslog.
#[test]
fn regression_text_before_quote_is_escaped() {
    let p = parse(
        b"RESOLVE_HOST=ab\x7f\x1b[2J\xc2\x9b\"1\"\n",
        Path::new("/etc/portsentry/portsentry.conf"),
    );
    let m = only_warning(&p, 1, "RESOLVE_HOST");
    assert_eq!(
        m,
        "text before the opening quote is ignored: \"ab\\x7f\\x1b[2J\\xc2\\x9b\""
    );
    assert!(!p.diagnostics[0].to_string().chars().any(char::is_control));
}
