//! Every syslog message and every blocked/history file line portsentry writes, formatted byte for
//! byte as PortSentry 1.2 (Debian 1.2-14) writes them (reference §8, §7.3, §3, §5.2, §6).
//!
//! Log watchers (logcheck rules, fail2ban, home-grown scripts) match these texts, so each 1.2
//! template is kept word for word, with its quirks: the `adminalert: ` / `attackalert: ` /
//! `securityalert: ` prefixes, the two spaces in `attackalert:  TCP NULL scan`, `already blocked.
//! Ignoring` (classic modes) against `already blocked Ignoring` (stealth modes), ` !!` against
//! `!!`, the trailing space after `manually exclude port: {p} `, the missing period in the `-udp`
//! socket error, and so on. Every function quotes its template in its doc comment and is
//! golden-tested below.
//!
//! Conventions:
//!
//! * Syslog texts are returned **without** 1.2's trailing line feed (the `⏎` of §8). rsyslog and
//!   journald drop a trailing LF on receipt, so an admin's log file reads the same either way,
//!   and a message without it cannot leave an empty record with receivers that keep it.
//!   [`history_line`] is the exception: a file line ends with LF.
//! * Messages are not cut at 1023 bytes as 1.2 cuts them; any limit belongs to the syslog writer.
//! * `{ip}` is the address as [`IpAddr`] prints it: dotted quad for IPv4, RFC 5952 compressed form
//!   for IPv6. IPv4-mapped IPv6 addresses are printed as given (`::ffff:a.b.c.d`); the code that
//!   builds probes turns them into IPv4 once, so that logs, files and `$TARGET$` agree.
//! * `{name}` is the raw resolver answer (or the IP text when nothing was resolved). Functions
//!   that print a name pass it through [`sanitize_name`] themselves, so a hostile PTR record can
//!   never inject spaces, `/`, `Port:`, line feeds or shell metacharacters into a log or file
//!   line. Callers must therefore hand over the *unsanitized* name. A name equal to the IP's text
//!   (unresolved, as 1.2 does with `RESOLVE_HOST=0`) or empty is printed as the IP.
//!
//! Pure: no I/O, no clock (the caller passes epoch and local time), no syslog calls.

use std::fmt::{Display, Write as _};
use std::net::IpAddr;
use std::path::Path;

use crate::mode::{Kind, Mode, Proto};

// ---------------------------------------------------------------------------------------------
// Host names
// ---------------------------------------------------------------------------------------------

/// Makes a resolver answer safe for log and file lines: ASCII letters, digits, `.`, `-` and `_`
/// are kept, every other byte (UTF-8 bytes one by one) becomes `\xHH` (lower-case hex).
///
/// 1.2 wrote names unchecked (§6.6, §10.1 item 19): a PTR or `/etc/hosts` entry holding a space,
/// `/` or LF could forge a `Host: x/1.2.3.4 Port: …` history record that fail2ban would act on.
/// `\` itself is escaped, so the escaped form is unambiguous.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The `{name}` column: the IP text when the name is empty or is the IP itself (an unresolved
/// IPv6 address must keep its `:`), otherwise the sanitized name.
fn name_field(name: &str, ip: IpAddr) -> String {
    let ip_text = ip.to_string();
    if name.is_empty() || name == ip_text {
        ip_text
    } else {
        sanitize_name(name)
    }
}

/// `{name}/{ip}` as 1.2 prints the host in detection lines and files.
fn host(name: &str, ip: IpAddr) -> String {
    format!("{}/{}", name_field(name, ip), ip)
}

// ---------------------------------------------------------------------------------------------
// Small closed sets that appear in the texts
// ---------------------------------------------------------------------------------------------

/// TCP header flag bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// What kind of TCP probe a stealth-mode detection line names (§3.2). The first five are 1.2's
/// names; the rest are probes 1.2 drops (it ignores every packet with ACK or RST set) and that
/// this implementation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpScanType {
    /// No flag among SYN FIN ACK PSH RST URG: ` TCP NULL scan` (leading space, as 1.2).
    Null,
    /// FIN, URG and PSH set: `TCP XMAS scan`.
    Xmas,
    /// FIN only: `TCP FIN scan`.
    Fin,
    /// SYN only (ECE and CWR do not count): `TCP SYN/Normal scan`.
    Syn,
    /// Anything else, described from the raw flag byte as 1.2's `ReportPacketType` does.
    Unknown { flags: u8 },
    /// ACK alone outside any known connection (nmap `-sA`): `TCP ACK scan`.
    Ack,
    /// ACK probe whose reply window is read (nmap `-sW`): `TCP Window scan`.
    Window,
    /// FIN+ACK (nmap `-sM`): `TCP Maimon scan`.
    Maimon,
    /// SYN and RST together, never seen in a real connection: `TCP SYN/RST scan`.
    SynRst,
    /// All six classic flags set: `TCP ALL flags scan`.
    All,
}

impl TcpScanType {
    /// 1.2's `ReportPacketType` (§3.2): the first rule that matches wins. ECE and CWR are never
    /// looked at. 1.2 only ever calls it for packets without ACK and RST; with them set the
    /// rules still give XMAS or Unknown, as 1.2's function would.
    pub fn from_flags_v12(flags: u8) -> TcpScanType {
        use tcp_flags::*;
        let six = flags & (SYN | FIN | ACK | PSH | RST | URG);
        if six == 0 {
            TcpScanType::Null
        } else if six & (FIN | URG | PSH) == (FIN | URG | PSH) {
            TcpScanType::Xmas
        } else if six == FIN {
            TcpScanType::Fin
        } else if six == SYN {
            TcpScanType::Syn
        } else {
            TcpScanType::Unknown { flags }
        }
    }

