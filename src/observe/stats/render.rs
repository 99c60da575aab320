//! The three views of one [`Snapshot`] (STYLE §17): human text for `portsentry status`, JSON
//! for `status --json` (serde), and the Prometheus text exposition format (version 0.0.4) for
//! METRICS_FILE (in `prometheus.rs`, re-exported here). Each is golden-tested in
//! `stats/tests.rs`. Pure.

use std::fmt::Write as _;

use super::snapshot::{PacketPath, Snapshot, Top};
use crate::observe::timefmt::human_duration;

pub use super::prometheus::prometheus;

/// `status --json`: the snapshot as pretty JSON with a final line feed.
pub fn json(s: &Snapshot) -> String {
    let mut out = serde_json::to_string_pretty(s).unwrap_or_else(|e| {
        // Serialising plain strings and integers cannot fail; say so if it ever does.
        format!("{{\"error\": \"cannot serialise the snapshot: {e}\"}}")
    });
    out.push('\n');
    out
}

/// Lines of cells padded to column widths: columns listed in `right` are right-aligned
/// (also `portsentry report`'s tables).
pub fn table(rows: &[Vec<String>], right: &[usize], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (c, cell) in r.iter().enumerate() {
            let w = width.get(c).copied().unwrap_or(0);
            if c > 0 {
                line.push_str("  ");
            }
            if right.contains(&c) {
                let _ = write!(line, "{cell:>w$}");
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A count as shown: `12`, or `~12 (±3)` when the bounded tables made it approximate.
pub fn count_text(t: &Top) -> String {
    if t.error == 0 {
        t.count.to_string()
    } else {
        format!("~{} (±{})", t.count, t.error)
    }
}

fn top_block(out: &mut String, title: &str, list: &[Top]) {
    let _ = writeln!(out, "{title}");
    if list.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| vec![t.value.clone(), count_text(t)])
        .collect();
    out.push_str(&table(&rows, &[1], "  "));
}

/// `portsentry status`: what an admin reads.
pub fn text(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.running {
        let _ = writeln!(
            out,
            "portsentry {} is running: pid {}, modes {}",
            s.version,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            s.modes.join(" ")
        );
        let mut about: Vec<Vec<String>> = Vec::new();
        if let Some(c) = &s.config {
            about.push(vec!["config".into(), c.clone()]);
        }
        if let Some(st) = &s.started {
            let up = s
                .uptime_seconds
                .map(|u| format!(" (up {})", human_duration(u)))
                .unwrap_or_default();
            about.push(vec![
                "started".into(),
                format!("{st}{up}; counters count from then"),
            ]);
        }
        about.push(vec![
            "reloaded".into(),
            match &s.last_reload {
                Some(r) => format!("{r} (counters kept)"),
                None => "never".into(),
            },
        ]);
        if !s.watched_ports.is_empty() {
            let w: Vec<String> = s
                .watched_ports
                .iter()
                .map(|(m, n)| format!("{m} {n} ports"))
                .collect();
            about.push(vec!["watching".into(), w.join(", ")]);
        }
        if !s.unwatched_ports.is_empty() {
            let w: Vec<String> = s
                .unwatched_ports
                .iter()
                .map(|(m, ports)| {
                    let p: Vec<String> = ports.iter().map(u16::to_string).collect();
                    format!("{m} {}", p.join(" "))
                })
                .collect();
            about.push(vec![
                "in use".into(),
                format!(
                    "{} (not watched: a local socket answers them)",
                    w.join(", ")
                ),
            ]);
        }
        out.push_str(&table(&about, &[], "  "));
    } else {
        let _ = writeln!(
            out,
            "portsentry is not running{}",
            s.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    if let Some(c) = &s.counters {
        out.push_str("\nCounters since start\n");
        let rows: Vec<Vec<String>> = [
            ("packets judged", c.packets_judged),
            ("probes", c.probes),
            ("probes from ignored hosts", c.probes_ignored),
            ("hosts reported", c.hosts_reported),
            ("blocks", c.blocks),
            ("blocks refused", c.blocks_refused),
            ("reports suppressed (rate limit)", c.reports_suppressed),
            ("repeats suppressed", c.repeats_suppressed),
            ("capture drops", c.capture_drops),
            ("malformed packets", c.malformed_packets),
            ("bad checksums", c.bad_checksum_packets),
            ("fragments", c.fragments),
            ("datagrams reassembled", c.datagrams_reassembled),
            ("datagrams not reassembled", c.datagrams_unassembled),
            ("fragment cache bytes", c.fragment_cache_bytes),
            ("fragment cache peak bytes", c.fragment_cache_peak_bytes),
            ("command failures", c.command_failures),
            ("block expiries", c.expiries),
            ("unblocks by hand", c.unblocks),
            ("unblocks to make room", c.evictions),
        ]
        .iter()
        .map(|(k, v)| vec![(*k).to_string(), v.to_string()])
        .collect();
        out.push_str(&table(&rows, &[1], "  "));
        let probes: Vec<Vec<String>> = s
            .probes_by_kind
            .iter()
            .filter(|p| p.count > 0)
            .map(|p| {
                vec![
                    p.mode.clone(),
                    p.proto.clone(),
                    p.kind.clone(),
                    p.count.to_string(),
                ]
            })
            .collect();
        if !probes.is_empty() {
            out.push_str("\nProbes by mode and kind\n");
            out.push_str(&table(&probes, &[3], "  "));
        }
        let maps = [
            ("Blocks by method", &s.blocks_by_method),
            ("Blocks refused by reason", &s.blocks_refused_by_reason),
            ("Reports suppressed by reason", &s.suppressed_by_reason),
        ];
        for (title, m) in maps {
            let rows: Vec<Vec<String>> = m
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect();
            if !rows.is_empty() {
                let _ = writeln!(out, "\n{title}");
                out.push_str(&table(&rows, &[1], "  "));
            }
        }
    }
    if let Some(p) = &s.path {
        path_block(&mut out, p);
    }
    if let Some(n) = s.blocks_in_force {
        let _ = write!(out, "\nBlocks in force: {n}");
        match &s.soonest_expiry {
            Some(e) => {
                let _ = writeln!(out, ", soonest expiry {e}");
            }
            None => out.push('\n'),
        }
    }
    for set in &s.nft_sets {
        let _ = writeln!(
            out,
            "nftables set {}: {} of {} elements",
            set.set, set.elements, set.size
        );
    }
    if let Some(f) = &s.fleet {
        let _ = writeln!(
            out,
            "Fleet link (CrowdSec LAPI): {}{}, {} alerts queued, {} sent, {} dropped, {} fleet bans in force",
            if f.up { "up" } else { "down" },
            f.since
                .as_deref()
                .map(|x| format!(" since {x}"))
                .unwrap_or_default(),
            f.queued,
            f.sent,
            f.dropped,
            f.decisions
        );
        if f.behind_ms > 0 || f.answer_ms > crate::fleet::link::SLOW_FLOOR_MS {
            let _ = writeln!(
                out,
                "Fleet pulls: every {} s, the LAPI's last answer took {} ms{}",
                f.pull_every_ms.div_ceil(1000),
                f.answer_ms,
                if f.behind_ms > 0 {
                    format!("; BEHIND: no pull has worked for {} s", f.behind_ms / 1000)
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(h) = &s.history {
        let _ = writeln!(out, "\nHistory file {}", h.file);
        match &h.error {
            Some(e) => {
                let _ = writeln!(out, "  cannot read it: {e}");
            }
            None => {
                let rows = vec![
                    vec!["records".to_string(), h.records.to_string()],
                    vec!["last hour".to_string(), h.records_last_hour.to_string()],
                    vec!["last day".to_string(), h.records_last_day.to_string()],
                    vec![
                        "first".to_string(),
                        h.first.clone().unwrap_or_else(|| "-".into()),
                    ],
                    vec![
                        "last".to_string(),
                        h.last.clone().unwrap_or_else(|| "-".into()),
                    ],
                    vec!["unreadable lines".to_string(), h.malformed.to_string()],
                ];
                out.push_str(&table(&rows, &[], "  "));
            }
        }
    }
    let from = if s.tops_from == "history" {
        " (history records)"
    } else {
        ""
    };
    for (when, lists) in [
        ("last hour", [&s.top_sources, &s.top_prefixes, &s.top_ports]),
        (
            "last day",
            [
                &s.last_day.top_sources,
                &s.last_day.top_prefixes,
                &s.last_day.top_ports,
            ],
        ),
    ] {
        out.push('\n');
        top_block(&mut out, &format!("Top sources, {when}{from}"), lists[0]);
        top_block(
            &mut out,
            &format!("Top /24 and /64 prefixes, {when}{from}"),
            lists[1],
        );
        top_block(&mut out, &format!("Top ports, {when}{from}"), lists[2]);
    }
    out
}

/// The rows of the packet path: the capture's stages (when there is a capture), then what
/// became of the hits. Sub-rows (indented) add up to the row above them.
pub fn path_rows(p: &PacketPath) -> Vec<(&'static str, u64)> {
    let mut rows = Vec::new();
    if let Some(c) = &p.capture {
        rows.extend([
            ("capture ring: packets", c.ring_packets),
            ("  lost (ring full)", c.ring_drops),
            ("doorbell: packets read", c.bell_packets),
            ("ring passes", c.ring_passes),
            ("ring rests (busy passes)", c.ring_rests),
            ("second copies skipped", c.copies_skipped),
            ("packets parsed", c.parsed),
            ("  malformed", c.malformed),
            ("  not TCP or UDP", c.not_tcp_udp),
            ("  this host's own", c.outgoing),
            ("  no probe", c.not_probes),
            ("  probes", c.hits),
        ]);
    }
    let h = &p.hits;
    rows.extend([
        ("hits judged", h.judged),
        ("  ignored", h.ignored),
        ("  below SCAN_TRIGGER", h.below_trigger),
        ("  repeats", h.repeats),
        ("  reported", h.reported),
        ("  reported on evidence", h.reported_on_evidence),
        ("  over the prefix limit", h.over_prefix_limit),
        ("  over the global limit", h.over_global_limit),
    ]);
    rows
}

fn path_block(out: &mut String, p: &PacketPath) {
    out.push_str("\nPacket path since start\n");
    let rows: Vec<Vec<String>> = path_rows(p)
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v.to_string()])
        .collect();
    out.push_str(&table(&rows, &[1], "  "));
}
