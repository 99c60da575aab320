//! Response lines (§8.4, §5, §6): blocks by hosts.deny, route and command, refusals, failures,
//! and the exit status of every command (1.2 ignored it).

use std::fmt::Display;
use std::net::IpAddr;
use std::path::Path;

use crate::config::mode::{Kind, Mode, Proto};
use crate::engine::Action;

use super::host;

/// `attackalert: Host {ip} has been blocked via wrappers with string: "{line}"`
pub fn blocked_via_wrappers(ip: IpAddr, line: &str) -> String {
    format!("attackalert: Host {ip} has been blocked via wrappers with string: \"{line}\"")
}

/// `attackalert: Host {ip} has been blocked via dropped route using command: "{cmd}"`
pub fn blocked_via_route(ip: IpAddr, cmd: &str) -> String {
    format!("attackalert: Host {ip} has been blocked via dropped route using command: \"{cmd}\"")
}

/// `attackalert: External command run for host: {ip} using command: "{cmd}"`
pub fn external_command_run(ip: IpAddr, cmd: &str) -> String {
    format!("attackalert: External command run for host: {ip} using command: \"{cmd}\"")
}

/// Classic modes: `attackalert: Host: {ip} is already blocked. Ignoring`;
/// stealth and advanced modes: `attackalert: Host: {name}/{ip} is already blocked Ignoring`
/// (no period). §5.2.
pub fn already_blocked(mode: Mode, name: &str, ip: IpAddr) -> String {
    match mode.kind() {
        Kind::Classic => format!("attackalert: Host: {ip} is already blocked. Ignoring"),
        Kind::Stealth | Kind::Advanced => format!(
            "attackalert: Host: {} is already blocked Ignoring",
            host(name, ip)
        ),
    }
}

/// `attackalert: Ignoring {TCP|UDP} response per configuration file setting.` (BLOCK_x not 1/2)
pub fn ignoring_response(proto: Proto) -> String {
    format!("attackalert: Ignoring {proto} response per configuration file setting.")
}

/// Dispose failed (§6.1 step 7), three variants by mode:
/// `attackalert: ERROR: Could not block host {ip} !!` (`-tcp`, `-udp`),
/// `attackalert: ERROR: Could not block host {name}/{ip} !!` (`-stcp`),
/// `attackalert: ERROR: Could not block host {name}/{ip}!!` (`-atcp`, `-sudp`, `-audp`).
pub fn could_not_block(mode: Mode, name: &str, ip: IpAddr) -> String {
    match mode {
        Mode::Tcp | Mode::Udp => format!("attackalert: ERROR: Could not block host {ip} !!"),
        Mode::Stcp => format!(
            "attackalert: ERROR: Could not block host {} !!",
            host(name, ip)
        ),
        Mode::Atcp | Mode::Sudp | Mode::Audp => {
            format!(
                "attackalert: ERROR: Could not block host {}!!",
                host(name, ip)
            )
        }
    }
}

/// `adminalert: No target variable specified in {KILL_ROUTE|KILL_HOSTS_DENY} option. Skipping.`
/// (1.2 requires `$TARGET$` only in those two; §6.2.)
pub fn no_target_variable(action: Action) -> String {
    format!(
        "adminalert: No target variable specified in {} option. Skipping.",
        action.key()
    )
}

/// `adminalert: cannot open hosts.deny file: {path} for blocking.` (1.2's path is always
/// `/etc/hosts.deny`; the path is an argument so tests can point elsewhere.)
pub fn cannot_open_hosts_deny(path: &Path) -> String {
    format!(
        "adminalert: cannot open hosts.deny file: {} for blocking.",
        path.display()
    )
}

/// `securityalert: ERROR: There was an error trying to block host {ip}` (follows
/// [`cannot_open_hosts_deny`]).
pub fn hosts_deny_block_failed(ip: IpAddr) -> String {
    format!("securityalert: ERROR: There was an error trying to block host {ip}")
}

/// `attackalert: Host {ip} already in hosts.deny file, skipping.` (2.0's wording; 1.2 appended
/// the line again on every block).
pub fn already_in_hosts_deny(ip: IpAddr) -> String {
    format!("attackalert: Host {ip} already in hosts.deny file, skipping.")
}

/// A block ended (BLOCK_TIMEOUT, `portsentry blocked del`) and its hosts.deny line was
/// removed, one line each (1.2 never removed one):
/// `attackalert: Host {ip} has been unblocked via wrappers, removed string: "{line}"`
pub fn unblocked_via_wrappers(ip: IpAddr, line: &str) -> String {
    format!("attackalert: Host {ip} has been unblocked via wrappers, removed string: \"{line}\"")
}

