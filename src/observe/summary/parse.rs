//! Reading the two files `portsentry report` summarises: HISTORY_FILE lines in 1.2's format
//! (`{epoch} - {MM}/{DD}/{YYYY} {hh}:{mm}:{ss} Host: {name}/{ip} Port: {port} {TCP|UDP}
//! Blocked`, see `report::history_line`) and EVENTS_FILE lines (`events::EventLine`).
//! Pure: a line in, a record or the reason it is not one out.

use std::net::IpAddr;

use jiff::Timestamp;

use crate::config::mode::Proto;
use crate::observe::events::EventLine;

/// One history record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Seconds since the epoch (the line's first field).
    pub epoch: i64,
    /// The address after the host field's last `/`.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

/// Parses one history line (with or without its line feed or a CR). The epoch is the first
/// field; the address is the text after the last `/` of the host field, which is safe because
/// names are written with `/` escaped (`report::sanitize_name`), as fail2ban's filter also
/// assumes.
pub fn history_line(line: &str) -> Result<HistoryRecord, &'static str> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (epoch, rest) = line.split_once(' ').ok_or("no epoch field")?;
    let epoch: i64 = epoch
        .parse()
        .map_err(|_| "the first field is not an epoch")?;
    let rest = rest
        .strip_suffix(" Blocked")
        .ok_or("does not end with \"Blocked\"")?;
    let (rest, proto) = rest.rsplit_once(' ').ok_or("no protocol")?;
    let proto = match proto {
        "TCP" => Proto::Tcp,
        "UDP" => Proto::Udp,
        _ => return Err("the protocol is not TCP or UDP"),
    };
    let (rest, port) = rest.rsplit_once(" Port: ").ok_or("no \"Port:\" field")?;
    let port: u16 = port
        .parse()
        .map_err(|_| "the port is not a number 0-65535")?;
    let (_, host) = rest.split_once(" Host: ").ok_or("no \"Host:\" field")?;
    let (_, ip) = host.rsplit_once('/').ok_or("the host has no /address")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| "the host address is not an IP address")?;
    Ok(HistoryRecord {
        epoch,
        ip: ip.to_canonical(),
        port,
        proto,
    })
}

/// One event line, with its time read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The event's time (epoch seconds).
    pub epoch: i64,
    /// The event itself.
    pub line: EventLine,
}

/// Parses one EVENTS_FILE line.
pub fn event_line(line: &str) -> Result<EventRecord, String> {
    let l: EventLine = serde_json::from_str(line.trim_end_matches(['\n', '\r']))
        .map_err(|e| format!("not an event object: {e}"))?;
    let ts: Timestamp = l
        .time
        .parse()
        .map_err(|_| format!("\"time\" is not RFC 3339: {:?}", l.time))?;
    Ok(EventRecord {
        epoch: ts.as_second(),
        line: l,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::{LocalTime, history_line as write_line};

    #[test]
    fn reads_what_the_daemon_writes_v4_v6_and_names() {
        let t = LocalTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 21,
            minute: 39,
            second: 2,
        };
        for (name, ip, port, proto) in [
            ("192.0.2.2", "192.0.2.2", 11u16, Proto::Tcp),
            ("", "2001:db8::2", 137, Proto::Udp),
            (
                "evil/x Port: 1 TCP Blocked",
                "198.51.100.7",
                65535,
                Proto::Tcp,
            ),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let line = write_line(1_795_383_542, &t, name, ip, port, proto);
            assert_eq!(
                history_line(&line),
                Ok(HistoryRecord {
                    epoch: 1_795_383_542,
                    ip,
                    port,
                    proto
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("", "no epoch field"),
            (
                "x - 11/22/2026 21:39:02 Host: a/1.2.3.4 Port: 1 TCP Blocked",
                "the first field is not an epoch",
            ),
            (
                "1 - 11/22/2026 21:39:02 Host: a/1.2.3.4 Port: 1 TCP",
                "does not end with \"Blocked\"",
            ),
            (
                "1 - 11/22/2026 21:39:02 Host: a/1.2.3.4 Port: 1 ICMP Blocked",
                "the protocol is not TCP or UDP",
            ),
            (
                "1 - 11/22/2026 21:39:02 Host: a/1.2.3.4 Port: 70000 TCP Blocked",
                "the port is not a number 0-65535",
            ),
            (
                "1 - 11/22/2026 21:39:02 Host: a/nothost Port: 1 TCP Blocked",
                "the host address is not an IP address",
            ),
            (
                "1 - 11/22/2026 21:39:02 Hst: a/1.2.3.4 Port: 1 TCP Blocked",
                "no \"Host:\" field",
            ),
        ] {
            assert_eq!(history_line(line), Err(why), "{line}");
        }
    }

    #[test]
    fn v4_mapped_addresses_count_as_v4_and_cr_is_ignored() {
        let r = history_line(
            "5 - 01/01/1970 00:00:05 Host: x/::ffff:192.0.2.9 Port: 2 UDP Blocked\r\n",
        )
        .unwrap();
        assert_eq!(r.ip, "192.0.2.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn event_lines_round_trip_from_the_formatter() {
        use crate::config::mode::Mode;
        use crate::observe::events::{Event, Response, line};
        use crate::observe::stats::ProbeKind;
        let e = Event::detection(
            1_796_043_600_500,
            "192.0.2.1".parse().unwrap(),
            22,
            Mode::Stcp,
            ProbeKind::Xmas,
            Response::Log,
        );
        let r = event_line(&line(&e, &jiff::tz::offset(-5).to_time_zone())).unwrap();
        assert_eq!(r.epoch, 1_796_043_600);
        assert_eq!(r.line.kind.as_deref(), Some("xmas"));
        assert!(
            event_line("{\"time\":\"yesterday\",\"event\":\"block\",\"source\":\"x\"}").is_err()
        );
        assert!(event_line("not json").is_err());
    }
}
