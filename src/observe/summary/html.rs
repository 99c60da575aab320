//! `portsentry report --html FILE`: one self-contained page. Charts are inline SVG drawn with
//! plotters' SVG backend (no scripts at all, no fonts or images fetched: the page's Content
//! Security Policy forbids every load, so a mistake shows up as a console error in the
//! browser test). It reads on a phone (viewport meta, charts scale to the width, tables
//! scroll sideways) and prints (print CSS: no backgrounds, no split charts).
//!
//! Each chart is a `<figure id="chart-…" data-bars="N">` whose bars are the `<rect>`s filled
//! with [`BAR_FILL`], one per non-zero value; the browser test counts them. Pure.

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Report, Timeline};
use crate::observe::stats::Top;
use crate::observe::stats::render::count_text;
use crate::observe::timefmt;

/// The bars' fill, as plotters writes it into the SVG.
pub const BAR_FILL: &str = "#3465A4";
const BAR: RGBColor = RGBColor(0x34, 0x65, 0xa4);
/// Drawing widths: the SVGs scale to the page, so text stays readable on a phone (a 440-wide
/// bar chart in a 340 px column keeps its 18-unit labels at about 14 px).
const WIDTH: u32 = 440;
const TIMELINE_WIDTH: u32 = 480;
const FONT: u32 = 18;

/// Text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Horizontal bars, largest on top, one per item with a non-zero count.
fn hbars(items: &[(String, u64)]) -> Result<String, String> {
    let items: Vec<&(String, u64)> = items.iter().filter(|i| i.1 > 0).collect();
    let n = items.len();
    let mut svg = String::new();
    {
        let h = 48 + 30 * n.max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1);
        let longest = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(4) as u32;
        let label_w = (longest * FONT * 55 / 100 + 12).clamp(40, WIDTH / 2);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0u64..max + max / 10 + 1, (0..n.max(1)).into_segmented())
            .map_err(|e| e.to_string())?;
        // The item labels are drawn below, beside their bars: plotters' key
        // points on a segmented axis add an empty tick above the top bar.
        chart
            .configure_mesh()
            .disable_y_mesh()
            // Not `max_light_lines(0)`: plotters 0.3.7 then loops until an integer overflow
            // while placing zero key points (a panic in debug builds).
            .light_line_style(TRANSPARENT)
            .y_labels(n.max(1))
            .y_label_formatter(&|_| String::new())
            .set_tick_mark_size(LabelAreaPosition::Left, 0)
            .x_labels(4)
            .x_label_formatter(&|v| v.to_string())
            .label_style(("sans-serif", FONT))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(BAR.filled())
                    .margin(4)
                    .data(items.iter().enumerate().map(|(i, it)| (n - 1 - i, it.1))),
            )
            .map_err(|e| e.to_string())?;
        let style = ("sans-serif", FONT)
            .into_text_style(&root)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, it) in items.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0, SegmentValue::CenterOf(n - 1 - i)));
            root.draw(&PathElement::new(vec![(x - 5, y), (x, y)], BLACK))
                .map_err(|e| e.to_string())?;
            root.draw(&Text::new(it.0.clone(), (x - 8, y), &style))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The label of bin `i` of a timeline.
fn bin_label(t: &Timeline, i: usize, tz: &TimeZone) -> String {
    let at = t.start_epoch + i as i64 * t.bin_hours * 3600;
    let full = timefmt::local_minute(at, tz);
    if t.bin_hours >= 24 {
        full.get(..10).unwrap_or(&full).to_string()
    } else {
        full.get(5..).unwrap_or(&full).to_string()
    }
}

/// How many time labels a timeline gets, at most.
const TIME_LABELS: usize = 5;

/// Steps between two time labels, in bins: the smallest that gives at most
/// `TIME_LABELS` labels wins (with one-hour bins: every hour, 2, 3, 4, 6, 12
/// hours, a day, ...).
const LABEL_STEPS: [usize; 12] = [1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336, 720];

