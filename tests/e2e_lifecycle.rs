//! The daemon where Debian runs it today: under systemd (`Type=notify`: READY, RELOADING,
//! STOPPING, STATUS, the watchdog; no duplicate lines in the journal) and in containers that
//! withhold capabilities (Docker's and systemd-nspawn's default: no CAP_NET_ADMIN). Issue 10.
//!
//! Capabilities are withheld the way a container or `CapabilityBoundingSet=` does: the
//! daemon is started under `setpriv --bounding-set -CAP`, so, as root, it holds everything
//! but that capability. Root and iproute2 are needed (network namespaces); under CI=true a
//! missing privilege or `setpriv` fails the test.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: setpriv (util-linux) is missing under CI=true"
        );
        eprintln!("\n*** SKIPPED {test}: setpriv (util-linux) is missing ***\n");
        return false;
    }
    true
}

/// `portsentry ARGS -c CONF` in the target namespace without `drop` (e.g. "-net_admin").
fn without(run: &Run, drop: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &run.ns,
        "setpriv",
        "--bounding-set",
        drop,
        BIN,
    ]);
    c.args(args);
    c.arg("-c").arg(run.p("portsentry.conf"));
    c
}

/// Start the daemon (forking) in the target namespace without `drop`.
fn start_without(run: &Run, drop: &str, args: &[&str]) -> Output {
    let mut c = without(run, drop, args);
    c.arg("--pidfile").arg(run.p("portsentry.pid"));
    c.arg("--syslog-socket").arg(&run.log.path);
    c.output().expect("setpriv runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A capability mask from /proc/<pid>/status.
fn cap_mask(pid: i32, field: &str) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = st.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

const NET_BIND_SERVICE: u64 = 1 << 10;
const NET_RAW: u64 = 1 << 13;

#[test]
fn without_net_admin_classic_modes_start_detect_and_say_what_is_disabled() {
    if !ready("without_net_admin_classic_modes_start_detect_and_say_what_is_disabled") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config(
        "TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7\"\nBLOCK_TCP=\"1\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$ : DENY\"",
    );
    let o = start_without(&run, "-net_admin", &["-tcp", "-udp"]);
    assert!(o.status.success(), "start failed: {}", text(&o));
    let warning = "adminalert: WARNING: capability CAP_NET_ADMIN is not available: \
                   KILL_ROUTE with ip, iptables or nft will fail, and \
                   BLOCK_METHOD=\"nftables\" cannot be used.";
    // Named once, in syslog and on stderr (the parent's, before it detached).
    assert_eq!(
        run.log.count("capability CAP_NET_ADMIN"),
        1,
        "{:?}",
        run.log.lines()
    );
    run.log.wait_line(warning);
    assert!(text(&o).contains(warning), "stderr: {}", text(&o));
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // It keeps what it has of KEEP_CAPABILITIES.
    let pid = run.pid().unwrap();
    assert_eq!(cap_mask(pid, "CapEff:"), NET_BIND_SERVICE | NET_RAW);
    assert_eq!(cap_mask(pid, "CapBnd:"), NET_BIND_SERVICE | NET_RAW);
    // Detection and the responses that need no CAP_NET_ADMIN work.
    net.connect(None, TARGET4, 11).unwrap();
    run.wait_file(
        "portsentry.history",
        &format!("/{SCANNER4} Port: 11 TCP Blocked"),
    );
    assert_eq!(run.read("hosts.deny"), format!("ALL: {SCANNER4} : DENY\n"));
    net.udp(Some(SCANNER4B), TARGET4, 7);
    run.wait_file(
        "portsentry.history",
        &format!("/{SCANNER4B} Port: 7 UDP Blocked"),
    );

    // --check says the same, as a warning (exit 0).
    let o = without(&run, "-net_admin", &["--check", "-tcp"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: capability CAP_NET_ADMIN is not available: KILL_ROUTE"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_mode_or_block_method_that_cannot_work_stops_start_up_naming_capability_and_setting() {
    if !ready(
        "a_mode_or_block_method_that_cannot_work_stops_start_up_naming_capability_and_setting",
    ) {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config("TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7\"");
    // No CAP_NET_RAW: the stealth and advanced modes cannot capture.
    let o = start_without(&run, "-net_raw", &["-tcp", "-sudp"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let line = "adminalert: ERROR: mode -sudp needs capability CAP_NET_RAW, which this process \
                does not have (a container without it, or CapabilityBoundingSet=): cannot start.";
    assert!(
        text(&o).contains("mode -sudp needs capability CAP_NET_RAW"),
        "{}",
        text(&o)
    );
    run.log.wait_line(line);
    assert!(run.pid().is_none(), "no pid file after a refused start");
    let o = without(&run, "-net_raw", &["--check", "-atcp"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("error: mode -atcp needs capability CAP_NET_RAW"),
        "{}",
        text(&o)
    );
    // ... while the classic modes only lose the stealth ones: a warning.
    let o = start_without(&run, "-net_raw", &["-tcp"]);
    assert!(o.status.success(), "{}", text(&o));
    run.log
        .wait_contains("capability CAP_NET_RAW is not available: the stealth and advanced modes");
    run.stop();

    // No CAP_NET_ADMIN: BLOCK_METHOD="nftables" cannot set up its table.
    let run = Run::new(&net.target);
    run.write_config("TCP_PORTS=\"1,11\"\nBLOCK_METHOD=\"nftables\"");
    let o = start_without(&run, "-net_admin", &["-tcp"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("BLOCK_METHOD=\"nftables\" needs capability CAP_NET_ADMIN"),
        "{}",
        text(&o)
    );
}

/// Datagrams a fake `NOTIFY_SOCKET` received, each with its arrival time.
struct Notify {
    sock: UnixDatagram,
    got: Vec<String>,
}

impl Notify {
    fn new(path: &std::path::Path) -> Notify {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notify {
            sock,
            got: Vec::new(),
        }
    }

    /// Read until a message containing `part` arrives ([`common::EVENT_WAIT`]), and return it.
    fn wait(&mut self, part: &str) -> String {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < common::EVENT_WAIT {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push(m.clone());
                if m.contains(part) {
                    return m;
                }
            }
        }
        panic!("no notification with {part:?}; got {:?}", self.got);
    }
}

#[test]
fn under_systemd_the_daemon_notifies_ready_reloading_stopping_status_and_the_watchdog() {
    if !ready("under_systemd_the_daemon_notifies_ready_reloading_stopping_status_and_the_watchdog")
    {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config(
        "TCP_PORTS=\"1,11\"\nUDP_PORTS=\"7,9,11\"\nBLOCK_TCP=\"1\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$ : DENY\"",
    );
    let mut notify = Notify::new(&run.p("notify.sock"));
    // stderr stands in for the journal: JOURNAL_STREAM names its device and inode, as
    // systemd does, so the log lines must not be repeated there.
    let journal = std::fs::File::create(run.p("journal")).unwrap();
    let meta = std::os::unix::fs::MetadataExt::ino(&journal.metadata().unwrap());
    let dev = std::os::unix::fs::MetadataExt::dev(&journal.metadata().unwrap());
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.target,
            BIN,
            "-tcp",
            "-sudp",
            "-f",
            "-c",
        ])
        .arg(run.p("portsentry.conf"))
        .arg("--pidfile")
        .arg(run.p("portsentry.pid"))
        .arg("--syslog-socket")
        .arg(&run.log.path)
        .env("NOTIFY_SOCKET", run.p("notify.sock"))
        .env("WATCHDOG_USEC", "400000")
        .env("JOURNAL_STREAM", format!("{dev}:{meta}"))
        .stderr(Stdio::from(journal))
        .spawn()
        .unwrap();
    let first = notify.wait("READY=1");
    assert!(
        first.contains("STATUS=Watching tcp: 2 ports, sudp: 3 ports; 0 blocks in force"),
        "{first:?}"
    );
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // The loop pings the watchdog (WATCHDOG_USEC 400 ms: every 200 ms).
    let t0 = Instant::now();
    notify.wait("WATCHDOG=1");
    notify.wait("WATCHDOG=1");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // A block shows in the status line (refreshed every 2 s).
    net.connect(None, TARGET4, 1).unwrap();
    run.wait_file("hosts.deny", SCANNER4);
    notify.wait("STATUS=Watching tcp: 2 ports, sudp: 3 ports; 1 block in force");
    // Reload: RELOADING=1 (with the monotonic time systemd 253 wants), then READY=1.
    run.signal(nix::sys::signal::Signal::SIGHUP);
    let m = notify.wait("RELOADING=1");
    assert!(m.contains("MONOTONIC_USEC="), "{m:?}");
    notify.wait("READY=1");
    run.log
        .wait_line("adminalert: PortSentry reloaded its configuration.");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    notify.wait("STOPPING=1");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < common::EVENT_WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(child.try_wait().unwrap().map(|s| s.success()), Some(true));
    let journal = run.read("journal");
    assert!(
        !journal.contains("PortSentry is now active"),
        "log lines repeated on a stderr that is the journal: {journal}"
    );
}

#[test]
fn on_sigterm_the_spare_shell_is_gone_before_the_daemon_exits() {
    if !ready("on_sigterm_the_spare_shell_is_gone_before_the_daemon_exits") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    // A KILL_RUN_CMD keeps a spare shell waiting for its command line.
    run.write_config("TCP_PORTS=\"1\"\nBLOCK_TCP=\"1\"\nKILL_RUN_CMD=\"/bin/true $TARGET$\"");
    run.start_ok(&["-tcp"]);
    let pid = run.pid().expect("pid file");
    let t0 = Instant::now();
    let spare_pids = || -> Vec<i32> {
        children(&pid.to_string())
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    };
    let mut spares = spare_pids();
    while spares.is_empty() && t0.elapsed() < common::EVENT_WAIT {
        std::thread::sleep(Duration::from_millis(20));
        spares = spare_pids();
    }
    assert!(!spares.is_empty(), "no spare shell under the daemon {pid}");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    // The pid file is the daemon's last act before it exits: by then the spare must be gone
    // (under systemd the unit's control group is empty once the main process is).
    let t0 = Instant::now();
    while run.p("portsentry.pid").exists() && t0.elapsed() < common::EVENT_WAIT {
        std::thread::yield_now();
    }
    assert!(!run.p("portsentry.pid").exists(), "daemon did not stop");
    let left: Vec<i32> = spares.into_iter().filter(|s| alive(*s)).collect();
    assert!(
        left.is_empty(),
        "shells left when the daemon removed its pid file: {left:?}"
    );
    let t0 = Instant::now();
    while alive(pid) && t0.elapsed() < common::EVENT_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!alive(pid), "daemon still running");
}