/// A block ended but hosts.deny holds no line of it (removed by hand, or written by another
/// daemon's template): `attackalert: Host {ip} not in hosts.deny file, nothing to remove.`
pub fn not_in_hosts_deny(ip: IpAddr) -> String {
    format!("attackalert: Host {ip} not in hosts.deny file, nothing to remove.")
}

/// `adminalert: ERROR: cannot remove host {ip} from hosts.deny file {path}: {err}`
pub fn hosts_deny_remove_failed(ip: IpAddr, path: &Path, err: &dyn Display) -> String {
    format!(
        "adminalert: ERROR: cannot remove host {ip} from hosts.deny file {}: {err}",
        path.display()
    )
}

/// A response command ended with an exit status (1.2 ignored it, §10.1 item 11):
/// `adminalert: Command for host {ip} exited with status {n}: "{cmd}"`
pub fn command_exited(ip: IpAddr, status: i32, cmd: &str) -> String {
    format!("adminalert: Command for host {ip} exited with status {status}: \"{cmd}\"")
}

/// `adminalert: ERROR: Command for host {ip} was killed by signal {sig}: "{cmd}"`
pub fn command_killed(ip: IpAddr, signal: i32, cmd: &str) -> String {
    format!("adminalert: ERROR: Command for host {ip} was killed by signal {signal}: \"{cmd}\"")
}

/// `adminalert: ERROR: Command for host {ip} timed out after {s} seconds and was killed: "{cmd}"`
pub fn command_timed_out(ip: IpAddr, seconds: u64, cmd: &str) -> String {
    format!(
        "adminalert: ERROR: Command for host {ip} timed out after {seconds} seconds and was killed: \"{cmd}\""
    )
}

/// `adminalert: ERROR: Command for host {ip} could not be started ({err}): "{cmd}"`
pub fn command_not_started(ip: IpAddr, err: impl Display, cmd: &str) -> String {
    format!("adminalert: ERROR: Command for host {ip} could not be started ({err}): \"{cmd}\"")
}

/// `securityalert: Refusing to block host {ip}: it is {what}.` A protected address (this
/// host's own, loopback, multicast, broadcast, a default gateway) is never blocked.
pub fn refusing_to_block(ip: IpAddr, what: &str) -> String {
    format!("securityalert: Refusing to block host {ip}: it is {what}.")
}

/// `securityalert: WARNING: blocked-host memory is full ({max} hosts); new blocks are not remembered.`
pub fn blocked_memory_full(max: usize) -> String {
    format!(
        "securityalert: WARNING: blocked-host memory is full ({max} hosts); new blocks are not remembered."
    )
}

/// `adminalert: ERROR: Cannot open blocked file: {path}.`
pub fn cannot_open_blocked_file(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot open blocked file: {}.",
        path.display()
    )
}

