//! EVENTS_FILE: one JSON object per line for each detection, block, refusal, expiry and
//! unblock, for log shippers and scripts (syslog lines never change; these are in addition).
//!
//! Every line has the same keys, in this order, `null` where a key does not apply:
//!
//! | key | value |
//! | --- | --- |
//! | `time` | RFC 3339 with the local offset and milliseconds, `2026-11-30T14:03:12.345+01:00` |
//! | `event` | `detection`, `block`, `refusal`, `expiry`, `unblock` |
//! | `source` | the address, IPv4 dotted or IPv6 RFC 5952 |
//! | `port` | the port probed (the port of the scan that led to a block); `null` for an ICMP probe |
//! | `proto` | `tcp` or `udp`; for SCTP and ICMP detections `sctp`, `icmp` or `icmpv6` |
//! | `mode` | `tcp`, `udp`, `stcp`, `sudp`, `atcp`, `audp` |
//! | `kind` | detections: the scan kind (`connect`, `syn`, `fin`, `null`, `xmas`, `ack`, `maimon`, `synrst`, `all`, `other`, `udp`, `sctp_init`, `sctp_cookie_echo`, `icmp_echo`, `icmp_timestamp`, `icmp_mask`, `icmp6_echo`) |
//! | `action` | detection: `block`, `log` (BLOCK_x=0) or `none` (already blocked); block: the methods, `+`-joined (`nftables+route`); refusal: `block`; expiry and unblock: `unblock` |
//! | `result` | `ok`, `failed`, `refused` |
//! | `reason` | refusal: `rate_limit`, `protected`; expiry: `timeout`; unblock: `admin`; a failed block: what failed |
//!
//! Pure: the formatter takes the time and zone as arguments; `sys::events_file` writes.

use std::net::IpAddr;
use std::path::PathBuf;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::mode::{Mode, Proto};
use crate::stats::{Method, ProbeKind, Refusal};
use crate::timefmt;

/// The five event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A host was reported for a probe.
    Detection,
    /// A block ran (or failed).
    Block,
    /// A block was refused.
    Refusal,
    /// A block reached BLOCK_TIMEOUT.
    Expiry,
    /// A block was lifted by hand.
    Unblock,
}

impl EventKind {
    /// Every type, in the order they are documented.
    pub const ALL: [EventKind; 5] = [
        EventKind::Detection,
        EventKind::Block,
        EventKind::Refusal,
        EventKind::Expiry,
        EventKind::Unblock,
    ];

    /// The `event` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Detection => "detection",
            EventKind::Block => "block",
            EventKind::Refusal => "refusal",
            EventKind::Expiry => "expiry",
            EventKind::Unblock => "unblock",
        }
    }
}

/// What a detection leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The KILL_* actions / nftables run (BLOCK_x=1 or 2).
    Block,
    /// Logged only (BLOCK_x=0).
    Log,
    /// Nothing: the host is already blocked.
    None,
}

/// One event, before formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// Which of the five.
    pub event: EventKind,
    /// The source address.
    pub source: IpAddr,
    /// The port probed.
    pub port: Option<u16>,
    /// The mode that saw it.
    pub mode: Option<Mode>,
    /// Detections: the scan kind.
    pub kind: Option<ProbeKind>,
    /// What was done (see the module table).
    pub action: Option<String>,
    /// `ok`, `failed`, `refused`.
    pub result: Option<&'static str>,
    /// Why (see the module table).
    pub reason: Option<String>,
}

impl Event {
    fn new(time_ms: i64, event: EventKind, source: IpAddr) -> Event {
        Event {
            time_ms,
            event,
            source: source.to_canonical(),
            port: None,
            mode: None,
            kind: None,
            action: None,
            result: None,
            reason: None,
        }
    }

    /// A host was reported for a probe of `kind` on `port`.
    pub fn detection(
        time_ms: i64,
        source: IpAddr,
        port: u16,
        mode: Mode,
        kind: ProbeKind,
        response: Response,
    ) -> Event {
        Event {
            port: (!kind.is_icmp()).then_some(port),
            mode: Some(mode),
            kind: Some(kind),
            action: Some(
                match response {
                    Response::Block => "block",
                    Response::Log => "log",
                    Response::None => "none",
                }
                .to_string(),
            ),
            reason: (response == Response::None).then(|| "already_blocked".to_string()),
            ..Event::new(time_ms, EventKind::Detection, source)
        }
    }

