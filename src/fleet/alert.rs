//! What the daemon tells the LAPI: one [`Record`] per block (or, with
//! `CROWDSEC_SEND_LOG_ONLY`, per log-only report), and the alert JSON of CrowdSec's LAPI
//! contract (`pkg/models/localapi_swagger.yaml`, crowdsec v1.4.6: `POST /v1/alerts` takes an
//! array of `Alert`). Pure.
//!
//! Each block is one alert with one `ban` decision (`origin` "crowdsec", as for the LAPI's
//! own machines, so `cscli decisions list` shows it without `-a`). The decision's `until` is
//! the LAPI's `stop_at + duration` (crowdsec `CreateAlertBulk`), and `stop_at` is the moment
//! of detection, so an alert delivered late from the spool still ends its ban when a prompt
//! one would have. A log-only report has no decision and `remediation: false`, so the LAPI's
//! default profile (`Alert.Remediation == true`) does not turn it into a ban.
//!
//! Over the alert limits (`limit`), the blocks of one request go into `portsentry/flood`
//! alerts whose source is a network (scope `Range`: a source prefix, or the network covering
//! a family's records), still with one `ban` decision per address: the LAPI and every
//! bouncer get every block, but the alert list is not flooded.
//!
//! Every alert carries meta `portsentry_records` = `<spool id>:<record numbers>`, so after a
//! request whose outcome is unknown the daemon can ask the LAPI what arrived and never send a
//! record twice (`sys::fleet`).

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::time::rfc3339;
use crate::mode::{Mode, Proto};

/// The scan kinds, one CrowdSec scenario each (`portsentry/<name>`), so an admin can filter:
/// `cscli alerts list -s portsentry/tcp-syn-scan`, `cscli decisions list --scenario ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scan {
    /// A full TCP connect to a bound port (`-tcp`).
    TcpConnect,
    /// A TCP SYN probe (nmap `-sS`).
    TcpSyn,
    /// A bare FIN probe (nmap `-sF`).
    TcpFin,
    /// No flag set (nmap `-sN`).
    TcpNull,
    /// FIN, URG and PSH (nmap `-sX`).
    TcpXmas,
    /// Bare ACK (nmap `-sA` and `-sW`).
    TcpAck,
    /// FIN+ACK (nmap `-sM`).
    TcpMaimon,
    /// SYN and RST together.
    TcpSynRst,
    /// All six classic flags.
    TcpAllFlags,
    /// Another flag combination (1.2's "Unknown Type").
    TcpOddFlags,
    /// A datagram to a watched UDP port (any UDP mode).
    Udp,
    /// SCTP INIT (nmap `-sY`), with BLOCK_ICMP_SCTP.
    SctpInit,
    /// SCTP COOKIE ECHO (nmap `-sZ`), with BLOCK_ICMP_SCTP.
    SctpCookieEcho,
    /// ICMP or ICMPv6 echo request (nmap `-PE`), with BLOCK_ICMP_SCTP.
    IcmpEcho,
    /// ICMP timestamp request (nmap `-PP`), with BLOCK_ICMP_SCTP.
    IcmpTimestamp,
    /// ICMP address mask request (nmap `-PM`), with BLOCK_ICMP_SCTP.
    IcmpMask,
}

/// Scenario of the grouped alerts over the limits.
pub const FLOOD_SCENARIO: &str = "portsentry/flood";
/// Meta key of the record numbers an alert carries.
pub const RECORDS_META: &str = "portsentry_records";

impl Scan {
    /// Every scan kind, in the order of the scenario list sent at login.
    pub const ALL: [Scan; 16] = [
        Scan::TcpConnect,
        Scan::TcpSyn,
        Scan::TcpFin,
        Scan::TcpNull,
        Scan::TcpXmas,
        Scan::TcpAck,
        Scan::TcpMaimon,
        Scan::TcpSynRst,
        Scan::TcpAllFlags,
        Scan::TcpOddFlags,
        Scan::Udp,
        Scan::SctpInit,
        Scan::SctpCookieEcho,
        Scan::IcmpEcho,
        Scan::IcmpTimestamp,
        Scan::IcmpMask,
    ];