/// `adminalert: ERROR: Cannot open history file: {path}.`
pub fn cannot_open_history_file(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot open history file: {}.",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::fixtures::*;
    use crate::observe::report::*;

    #[test]
    fn already_blocked_by_mode() {
        let ip = v4(10, 0, 0, 1);
        for m in Mode::ALL {
            let want = match m.kind() {
                Kind::Classic => "attackalert: Host: 10.0.0.1 is already blocked. Ignoring",
                _ => "attackalert: Host: gw.example/10.0.0.1 is already blocked Ignoring",
            };
            assert_eq!(already_blocked(m, "gw.example", ip), want, "{m}");
        }
    }

    #[test]
    fn could_not_block_by_mode() {
        let ip = v4(10, 0, 0, 1);
        let cases = [
            (
                Mode::Tcp,
                "attackalert: ERROR: Could not block host 10.0.0.1 !!",
            ),
            (
                Mode::Udp,
                "attackalert: ERROR: Could not block host 10.0.0.1 !!",
            ),
            (
                Mode::Stcp,
                "attackalert: ERROR: Could not block host 10.0.0.1/10.0.0.1 !!",
            ),
            (
                Mode::Atcp,
                "attackalert: ERROR: Could not block host 10.0.0.1/10.0.0.1!!",
            ),
            (
                Mode::Sudp,
                "attackalert: ERROR: Could not block host 10.0.0.1/10.0.0.1!!",
            ),
            (
                Mode::Audp,
                "attackalert: ERROR: Could not block host 10.0.0.1/10.0.0.1!!",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(could_not_block(m, "10.0.0.1", ip), want, "{m}");
        }
    }

    #[test]
    fn response_lines() {
        let ip = v4(198, 51, 100, 7);
        let cases: Vec<(String, &str)> = vec![
            (
                ignoring_response(Proto::Tcp),
                "attackalert: Ignoring TCP response per configuration file setting.",
            ),
            (
                ignoring_response(Proto::Udp),
                "attackalert: Ignoring UDP response per configuration file setting.",
            ),
            (
                external_command_run(ip, "/usr/local/bin/alert 198.51.100.7 111 tcp"),
                "attackalert: External command run for host: 198.51.100.7 using command: \"/usr/local/bin/alert 198.51.100.7 111 tcp\"",
            ),
            (
                cannot_open_blocked_file(Path::new("/var/lib/portsentry/portsentry.blocked.tcp")),
                "adminalert: ERROR: Cannot open blocked file: /var/lib/portsentry/portsentry.blocked.tcp.",
            ),
            (
                cannot_open_history_file(Path::new("/var/lib/portsentry/portsentry.history")),
                "adminalert: ERROR: Cannot open history file: /var/lib/portsentry/portsentry.history.",
            ),
            (
                no_target_variable(Action::Route),
                "adminalert: No target variable specified in KILL_ROUTE option. Skipping.",
            ),
            (
                no_target_variable(Action::HostsDeny),
                "adminalert: No target variable specified in KILL_HOSTS_DENY option. Skipping.",
            ),
            (
                cannot_open_hosts_deny(Path::new("/etc/hosts.deny")),
                "adminalert: cannot open hosts.deny file: /etc/hosts.deny for blocking.",
            ),
            (
                hosts_deny_block_failed(ip),
                "securityalert: ERROR: There was an error trying to block host 198.51.100.7",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    /// §8.5, the VERIFIED shape of a triggered `-tcp` hit with Debian's two actions.
    #[test]
    fn typical_triggered_sequence() {
        let ip = v4(198, 51, 100, 7);
        let lines = [
            connect_from("198.51.100.7", ip, Proto::Tcp, 111),
            blocked_via_wrappers(ip, "ALL: 198.51.100.7 : DENY"),
            blocked_via_route(ip, "/sbin/route add -host 198.51.100.7 reject"),
        ];
        assert_eq!(
            lines,
            [
                "attackalert: Connect from host: 198.51.100.7/198.51.100.7 to TCP port: 111",
                "attackalert: Host 198.51.100.7 has been blocked via wrappers with string: \"ALL: 198.51.100.7 : DENY\"",
                "attackalert: Host 198.51.100.7 has been blocked via dropped route using command: \"/sbin/route add -host 198.51.100.7 reject\"",
            ]
        );
    }

    #[test]
    fn command_status_lines() {
        let ip = v6("2001:db8:0:0:0:0:0:7");
        let cases: Vec<(String, String)> = vec![
            (
                command_exited(ip, 3, "/sbin/route add -host 2001:db8::7 reject"),
                "adminalert: Command for host 2001:db8::7 exited with status 3: \"/sbin/route add -host 2001:db8::7 reject\"".to_owned(),
            ),
            (
                command_killed(ip, 9, "sleep 100"),
                "adminalert: ERROR: Command for host 2001:db8::7 was killed by signal 9: \"sleep 100\"".to_owned(),
            ),
            (
                command_timed_out(ip, 30, "sleep 100"),
                "adminalert: ERROR: Command for host 2001:db8::7 timed out after 30 seconds and was killed: \"sleep 100\"".to_owned(),
            ),
            (
                command_not_started(ip, "No such file or directory", "x"),
                "adminalert: ERROR: Command for host 2001:db8::7 could not be started (No such file or directory): \"x\"".to_owned(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn hosts_deny_removal_lines() {
        let ip = v6("2001:db8:0:0:0:0:0:7");
        assert_eq!(
            unblocked_via_wrappers(ip, "ALL: [2001:db8::7]"),
            "attackalert: Host 2001:db8::7 has been unblocked via wrappers, removed string: \"ALL: [2001:db8::7]\""
        );
        assert_eq!(
            not_in_hosts_deny(v4(192, 0, 2, 1)),
            "attackalert: Host 192.0.2.1 not in hosts.deny file, nothing to remove."
        );
        assert_eq!(
            hosts_deny_remove_failed(ip, Path::new("/etc/hosts.deny"), &"Permission denied"),
            "adminalert: ERROR: cannot remove host 2001:db8::7 from hosts.deny file /etc/hosts.deny: Permission denied"
        );
    }

    #[test]
    fn refusal_and_memory_lines() {
        let ip = v4(192, 0, 2, 1);
        assert_eq!(
            refusing_to_block(ip, "this host's own address"),
            "securityalert: Refusing to block host 192.0.2.1: it is this host's own address."
        );
        assert_eq!(
            already_in_hosts_deny(ip),
            "attackalert: Host 192.0.2.1 already in hosts.deny file, skipping."
        );
        assert_eq!(
            blocked_memory_full(1048576),
            "securityalert: WARNING: blocked-host memory is full (1048576 hosts); new blocks are not remembered."
        );
    }
}