    /// The text that starts the detection line, after `attackalert: `.
    pub fn text(self) -> String {
        match self {
            TcpScanType::Null => " TCP NULL scan".to_owned(),
            TcpScanType::Xmas => "TCP XMAS scan".to_owned(),
            TcpScanType::Fin => "TCP FIN scan".to_owned(),
            TcpScanType::Syn => "TCP SYN/Normal scan".to_owned(),
            TcpScanType::Unknown { flags } => {
                use tcp_flags::*;
                let bit = |mask: u8| u8::from(flags & mask != 0);
                format!(
                    "Unknown Type: TCP Packet Flags: SYN: {} FIN: {} ACK: {} PSH: {} URG: {} RST: {}",
                    bit(SYN),
                    bit(FIN),
                    bit(ACK),
                    bit(PSH),
                    bit(URG),
                    bit(RST)
                )
            }
            TcpScanType::Ack => "TCP ACK scan".to_owned(),
            TcpScanType::Window => "TCP Window scan".to_owned(),
            TcpScanType::Maimon => "TCP Maimon scan".to_owned(),
            TcpScanType::SynRst => "TCP SYN/RST scan".to_owned(),
            TcpScanType::All => "TCP ALL flags scan".to_owned(),
        }
    }
}

/// What a stealth or advanced mode saw: a typed TCP probe or a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanKind {
    Tcp(TcpScanType),
    Udp,
}

impl ScanKind {
    pub fn proto(self) -> Proto {
        match self {
            ScanKind::Tcp(_) => Proto::Tcp,
            ScanKind::Udp => Proto::Udp,
        }
    }

    /// The type text of the detection line (`UDP scan` for UDP, §3.2).
    pub fn text(self) -> String {
        match self {
            ScanKind::Tcp(t) => t.text(),
            ScanKind::Udp => "UDP scan".to_owned(),
        }
    }
}

/// The three response actions, named by their config key (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Route,
    HostsDeny,
    RunCmd,
}

impl Action {
    pub fn key(self) -> &'static str {
        match self {
            Action::Route => "KILL_ROUTE",
            Action::HostsDeny => "KILL_HOSTS_DENY",
            Action::RunCmd => "KILL_RUN_CMD",
        }
    }
}

/// The substitution macros (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Macro {
    Target,
    Port,
    Mode,
}

impl Macro {
    pub fn token(self) -> &'static str {
        match self {
            Macro::Target => "$TARGET$",
            Macro::Port => "$PORT$",
            Macro::Mode => "$MODE$",
        }
    }
}

/// The two ways 1.2 says a command failed (§6.3): `exec fail` or `system fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandFailure {
    Exec,
    System,
}

impl CommandFailure {
    fn word(self) -> &'static str {
        match self {
            CommandFailure::Exec => "exec",
            CommandFailure::System => "system",
        }
    }
}

/// Address family of a listening socket, for the dual-stack bind messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn text(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §8.1 Start-up, shutdown and configuration
// ---------------------------------------------------------------------------------------------

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

/// `adminalert: Cannot open config file: {cfg}. Exiting` (start-up check, §1 step 5.3).
pub fn cannot_open_config_exiting(cfg: &Path) -> String {
    format!(
        "adminalert: Cannot open config file: {}. Exiting",
        cfg.display()
    )
}

/// `adminalert: ERROR: Cannot open config file: {cfg}.` (a key lookup, §2.1 rule 6).
pub fn cannot_open_config(cfg: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot open config file: {}.",
        cfg.display()
    )
}

/// `adminalert: ERROR: Configuration files are missing/corrupted. Shutting down.`
pub fn config_files_missing() -> String {
    "adminalert: ERROR: Configuration files are missing/corrupted. Shutting down.".to_owned()
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

/// `adminalert: Quotes missing from {KEY} token. Option skipped` (§2.1 rule 3).
pub fn quotes_missing(key: &str) -> String {
    format!("adminalert: Quotes missing from {key} token. Option skipped")
}

/// `adminalert: ERROR: Could not read SCAN_TRIGGER option from config file. Disabling SCAN
/// DETECTION TRIGGER` (one line; §2.4).
pub fn scan_trigger_missing() -> String {
    "adminalert: ERROR: Could not read SCAN_TRIGGER option from config file. Disabling SCAN DETECTION TRIGGER"
        .to_owned()
}

/// `InitConfig: Cannot retrieve {KEY} option! Aborting` — no prefix, as in 1.2 (§2.4; 1.2 logs
/// it for `BLOCKED_FILE`, `HISTORY_FILE` and `IGNORE_FILE`).
pub fn cannot_retrieve_option(key: &str) -> String {
    format!("InitConfig: Cannot retrieve {key} option! Aborting")
}

/// `adminalert: ERROR: Blocked filename is too long to append detection type file extension:
/// {path}.` (one line).
pub fn blocked_filename_too_long(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Blocked filename is too long to append detection type file extension: {}.",
        path.display()
    )
}

/// `adminalert: ERROR: Cannot delete blocked file on startup: {path}.`
pub fn cannot_delete_blocked_file(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot delete blocked file on startup: {}.",
        path.display()
    )
}

/// `adminalert: ERROR: Could not read {TCP|UDP}_PORTS option from config file` (§2.3).
pub fn could_not_read_ports(proto: Proto) -> String {
    format!("adminalert: ERROR: Could not read {proto}_PORTS option from config file")
}

/// `adminalert: ERROR: No {TCP|UDP} ports supplied in config file. Aborting` (§2.3).
pub fn no_ports_supplied(proto: Proto) -> String {
    format!("adminalert: ERROR: No {proto} ports supplied in config file. Aborting")
}

// ---------------------------------------------------------------------------------------------
// §8.2 Sockets, per port (§3.1–§3.4)
// ---------------------------------------------------------------------------------------------

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

