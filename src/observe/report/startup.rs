//! Start-up, reload and shutdown lines, and the per-port lines of listening (§8.1, §8.2):
//! 1.2's templates word for word, and beside them our lines about the same events (a failed
//! IPv6 bind, reload, a bad ignore-file entry).

use std::fmt::Display;
use std::path::Path;

use crate::config::mode::Proto;

/// Address family of a listening socket, for the dual-stack bind messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// `IPv4` or `IPv6`.
    pub fn text(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

/// `adminalert: PortSentry 1.2 is starting.` — "1.2" stays: watchers match this exact line.
pub fn starting() -> String {
    "adminalert: PortSentry 1.2 is starting.".to_owned()
}

/// `adminalert: PortSentry is now active and listening.`
pub fn now_active() -> String {
    "adminalert: PortSentry is now active and listening.".to_owned()
}

/// The two lines 1.2 always logs together when it exits, in this order:
/// `securityalert: PortSentry is shutting down`, then `adminalert: PortSentry is shutting down`.
pub fn shutting_down() -> [String; 2] {
    [
        "securityalert: PortSentry is shutting down".to_owned(),
        "adminalert: PortSentry is shutting down".to_owned(),
    ]
}

/// `adminalert: ERROR: Your config file is corrupted/missing mandatory option! Shutting down.`
pub fn config_missing_mandatory_option() -> String {
    "adminalert: ERROR: Your config file is corrupted/missing mandatory option! Shutting down."
        .to_owned()
}

/// `adminalert: ERROR: could not go into daemon mode. Shutting down.`
pub fn could_not_daemonize() -> String {
    "adminalert: ERROR: could not go into daemon mode. Shutting down.".to_owned()
}

/// `adminalert: ERROR: could not go into PortSentry mode. Shutting down.`
pub fn could_not_enter_mode() -> String {
    "adminalert: ERROR: could not go into PortSentry mode. Shutting down.".to_owned()
}

/// `adminalert: ERROR: Cannot delete blocked file on startup: {path}.`
pub fn cannot_delete_blocked_file(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot delete blocked file on startup: {}.",
        path.display()
    )
}

/// `adminalert: Going into listen mode on {TCP|UDP} port: {p}`
pub fn going_into_listen_mode(proto: Proto, port: u16) -> String {
    format!("adminalert: Going into listen mode on {proto} port: {port}")
}

/// `adminalert: ERROR: could not bind {TCP|UDP} socket: {p}. Attempting to continue`
pub fn could_not_bind(proto: Proto, port: u16) -> String {
    format!("adminalert: ERROR: could not bind {proto} socket: {port}. Attempting to continue")
}

/// `adminalert: ERROR: could not bind ANY {TCP|UDP} sockets. Shutting down.`
pub fn could_not_bind_any(proto: Proto) -> String {
    format!("adminalert: ERROR: could not bind ANY {proto} sockets. Shutting down.")
}

/// One family of a dual-stack listener failed while the other bound:
/// `adminalert: ERROR: could not bind {TCP|UDP} socket: {p} for {IPv4|IPv6} ({err}). Attempting
/// to continue` (one line). It starts like [`could_not_bind`], so rules matching `could not bind
/// TCP socket: {p}` still see it.
pub fn could_not_bind_family(proto: Proto, port: u16, family: Family, err: impl Display) -> String {
    format!(
        "adminalert: ERROR: could not bind {proto} socket: {port} for {} ({err}). Attempting to continue",
        family.text()
    )
}

/// `adminalert: Going into stealth listen mode on {TCP|UDP} port: {p}`
pub fn going_into_stealth_listen_mode(proto: Proto, port: u16) -> String {
    format!("adminalert: Going into stealth listen mode on {proto} port: {port}")
}

/// `adminalert: ERROR: Socket {p} is in use and will not be monitored. Attempting to continue`
pub fn socket_in_use(port: u16) -> String {
    format!(
        "adminalert: ERROR: Socket {port} is in use and will not be monitored. Attempting to continue"
    )
}

/// `adminalert: ERROR: All supplied {TCP|UDP} sockets are in use and will not be listened to.
/// Shutting down.` (one line)
pub fn all_sockets_in_use(proto: Proto) -> String {
    format!(
        "adminalert: ERROR: All supplied {proto} sockets are in use and will not be listened to. Shutting down."
    )
}

/// `adminalert: ERROR: could not open RAW {TCP|UDP} socket. Aborting.`
pub fn could_not_open_raw_socket(proto: Proto) -> String {
    format!("adminalert: ERROR: could not open RAW {proto} socket. Aborting.")
}

