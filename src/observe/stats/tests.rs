//! Counters and their three renderers. The golden files in `testdata/` are the exact output
//! for one known sequence; `UPDATE_GOLDEN=1 cargo test stats::` rewrites them (then read the
//! diff before committing).

use std::net::IpAddr;

use super::window::Window;
use super::*;

/// 2026-11-30T13:00:00Z.
const T0: i64 = 1_796_043_600;

fn tz() -> TimeZone {
    jiff::tz::offset(1).to_time_zone()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A known day: probes from three hosts (one IPv6), reports, blocks, refusals, losses.
fn sample() -> (Stats, Identity, i64) {
    let mut s = Stats::new(T0, &[Mode::Stcp, Mode::Udp]);
    s.note_packets(40);
    s.note_ignored();
    // Yesterday-ish: 5 hours ago, one probe that only the day list sees.
    s.note_probe(
        T0 + 3600 - 5 * 3600,
        ip("203.0.113.9"),
        23,
        Mode::Stcp,
        ProbeKind::Syn,
    );
    let now = T0 + 3600;
    for port in [21, 22, 23] {
        s.note_probe(
            now - 600,
            ip("198.51.100.2"),
            port,
            Mode::Stcp,
            ProbeKind::Syn,
        );
    }
    s.note_probe(
        now - 500,
        ip("198.51.100.3"),
        22,
        Mode::Stcp,
        ProbeKind::Fin,
    );
    s.note_probe(
        now - 400,
        ip("2001:db8::2"),
        137,
        Mode::Udp,
        ProbeKind::Connect,
    );
    s.note_probe(
        now - 300,
        ip("::ffff:198.51.100.2"),
        22,
        Mode::Stcp,
        ProbeKind::Xmas,
    );
    s.note_report(Mode::Stcp);
    s.note_report(Mode::Udp);
    s.note_block(Mode::Stcp, &[Method::Nftables, Method::HostsDeny]);
    s.note_refusal(Refusal::RateLimit);
    s.note_refusal(Refusal::Protected);
    s.note_refusals(Refusal::PrefixBudget, 2);
    s.note_suppressed(Suppression::Repeat, 3);
    s.note_suppressed(Suppression::RateLimit, 7);
    s.note_capture_losses(2, 1);
    s.set_evasion(crate::observe::stats::Evasion {
        bad_checksum: 3,
        fragments: 11,
        reassembled: 2,
        unassembled: 4,
        cache_bytes: 1536,
        cache_peak_bytes: 4096,
    });
    s.set_capture(CapturePath {
        ring_packets: 66,
        ring_drops: 2,
        bell_packets: 9,
        ring_passes: 7,
        ring_rests: 2,
        copies_skipped: 9,
        parsed: 64,
        malformed: 1,
        not_tcp_udp: 3,
        outgoing: 4,
        not_probes: 50,
        hits: 6,
    });
    s.set_hit_outcomes(HitOutcomes {
        judged: 46,
        ignored: 1,
        below_trigger: 0,
        repeats: 3,
        reported: 2,
        reported_on_evidence: 1,
        over_prefix_limit: 35,
        over_global_limit: 4,
    });
    s.note_command_failure();
    s.note_expiry();
    s.note_unblock();
    s.note_evictions(2);
    s.note_reload(now - 60);
    s.set_blocks_in_force(1, Some(now + 3000));
    s.set_unwatched(vec![(Mode::Stcp, vec![22, 8080])]);
    s.set_nft_sets(vec![
        SetFill {
            set: "blocked4".into(),
            elements: 1,
            size: 1_048_576,
        },
        SetFill {
            set: "blocked6".into(),
            elements: 0,
            size: 1_048_576,
        },
    ]);
    let id = Identity {
        pid: 4242,
        modes: vec![Mode::Stcp, Mode::Udp],
        config: "/etc/portsentry/portsentry.conf".into(),
        watched_ports: vec![(Mode::Stcp, 12), (Mode::Udp, 7)],
    };
    (s, id, now)
}

fn golden(name: &str, got: &str) {
    let path = format!(
        "{}/src/observe/stats/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{name} differs from the golden file {path}; got:\n{got}"
    );
}

#[test]
fn counters_equal_what_was_noted() {
    let (mut s, _, _) = sample();
    let c = s.counters();
    // 40 connects and datagrams, and the capture's incoming packets (50 no probe, 6 probes).
    assert_eq!(c.packets_judged, 96);
    assert_eq!(c.probes, 7);
    assert_eq!(c.probes_ignored, 1);
    assert_eq!(c.hosts_reported, 2);
    assert_eq!(c.blocks, 1);
    assert_eq!(c.blocks_refused, 4);
    assert_eq!(c.reports_suppressed, 7);
    assert_eq!(c.repeats_suppressed, 3);
    assert_eq!(c.capture_drops, 2);
    assert_eq!(c.malformed_packets, 1);
    assert_eq!(c.command_failures, 1);
    assert_eq!(c.expiries, 1);
    assert_eq!(c.unblocks, 1);
}

#[test]
fn top_lists_rank_by_count_and_map_v4_in_v6_to_v4() {
    let (mut s, id, now) = sample();
    let snap = s.snapshot(now, &id, &tz());
    let v = |l: &[Top]| -> Vec<(String, u64)> {
        l.iter().map(|t| (t.value.clone(), t.count)).collect()
    };
    assert_eq!(
        v(&snap.top_sources),
        vec![
            ("198.51.100.2".into(), 4),
            ("198.51.100.3".into(), 1),
            ("2001:db8::2".into(), 1)
        ]
    );
    assert_eq!(
        v(&snap.top_prefixes),
        vec![("198.51.100.0/24".into(), 5), ("2001:db8::/64".into(), 1)]
    );
    assert_eq!(
        v(&snap.top_ports),
        vec![
            ("22/tcp".into(), 3),
            ("21/tcp".into(), 1),
            ("23/tcp".into(), 1),
            ("137/udp".into(), 1)
        ]
    );
    // The probe of five hours ago is in the day's lists only.
    assert!(snap.top_sources.iter().all(|t| t.value != "203.0.113.9"));
    assert!(
        snap.last_day
            .top_sources
            .iter()
            .any(|t| t.value == "203.0.113.9")
    );
    assert!(snap.top_sources.iter().all(|t| t.error == 0));
}

#[test]
fn a_snapshot_says_when_counting_started_and_survives_json() {
    let (mut s, id, now) = sample();
    let snap = s.snapshot(now, &id, &tz());
    assert_eq!(snap.started.as_deref(), Some("2026-11-30T14:00:00+01:00"));
    assert_eq!(snap.uptime_seconds, Some(3600));
    let back: Snapshot = serde_json::from_str(&render::json(&snap)).unwrap();
    assert_eq!(back, snap);
    // The interface fields of issue 13.
    let v: serde_json::Value = serde_json::from_str(&render::json(&snap)).unwrap();
    for k in [
        "running",
        "pid",
        "modes",
        "started",
        "counters",
        "blocks_in_force",
        "top_sources",
        "top_ports",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    for k in ["probes", "hosts_reported", "blocks", "capture_drops"] {
        assert!(v["counters"][k].is_u64(), "{k}");
    }
    assert_eq!(v["modes"], serde_json::json!(["stcp", "udp"]));
    assert_eq!(v["top_sources"][0]["value"], "198.51.100.2");
    assert_eq!(v["top_sources"][0]["count"], 4);
}

#[test]
fn text_is_golden() {
    let (mut s, id, now) = sample();
    golden("status.txt", &render::text(&s.snapshot(now, &id, &tz())));
}

#[test]
fn json_is_golden() {
    let (mut s, id, now) = sample();
    golden("status.json", &render::json(&s.snapshot(now, &id, &tz())));
}

#[test]
fn prometheus_is_golden() {
    let (mut s, id, now) = sample();
    golden(
        "metrics.prom",
        &render::prometheus(&s.snapshot(now, &id, &tz())),
    );
}

#[test]
fn prometheus_families_are_typed_once_and_samples_belong_to_them() {
    let (mut s, id, now) = sample();
    let text = render::prometheus(&s.snapshot(now, &id, &tz()));
    let mut typed = std::collections::BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(typed.insert(name.to_string()), "{name} typed twice");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert!(!kind.is_empty());
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
            current = name.to_string();
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "{line}");
            assert!(name.starts_with("portsentry_"));
        }
    }
    assert!(text.contains("portsentry_probes_total{mode=\"stcp\",proto=\"tcp\",kind=\"syn\"} 4\n"));
    assert!(text.contains("portsentry_blocks_refused_total{reason=\"rate_limit\"} 1\n"));
    assert!(text.contains("portsentry_block_actions_total{method=\"nftables\"} 1\n"));
}