/// `adminalert: ERROR: could not open TCP socket. Aborting.`, and for UDP the same with a final
/// period, except in `-udp` where 1.2 has none: `…could not open UDP socket. Aborting`.
pub fn could_not_open_socket(mode: Mode) -> String {
    let period = if mode == Mode::Udp { "" } else { "." };
    format!(
        "adminalert: ERROR: could not open {} socket. Aborting{period}",
        mode.proto()
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

/// `adminalert: ERROR: select call failed. Shutting down.` (kept for the poll loop's fatal error)
pub fn select_failed() -> String {
    "adminalert: ERROR: select call failed. Shutting down.".to_owned()
}

/// `adminalert: ERROR: could not accept incoming socket for UDP port: {p}` (a failed `recvfrom`
/// in `-udp`; 1.2 has no TCP form of this line).
pub fn could_not_accept_udp(port: u16) -> String {
    format!("adminalert: ERROR: could not accept incoming socket for UDP port: {port}")
}

/// `adminalert: ERROR: could not open {TCP|UDP} socket to smart-verify.`
pub fn could_not_open_smart_verify_socket(proto: Proto) -> String {
    format!("adminalert: ERROR: could not open {proto} socket to smart-verify.")
}

// ---------------------------------------------------------------------------------------------
// §8.3 Detections
// ---------------------------------------------------------------------------------------------

/// `attackalert: Connect from host: {name}/{ip} to {TCP|UDP} port: {p}` (`-tcp`, `-udp`)
pub fn connect_from(name: &str, ip: IpAddr, proto: Proto, port: u16) -> String {
    format!(
        "attackalert: Connect from host: {} to {proto} port: {port}",
        host(name, ip)
    )
}

/// `attackalert: {type} from host: {name}/{ip} to {TCP|UDP} port: {p}` (stealth and advanced
/// modes). `{type}` is [`ScanKind::text`]; the protocol word follows the kind, so a TCP kind can
/// never be printed with `UDP port`. A NULL scan reads `attackalert:  TCP NULL scan from …`.
pub fn scan_detected(kind: ScanKind, name: &str, ip: IpAddr, port: u16) -> String {
    format!(
        "attackalert: {} from host: {} to {} port: {port}",
        kind.text(),
        host(name, ip),
        kind.proto()
    )
}

/// `attackalert: Packet from host: {name}/{ip} to {TCP|UDP} port: {p} has IP options set
/// (detection avoidance technique).` (one line)
pub fn ip_options_set(name: &str, ip: IpAddr, proto: Proto, port: u16) -> String {
    format!(
        "attackalert: Packet from host: {} to {proto} port: {port} has IP options set (detection avoidance technique).",
        host(name, ip)
    )
}

/// `attackalert: Illegal IP header length detected in {TCP|UDP} packet: {ihl} from (possible)
/// host: {ip}` (one line)
pub fn illegal_header_length(proto: Proto, ihl: u8, ip: IpAddr) -> String {
    format!(
        "attackalert: Illegal IP header length detected in {proto} packet: {ihl} from (possible) host: {ip}"
    )
}

/// `attackalert: Possible stealth scan from unknown host to TCP port: {p} (accept failed)`
pub fn accept_failed(port: u16) -> String {
    format!(
        "attackalert: Possible stealth scan from unknown host to TCP port: {port} (accept failed)"
    )
}

// ---------------------------------------------------------------------------------------------
// §8.4 Responses (§5, §6)
// ---------------------------------------------------------------------------------------------

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

/// `attackalert: ERROR: cannot open ignore file. Blocking host anyway.`
pub fn cannot_open_ignore_file() -> String {
    "attackalert: ERROR: cannot open ignore file. Blocking host anyway.".to_owned()
}

/// 1.2's ignore-file netmask warning, `adminalert: Invalid netmask in config file:
/// {raw line}  Ignoring entry.` — it says "config file", has two spaces before `Ignoring`, and
/// 1.2 passes the raw line with its LF, which is kept if the caller passes it (§5.1). New code
/// reports ignore-file problems with [`ignore_file_entry_ignored`], which names file and line.
pub fn invalid_netmask(raw_line: &str) -> String {
    format!("adminalert: Invalid netmask in config file: {raw_line}  Ignoring entry.")
}

/// `adminalert: ERROR: Cannot open blocked file: {path} for reading. Will create.`
pub fn cannot_open_blocked_file_for_reading(path: &Path) -> String {
    format!(
        "adminalert: ERROR: Cannot open blocked file: {} for reading. Will create.",
        path.display()
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

/// `adminalert: No target variable specified in {KILL_ROUTE|KILL_HOSTS_DENY} option. Skipping.`
/// (1.2 requires `$TARGET$` only in those two; §6.2.)
pub fn no_target_variable(action: Action) -> String {
    format!(
        "adminalert: No target variable specified in {} option. Skipping.",
        action.key()
    )
}

/// `adminalert: Error trying to parse {$TARGET$|$PORT$|$MODE$} Token for
/// {KILL_ROUTE|KILL_RUN_CMD|KILL_HOSTS_DENY}. Skipping.` (one line; §6.2)
pub fn token_parse_error(token: Macro, action: Action) -> String {
    format!(
        "adminalert: Error trying to parse {} Token for {}. Skipping.",
        token.token(),
        action.key()
    )
}

/// `adminalert: ERROR: There was an error trying to block host ({exec|system} fail) {ip}`
/// (KILL_ROUTE failed; §6.3)
pub fn block_command_failed(failure: CommandFailure, ip: IpAddr) -> String {
    format!(
        "adminalert: ERROR: There was an error trying to block host ({} fail) {ip}",
        failure.word()
    )
}

/// `adminalert: ERROR: There was an error trying to run command ({exec|system} fail) {ip}`
/// (KILL_RUN_CMD failed; §6.3)
pub fn run_command_failed(failure: CommandFailure, ip: IpAddr) -> String {
    format!(
        "adminalert: ERROR: There was an error trying to run command ({} fail) {ip}",
        failure.word()
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

/// The three lines 1.2 logs for a `SCAN_TRIGGER` above its state-engine capacity (§4):
/// `securityalert: WARNING: Trigger value {T} is larger than state engine capacity of {C}.`,
/// `Adjust the value lower or recompile with a larger state engine value.` (no prefix), and
/// `securityalert: Blocking host anyway because of invalid trigger value`. 1.2 printed garbage
/// (a missing printf argument) for `{C}`; here the caller passes the real capacity.
pub fn trigger_exceeds_capacity(trigger: i64, capacity: usize) -> [String; 3] {
    [
        format!(
            "securityalert: WARNING: Trigger value {trigger} is larger than state engine capacity of {capacity}."
        ),
        "Adjust the value lower or recompile with a larger state engine value.".to_owned(),
        "securityalert: Blocking host anyway because of invalid trigger value".to_owned(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Lines 1.2 lacks (our fixes and additions, DESIGN.md "What we fix and add")
// ---------------------------------------------------------------------------------------------

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

/// `adminalert: PortSentry is reloading its configuration.` (SIGHUP or `init.d reload`)
pub fn reloading() -> String {
    "adminalert: PortSentry is reloading its configuration.".to_owned()
}

/// `adminalert: PortSentry reloaded its configuration.` (the new configuration is in force)
pub fn reloaded() -> String {
    "adminalert: PortSentry reloaded its configuration.".to_owned()
}

/// `attackalert: Rate limit: {n} reports suppressed in the last {s} seconds.` The report
/// limits (a flood of forged sources) dropped that many detection reports; their blocks still
/// ran. `by_prefix` names the source prefixes that lost the most (address, prefix length,
/// count), `others` counts the rest: `...seconds: 900 from 2001:db8:f::/64, 40 from
/// 198.51.100.0/24, 5 from other prefixes.`
pub fn reports_rate_limited(
    n: u64,
    seconds: u64,
    by_prefix: &[(IpAddr, u8, u64)],
    others: u64,
) -> String {
    let mut s =
        format!("attackalert: Rate limit: {n} reports suppressed in the last {seconds} seconds");
    let mut sep = ": ";
    for (ip, len, k) in by_prefix {
        s.push_str(&format!("{sep}{k} from {ip}/{len}"));
        sep = ", ";
    }
    if others > 0 {
        s.push_str(&format!("{sep}{others} from other prefixes"));
    }
    s.push('.');
    s
}

/// `adminalert: Block rate limit of {n} per minute reached (BLOCK_RATE_LIMIT): further blocks
/// are refused until it clears.` Logged once each time the cap is reached.
pub fn block_rate_limit_reached(per_minute: u32) -> String {
    format!(
        "adminalert: Block rate limit of {per_minute} per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears."
    )
}

/// `attackalert: Not blocking host: {name}/{ip}: block rate limit reached.` The report line of
/// a scan whose block the cap refused (in place of the response lines).
pub fn block_refused_rate(name: &str, ip: IpAddr) -> String {
    format!(
        "attackalert: Not blocking host: {}: block rate limit reached.",
        host(name, ip)
    )
}

/// `adminalert: Block rate limit: {n} blocks refused in the last {s} seconds.`
pub fn blocks_refused(n: u64, seconds: u64) -> String {
    format!("adminalert: Block rate limit: {n} blocks refused in the last {seconds} seconds.")
}

/// `securityalert: Refusing to block host {ip}: it is {what}.` A protected address (this
/// host's own, loopback, multicast, broadcast, a default gateway) is never blocked.
pub fn refusing_to_block(ip: IpAddr, what: &str) -> String {
    format!("securityalert: Refusing to block host {ip}: it is {what}.")
}

/// `attackalert: Host {ip} already in hosts.deny file, skipping.` (2.0's wording; 1.2 appended
/// the line again on every block).
pub fn already_in_hosts_deny(ip: IpAddr) -> String {
    format!("attackalert: Host {ip} already in hosts.deny file, skipping.")
}

/// `securityalert: WARNING: blocked-host memory is full ({max} hosts); new blocks are not remembered.`
pub fn blocked_memory_full(max: usize) -> String {
    format!(
        "securityalert: WARNING: blocked-host memory is full ({max} hosts); new blocks are not remembered."
    )
}

/// `adminalert: ERROR: new configuration rejected, keeping the old one: {reason}`
pub fn reload_rejected(reason: impl Display) -> String {
    format!("adminalert: ERROR: new configuration rejected, keeping the old one: {reason}")
}

/// Rate-limit summary for a host whose hits were not logged one by one:
/// `attackalert: {n} further hits from host {ip} suppressed in the last {s} seconds`
pub fn hits_suppressed(count: u64, ip: IpAddr, seconds: u64) -> String {
    format!(
        "attackalert: {count} further hits from host {ip} suppressed in the last {seconds} seconds"
    )
}

/// A bad ignore-file entry, naming file and line (replaces 1.2's [`invalid_netmask`]):
/// `adminalert: Ignore file {path} line {n}: {reason}. Ignoring entry.` The reason should not
/// end with a period.
pub fn ignore_file_entry_ignored(path: &Path, line: usize, reason: impl Display) -> String {
    format!(
        "adminalert: Ignore file {} line {line}: {reason}. Ignoring entry.",
        path.display()
    )
}

/// Capture losses since the last report (stealth and advanced modes; not in 1.2):
/// `adminalert: WARNING: packet capture lost {ring} packets in the ring and dropped {bad}
/// malformed packets ({kinds})` (one line; `kinds` is `name=count ...`, or `none`).
pub fn capture_losses(ring: u64, bad: u64, kinds: &str) -> String {
    let kinds = if kinds.is_empty() { "none" } else { kinds };
    format!(
        "adminalert: WARNING: packet capture lost {ring} packets in the ring and dropped {bad} malformed packets ({kinds})"
    )
}

/// The capture could not be set up or updated: `adminalert: ERROR: packet capture: {err}`
pub fn capture_error(err: impl Display) -> String {
    format!("adminalert: ERROR: packet capture: {err}")
}

/// RESOLVE_HOST: the resolver did not answer in time; lookups rest for a while.
pub fn resolve_timed_out(ip: IpAddr, timeout_ms: u128, rest_s: u64) -> String {
    format!(
        "adminalert: WARNING: reverse lookup of {ip} timed out after {timeout_ms} ms (RESOLVE_HOST): names are not looked up for the next {rest_s} s"
    )
}

/// A capability of KEEP_CAPABILITIES the process does not have (a container, or
/// `CapabilityBoundingSet=` in the unit), logged once at start:
/// `adminalert: WARNING: capability {cap} is not available: {what it disables}.`
pub fn capability_missing(cap: &str, disables: &str) -> String {
    format!("adminalert: WARNING: capability {cap} is not available: {disables}.")
}

/// A configured mode or setting that cannot work without a capability the process lacks:
/// `adminalert: ERROR: {setting} needs capability {cap}, which this process does not have
/// (a container without it, or CapabilityBoundingSet=): cannot start.`
pub fn capability_required(cap: &str, setting: &str) -> String {
    format!(
        "adminalert: ERROR: {setting} needs capability {cap}, which this process does not have (a container without it, or CapabilityBoundingSet=): cannot start."
    )
}

/// The `STATUS=` line systemd shows (`systemctl status`): the modes with their watched port
/// counts and the blocks in force, e.g. `Watching tcp: 8 ports, udp: 9 ports; 2 blocks in force`.
pub fn systemd_status(watched: &[(Mode, usize)], blocks: usize) -> String {
    let modes: Vec<String> = watched
        .iter()
        .map(|(m, n)| {
            let s = if *n == 1 { "" } else { "s" };
            format!("{}: {n} port{s}", m.as_str())
        })
        .collect();
    let s = if blocks == 1 { "" } else { "s" };
    format!("Watching {}; {blocks} block{s} in force", modes.join(", "))
}

// ---------------------------------------------------------------------------------------------
// §7.3 Blocked and history file line
// ---------------------------------------------------------------------------------------------

/// Broken-down local time, as `localtime(3)` gives it; the shell fills it in (this module never
/// reads the clock or the time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// One line of the blocked and history files, **with** its trailing LF (§7.3):
/// `{epoch} - {MM}/{DD}/{YYYY} {hh}:{mm}:{ss} Host: {name}/{ip} Port: {port} {TCP|UDP} Blocked`
///
/// US month/day order, zero-padded, 24-hour, 4-digit year. fail2ban's stock filter reads it with
/// `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`; the name is sanitized, so the line holds exactly
/// one `/` and that one stands before the IP.
pub fn history_line(
    epoch: i64,
    t: &LocalTime,
    name: &str,
    ip: IpAddr,
    port: u16,
    proto: Proto,
) -> String {
    format!(
        "{epoch} - {:02}/{:02}/{:04} {:02}:{:02}:{:02} Host: {} Port: {port} {proto} Blocked\n",
        t.month,
        t.day,
        t.year,
        t.hour,
        t.minute,
        t.second,
        host(name, ip)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().expect("test address"))
    }

    const HOSTILE_NAMES: &[&str] = &[
        "evil.example\n1795383542 - 11/22/2026 21:39:02 Host: 6.6.6.6/6.6.6.6 Port: 1 TCP Blocked",
        "x/10.0.0.1 Port: 1 TCP Blocked",
        "a b",
        "$(reboot)",
        "`id`;rm -rf / | cat & echo >x <y",
        "host\r\nattackalert: fake",
        "tab\there",
        "caf\u{e9}.example",
        "back\\slash",
        "quote\"'",
        "Port:",
        "/",
        "\0nul",
    ];

    #[test]
    fn capability_and_systemd_status_lines() {
        assert_eq!(
            capability_missing(
                "CAP_NET_ADMIN",
                "KILL_ROUTE with ip, iptables or nft will fail"
            ),
            "adminalert: WARNING: capability CAP_NET_ADMIN is not available: KILL_ROUTE with ip, iptables or nft will fail."
        );
        assert_eq!(
            capability_required("CAP_NET_RAW", "mode -stcp"),
            "adminalert: ERROR: mode -stcp needs capability CAP_NET_RAW, which this process does not have (a container without it, or CapabilityBoundingSet=): cannot start."
        );
        assert_eq!(
            systemd_status(&[(Mode::Tcp, 8), (Mode::Audp, 1)], 1),
            "Watching tcp: 8 ports, audp: 1 port; 1 block in force"
        );
        assert_eq!(
            systemd_status(&[(Mode::Stcp, 0)], 0),
            "Watching stcp: 0 ports; 0 blocks in force"
        );
    }

    #[test]
    fn sanitize_keeps_hostname_characters() {
        assert_eq!(
            sanitize_name("mail-1.Example_Host.org"),
            "mail-1.Example_Host.org"
        );
        assert_eq!(sanitize_name("198.51.100.7"), "198.51.100.7");
        assert_eq!(sanitize_name(""), "");
    }

    #[test]
    fn sanitize_escapes_everything_else_as_hex() {
        assert_eq!(sanitize_name("a b"), "a\\x20b");
        assert_eq!(sanitize_name("x/y"), "x\\x2fy");
        assert_eq!(sanitize_name("a\nb"), "a\\x0ab");
        assert_eq!(sanitize_name("Port:"), "Port\\x3a");
        assert_eq!(sanitize_name("back\\slash"), "back\\x5cslash");
        assert_eq!(sanitize_name("caf\u{e9}"), "caf\\xc3\\xa9");
        assert_eq!(
            sanitize_name("$(x);`y`"),
            "\\x24\\x28x\\x29\\x3b\\x60y\\x60"
        );
    }

    #[test]
    fn sanitized_hostile_names_carry_no_separators_or_metacharacters() {
        for name in HOSTILE_NAMES {
            let s = sanitize_name(name);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_\\".contains(&b)),
                "{s:?}"
            );
            // Every backslash starts a complete \xHH escape, so the escaping is reversible.
            let mut rest = s.as_str();
            while let Some(i) = rest.find('\\') {
                let esc = rest.get(i..i + 4).expect("complete escape");
                assert!(esc.starts_with("\\x"), "{esc}");
                assert!(esc[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{esc}");
                rest = &rest[i + 4..];
            }
        }
    }

    // -- §8.1 ----------------------------------------------------------------------------------

    #[test]
    fn startup_shutdown_and_configuration_lines() {
        let cfg = Path::new("/etc/portsentry/portsentry.conf");
        let cases: Vec<(String, &str)> = vec![
            (starting(), "adminalert: PortSentry 1.2 is starting."),
            (
                now_active(),
                "adminalert: PortSentry is now active and listening.",
            ),
            (
                cannot_open_config_exiting(cfg),
                "adminalert: Cannot open config file: /etc/portsentry/portsentry.conf. Exiting",
            ),
            (
                cannot_open_config(cfg),
                "adminalert: ERROR: Cannot open config file: /etc/portsentry/portsentry.conf.",
            ),
            (
                config_files_missing(),
                "adminalert: ERROR: Configuration files are missing/corrupted. Shutting down.",
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
                quotes_missing("BLOCK_TCP"),
                "adminalert: Quotes missing from BLOCK_TCP token. Option skipped",
            ),
            (
                scan_trigger_missing(),
                "adminalert: ERROR: Could not read SCAN_TRIGGER option from config file. Disabling SCAN DETECTION TRIGGER",
            ),
            (
                cannot_retrieve_option("HISTORY_FILE"),
                "InitConfig: Cannot retrieve HISTORY_FILE option! Aborting",
            ),
            (
                blocked_filename_too_long(Path::new("/x/y")),
                "adminalert: ERROR: Blocked filename is too long to append detection type file extension: /x/y.",
            ),
            (
                cannot_delete_blocked_file(Path::new("/var/lib/portsentry/portsentry.blocked.tcp")),
                "adminalert: ERROR: Cannot delete blocked file on startup: /var/lib/portsentry/portsentry.blocked.tcp.",
            ),
            (
                could_not_read_ports(Proto::Tcp),
                "adminalert: ERROR: Could not read TCP_PORTS option from config file",
            ),
            (
                could_not_read_ports(Proto::Udp),
                "adminalert: ERROR: Could not read UDP_PORTS option from config file",
            ),
            (
                no_ports_supplied(Proto::Udp),
                "adminalert: ERROR: No UDP ports supplied in config file. Aborting",
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

    // -- §8.2 ----------------------------------------------------------------------------------

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
                select_failed(),
                "adminalert: ERROR: select call failed. Shutting down.",
            ),
            (
                could_not_accept_udp(7),
                "adminalert: ERROR: could not accept incoming socket for UDP port: 7",
            ),
            (
                could_not_open_smart_verify_socket(Proto::Udp),
                "adminalert: ERROR: could not open UDP socket to smart-verify.",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn open_socket_error_has_no_period_only_in_udp_classic_mode() {
        let want = |m: Mode| match m {
            Mode::Tcp | Mode::Stcp | Mode::Atcp => {
                "adminalert: ERROR: could not open TCP socket. Aborting."
            }
            Mode::Udp => "adminalert: ERROR: could not open UDP socket. Aborting",
            Mode::Sudp | Mode::Audp => "adminalert: ERROR: could not open UDP socket. Aborting.",
        };
        for m in Mode::ALL {
            assert_eq!(could_not_open_socket(m), want(m), "{m}");
        }
    }

    // -- §8.3 and §3.2 -------------------------------------------------------------------------

    #[test]
    fn connect_lines() {
        let ip = v4(198, 51, 100, 7);
        assert_eq!(
            connect_from("198.51.100.7", ip, Proto::Tcp, 111),
            "attackalert: Connect from host: 198.51.100.7/198.51.100.7 to TCP port: 111"
        );
        assert_eq!(
            connect_from("scanner.example.net", ip, Proto::Udp, 7),
            "attackalert: Connect from host: scanner.example.net/198.51.100.7 to UDP port: 7"
        );
        assert_eq!(
            accept_failed(143),
            "attackalert: Possible stealth scan from unknown host to TCP port: 143 (accept failed)"
        );
    }

    #[test]
    fn tcp_scan_names_follow_report_packet_type() {
        use tcp_flags::*;
        let cases = [
            (0, TcpScanType::Null),
            (ECE | CWR, TcpScanType::Null),
            (FIN | URG | PSH, TcpScanType::Xmas),
            (FIN | URG | PSH | SYN, TcpScanType::Xmas),
            (FIN | URG | PSH | ACK | RST | SYN, TcpScanType::Xmas),
            (FIN, TcpScanType::Fin),
            (FIN | ECE, TcpScanType::Fin),
            (SYN, TcpScanType::Syn),
            (SYN | ECE | CWR, TcpScanType::Syn),
            (SYN | FIN, TcpScanType::Unknown { flags: SYN | FIN }),
            (PSH, TcpScanType::Unknown { flags: PSH }),
            (FIN | PSH, TcpScanType::Unknown { flags: FIN | PSH }),
        ];
        for (flags, want) in cases {
            assert_eq!(
                TcpScanType::from_flags_v12(flags),
                want,
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn capture_lines() {
        assert_eq!(
            capture_losses(3, 2, "truncated-ip=2"),
            "adminalert: WARNING: packet capture lost 3 packets in the ring and dropped 2 malformed packets (truncated-ip=2)"
        );
        assert_eq!(
            capture_losses(1, 0, ""),
            "adminalert: WARNING: packet capture lost 1 packets in the ring and dropped 0 malformed packets (none)"
        );
        assert_eq!(
            capture_error("bind: EPERM"),
            "adminalert: ERROR: packet capture: bind: EPERM"
        );
        assert_eq!(
            resolve_timed_out("2001:db8::1".parse().unwrap(), 1000, 30),
            "adminalert: WARNING: reverse lookup of 2001:db8::1 timed out after 1000 ms (RESOLVE_HOST): names are not looked up for the next 30 s"
        );
    }

    #[test]
    fn tcp_scan_texts() {
        use tcp_flags::*;
        let cases = [
            (TcpScanType::Null, " TCP NULL scan"),
            (TcpScanType::Xmas, "TCP XMAS scan"),
            (TcpScanType::Fin, "TCP FIN scan"),
            (TcpScanType::Syn, "TCP SYN/Normal scan"),
            (
                TcpScanType::Unknown { flags: SYN | FIN },
                "Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0",
            ),
            (
                TcpScanType::Unknown { flags: PSH },
                "Unknown Type: TCP Packet Flags: SYN: 0 FIN: 0 ACK: 0 PSH: 1 URG: 0 RST: 0",
            ),
            (
                TcpScanType::Unknown {
                    flags: ACK | URG | RST | ECE,
                },
                "Unknown Type: TCP Packet Flags: SYN: 0 FIN: 0 ACK: 1 PSH: 0 URG: 1 RST: 1",
            ),
            (TcpScanType::Ack, "TCP ACK scan"),
            (TcpScanType::Window, "TCP Window scan"),
            (TcpScanType::Maimon, "TCP Maimon scan"),
            (TcpScanType::SynRst, "TCP SYN/RST scan"),
            (TcpScanType::All, "TCP ALL flags scan"),
        ];
        for (t, want) in cases {
            assert_eq!(t.text(), want);
        }
    }

    #[test]
    fn stealth_detection_lines() {
        let ip = v4(127, 0, 0, 2);
        assert_eq!(
            scan_detected(ScanKind::Tcp(TcpScanType::Null), "127.0.0.2", ip, 1),
            "attackalert:  TCP NULL scan from host: 127.0.0.2/127.0.0.2 to TCP port: 1"
        );
        assert_eq!(
            scan_detected(ScanKind::Tcp(TcpScanType::Syn), "127.0.0.2", ip, 5000),
            "attackalert: TCP SYN/Normal scan from host: 127.0.0.2/127.0.0.2 to TCP port: 5000"
        );
        assert_eq!(
            scan_detected(
                ScanKind::Tcp(TcpScanType::Unknown {
                    flags: tcp_flags::SYN | tcp_flags::FIN
                }),
                "127.0.0.2",
                ip,
                2
            ),
            "attackalert: Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0 from host: 127.0.0.2/127.0.0.2 to TCP port: 2"
        );
        assert_eq!(
            scan_detected(ScanKind::Udp, "127.0.0.2", ip, 9),
            "attackalert: UDP scan from host: 127.0.0.2/127.0.0.2 to UDP port: 9"
        );
        assert_eq!(
            ip_options_set("127.0.0.2", ip, Proto::Tcp, 1),
            "attackalert: Packet from host: 127.0.0.2/127.0.0.2 to TCP port: 1 has IP options set (detection avoidance technique)."
        );
        assert_eq!(
            illegal_header_length(Proto::Udp, 3, ip),
            "attackalert: Illegal IP header length detected in UDP packet: 3 from (possible) host: 127.0.0.2"
        );
    }

    // -- §8.4 ----------------------------------------------------------------------------------

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
                cannot_open_ignore_file(),
                "attackalert: ERROR: cannot open ignore file. Blocking host anyway.",
            ),
            (
                invalid_netmask("10.0.0.0/255.255.255.0\n"),
                "adminalert: Invalid netmask in config file: 10.0.0.0/255.255.255.0\n  Ignoring entry.",
            ),
            (
                cannot_open_blocked_file_for_reading(Path::new(
                    "/var/lib/portsentry/portsentry.blocked.atcp",
                )),
                "adminalert: ERROR: Cannot open blocked file: /var/lib/portsentry/portsentry.blocked.atcp for reading. Will create.",
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
                token_parse_error(Macro::Target, Action::Route),
                "adminalert: Error trying to parse $TARGET$ Token for KILL_ROUTE. Skipping.",
            ),
            (
                token_parse_error(Macro::Port, Action::RunCmd),
                "adminalert: Error trying to parse $PORT$ Token for KILL_RUN_CMD. Skipping.",
            ),
            (
                token_parse_error(Macro::Mode, Action::HostsDeny),
                "adminalert: Error trying to parse $MODE$ Token for KILL_HOSTS_DENY. Skipping.",
            ),
            (
                block_command_failed(CommandFailure::Exec, ip),
                "adminalert: ERROR: There was an error trying to block host (exec fail) 198.51.100.7",
            ),
            (
                block_command_failed(CommandFailure::System, ip),
                "adminalert: ERROR: There was an error trying to block host (system fail) 198.51.100.7",
            ),
            (
                run_command_failed(CommandFailure::System, ip),
                "adminalert: ERROR: There was an error trying to run command (system fail) 198.51.100.7",
            ),
            (
                run_command_failed(CommandFailure::Exec, ip),
                "adminalert: ERROR: There was an error trying to run command (exec fail) 198.51.100.7",
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
        assert_eq!(
            trigger_exceeds_capacity(51, 50),
            [
                "securityalert: WARNING: Trigger value 51 is larger than state engine capacity of 50.",
                "Adjust the value lower or recompile with a larger state engine value.",
                "securityalert: Blocking host anyway because of invalid trigger value",
            ]
        );
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

    // -- New lines -----------------------------------------------------------------------------

    #[test]
    fn new_lines() {
        let ip = v6("2001:db8:0:0:0:0:0:7");
        let err = std::io::Error::from(std::io::ErrorKind::AddrInUse);
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
                hits_suppressed(120, ip, 60),
                "attackalert: 120 further hits from host 2001:db8::7 suppressed in the last 60 seconds".to_owned(),
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

    // -- Names and addresses in lines ------------------------------------------------------------

    #[test]
    fn ipv6_is_printed_compressed_and_unresolved_v6_name_stays_readable() {
        let ip = v6("2001:0db8:0000:0000:0000:ff00:0042:8329");
        assert_eq!(
            connect_from("2001:db8::ff00:42:8329", ip, Proto::Tcp, 1),
            "attackalert: Connect from host: 2001:db8::ff00:42:8329/2001:db8::ff00:42:8329 to TCP port: 1"
        );
        // An empty name is printed as the address, never as `Host: /ip`.
        assert_eq!(
            already_blocked(Mode::Atcp, "", ip),
            "attackalert: Host: 2001:db8::ff00:42:8329/2001:db8::ff00:42:8329 is already blocked Ignoring"
        );
    }

    #[test]
    fn hostile_names_cannot_forge_syslog_lines() {
        let ip = v4(203, 0, 113, 9);
        for name in HOSTILE_NAMES {
            let lines = [
                connect_from(name, ip, Proto::Tcp, 1),
                scan_detected(ScanKind::Udp, name, ip, 1),
                ip_options_set(name, ip, Proto::Udp, 1),
                already_blocked(Mode::Stcp, name, ip),
                could_not_block(Mode::Audp, name, ip),
            ];
            for line in lines {
                assert!(!line.contains(['\n', '\r', '\0', '\t']), "{line:?}");
                assert_eq!(line.matches('/').count(), 1, "{line:?}");
                assert!(line.contains("/203.0.113.9"), "{line:?}");
            }
        }
    }

    // -- §7.3 file line ------------------------------------------------------------------------

    fn verified_time() -> LocalTime {
        LocalTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 21,
            minute: 39,
            second: 2,
        }
    }

    #[test]
    fn history_line_matches_the_verified_1_2_line() {
        assert_eq!(
            history_line(
                1795383542,
                &verified_time(),
                "127.0.0.2",
                v4(127, 0, 0, 2),
                2,
                Proto::Tcp
            ),
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked\n"
        );
    }

    #[test]
    fn history_line_pads_every_field() {
        let t = LocalTime {
            year: 2027,
            month: 1,
            day: 5,
            hour: 0,
            minute: 7,
            second: 9,
        };
        assert_eq!(
            history_line(
                1799107629,
                &t,
                "h.example",
                v4(1, 2, 3, 4),
                54321,
                Proto::Udp
            ),
            "1799107629 - 01/05/2027 00:07:09 Host: h.example/1.2.3.4 Port: 54321 UDP Blocked\n"
        );
    }

    /// fail2ban's stock filter, `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`, by hand: the line
    /// (fail2ban strips the LF) must end in ` Port: {digits} {TCP|UDP} Blocked`, and the host is
    /// what follows the leftmost `/` in the space-free token before it. Returns that host.
    fn fail2ban_stock_host(line: &str) -> Option<&str> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line.strip_suffix(" Blocked")?;
        let rest = rest
            .strip_suffix(" TCP")
            .or_else(|| rest.strip_suffix(" UDP"))?;
        let digits_start = rest.rfind(|c: char| !c.is_ascii_digit())? + 1;
        if digits_start == rest.len() {
            return None;
        }
        let rest = rest[..digits_start].strip_suffix(" Port: ")?;
        let token = &rest[rest.rfind(' ').map_or(0, |i| i + 1)..];
        let (_, host) = token.split_once('/')?;
        // fail2ban's <HOST> admits no '/' and no whitespace.
        if host.is_empty() || host.contains('/') {
            return None;
        }
        Some(host)
    }

    /// The 1.2.3 backport filter, `^\d* - \d{2}\/\d{2}\/\d{4} \d{2}:\d{2}:\d{2} Host: <HOST>`, by
    /// hand. Returns the text `<HOST>` starts at, up to the `/`.
    fn backport_host(line: &str) -> Option<&str> {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let (epoch, rest) = line.split_once(" - ")?;
        if !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let date = rest.get(..10)?;
        let mut d = date.split('/');
        let (mm, dd, yyyy) = (d.next()?, d.next()?, d.next()?);
        if !(digits(mm, 2) && digits(dd, 2) && digits(yyyy, 4)) {
            return None;
        }
        let rest = rest[10..].strip_prefix(' ')?;
        let time = rest.get(..8)?;
        let mut t = time.split(':');
        let (h, m, s) = (t.next()?, t.next()?, t.next()?);
        if !(digits(h, 2) && digits(m, 2) && digits(s, 2)) {
            return None;
        }
        let rest = rest[8..].strip_prefix(" Host: ")?;
        let host = &rest[..rest.find('/')?];
        // <HOST>: an IP or a name of word characters, '-' and '.'. A `\` from sanitizing is
        // let through: the real regex is unanchored after <HOST> and takes the part before it.
        let ok = host.parse::<IpAddr>().is_ok()
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._\\".contains(&b)));
        ok.then_some(host)
    }

    #[test]
    fn history_line_parses_with_fail2ban_filters_v4_and_v6() {
        let t = verified_time();
        let v6ip = v6("2001:db8::1");
        let cases = [
            (v4(127, 0, 0, 2), "127.0.0.2"),
            (v4(198, 51, 100, 7), "scanner.example.net"),
            (v6ip, "2001:db8::1"),
            (v6ip, "v6.scanner.example"),
        ];
        for (ip, name) in cases {
            for proto in [Proto::Tcp, Proto::Udp] {
                let line = history_line(1795383542, &t, name, ip, 2, proto);
                assert_eq!(
                    fail2ban_stock_host(&line),
                    Some(ip.to_string().as_str()),
                    "{line:?}"
                );
                assert_eq!(backport_host(&line), Some(name), "{line:?}");
            }
        }
    }

    #[test]
    fn the_hand_rolled_filters_reject_what_the_regexes_reject() {
        // Guards the matchers above: they must be able to fail.
        let good = "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked";
        assert_eq!(fail2ban_stock_host(good), Some("127.0.0.2"));
        assert_eq!(backport_host(good), Some("127.0.0.2"));
        for bad in [
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 ICMP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port:  TCP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2 Port: 2 TCP Blocked",
            "1795383542 - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked x",
        ] {
            assert_eq!(fail2ban_stock_host(bad), None, "{bad}");
        }
        for bad in [
            "1795383542 - 2026-11-22 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
            "1795383542 - 11/22/2026 21:39 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
            "x - 11/22/2026 21:39:02 Host: 127.0.0.2/127.0.0.2 Port: 2 TCP Blocked",
        ] {
            assert_eq!(backport_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_names_cannot_forge_history_records() {
        let t = verified_time();
        let ip = v4(203, 0, 113, 9);
        for name in HOSTILE_NAMES {
            let line = history_line(1795383542, &t, name, ip, 1, Proto::Tcp);
            let body = line.strip_suffix('\n').expect("ends with LF");
            assert!(!body.contains(['\n', '\r', '\0', '\t']), "{line:?}");
            assert_eq!(
                line.matches('/').count(),
                3,
                "two in the date, one before the IP: {line:?}"
            );
            assert_eq!(line.matches(" Port: ").count(), 1, "{line:?}");
            assert_eq!(fail2ban_stock_host(&line), Some("203.0.113.9"), "{line:?}");
            assert_eq!(
                backport_host(&line),
                Some(sanitize_name(name).as_str()),
                "{line:?}"
            );
            // epoch - date time Host: name/ip Port: port proto Blocked
            assert_eq!(body.split(' ').count(), 10, "{line:?}");
            assert!(
                !body.contains(['$', '`', ';', '|', '&', '<', '>', '(', ')', '"', '\''].as_slice()),
                "{line:?}"
            );
        }
    }

    #[test]
    fn rate_limit_and_block_cap_summaries() {
        assert_eq!(
            reports_rate_limited(7, 10, &[], 7),
            "attackalert: Rate limit: 7 reports suppressed in the last 10 seconds: 7 from other prefixes."
        );
        let by = [
            ("2001:db8:f::".parse().unwrap(), 64, 900),
            (v4(198, 51, 100, 0), 24, 40),
        ];
        assert_eq!(
            reports_rate_limited(945, 11, &by, 5),
            "attackalert: Rate limit: 945 reports suppressed in the last 11 seconds: 900 from 2001:db8:f::/64, 40 from 198.51.100.0/24, 5 from other prefixes."
        );
        assert_eq!(
            reports_rate_limited(940, 11, &by, 0),
            "attackalert: Rate limit: 940 reports suppressed in the last 11 seconds: 900 from 2001:db8:f::/64, 40 from 198.51.100.0/24."
        );
        assert_eq!(
            block_rate_limit_reached(30),
            "adminalert: Block rate limit of 30 per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears."
        );
        assert_eq!(
            block_refused_rate("a\nb", v4(192, 0, 2, 1)),
            "attackalert: Not blocking host: a\\x0ab/192.0.2.1: block rate limit reached."
        );
        assert_eq!(
            blocks_refused(12, 10),
            "adminalert: Block rate limit: 12 blocks refused in the last 10 seconds."
        );
    }
}
