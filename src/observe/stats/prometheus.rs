//! METRICS_FILE: one [`Snapshot`] in the Prometheus text exposition format (version 0.0.4),
//! golden-tested in `stats/tests.rs` and parsed by Prometheus' own parser in
//! `tests/e2e_insight.rs`. Pure.

use std::fmt::Write as _;

use super::snapshot::Snapshot;
use crate::config::mode::Mode;

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
        Some(crate::config::mode::Proto::Tcp) => "tcp",
        Some(crate::config::mode::Proto::Udp) => "udp",
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
            (
                "portsentry_evictions_total",
                "Blocks lifted to make room in a full nftables set for a source with more evidence.",
                c.evictions,
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
                    "portsentry_capture_ring_passes_total",
                    "Passes over the capture ring that read packets.",
                    c.ring_passes,
                ),
                (
                    "portsentry_capture_ring_rests_total",
                    "Busy ring passes after which the loop rested before the next, so a flood is read several blocks a pass.",
                    c.ring_rests,
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