    /// The scenario without `portsentry/`; also the spool's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Scan::TcpConnect => "tcp-connect-scan",
            Scan::TcpSyn => "tcp-syn-scan",
            Scan::TcpFin => "tcp-fin-scan",
            Scan::TcpNull => "tcp-null-scan",
            Scan::TcpXmas => "tcp-xmas-scan",
            Scan::TcpAck => "tcp-ack-scan",
            Scan::TcpMaimon => "tcp-maimon-scan",
            Scan::TcpSynRst => "tcp-synrst-scan",
            Scan::TcpAllFlags => "tcp-allflags-scan",
            Scan::TcpOddFlags => "tcp-oddflags-scan",
            Scan::Udp => "udp-scan",
            Scan::SctpInit => "sctp-init-scan",
            Scan::SctpCookieEcho => "sctp-cookie-echo-scan",
            Scan::IcmpEcho => "icmp-echo-probe",
            Scan::IcmpTimestamp => "icmp-timestamp-probe",
            Scan::IcmpMask => "icmp-mask-probe",
        }
    }

    /// The CrowdSec scenario: `portsentry/<name>`.
    pub fn scenario(self) -> String {
        format!("portsentry/{}", self.name())
    }

    /// The kind a spool word names (`Scan::name`), if any.
    pub fn from_name(s: &str) -> Option<Scan> {
        Scan::ALL.into_iter().find(|k| k.name() == s)
    }

    /// TCP or UDP (the SCTP and ICMP kinds are seen by the TCP modes).
    pub fn proto(self) -> Proto {
        if self == Scan::Udp {
            Proto::Udp
        } else {
            Proto::Tcp
        }
    }

    /// Words for the alert's message.
    fn words(self) -> &'static str {
        match self {
            Scan::TcpConnect => "TCP connect",
            Scan::TcpSyn => "TCP SYN scan",
            Scan::TcpFin => "TCP FIN scan",
            Scan::TcpNull => "TCP NULL scan",
            Scan::TcpXmas => "TCP XMAS scan",
            Scan::TcpAck => "TCP ACK scan",
            Scan::TcpMaimon => "TCP Maimon scan",
            Scan::TcpSynRst => "TCP SYN/RST scan",
            Scan::TcpAllFlags => "TCP ALL flags scan",
            Scan::TcpOddFlags => "TCP scan with odd flags",
            Scan::Udp => "UDP scan",
            Scan::SctpInit => "SCTP INIT scan",
            Scan::SctpCookieEcho => "SCTP COOKIE-ECHO scan",
            Scan::IcmpEcho => "ICMP echo scan",
            Scan::IcmpTimestamp => "ICMP timestamp scan",
            Scan::IcmpMask => "ICMP address mask scan",
        }
    }

    /// The scan kind of a hit as the engine describes it.
    pub fn of_hit(mode: Mode, detail: &crate::engine::Detail) -> Scan {
        use crate::classify::TcpScanType as T;
        use crate::engine::Detail;
        match detail {
            Detail::Connect if mode.proto() == Proto::Udp => Scan::Udp,
            Detail::Connect => Scan::TcpConnect,
            Detail::UdpScan => Scan::Udp,
            Detail::TcpScan(t) => match t {
                T::Syn => Scan::TcpSyn,
                T::Fin => Scan::TcpFin,
                T::Null => Scan::TcpNull,
                T::Xmas => Scan::TcpXmas,
                T::Ack => Scan::TcpAck,
                T::Maimon => Scan::TcpMaimon,
                T::SynRst => Scan::TcpSynRst,
                T::All => Scan::TcpAllFlags,
                T::Unknown { .. } => Scan::TcpOddFlags,
            },
            Detail::Other(o) => {
                use crate::classify::OtherProbe as O;
                match o {
                    O::SctpInit => Scan::SctpInit,
                    O::SctpCookieEcho => Scan::SctpCookieEcho,
                    O::IcmpEcho | O::Icmp6Echo => Scan::IcmpEcho,
                    O::IcmpTimestamp => Scan::IcmpTimestamp,
                    O::IcmpAddressMask => Scan::IcmpMask,
                }
            }
        }
    }
}

