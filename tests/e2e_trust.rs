//! End to end, as root, in network namespaces made by the tests (issue 24, items 3 and 4):
//! - a KILL_HOSTS_DENY line blocks what it names, IPv4 and IPv6, as Debian's libwrap reads
//!   it (`tcpdmatch` from the `tcpd` package, run on the written file), and goes when the
//!   block ends (BLOCK_TIMEOUT, `portsentry blocked del`), the admin's other lines kept;
//! - a watched port is unwatched only while a socket would accept the probe (a TCP listener,
//!   a UDP socket that would receive it): TIME_WAIT, established connections and the local
//!   ports of outgoing connections never hide a port from `-stcp` / `-atcp`, and a port that
//!   is not watched is said once in syslog and listed by `portsentry status`.
//!
//! Without root, iproute2, nmap or tcpdmatch the tests say so loudly and are skipped, unless
//! CI=true, where that is a failure.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

/// `tcpdmatch -d sshd ADDR` in `dir` (reads `dir`/hosts.allow and `dir`/hosts.deny): the
/// `access:` verdict, "denied" or "granted".
fn tcpd_access(dir: &std::path::Path, addr: &str) -> String {
    let o = Command::new("/usr/sbin/tcpdmatch")
        .args(["-d", "sshd", addr])
        .current_dir(dir)
        .output()
        .expect("tcpdmatch runs");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("access:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| {
            panic!(
                "tcpdmatch {addr}: no access line: {text}{}",
                String::from_utf8_lossy(&o.stderr)
            )
        })
}

