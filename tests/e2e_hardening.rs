//! Hardening, end to end in test-made namespaces: kill -9 at random moments while blocks are
//! being written, and a full disk under the state directory.

mod common;

use common::flood;
use common::*;
use std::time::{Duration, Instant};

/// Every line of the three files is whole and well-formed.
fn assert_files_well_formed(run: &Run) {
    for f in ["portsentry.history", "portsentry.blocked.tcp"] {
        let text = run.read(f);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{f} ends mid-line: {text:?}"
        );
        for l in text.lines() {
            assert!(fail2ban_host(l).is_some(), "{f}: malformed line {l:?}");
            let epoch = l.split(" - ").next().unwrap();
            assert!(epoch.parse::<i64>().is_ok(), "{f}: {l:?}");
        }
    }
    let deny = run.read("hosts.deny");
    assert!(
        deny.is_empty() || deny.ends_with('\n'),
        "hosts.deny ends mid-line"
    );
    for l in deny.lines() {
        let ip = l
            .strip_prefix("ALL: ")
            .and_then(|r| r.strip_suffix(" : DENY"))
            .unwrap_or_else(|| panic!("hosts.deny: malformed line {l:?}"));
        // IPv6 in brackets, as hosts_access(5) reads it; IPv4 bare.
        let ok = match ip.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => ip.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        assert!(ok, "{l:?}");
    }
    let mut seen = std::collections::HashSet::new();
    for l in deny.lines() {
        assert!(seen.insert(l), "hosts.deny line twice: {l}");
    }
}

#[test]
fn kill_9_during_a_flood_of_blocks_leaves_whole_lines_and_restarts() {
    if !privileged("kill_9_during_a_flood_of_blocks_leaves_whole_lines_and_restarts") {
        return;
    }
    let net = Net::new();
    let sources = net.scanner_addresses(60);
    let run = Run::new(&net.target);
    run.write_config(
        "TCP_PORTS=\"1,2\"\nBLOCK_TCP=\"1\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$ : DENY\"\n\
         KILL_ROUTE=\"true $TARGET$\"",
    );
    let mut rng = Rng(0x9e3779b97f4a7c15 ^ u64::from(std::process::id()));
    let kills = 20;
    for round in 0..kills {
        run.start_ok(&["-tcp"]);
        let pid = run.pid().expect("pid file");
        // A bounded flood of connects from many sources, in the background.
        let (srcs, scanner) = (sources.clone(), net.scanner.clone());
        let dsts = (TARGET4.to_string(), TARGET6.to_string());
        let flood = std::thread::spawn(move || {
            let n = Net {
                target: String::new(),
                scanner,
            };
            let t0 = Instant::now();
            for s in srcs.iter().take(120) {
                if t0.elapsed() > Duration::from_secs(3) {
                    break;
                }
                let dst = if s.contains(':') { &dsts.1 } else { &dsts.0 };
                let _ = n.connect(Some(s), dst, 1);
            }
            std::mem::forget(n); // the namespaces belong to the outer Net
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(250)));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        flood.join().unwrap();
        let t0 = Instant::now();
        while alive(pid) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(pid), "round {round}: daemon survived kill -9");
        assert!(
            run.p("portsentry.pid").exists(),
            "stale pid file left by kill -9"
        );
        assert_files_well_formed(&run);
    }
    // The stale pid file does not stop the next start, and the daemon works.
    run.start_ok(&["-tcp"]);
    net.connect(None, TARGET4, 2).unwrap();
    run.log.wait_contains(&format!(
        "Connect from host: {SCANNER4}/{SCANNER4} to TCP port: 2"
    ));
    run.wait_file("portsentry.history", &format!("/{SCANNER4} Port: 2 TCP"));
    assert_files_well_formed(&run);
    assert!(
        run.read("portsentry.history").lines().count() > 10,
        "blocks were written"
    );
}