/// One block (or log-only report) for the fleet, as the event loop records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time of the detection, ms since the epoch.
    pub epoch_ms: i64,
    /// The source: the address blocked (or reported).
    pub ip: IpAddr,
    /// The port it hit.
    pub port: u16,
    /// The mode that saw it.
    pub mode: Mode,
    /// The kind of scan (the scenario).
    pub scan: Scan,
    /// Ban length in seconds; 0: a log-only report (an alert without a decision).
    pub ban_s: u64,
}

/// A record with its number in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    /// Its number in the spool (per spool id, counting up from 1).
    pub seq: u64,
    /// The record.
    pub record: Record,
}

#[derive(Serialize)]
struct Alert {
    scenario: String,
    scenario_hash: String,
    scenario_version: String,
    message: String,
    events_count: i32,
    start_at: String,
    stop_at: String,
    capacity: i32,
    leakspeed: String,
    simulated: bool,
    remediation: bool,
    events: Vec<Event>,
    decisions: Vec<Decision>,
    source: Source,
    meta: Vec<Meta>,
}

#[derive(Serialize)]
struct Event {
    timestamp: String,
    meta: Vec<Meta>,
}

#[derive(Serialize)]
struct Meta {
    key: &'static str,
    value: String,
}

#[derive(Serialize)]
struct Decision {
    origin: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    scope: &'static str,
    value: String,
    duration: String,
    scenario: String,
}

#[derive(Serialize)]
struct Source {
    scope: &'static str,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<String>,
}

/// At most this many events are listed in a flood alert (`events_count` has the total).
pub const FLOOD_EVENTS: usize = 10;

/// One alert to send: a single record, or a group of records over the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// One record as its own alert.
    Single(Numbered),
    /// Records over the limits, as one `portsentry/flood` alert.
    Flood {
        /// Their network: `2001:db8:3::/64`, `198.51.100.0/24` (one prefix), `198.51.0.0/18`
        /// (the network covering a family's records).
        prefix: (IpAddr, u8),
        /// The records, in order.
        records: Vec<Numbered>,
    },
}

impl Planned {
    /// The records the alert carries.
    pub fn records(&self) -> &[Numbered] {
        match self {
            Planned::Single(n) => std::slice::from_ref(n),
            Planned::Flood { records, .. } => records,
        }
    }
}

fn event(r: &Record) -> Event {
    let m = |key, value: String| Meta { key, value };
    Event {
        timestamp: rfc3339(r.epoch_ms),
        meta: vec![
            m("source_ip", r.ip.to_string()),
            m("service", "portsentry".to_string()),
            m("dst_port", r.port.to_string()),
            m("proto", r.scan.proto().upper().to_string()),
            m("mode", r.mode.as_str().to_string()),
            m("scan", r.scan.name().to_string()),
        ],
    }
}

/// The decision for `r`, ending `ban_s` after the record's detection although the LAPI counts
/// from the alert's `stop_at` (`stop_ms`): the difference is taken off the duration.
fn decision(r: &Record, stop_ms: i64, scenario: &str) -> Decision {
    let ms =
        i64::try_from(r.ban_s.saturating_mul(1000)).unwrap_or(i64::MAX) - (stop_ms - r.epoch_ms);
    Decision {
        origin: "crowdsec",
        kind: "ban",
        scope: "Ip",
        value: r.ip.to_string(),
        duration: if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        },
        scenario: scenario.to_string(),
    }
}

/// `1-3,7,9-12`: record numbers as ranges.
pub fn seq_ranges(seqs: &[u64]) -> String {
    let mut v: Vec<u64> = seqs.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&a) = v.get(i) {
        let mut b = a;
        while v.get(i + 1) == Some(&(b + 1)) {
            b += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        let _ = if a == b {
            write!(out, "{a}")
        } else {
            write!(out, "{a}-{b}")
        };
        i += 1;
    }
    out
}

