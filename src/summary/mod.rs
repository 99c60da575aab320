//! `portsentry report`: a summary of HISTORY_FILE (and EVENTS_FILE when there is one) over a
//! period: totals, top sources, /24 and /64 prefixes, ports, scan kinds, and records per hour
//! as a timeline. Three views of one [`Report`]: aligned text with a one-line sparkline
//! ([`text`]), JSON (serde), and one self-contained HTML page with SVG charts ([`html`]).
//! (The module is not called `report`: that name holds the log lines.)
//!
//! Bounded memory whatever the file size: lines are fed one at a time ([`Summary::history`],
//! [`Summary::event`]); sources and prefixes go into Space-Saving tables of
//! [`SOURCE_CAPACITY`] keys (exact while there are no more distinct ones than that, else each
//! count carries its error bound, see `stats::topk`), ports into a map that cannot exceed
//! 2 × 65,536 keys, the timeline into one counter per hour of the period that has records.
//!
//! What the files hold: every history line is one host reported and recorded (blocked, or
//! with BLOCK_x=0 only logged: 1.2 writes the same line), so "records" are counted from the
//! history; the event file adds what the history cannot say: scan kinds, and the events by
//! type (detections, blocks, refusals and why, expiries, unblocks).
//!
//! Pure: lines and times in, numbers out; `sys::insight` reads the files.

pub mod html;
pub mod parse;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::mode::Proto;
use crate::stats::topk::{self, TopK};
use crate::stats::{Top, port_text, prefix_of, prefix_text};
use crate::timefmt;

/// Distinct sources (and prefixes) counted exactly at least; past that, approximately.
pub const SOURCE_CAPACITY: usize = 4096;
/// Entries of each top list.
pub const TOP: usize = 15;
/// Bars of the HTML timeline, at most.
pub const HTML_BINS: usize = 96;
/// Characters of the terminal sparkline, at most.
pub const SPARK_BINS: usize = 60;
/// Problems quoted with file and line (the rest are only counted).
const QUOTED_PROBLEMS: usize = 5;

/// The scan kinds an event line may name; anything else is counted as `other`, so a damaged
/// file cannot grow the table.
const KINDS: [&str; 17] = [
    "connect",
    "syn",
    "null",
    "fin",
    "xmas",
    "ack",
    "maimon",
    "synrst",
    "all",
    "other",
    "udp",
    "sctp_init",
    "sctp_cookie_echo",
    "icmp_echo",
    "icmp_timestamp",
    "icmp_mask",
    "icmp6_echo",
];

/// The summary being built.
#[derive(Debug, Clone)]
pub struct Summary {
    since: Option<i64>,
    until: i64,
    records: u64,
    first: Option<i64>,
    last: Option<i64>,
    by_proto: BTreeMap<Proto, u64>,
    sources: TopK<IpAddr>,
    prefixes: TopK<(IpAddr, u8)>,
    ports: HashMap<(Proto, u16), u64>,
    hours: BTreeMap<i64, u64>,
    events: BTreeMap<&'static str, u64>,
    kinds: BTreeMap<&'static str, u64>,
    refusals: BTreeMap<String, u64>,
    event_lines: u64,
    outside: u64,
    bad_history: u64,
    bad_events: u64,
    problems: Vec<String>,
}

impl Summary {
    /// A summary of records with `since <= time < until` (`since` None: from the start).
    pub fn new(since: Option<i64>, until: i64) -> Summary {
        Summary {
            since,
            until,
            records: 0,
            first: None,
            last: None,
            by_proto: BTreeMap::new(),
            sources: TopK::new(SOURCE_CAPACITY),
            prefixes: TopK::new(SOURCE_CAPACITY),
            ports: HashMap::new(),
            hours: BTreeMap::new(),
            events: BTreeMap::new(),
            kinds: BTreeMap::new(),
            refusals: BTreeMap::new(),
            event_lines: 0,
            outside: 0,
            bad_history: 0,
            bad_events: 0,
            problems: Vec::new(),
        }
    }

