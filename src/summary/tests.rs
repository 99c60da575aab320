//! The report's numbers, its period, its bounds and its text view (golden).

use std::net::IpAddr;

use super::*;
use crate::events::{Event, Response, line as event_line};
use crate::mode::Mode;
use crate::report::{LocalTime, history_line};
use crate::stats::{Method, ProbeKind, Refusal};

/// 2026-11-30T13:00:00Z.
const T0: i64 = 1_796_043_600;

fn hist(epoch: i64, ip: &str, port: u16, proto: Proto) -> String {
    let t = LocalTime {
        year: 2026,
        month: 11,
        day: 30,
        hour: 0,
        minute: 0,
        second: 0,
    };
    history_line(epoch, &t, "", ip.parse().unwrap(), port, proto)
}

fn tz() -> TimeZone {
    jiff::tz::offset(1).to_time_zone()
}

fn sample() -> Summary {
    let mut s = Summary::new(Some(T0 - 6 * 3600), T0);
    let lines = [
        hist(T0 - 7 * 3600, "192.0.2.99", 1, Proto::Tcp), // before the period
        hist(T0 - 5 * 3600, "198.51.100.2", 22, Proto::Tcp),
        hist(T0 - 5 * 3600 + 10, "198.51.100.2", 23, Proto::Tcp),
        hist(T0 - 2 * 3600, "198.51.100.3", 22, Proto::Tcp),
        hist(T0 - 3600, "2001:db8::2", 137, Proto::Udp),
        hist(T0 - 60, "2001:db8::3", 137, Proto::Udp),
        "garbage\n".to_string(),
        hist(T0, "192.0.2.98", 1, Proto::Tcp), // at --until: outside
    ];
    for (i, l) in lines.iter().enumerate() {
        s.history("h", i as u64 + 1, l);
    }
    let ip = |x: &str| x.parse::<IpAddr>().unwrap();
    let ev = [
        Event::detection(
            (T0 - 5 * 3600) * 1000,
            ip("198.51.100.2"),
            22,
            Mode::Stcp,
            ProbeKind::Syn,
            Response::Block,
        ),
        Event::detection(
            (T0 - 5 * 3600) * 1000,
            ip("198.51.100.2"),
            23,
            Mode::Stcp,
            ProbeKind::Fin,
            Response::None,
        ),
        Event::detection(
            (T0 - 3600) * 1000,
            ip("2001:db8::2"),
            137,
            Mode::Sudp,
            ProbeKind::Udp,
            Response::Log,
        ),
        Event::block(
            (T0 - 5 * 3600) * 1000,
            ip("198.51.100.2"),
            22,
            Mode::Stcp,
            &[Method::Nftables],
            None,
        ),
        Event::refusal(
            (T0 - 60) * 1000,
            ip("2001:db8::3"),
            137,
            Mode::Sudp,
            Refusal::RateLimit,
        ),
        Event::expiry((T0 - 30) * 1000, ip("198.51.100.2"), Some(Mode::Stcp), None),
    ];
    for (i, e) in ev.iter().enumerate() {
        s.event("e", i as u64 + 1, &event_line(e, &tz()));
    }
    s.event(
        "e",
        99,
        "{\"time\":\"2026-11-30T12:00:00Z\",\"event\":\"forged\",\"source\":\"x\"}",
    );
    s
}

fn files() -> Files {
    Files {
        history: Some("/var/lib/portsentry/portsentry.history".into()),
        events: Some("/var/log/portsentry/events.jsonl".into()),
    }
}