/// The inverse of [`seq_ranges`]; None for anything else. At most `limit` numbers.
pub fn parse_seq_ranges(s: &str, limit: usize) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?),
            None => {
                let a = part.parse::<u64>().ok()?;
                (a, a)
            }
        };
        if b < a || (b - a) as usize >= limit.saturating_sub(out.len()) {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// The body of one `POST /v1/alerts`: a JSON array, one alert per planned entry, in order.
pub fn body(spool_id: &str, plan: &[Planned]) -> String {
    let alerts: Vec<Alert> = plan.iter().map(|p| alert(spool_id, p)).collect();
    serde_json::to_string(&alerts).unwrap_or_else(|_| "[]".to_string())
}

fn alert(spool_id: &str, p: &Planned) -> Alert {
    let recs = p.records();
    let start = recs.iter().map(|n| n.record.epoch_ms).min().unwrap_or(0);
    let stop = recs.iter().map(|n| n.record.epoch_ms).max().unwrap_or(0);
    let seqs: Vec<u64> = recs.iter().map(|n| n.seq).collect();
    let meta = vec![Meta {
        key: RECORDS_META,
        value: format!("{spool_id}:{}", seq_ranges(&seqs)),
    }];
    let bans = recs.iter().filter(|n| n.record.ban_s > 0);
    match p {
        Planned::Single(n) => {
            let r = &n.record;
            let scenario = r.scan.scenario();
            let outcome = if r.ban_s > 0 {
                format!("banned for {} s", r.ban_s)
            } else {
                "reported only (BLOCK_x=0)".to_string()
            };
            Alert {
                message: format!(
                    "portsentry: {} from {} to port {} (mode {}); {outcome}",
                    r.scan.words(),
                    r.ip,
                    r.port,
                    r.mode
                ),
                events_count: 1,
                start_at: rfc3339(start),
                stop_at: rfc3339(stop),
                remediation: r.ban_s > 0,
                events: vec![event(r)],
                decisions: bans.map(|n| decision(&n.record, stop, &scenario)).collect(),
                source: Source {
                    scope: "Ip",
                    value: r.ip.to_string(),
                    ip: Some(r.ip.to_string()),
                    range: None,
                },
                meta,
                ..base(scenario)
            }
        }
        Planned::Flood { prefix, records } => {
            let net = format!("{}/{}", prefix.0, prefix.1);
            let decisions: Vec<Decision> = bans
                .map(|n| decision(&n.record, stop, FLOOD_SCENARIO))
                .collect();
            Alert {
                message: format!(
                    "portsentry: {} detections from {net} over the alert limits, grouped; {} ban decisions, one per address",
                    records.len(),
                    decisions.len()
                ),
                events_count: i32::try_from(records.len()).unwrap_or(i32::MAX),
                start_at: rfc3339(start),
                stop_at: rfc3339(stop),
                remediation: !decisions.is_empty(),
                events: records
                    .iter()
                    .take(FLOOD_EVENTS)
                    .map(|n| event(&n.record))
                    .collect(),
                decisions,
                source: Source {
                    scope: "Range",
                    value: net.clone(),
                    ip: None,
                    range: Some(net),
                },
                meta,
                ..base(FLOOD_SCENARIO.to_string())
            }
        }
    }
}

fn base(scenario: String) -> Alert {
    Alert {
        scenario,
        scenario_hash: String::new(),
        scenario_version: env!("CARGO_PKG_VERSION").to_string(),
        message: String::new(),
        events_count: 0,
        start_at: String::new(),
        stop_at: String::new(),
        capacity: 0,
        leakspeed: "0s".to_string(),
        simulated: false,
        remediation: false,
        events: Vec::new(),
        decisions: Vec::new(),
        source: Source {
            scope: "Ip",
            value: String::new(),
            ip: None,
            range: None,
        },
        meta: Vec::new(),
    }
}

/// The record numbers of spool `spool_id` that alerts in a `GET /v1/alerts` answer carry:
/// what already reached the LAPI. Alerts of other spools and other machines are skipped;
/// an answer that is not a JSON array of alerts is an error.
pub fn delivered_seqs(spool_id: &str, json: &[u8]) -> Result<Vec<u64>, String> {
    #[derive(serde::Deserialize)]
    struct A {
        #[serde(default)]
        meta: Option<Vec<M>>,
    }
    #[derive(serde::Deserialize)]
    struct M {
        key: Option<String>,
        value: Option<String>,
    }
    let alerts: Option<Vec<A>> =
        serde_json::from_slice(json).map_err(|e| format!("bad JSON from the LAPI: {e}"))?;
    let prefix = format!("{spool_id}:");
    let mut out = Vec::new();
    for a in alerts.unwrap_or_default() {
        for m in a.meta.unwrap_or_default() {
            if m.key.as_deref() == Some(RECORDS_META)
                && let Some(v) = m.value.as_deref().and_then(|v| v.strip_prefix(&prefix))
                && let Some(seqs) = parse_seq_ranges(v, 1 << 20)
            {
                out.extend(seqs);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, ms: i64, ban_s: u64) -> Record {
        Record {
            epoch_ms: ms,
            ip: ip.parse().unwrap(),
            port: 11,
            mode: Mode::Stcp,
            scan: Scan::TcpSyn,
            ban_s,
        }
    }

    #[test]
    fn scenario_names_round_trip_and_are_distinct() {
        for s in Scan::ALL {
            assert_eq!(Scan::from_name(s.name()), Some(s));
            assert!(s.scenario().starts_with("portsentry/"));
            assert!(
                s.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
        }
        let mut names: Vec<_> = Scan::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 16);
        assert_eq!(Scan::from_name("nope"), None);
        use crate::classify::OtherProbe as O;
        use crate::classify::TcpScanType as T;
        use crate::engine::Detail;
        for (o, want) in [
            (O::SctpInit, Scan::SctpInit),
            (O::SctpCookieEcho, Scan::SctpCookieEcho),
            (O::IcmpEcho, Scan::IcmpEcho),
            (O::Icmp6Echo, Scan::IcmpEcho),
            (O::IcmpTimestamp, Scan::IcmpTimestamp),
            (O::IcmpAddressMask, Scan::IcmpMask),
        ] {
            assert_eq!(Scan::of_hit(Mode::Atcp, &Detail::Other(o)), want);
            assert_eq!(want.proto(), crate::mode::Proto::Tcp);
        }
        assert_eq!(Scan::of_hit(Mode::Udp, &Detail::Connect), Scan::Udp);
        assert_eq!(Scan::of_hit(Mode::Tcp, &Detail::Connect), Scan::TcpConnect);
        assert_eq!(
            Scan::of_hit(Mode::Atcp, &Detail::TcpScan(T::Ack)),
            Scan::TcpAck
        );
        assert_eq!(
            Scan::of_hit(Mode::Stcp, &Detail::TcpScan(T::Unknown { flags: 0x42 })),
            Scan::TcpOddFlags
        );
    }

    #[test]
    fn a_block_is_one_alert_with_one_ban_golden() {
        let plan = [Planned::Single(Numbered {
            seq: 7,
            record: rec("192.0.2.7", 1_795_383_542_123, 3600),
        })];
        let v: serde_json::Value = serde_json::from_str(&body("ab12", &plan)).unwrap();
        let want = serde_json::json!([{
            "scenario": "portsentry/tcp-syn-scan",
            "scenario_hash": "",
            "scenario_version": env!("CARGO_PKG_VERSION"),
            "message": "portsentry: TCP SYN scan from 192.0.2.7 to port 11 (mode stcp); banned for 3600 s",
            "events_count": 1,
            "start_at": "2026-11-22T21:39:02.123Z",
            "stop_at": "2026-11-22T21:39:02.123Z",
            "capacity": 0,
            "leakspeed": "0s",
            "simulated": false,
            "remediation": true,
            "events": [{"timestamp": "2026-11-22T21:39:02.123Z", "meta": [
                {"key": "source_ip", "value": "192.0.2.7"},
                {"key": "service", "value": "portsentry"},
                {"key": "dst_port", "value": "11"},
                {"key": "proto", "value": "TCP"},
                {"key": "mode", "value": "stcp"},
                {"key": "scan", "value": "tcp-syn-scan"}]}],
            "decisions": [{"origin": "crowdsec", "type": "ban", "scope": "Ip", "value": "192.0.2.7",
                "duration": "3600s", "scenario": "portsentry/tcp-syn-scan"}],
            "source": {"scope": "Ip", "value": "192.0.2.7", "ip": "192.0.2.7"},
            "meta": [{"key": "portsentry_records", "value": "ab12:7"}]
        }]);
        assert_eq!(v, want);
    }

    #[test]
    fn a_log_only_report_has_no_decision_and_no_remediation() {
        let mut r = rec("2001:db8::7", 0, 0);
        r.scan = Scan::Udp;
        r.mode = Mode::Sudp;
        let v: serde_json::Value = serde_json::from_str(&body(
            "x",
            &[Planned::Single(Numbered { seq: 1, record: r })],
        ))
        .unwrap();
        assert_eq!(v[0]["decisions"], serde_json::json!([]));
        assert_eq!(v[0]["remediation"], false);
        assert_eq!(v[0]["scenario"], "portsentry/udp-scan");
        assert_eq!(v[0]["source"]["value"], "2001:db8::7");
        assert!(
            v[0]["message"]
                .as_str()
                .unwrap()
                .ends_with("reported only (BLOCK_x=0)")
        );
    }

    #[test]
    fn a_flood_alert_groups_one_prefix_with_a_ban_per_address_ending_on_time() {
        let recs: Vec<Numbered> = (0..15u64)
            .map(|i| Numbered {
                seq: 100 + i,
                record: rec(
                    &format!("2001:db8:3::{i:x}"),
                    1_000_000 + i as i64 * 100,
                    60,
                ),
            })
            .collect();
        let plan = [Planned::Flood {
            prefix: ("2001:db8:3::".parse().unwrap(), 64),
            records: recs,
        }];
        let v: serde_json::Value = serde_json::from_str(&body("id", &plan)).unwrap();
        let a = &v[0];
        assert_eq!(a["scenario"], FLOOD_SCENARIO);
        assert_eq!(
            a["source"],
            serde_json::json!({"scope": "Range", "value": "2001:db8:3::/64", "range": "2001:db8:3::/64"})
        );
        assert_eq!(a["events_count"], 15);
        assert_eq!(a["events"].as_array().unwrap().len(), FLOOD_EVENTS);
        let d = a["decisions"].as_array().unwrap();
        assert_eq!(d.len(), 15);
        // stop_at is the last record's time; the first record's ban ends 1.4 s earlier.
        assert_eq!(d[0]["duration"], "58600ms");
        assert_eq!(d[14]["duration"], "60s");
        assert_eq!(d[3]["value"], "2001:db8:3::3");
        assert_eq!(a["meta"][0]["value"], "id:100-114");
    }

    #[test]
    fn record_ranges_round_trip() {
        assert_eq!(seq_ranges(&[3, 1, 2, 7, 9, 10, 11, 9]), "1-3,7,9-11");
        assert_eq!(seq_ranges(&[]), "");
        assert_eq!(
            parse_seq_ranges("1-3,7,9-11", 100),
            Some(vec![1, 2, 3, 7, 9, 10, 11])
        );
        for bad in ["", "a", "3-1", "1-", "-1", "1,,2", "0-18446744073709551615"] {
            assert_eq!(parse_seq_ranges(bad, 1000), None, "{bad}");
        }
    }

    #[test]
    fn what_arrived_is_read_back_from_the_alert_list() {
        let ours = body(
            "sp1",
            &[Planned::Single(Numbered {
                seq: 4,
                record: rec("192.0.2.1", 0, 5),
            })],
        );
        let theirs = body(
            "sp2",
            &[Planned::Single(Numbered {
                seq: 5,
                record: rec("192.0.2.2", 0, 5),
            })],
        );
        // The LAPI answers with its own fields around ours; null meta happens too.
        let json = format!(
            "[{}, {}, {{\"id\": 9, \"meta\": null}}, {{\"meta\": [{{\"key\": \"portsentry_records\", \"value\": \"sp1:10-12\"}}]}}]",
            &ours[1..ours.len() - 1],
            &theirs[1..theirs.len() - 1]
        );
        assert_eq!(
            delivered_seqs("sp1", json.as_bytes()),
            Ok(vec![4, 10, 11, 12])
        );
        assert_eq!(delivered_seqs("sp1", b"null"), Ok(vec![]));
        assert!(delivered_seqs("sp1", b"{\"message\": \"x\"}").is_err());
        assert!(delivered_seqs("sp1", b"<html>").is_err());
    }
}
