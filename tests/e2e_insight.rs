//! `portsentry status` (text and JSON), METRICS_FILE and EVENTS_FILE against a real daemon in
//! test namespaces, after a known sequence: one SYN probe that is blocked, one UDP datagram
//! whose block the rate limit refuses. Every counter must equal what was sent, before and
//! after a reload. Privileged (root, network namespaces).

mod common;

use std::time::{Duration, Instant};

use common::*;

fn hping_syn(net: &Net, port: u16) {
    must(&format!(
        "ip netns exec {} hping3 -q -S -c 1 -p {port} {TARGET4} >/dev/null 2>&1",
        net.scanner
    ));
}

fn status(run: &Run, json: bool) -> (i32, String) {
    let mut c = std::process::Command::new(BIN);
    c.arg("status").arg("-c").arg(run.p("portsentry.conf"));
    c.arg("--pidfile").arg(run.p("portsentry.pid"));
    if json {
        c.arg("--json");
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn wait_json(run: &Run, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let (code, out) = status(run, true);
        if code == 0
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&out)
            && ok(&v)
        {
            return v;
        }
        assert!(
            t0.elapsed() < common::EVENT_WAIT,
            "status never matched; last:\n{out}\nlog:\n{}",
            run.log.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn status_metrics_and_events_count_exactly_what_was_sent() {
    if !privileged("status_metrics_and_events_count_exactly_what_was_sent") {
        return;
    }
    let net = Net::new();
    let run = Run::new(&net.target);
    run.write_config(&format!(
        "TCP_PORTS=\"1,2,3\"\nUDP_PORTS=\"7\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"1\"\n\
         KILL_ROUTE=\"/bin/true $TARGET$\"\nBLOCK_RATE_LIMIT=\"1\"\n\
         METRICS_FILE=\"{}\"\nEVENTS_FILE=\"{}\"\n",
        run.p("portsentry.prom").display(),
        run.p("events.jsonl").display()
    ));
    run.start_ok(&["-stcp", "-udp"]);
    let pid = run.pid().unwrap();

    hping_syn(&net, 1);
    run.log.wait_contains("has been blocked via dropped route");
    net.udp(Some(SCANNER6), TARGET6, 7);
    run.log
        .wait_contains("Not blocking host: 2001:db8::2/2001:db8::2: block rate limit reached.");

    let check = |v: &serde_json::Value| {
        let c = &v["counters"];
        c["probes"] == 2
            && c["hosts_reported"] == 2
            && c["blocks"] == 1
            && c["blocks_refused"] == 1
            && c["capture_drops"] == 0
    };
    let v = wait_json(&run, check);
    assert_eq!(v["running"], true);
    assert_eq!(v["pid"], pid);
    assert_eq!(v["modes"], serde_json::json!(["stcp", "udp"]));
    assert_eq!(v["blocks_by_method"]["route"], 1);
    assert_eq!(v["blocks_refused_by_reason"]["rate_limit"], 1);
    assert_eq!(v["blocks_in_force"], 1);
    let kinds: Vec<(String, u64)> = v["probes_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["count"].as_u64().unwrap() > 0)
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["mode"].as_str().unwrap(),
                    p["kind"].as_str().unwrap()
                ),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("udp/connect".to_string(), 1), ("stcp/syn".to_string(), 1)]
    );
    let sources: Vec<&str> = v["top_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&SCANNER4) && sources.contains(&SCANNER6),
        "{sources:?}"
    );
    assert_eq!(v["top_ports"].as_array().unwrap().len(), 2);

    let (code, text) = status(&run, false);
    assert_eq!(code, 0);
    assert!(
        text.starts_with(&format!(
            "portsentry {} is running: pid {pid}, modes stcp udp\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let row = |label: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                l.trim_start().starts_with(label)
                    && l[label.len() + 2..].trim().parse::<u64>().is_ok()
            })
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(row("probes ").as_deref(), Some("2"), "{text}");
    assert_eq!(row("hosts reported").as_deref(), Some("2"), "{text}");
    assert_eq!(row("blocks refused").as_deref(), Some("1"), "{text}");

    // The metrics file, as Prometheus reads it: rewritten every 5 s (wait for the count to
    // show, with the suite's generous bound for a loaded machine).
    let want = "portsentry_blocks_refused_total{reason=\"rate_limit\"} 1";
    let t0 = Instant::now();
    let prom = loop {
        let p = run.read("portsentry.prom");
        if p.contains(want) || t0.elapsed() > common::EVENT_WAIT {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(prom.contains(want), "{prom}");
    assert!(prom.contains("portsentry_hosts_reported_total{mode=\"stcp\",proto=\"tcp\"} 1\n"));
    let o = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(run.p("portsentry.prom")).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // The events file: two detections, one block, one refusal.
    let ev = run.wait_file("events.jsonl", "\"event\":\"refusal\"");
    let events: Vec<serde_json::Value> = ev
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |e: &str| events.iter().filter(|v| v["event"] == e).count();
    assert_eq!(
        (count("detection"), count("block"), count("refusal")),
        (2, 1, 1),
        "{ev}"
    );

    // A reload keeps the counters and says when it happened.
    let started = v["started"].clone();
    run.signal(nix::sys::signal::Signal::SIGHUP);
    run.log.wait_contains("reloaded its configuration");
    let v = wait_json(&run, |v| v["last_reload"].is_string());
    assert!(check(&v), "{v}");
    assert_eq!(v["started"], started, "counting did not restart");
}