#[test]
fn numbers_match_the_lines_in_the_period() {
    let r = sample().finish(files(), &tz());
    assert_eq!(r.records, 5);
    assert_eq!((r.tcp, r.udp), (3, 2));
    assert_eq!(r.distinct_sources, Some(4));
    assert_eq!(r.outside_period, 2);
    assert_eq!(r.unreadable_history_lines, 1);
    assert_eq!(r.unreadable_event_lines, 1);
    assert_eq!(
        r.problems,
        vec![
            "h line 7: no epoch field".to_string(),
            "e line 99: unknown \"event\"".to_string()
        ]
    );
    let v = |l: &[Top]| {
        l.iter()
            .map(|t| (t.value.clone(), t.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(v(&r.top_sources)[0], ("198.51.100.2".into(), 2));
    assert_eq!(
        v(&r.top_prefixes),
        vec![("198.51.100.0/24".into(), 3), ("2001:db8::/64".into(), 2)]
    );
    assert_eq!(
        v(&r.top_ports),
        vec![
            ("22/tcp".into(), 2),
            ("137/udp".into(), 2),
            ("23/tcp".into(), 1)
        ]
    );
    assert_eq!(
        v(&r.scan_kinds),
        vec![("fin".into(), 1), ("syn".into(), 1), ("udp".into(), 1)]
    );
    assert_eq!(r.events.get("detection"), Some(&3));
    assert_eq!(r.events.get("block"), Some(&1));
    assert_eq!(r.events.get("refusal"), Some(&1));
    assert_eq!(r.events.get("expiry"), Some(&1));
    assert_eq!(r.refusals_by_reason.get("rate_limit"), Some(&1));
    assert_eq!(r.per_hour.iter().map(|h| h.count).sum::<u64>(), 5);
}

#[test]
fn the_timeline_spans_the_period_hour_by_hour() {
    let r = sample().finish(files(), &tz());
    // --since 6 h before T0 up to T0: six hourly bins.
    assert_eq!(r.timeline.bin_hours, 1);
    assert_eq!(r.timeline.counts, vec![0, 2, 0, 0, 1, 2]);
    assert_eq!(r.timeline.start, "2026-11-30 08:00");
    assert_eq!(r.timeline.end, "2026-11-30 14:00");
}

#[test]
fn long_periods_get_wider_bins_never_more_than_the_maximum() {
    let mut hours = BTreeMap::new();
    for h in 0..24 * 30 {
        hours.insert(h, 1);
    }
    let t = bin(&hours, 0, 24 * 30 - 1, HTML_BINS, &TimeZone::UTC);
    assert_eq!(t.bin_hours, 12);
    assert_eq!(t.counts.len(), 60);
    assert!(t.counts.iter().all(|c| *c == 12));
    let t = bin(&hours, 0, 24 * 30 - 1, SPARK_BINS, &TimeZone::UTC);
    assert_eq!((t.bin_hours, t.counts.len()), (12, 60));
    // Eleven years of hours: past the widest listed bin, the width grows to fit.
    let t = bin(
        &BTreeMap::new(),
        0,
        11 * 366 * 24,
        SPARK_BINS,
        &TimeZone::UTC,
    );
    assert!(t.counts.len() <= SPARK_BINS);
}

#[test]
fn memory_is_bounded_by_the_tables_not_the_lines() {
    let mut s = Summary::new(None, T0 + 3600);
    for i in 0..50_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i * 256);
        s.history(
            "h",
            1,
            &hist(T0 + i64::from(i % 100), &ip.to_string(), 1, Proto::Tcp),
        );
    }
    assert!(s.sources.len() <= s.sources.capacity() && s.sources.capacity() < 2 * SOURCE_CAPACITY);
    assert!(s.prefixes.len() <= s.prefixes.capacity());
    let r = s.finish(Files::default(), &tz());
    assert_eq!(r.records, 50_000);
    assert_eq!(r.distinct_sources, None);
    assert!(text::render(&r).contains("more than 4096"));
}

#[test]
fn text_is_golden() {
    let got = text::render(&sample().finish(files(), &tz()));
    let path = format!(
        "{}/src/summary/testdata/report.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(got == want, "differs from {path}; got:\n{got}");
}

#[test]
fn the_html_page_is_self_contained_and_counts_its_bars() {
    let r = sample().finish(files(), &tz());
    let page = html::page(&r, &tz());
    for banned in [
        "<script", "http://", "https://", "@import", "url(", "<link", "<img",
    ] {
        // The SVG namespace is the one URL allowed: it is a name, not a load.
        let n = page.matches(banned).count()
            - if banned == "http://" {
                page.matches("http://www.w3.org/2000/svg").count()
            } else {
                0
            };
        assert_eq!(n, 0, "{banned}");
    }
    let fill = format!("fill=\"{}\"", html::BAR_FILL);
    for (id, bars) in [
        ("chart-timeline", 3),
        ("chart-ports", 3),
        ("chart-sources", 4),
        ("chart-prefixes", 2),
        ("chart-kinds", 3),
    ] {
        let at = page
            .find(&format!("<figure id=\"{id}\" data-bars=\"{bars}\""))
            .expect(id);
        let end = at + page[at..].find("</figure>").unwrap();
        assert_eq!(page[at..end].matches(&fill).count(), bars, "{id}");
    }
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("@media print"));
}

/// SCTP and ICMP detections (issue 18) are scan kinds of their own in the report.
#[test]
fn sctp_and_icmp_detections_are_kinds_of_their_own() {
    use crate::mode::Mode;
    use crate::stats::ProbeKind;
    let mut s = Summary::new(None, 1_795_400_000);
    let src: std::net::IpAddr = "198.51.100.9".parse().unwrap();
    for (i, k) in ProbeKind::OTHER.iter().enumerate() {
        for _ in 0..=i {
            let e = Event::detection(1_795_383_542_000, src, 80, Mode::Atcp, *k, Response::Log);
            s.event("e", 1, &event_line(&e, &tz()));
        }
    }
    let r = s.finish(files(), &tz());
    let kinds: Vec<(String, u64)> = r
        .scan_kinds
        .iter()
        .map(|t| (t.value.clone(), t.count))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("icmp6_echo".into(), 6),
            ("icmp_mask".into(), 5),
            ("icmp_timestamp".into(), 4),
            ("icmp_echo".into(), 3),
            ("sctp_cookie_echo".into(), 2),
            ("sctp_init".into(), 1),
        ]
    );
}
