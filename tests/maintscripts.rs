//! The maintainer scripts in debian/, run for real with stand-ins for the
//! systemd tools. The systemd part of postinst: what it does when the unit
//! starts and when it does not (apt succeeds, the admin is told where to
//! look, no second start). The upgrade from Debian 13's portsentry
//! 1.2-15/1.2-16 (issue 19): which `portsentry@MODE` instances preinst
//! records, stops and unlinks, what postinst writes into
//! /etc/default/portsentry and says, what it starts; postrm abort-upgrade
//! putting the links back; the downgrade (prerm, postrm) linking the modes as
//! instances again. The real systemd runs in tests/systemd.sh, with the real
//! 1.2-16 package.
//!
//! Each case runs in a private mount namespace (`unshare -m`): the first
//! ones with tmpfs over /run (so that /run/systemd/system exists),
//! /etc/init.d (no init script: only the unit's start is under test),
//! /etc/default, /var/lib and /var/log; the upgrade cases with overlays over
//! /etc, /usr and /var (their upper directories in the test's temporary
//! directory, read after the run) and tmpfs over /run. Nothing of the
//! machine is read or changed.

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

// ------------------------------------------------------------------------------------------
// The upgrade from Debian 13's 1.2-15/1.2-16 and the downgrade back to it.

/// `systemctl`: `list-units ... portsentry@*` prints `$FAKE_DIR/units` (the running
/// instances, as `--plain --no-legend` lists them); every call is logged.
const SYSTEMCTL_UNITS: &str = r#"#!/bin/sh
echo "systemctl $*" >>"$FAKE_DIR/calls"
case "$*" in
    list-units*) cat "$FAKE_DIR/units" 2>/dev/null ;;
esac
exit 0
"#;

/// Logs its arguments, exits 0.
const LOGGER: &str = r#"#!/bin/sh
echo "$(basename "$0") $*" >>"$FAKE_DIR/calls"
exit 0
"#;

/// Debian 13's /etc/default/portsentry, as 1.2-16's postinst writes it.
const TRIXIE_DEFAULT: &str = "# /etc/default/portsentry
#
# This file is read by /etc/init.d/portsentry. See the portsentry.8
# manpage for details.
#
# The options in this file refer to commandline arguments (all in lowercase)
# of portsentry. Use only one tcp and udp mode at a time.
#
# This file is not used by the systemd units \u{2014} portsentry@tcp.service portsentry@udp.service.
#
TCP_MODE=\"tcp\"
UDP_MODE=\"udp\"
";

const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