    /// A block ran with `methods`; `failure` says what failed, if it did.
    pub fn block(
        time_ms: i64,
        source: IpAddr,
        port: u16,
        mode: Mode,
        methods: &[Method],
        failure: Option<String>,
    ) -> Event {
        let action: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        Event {
            port: Some(port),
            mode: Some(mode),
            action: Some(action.join("+")),
            result: Some(if failure.is_none() { "ok" } else { "failed" }),
            reason: failure,
            ..Event::new(time_ms, EventKind::Block, source)
        }
    }

    /// A block was refused.
    pub fn refusal(time_ms: i64, source: IpAddr, port: u16, mode: Mode, why: Refusal) -> Event {
        Event {
            port: Some(port),
            mode: Some(mode),
            action: Some("block".to_string()),
            result: Some("refused"),
            reason: Some(why.as_str().to_string()),
            ..Event::new(time_ms, EventKind::Refusal, source)
        }
    }

    /// A block expired (BLOCK_TIMEOUT); `failure` if its undo command failed.
    pub fn expiry(
        time_ms: i64,
        source: IpAddr,
        mode: Option<Mode>,
        failure: Option<String>,
    ) -> Event {
        Event {
            mode,
            action: Some("unblock".to_string()),
            result: Some(if failure.is_none() { "ok" } else { "failed" }),
            reason: Some(failure.unwrap_or_else(|| "timeout".to_string())),
            ..Event::new(time_ms, EventKind::Expiry, source)
        }
    }

    /// A block was lifted by hand (`portsentry blocked del|flush`).
    pub fn unblock(time_ms: i64, source: IpAddr, mode: Option<Mode>) -> Event {
        Event {
            mode,
            action: Some("unblock".to_string()),
            result: Some("ok"),
            reason: Some("admin".to_string()),
            ..Event::new(time_ms, EventKind::Unblock, source)
        }
    }
}

/// The JSON object of one line, keys in the documented order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// RFC 3339 with the offset and milliseconds.
    pub time: String,
    /// `detection`, `block`, `refusal`, `expiry`, `unblock`.
    pub event: String,
    /// The source address.
    pub source: String,
    /// The port probed.
    pub port: Option<u16>,
    /// `tcp` or `udp`.
    pub proto: Option<String>,
    /// The mode that saw it.
    pub mode: Option<String>,
    /// Detections: the scan kind.
    pub kind: Option<String>,
    /// What was done.
    pub action: Option<String>,
    /// `ok`, `failed`, `refused`.
    pub result: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