/// `adminalert: ERROR: Could not read ADVANCED_PORTS_{TCP|UDP} option from config file.
/// Assuming 1024.` (one line; §2.4)
pub fn advanced_ports_missing(proto: Proto) -> String {
    format!(
        "adminalert: ERROR: Could not read ADVANCED_PORTS_{proto} option from config file. Assuming 1024."
    )
}

/// `adminalert: Advanced mode will monitor first {N} ports` (N may be 65536, hence `u32`).
pub fn advanced_monitor_first(n: u32) -> String {
    format!("adminalert: Advanced mode will monitor first {n} ports")
}

/// `adminalert: Advanced mode will manually exclude port: {p} ` — with 1.2's trailing space.
pub fn advanced_manually_exclude(port: u16) -> String {
    format!("adminalert: Advanced mode will manually exclude port: {port} ")
}

/// `adminalert: Advanced mode will manually exclude no ports` (`ADVANCED_EXCLUDE_*` absent).
pub fn advanced_manually_exclude_none() -> String {
    "adminalert: Advanced mode will manually exclude no ports".to_owned()
}

/// `adminalert: Advanced Stealth scan detection mode activated. Ignored {TCP|UDP} port: {p}`
pub fn advanced_ignored_port(proto: Proto, port: u16) -> String {
    format!(
        "adminalert: Advanced Stealth scan detection mode activated. Ignored {proto} port: {port}"
    )
}

/// `adminalert: PortSentry is reloading its configuration.` (SIGHUP or `init.d reload`)
pub fn reloading() -> String {
    "adminalert: PortSentry is reloading its configuration.".to_owned()
}

/// `adminalert: PortSentry reloaded its configuration.` (the new configuration is in force)
pub fn reloaded() -> String {
    "adminalert: PortSentry reloaded its configuration.".to_owned()
}

/// `adminalert: ERROR: new configuration rejected, keeping the old one: {reason}`
pub fn reload_rejected(reason: impl Display) -> String {
    format!("adminalert: ERROR: new configuration rejected, keeping the old one: {reason}")
}

/// A bad ignore-file entry, naming file and line (replaces 1.2's `Invalid netmask in config file` line):
/// `adminalert: Ignore file {path} line {n}: {reason}. Ignoring entry.` The reason should not
/// end with a period.
pub fn ignore_file_entry_ignored(path: &Path, line: usize, reason: impl Display) -> String {
    format!(
        "adminalert: Ignore file {} line {line}: {reason}. Ignoring entry.",
        path.display()
    )
}

/// `attackalert: ERROR: cannot open ignore file. Blocking host anyway.`
pub fn cannot_open_ignore_file() -> String {
    "attackalert: ERROR: cannot open ignore file. Blocking host anyway.".to_owned()
}

/// A configuration problem (warning or error), as `config::Diagnostic` prints it with file,
/// line and key: `adminalert: {diagnostic}`.
pub fn config_problem(d: impl Display) -> String {
    format!("adminalert: {d}")
}

/// An error without a 1.2 line of its own: `adminalert: ERROR: {reason}` (at start-up, the
/// same reason is printed on stderr through the readiness pipe).
pub fn error(reason: impl Display) -> String {
    format!("adminalert: ERROR: {reason}")
}

