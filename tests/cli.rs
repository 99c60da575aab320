//! The command line and `--check`, through the built binary (assert_cmd).

use assert_cmd::Command;
use predicates::prelude::*;

fn ps() -> Command {
    Command::cargo_bin("portsentry").unwrap()
}

fn good_conf(dir: &std::path::Path) -> std::path::PathBuf {
    let d = dir.display();
    std::fs::write(dir.join("ignore"), "127.0.0.1/32\n::1\n").unwrap();
    let p = dir.join("portsentry.conf");
    std::fs::write(
        &p,
        format!(
            "TCP_PORTS=\"1,11,15\"\nUDP_PORTS=\"1,7\"\nIGNORE_FILE=\"{d}/ignore\"\n\
             HISTORY_FILE=\"{d}/history\"\nBLOCKED_FILE=\"{d}/blocked\"\nBLOCK_TCP=\"0\"\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn no_mode_prints_usage_on_stderr_and_fails() {
    ps().assert()
        .failure()
        .code(2)
        .stderr(predicate::str::contains("Usage: portsentry"));
}

#[test]
fn unknown_or_conflicting_modes_fail() {
    ps().arg("-tcpx").assert().failure().code(2);
    ps().args(["-tcp", "-atcp"])
        .assert()
        .failure()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn help_and_version() {
    ps().arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--stcp").and(predicate::str::contains("--check")));
    ps().arg("-V")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_accepts_a_good_config() {
    let d = tempfile::tempdir().unwrap();
    let p = good_conf(d.path());
    ps().args(["-tcp", "-udp", "--check", "-c"])
        .arg(&p)
        .assert()
        .success()
        .stdout(predicate::str::contains("configuration OK"));
}

#[test]
fn check_names_file_line_and_key_of_a_bad_port() {
    let d = tempfile::tempdir().unwrap();
    let p = good_conf(d.path());
    let text = std::fs::read_to_string(&p).unwrap() + "# more\n";
    std::fs::write(
        &p,
        text.replace("TCP_PORTS=\"1,11,15\"", "TCP_PORTS=\"1,70000\""),
    )
    .unwrap();
    ps().args(["-tcp", "--check", "-c"])
        .arg(&p)
        .assert()
        .failure()
        .code(1)
        .stderr(
            predicate::str::contains(format!("{}:1:", p.display()))
                .and(predicate::str::contains("TCP_PORTS"))
                .and(predicate::str::contains("70000")),
        );
}

#[test]
fn check_rejects_unknown_block_value_and_missing_keys() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.conf");
    std::fs::write(&p, "TCP_PORTS=\"1\"\nBLOCK_TCP=\"3\"\n").unwrap();
    ps().args(["-tcp", "--check", "-c"])
        .arg(&p)
        .assert()
        .failure()
        .code(1)
        .stderr(
            predicate::str::contains("BLOCK_TCP")
                .and(predicate::str::contains(":2:"))
                .and(predicate::str::contains("BLOCKED_FILE"))
                .and(predicate::str::contains("IGNORE_FILE")),
        );
}

#[test]
fn check_needs_ports_for_the_mode_asked() {
    let d = tempfile::tempdir().unwrap();
    let p = good_conf(d.path());
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("UDP_PORTS=\"1,7\"\n", "");
    std::fs::write(&p, text).unwrap();
    ps().args(["-tcp", "--check", "-c"])
        .arg(&p)
        .assert()
        .success();
    ps().args(["-udp", "--check", "-c"])
        .arg(&p)
        .assert()
        .failure()
        .stderr(predicate::str::contains("UDP_PORTS"));
}

#[test]
fn check_reports_a_missing_config_file() {
    ps().args(["-tcp", "--check", "-c", "/nonexistent/portsentry.conf"])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("/nonexistent/portsentry.conf"));
}

#[test]
fn check_warns_about_bad_ignore_lines_with_line_numbers() {
    let d = tempfile::tempdir().unwrap();
    let p = good_conf(d.path());
    std::fs::write(
        d.path().join("ignore"),
        "127.0.0.1\nnot-an-address\n10.0.0.0/33\n",
    )
    .unwrap();
    ps().args(["-tcp", "--check", "-c"])
        .arg(&p)
        .assert()
        .success()
        .stderr(
            predicate::str::contains(format!("{}:2:", d.path().join("ignore").display()))
                .and(predicate::str::contains(":3:")),
        );
}

#[test]
fn start_with_a_bad_config_fails_with_the_reason_on_stderr() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.conf");
    std::fs::write(&p, "TCP_PORTS=\"abc\"\n").unwrap();
    let mut c = ps();
    c.args(["-tcp", "-c"])
        .arg(&p)
        .args(["--pidfile"])
        .arg(d.path().join("pid"));
    c.args(["--syslog-socket", "/nonexistent/log"]);
    let out = c.assert().failure().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    if nix::unistd::geteuid().is_root() {
        assert!(err.contains("TCP_PORTS") && err.contains(":1:"), "{err}");
    } else {
        assert!(err.contains("root"), "{err}");
    }
}

#[test]
fn check_without_a_mode_checks_the_modes_of_the_defaults_file() {
    let d = tempfile::tempdir().unwrap();
    let p = good_conf(d.path());
    let modes = d.path().join("default");
    // `portsentry --check -c CONF --modes-file MODES` with MODES holding `text`.
    let check = |text: &str| {
        std::fs::write(&modes, text).unwrap();
        let mut c = ps();
        c.args(["--check", "-c"])
            .arg(&p)
            .arg("--modes-file")
            .arg(&modes);
        c.assert()
    };
    check("TCP_MODE=\"tcp\"\nUDP_MODE=\"udp\"\n")
        .success()
        .stdout(predicate::str::contains("checking modes -tcp -udp"));
    // The modes decide which keys are required: without UDP_PORTS, -udp fails.
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("UDP_PORTS=\"1,7\"\n", "");
    std::fs::write(&p, text).unwrap();
    check("TCP_MODE=\"tcp\"\nUDP_MODE=\"udp\"\n")
        .failure()
        .code(1)
        .stderr(predicate::str::contains("UDP_PORTS"));
    check("TCP_MODE=\"stcp\"\nUDP_MODE=\"\"\n")
        .success()
        .stdout(predicate::str::contains("checking modes -stcp"));
    // No modes: says so, the configuration is still checked.
    check("TCP_MODE=\"\"\n")
        .success()
        .stdout(predicate::str::contains("no modes selected"));
    // A bad modes file is named with its line.
    check("\nTCP_MODE=\"$(id)\"\n")
        .failure()
        .code(1)
        .stderr(predicate::str::contains(format!("{}:2:", modes.display())));
    // --modes-file belongs to --check.
    ps().args(["-tcp", "--modes-file"])
        .arg(&modes)
        .assert()
        .failure()
        .code(2);
}