fn proto_word(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// One event as a line of JSON, ending with a line feed.
pub fn line(e: &Event, tz: &TimeZone) -> String {
    let l = EventLine {
        time: timefmt::rfc3339_ms(e.time_ms, tz),
        event: e.event.as_str().to_string(),
        source: e.source.to_string(),
        port: e.port,
        proto: e
            .kind
            .and_then(ProbeKind::own_proto)
            .or(e.mode.map(|m| proto_word(m.proto())))
            .map(str::to_string),
        mode: e.mode.map(|m| m.as_str().to_string()),
        kind: e.kind.map(|k| k.as_str().to_string()),
        action: e.action.clone(),
        result: e.result.map(str::to_string),
        reason: e.reason.clone(),
    };
    // Strings and integers only: serialising cannot fail, and serde_json escapes control
    // characters, so a line never holds a raw line feed.
    let mut s = serde_json::to_string(&l).unwrap_or_default();
    s.push('\n');
    s
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `EVENTS_FILE="-"` with `-f`: standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// EVENTS_FILE's value for a daemon started with or without `-f`. `-` needs `-f` (a daemon's
/// standard output is /dev/null).
pub fn target(value: &std::path::Path, foreground: bool) -> Result<Target, String> {
    if value.as_os_str() == "-" {
        if foreground {
            Ok(Target::Stdout)
        } else {
            Err(
                "EVENTS_FILE \"-\" (standard output) needs -f (foreground); no events are written"
                    .to_string(),
            )
        }
    } else {
        Ok(Target::File(value.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_043_600_123; // 2026-11-30T13:00:00.123Z

    fn tz() -> TimeZone {
        jiff::tz::offset(1).to_time_zone()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_event_type_is_golden() {
        let cases = [
            (
                Event::detection(
                    T,
                    ip("198.51.100.2"),
                    22,
                    Mode::Stcp,
                    ProbeKind::Syn,
                    Response::Block,
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"detection","source":"198.51.100.2","port":22,"proto":"tcp","mode":"stcp","kind":"syn","action":"block","result":null,"reason":null}"#,
            ),
            (
                Event::detection(
                    T,
                    ip("2001:db8::2"),
                    137,
                    Mode::Sudp,
                    ProbeKind::Udp,
                    Response::None,
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"detection","source":"2001:db8::2","port":137,"proto":"udp","mode":"sudp","kind":"udp","action":"none","result":null,"reason":"already_blocked"}"#,
            ),
            (
                Event::detection(
                    T,
                    ip("198.51.100.2"),
                    0,
                    Mode::Atcp,
                    ProbeKind::IcmpTimestamp,
                    Response::Log,
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"detection","source":"198.51.100.2","port":null,"proto":"icmp","mode":"atcp","kind":"icmp_timestamp","action":"log","result":null,"reason":null}"#,
            ),
            (
                Event::detection(
                    T,
                    ip("2001:db8::2"),
                    3868,
                    Mode::Stcp,
                    ProbeKind::SctpInit,
                    Response::Block,
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"detection","source":"2001:db8::2","port":3868,"proto":"sctp","mode":"stcp","kind":"sctp_init","action":"block","result":null,"reason":null}"#,
            ),
            (
                Event::block(
                    T,
                    ip("::ffff:198.51.100.2"),
                    22,
                    Mode::Stcp,
                    &[Method::Nftables, Method::Route],
                    None,
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"block","source":"198.51.100.2","port":22,"proto":"tcp","mode":"stcp","kind":null,"action":"nftables+route","result":"ok","reason":null}"#,
            ),
            (
                Event::block(
                    T,
                    ip("198.51.100.2"),
                    1,
                    Mode::Tcp,
                    &[Method::Route],
                    Some("KILL_ROUTE exited with status 1".into()),
                ),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"block","source":"198.51.100.2","port":1,"proto":"tcp","mode":"tcp","kind":null,"action":"route","result":"failed","reason":"KILL_ROUTE exited with status 1"}"#,
            ),
            (
                Event::refusal(T, ip("198.51.100.9"), 7, Mode::Udp, Refusal::RateLimit),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"refusal","source":"198.51.100.9","port":7,"proto":"udp","mode":"udp","kind":null,"action":"block","result":"refused","reason":"rate_limit"}"#,
            ),
            (
                Event::expiry(T, ip("198.51.100.2"), Some(Mode::Stcp), None),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"expiry","source":"198.51.100.2","port":null,"proto":"tcp","mode":"stcp","kind":null,"action":"unblock","result":"ok","reason":"timeout"}"#,
            ),
            (
                Event::unblock(T, ip("2001:db8::7"), None),
                r#"{"time":"2026-11-30T14:00:00.123+01:00","event":"unblock","source":"2001:db8::7","port":null,"proto":null,"mode":null,"kind":null,"action":"unblock","result":"ok","reason":"admin"}"#,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(line(&e, &tz()), format!("{want}\n"));
        }
    }

    #[test]
    fn a_hostile_reason_stays_on_one_line_and_round_trips() {
        let e = Event::block(
            T,
            ip("192.0.2.1"),
            1,
            Mode::Tcp,
            &[Method::RunCmd],
            Some("x\n{\"event\":\"forged\"}\u{7}".into()),
        );
        let l = line(&e, &TimeZone::UTC);
        assert_eq!(l.matches('\n').count(), 1);
        let back: EventLine = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(back.event, "block");
        assert_eq!(
            back.reason.as_deref(),
            Some("x\n{\"event\":\"forged\"}\u{7}")
        );
    }

    #[test]
    fn stdout_needs_the_foreground() {
        use std::path::Path;
        assert_eq!(target(Path::new("-"), true), Ok(Target::Stdout));
        assert!(target(Path::new("-"), false).unwrap_err().contains("-f"));
        assert_eq!(
            target(Path::new("/var/log/portsentry/events.jsonl"), false),
            Ok(Target::File("/var/log/portsentry/events.jsonl".into()))
        );
    }
}