#[test]
fn a_full_disk_is_logged_and_detection_continues() {
    if !privileged("a_full_disk_is_logged_and_detection_continues") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    let state = run.p("state");
    std::fs::create_dir(&state).unwrap();
    must(&format!(
        "mount -t tmpfs -o size=64k tmpfs {}",
        state.display()
    ));
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount -l {}", self.0.display()));
        }
    }
    let _u = Umount(state.clone());
    let d = run.dir.path().display().to_string();
    std::fs::write(
        run.p("portsentry.conf"),
        format!(
            "TCP_PORTS=\"1\"\nBLOCK_TCP=\"0\"\n\
             IGNORE_FILE=\"{d}/portsentry.ignore\"\n\
             HISTORY_FILE=\"{d}/state/portsentry.history\"\n\
             BLOCKED_FILE=\"{d}/state/portsentry.blocked\"\n"
        ),
    )
    .unwrap();
    std::fs::write(run.p("portsentry.ignore"), "").unwrap();
    run.start_ok(&["-tcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // Fill the disk.
    let _ = sh(&format!(
        "dd if=/dev/zero of={}/fill bs=1k count=1000 2>/dev/null",
        state.display()
    ));
    net.connect(None, TARGET4, 1).unwrap();
    run.log.wait_line(&format!(
        "adminalert: ERROR: Cannot open history file: {d}/state/portsentry.history."
    ));
    // Detection goes on for the next host, and the daemon is alive.
    net.connect(Some(SCANNER4B), TARGET4, 1).unwrap();
    run.log.wait_line(&format!(
        "attackalert: Connect from host: {SCANNER4B}/{SCANNER4B} to TCP port: 1"
    ));
    assert!(alive(run.pid().unwrap()));
    // Space again: lines are written again, whole.
    std::fs::remove_file(state.join("fill")).unwrap();
    net.connect(None, TARGET6, 1).unwrap();
    let h = std::fs::read_to_string(state.join("portsentry.history")).unwrap_or_default();
    let t0 = Instant::now();
    let mut h = h;
    while !h.contains(SCANNER6) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        h = std::fs::read_to_string(state.join("portsentry.history")).unwrap_or_default();
    }
    assert!(h.contains(SCANNER6), "{h:?}");
    for l in h.lines() {
        assert!(fail2ban_host(l).is_some(), "{l:?}");
    }
}

/// One IPv6 UDP datagram from `src` to `dst` port `port` (raw: IPv6 header included; the
/// UDP checksum is left 0, the capture reads the packet before any checksum check).
/// The flood sender's checksums: a source changed in place gives the packet a full build
/// gives (v4 and v6, TCP and UDP).
#[test]
fn the_flood_senders_incremental_checksums_are_right() {
    use common::flood::{Kind, packet, set_source};
    for kind in [Kind::Syn, Kind::Udp] {
        for (a, b, d) in [
            ("192.0.2.200", "203.0.113.77", "198.51.100.1"),
            ("2001:db8:fff::1", "fd00:1234:abcd::9", "2001:db8::1"),
        ] {
            let (a, b, d): (std::net::IpAddr, std::net::IpAddr, std::net::IpAddr) =
                (a.parse().unwrap(), b.parse().unwrap(), d.parse().unwrap());
            let mut p = packet(kind, a, d, 143);
            set_source(&mut p, kind, b);
            assert_eq!(p, packet(kind, b, d, 143), "{kind:?} {b}");
        }
    }
}

