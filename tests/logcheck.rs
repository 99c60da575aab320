//! The shipped logcheck rules (`debian/logcheck/`) against every line the daemon can write
//! (`common::loglines`), checked with logcheck's own `logcheck-test`; and Debian's stock
//! logwatch `portsentry` service script over our syslog output.
//!
//! Needs Debian's logcheck and logwatch packages (installed by .ci/run). Without them the
//! tests say so loudly, and fail under CI=true.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::loglines::{self, Class};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(test: &str, tool: &str) -> bool {
    common::have_tool(test, tool, "apt-get install logcheck logwatch")
}

#[test]
fn every_log_line_function_is_listed() {
    let missing = loglines::unlisted_functions();
    assert!(
        missing.is_empty(),
        "log-line functions without an entry in tests/common/loglines.rs (give each its \
         logcheck class, and a rule in debian/logcheck/ if needed):\n{}",
        missing.join("\n")
    );
}

/// The lines of `log` that `rules` matches, as `logcheck-test` prints them.
fn matched(log: &Path, rules: &Path) -> BTreeSet<String> {
    let o = Command::new("logcheck-test")
        .arg("-q")
        .arg("-l")
        .arg(log)
        .arg("-r")
        .arg(rules)
        .output()
        .expect("logcheck-test runs");
    // grep's exit status 1 means "no line matched", which is a valid answer here.
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "logcheck-test failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn logcheck_rules_put_every_line_in_its_section() {
    if !have(
        "logcheck_rules_put_every_line_in_its_section",
        "/usr/bin/logcheck-test",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let lines = loglines::every_line();
    let mut text = String::new();
    let mut expect = Vec::new();
    for (f, class, msg) in &lines {
        for rfc in [false, true] {
            let l = loglines::syslog_line(msg, rfc);
            text.push_str(&l);
            text.push('\n');
            // logcheck strips trailing blanks before matching (1.2's "exclude port: 113 ").
            expect.push((*f, *class, l.trim_end().to_string()));
        }
    }
    std::fs::write(&log, text).unwrap();
    let violations = matched(
        &log,
        &root().join("debian/logcheck/violations.d/portsentry"),
    );
    let ignored = matched(
        &log,
        &root().join("debian/logcheck/ignore.d.server/portsentry"),
    );
    let mut wrong = Vec::new();
    for (f, class, l) in &expect {
        let got = match (violations.contains(l), ignored.contains(l)) {
            (true, _) => Class::Security,
            (false, true) => Class::Routine,
            (false, false) => Class::System,
        };
        if got != *class {
            wrong.push(format!(
                "{f}: expected {class:?}, the rules give {got:?}: {l}"
            ));
        }
        if *class == Class::Security && ignored.contains(l) {
            wrong.push(format!(
                "{f}: a security event must not be in ignore.d.server: {l}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Sanity: the test saw all three sections, and lines of other programs stay untouched.
    for c in [Class::Security, Class::Routine, Class::System] {
        assert!(lines.iter().any(|l| l.1 == c));
    }
    std::fs::write(
        &log,
        "Nov 30 14:03:12 target sshd[1]: attackalert: not ours\nNov 30 14:03:12 target portsentry-x[1]: adminalert: PortSentry is now active and listening.\n",
    )
    .unwrap();
    assert!(
        matched(
            &log,
            &root().join("debian/logcheck/violations.d/portsentry")
        )
        .is_empty()
    );
    assert!(
        matched(
            &log,
            &root().join("debian/logcheck/ignore.d.server/portsentry")
        )
        .is_empty()
    );
}

#[test]
fn stock_logwatch_lists_every_scan_kind_v4_and_v6_and_the_blocks() {
    let script = "/usr/share/logwatch/scripts/services/portsentry";
    if !have(
        "stock_logwatch_lists_every_scan_kind_v4_and_v6_and_the_blocks",
        script,
    ) {
        return;
    }
    use portsentry::classify::{ScanKind, TcpScanType as T};
    use portsentry::report as r;
    let kinds = [
        ScanKind::Tcp(T::Null),
        ScanKind::Tcp(T::Xmas),
        ScanKind::Tcp(T::Fin),
        ScanKind::Tcp(T::Syn),
        ScanKind::Tcp(T::Ack),
        ScanKind::Tcp(T::Maimon),
        ScanKind::Tcp(T::SynRst),
        ScanKind::Tcp(T::All),
        ScanKind::Udp,
    ];
    let v4: std::net::IpAddr = "198.51.100.2".parse().unwrap();
    let v6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
    let mut msgs = vec![
        r::starting(),
        r::going_into_stealth_listen_mode(portsentry::mode::Proto::Tcp, 22),
    ];
    for (i, k) in kinds.iter().enumerate() {
        msgs.push(r::scan_detected(*k, "", v4, 100 + i as u16));
        msgs.push(r::scan_detected(*k, "", v6, 200 + i as u16));
    }
    for k in portsentry::classify::OtherProbe::ALL {
        msgs.push(r::other_probe_detected(k, "", v4, 80));
    }
    msgs.push(r::now_active());
    msgs.push(r::blocked_via_route(
        v4,
        "/sbin/ip route add blackhole 198.51.100.2",
    ));
    msgs.push(r::blocked_via_wrappers(v6, "ALL: [2001:db8::2]"));
    msgs.push(r::nft_blocked(v6, 3600));
    msgs.push(r::already_blocked(portsentry::mode::Mode::Stcp, "", v4));
    let log: String = msgs
        .iter()
        .map(|m| loglines::syslog_line(m, false) + "\n")
        .collect();
    // What logwatch runs for the service: keep our lines, strip the headers, the script.
    let run = |detail: &str| -> String {
        let shared = "/usr/share/logwatch/scripts/shared";
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "perl {shared}/onlyservice portsentry | perl {shared}/removeheaders | perl {script}"
            ))
            .env("PERL5LIB", "/usr/share/logwatch/lib")
            .env("LOGWATCH_DETAIL_LEVEL", detail)
            .env("LOGWATCH_NUMERIC", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(log.as_bytes())?;
                c.wait_with_output()
            })
            .expect("logwatch pipeline runs");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{}{out}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    // Detail "Low" (logwatch's default) and "High".
    for detail in ["0", "10"] {
        let out = run(detail);
        assert!(out.contains("Warning: Portscans detected"), "{out}");
        for k in kinds {
            // The script lists each kind by the text before " scan from host".
            let name = r::scan_text(k);
            let name = name.strip_suffix(" scan").unwrap_or(&name).to_string();
            assert!(
                out.contains(&format!("\n   {name} from:")),
                "{name} missing:\n{out}"
            );
        }
        // SCTP and ICMP probes (issue 18) are listed by the same script.
        for k in portsentry::classify::OtherProbe::ALL {
            let name = r::other_probe_text(k);
            let name = name.strip_suffix(" scan").unwrap_or(name);
            assert!(
                out.contains(&format!("\n   {name} from:")),
                "{name} missing:\n{out}"
            );
        }
        assert!(out.contains("      198.51.100.2: ports:"), "{out}");
        assert!(out.contains("      2001:db8::2: ports:"), "{out}");
        assert!(
            out.contains("Blocked route from/to 198.51.100.2 1 times(s)."),
            "{out}"
        );
        assert!(
            out.contains("Blocked route from/to 2001:db8::2 2 times(s)."),
            "{out}"
        );
        if detail == "0" {
            assert!(!out.contains("Unmatched"), "{out}");
        } else {
            // The stock script knows 1.2's start-up lines by older wordings ("Psionic
            // PortSentry ... starting"), so at detail Med and above it lists our (1.2's own)
            // start-up and listen lines as unmatched; nothing else is.
            let unmatched: Vec<&str> = out
                .split("**Unmatched entries**\n")
                .nth(1)
                .unwrap_or("")
                .lines()
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(
                unmatched,
                vec![
                    "1 Time(s): adminalert: Going into stealth listen mode on TCP port: 22",
                    "1 Time(s): adminalert: PortSentry 1.2 is starting.",
                ],
                "{out}"
            );
        }
    }
}