    fn inside(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s) && t < self.until
    }

    fn problem(&mut self, file: &str, line: u64, why: &str) {
        if self.problems.len() < QUOTED_PROBLEMS {
            self.problems.push(format!("{file} line {line}: {why}"));
        }
    }

    /// One line of the history file `file` (line number `n`, 1-based, for problems).
    pub fn history(&mut self, file: &str, n: u64, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let r = match parse::history_line(line) {
            Ok(r) => r,
            Err(why) => {
                self.bad_history += 1;
                self.problem(file, n, why);
                return;
            }
        };
        if !self.inside(r.epoch) {
            self.outside += 1;
            return;
        }
        self.records += 1;
        self.first = Some(self.first.map_or(r.epoch, |f| f.min(r.epoch)));
        self.last = Some(self.last.map_or(r.epoch, |l| l.max(r.epoch)));
        *self.by_proto.entry(r.proto).or_insert(0) += 1;
        self.sources.add(&r.ip, 1);
        self.prefixes.add(&prefix_of(r.ip), 1);
        *self.ports.entry((r.proto, r.port)).or_insert(0) += 1;
        *self.hours.entry(r.epoch.div_euclid(3600)).or_insert(0) += 1;
    }

    /// One line of the events file `file`.
    pub fn event(&mut self, file: &str, n: u64, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let r = match parse::event_line(line) {
            Ok(r) => r,
            Err(why) => {
                self.bad_events += 1;
                self.problem(file, n, &why);
                return;
            }
        };
        if !self.inside(r.epoch) {
            self.outside += 1;
            return;
        }
        let Some(kind) = crate::events::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .find(|k| *k == r.line.event)
        else {
            self.bad_events += 1;
            self.problem(file, n, "unknown \"event\"");
            return;
        };
        self.event_lines += 1;
        *self.events.entry(kind).or_insert(0) += 1;
        if kind == "detection" {
            let k = r.line.kind.as_deref().unwrap_or("other");
            let k = KINDS.iter().copied().find(|x| *x == k).unwrap_or("other");
            *self.kinds.entry(k).or_insert(0) += 1;
        }
        if kind == "refusal" && self.refusals.len() < 16 {
            let why = r.line.reason.unwrap_or_else(|| "unknown".into());
            *self.refusals.entry(why).or_insert(0) += 1;
        }
    }

    /// The finished report; times shown in `tz`.
    pub fn finish(&self, files: Files, tz: &TimeZone) -> Report {
        let t = |e: i64| timefmt::rfc3339(e, tz);
        let tops = |v: Vec<topk::Counted<String>>| -> Vec<Top> {
            v.into_iter()
                .map(|c| Top {
                    value: c.key,
                    count: c.count,
                    error: c.error,
                })
                .collect()
        };
        let src: Vec<Top> = topk::merge([&self.sources], TOP)
            .into_iter()
            .map(|c| Top {
                value: c.key.to_string(),
                count: c.count,
                error: c.error,
            })
            .collect();
        let pfx: Vec<Top> = topk::merge([&self.prefixes], TOP)
            .into_iter()
            .map(|c| Top {
                value: prefix_text(c.key),
                count: c.count,
                error: c.error,
            })
            .collect();
        let mut ports: Vec<(&(Proto, u16), &u64)> = self.ports.iter().collect();
        ports.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let ports: Vec<Top> = ports
            .into_iter()
            .take(TOP)
            .map(|(k, v)| Top {
                value: port_text(k.0, k.1),
                count: *v,
                error: 0,
            })
            .collect();
        let mut kinds: Vec<(&&str, &u64)> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let kinds = tops(
            kinds
                .into_iter()
                .map(|(k, v)| topk::Counted {
                    key: (*k).to_string(),
                    count: *v,
                    error: 0,
                })
                .collect(),
        );
        // The timeline runs from --since (or the first record) to --until (default now), so
        // quiet hours at either end show as such.
        let (start_h, end_h) = match self.first {
            Some(f) => (
                self.since.unwrap_or(f).div_euclid(3600),
                (self.until - 1).div_euclid(3600),
            ),
            None => (0, -1),
        };
        Report {
            since: self.since.map(t),
            until: t(self.until),
            history_file: files.history,
            events_file: files.events,
            records: self.records,
            first: self.first.map(t),
            last: self.last.map(t),
            tcp: self.by_proto.get(&Proto::Tcp).copied().unwrap_or(0),
            udp: self.by_proto.get(&Proto::Udp).copied().unwrap_or(0),
            distinct_sources: (!self.sources.approximate()).then_some(self.sources.len() as u64),
            top_sources: src,
            top_prefixes: pfx,
            top_ports: ports,
            event_lines: self.event_lines,
            events: self
                .events
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            scan_kinds: kinds,
            refusals_by_reason: self.refusals.clone(),
            per_hour: self
                .hours
                .iter()
                .map(|(h, c)| HourCount {
                    hour: t(h * 3600),
                    epoch: h * 3600,
                    count: *c,
                })
                .collect(),
            timeline: bin(&self.hours, start_h, end_h, HTML_BINS, tz),
            sparkline: bin(&self.hours, start_h, end_h, SPARK_BINS, tz),
            outside_period: self.outside,
            unreadable_history_lines: self.bad_history,
            unreadable_event_lines: self.bad_events,
            problems: self.problems.clone(),
        }
    }

    /// History records in the period so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The first record's time (epoch seconds).
    pub fn first(&self) -> Option<i64> {
        self.first
    }

    /// The last record's time (epoch seconds).
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// Unreadable history lines so far.
    pub fn unreadable(&self) -> u64 {
        self.bad_history
    }
}

