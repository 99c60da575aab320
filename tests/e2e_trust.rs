//! End to end, as root, in network namespaces made by the tests (issue 24, items 3 and 4):
//! - a KILL_HOSTS_DENY line blocks what it names, IPv4 and IPv6, as Debian's libwrap reads
//!   it (`tcpdmatch` from the `tcpd` package, run on the written file);
//! - a watched port is unwatched only while a socket would accept the probe (a TCP listener,
//!   a UDP socket that would receive it): TIME_WAIT, established connections and the local
//!   ports of outgoing connections never hide a port from `-stcp` / `-atcp`, and a port that
//!   is not watched is said once in syslog and listed by `portsentry status`.
//!
//! Without root, iproute2, nmap or tcpdmatch the tests say so loudly and are skipped, unless
//! CI=true, where that is a failure.

mod common;

use common::*;
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
    if !privileged(test) || !have_tool(test, "/usr/sbin/tcpdmatch", "apt-get install tcpd") {
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
