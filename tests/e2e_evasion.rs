//! End to end, as root, in network namespaces made by the tests (issue 18): nmap's evasion
//! options and hand-made packets (tests/evasion.py, Debian's python3-scapy) against the
//! stealth and advanced modes, each probe from a source address of its own. Every case
//! asserts that what the target's own stack did with the probe (nmap's port state, the
//! answer evasion.py saw, or the kernel's own counters) is what the daemon reported: a probe
//! the host accepted is reported, one it dropped (an overlapping or never-completed datagram,
//! a bad checksum, an IPv6 first fragment without its TCP header) is not, and is never
//! blocked.
//!
//! The cases run in tests of their own namespaces, so cargo runs them side by side.
//! Without root, iproute2, nmap or python3-scapy the tests say so loudly and are skipped,
//! unless CI=true, where that is a failure.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Root, iproute2, nmap and Debian's python3 with scapy.
fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let ok = |cmd: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !ok("command -v nmap") {
        missing.push("nmap");
    }
    if !ok("/usr/bin/python3 -c 'import scapy.all'") {
        missing.push("python3-scapy");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs {missing:?}, which are missing under CI=true");
    }
    eprintln!("\n*** SKIPPED {test}: needs {missing:?} (apt-get install nmap python3-scapy) ***\n");
    false
}

const TCP_PORT: u16 = 143;
const UDP_PORT: u16 = 7;
const SCTP_PORT: u16 = 80;

/// The scanner's veth.
fn scanner_if(net: &Net) -> String {
    format!("vs{}", &net.scanner[3..])
}

/// `n` more scanner addresses of one family: v4 198.51.100.(100+i), v6 2001:db8::7:i.
fn sources(net: &Net, v6: bool, n: usize) -> Vec<String> {
    let dev = scanner_if(net);
    let mut batch = String::new();
    let mut out = Vec::new();
    for i in 0..n {
        let a = if v6 {
            format!("2001:db8::7:{:x}", i + 1)
        } else {
            assert!(i < 150);
            format!("198.51.100.{}", 100 + i)
        };
        let plen = if v6 { "64 nodad" } else { "24" };
        batch.push_str(&format!("addr add {a}/{plen} dev {dev}\n"));
        out.push(a);
    }
    let path = std::env::temp_dir().join(format!("{}-{}.batch", net.scanner, v6));
    std::fs::write(&path, batch).unwrap();
    must(&format!("ip -n {} -b {}", net.scanner, path.display()));
    let _ = std::fs::remove_file(path);
    out
}

/// A daemon in the target namespace with `modes`, blocking through a KILL_ROUTE that records
/// the address in `actions`.
fn daemon(net: &Net, modes: &[&str], extra: &str) -> Run {
    let run = Run::new(&net.target);
    let a = run.p("actions").display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"{TCP_PORT},{SCTP_PORT},5\"\n\
         UDP_PORTS=\"{UDP_PORT}\"\n\
         BLOCK_TCP=\"1\"\n\
         BLOCK_UDP=\"1\"\n\
         KILL_ROUTE=\"echo $TARGET$ >> {a}\"\n\
         {extra}"
    ));
    run.start_ok(modes);
    run
}

/// The daemon's lines naming `src` as the host.
fn lines_from(run: &Run, src: &str) -> Vec<String> {
    let tag = format!("from host: {src}/{src} ");
    run.log
        .lines()
        .into_iter()
        .filter(|l| l.contains(&tag))
        .collect()
}

/// Was `src` blocked (its KILL_ROUTE ran)?
fn blocked(run: &Run, src: &str) -> bool {
    run.read("actions").lines().any(|l| l == src)
}