/// The files a report read.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// The history file's path.
    pub history: Option<String>,
    /// The events file's path, if one was read.
    pub events: Option<String>,
}

/// What `portsentry report --json` prints; the text and HTML views read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Start of the period (RFC 3339); `None`: from the first record.
    pub since: Option<String>,
    /// End of the period, not included (RFC 3339).
    pub until: String,
    /// The history file read.
    pub history_file: Option<String>,
    /// The events file read, if any.
    pub events_file: Option<String>,
    /// History records in the period (hosts reported and recorded).
    pub records: u64,
    /// The first record in the period (RFC 3339).
    pub first: Option<String>,
    /// The last record in the period (RFC 3339).
    pub last: Option<String>,
    /// TCP records.
    pub tcp: u64,
    /// UDP records.
    pub udp: u64,
    /// Distinct source addresses; `null` when there were more than the exact table holds.
    pub distinct_sources: Option<u64>,
    /// Top sources.
    pub top_sources: Vec<Top>,
    /// Top /24 and /64 prefixes.
    pub top_prefixes: Vec<Top>,
    /// Top ports (`22/tcp`).
    pub top_ports: Vec<Top>,
    /// Event lines in the period, and by type.
    pub event_lines: u64,
    /// Event lines by type.
    pub events: BTreeMap<String, u64>,
    /// Detections by scan kind (from the events file).
    pub scan_kinds: Vec<Top>,
    /// Refusal events by reason.
    pub refusals_by_reason: BTreeMap<String, u64>,
    /// Records per hour, hours with records only.
    pub per_hour: Vec<HourCount>,
    /// Records over the period in at most `HTML_BINS` bars.
    pub timeline: Timeline,
    /// The same in at most `SPARK_BINS` characters.
    pub sparkline: Timeline,
    /// Lines skipped because they lie outside the period.
    pub outside_period: u64,
    /// History lines that are not records.
    pub unreadable_history_lines: u64,
    /// Event lines that are not events.
    pub unreadable_event_lines: u64,
    /// The first few unreadable lines, with file and line number.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Records of one hour.
pub struct HourCount {
    /// The hour's start (RFC 3339).
    pub hour: String,
    /// The hour's start (epoch seconds).
    pub epoch: i64,
    /// Records in it.
    pub count: u64,
}

/// Counts in equal bins of `bin_hours` hours from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Timeline {
    /// Hours per bin.
    pub bin_hours: i64,
    /// Start of the first bin (epoch seconds, on a whole hour) and its local label.
    pub start_epoch: i64,
    /// The first bin's local label.
    pub start: String,
    /// End of the last bin.
    pub end: String,
    /// Records per bin.
    pub counts: Vec<u64>,
}

/// Bin widths tried, in hours: the smallest that gives at most `max` bins wins.
const BIN_HOURS: [i64; 10] = [1, 2, 3, 6, 12, 24, 48, 168, 336, 720];

/// Records per hour → at most `max` bins over hours `start_h..=end_h`.
pub fn bin(
    hours: &BTreeMap<i64, u64>,
    start_h: i64,
    end_h: i64,
    max: usize,
    tz: &TimeZone,
) -> Timeline {
    if end_h < start_h {
        return Timeline::default();
    }
    // At most two centuries of hours (a `--since` of 1970 stays a long, not an endless, chart).
    let span = end_h
        .saturating_sub(start_h)
        .saturating_add(1)
        .min(200 * 366 * 24);
    let start_h = end_h - span + 1;
    let width = BIN_HOURS
        .iter()
        .copied()
        .find(|w| (span + w - 1) / w <= max as i64)
        .unwrap_or_else(|| (span + max as i64 - 1) / max as i64);
    let n = ((span + width - 1) / width) as usize;
    let mut counts = vec![0u64; n];
    for (h, c) in hours.range(start_h..=end_h) {
        if let Some(slot) = counts.get_mut(((h - start_h) / width) as usize) {
            *slot += c;
        }
    }
    Timeline {
        bin_hours: width,
        start_epoch: start_h * 3600,
        start: timefmt::local_minute(start_h * 3600, tz),
        end: timefmt::local_minute((start_h + width * n as i64) * 3600, tz),
        counts,
    }
}

#[cfg(test)]
mod tests;