#[test]
fn label_values_are_escaped() {
    let mut snap = Snapshot {
        version: "a\"b\\c\nd".into(),
        ..Snapshot::default()
    };
    snap.running = true;
    let text = render::prometheus(&snap);
    assert!(
        text.contains("portsentry_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"),
        "{text}"
    );
}

#[test]
fn a_flood_of_forged_sources_keeps_memory_bounded_and_the_real_scanner_on_top() {
    let mut s = Stats::new(T0, &[Mode::Sudp]);
    let real = ip("192.0.2.77");
    for i in 0..300_000u32 {
        // Forged sources spread over 2001:db8::/32, one datagram each, over ten minutes.
        let a = IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(i) << 64 | 1,
        ));
        let t = T0 + i64::from(i / 500);
        s.note_probe(t, a, 53, Mode::Sudp, ProbeKind::Udp);
        if i % 20 == 0 {
            s.note_probe(t, real, 53, Mode::Sudp, ProbeKind::Udp);
        }
    }
    let cap = |c| topk::TopK::<IpAddr>::new(c).capacity();
    let bound = 3 * (60 * cap(MINUTE_CAPACITY) + 24 * cap(HOUR_CAPACITY));
    assert!(s.top_keys_held() <= bound, "{}", s.top_keys_held());
    let snap = s.snapshot(T0 + 600, &Identity::default(), &tz());
    assert_eq!(snap.counters.unwrap().probes, 315_000);
    let top = &snap.top_sources[0];
    assert_eq!(top.value, "192.0.2.77");
    // 15,000 true probes (more than total / capacity per minute, so Space-Saving keeps it);
    // the estimate's stated error covers the difference.
    assert!(top.count.abs_diff(15_000) <= top.error, "{top:?}");
    // Past the table's size the counts are estimates, and say so; forged sources seen once
    // each fall below the error bound and are not listed at all.
    assert!(top.error > 0, "{top:?}");
    assert!(
        snap.top_sources.iter().all(|t| t.count > t.error),
        "{:?}",
        snap.top_sources
    );
}