#[test]
fn a_flood_from_100000_forged_sources_stays_bounded_and_the_daemon_responsive() {
    const TEST: &str = "a_flood_from_100000_forged_sources_stays_bounded_and_the_daemon_responsive";
    if !privileged(TEST) {
        return;
    }
    let Some(bin) = release_bin(TEST) else {
        return;
    };
    const SOURCES: u64 = 100_000;
    let net = Net::new();
    let id = &net.target[3..];
    // The forged sources come from a /64 assigned to the scanner namespace.
    must(&format!(
        "ip -n {s} addr add 2001:db8:f::1/64 dev vs{id} nodad && \
         mac=$(ip -n {t} -o link show vt{id} | sed 's/.*link.ether \\([^ ]*\\).*/\\1/') && \
         ip -n {s} neigh replace {TARGET6} lladdr $mac dev vs{id} nud permanent",
        s = net.scanner,
        t = net.target
    ));
    let mut run = Run::new(&net.target);
    run.bin = bin;
    run.write_config("UDP_PORTS=\"7\"\nBLOCK_UDP=\"0\"");
    std::fs::write(run.p("portsentry.ignore"), "").unwrap();
    run.start_ok(&["-sudp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let pid = run.pid().unwrap();
    // A real scanner in another prefix, probing while the flood runs.
    const REAL6: &str = "2001:db8:e::5";
    must(&format!(
        "ip -n {} addr add {REAL6}/64 dev vs{id} nodad",
        net.scanner
    ));
    let arrivals = std::sync::Arc::new(Arrivals::new(&net.target, REAL6));
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let real = {
        let (progress, scanner, arrivals) =
            (progress.clone(), net.scanner.clone(), arrivals.clone());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering::Relaxed;
            let t = Instant::now();
            while progress.load(Relaxed) < SOURCES / 2 && t.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // A datagram every 25 ms until the host has received one (at most 40): under
            // the flood the target's input backlog can refuse a packet before any capture
            // sees it, and the kernel does not tell a UDP sender. A real scanner retries too.
            Net::within(&scanner, move || {
                let s = std::net::UdpSocket::bind((REAL6, 0)).unwrap();
                let mut sends = Vec::new();
                let mut during = true;
                let mut received = None;
                for i in 0..40 {
                    if i > 0 {
                        std::thread::sleep(Duration::from_millis(25));
                        if arrivals.count() > 0 {
                            received = Some(i - 1);
                            break;
                        }
                    }
                    sends.push(Instant::now());
                    s.send_to(b"probe", (TARGET6, 7)).unwrap();
                    during &= i > 0 || progress.load(Relaxed) < SOURCES;
                }
                if received.is_none() && arrivals.count() > 0 {
                    received = Some(sends.len() - 1);
                }
                (sends, received, during)
            })
        })
    };

    let t0 = Instant::now();
    let before = link_counts(&net.scanner, &format!("vs{id}"));
    let sent = flood::run(
        &net.scanner,
        flood::Orders {
            sources: flood::Sources::V6Counting {
                base: "2001:db8:f::1:0".parse().unwrap(),
            },
            target: TARGET6.parse().unwrap(),
            kind: flood::Kind::Udp,
            ports: vec![7],
            count: SOURCES,
            max: Duration::from_secs(30),
            // Issue 23's flood: 200,000 forged packets a second for 0.5 s. Unpaced, on a
            // quiet machine, the sender reached 305,000-421,000 a second (2026-12-07), more
            // than this 2-core machine's daemon judges from a new source each packet while
            // the sender takes a core: the ring then lost packets in 10 of 33 runs (up to
            // 10.7% of them), and a real probe among the lost ones was never logged (what
            // failed 2 runs in 150 on 2026-12-07). How fast the capture goes is measured apart
            // (`bench/capture-rate.py`).
            rate: Some(200_000),
            seed: 1,
            stop: None,
        },
        progress.clone(),
    );
    let flood = t0.elapsed();
    let after = link_counts(&net.scanner, &format!("vs{id}"));
    assert_eq!(
        sent.packets, SOURCES,
        "the flood was cut short by its time bound"
    );
    // The real probe from another prefix was logged, though the forged sources had used up
    // their own prefix's report bucket.
    let (sends, received, during) = real.join().unwrap();
    assert!(during, "the real probe went out after the flood had ended");
    let received = received.expect("the target received none of 40 real probes");
    let real_line = format!("attackalert: UDP scan from host: {REAL6}/{REAL6} to UDP port: 7");
    let t1 = Instant::now();
    while run.log.arrival(&real_line).is_none() && t1.elapsed() < common::EVENT_WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not logged: say where it was lost (the ring's drops, what was judged and held back).
    let logged_at = run.log.arrival(&real_line).unwrap_or_else(|| {
        panic!(
            "the real probe from {REAL6} reached the host (send {} of {}) and was never \
             logged; packet path of the daemon:\n{}",
            received + 1,
            sends.len(),
            run.path_text()
        )
    });
    let real_ms = logged_at.duration_since(sends[received]).as_secs_f64() * 1000.0;
    eprintln!(
        "flood: a real probe from {REAL6}, sent mid-flood, was logged {real_ms:.1} ms after \
         the first of its sends that reached the host (send {} of {}, 25 ms apart)",
        received + 1,
        sends.len()
    );
    assert!(
        real_ms < 1000.0,
        "the real probe was logged {real_ms:.1} ms after the host received it"
    );
    // Responsive: a real probe from another address right after the flood is detected.
    std::thread::sleep(Duration::from_millis(200));
    let probe = Instant::now();
    // (`udp` waits 0.7 s for a reply that never comes; the arrival time is what counts.)
    assert!(net.udp(Some(SCANNER4B), TARGET4, 7).is_none());
    let after_line =
        format!("attackalert: UDP scan from host: {SCANNER4B}/{SCANNER4B} to UDP port: 7");
    run.log.wait_line(&after_line);
    let detected = run.log.arrival(&after_line).unwrap().duration_since(probe);
    assert!(alive(pid), "daemon died under the flood");
    // Memory: peak RSS under 64 MB.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Disk and log: rate-limited, with a summary of what was suppressed.
    // The summary comes once per 10 s interval.
    let t1 = Instant::now();
    while run.log.count("attackalert: Rate limit: ") == 0 && t1.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    run.log.wait_contains("attackalert: Rate limit: ");
    let history = run.read("portsentry.history").lines().count();
    let reports = run.log.count("attackalert: UDP scan from host: ");
    let suppressed: u64 = run
        .log
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("attackalert: Rate limit: "))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "flood: {} forged sources in {:.2} s ({:.0} packets/s, {} ENOBUFS waits); the \
         scanner's veth sent {} and dropped {} (the target's backlog was full); peak RSS {} kB; \
         {reports} reports logged, {suppressed} suppressed (summarised), {history} history \
         lines; a real probe mid-flood was logged {real_ms:.1} ms after it reached the host, \
         one after the flood {:.1} ms\nflood: packet path of the daemon:\n{}",
        sent.packets,
        flood.as_secs_f64(),
        sent.rate(),
        sent.enobufs,
        after.2 - before.2,
        after.3 - before.3,
        hwm,
        detected.as_secs_f64() * 1000.0,
        run.path_text()
    );
    assert!(hwm < 64 * 1024, "peak RSS {hwm} kB");
    // The flood was read several blocks a pass: the loop rested after busy passes (and the
    // status says how often), where a pass per block cost a wake-up and a socket read each.
    let capture = run.status_json()["path"]["capture"].clone();
    let (passes, rests) = (
        capture["ring_passes"].as_u64().unwrap_or(0),
        capture["ring_rests"].as_u64().unwrap_or(0),
    );
    assert!(
        rests >= 1 && rests <= passes,
        "{rests} rests in {passes} ring passes"
    );
    // All prefixes: the global and reserve buckets (200 + 20/s, 20 + 2/s); the forged
    // prefix alone: its own bucket (20 + 2/s).
    let secs = t0.elapsed().as_secs() as usize + 2;
    let bound = 220 + 22 * secs;
    let forged = run
        .log
        .count("attackalert: UDP scan from host: 2001:db8:f:");
    assert!(
        forged <= 20 + 2 * secs,
        "{forged} reports from the forged prefix"
    );
    assert!(
        history <= bound,
        "{history} history lines for a flood (bound {bound})"
    );
    assert!(reports <= bound, "{reports} reports logged (bound {bound})");
    assert!(suppressed > 0, "nothing summarised");
    // The summary says which prefix the suppressed reports came from.
    assert!(
        run.log
            .lines()
            .iter()
            .any(|l| l.starts_with("attackalert: Rate limit: ")
                && l.contains(" from 2001:db8:f::/64")),
        "{:#?}",
        run.log.lines()
    );
}

