//! One daemon per mode (issue 19): a second daemon asked for a mode that a running one watches
//! in the same network namespace, with its pid file in the same directory (as
//! `portsentry.service` and `portsentry@stcp.service` have theirs in /run), is refused with
//! the first one's pid, and the first one goes on undisturbed; another mode starts beside it,
//! and the mode is free again once the first daemon is gone. Root and iproute2 are needed
//! (a network namespace); under CI=true a missing privilege fails the test.

mod common;

use std::process::{Command, Output};

use common::*;

/// `portsentry MODES -c CONF --pidfile DIR/PIDFILE` (forking) in the run's namespace.
fn start_with_pidfile(run: &Run, modes: &[&str], pidfile: &str) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &run.ns, BIN])
        .args(modes)
        .arg("-c")
        .arg(run.p("portsentry.conf"))
        .arg("--pidfile")
        .arg(run.p(pidfile))
        .arg("--syslog-socket")
        .arg(&run.log.path)
        .output()
        .expect("daemon runs")
}

fn stop_pidfile(run: &Run, pidfile: &str) {
    let pid: i32 = run.read(pidfile).trim().parse().expect("pid file");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t0 = std::time::Instant::now();
    while alive(pid) && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(pid), "daemon {pid} did not stop");
    wait_locks_released(pid);
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

#[test]
fn a_mode_runs_in_one_daemon_at_a_time() {
    if !privileged("a_mode_runs_in_one_daemon_at_a_time") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config("TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7\"\n");
    // The first daemon: one process for both protocols, as portsentry.service runs them.
    run.start_ok(&["-stcp", "-sudp"]);
    let first = run.pid().expect("the first daemon's pid file");

    // A second one for -stcp, with its own pid file in the same directory (a template
    // instance beside portsentry.service): refused, naming the first.
    let o = start_with_pidfile(&run, &["-stcp"], "portsentry-stcp.pid");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "mode -stcp is already watched by another portsentry (pid {first}"
        )),
        "{err}"
    );
    assert!(
        err.contains("one mode runs in one daemon at a time, stop that one first."),
        "{err}"
    );
    run.log.wait_contains(&format!(
        "adminalert: ERROR: mode -stcp is already watched by another portsentry (pid {first}"
    ));
    assert!(alive(first), "the first daemon must go on");
    assert_eq!(run.pid(), Some(first), "its pid file is untouched");
    assert!(!run.p("portsentry-stcp.pid").exists());

    // Another TCP mode may run beside it (as 1.2-16's portsentry@tcp and @atcp did).
    let o = start_with_pidfile(&run, &["-tcp"], "portsentry-tcp.pid");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stop_pidfile(&run, "portsentry-tcp.pid");

    // The first one gone, the mode is free.
    run.stop();
    assert!(!alive(first));
    wait_locks_released(first);
    let o = start_with_pidfile(&run, &["-stcp"], "portsentry-stcp.pid");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stop_pidfile(&run, "portsentry-stcp.pid");
}