/// `portsentry status --json` of the daemon: its counters.
fn counters(run: &Run) -> serde_json::Value {
    let o = Command::new(BIN)
        .args(["status", "--json", "-c"])
        .arg(run.p("portsentry.conf"))
        .arg("--pidfile")
        .arg(run.p("portsentry.pid"))
        .output()
        .expect("portsentry status runs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&o.stdout)));
    v["counters"].clone()
}

/// A counter of the kernel's (nstat, absolute) in namespace `ns`.
fn nstat(ns: &str, name: &str) -> u64 {
    let o = sh(&format!("ip netns exec {ns} nstat -az {name}"));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// One nmap run from `from` at one port; the port's state as nmap prints it ("closed",
/// "filtered", "open|filtered", ...), or the host line for a ping scan.
fn nmap(net: &Net, args: &str, from: &str, dst: &str, port: Option<u16>) -> String {
    let six = if dst.contains(':') { "-6" } else { "" };
    let ports = port.map(|p| format!("-p {p}")).unwrap_or_default();
    let cmd = format!(
        "ip netns exec {} timeout 60 nmap {six} -n {args} -S {from} -e {} {ports} \
         --max-retries 0 --initial-rtt-timeout 300ms --max-rtt-timeout 500ms {dst}",
        net.scanner,
        scanner_if(net)
    );
    let o = sh(&cmd);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd} failed: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    match port {
        Some(p) => out
            .lines()
            .find(|l| l.starts_with(&format!("{p}/")))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no port line in nmap's output:\n{out}"))
            .to_string(),
        None => {
            if out.contains("Host is up") {
                "up".into()
            } else {
                "down".into()
            }
        }
    }
}

/// A probe from a source of its own that cannot be confused with the others, sent last: once
/// its line is there, every packet sent before it has been judged (the capture is in order).
fn sentinel(net: &Net, run: &Run, from: &str) {
    nmap(net, "-Pn -sS", from, TARGET4, Some(TCP_PORT));
    run.log.wait_contains(&format!("from host: {from}/{from} "));
}

/// nmap's fragmentation options with each of -sS, -sF, -sN, -sX, IPv4 (nmap 7.93 refuses
/// -f with IPv6: "fragmentation are not supported with IPv6"; the IPv6 cases are hand-made
/// below): the host reassembles each and answers with a RST, so each is reported, with its
/// scan kind; a bad checksum (--badsum, also fragmented) is answered by nobody and reported
/// by nobody. Against -stcp, and a few against -atcp.
#[test]
fn nmap_fragmented_scans_are_judged_as_the_host_judges_them() {
    if !ready("nmap_fragmented_scans_are_judged_as_the_host_judges_them") {
        return;
    }
    let net = Net::new();
    let srcs = sources(&net, false, 40);
    let mut src = srcs.iter();
    for modes in [&["-stcp"][..], &["-atcp"][..]] {
        let run = daemon(&net, modes, "");
        let scans: &[(&str, &str)] = &[
            ("-sS", "TCP SYN/Normal scan"),
            ("-sF", "TCP FIN scan"),
            ("-sN", " TCP NULL scan"),
            ("-sX", "TCP XMAS scan"),
        ];
        let frags: &[&str] = if modes[0] == "-stcp" {
            &["-f", "-ff", "--mtu 8", "--mtu 16", "--mtu 24"]
        } else {
            &["-f", "--mtu 16"]
        };
        let mut table = Vec::new();
        for (scan, text) in scans {
            for frag in frags {
                let from = src.next().unwrap().clone();
                let state = nmap(
                    &net,
                    &format!("-Pn {scan} {frag}"),
                    &from,
                    TARGET4,
                    Some(TCP_PORT),
                );
                table.push((format!("{scan} {frag}"), from, state, Some(*text)));
            }
        }
        for args in ["-sS --badsum", "-sS -f --badsum", "-sU --badsum"] {
            let from = src.next().unwrap().clone();
            let port = if args.contains("-sU") {
                UDP_PORT
            } else {
                TCP_PORT
            };
            let state = nmap(&net, &format!("-Pn {args}"), &from, TARGET4, Some(port));
            table.push((args.to_string(), from, state, None));
        }
        sentinel(&net, &run, src.next().unwrap());
        for (args, from, state, text) in &table {
            // A RST (closed), or an ICMP port unreachable (closed for UDP): the host took it.
            let answered = state == "closed";
            let lines = lines_from(&run, from);
            assert_eq!(
                !lines.is_empty(),
                answered,
                "{modes:?} nmap {args}: the host said {state}, the daemon {lines:?}"
            );
            if let Some(text) = text {
                assert!(
                    answered,
                    "{modes:?} nmap {args}: the host did not answer ({state})"
                );
                let want =
                    format!("attackalert: {text} from host: {from}/{from} to TCP port: {TCP_PORT}");
                assert!(lines.contains(&want), "{modes:?} nmap {args}: {lines:?}");
            } else {
                assert!(!blocked(&run, from), "{args}: blocked");
            }
        }
        let c = counters(&run);
        // Three with --badsum; a UDP one only where a UDP mode captures.
        assert!(c["bad_checksum_packets"].as_u64().unwrap() >= 2, "{c}");
        // --mtu 24 leaves nmap's TCP headers whole (20 bytes, 24 for its SYN with the MSS
        // option): not fragmented. The fragmented --badsum probe is reassembled too.
        let fragmented = table
            .iter()
            .filter(|t| t.3.is_some() && !t.0.contains("mtu 24"))
            .count() as u64
            + 1;
        assert!(
            c["datagrams_reassembled"].as_u64().unwrap() >= fragmented,
            "{c} < {fragmented}"
        );
        run.stop();
    }
}

/// What tests/evasion.py sends (see its `case`), and what the Linux stack does with it: the
/// overlap and length rules of `inet_frag_queue_insert` and `ip_frag_queue`, out-of-order and
/// tiny fragments, `ipfrag_max_dist`, ECN, 65,535 bytes, RFC 7112, checksums.
const CASES4: &[(&str, bool)] = &[
    ("in_order_8", true),
    ("reverse", true),
    ("shuffled", true),
    ("tiny_first", true),
    ("dup_exact", true),
    ("dup_rewrites_flags", true),
    ("dup_two_runs", false),
    ("overlap_tail", false),
    ("overlap_superset", false),
    ("rfc1858", false),
    ("zero_length", false),
    ("two_last_ends", false),
    ("past_last_end", false),
    ("trim_non8", true),
    ("ecn_mix", false),
    ("ecn_ce_ect0", true),
    ("lone_first", false),
    ("lone_last", false),
    ("max_dist_70", false),
    ("max_dist_60", true),
    ("oversize", false),
    ("udp_fragmented", true),
    ("icmp_echo_fragmented", true),
    ("badsum_fragmented", false),
    ("tcp_good", true),
    ("tcp_badsum", false),
    ("udp_good", true),
    ("udp_badsum", false),
    ("udp_zero_sum", true),
    ("bad_ip_header_sum", false),
    ("icmp_echo_badsum", false),
];

const CASES6: &[(&str, bool)] = &[
    // nmap -f's split: the first fragment holds 8 bytes of TCP, no whole header.
    ("in_order_8", false),
    ("first_24", true),
    ("first_24_reverse", true),
    ("dup_exact", true),
    ("overlap6", false),
    ("non8_dropped_alone", true),
    ("lone_first", false),
    ("max_dist_70", true),
    ("udp_fragmented", true),
    ("hbh_before_fragment", true),
    ("icmp_echo_fragmented", true),
    ("badsum_fragmented", false),
    ("tcp_good", true),
    ("tcp_badsum", false),
    ("udp_good", true),
    ("udp_badsum", false),
    ("udp_zero_sum", false),
    ("icmp_echo_badsum", false),
];

/// The line a reported case gets.
fn expected_line(case: &str, from: &str) -> String {
    if case.starts_with("udp") {
        format!("attackalert: UDP scan from host: {from}/{from} to UDP port: {UDP_PORT}")
    } else if case.starts_with("icmp") {
        let w = if from.contains(':') { "ICMPv6" } else { "ICMP" };
        format!("attackalert: {w} echo scan from host: {from}/{from} to {w} port: 0")
    } else {
        format!("attackalert: TCP SYN/Normal scan from host: {from}/{from} to TCP port: {TCP_PORT}")
    }
}

#[test]
fn hand_made_fragments_and_checksums_are_judged_as_the_host_judges_them() {
    if !ready("hand_made_fragments_and_checksums_are_judged_as_the_host_judges_them") {
        return;
    }
    let net = Net::new();
    let run = daemon(&net, &["-stcp", "-sudp"], "");
    let v4 = sources(&net, false, CASES4.len() + 1);
    let v6 = sources(&net, true, CASES6.len());
    let mut rows = Vec::new();
    let mut want = BTreeMap::new();
    for ((case, accept), from) in CASES4.iter().zip(&v4) {
        rows.push(format!("{case} {from} {TARGET4} {TCP_PORT} {UDP_PORT}"));
        want.insert(from.clone(), (*case, *accept));
    }
    for ((case, accept), from) in CASES6.iter().zip(&v6) {
        rows.push(format!("{case} {from} {TARGET6} {TCP_PORT} {UDP_PORT}"));
        want.insert(from.clone(), (*case, *accept));
    }
    let list = run.p("cases");
    std::fs::write(&list, rows.join("\n") + "\n").unwrap();
    let reasm_fails = nstat(&net.target, "IpReasmFails");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/evasion.py");
    let o = sh(&format!(
        "ip netns exec {} timeout 120 /usr/bin/python3 {script} cases {} {}",
        net.scanner,
        list.display(),
        scanner_if(&net)
    ));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "evasion.py: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    sentinel(&net, &run, v4.last().unwrap());
    let mut seen = 0;
    let mut report = String::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [case, from, verdict] = f[..] else {
            continue;
        };
        seen += 1;
        let (_, accept) = want[from];
        let lines = lines_from(&run, from);
        let reported = lines.iter().any(|l| *l == expected_line(case, from));
        report.push_str(&format!(
            "{case:22} {from:18} host {verdict:8} daemon {lines:?}\n"
        ));
        // What the host did is what the daemon reported ...
        assert_eq!(
            verdict == "accepted",
            !lines.is_empty(),
            "{case} from {from}: the host's stack {verdict}, the daemon said {lines:?}\n{report}"
        );
        // ... with the right kind, and what the kernel does is what these cases are about.
        assert_eq!(
            reported, accept,
            "{case} from {from}: {verdict}, {lines:?}\n{report}"
        );
        if !accept {
            assert!(!blocked(&run, from), "{case}: {from} was blocked");
        }
    }
    eprintln!("{report}");
    assert_eq!(seen, want.len(), "{out}");
    // The IPv6 extension headers before the fragment header count as options (§3.2).
    let hbh = &v6[CASES6
        .iter()
        .position(|c| c.0 == "hbh_before_fragment")
        .unwrap()];
    assert!(
        lines_from(&run, hbh)
            .iter()
            .any(|l| l.contains("has IP options set")),
        "{:?}",
        lines_from(&run, hbh)
    );
    // The kernel failed as many IPv4 datagrams as it should have, and the daemon counted
    // the same kinds of things.
    assert!(nstat(&net.target, "IpReasmFails") > reasm_fails);
    let c = counters(&run);
    let bad = CASES4
        .iter()
        .chain(CASES6)
        .filter(|c| {
            c.0.contains("badsum") || c.0.contains("bad_ip") || (c.0 == "udp_zero_sum" && !c.1)
        })
        .count() as u64;
    assert!(
        c["bad_checksum_packets"].as_u64().unwrap() >= bad,
        "{c} < {bad}"
    );
    assert!(c["datagrams_unassembled"].as_u64().unwrap() >= 8, "{c}");
    let peak = c["fragment_cache_peak_bytes"].as_u64().unwrap();
    assert!(peak > 0 && peak <= 4 << 20, "{c}");
}