#[test]
fn the_metrics_need_no_top_lists_and_render_the_same() {
    let (mut s, id, now) = sample();
    let full = s.snapshot(now, &id, &tz());
    let lean = s.counters_snapshot(now, &id, &tz());
    assert!(lean.top_sources.is_empty() && lean.last_day.top_ports.is_empty());
    assert_eq!(render::prometheus(&lean), render::prometheus(&full));
}

#[test]
fn a_host_behind_or_slowed_says_so_in_status_and_metrics() {
    let (mut s, id, now) = sample();
    let fleet = |every, answer, behind| FleetState {
        up: true,
        pull_every_ms: every,
        answer_ms: answer,
        behind_ms: behind,
        ..FleetState::default()
    };
    s.set_fleet(Some(fleet(1000, 40, 0)));
    let snap = s.snapshot(now, &id, &tz());
    assert!(!render::text(&snap).contains("Fleet pulls"), "keeping pace");
    let m = render::prometheus(&snap);
    assert!(
        m.contains("\nportsentry_fleet_pull_interval_seconds 1.000\n"),
        "{m}"
    );
    assert!(m.contains("\nportsentry_fleet_behind_seconds 0.000\n"));
    s.set_fleet(Some(fleet(4000, 1234, 0)));
    let t = render::text(&s.snapshot(now, &id, &tz()));
    assert!(
        t.contains("Fleet pulls: every 4 s, the LAPI's last answer took 1234 ms\n"),
        "{t}"
    );
    s.set_fleet(Some(fleet(4000, 20, 7500)));
    let snap = s.snapshot(now, &id, &tz());
    let t = render::text(&snap);
    assert!(
        t.contains("Fleet pulls: every 4 s, the LAPI's last answer took 20 ms; BEHIND: no pull has worked for 7 s\n"),
        "{t}"
    );
    let m = render::prometheus(&snap);
    assert!(
        m.contains("\nportsentry_fleet_behind_seconds 7.500\n"),
        "{m}"
    );
    assert!(
        m.contains("\nportsentry_fleet_lapi_answer_seconds 0.020\n"),
        "{m}"
    );
    let v: serde_json::Value = serde_json::from_str(&render::json(&snap)).unwrap();
    assert_eq!(v["fleet"]["behind_ms"], 7500);
    assert_eq!(v["fleet"]["pull_every_ms"], 4000);
}

/// The day's list takes each minute whole from the hour's, and reads the minute not merged
/// yet: while no table evicts a key it is what counting every probe into the day gives, over
/// minutes, hours, a read long after, and a clock set back.
#[test]
fn the_days_list_takes_the_minutes_whole_and_counts_as_if_each_went_in() {
    let mut tops: Tops<u32> = Tops::new();
    let mut both: Window<u32> = Window::new(24, 3600, HOUR_CAPACITY);
    let mut t = T0;
    let mut times = Vec::new();
    let mut add = |tops: &mut Tops<u32>, t: i64, k: u32, n: u64| {
        tops.add(t, &k, n);
        both.add(t, &k, n);
        (tops.day_top(t), both.top(t, TOP_N))
    };
    for i in 0..500u32 {
        // 17 to 95 s a step: through minutes and about eight hours.
        t += 17 + i64::from(i % 7) * 13;
        times.push(t);
        let (got, want) = add(&mut tops, t, i % 40, u64::from(i % 3 + 1));
        assert_eq!(got, want, "step {i}");
    }
    assert!(t > T0 + 6 * 3600, "the steps cross hours");
    // Back to a minute counted a few minutes ago (merged into the day already), then two
    // hours back.
    let back = times[times.len() - 6];
    let (got, want) = add(&mut tops, back, 98, 40);
    assert_eq!(got, want, "a clock set back {} s", t - back);
    let (got, want) = add(&mut tops, t - 7200, 99, 50);
    assert_eq!(got, want, "a clock set back two hours");
    assert_eq!(got[0].key, 99);
    let (got, want) = add(&mut tops, t + 60, 7, 1);
    assert_eq!(got, want, "the clock again");
    for later in [t + 59, t + 3600 * 5, t + 3600 * 30] {
        assert_eq!(
            tops.day_top(later),
            both.top(later, TOP_N),
            "read at {later}"
        );
    }
    assert!(tops.day_top(t + 3600 * 30).is_empty());
}