/// The bins of a timeline of `n` bins whose start gets a time label: the
/// first and then every step, over the whole axis. plotters' own choice of
/// round numbers left a 48-bin axis with one label and a 100-bin axis with
/// none past its middle, so the labels are drawn here.
fn label_bins(n: usize) -> Vec<usize> {
    let want = n.div_ceil(TIME_LABELS).max(1);
    let step = LABEL_STEPS
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or(want);
    (0..n).step_by(step).collect()
}

/// Vertical bars over time, one per bin with records.
fn timeline_svg(t: &Timeline, tz: &TimeZone) -> Result<String, String> {
    let n = t.counts.len().max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (TIMELINE_WIDTH, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = t.counts.iter().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n as f64, 0u64..max + max / 10 + 1)
            .map_err(|e| e.to_string())?;
        // Bin i spans i..i+1 on the axis. The time labels (a tick and the
        // time at the start of a bin) are drawn below, not by plotters.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| v.to_string())
            .label_style(("sans-serif", FONT))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                t.counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, c)| {
                        let x = i as f64;
                        Rectangle::new([(x + 0.08, 0), (x + 0.92, *c)], BAR.filled())
                    }),
            )
            .map_err(|e| e.to_string())?;
        let style = ("sans-serif", FONT)
            .into_text_style(&root)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for i in label_bins(t.counts.len()) {
            let (x, y) = chart.backend_coord(&(i as f64, 0));
            root.draw(&PathElement::new(vec![(x, y), (x, y + 5)], BLACK))
                .map_err(|e| e.to_string())?;
            root.draw(&Text::new(bin_label(t, i, tz), (x, y + 8), &style))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn figure(out: &mut String, id: &str, caption: &str, bars: usize, svg: Result<String, String>) {
    let _ = write!(
        out,
        "<figure id=\"{id}\" data-bars=\"{bars}\"><figcaption>{}</figcaption>",
        esc(caption)
    );
    match svg {
        Ok(s) if bars > 0 => out.push_str(&s),
        Ok(_) => out.push_str("<p class=\"none\">Nothing in this period.</p>"),
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"none\">The chart could not be drawn: {}</p>",
                esc(&e)
            );
        }
    }
    out.push_str("</figure>\n");
}

fn top_table(out: &mut String, what: &str, list: &[Top]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table><thead><tr><th>#</th><th>{}</th><th class=\"n\">records</th></tr></thead><tbody>",
        esc(what)
    );
    for (i, t) in list.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            esc(&t.value),
            esc(&count_text(t))
        );
    }
    out.push_str("</tbody></table></div>\n");
}

fn pairs(list: &[Top]) -> Vec<(String, u64)> {
    list.iter().map(|t| (t.value.clone(), t.count)).collect()
}

const STYLE: &str = "\
:root{color-scheme:light}\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;padding:1rem;max-width:64rem;color:#1a1a1a;background:#fff;line-height:1.4}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}\
.period{color:#444;margin:0 0 1rem}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr));gap:1rem}\
figure{margin:0;padding:.5rem;border:1px solid #ddd;border-radius:6px;background:#fff}\
figcaption{font-weight:600;margin-bottom:.3rem}\
figure svg{display:block;width:100%;max-width:42rem;height:auto;margin:0 auto}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;margin:.3rem 0;font-variant-numeric:tabular-nums}\
th,td{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}\
td{overflow-wrap:anywhere}\
td.n,th.n{text-align:right}\
.none{color:#666;font-style:italic}\
.warn{color:#8a4b00}\
@media print{body{max-width:none;padding:0;font-size:10pt}figure{border:none;break-inside:avoid;page-break-inside:avoid}\
.grid{display:block}figure,table{break-inside:avoid}.scroll{overflow:visible}h2{break-after:avoid}}";