/// nmap -sY and -sZ (SCTP INIT, COOKIE ECHO) and its ICMP host discovery (-PE, -PP, -PM,
/// and -6 -PE) are reported by the TCP stealth mode, report-only by default: no block, no
/// history line. The host answered each (an ICMP protocol unreachable without the SCTP
/// module, the echo and timestamp replies) except the address-mask request, which Linux
/// takes in (its IcmpInAddrMasks counter) and never answers. With BLOCK_ICMP_SCTP they are
/// hits like the others and blocked.
#[test]
fn sctp_and_icmp_probes_are_reported_and_block_only_when_asked() {
    if !ready("sctp_and_icmp_probes_are_reported_and_block_only_when_asked") {
        return;
    }
    let net = Net::new();
    let v4 = sources(&net, false, 12);
    let v6 = sources(&net, true, 2);
    let run = daemon(&net, &["-stcp"], "");
    let ping = "-sn --disable-arp-ping";
    let masks = nstat(&net.target, "IcmpInAddrMasks");
    let cases = [
        ("-Pn -sY", &v4[0], Some(SCTP_PORT), "SCTP INIT scan", "SCTP"),
        (
            "-Pn -sZ",
            &v4[1],
            Some(SCTP_PORT),
            "SCTP COOKIE-ECHO scan",
            "SCTP",
        ),
        (
            &format!("{ping} -PE")[..],
            &v4[2],
            None,
            "ICMP echo scan",
            "ICMP",
        ),
        (
            &format!("{ping} -PP")[..],
            &v4[3],
            None,
            "ICMP timestamp scan",
            "ICMP",
        ),
        (
            &format!("{ping} -PM")[..],
            &v4[4],
            None,
            "ICMP address mask scan",
            "ICMP",
        ),
    ];
    let mut states = Vec::new();
    for (args, from, port, ..) in &cases {
        states.push(nmap(&net, args, from, TARGET4, *port));
    }
    let six = nmap(&net, &format!("{ping} -PE"), &v6[0], TARGET6, None);
    // An SCTP INIT to a port the TCP mode does not watch: nothing.
    nmap(&net, "-Pn -sY", &v4[5], TARGET4, Some(81));
    sentinel(&net, &run, &v4[11]);
    for ((args, from, port, text, word), state) in cases.iter().zip(&states) {
        let port = port.unwrap_or(0);
        let want = format!("attackalert: {text} from host: {from}/{from} to {word} port: {port}");
        assert_eq!(lines_from(&run, from), vec![want], "nmap {args} ({state})");
        assert!(!blocked(&run, from), "{args}: report-only, yet blocked");
        if args.contains("-PM") {
            assert_eq!(state, "down", "Linux never answers address-mask requests");
        } else {
            assert!(
                ["up", "filtered", "closed"].contains(&state.as_str()),
                "nmap {args}: {state}"
            );
        }
    }
    assert!(
        nstat(&net.target, "IcmpInAddrMasks") > masks,
        "the host took the mask request in"
    );
    assert_eq!(six, "up");
    assert_eq!(
        lines_from(&run, &v6[0]),
        vec![format!(
            "attackalert: ICMPv6 echo scan from host: {0}/{0} to ICMPv6 port: 0",
            v6[0]
        )]
    );
    assert!(lines_from(&run, &v4[5]).is_empty());
    let hist = run.read("portsentry.history");
    for (_, from, ..) in &cases {
        assert!(
            !hist.contains(&format!("/{from} ")),
            "report-only, yet in the history: {hist}"
        );
    }
    run.stop();
    // BLOCK_ICMP_SCTP="1": counted and blocked, written as the TCP mode's line.
    let run = daemon(&net, &["-stcp"], "BLOCK_ICMP_SCTP=\"1\"");
    nmap(&net, &format!("{ping} -PE"), &v4[6], TARGET4, None);
    nmap(&net, "-Pn -sY", &v4[7], TARGET4, Some(SCTP_PORT));
    run.wait_file("actions", &format!("{}\n", v4[7]));
    run.wait_file("actions", &format!("{}\n", v4[6]));
    let hist = run.wait_file(
        "portsentry.history",
        &format!("Host: {0}/{0} Port: 80 TCP Blocked", v4[7]),
    );
    assert!(
        hist.contains(&format!("Host: {0}/{0} Port: 0 TCP Blocked", v4[6])),
        "{hist}"
    );
    assert!(hist.lines().all(|l| fail2ban_host(l).is_some()), "{hist}");
}