#[test]
fn hosts_deny_lines_deny_ipv4_and_ipv6_scanners_through_tcpdmatch() {
    let test = "hosts_deny_lines_deny_ipv4_and_ipv6_scanners_through_tcpdmatch";
    if !tcpd_ready(test) {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    let a = run.p("actions").display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"11\"\n\
         BLOCK_TCP=\"1\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$\"\n\
         KILL_RUN_CMD=\"echo cmd $TARGET$ >> {a}\"\n"
    ));
    run.start_ok(&["-tcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // Before any block, everyone is granted (the file may not exist yet: libwrap grants).
    assert_eq!(tcpd_access(run.dir.path(), SCANNER6), "granted");

    net.connect(None, TARGET4, 11).expect("v4 connect");
    net.connect(None, TARGET6, 11).expect("v6 connect");
    run.log.wait_line(&format!(
        "attackalert: Host {SCANNER6} has been blocked via wrappers with string: \"ALL: [{SCANNER6}]\""
    ));
    run.log.wait_line(&format!(
        "attackalert: Host {SCANNER4} has been blocked via wrappers with string: \"ALL: {SCANNER4}\""
    ));
    // The command's $TARGET$ stays bare (shells, ip and iptables want it so).
    run.wait_file("actions", &format!("cmd {SCANNER6}\n"));
    let deny = run.read("hosts.deny");
    assert!(deny.contains(&format!("ALL: [{SCANNER6}]\n")), "{deny:?}");
    assert!(deny.contains(&format!("ALL: {SCANNER4}\n")), "{deny:?}");

    // What libwrap makes of the file: the scanners are denied, other hosts are not.
    let dir = run.dir.path();
    assert_eq!(tcpd_access(dir, SCANNER6), "denied");
    assert_eq!(tcpd_access(dir, SCANNER4), "denied");
    assert_eq!(tcpd_access(dir, "2001:db8::99"), "granted");
    assert_eq!(tcpd_access(dir, SCANNER4B), "granted");
}

/// The admin's own hosts.deny: a comment, a line for another host that contains the
/// scanner's address as a substring, a bare IPv6 line an earlier version wrote for the
/// scanner (it denies nothing, but is the same host's: it goes too).
fn admin_hosts_deny(run: &Run) -> String {
    let admin = format!(
        "# the admin's file: ALL: {SCANNER4}\n\
         sshd: {SCANNER4}0\n\
         ALL: [{SCANNER6}0]\n\
         in.ftpd: ALL EXCEPT LOCAL\n"
    );
    std::fs::write(run.p("hosts.deny"), format!("{admin}ALL: {SCANNER6}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(run.p("hosts.deny"), std::fs::Permissions::from_mode(0o640)).unwrap();
    admin
}

/// Scan from both scanners, check libwrap denies them.
fn block_both(net: &Net, run: &Run) {
    net.connect(None, TARGET4, 11).expect("v4 connect");
    net.connect(None, TARGET6, 11).expect("v6 connect");
    for (ip, line) in [
        (SCANNER4, format!("ALL: {SCANNER4}")),
        (SCANNER6, format!("ALL: [{SCANNER6}]")),
    ] {
        run.log.wait_line(&format!(
            "attackalert: Host {ip} has been blocked via wrappers with string: \"{line}\""
        ));
    }
    let dir = run.dir.path();
    assert_eq!(tcpd_access(dir, SCANNER4), "denied");
    assert_eq!(tcpd_access(dir, SCANNER6), "denied");
}

/// The hosts.deny line of `ip` is removed (`lines`: each logged), libwrap grants it again.
fn wait_unblocked(run: &Run, ip: &str, lines: &[String]) {
    for l in lines {
        run.log.wait_line(&format!(
            "attackalert: Host {ip} has been unblocked via wrappers, removed string: \"{l}\""
        ));
    }
    assert_eq!(tcpd_access(run.dir.path(), ip), "granted");
}

fn mode_of(run: &Run) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(run.p("hosts.deny"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn hosts_deny_lines_go_when_blocks_expire() {
    let test = "hosts_deny_lines_go_when_blocks_expire";
    if !tcpd_ready(test) {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config(
        "TCP_PORTS=\"11\"\n\
         BLOCK_TCP=\"1\"\n\
         BLOCK_TIMEOUT=\"5\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$\"\n",
    );
    let admin = admin_hosts_deny(&run);
    run.start_ok(&["-tcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    block_both(&net, &run);
    wait_unblocked(&run, SCANNER4, &[format!("ALL: {SCANNER4}")]);
    wait_unblocked(
        &run,
        SCANNER6,
        &[format!("ALL: {SCANNER6}"), format!("ALL: [{SCANNER6}]")],
    );
    run.log.wait_line(&format!(
        "attackalert: Block of host {SCANNER6} (tcp) has expired"
    ));
    assert_eq!(run.read("hosts.deny"), admin);
    assert_eq!(mode_of(&run), 0o640);
    // Expired: the next scan blocks, and writes the line, again.
    net.connect(None, TARGET4, 11).expect("v4 connect");
    run.wait_file("hosts.deny", &format!("\nALL: {SCANNER4}\n"));
    assert_eq!(tcpd_access(run.dir.path(), SCANNER4), "denied");
}

/// `portsentry blocked ARGS` in the target namespace, told about this run's daemon.
fn admin(run: &Run, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &run.ns, BIN, "blocked", "-c"])
        .arg(run.p("portsentry.conf"))
        .arg("--pidfile")
        .arg(run.p("portsentry.pid"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn hosts_deny_lines_go_with_blocked_del() {
    let test = "hosts_deny_lines_go_with_blocked_del";
    if !tcpd_ready(test) || !have_tool(test, "/usr/sbin/nft", "apt-get install nftables") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config(
        "TCP_PORTS=\"11\"\n\
         BLOCK_TCP=\"1\"\n\
         BLOCK_METHOD=\"nftables\"\n\
         KILL_HOSTS_DENY=\"ALL: $TARGET$\"\n",
    );
    let admin_lines = admin_hosts_deny(&run);
    run.start_ok(&["-tcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    block_both(&net, &run);
    let o = admin(&run, &["del", SCANNER4]);
    assert!(o.status.success(), "{o:?}");
    wait_unblocked(&run, SCANNER4, &[format!("ALL: {SCANNER4}")]);
    // The other block, and its line, stay.
    assert_eq!(tcpd_access(run.dir.path(), SCANNER6), "denied");
    assert!(
        run.read("hosts.deny")
            .contains(&format!("ALL: [{SCANNER6}]\n"))
    );
    // A reload keeps the blocks in force, and their lines.
    run.signal(nix::sys::signal::Signal::SIGHUP);
    run.log
        .wait_line("adminalert: PortSentry reloaded its configuration.");
    assert_eq!(tcpd_access(run.dir.path(), SCANNER6), "denied");
    let o = admin(&run, &["del", SCANNER6]);
    assert!(o.status.success(), "{o:?}");
    wait_unblocked(
        &run,
        SCANNER6,
        &[format!("ALL: {SCANNER6}"), format!("ALL: [{SCANNER6}]")],
    );
    assert_eq!(run.read("hosts.deny"), admin_lines);
    assert_eq!(mode_of(&run), 0o640);
}

/// Root and Debian's tcpd (`tcpdmatch` says what hosts.deny denies).
fn tcpd_ready(test: &str) -> bool {
    privileged(test) && have_tool(test, "/usr/sbin/tcpdmatch", "apt-get install tcpd")
}

/// Root, iproute2, nmap and ss.
fn ready(test: &str) -> bool {
    privileged(test)
        && have_tool(test, "/usr/bin/nmap", "apt-get install nmap")
        && have_tool(test, "/usr/bin/ss", "apt-get install iproute2")
}

/// The scanner's veth name (Net does not expose it).
fn scanner_if(net: &Net) -> String {
    let o = sh(&format!("ip -n {} -o link show type veth", net.scanner));
    let text = String::from_utf8_lossy(&o.stdout);
    text.split(": ")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .expect("scanner veth")
        .to_string()
}

/// A fresh scanner source address 198.51.100.(100+i) (the engine reports a host once).
fn src(net: &Net, i: u8) -> String {
    let a = format!("198.51.100.{}", 100 + u32::from(i));
    let dev = scanner_if(net);
    must(&format!("ip -n {} addr add {a}/24 dev {dev}", net.scanner));
    a
}

/// One nmap SYN scan of one port from `from`.
fn syn_scan(net: &Net, from: &str, port: u16) {
    let dev = scanner_if(net);
    must(&format!(
        "ip netns exec {} timeout 30 nmap -Pn -n -sS -S {from} -e {dev} -p {port} --max-retries 0 {TARGET4} >/dev/null",
        net.scanner
    ));
}

/// A TCP connection from `from` (bound first, so its local port is chosen) to `to`, made in
/// namespace `ns`.
fn connect_from(ns: &str, from: SocketAddr, to: SocketAddr) -> TcpStream {
    Net::within(ns, move || {
        use nix::sys::socket::*;
        let s = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        bind(s.as_raw_fd(), &SockaddrStorage::from(from)).unwrap();
        connect(s.as_raw_fd(), &SockaddrStorage::from(to)).unwrap();
        TcpStream::from(s)
    })
}

/// `ss` in the target namespace lists a TCP socket in `state` on local port `port`.
fn has_socket(net: &Net, state: &str, port: u16) -> bool {
    let o = sh(&format!(
        "ip netns exec {} ss -Htan state {state} '( sport = :{port} )'",
        net.target
    ));
    !String::from_utf8_lossy(&o.stdout).trim().is_empty()
}

/// Stale sockets on the watched ports of the target, as a service and a client leave them:
/// - `tw`: TIME_WAIT (a service that closed a connection first, then stopped);
/// - `est`: an established connection whose service has stopped listening;
/// - `out`: the local port of an outgoing connection (to the scanner's port 9000).
struct Stale {
    /// The scanner's end of the established connection, the target's end, the target's
    /// outgoing connection, and its peer on the scanner.
    client: TcpStream,
    served: TcpStream,
    outgoing: TcpStream,
    peer: TcpStream,
    _server: TcpListener,
}

fn stale_sockets(net: &Net, tw: u16, est: u16, out: u16) -> Stale {
    let t4: IpAddr = TARGET4.parse().unwrap();
    // TIME_WAIT: the service closes first; the client reads EOF and closes.
    let l = Net::within(&net.target, move || {
        TcpListener::bind(("0.0.0.0", tw)).unwrap()
    });
    let closer = std::thread::spawn(move || drop(l.accept().unwrap()));
    net.connect(None, TARGET4, tw)
        .expect("connect for TIME_WAIT");
    closer.join().unwrap();
    // Established, then the listener goes.
    let l = Net::within(&net.target, move || {
        TcpListener::bind(("0.0.0.0", est)).unwrap()
    });
    let client = connect_from(
        &net.scanner,
        "198.51.100.2:0".parse().unwrap(),
        SocketAddr::new(t4, est),
    );
    let (served, _) = l.accept().unwrap();
    drop(l);
    // Outgoing, from the watched port.
    let server = Net::within(&net.scanner, || {
        TcpListener::bind(("0.0.0.0", 9000)).unwrap()
    });
    let outgoing = connect_from(
        &net.target,
        SocketAddr::new(t4, out),
        "198.51.100.2:9000".parse().unwrap(),
    );
    let (peer, _) = server.accept().unwrap();
    wait_until("the TIME_WAIT socket is there", || {
        has_socket(net, "time-wait", tw)
    });
    assert!(has_socket(net, "established", est));
    assert!(has_socket(net, "established", out));
    for p in [tw, est, out] {
        assert!(!has_socket(net, "listening", p), "{p}");
    }
    Stale {
        client,
        served,
        outgoing,
        peer,
        _server: server,
    }
}

/// The unwatched ports `portsentry status --json` lists for `mode`.
fn unwatched(run: &Run, mode: &str) -> Vec<u64> {
    run.status_json()["unwatched_ports"][mode]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default()
}

/// One run of `mode` (`stcp` or `atcp`) against the stale sockets: SYN scans of their ports
/// are reported; a listener there from the start, and one started later, are not watched,
/// each said once in syslog and listed by `portsentry status`.
fn blind_spots(mode: &str, first_src: u8) {
    let net = Net::new();
    let (tw, est, out, busy, later, control) = (1101, 1102, 1103, 1104, 1105, 1106);
    let mut stale = stale_sockets(&net, tw, est, out);
    let _svc = Net::within(&net.target, move || {
        TcpListener::bind(("0.0.0.0", busy)).unwrap()
    });
    let run = Run::new(&net.target);
    let a = run.p("actions").display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"{tw},{est},{out},{busy},{later},{control}\"\n\
         ADVANCED_PORTS_TCP=\"2048\"\n\
         BLOCK_TCP=\"1\"\n\
         KILL_RUN_CMD=\"echo cmd $TARGET$ $PORT$ >> {a}\"\n"
    ));
    run.start_ok(&[&format!("-{mode}")]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    // 1.2's start-up line for the port with a listener, and only for it.
    let said_at_start = if mode == "stcp" {
        format!(
            "adminalert: ERROR: Socket {busy} is in use and will not be monitored. Attempting to continue"
        )
    } else {
        format!(
            "adminalert: Advanced Stealth scan detection mode activated. Ignored TCP port: {busy}"
        )
    };
    run.log.wait_line(&said_at_start);
    for p in [tw, est, out] {
        assert_eq!(run.log.count(&format!("Socket {p} is in use")), 0, "{p}");
        assert_eq!(run.log.count(&format!("Ignored TCP port: {p}")), 0, "{p}");
    }
    assert_eq!(unwatched(&run, mode), vec![u64::from(busy)]);

    // A listener started now: said once, listed, not watched.
    let _later = Net::within(&net.target, move || {
        TcpListener::bind(("0.0.0.0", later)).unwrap()
    });
    let line = format!(
        "adminalert: WARNING: TCP port {later} is in use by a local socket and will not be monitored by -{mode} while it is."
    );
    run.log.wait_line(&line);
    wait_until("status lists the later listener", || {
        unwatched(&run, mode) == vec![u64::from(busy), u64::from(later)]
    });

    // SYN scans of the stale sockets' ports are reported.
    for (i, p) in [tw, est, out].into_iter().enumerate() {
        let from = src(&net, first_src + i as u8);
        syn_scan(&net, &from, p);
        run.log.wait_line(&format!(
            "attackalert: TCP SYN/Normal scan from host: {from}/{from} to TCP port: {p}"
        ));
        run.wait_file("actions", &format!("cmd {from} {p}\n"));
    }
    // The listeners' ports are not (a later scan, reported, proves they were judged).
    let quiet: Vec<String> = [busy, later]
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let from = src(&net, first_src + 3 + i as u8);
            syn_scan(&net, &from, p);
            from
        })
        .collect();
    // The stale connections' own traffic (ACK-bearing segments to watched ports with no
    // listener) is no scan: the established pair and the outgoing pair talk both ways.
    for (a, b) in [
        (&mut stale.client, &mut stale.served),
        (&mut stale.peer, &mut stale.outgoing),
    ] {
        a.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        b.write_all(b"pong").unwrap();
        a.read_exact(&mut buf).unwrap();
    }
    let from = src(&net, first_src + 5);
    syn_scan(&net, &from, control);
    run.log.wait_contains(&format!("host: {from}/{from}"));
    for q in quiet.iter().map(String::as_str).chain([SCANNER4]) {
        assert_eq!(run.log.count(&format!("host: {q}/")), 0, "{q}");
    }
    // Said once, however many refreshes went by.
    assert_eq!(run.log.count(&line), 1);
    assert_eq!(run.log.count(&said_at_start), 1);
    run.stop();
}

#[test]
fn stale_sockets_never_blind_stcp() {
    if !ready("stale_sockets_never_blind_stcp") {
        return;
    }
    blind_spots("stcp", 1);
}

#[test]
fn stale_sockets_never_blind_atcp() {
    if !ready("stale_sockets_never_blind_atcp") {
        return;
    }
    blind_spots("atcp", 11);
}

/// UDP: a connected socket (an outgoing query from a watched port) receives only from its
/// peer, so a datagram from anyone else to that port is a probe; an unconnected socket is a
/// service: not watched, said once, listed.
fn udp_blind_spots(mode: &str, first_src: u8) {
    let net = Net::new();
    let (out, busy, control) = (1201u16, 1202u16, 1203u16);
    let peer = Net::within(&net.scanner, || {
        UdpSocket::bind("198.51.100.2:9001").unwrap()
    });
    let query = Net::within(&net.target, move || {
        let s = UdpSocket::bind(("198.51.100.1", out)).unwrap();
        s.connect("198.51.100.2:9001").unwrap();
        s
    });
    let _svc = Net::within(&net.target, move || {
        UdpSocket::bind(("0.0.0.0", busy)).unwrap()
    });
    let run = Run::new(&net.target);
    let a = run.p("actions").display().to_string();
    run.write_config(&format!(
        "UDP_PORTS=\"{out},{busy},{control}\"\n\
         ADVANCED_PORTS_UDP=\"2048\"\n\
         BLOCK_UDP=\"1\"\n\
         KILL_RUN_CMD=\"echo cmd $TARGET$ $PORT$ >> {a}\"\n"
    ));
    run.start_ok(&[&format!("-{mode}")]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let said_at_start = if mode == "sudp" {
        format!(
            "adminalert: ERROR: Socket {busy} is in use and will not be monitored. Attempting to continue"
        )
    } else {
        format!(
            "adminalert: Advanced Stealth scan detection mode activated. Ignored UDP port: {busy}"
        )
    };
    run.log.wait_line(&said_at_start);
    assert_eq!(run.log.count(&format!("Socket {out} is in use")), 0);
    assert_eq!(unwatched(&run, mode), vec![u64::from(busy)]);

    // The query's answer reaches its socket, unreported.
    query.send(b"q").unwrap();
    let mut buf = [0u8; 8];
    let (_, from) = peer.recv_from(&mut buf).unwrap();
    peer.send_to(b"answer", from).unwrap();
    query
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    assert_eq!(query.recv(&mut buf).unwrap(), 6);
    // A datagram from another host to the query's port, and to the service's port.
    let probe = src(&net, first_src);
    net.udp(Some(&probe), TARGET4, out);
    run.log.wait_line(&format!(
        "attackalert: UDP scan from host: {probe}/{probe} to UDP port: {out}"
    ));
    let quiet = src(&net, first_src + 1);
    net.udp(Some(&quiet), TARGET4, busy);
    let last = src(&net, first_src + 2);
    net.udp(Some(&last), TARGET4, control);
    run.log.wait_contains(&format!("host: {last}/{last}"));
    for q in [quiet.as_str(), SCANNER4] {
        assert_eq!(run.log.count(&format!("host: {q}/")), 0, "{q}");
    }
    assert_eq!(run.log.count(&said_at_start), 1);
    run.stop();
}

#[test]
fn outgoing_udp_never_blinds_sudp() {
    if !ready("outgoing_udp_never_blinds_sudp") {
        return;
    }
    udp_blind_spots("sudp", 21);
}

#[test]
fn outgoing_udp_never_blinds_audp() {
    if !ready("outgoing_udp_never_blinds_audp") {
        return;
    }
    udp_blind_spots("audp", 31);
}
