//! The terminal view of a [`Report`]: aligned tables and a one-line sparkline. Pure.

use std::fmt::Write as _;

use super::{Report, Timeline};
use crate::observe::stats::Top;
use crate::observe::stats::render::{count_text, table};

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per count: a blank for zero, else one of eight heights scaled to the
/// largest count (any non-zero count shows at least the lowest bar).
pub fn sparkline(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&c| {
            if c == 0 || max == 0 {
                ' '
            } else {
                let i = ((c as u128 * 8).div_ceil(max as u128) as usize).clamp(1, 8) - 1;
                BARS[i]
            }
        })
        .collect()
}

fn bin_words(h: i64) -> String {
    match h {
        1 => "hour".into(),
        24 => "day".into(),
        168 => "week".into(),
        h if h % 24 == 0 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

fn top_table(out: &mut String, title: &str, what: &str, list: &[Top]) {
    let _ = writeln!(out, "\n{title}");
    if list.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let mut rows = vec![vec!["#".to_string(), what.to_string(), "count".to_string()]];
    for (i, t) in list.iter().enumerate() {
        rows.push(vec![(i + 1).to_string(), t.value.clone(), count_text(t)]);
    }
    out.push_str(&table(&rows, &[0, 2], "  "));
}

fn timeline(out: &mut String, t: &Timeline) {
    if t.counts.is_empty() {
        return;
    }
    let max = t.counts.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nRecords per {}, {} to {} (highest bar: {max})",
        bin_words(t.bin_hours),
        t.start,
        t.end
    );
    let _ = writeln!(out, "  |{}|", sparkline(&t.counts));
}

/// `portsentry report` in a terminal.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portsentry report, {} to {}",
        r.since.as_deref().unwrap_or("the first record"),
        r.until
    );
    let mut rows = vec![
        vec![
            "history file".to_string(),
            r.history_file.clone().unwrap_or_else(|| "none".into()),
        ],
        vec![
            "events file".to_string(),
            r.events_file.clone().unwrap_or_else(|| "none".into()),
        ],
        vec!["records".to_string(), r.records.to_string()],
        vec!["TCP records".to_string(), r.tcp.to_string()],
        vec!["UDP records".to_string(), r.udp.to_string()],
        vec![
            "distinct sources".to_string(),
            r.distinct_sources.map_or_else(
                || format!("more than {}", super::SOURCE_CAPACITY),
                |n| n.to_string(),
            ),
        ],
        vec![
            "first record".to_string(),
            r.first.clone().unwrap_or_else(|| "-".into()),
        ],
        vec![
            "last record".to_string(),
            r.last.clone().unwrap_or_else(|| "-".into()),
        ],
    ];
    if r.events_file.is_some() {
        rows.push(vec!["event lines".to_string(), r.event_lines.to_string()]);
        for (k, v) in &r.events {
            rows.push(vec![format!("  {k}"), v.to_string()]);
        }
    }
    if r.outside_period > 0 {
        rows.push(vec![
            "lines outside the period".to_string(),
            r.outside_period.to_string(),
        ]);
    }
    if r.unreadable_history_lines + r.unreadable_event_lines > 0 {
        rows.push(vec![
            "unreadable lines".to_string(),
            (r.unreadable_history_lines + r.unreadable_event_lines).to_string(),
        ]);
    }
    out.push_str(&table(&rows, &[], "  "));
    timeline(&mut out, &r.sparkline);
    top_table(&mut out, "Top sources", "source", &r.top_sources);
    top_table(
        &mut out,
        "Top /24 and /64 prefixes",
        "prefix",
        &r.top_prefixes,
    );
    top_table(&mut out, "Top ports", "port", &r.top_ports);
    if r.events_file.is_some() {
        top_table(&mut out, "Scan kinds (detections)", "kind", &r.scan_kinds);
        if !r.refusals_by_reason.is_empty() {
            let _ = writeln!(out, "\nBlocks refused by reason");
            let rows: Vec<Vec<String>> = r
                .refusals_by_reason
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect();
            out.push_str(&table(&rows, &[1], "  "));
        }
    } else {
        out.push_str(
            "\nScan kinds: set EVENTS_FILE to record them (the history has TCP/UDP only)\n",
        );
    }
    if !r.problems.is_empty() {
        out.push('\n');
    }
    for p in &r.problems {
        let _ = writeln!(out, "warning: {p}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_highest_and_keeps_small_counts_visible() {
        assert_eq!(sparkline(&[0, 1, 4, 8, 100]), " ▁▁▁█");
        assert_eq!(sparkline(&[1, 2, 3, 4, 5, 6, 7, 8]), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn bin_widths_read_as_words() {
        assert_eq!(bin_words(1), "hour");
        assert_eq!(bin_words(3), "3 hours");
        assert_eq!(bin_words(24), "day");
        assert_eq!(bin_words(48), "2 days");
        assert_eq!(bin_words(168), "week");
    }
}