/// 100,000 lone fragments from forged sources (a new one each, 198.18.0.0/15, first and
/// later fragments of up to 1,480 bytes), and a real nmap -f scan in the middle of them: the
/// real scan is detected and blocked, the reassembly cache stays within its 4 MiB. The
/// kernel's own cache (4 MiB, shared by the namespace) is full within a few thousand of
/// them: what it did with the real scan is printed (README "Evasion").
#[test]
fn a_flood_of_incomplete_fragments_does_not_hide_a_real_fragmented_scan() {
    if !ready("a_flood_of_incomplete_fragments_does_not_hide_a_real_fragmented_scan") {
        return;
    }
    let net = Net::new();
    let real = sources(&net, false, 2);
    let run = daemon(&net, &["-atcp"], "");
    let pid = run.pid().unwrap();
    let fails0 = nstat(&net.target, "IpReasmFails");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/evasion.py");
    let flood = Command::new("ip")
        .args(["netns", "exec", &net.scanner, "/usr/bin/python3", script])
        .args(["flood", TARGET4, "100000", "25000", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("flood starts");
    // Half-way through (the packets are built first; give it a second or two), as the
    // target's kernel counts the fragments it got (IpReasmReqds), not as the daemon does.
    let reqds = || nstat(&net.target, "IpReasmReqds");
    let before = reqds();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) && reqds() < before + 40_000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = reqds() - before;
    let state = nmap(&net, "-Pn -sS -f", &real[0], TARGET4, Some(TCP_PORT));
    let o = flood.wait_with_output().expect("flood ends");
    let sent = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{sent}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after = reqds() - before;
    assert!(
        during > 10_000 && after > during + 10_000,
        "the scan did not run during the flood: {during} then {after} ({sent})"
    );
    run.log.wait_line(&format!(
        "attackalert: TCP SYN/Normal scan from host: {0}/{0} to TCP port: {TCP_PORT}",
        real[0]
    ));
    run.wait_file("actions", &format!("{}\n", real[0]));
    let c = counters(&run);
    let peak = c["fragment_cache_peak_bytes"].as_u64().unwrap();
    assert!(peak <= 4 << 20, "cache peak {peak} bytes");
    // The flood reached the daemon: every fragment was handed to the reassembly or, on a
    // loaded machine, lost in the capture ring (counted, never silently).
    let seen = c["fragments"].as_u64().unwrap() + c["capture_drops"].as_u64().unwrap();
    assert!(seen >= 99_000, "{c}");
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("")
        .to_string();
    eprintln!(
        "flood: {} ; daemon: fragments {}, reassembled {}, not reassembled {}, cache peak {peak} \
         bytes, ring drops {}, {rss}; kernel: IpReasmFails +{}, nmap saw the port {state}",
        sent.trim(),
        c["fragments"],
        c["datagrams_reassembled"],
        c["datagrams_unassembled"],
        c["capture_drops"],
        nstat(&net.target, "IpReasmFails") - fails0
    );
}

/// What was detected before issue 18 still is: IP options, IPv6 hop-by-hop, routing and
/// destination-options headers (with 1.2's options line), source ports 53 and 20, a payload
/// on the SYN, a TTL of 1.
#[test]
fn what_was_detected_before_still_is() {
    if !ready("what_was_detected_before_still_is") {
        return;
    }
    let net = Net::new();
    let run = daemon(&net, &["-stcp"], "");
    let v4 = sources(&net, false, 8);
    let v6 = sources(&net, true, 3);
    let syn = |from: &str| {
        format!("attackalert: TCP SYN/Normal scan from host: {from}/{from} to TCP port: {TCP_PORT}")
    };
    let options = |from: &str| {
        format!(
            "attackalert: Packet from host: {from}/{from} to TCP port: {TCP_PORT} has IP options set (detection avoidance technique)."
        )
    };
    for (args, from) in [
        ("-Pn -sS --ip-options R", &v4[0]),
        ("-Pn -sS -g 53", &v4[1]),
        ("-Pn -sS -g 20", &v4[2]),
        ("-Pn -sS --data-length 40", &v4[3]),
        ("-Pn -sS --ttl 1", &v4[4]),
    ] {
        let state = nmap(&net, args, from, TARGET4, Some(TCP_PORT));
        assert_eq!(state, "closed", "{args}");
        run.log.wait_line(&syn(from));
        if args.contains("ip-options") {
            run.log.wait_line(&options(from));
        }
    }
    let rows: Vec<String> = ["hop_by_hop", "routing_header", "dest_opts"]
        .iter()
        .zip(&v6)
        .map(|(c, from)| format!("{c} {from} {TARGET6} {TCP_PORT} {UDP_PORT}"))
        .collect();
    let list = run.p("cases");
    std::fs::write(&list, rows.join("\n") + "\n").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/evasion.py");
    let o = sh(&format!(
        "ip netns exec {} timeout 60 /usr/bin/python3 {script} cases {} {}",
        net.scanner,
        list.display(),
        scanner_if(&net)
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    for from in &v6 {
        assert!(out.contains(&format!("{from} accepted")), "{out}");
        run.log.wait_line(&syn(from));
        run.log.wait_line(&options(from));
    }
}

/// nmap -T1 ("sneaky": 15 s before each probe) is still detected. Slow: a test of its own,
/// run beside the others.
#[test]
fn a_slow_t1_scan_is_still_detected() {
    if !ready("a_slow_t1_scan_is_still_detected") {
        return;
    }
    let net = Net::new();
    let run = daemon(&net, &["-stcp"], "");
    let from = &sources(&net, false, 1)[0];
    let state = nmap(&net, "-Pn -sS -T1", from, TARGET4, Some(TCP_PORT));
    assert_eq!(state, "closed");
    run.log.wait_line(&format!(
        "attackalert: TCP SYN/Normal scan from host: {from}/{from} to TCP port: {TCP_PORT}"
    ));
}
