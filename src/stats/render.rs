//! The three views of one [`Snapshot`] (STYLE §17): human text for `portsentry status`, JSON
//! for `status --json` (serde), and the Prometheus text exposition format (version 0.0.4) for
//! METRICS_FILE. Each is golden-tested in `stats/tests.rs`. Pure.

use std::fmt::Write as _;

use super::snapshot::{PacketPath, Snapshot, Top};
use crate::mode::Mode;
use crate::timefmt::human_duration;

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

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4
// ---------------------------------------------------------------------------------------------

/// A label value with `\`, `"` and line feeds escaped, as the format requires.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn proto_of(mode: &str) -> &'static str {
    match Mode::from_name(mode).map(|m| m.proto()) {
        Some(crate::mode::Proto::Tcp) => "tcp",
        Some(crate::mode::Proto::Udp) => "udp",
        None => "",
    }
}

/// METRICS_FILE: counters and gauges, typed and labelled (`mode`, `proto`, `kind`, `method`,
/// `reason`). No per-address labels: sources are unbounded, and a time series per attacker
/// would flood Prometheus. Families without any sample are left out.
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    f.head(
        "portsentry_info",
        "gauge",
        "Always 1; the labels say which portsentry version runs.",
    );
    f.sample("portsentry_info", &[("version", &s.version)], 1);
    f.single(
        "portsentry_up",
        "gauge",
        "1 while the daemon runs; 0 in the last file it writes when it stops.",
        u8::from(s.running),
    );
    if let Some(t) = s.started_epoch {
        f.single(
            "portsentry_start_time_seconds",
            "gauge",
            "When the daemon started (seconds since the epoch); counters count from then.",
            t,
        );
    }
    if let Some(t) = s.last_reload_epoch {
        f.single(
            "portsentry_last_reload_time_seconds",
            "gauge",
            "When the configuration was last reloaded (counters are kept).",
            t,
        );
    }
    if !s.watched_ports.is_empty() {
        f.head(
            "portsentry_watched_ports",
            "gauge",
            "Ports watched, by mode.",
        );
        for (m, n) in &s.watched_ports {
            f.sample(
                "portsentry_watched_ports",
                &[("mode", m), ("proto", proto_of(m))],
                n,
            );
        }
    }
    if let Some(c) = &s.counters {
        f.single(
            "portsentry_packets_judged_total",
            "counter",
            "Connections, datagrams and captured packets judged.",
            c.packets_judged,
        );
        if !s.probes_by_kind.is_empty() {
            f.head(
                "portsentry_probes_total",
                "counter",
                "Probes from sources that are not ignored, by mode, protocol and scan kind.",
            );
            for p in &s.probes_by_kind {
                f.sample(
                    "portsentry_probes_total",
                    &[("mode", &p.mode), ("proto", &p.proto), ("kind", &p.kind)],
                    p.count,
                );
            }
        }
        f.single(
            "portsentry_probes_ignored_total",
            "counter",
            "Hits from sources in the ignore file.",
            c.probes_ignored,
        );
        for (name, help, m) in [
            (
                "portsentry_hosts_reported_total",
                "Hosts reported as scanning, by mode.",
                &s.reports_by_mode,
            ),
            (
                "portsentry_blocks_total",
                "Hosts blocked, by mode (once per block, whatever the methods).",
                &s.blocks_by_mode,
            ),
        ] {
            if !m.is_empty() {
                f.head(name, "counter", help);
                for (mode, n) in m {
                    f.sample(name, &[("mode", mode), ("proto", proto_of(mode))], n);
                }
            }
        }
        for (name, help, key, m) in [
            (
                "portsentry_block_actions_total",
                "Block actions carried out, by method.",
                "method",
                &s.blocks_by_method,
            ),
            (
                "portsentry_blocks_refused_total",
                "Blocks refused, by reason.",
                "reason",
                &s.blocks_refused_by_reason,
            ),
            (
                "portsentry_reports_suppressed_total",
                "Reports kept out of the log, by reason (rate_limit: report limits; repeat: repeats of a reported host).",
                "reason",
                &s.suppressed_by_reason,
            ),
        ] {
            if !m.is_empty() {
                f.head(name, "counter", help);
                for (k, n) in m {
                    f.sample(name, &[(key, k)], n);
                }
            }
        }
        for (name, help, v) in [
            (
                "portsentry_capture_drops_total",
                "Packets the capture ring lost.",
                c.capture_drops,
            ),
            (
                "portsentry_malformed_packets_total",
                "Captured packets dropped as malformed.",
                c.malformed_packets,
            ),
            (
                "portsentry_bad_checksum_packets_total",
                "Captured packets dropped for a bad IP header or transport checksum.",
                c.bad_checksum_packets,
            ),
            (
                "portsentry_fragments_total",
                "IP fragments handed to the reassembly.",
                c.fragments,
            ),
            (
                "portsentry_datagrams_reassembled_total",
                "Fragmented datagrams reassembled and judged.",
                c.datagrams_reassembled,
            ),
            (
                "portsentry_datagrams_unassembled_total",
                "Fragmented datagrams the host drops too (overlap, bad length, never completed, evicted).",
                c.datagrams_unassembled,
            ),
            (
                "portsentry_command_failures_total",
                "Response commands that failed.",
                c.command_failures,
            ),
            (
                "portsentry_block_expiries_total",
                "Blocks that expired (BLOCK_TIMEOUT).",
                c.expiries,
            ),
            (
                "portsentry_unblocks_total",
                "Blocks lifted by hand.",
                c.unblocks,
            ),
        ] {
            f.single(name, "counter", help, v);
        }
        f.single(
            "portsentry_fragment_cache_bytes",
            "gauge",
            "Bytes the reassembly cache holds now (at most 4 MiB).",
            c.fragment_cache_bytes,
        );
        f.single(
            "portsentry_fragment_cache_peak_bytes",
            "gauge",
            "The most bytes the reassembly cache held since start.",
            c.fragment_cache_peak_bytes,
        );
    }
    if let Some(p) = &s.path {
        if let Some(c) = &p.capture {
            for (name, help, v) in [
                (
                    "portsentry_capture_ring_packets_total",
                    "Packets the kernel's filter passed to the capture ring, lost ones included.",
                    c.ring_packets,
                ),
                (
                    "portsentry_capture_doorbell_packets_total",
                    "Packets read from the capture's doorbell socket.",
                    c.bell_packets,
                ),
                (
                    "portsentry_capture_copies_skipped_total",
                    "Captured packets skipped as the second copy of one judged.",
                    c.copies_skipped,
                ),
            ] {
                f.single(name, "counter", help, v);
            }
            let name = "portsentry_capture_parsed_packets_total";
            f.head(
                name,
                "counter",
                "Captured packets parsed, by result (hit: a probe handed to the decision).",
            );
            for (result, n) in [
                ("malformed", c.malformed),
                ("not_tcp_udp", c.not_tcp_udp),
                ("outgoing", c.outgoing),
                ("not_probe", c.not_probes),
                ("hit", c.hits),
            ] {
                f.sample(name, &[("result", result)], n);
            }
        }
        let h = &p.hits;
        let name = "portsentry_hits_total";
        f.head(
            name,
            "counter",
            "Hits judged (every mode), by outcome; over_*_limit: held back by the report limits.",
        );
        for (outcome, n) in [
            ("ignored", h.ignored),
            ("below_trigger", h.below_trigger),
            ("repeat", h.repeats),
            ("reported", h.reported),
            ("reported_on_evidence", h.reported_on_evidence),
            ("over_prefix_limit", h.over_prefix_limit),
            ("over_global_limit", h.over_global_limit),
        ] {
            f.sample(name, &[("outcome", outcome)], n);
        }
    }
    if let Some(n) = s.blocks_in_force {
        f.single(
            "portsentry_blocks_in_force",
            "gauge",
            "Hosts blocked now.",
            n,
        );
    }
    if let Some(t) = s.soonest_expiry_epoch {
        f.single(
            "portsentry_next_block_expiry_time_seconds",
            "gauge",
            "When the soonest block in force expires (seconds since the epoch).",
            t,
        );
    }
    if !s.nft_sets.is_empty() {
        f.head(
            "portsentry_nft_set_elements",
            "gauge",
            "Elements in the nftables sets of table inet portsentry.",
        );
        for set in &s.nft_sets {
            f.sample(
                "portsentry_nft_set_elements",
                &[("set", &set.set)],
                set.elements,
            );
        }
        f.head(
            "portsentry_nft_set_size",
            "gauge",
            "Maximum elements of the nftables sets (BLOCK_SET_SIZE).",
        );
        for set in &s.nft_sets {
            f.sample("portsentry_nft_set_size", &[("set", &set.set)], set.size);
        }
    }
    if let Some(fl) = &s.fleet {
        f.single(
            "portsentry_fleet_link_up",
            "gauge",
            "1 while the fleet link (CrowdSec LAPI) is up.",
            u8::from(fl.up),
        );
        f.single(
            "portsentry_fleet_queued_alerts",
            "gauge",
            "Alerts waiting to be sent over the fleet link.",
            fl.queued,
        );
        f.single(
            "portsentry_fleet_alerts_sent_total",
            "counter",
            "Alerts delivered to the CrowdSec LAPI since start.",
            fl.sent,
        );
        f.single(
            "portsentry_fleet_alerts_dropped_total",
            "counter",
            "Alerts dropped (spool full, or refused by the LAPI) since start.",
            fl.dropped,
        );
        f.single(
            "portsentry_fleet_bans",
            "gauge",
            "Bans from the fleet in force on this host.",
            fl.decisions,
        );
        if fl.pull_every_ms > 0 {
            f.single(
                "portsentry_fleet_pull_interval_seconds",
                "gauge",
                "The interval the pulls from the CrowdSec LAPI keep (longer than CROWDSEC_PULL_INTERVAL while the LAPI answers slowly).",
                secs(fl.pull_every_ms),
            );
            f.single(
                "portsentry_fleet_lapi_answer_seconds",
                "gauge",
                "How long the CrowdSec LAPI took to answer the last pull.",
                secs(fl.answer_ms),
            );
            f.single(
                "portsentry_fleet_behind_seconds",
                "gauge",
                "Time since the last pull that worked, once over twice the interval (the host may miss the fleet's newest bans); 0 while it keeps pace.",
                secs(fl.behind_ms),
            );
        }
    }
    out
}

/// Milliseconds as seconds for a metric: `1.250`.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}
