//! `portsentry report` and `portsentry status` as a user runs them, and the metrics and events
//! files as their readers see them: the report's numbers against a count made here, its HTML
//! page in headless Chromium, the status socket's client against a served snapshot, the
//! metrics file through promtool and Python's prometheus_client parser, the event lines
//! through a real logrotate run.
//!
//! Needs chromium, promtool (prometheus), python3-prometheus-client, logrotate (installed by
//! .ci/run); a missing tool is reported loudly and fails under CI=true.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use portsentry::config::mode::{Mode, Proto};
use portsentry::observe::report::{LocalTime, history_line};

const BIN: &str = env!("CARGO_BIN_EXE_portsentry");

fn have(test: &str, tool: &str) -> bool {
    common::have_tool(test, tool, "see .ci/run for the packages")
}

/// xorshift, so the data is the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("portsentry runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One record of the generated history.
#[derive(Clone, Copy)]
struct Rec {
    epoch: i64,
    ip: IpAddr,
    port: u16,
    proto: Proto,
}

/// A history of `n` records from 30 sources (IPv4 and IPv6) over a week before `end`, with
/// a few unreadable lines; returns the records.
fn write_history(path: &Path, n: usize, end: i64, seed: u64) -> Vec<Rec> {
    let mut rng = Rng(seed);
    let t = LocalTime {
        year: 2026,
        month: 11,
        day: 30,
        hour: 12,
        minute: 0,
        second: 0,
    };
    let mut text = String::new();
    let mut recs = Vec::new();
    for i in 0..n {
        let epoch = end - 7 * 86_400 + (i as i64 * 7 * 86_400 / n as i64);
        // Skewed: low numbers far more often, so the top lists have a clear order.
        let s = rng.below(30).min(rng.below(30));
        let ip: IpAddr = if s < 20 {
            format!("198.51.{}.{}", 100 + s % 3, 10 + s)
                .parse()
                .unwrap()
        } else {
            format!("2001:db8:{:x}::{:x}", s % 4, s).parse().unwrap()
        };
        let ports = [22u16, 23, 80, 443, 3389, 8080, 137, 161, 1433, 5900];
        let port = ports[rng
            .below(ports.len() as u64)
            .min(rng.below(ports.len() as u64)) as usize];
        let proto = if port == 137 || port == 161 {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        text.push_str(&history_line(epoch, &t, "", ip, port, proto));
        recs.push(Rec {
            epoch,
            ip,
            port,
            proto,
        });
        if i % 500 == 250 {
            text.push_str("this line is not a record\n");
        }
    }
    std::fs::write(path, text).unwrap();
    recs
}

fn conf(dir: &Path, history: &Path, events: Option<&Path>) -> PathBuf {
    let p = dir.join("portsentry.conf");
    let mut s = format!("HISTORY_FILE=\"{}\"\n", history.display());
    if let Some(e) = events {
        s.push_str(&format!("EVENTS_FILE=\"{}\"\n", e.display()));
    }
    std::fs::write(&p, s).unwrap();
    p
}

/// Ranked (value, count) as the report ranks: count down, then the key's order.
fn ranked<K: Ord + Clone>(m: &HashMap<K, u64>, text: impl Fn(&K) -> String) -> Vec<(String, u64)> {
    let mut v: Vec<(K, u64)> = m.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter().take(15).map(|(k, c)| (text(&k), c)).collect()
}

fn prefix(ip: IpAddr) -> (IpAddr, u8) {
    match ip {
        IpAddr::V4(a) => (IpAddr::V4((u32::from(a) & 0xffff_ff00).into()), 24),
        IpAddr::V6(a) => (IpAddr::V6((u128::from(a) >> 64 << 64).into()), 64),
    }
}

const END: i64 = 1_796_043_600; // 2026-11-30T13:00:00Z

#[test]
fn report_numbers_equal_an_independent_count() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("portsentry.history");
    let recs = write_history(&h, 3000, END, 0x5eed);
    let c = conf(dir.path(), &h, None);
    let (since, until) = (END - 3 * 86_400, END - 86_400);
    let args = [
        "report",
        "-c",
        c.to_str().unwrap(),
        "--since",
        &format!("@{since}"),
        "--until",
        &format!("@{until}"),
    ];
    // The count made here.
    let inside: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.epoch >= since && r.epoch < until)
        .collect();
    let mut src: HashMap<IpAddr, u64> = HashMap::new();
    let mut pfx: HashMap<(IpAddr, u8), u64> = HashMap::new();
    let mut ports: HashMap<(Proto, u16), u64> = HashMap::new();
    for r in &inside {
        *src.entry(r.ip).or_default() += 1;
        *pfx.entry(prefix(r.ip)).or_default() += 1;
        *ports.entry((r.proto, r.port)).or_default() += 1;
    }
    let tcp = inside.iter().filter(|r| r.proto == Proto::Tcp).count() as u64;

    let o = run(&[&args[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["records"], inside.len() as u64);
    assert_eq!(j["tcp"], tcp);
    assert_eq!(j["udp"], inside.len() as u64 - tcp);
    assert_eq!(j["distinct_sources"], src.len() as u64);
    assert_eq!(j["unreadable_history_lines"], 6);
    let list = |k: &str| -> Vec<(String, u64)> {
        j[k].as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["value"].as_str().unwrap().to_string(),
                    t["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let want_src = ranked(&src, |k| k.to_string());
    let want_pfx = ranked(&pfx, |k| format!("{}/{}", k.0, k.1));
    let want_ports = ranked(&ports, |k| {
        format!("{}/{}", k.1, if k.0 == Proto::Tcp { "tcp" } else { "udp" })
    });
    assert_eq!(list("top_sources"), want_src);
    assert_eq!(list("top_prefixes"), want_pfx);
    assert_eq!(list("top_ports"), want_ports);
    let per_hour: u64 = j["per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["count"].as_u64().unwrap())
        .sum();
    assert_eq!(per_hour, inside.len() as u64);

    // The terminal view shows the same numbers in its tables.
    let o = run(&args);
    assert!(o.status.success());
    let text = stdout(&o);
    let row = |label: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(row("records "), inside.len().to_string());
    assert_eq!(row("TCP records"), tcp.to_string());
    assert_eq!(row("distinct sources"), src.len().to_string());
    let section = |title: &str| -> Vec<(String, u64)> {
        text.split(&format!("\n{title}\n"))
            .nth(1)
            .unwrap()
            .lines()
            .skip(1) // the header row
            .take_while(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_string(), f[2].parse().unwrap())
            })
            .collect()
    };
    assert_eq!(section("Top sources"), want_src);
    assert_eq!(section("Top /24 and /64 prefixes"), want_pfx);
    assert_eq!(section("Top ports"), want_ports);
    // One sparkline character per bin, between bars.
    let spark = text
        .lines()
        .find(|l| l.trim_start().starts_with('|'))
        .unwrap();
    let n = j["sparkline"]["counts"].as_array().unwrap().len();
    assert_eq!(spark.trim().chars().count(), n + 2, "{spark}");
    assert!(
        text.contains("warning: "),
        "unreadable lines are named with file and line"
    );
}

#[test]
fn report_rejects_bad_times_and_a_missing_history_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("none");
    let c = conf(dir.path(), &h, None);
    let o = run(&[
        "report",
        "-c",
        c.to_str().unwrap(),
        "--since",
        "last tuesday",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--since: cannot read the time \"last tuesday\""),
        "{e}"
    );
    let o = run(&["report", "-c", c.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(&format!("{}: No such file", h.display())), "{e}");
    let o = run(&["report", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Detection events (with scan kinds) for some records.
fn write_events(path: &Path, recs: &[Rec]) -> BTreeMap<&'static str, u64> {
    use portsentry::observe::events::{Event, Response, line};
    use portsentry::observe::stats::ProbeKind;
    let kinds = [
        ProbeKind::Syn,
        ProbeKind::Syn,
        ProbeKind::Fin,
        ProbeKind::Xmas,
        ProbeKind::Null,
        ProbeKind::Udp,
    ];
    let mut count = BTreeMap::new();
    let mut text = String::new();
    let tz = jiff::tz::TimeZone::UTC;
    for (i, r) in recs.iter().enumerate().step_by(7) {
        let k = kinds[i % kinds.len()];
        *count.entry(k.as_str()).or_default() += 1;
        text.push_str(&line(
            &Event::detection(r.epoch * 1000, r.ip, r.port, Mode::Stcp, k, Response::Block),
            &tz,
        ));
    }
    std::fs::write(path, text).unwrap();
    count
}

/// Runs headless Chromium on `url`; returns (dumped DOM, stderr).
fn chromium(dir: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let o = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (stdout(&o), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[test]
fn report_html_renders_in_headless_chromium_with_the_right_bars() {
    if !have(
        "report_html_renders_in_headless_chromium_with_the_right_bars",
        "/usr/bin/chromium",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("portsentry.history");
    let ev = dir.path().join("events.jsonl");
    let recs = write_history(&h, 2000, END, 0xbee);
    let kinds = write_events(&ev, &recs);
    let c = conf(dir.path(), &h, Some(&ev));
    let page = dir.path().join("report.html");
    let since = END - 2 * 86_400;
    let o = run(&[
        "report",
        "-c",
        c.to_str().unwrap(),
        "--since",
        &format!("@{since}"),
        "--until",
        &format!("@{END}"),
        "--json",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    // Counted here: bars per chart.
    let inside: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.epoch >= since && r.epoch < END)
        .collect();
    let distinct = |f: &dyn Fn(&Rec) -> String| {
        inside
            .iter()
            .map(|r| f(r))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            .min(15)
    };
    let width = j["timeline"]["bin_hours"].as_i64().unwrap() * 3600;
    let start = j["timeline"]["start_epoch"].as_i64().unwrap();
    assert_eq!(start, since, "the timeline starts at --since");
    let bins = inside
        .iter()
        .map(|r| (r.epoch - start) / width)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let kinds_in: usize = {
        let mut k = std::collections::BTreeSet::new();
        for (i, r) in recs.iter().enumerate().step_by(7) {
            if r.epoch >= since && r.epoch < END {
                k.insert(i % 6);
            }
        }
        // indexes 0 and 1 are both "syn"
        k.iter()
            .map(|i| if *i == 1 { 0 } else { *i })
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(kinds.len() >= kinds_in);
    let want = [
        ("chart-timeline", bins),
        (
            "chart-ports",
            distinct(&|r| format!("{}{:?}", r.port, r.proto)),
        ),
        ("chart-sources", distinct(&|r| r.ip.to_string())),
        (
            "chart-prefixes",
            distinct(&|r| format!("{:?}", prefix(r.ip))),
        ),
        ("chart-kinds", kinds_in),
    ];

    let url = format!("file://{}", page.display());
    let shot = dir.path().join("phone.png");
    let (dom, err) = chromium(
        dir.path(),
        &url,
        &[
            "--dump-dom",
            "--window-size=390,2400",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    // The page has no scripts and loads nothing: any console line is an error or a blocked load.
    assert!(
        console_lines(&err).is_empty(),
        "console:\n{}",
        console_lines(&err).join("\n")
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot {} bytes",
        png.len()
    );
    for (id, bars) in want {
        let at = dom
            .find(&format!("<figure id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id} in the rendered page"));
        let end = at + dom[at..].find("</figure>").unwrap();
        let fig = &dom[at..end];
        assert!(fig.contains("<svg"), "{id} has no chart");
        let rects = fig.matches("fill=\"#3465A4\"").count();
        assert_eq!(rects, bars, "{id}: bars drawn");
        assert!(fig.contains(&format!("data-bars=\"{bars}\"")), "{id}");
    }
    assert!(dom.contains("<meta name=\"viewport\""));

    // The console check can fail: a page with an error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><p>x</p><script>console.error('boom')</script>",
    )
    .unwrap();
    let (_, err) = chromium(
        dir.path(),
        &format!("file://{}", bad.display()),
        &["--dump-dom"],
    );
    assert_eq!(console_lines(&err).len(), 1, "{err}");
}

/// A known counter state for the status and metrics tests.
fn known_stats(now: i64) -> portsentry::observe::stats::Stats {
    use portsentry::observe::stats::{Method, ProbeKind, Refusal, Stats, Suppression};
    let mut s = Stats::new(now - 600, &[Mode::Stcp, Mode::Udp]);
    s.note_packets(77);
    let ip = |x: &str| x.parse::<IpAddr>().unwrap();
    for (i, k) in [
        ProbeKind::Syn,
        ProbeKind::Fin,
        ProbeKind::Xmas,
        ProbeKind::Syn,
    ]
    .iter()
    .enumerate()
    {
        s.note_probe(now - 60, ip("198.51.100.2"), 20 + i as u16, Mode::Stcp, *k);
    }
    s.note_probe(
        now - 30,
        ip("2001:db8::2"),
        137,
        Mode::Udp,
        ProbeKind::Connect,
    );
    s.note_report(Mode::Stcp);
    s.note_report(Mode::Udp);
    s.note_block(Mode::Stcp, &[Method::Nftables]);
    s.note_refusal(Refusal::RateLimit);
    s.note_refusal(Refusal::Protected);
    s.note_refusal(Refusal::Protected);
    s.note_suppressed(Suppression::Repeat, 5);
    s.note_capture_losses(3, 2);
    s.note_command_failure();
    s.set_blocks_in_force(1, Some(now + 3000));
    s
}

#[test]
fn status_reads_the_snapshot_from_the_socket_beside_the_pid_file() {
    use portsentry::observe::stats::{Identity, render};
    use portsentry::sys::observe::status_sock::StatusServer;
    let dir = tempfile::tempdir().unwrap();
    let now = portsentry::sys::clock::epoch();
    let mut stats = known_stats(now);
    let id = Identity {
        pid: std::process::id(),
        modes: vec![Mode::Stcp, Mode::Udp],
        config: "/etc/portsentry/portsentry.conf".into(),
        watched_ports: vec![(Mode::Stcp, 12), (Mode::Udp, 7)],
    };
    let snap = stats.snapshot(now, &id, &jiff::tz::TimeZone::UTC);
    let body = render::json(&snap).into_bytes();
    let mut server = StatusServer::bind(&dir.path().join("ps.sock")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        while !stop2.load(std::sync::atomic::Ordering::SeqCst)
            && t0.elapsed() < Duration::from_secs(20)
        {
            server.serve(t0.elapsed().as_millis() as u64, || body.clone());
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let pidfile = dir.path().join("ps.pid");
    let c = dir.path().join("none.conf");
    let o = run(&[
        "status",
        "--json",
        "-c",
        c.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["running"], true);
    assert_eq!(j["pid"], std::process::id());
    assert_eq!(j["modes"], serde_json::json!(["stcp", "udp"]));
    let want = stats.counters();
    let c2 = &j["counters"];
    assert_eq!(c2["packets_judged"], want.packets_judged);
    assert_eq!(c2["probes"], 5);
    assert_eq!(c2["hosts_reported"], 2);
    assert_eq!(c2["blocks"], 1);
    assert_eq!(c2["blocks_refused"], 3);
    assert_eq!(c2["capture_drops"], 3);
    assert_eq!(c2["malformed_packets"], 2);
    assert_eq!(j["blocks_in_force"], 1);
    assert_eq!(j["top_sources"][0]["value"], "198.51.100.2");
    assert_eq!(j["top_sources"][0]["count"], 4);
    assert_eq!(j["top_ports"][0]["value"], "20/tcp");
    let o = run(&[
        "status",
        "-c",
        c.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!(
            "portsentry {} is running: pid {}, modes stcp udp\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        )),
        "{text}"
    );
    assert!(
        text.contains("\n  blocks refused                    3\n"),
        "{text}"
    );
    assert!(text.contains("\n  protected   2\n"), "{text}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    t.join().unwrap();
}

#[test]
fn status_without_a_daemon_says_so_and_summarises_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("portsentry.history");
    let now = portsentry::sys::clock::epoch();
    let recs = write_history(&h, 500, now, 7);
    let c = conf(dir.path(), &h, None);
    let pidfile = dir.path().join("portsentry.pid");
    let args = [
        "status",
        "-c",
        c.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(3), "LSB: not running");
    let text = stdout(&o);
    assert!(
        text.starts_with("portsentry is not running (no daemon answers on "),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nHistory file {}\n", h.display())),
        "{text}"
    );
    let o = run(&[&args[..], &["--json"]].concat());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["running"], false);
    assert_eq!(j["pid"], serde_json::Value::Null);
    assert_eq!(j["counters"], serde_json::Value::Null);
    assert_eq!(j["tops_from"], "history");
    assert_eq!(j["history"]["records"], recs.len() as u64);
    let day = recs.iter().filter(|r| r.epoch >= now - 86_400).count() as u64;
    assert_eq!(j["history"]["records_last_day"], day);
    // A pid file whose process is gone: LSB 1.
    std::fs::write(&pidfile, "999999999\n").unwrap();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("names pid 999999999, which is gone"));
}

#[test]
fn the_metrics_file_parses_with_promtool_and_prometheus_client_and_its_counters_match() {
    let t = "the_metrics_file_parses_with_promtool_and_prometheus_client_and_its_counters_match";
    if !have(t, "/usr/bin/promtool") || !have(t, "/usr/lib/python3/dist-packages/prometheus_client")
    {
        return;
    }
    use portsentry::observe::stats::{Identity, render};
    use portsentry::sys::observe::metrics_file::MetricsFile;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("portsentry.prom");
    let now = portsentry::sys::clock::epoch();
    let mut stats = known_stats(now);
    let id = Identity {
        pid: 1,
        modes: vec![Mode::Stcp, Mode::Udp],
        config: "/etc/portsentry/portsentry.conf".into(),
        watched_ports: vec![(Mode::Stcp, 12), (Mode::Udp, 7)],
    };
    let mut m = MetricsFile::new(&p);
    assert_eq!(
        m.write(
            0,
            &render::prometheus(&stats.snapshot(now, &id, &jiff::tz::TimeZone::UTC))
        ),
        None
    );
    let o = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool lint: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let py = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + json.dumps(dict(sorted(s.labels.items())), sort_keys=True)
        out[key] = [fam.type, s.value]
print(json.dumps(out))
"#;
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(py)
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: BTreeMap<String, (String, f64)> = serde_json::from_slice(&o.stdout).unwrap();
    let c = stats.counters();
    let want: &[(&str, &str, f64)] = &[
        (
            "portsentry_packets_judged_total{}",
            "counter",
            c.packets_judged as f64,
        ),
        (
            "portsentry_probes_total{\"kind\": \"syn\", \"mode\": \"stcp\", \"proto\": \"tcp\"}",
            "counter",
            2.0,
        ),
        (
            "portsentry_probes_total{\"kind\": \"connect\", \"mode\": \"udp\", \"proto\": \"udp\"}",
            "counter",
            1.0,
        ),
        (
            "portsentry_probes_total{\"kind\": \"ack\", \"mode\": \"stcp\", \"proto\": \"tcp\"}",
            "counter",
            0.0,
        ),
        (
            "portsentry_hosts_reported_total{\"mode\": \"stcp\", \"proto\": \"tcp\"}",
            "counter",
            1.0,
        ),
        (
            "portsentry_blocks_total{\"mode\": \"stcp\", \"proto\": \"tcp\"}",
            "counter",
            1.0,
        ),
        (
            "portsentry_block_actions_total{\"method\": \"nftables\"}",
            "counter",
            1.0,
        ),
        (
            "portsentry_blocks_refused_total{\"reason\": \"protected\"}",
            "counter",
            2.0,
        ),
        (
            "portsentry_blocks_refused_total{\"reason\": \"rate_limit\"}",
            "counter",
            1.0,
        ),
        (
            "portsentry_reports_suppressed_total{\"reason\": \"repeat\"}",
            "counter",
            5.0,
        ),
        (
            "portsentry_capture_drops_total{}",
            "counter",
            c.capture_drops as f64,
        ),
        (
            "portsentry_malformed_packets_total{}",
            "counter",
            c.malformed_packets as f64,
        ),
        ("portsentry_command_failures_total{}", "counter", 1.0),
        ("portsentry_blocks_in_force{}", "gauge", 1.0),
        (
            "portsentry_watched_ports{\"mode\": \"stcp\", \"proto\": \"tcp\"}",
            "gauge",
            12.0,
        ),
        ("portsentry_up{}", "gauge", 1.0),
        (
            "portsentry_start_time_seconds{}",
            "gauge",
            (now - 600) as f64,
        ),
    ];
    for (k, ty, v) in want {
        let g = got
            .get(*k)
            .unwrap_or_else(|| panic!("{k} not parsed; have {:?}", got.keys()));
        assert_eq!((g.0.as_str(), g.1), (*ty, *v), "{k}");
    }
    let total: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("portsentry_probes_total{"))
        .map(|(_, v)| v.1)
        .sum();
    assert_eq!(total, c.probes as f64);
}

#[test]
fn event_lines_are_json_with_the_documented_fields_and_survive_logrotate() {
    let t = "event_lines_are_json_with_the_documented_fields_and_survive_logrotate";
    if !have(t, "/usr/sbin/logrotate") {
        return;
    }
    use portsentry::observe::events::{Event, Response, Target, line};
    use portsentry::observe::stats::{Method, ProbeKind, Refusal};
    use portsentry::sys::observe::events_file::EventsFile;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    // The shipped logrotate stanza for the events file, pointed at the test directory.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/debian/logrotate")).unwrap();
    let at = shipped
        .find("/var/log/portsentry/events.jsonl {")
        .expect("the shipped file covers the events file");
    let stanza = shipped[at..]
        .replace("/var/log/portsentry/events.jsonl", path.to_str().unwrap())
        .replace("create 0640 root adm", "create 0640 root root");
    let lr_conf = dir.path().join("logrotate.conf");
    std::fs::write(&lr_conf, stanza).unwrap();
    let rotate = || {
        let o = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.path().join("state"))
            .arg(&lr_conf)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let tz = jiff::tz::TimeZone::UTC;
    let ip = |x: &str| x.parse::<IpAddr>().unwrap();
    let mut e = EventsFile::new(Target::File(path.clone()));
    let mut sent = Vec::new();
    let mut n = 0i64;
    let mut turn = |e: &mut EventsFile, sent: &mut Vec<String>| {
        for _ in 0..3 {
            n += 1;
            let ms = (END + n) * 1000;
            for ev in [
                Event::detection(
                    ms,
                    ip("198.51.100.2"),
                    22,
                    Mode::Stcp,
                    ProbeKind::Syn,
                    Response::Block,
                ),
                Event::block(
                    ms,
                    ip("198.51.100.2"),
                    22,
                    Mode::Stcp,
                    &[Method::Nftables],
                    None,
                ),
                Event::refusal(ms, ip("2001:db8::2"), 137, Mode::Sudp, Refusal::Protected),
                Event::expiry(ms, ip("198.51.100.2"), Some(Mode::Stcp), None),
                Event::unblock(ms, ip("2001:db8::7"), None),
            ] {
                let l = line(&ev, &tz);
                e.push(&l);
                sent.push(l.trim_end().to_string());
            }
        }
        assert_eq!(e.flush(), None);
    };
    turn(&mut e, &mut sent);
    rotate(); // events.jsonl -> .1, a new empty events.jsonl
    turn(&mut e, &mut sent);
    rotate(); // .1 -> .2.gz, events.jsonl -> .1
    turn(&mut e, &mut sent);
    let read = |p: &Path| -> Vec<String> {
        if p.extension().is_some_and(|x| x == "gz") {
            let o = Command::new("gzip").arg("-dc").arg(p).output().unwrap();
            stdout(&o).lines().map(str::to_string).collect()
        } else {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    };
    let files = [
        dir.path().join("events.jsonl.2.gz"),
        dir.path().join("events.jsonl.1"),
        path.clone(),
    ];
    let mut got = Vec::new();
    for f in &files {
        let lines = read(f);
        assert_eq!(lines.len(), 15, "{}", f.display());
        got.extend(lines);
    }
    assert_eq!(got, sent, "every line once, in order, across the rotations");
    for l in &got {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let o = v.as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        for k in [
            "time", "event", "source", "port", "proto", "mode", "kind", "action", "result",
            "reason",
        ] {
            assert!(keys.contains(&k), "{k} missing in {l}");
        }
        let time = v["time"].as_str().unwrap();
        assert!(
            time.parse::<jiff::Timestamp>().is_ok() && time.ends_with("+00:00"),
            "{time}"
        );
        assert!(
            ["detection", "block", "refusal", "expiry", "unblock"]
                .contains(&v["event"].as_str().unwrap())
        );
        v["source"].as_str().unwrap().parse::<IpAddr>().unwrap();
    }
}
