//! The systemd part of debian/postinst, run for real with stand-ins for the
//! systemd tools: what it does when the unit starts and when it does not
//! (apt succeeds, the admin is told where to look, no second start). The
//! real systemd runs in tests/systemd.sh, where a start that fails has to
//! be provoked through the daemon (its `cannot_start` phase).
//!
//! Each case runs the postinst in a private mount namespace (`unshare -m`)
//! with tmpfs over /run (so that /run/systemd/system exists), /etc/init.d
//! (no init script: only the unit's start is under test), /etc/default,
//! /var/lib and /var/log, so nothing of the machine is read or changed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

/// Stand-in tools: each logs its arguments to `calls`; a start exits with START_RESULT.
const DEB_SYSTEMD_INVOKE: &str = r#"#!/bin/sh
echo "deb-systemd-invoke $*" >>"$FAKE_DIR/calls"
exit "${START_RESULT:-0}"
"#;

const SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >>"$FAKE_DIR/calls"
exit 0
"#;

const DEB_SYSTEMD_HELPER: &str = r#"#!/bin/sh
echo "deb-systemd-helper $*" >>"$FAKE_DIR/calls"
exit 0
"#;

struct Outcome {
    status: i32,
    stderr: String,
    calls: Vec<String>,
}

/// Runs `debian/postinst configure` with the stand-ins: `start_result` is the
/// exit status of `deb-systemd-invoke start`.
fn postinst(dir: &Path, start_result: &str) -> Outcome {
    let fake = dir.join("bin");
    fs::create_dir_all(&fake).unwrap();
    for (name, text) in [
        ("deb-systemd-invoke", DEB_SYSTEMD_INVOKE),
        ("systemctl", SYSTEMCTL),
        ("deb-systemd-helper", DEB_SYSTEMD_HELPER),
    ] {
        common::write(&fake.join(name), text);
        common::must(&format!("chmod 755 {}", fake.join(name).display()));
    }
    let postinst = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/postinst");
    let script = format!(
        "set -e
         for d in /run /etc/init.d /etc/default /var/lib /var/log; do mount -t tmpfs none \"$d\"; done
         mkdir -p /run/systemd/system
         echo 'TCP_MODE=\"tcp\"' >/etc/default/portsentry
         exec sh {} configure",
        postinst.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", fake.display()),
        )
        .env("FAKE_DIR", dir)
        .env("START_RESULT", start_result)
        .output()
        .expect("unshare runs");
    let calls = fs::read_to_string(dir.join("calls")).unwrap_or_default();
    Outcome {
        status: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls: calls.lines().map(str::to_owned).collect(),
    }
}

fn starts(o: &Outcome) -> usize {
    o.calls
        .iter()
        .filter(|c| *c == "deb-systemd-invoke start portsentry.service")
        .count()
}

fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("maintscripts-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn postinst_starts_the_unit_once_when_it_starts() {
    if !common::privileged("postinst_starts_the_unit_once_when_it_starts") {
        return;
    }
    let d = tmp("ok");
    let o = postinst(d.path(), "0");
    assert_eq!(o.status, 0, "postinst failed: {}", o.stderr);
    assert_eq!(starts(&o), 1, "calls: {:?}", o.calls);
    assert!(
        o.calls
            .iter()
            .any(|c| c == "systemctl --system daemon-reload")
    );
    assert!(!o.stderr.contains("did not start"), "{}", o.stderr);
}

#[test]
fn postinst_succeeds_and_says_where_to_look_when_the_unit_does_not_start() {
    if !common::privileged("postinst_succeeds_and_says_where_to_look_when_the_unit_does_not_start")
    {
        return;
    }
    // The start fails (a configuration error, a missing capability): one
    // start, no retry, apt succeeds.
    let d = tmp("refused");
    let o = postinst(d.path(), "1");
    assert_eq!(o.status, 0, "postinst failed: {}", o.stderr);
    assert_eq!(starts(&o), 1, "calls: {:?}", o.calls);
    assert!(
        o.stderr
            .contains("portsentry.service did not start; the package is installed anyway"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(
            "see why with: systemctl status portsentry.service; journalctl -u portsentry.service"
        ),
        "{}",
        o.stderr
    );
}