#[test]
fn block_rate_limit_refuses_blocks_over_the_cap_and_says_so() {
    if !privileged("block_rate_limit_refuses_blocks_over_the_cap_and_says_so") {
        return;
    }
    let net = Net::new();
    let sources = net.scanner_addresses(3);
    let run = Run::new(&net.target);
    run.write_config(
        "UDP_PORTS=\"7\"\nBLOCK_UDP=\"1\"\nKILL_ROUTE=\"true $TARGET$\"\nBLOCK_RATE_LIMIT=\"2\"",
    );
    run.start_ok(&["-udp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // Six scanners (three IPv4, three IPv6) against a cap of two blocks a minute.
    for s in &sources {
        let dst = if s.contains(':') { TARGET6 } else { TARGET4 };
        // The reply wait (0.7 s) also spaces the probes out.
        let _ = net.udp(Some(s), dst, 7);
    }
    run.log.wait_line(
        "adminalert: Block rate limit of 2 per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears.",
    );
    let t = Instant::now();
    while run.log.count("attackalert: Not blocking host: ") < 4
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(run.log.count("attackalert: Not blocking host: "), 4);
    assert_eq!(run.log.count("Block rate limit of 2 per minute reached"), 1);
    // Only the two blocks that ran are on record.
    run.wait_file("portsentry.history", "Blocked");
    std::thread::sleep(Duration::from_millis(200));
    let h = run.read("portsentry.history");
    assert_eq!(h.lines().count(), 2, "{h}");
    // The summary of refused blocks comes with the next 10 s interval.
    let t = Instant::now();
    while run.log.count("adminalert: Block rate limit: ") == 0
        && t.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        run.log
            .lines()
            .iter()
            .any(|l| l.starts_with("adminalert: Block rate limit: 4 blocks refused in the last ")),
        "{:#?}",
        run.log.lines()
    );
}