/// A machine as Debian 13's 1.2-16 left it, for the scripts to run on: `links` are the
/// instances enabled (links in multi-user.target.wants), `running` those systemd runs.
struct Machine {
    dir: tempfile::TempDir,
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Machine {
    fn new(name: &str, links: &[&str], running: &[&str]) -> Machine {
        let dir = tmp(name);
        let d = dir.path();
        let fake = d.join("bin");
        fs::create_dir_all(&fake).unwrap();
        let mut tools = vec![("systemctl", SYSTEMCTL_UNITS)];
        for t in [
            "deb-systemd-invoke",
            "deb-systemd-helper",
            "start-stop-daemon",
            "invoke-rc.d",
            "update-rc.d",
        ] {
            tools.push((t, LOGGER));
        }
        for (name, text) in tools {
            common::write(&fake.join(name), text);
            common::must(&format!("chmod 755 {}", fake.join(name).display()));
        }
        let units: String = running
            .iter()
            .map(|m| {
                format!("portsentry@{m}.service loaded active running anti portscan daemon ({m})\n")
            })
            .collect();
        common::write(&d.join("units"), &units);
        // The upper directories of the overlays, filled before the run: /etc and /usr as the
        // package and 1.2-16 leave them.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["etc", "usr", "var", "work-etc", "work-usr", "work-var"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        fs::create_dir_all(d.join("etc/default")).unwrap();
        common::write(&d.join("etc/default/portsentry"), TRIXIE_DEFAULT);
        let wants = d.join(&WANTS[1..]);
        fs::create_dir_all(&wants).unwrap();
        for m in links {
            std::os::unix::fs::symlink(
                "/usr/lib/systemd/system/portsentry@.service",
                wants.join(format!("portsentry@{m}.service")),
            )
            .unwrap();
        }
        fs::create_dir_all(d.join("var/lib/portsentry")).unwrap();
        fs::create_dir_all(d.join("usr/share/portsentry")).unwrap();
        fs::copy(
            repo.join("default/portsentry"),
            d.join("usr/share/portsentry/default.portsentry"),
        )
        .unwrap();
        fs::create_dir_all(d.join("usr/lib/portsentry")).unwrap();
        fs::copy(
            repo.join("debian/portsentry-modes"),
            d.join("usr/lib/portsentry/portsentry-modes"),
        )
        .unwrap();
        fs::create_dir_all(d.join("usr/sbin")).unwrap();
        fs::copy(common::BIN, d.join("usr/sbin/portsentry")).unwrap();
        Machine { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(&p[1..])
    }

    fn read(&self, p: &str) -> String {
        fs::read_to_string(self.path(p)).unwrap_or_default()
    }

    /// The instances linked in multi-user.target.wants, sorted.
    fn links(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path(WANTS))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("portsentry@"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs `sh debian/SCRIPT ARGS...` on this machine (systemd running).
    fn run(&self, script: &str, args: &[&str]) -> Run {
        let d = self.dir.path().display().to_string();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("debian")
            .join(script);
        let shell = format!(
            "set -e
             for t in etc usr var; do
                 mount -t overlay overlay -o lowerdir=/$t,upperdir={d}/$t,workdir={d}/work-$t /$t
             done
             mount -t tmpfs none /run
             mkdir -p /run/systemd/system
             exec sh {} {}",
            path.display(),
            args.join(" ")
        );
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &shell])
            .env("PATH", format!("{d}/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
            .env("FAKE_DIR", &d)
            .output()
            .expect("unshare runs");
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// preinst upgrade, then postinst configure, from `old`; both must succeed.
    fn upgrade(&self, old: &str) -> Run {
        let pre = self.run("preinst", &["upgrade", old]);
        assert_eq!(pre.status, 0, "preinst: {}{}", pre.stdout, pre.stderr);
        let post = self.run("postinst", &["configure", old]);
        assert_eq!(post.status, 0, "postinst: {}{}", post.stdout, post.stderr);
        post
    }
}

fn upgrade_ready(test: &str) -> bool {
    common::privileged(test)
}

#[test]
fn upgrade_from_1_2_16_moves_the_enabled_instances_into_etc_default() {
    let test = "upgrade_from_1_2_16_moves_the_enabled_instances_into_etc_default";
    if !upgrade_ready(test) {
        return;
    }
    // stcp enabled and running, sudp enabled but stopped.
    let m = Machine::new("migrate", &["stcp", "sudp"], &["stcp"]);
    let pre = m.run("preinst", &["upgrade", "1.2-16"]);
    assert_eq!(pre.status, 0, "{}{}", pre.stdout, pre.stderr);
    // Stopped before ours starts, reset, unlinked; recorded for postinst.
    let calls = m.calls();
    assert!(
        calls.contains(
            &"deb-systemd-invoke stop portsentry@stcp.service portsentry@sudp.service".into()
        ),
        "{calls:?}"
    );
    assert!(
        calls.contains(
            &"deb-systemd-invoke reset-failed portsentry@stcp.service portsentry@sudp.service"
                .into()
        ),
        "{calls:?}"
    );
    assert!(m.links().is_empty(), "{:?}", m.links());
    let state = m.read("/var/lib/portsentry/upgrade-from-1.2.instances");
    assert!(state.starts_with("action migrate\n"), "{state}");
    assert!(state.contains("instance stcp enabled running\n"), "{state}");
    assert!(state.contains("instance sudp enabled -\n"), "{state}");

    let post = m.run("postinst", &["configure", "1.2-16"]);
    assert_eq!(post.status, 0, "{}{}", post.stdout, post.stderr);
    let default = m.read("/etc/default/portsentry");
    assert!(
        default.contains("\nTCP_MODE=\"stcp\"\nUDP_MODE=\"sudp\"\n"),
        "{default}"
    );
    assert!(
        default.starts_with("# Written by the upgrade from portsentry 1.2-16 on "),
        "{default}"
    );
    assert!(
        default.contains("#   portsentry@stcp.service (enabled, running)\n"),
        "{default}"
    );
    assert!(
        default.contains("#   portsentry@sudp.service (enabled, not running)\n"),
        "{default}"
    );
    assert!(default.contains("portsentry.service now runs their modes, set below, in one daemon."));
    assert_eq!(m.read("/etc/default/portsentry.dpkg-old"), TRIXIE_DEFAULT);
    // Said on the terminal too.
    assert!(
        post.stdout
            .contains("portsentry:    portsentry@stcp.service (enabled, running)"),
        "{}",
        post.stdout
    );
    assert!(
        post.stdout
            .contains("portsentry:  TCP_MODE=\"stcp\" UDP_MODE=\"sudp\""),
        "{}",
        post.stdout
    );
    // The record is gone; portsentry.service starts, no instance does.
    assert!(
        !m.path("/var/lib/portsentry/upgrade-from-1.2.instances")
            .exists()
    );
    let calls = m.calls();
    assert!(
        calls.contains(&"deb-systemd-invoke start portsentry.service".into()),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("deb-systemd-invoke start portsentry@")),
        "{calls:?}"
    );
}

#[test]
fn upgrade_from_1_2_16_keeps_two_modes_of_one_protocol_as_instances_and_reports_a_bad_one() {
    let test =
        "upgrade_from_1_2_16_keeps_two_modes_of_one_protocol_as_instances_and_reports_a_bad_one";
    if !upgrade_ready(test) {
        return;
    }
    let m = Machine::new(
        "keep",
        &["tcp", "atcp", "udp", "bogus"],
        &["tcp", "atcp", "udp"],
    );
    let post = m.upgrade("1.2-16");
    // The three stay linked (this package's template runs them), bogus's link goes.
    assert_eq!(
        m.links(),
        [
            "portsentry@atcp.service",
            "portsentry@tcp.service",
            "portsentry@udp.service"
        ]
    );
    let default = m.read("/etc/default/portsentry");
    assert!(
        default.contains("\nTCP_MODE=\"\"\nUDP_MODE=\"\"\n"),
        "{default}"
    );
    assert!(default.contains("these instances are kept"), "{default}");
    assert!(
        default.contains(
            "#   portsentry@bogus.service (enabled, not running): \"bogus\" is not a mode (tcp, stcp,"
        ),
        "{default}"
    );
    assert!(
        post.stdout.contains("\"bogus\" is not a mode"),
        "{}",
        post.stdout
    );
    let calls = m.calls();
    assert!(
        calls.contains(
            &"deb-systemd-invoke start portsentry@atcp.service portsentry@tcp.service portsentry@udp.service"
                .into()
        ),
        "{calls:?}"
    );
}

#[test]
fn upgrade_from_1_2_16_with_no_instance_sets_no_mode_and_from_1_2_14_keeps_etc_default() {
    let test =
        "upgrade_from_1_2_16_with_no_instance_sets_no_mode_and_from_1_2_14_keeps_etc_default";
    if !upgrade_ready(test) {
        return;
    }
    // 1.2-16 installed fresh: no instance enabled, nothing ran under systemd.
    let m = Machine::new("none", &[], &[]);
    let post = m.upgrade("1.2-16");
    let default = m.read("/etc/default/portsentry");
    assert!(
        default.contains("\nTCP_MODE=\"\"\nUDP_MODE=\"\"\n"),
        "{default}"
    );
    assert!(
        default.contains("no portsentry@MODE.service was enabled or running"),
        "{default}"
    );
    assert!(
        post.stdout
            .contains("no portsentry@MODE.service was enabled"),
        "{}",
        post.stdout
    );

    // Debian 12's 1.2-14 had no template: its /etc/default/portsentry is what ran.
    let m = Machine::new("bookworm", &[], &[]);
    m.upgrade("1.2-14+b1");
    assert_eq!(m.read("/etc/default/portsentry"), TRIXIE_DEFAULT);
    assert!(!m.path("/etc/default/portsentry.dpkg-old").exists());
}

#[test]
fn an_upgrade_that_fails_after_preinst_puts_the_instances_links_back() {
    let test = "an_upgrade_that_fails_after_preinst_puts_the_instances_links_back";
    if !upgrade_ready(test) {
        return;
    }
    let m = Machine::new("abort", &["stcp", "sudp"], &["stcp", "sudp"]);
    assert_eq!(m.run("preinst", &["upgrade", "1.2-16"]).status, 0);
    assert!(m.links().is_empty());
    let r = m.run("postrm", &["abort-upgrade", "1.2-16"]);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        m.links(),
        ["portsentry@stcp.service", "portsentry@sudp.service"]
    );
    assert_eq!(
        fs::read_link(m.path(&format!("{WANTS}/portsentry@stcp.service"))).unwrap(),
        Path::new("/usr/lib/systemd/system/portsentry@.service")
    );
    assert!(
        !m.path("/var/lib/portsentry/upgrade-from-1.2.instances")
            .exists()
    );
    // 1.2-16's own /etc/default is untouched.
    assert_eq!(m.read("/etc/default/portsentry"), TRIXIE_DEFAULT);
}

#[test]
fn a_downgrade_to_1_2_16_links_and_starts_the_modes_as_instances() {
    let test = "a_downgrade_to_1_2_16_links_and_starts_the_modes_as_instances";
    if !upgrade_ready(test) {
        return;
    }
    let m = Machine::new("downgrade", &["stcp", "sudp"], &["stcp", "sudp"]);
    m.upgrade("1.2-16");
    assert!(m.links().is_empty());
    let pre = m.run("prerm", &["upgrade", "1.2-16"]);
    assert_eq!(pre.status, 0, "{}{}", pre.stdout, pre.stderr);
    assert_eq!(
        m.links(),
        ["portsentry@stcp.service", "portsentry@sudp.service"]
    );
    assert!(
        pre.stdout.contains(
            "portsentry: downgrade to 1.2-16: mode stcp of /etc/default/portsentry enabled as portsentry@stcp.service"
        ),
        "{}",
        pre.stdout
    );
    let post = m.run("postrm", &["upgrade", "1.2-16"]);
    assert_eq!(post.status, 0, "{}{}", post.stdout, post.stderr);
    let calls = m.calls();
    let at = |c: &str| calls.iter().position(|x| x == c);
    let stop = at("deb-systemd-invoke stop portsentry.service portsentry@*.service");
    let purge = at("deb-systemd-helper purge portsentry.service");
    let reload = calls
        .iter()
        .rposition(|x| x == "systemctl --system daemon-reload");
    let start = at("deb-systemd-invoke start portsentry@stcp.service");
    assert!(stop.is_some() && purge.is_some(), "{calls:?}");
    assert!(reload < start && start.is_some(), "{calls:?}");
    assert!(
        at("deb-systemd-invoke start portsentry@sudp.service").is_some(),
        "{calls:?}"
    );
    // To 1.2-14 (no template): no instance links.
    let m = Machine::new("downgrade14", &[], &[]);
    m.upgrade("1.2-14+b1");
    assert_eq!(m.run("prerm", &["upgrade", "1.2-14+b1"]).status, 0);
    assert!(m.links().is_empty());
}