/// The event loop's `poll` failed: `adminalert: ERROR: poll failed: {err}. Shutting down.`
/// (1.2: `select call failed`).
pub fn poll_failed(err: impl Display) -> String {
    format!("adminalert: ERROR: poll failed: {err}. Shutting down.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::*;

    #[test]
    fn startup_shutdown_and_configuration_lines() {
        let cases: Vec<(String, &str)> = vec![
            (starting(), "adminalert: PortSentry 1.2 is starting."),
            (
                now_active(),
                "adminalert: PortSentry is now active and listening.",
            ),
            (
                config_missing_mandatory_option(),
                "adminalert: ERROR: Your config file is corrupted/missing mandatory option! Shutting down.",
            ),
            (
                could_not_daemonize(),
                "adminalert: ERROR: could not go into daemon mode. Shutting down.",
            ),
            (
                could_not_enter_mode(),
                "adminalert: ERROR: could not go into PortSentry mode. Shutting down.",
            ),
            (
                cannot_delete_blocked_file(Path::new("/var/lib/portsentry/portsentry.blocked.tcp")),
                "adminalert: ERROR: Cannot delete blocked file on startup: /var/lib/portsentry/portsentry.blocked.tcp.",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(
            shutting_down(),
            [
                "securityalert: PortSentry is shutting down",
                "adminalert: PortSentry is shutting down"
            ]
        );
    }

    #[test]
    fn socket_lines() {
        let cases: Vec<(String, &str)> = vec![
            (
                going_into_listen_mode(Proto::Tcp, 1),
                "adminalert: Going into listen mode on TCP port: 1",
            ),
            (
                going_into_listen_mode(Proto::Udp, 54321),
                "adminalert: Going into listen mode on UDP port: 54321",
            ),
            (
                could_not_bind(Proto::Tcp, 1),
                "adminalert: ERROR: could not bind TCP socket: 1. Attempting to continue",
            ),
            (
                could_not_bind_any(Proto::Udp),
                "adminalert: ERROR: could not bind ANY UDP sockets. Shutting down.",
            ),
            (
                going_into_stealth_listen_mode(Proto::Tcp, 111),
                "adminalert: Going into stealth listen mode on TCP port: 111",
            ),
            (
                socket_in_use(111),
                "adminalert: ERROR: Socket 111 is in use and will not be monitored. Attempting to continue",
            ),
            (
                all_sockets_in_use(Proto::Tcp),
                "adminalert: ERROR: All supplied TCP sockets are in use and will not be listened to. Shutting down.",
            ),
            (
                could_not_open_raw_socket(Proto::Tcp),
                "adminalert: ERROR: could not open RAW TCP socket. Aborting.",
            ),
            (
                could_not_open_raw_socket(Proto::Udp),
                "adminalert: ERROR: could not open RAW UDP socket. Aborting.",
            ),
            (
                advanced_ports_missing(Proto::Udp),
                "adminalert: ERROR: Could not read ADVANCED_PORTS_UDP option from config file. Assuming 1024.",
            ),
            (
                advanced_monitor_first(1024),
                "adminalert: Advanced mode will monitor first 1024 ports",
            ),
            (
                advanced_manually_exclude(113),
                "adminalert: Advanced mode will manually exclude port: 113 ",
            ),
            (
                advanced_manually_exclude_none(),
                "adminalert: Advanced mode will manually exclude no ports",
            ),
            (
                advanced_ignored_port(Proto::Tcp, 22),
                "adminalert: Advanced Stealth scan detection mode activated. Ignored TCP port: 22",
            ),
            (
                could_not_accept_udp(7),
                "adminalert: ERROR: could not accept incoming socket for UDP port: 7",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn reload_bind_family_and_ignore_file_lines() {
        let err = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let cases: Vec<(String, String)> = vec![
            (
                could_not_bind_family(Proto::Tcp, 1, Family::Ipv6, &err),
                format!("adminalert: ERROR: could not bind TCP socket: 1 for IPv6 ({err}). Attempting to continue"),
            ),
            (
                reloading(),
                "adminalert: PortSentry is reloading its configuration.".to_owned(),
            ),
            (
                reloaded(),
                "adminalert: PortSentry reloaded its configuration.".to_owned(),
            ),
            (
                reload_rejected("/etc/portsentry/portsentry.conf line 3: BLOCK_TCP: not a number"),
                "adminalert: ERROR: new configuration rejected, keeping the old one: /etc/portsentry/portsentry.conf line 3: BLOCK_TCP: not a number".to_owned(),
            ),
            (
                ignore_file_entry_ignored(
                    Path::new("/etc/portsentry/portsentry.ignore"),
                    4,
                    "netmask 33 is out of range 0-32",
                ),
                "adminalert: Ignore file /etc/portsentry/portsentry.ignore line 4: netmask 33 is out of range 0-32. Ignoring entry.".to_owned(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // The family line still matches what rules written for 1.2's bind error look for.
        assert!(
            could_not_bind_family(Proto::Udp, 7, Family::Ipv4, "x")
                .starts_with("adminalert: ERROR: could not bind UDP socket: 7")
        );
    }

    #[test]
    fn config_start_and_loop_errors() {
        assert_eq!(
            config_problem("/etc/portsentry/portsentry.conf:3: BLOCK_TCP: must be 0, 1 or 2"),
            "adminalert: /etc/portsentry/portsentry.conf:3: BLOCK_TCP: must be 0, 1 or 2"
        );
        assert_eq!(
            error("cannot write pid file /run/portsentry.pid: Permission denied"),
            "adminalert: ERROR: cannot write pid file /run/portsentry.pid: Permission denied"
        );
        assert_eq!(
            poll_failed("EBADF"),
            "adminalert: ERROR: poll failed: EBADF. Shutting down."
        );
    }

    #[test]
    fn ignore_file_missing_line() {
        assert_eq!(
            cannot_open_ignore_file(),
            "attackalert: ERROR: cannot open ignore file. Blocking host anyway."
        );
    }
}
