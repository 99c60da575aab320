//! The daemon inside the package units' capability limit (issue 24 item 6): the units set
//! `CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE`, so the process
//! starts without CAP_SETPCAP, which dropping from the bounding set needs. It must start (the
//! capabilities outside KEEP_CAPABILITIES are already out of the bounding set), and a
//! KEEP_CAPABILITIES narrower than the bounding set must still leave the daemon with exactly
//! what it lists. The bounding set is set the way systemd does it, with `setpriv
//! --bounding-set`. Root, iproute2 and setpriv (util-linux) are needed; under CI=true a
//! missing one fails the test. The same units run for real in tests/systemd.sh.

mod common;

use std::process::{Command, Output};

use common::*;

const UNIT_BOUNDING_SET: &str = "-all,+net_admin,+net_raw,+net_bind_service";
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

fn ready(test: &str) -> bool {
    privileged(test) && have_tool(test, "/usr/bin/setpriv", "apt-get install util-linux")
}

/// Start the daemon (forking) in the run's namespace under the units' bounding set.
fn start_in_unit_limits(run: &Run, modes: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &run.ns, "setpriv", "--bounding-set"])
        .arg(UNIT_BOUNDING_SET)
        .arg(BIN)
        .args(modes)
        .arg("-c")
        .arg(run.p("portsentry.conf"))
        .arg("--pidfile")
        .arg(run.p("portsentry.pid"))
        .arg("--syslog-socket")
        .arg(&run.log.path)
        .output()
        .expect("setpriv runs")
}

/// A capability set line of /proc/PID/status (`CapEff`, `CapBnd`, ...).
fn caps(pid: i32, which: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{which}:")))
        .unwrap_or_else(|| panic!("no {which} in /proc/{pid}/status"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// Wait (10 s) until `pid` holds no lock any more: a multi-threaded daemon is a zombie
/// (`alive` says gone) while its other threads still hold its files, mode locks included.
fn wait_locks_released(pid: i32) {
    let t0 = std::time::Instant::now();
    let holds = || {
        std::fs::read_to_string("/proc/locks").is_ok_and(|l| {
            l.lines()
                .any(|line| line.split_whitespace().nth(4) == Some(&pid.to_string()))
        })
    };
    while holds() && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !holds(),
        "pid {pid} still holds a lock 10 s after it stopped"
    );
}

fn bits(caps: &[u32]) -> u64 {
    caps.iter().map(|c| 1u64 << c).sum()
}

#[test]
fn the_daemon_starts_in_the_units_bounding_set_and_keeps_what_keep_capabilities_lists() {
    let test = "the_daemon_starts_in_the_units_bounding_set_and_keeps_what_keep_capabilities_lists";
    if !ready(test) {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    // The shipped KEEP_CAPABILITIES (the default): the units' three.
    run.write_config("TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7\"\n");
    let o = start_in_unit_limits(&run, &["-stcp", "-udp"]);
    assert!(
        o.status.success(),
        "refused in the units' bounding set: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        run.log.lines().join("\n")
    );
    let pid = run.pid().expect("pid file");
    let three = bits(&[CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW]);
    assert_eq!(caps(pid, "CapEff"), three);
    assert_eq!(caps(pid, "CapPrm"), three);
    assert_eq!(caps(pid, "CapBnd"), three);
    run.stop();
    wait_locks_released(pid);

    // Narrower than the bounding set: the others leave the permitted and effective sets,
    // though without CAP_SETPCAP they stay in the bounding set (NoNewPrivileges= in the
    // units keeps commands from regaining them).
    run.write_config("TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7\"\nKEEP_CAPABILITIES=\"CAP_NET_RAW\"\n");
    let o = start_in_unit_limits(&run, &["-stcp"]);
    assert!(
        o.status.success(),
        "refused with a narrower KEEP_CAPABILITIES: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        run.log.lines().join("\n")
    );
    let pid = run.pid().expect("pid file");
    assert_eq!(caps(pid, "CapEff"), bits(&[CAP_NET_RAW]));
    assert_eq!(caps(pid, "CapPrm"), bits(&[CAP_NET_RAW]));
    assert_eq!(caps(pid, "CapInh") & !bits(&[CAP_NET_RAW]), 0);
    run.stop();
}