/// The whole page.
pub fn page(r: &Report, tz: &TimeZone) -> String {
    let mut o = String::new();
    let period = format!(
        "{} to {}",
        r.since.as_deref().unwrap_or("the first record"),
        r.until
    );
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Nothing may load: no scripts, fonts, images or styles from anywhere.
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    let _ = writeln!(
        o,
        "<title>portsentry report, {}</title>\n<style>{STYLE}</style></head><body><main>",
        esc(&period)
    );
    o.push_str("<h1>portsentry report</h1>\n");
    let _ = writeln!(o, "<p class=\"period\">{}</p>", esc(&period));
    o.push_str("<h2>Totals</h2><div class=\"scroll\"><table id=\"totals\"><tbody>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(
            o,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    };
    row(
        "history file",
        r.history_file.clone().unwrap_or_else(|| "none".into()),
    );
    row(
        "events file",
        r.events_file.clone().unwrap_or_else(|| "none".into()),
    );
    row("records (hosts reported)", r.records.to_string());
    row("TCP records", r.tcp.to_string());
    row("UDP records", r.udp.to_string());
    row(
        "distinct sources",
        r.distinct_sources.map_or_else(
            || format!("more than {}", super::SOURCE_CAPACITY),
            |n| n.to_string(),
        ),
    );
    row(
        "first record",
        r.first.clone().unwrap_or_else(|| "-".into()),
    );
    row("last record", r.last.clone().unwrap_or_else(|| "-".into()));
    if r.events_file.is_some() {
        row("event lines", r.event_lines.to_string());
        for (k, v) in &r.events {
            row(&format!("{k} events"), v.to_string());
        }
        for (k, v) in &r.refusals_by_reason {
            row(&format!("blocks refused: {k}"), v.to_string());
        }
    }
    o.push_str("</tbody></table></div>\n");
    for p in &r.problems {
        let _ = writeln!(o, "<p class=\"warn\">warning: {}</p>", esc(p));
    }

    let t = &r.timeline;
    let bars = t.counts.iter().filter(|c| **c > 0).count();
    let per = match t.bin_hours {
        1 => "hour".to_string(),
        24 => "day".to_string(),
        168 => "week".to_string(),
        h => format!("{h} hours"),
    };
    o.push_str("<h2>Over time</h2>\n");
    figure(
        &mut o,
        "chart-timeline",
        &format!(
            "Blocks (history records) per {per}, {} to {}",
            t.start, t.end
        ),
        bars,
        timeline_svg(t, tz),
    );
    o.push_str("<h2>Who and where</h2><div class=\"grid\">\n");
    let charts = [
        ("chart-ports", "Top ports", &r.top_ports),
        ("chart-sources", "Top sources", &r.top_sources),
        (
            "chart-prefixes",
            "Top /24 and /64 prefixes",
            &r.top_prefixes,
        ),
        ("chart-kinds", "Scan kinds (detections)", &r.scan_kinds),
    ];
    for (id, cap, list) in charts {
        if id == "chart-kinds" && r.events_file.is_none() {
            let _ = writeln!(
                o,
                "<figure id=\"{id}\" data-bars=\"0\"><figcaption>{cap}</figcaption><p class=\"none\">Set EVENTS_FILE to record scan kinds (the history has TCP/UDP only).</p></figure>"
            );
            continue;
        }
        let items = pairs(list);
        let n = items.iter().filter(|i| i.1 > 0).count();
        figure(&mut o, id, cap, n, hbars(&items));
    }
    o.push_str("</div>\n<h2>Tables</h2><div class=\"grid\">\n");
    for (what, list) in [
        ("source", &r.top_sources),
        ("prefix", &r.top_prefixes),
        ("port", &r.top_ports),
        ("scan kind", &r.scan_kinds),
    ] {
        o.push_str("<section>");
        top_table(&mut o, what, list);
        o.push_str("</section>\n");
    }
    o.push_str("</div>\n</main></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn one_bar_per_non_zero_item() {
        let svg = hbars(&[("a".into(), 3), ("b".into(), 0), ("c".into(), 1)]).unwrap();
        assert_eq!(
            svg.matches(&format!("fill=\"{BAR_FILL}\"")).count(),
            2,
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.contains("viewBox"));
    }

    /// The contents of an SVG's `<text>` elements, in order.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|s| s.split('>').nth(1))
            .filter_map(|s| s.split('<').next())
            .map(|s| s.trim().to_owned())
            .collect()
    }

    #[test]
    fn every_bar_has_its_label_and_no_tick_is_left_without_one() {
        let items = [
            ("22/tcp".to_string(), 9),
            ("80/tcp".into(), 5),
            ("23/tcp".into(), 2),
        ];
        let svg = hbars(&items).unwrap();
        let texts: Vec<String> = svg_texts(&svg)
            .into_iter()
            .filter(|s| s.contains('/'))
            .collect();
        assert_eq!(texts, ["22/tcp", "80/tcp", "23/tcp"], "{svg}");
        // One tick per bar on the y axis (5 px, horizontal), none more.
        let ticks = svg
            .split("points=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .filter(|p| {
                let xy: Vec<(i32, i32)> = p
                    .split_whitespace()
                    .filter_map(|c| c.split_once(','))
                    .filter_map(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
                    .collect();
                xy.len() == 2 && xy[0].1 == xy[1].1 && xy[1].0 - xy[0].0 == 5
            })
            .count();
        let bars = svg.matches(&format!("fill=\"{BAR_FILL}\"")).count();
        assert_eq!(bars, 3, "{svg}");
        assert_eq!(ticks, 3, "{svg}");
    }

    #[test]
    fn the_timeline_draws_one_bar_per_bin_with_records() {
        let t = Timeline {
            bin_hours: 3,
            start_epoch: 1_796_043_600,
            start: String::new(),
            end: String::new(),
            counts: vec![0, 4, 0, 0, 9, 1, 0],
        };
        let svg = timeline_svg(&t, &TimeZone::UTC).unwrap();
        assert_eq!(svg.matches(&format!("fill=\"{BAR_FILL}\"")).count(), 3);
        assert!(svg.contains("11-30 13:00"), "a time label: {svg}");
    }

    /// The time labels of a timeline's SVG, in order.
    fn time_labels(svg: &str) -> Vec<String> {
        svg_texts(svg)
            .into_iter()
            .filter(|s| s.contains(':'))
            .collect()
    }

    #[test]
    fn the_time_axis_is_labelled_across_the_whole_range() {
        // One-hour bins from 2026-11-30 13:00 UTC. (Before, plotters' key
        // points for a segmented axis left a 48-bin axis with its first label
        // only.)
        for n in [1, 2, 7, 24, 48, 100, 168] {
            let t = Timeline {
                bin_hours: 1,
                start_epoch: 1_796_043_600,
                start: String::new(),
                end: String::new(),
                counts: vec![1; n],
            };
            let svg = timeline_svg(&t, &TimeZone::UTC).unwrap();
            let all: Vec<String> = (0..n).map(|i| bin_label(&t, i, &TimeZone::UTC)).collect();
            let at: Vec<usize> = time_labels(&svg)
                .iter()
                .map(|l| all.iter().position(|a| a == l).expect("a bin's label"))
                .collect();
            assert_eq!(
                at.first(),
                Some(&0),
                "{n} bins: the first bin is labelled: {at:?}"
            );
            assert!(
                at.windows(2).all(|w| w[0] < w[1]),
                "{n} bins: in order: {at:?}"
            );
            assert!(at.len() <= TIME_LABELS + 1, "{n} bins: {at:?}");
            if n >= 4 {
                assert!(at.len() >= 3, "{n} bins: at least three labels: {at:?}");
                assert!(
                    *at.last().unwrap() * 10 >= (n - 1) * 6,
                    "{n} bins: the labels reach the last part of the axis: {at:?}"
                );
            }
        }
    }
}
