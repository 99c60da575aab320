//! Fleets (issue 12) end to end, as root, against the REAL LAPI of Debian's crowdsec 1.4.6
//! started by the tests in a namespace of their own (`common::crowdsec`), with the real
//! daemon: one LAPI namespace, three target namespaces each running `portsentry -stcp`
//! (pushing, and pulling with its own bouncer key), a fourth running Debian's
//! crowdsec-firewall-bouncer, one scanner (`common::fleetnet`). The scenario shares that
//! set-up between its phases (a LAPI and three daemons take ~10 s to start): a scan of host
//! A reaches the LAPI and blocks the scanner on B, C and D (v4 and v6); protected and
//! ignored addresses are not applied; a decision deleted with cscli goes from every set;
//! the LAPI stopped for 30 s while 200 scanners probe A loses and duplicates nothing; a bad
//! credentials file refuses a reload; a wrong password is a clear error while detection and
//! local blocking go on. Two more tests drive `sys::fleet::Fleet` directly against the LAPI
//! where the daemon cannot be made to fail on cue (a request cut off by kill -9) or to
//! record fast enough (10,000 blocks in 45 ms). `bench_fleet` (ignored; `bench/fleet.sh`)
//! measures propagation. Privileged: says so loudly when it cannot run, fails under CI=true.
//!
//! Waits for a decision to reach a pulling host are 40 s, not the second a pull takes: the
//! LAPI's incremental stream can miss a decision for good (doc/fleets.md, "Pulled bans"), and the
//! host's re-read of the whole stream brings it within 35 s.

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crowdsec::{self, Lapi};
use common::fleetnet::{
    self, FirewallBouncer, Host, LAPI, Monitor, PORT, Topology, cpu_ms, eventually, rss_kib, v4,
    v6, within_secs,
};
use common::postgres::{self, Postgres};
use common::{Net, Run, must, privileged, sh};
use portsentry::config::mode::Mode;
use portsentry::config::{BlockMethod, Config};
use portsentry::fleet::alert::Scan;
use portsentry::sys::fleet::{self, Fleet, Settings};

const LAPI4: &str = "203.0.113.1";
const HOST4: &str = "203.0.113.2";
const HOST6: &str = "2001:db8:113::2";
/// In host C's ignore file.
const IGNORED: &str = "203.0.113.250";
/// The scenario of an nmap SYN scan seen by `-stcp`.
const SYN_SCAN: &str = "portsentry/tcp-syn-scan";

fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing = Vec::new();
    if !crowdsec::installed() {
        missing.push("crowdsec/cscli");
    }
    if !fleetnet::firewall_bouncer_installed() {
        missing.push("crowdsec-firewall-bouncer");
    }
    if !postgres::installed() {
        missing.push("postgresql");
    }
    for tool in ["nft", "nmap", "curl", "openssl"] {
        if !sh(&format!("command -v {tool} >/dev/null"))
            .status
            .success()
        {
            missing.push(tool);
        }
    }
    if missing.is_empty() {
        return true;
    }
    if ci {
        panic!("{test}: {missing:?} not installed (.ci/run installs them)");
    }
    eprintln!("\n*** SKIPPED {test}: {missing:?} not installed ***\n");
    false
}

/// Every decision's value in the LAPI, with how often it appears.
fn decision_counts(lapi: &Lapi) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for (v, _) in lapi.decisions() {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// Every alert's (source value, scenario), as `cscli alerts list -a` lists them.
fn alert_sources(lapi: &Lapi) -> Vec<(String, String)> {
    lapi.alerts()
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["source"]["value"].as_str().unwrap_or("").to_string(),
                a["scenario"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn no_panic(hosts: &[&Host]) {
    for h in hosts {
        let lines = h.run.log.lines();
        assert!(
            lines.iter().all(|l| !l.contains("panicked")),
            "{}: {lines:#?}",
            h.name
        );
    }
}

/// The LAPI's database: SQLite (crowdsec's default) or PostgreSQL (what CrowdSec documents
/// for a fleet; issue 20), started by the test in the LAPI's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

/// The scenario runs on SQLite and on PostgreSQL at once (two LAPIs, two fleets in
/// namespaces of their own), so its slow phases (the 30 s outage) cost the suite once.
#[test]
fn a_fleet_of_three_shares_its_blocks_through_the_real_lapi() {
    let test = "a_fleet_of_three_shares_its_blocks_through_the_real_lapi";
    if !ready(test) {
        return;
    }
    let runs: Vec<_> = [Db::Sqlite, Db::Postgres]
        .into_iter()
        .map(|db| {
            std::thread::Builder::new()
                .name(format!("{db:?}"))
                .spawn(move || fleet_scenario(db))
                .unwrap()
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join()).collect();
    for r in results {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
}

/// The LAPI of `db` in namespace `ns`, listening on `listen` (the PostgreSQL server with it).
fn lapi_on(db: Db, ns: &str, listen: &str, metrics: bool) -> (Lapi, Option<Postgres>) {
    match db {
        Db::Sqlite => (
            Lapi::start_opts(
                ns,
                listen,
                &crowdsec::Options {
                    db_config: None,
                    metrics: metrics.then(|| "127.0.0.1:6060".parse().unwrap()),
                    ..Default::default()
                },
            ),
            None,
        ),
        Db::Postgres => {
            let pg = Postgres::start(ns, postgres::Durability::Fast);
            let lapi = Lapi::start_opts(
                ns,
                listen,
                &crowdsec::Options {
                    db_config: Some(pg.db_config()),
                    metrics: metrics.then(|| "127.0.0.1:6060".parse().unwrap()),
                    ..Default::default()
                },
            );
            (lapi, Some(pg))
        }
    }
}

fn fleet_scenario(db: Db) {
    let t = Topology::new();
    let (mut lapi, pg) = lapi_on(db, &t.lapi, LAPI, false);
    let a = Host::start(&t, &lapi, "a", &[]);
    let b = Host::start(&t, &lapi, "b", &[]);
    let c = Host::start(&t, &lapi, "c", &[IGNORED]);
    let mut d = FirewallBouncer::start(t.ns("d"), &lapi, "fw-d", "1s");
    // Scanner addresses: the scan (.10, ::10, already there), a control that never scans,
    // 200 scanners for the outage, one for the wrong password.
    let (s4, s6) = (v4(10), v6(10));
    let (ctl4, ctl6) = (v4(11), v6(11));
    let outage: Vec<String> = (0..100)
        .map(|i| v4(21 + i))
        .chain((0..100).map(|i| v6(0x1_0000 + i)))
        .collect();
    let late = v4(230);
    let mut all = vec![ctl4.clone(), ctl6.clone(), late.clone()];
    all.extend(outage.iter().cloned());
    t.scanner_addresses(&all);
    for h in ["a", "b", "c", "d"] {
        assert!(t.flows(&s4, h) && t.flows(&s6, h), "{h} reachable before");
    }

    scan_of_a_blocks_the_scanner_everywhere(
        &t,
        &lapi,
        &[&a, &b, &c],
        &mut d,
        &s4,
        &s6,
        &ctl4,
        &ctl6,
    );
    if let Some(pg) = &pg {
        // The LAPI keeps its decisions in PostgreSQL, not in a file of its own.
        let n: u64 = pg
            .psql_in(postgres::DATABASE, "SELECT count(*) FROM decisions")
            .trim()
            .parse()
            .unwrap();
        assert!(n >= 2, "{n} decisions in PostgreSQL");
        assert!(!lapi.dir.path().join("data/crowdsec.db").exists());
    }
    protected_and_ignored_addresses_are_not_applied(&t, &lapi, &b, &c);
    a_deleted_decision_goes_from_every_set(&t, &lapi, &s4);
    an_outage_of_30_s_loses_and_duplicates_nothing(&t, &mut lapi, &a, &b, &c, &outage);
    a_bad_file_refuses_a_reload_and_a_wrong_password_is_a_clear_error(&t, &lapi, &b, &c, &late);
    no_panic(&[&a, &b, &c]);
    drop(d);
    eprintln!("fleet: the scenario passed on {db:?}");
}

/// The running scenario's database, for what it prints.
fn who() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// `portsentry blocked list` on host `h`.
fn blocked_list(h: &Host) -> String {
    let o = sh(&format!(
        "ip netns exec {} {} blocked -c {} --pidfile {} list",
        h.run.ns,
        common::BIN,
        h.run.p("portsentry.conf").display(),
        h.run.p("portsentry.pid").display()
    ));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[allow(clippy::too_many_arguments)]
fn scan_of_a_blocks_the_scanner_everywhere(
    t: &Topology,
    lapi: &Lapi,
    hosts: &[&Host; 3],
    d: &mut FirewallBouncer,
    s4: &str,
    s6: &str,
    ctl4: &str,
    ctl6: &str,
) {
    let [a, _, _] = hosts;
    let t0 = Instant::now();
    t.nmap_syn(s4, "a");
    t.nmap_syn(s6, "a");
    a.wait_log(
        &format!(
            "attackalert: Host {s4} has been blocked via nftables set inet portsentry blocked4"
        ),
        10,
    );
    a.wait_log(
        &format!(
            "attackalert: Host {s6} has been blocked via nftables set inet portsentry blocked6"
        ),
        10,
    );
    // The alert, listed by `cscli alerts list -a` with our scenario and the scanner's
    // address; its decision by `cscli decisions list -a`.
    eventually("both alerts in the LAPI", 20, || {
        let v = alert_sources(lapi);
        v.contains(&(s4.into(), SYN_SCAN.into())) && v.contains(&(s6.into(), SYN_SCAN.into()))
    });
    let listed = lapi.cscli(&["alerts", "list", "-a"]);
    assert!(listed.contains(SYN_SCAN) && listed.contains(s4), "{listed}");
    let decisions = lapi.decisions();
    for s in [s4, s6] {
        assert!(
            decisions.contains(&(s.to_string(), SYN_SCAN.to_string())),
            "{decisions:?}"
        );
    }
    // B and C drop the scanner's packets (v4 and v6), not the control's.
    // 40 s: a decision the LAPI's stream missed is read again within 35 s (doc/fleets.md, "Pulled
    // bans").
    eventually("the scanner in B's and C's fleet sets", 40, || {
        ["b", "c"]
            .iter()
            .all(|h| t.in_fleet_set(h, s4) && t.in_fleet_set(h, s6))
    });
    eprintln!(
        "fleet ({}): scan of A to both addresses in B's and C's sets: {} ms",
        who(),
        t0.elapsed().as_millis()
    );
    for h in ["b", "c"] {
        assert!(
            !t.flows(s4, h) && !t.flows(s6, h),
            "{h} still lets the scanner in"
        );
        assert!(
            t.flows(ctl4, h) && t.flows(ctl6, h),
            "{h} drops the control too"
        );
    }
    // A pulls its own decision back too (fleet4), beside its local block (blocked4).
    eventually("A's fleet sets", 40, || {
        t.in_fleet_set("a", s4) && t.in_fleet_set("a", s6)
    });
    // `portsentry status` on A shows the link (issue 13's "fleet link state").
    eventually(
        "A's status shows the fleet link up with its alerts sent",
        10,
        || {
            let out = std::process::Command::new(common::BIN)
                .args(["status", "--json", "--pidfile"])
                .arg(hosts[0].run.p("portsentry.pid"))
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let f = &v["fleet"];
            f["up"] == true && f["sent"].as_u64() >= Some(2) && f["decisions"].as_u64() >= Some(2)
        },
    );
    // `portsentry blocked list` on B: origin crowdsec.
    let listing = blocked_list(hosts[1]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(s4) && l.trim_end().ends_with("crowdsec")),
        "{listing}"
    );
    // The documented alternative: Debian's crowdsec-firewall-bouncer on D blocks the
    // scanner portsentry pushed.
    let t1 = Instant::now();
    let in_d = || {
        t.missing("d", "ip crowdsec", "crowdsec-blacklists", &[s4.to_string()])
            .is_empty()
            && t.missing(
                "d",
                "ip6 crowdsec6",
                "crowdsec6-blacklists",
                &[s6.to_string()],
            )
            .is_empty()
    };
    let wait_d = || {
        let t2 = Instant::now();
        while !in_d() && t2.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        in_d()
    };
    if !wait_d() {
        // The LAPI's stream race (doc/fleets.md, "Pulled bans"): crowdsec-firewall-bouncer never
        // re-reads the stream, only its start does.
        eprintln!(
            "NOTE: crowdsec-firewall-bouncer missed the decision (crowdsec 1.4.6's stream race); restarting it once"
        );
        d.restart();
        assert!(
            wait_d(),
            "crowdsec-firewall-bouncer never applied it:\n{}",
            d.log()
        );
    }
    eprintln!(
        "fleet ({}): crowdsec-firewall-bouncer on D had both {} ms after B and C",
        who(),
        t1.elapsed().as_millis()
    );
    assert!(
        !t.flows(s4, "d") && !t.flows(s6, "d"),
        "D lets the scanner in"
    );
    assert!(t.flows(ctl4, "d"), "D drops the control too");
}

fn protected_and_ignored_addresses_are_not_applied(t: &Topology, lapi: &Lapi, b: &Host, c: &Host) {
    let b4 = v4(Topology::num("b"));
    for ip in [b4.as_str(), IGNORED] {
        lapi.cscli(&[
            "decisions",
            "add",
            "--ip",
            ip,
            "--duration",
            "1h",
            "--reason",
            "test",
        ]);
    }
    b.wait_log(
        &format!("(ban {b4}, test) not applied: {b4} is an address of this host"),
        10,
    );
    c.wait_log(
        &format!("(ban {IGNORED}, test) not applied: {IGNORED} is in the ignore file"),
        10,
    );
    // Applied where they are neither: B's address on C, C's ignored address on B.
    eventually("applied on the other host", 40, || {
        t.in_fleet_set("c", &b4) && t.in_fleet_set("b", IGNORED)
    });
    assert!(!t.in_fleet_set("b", &b4) && !t.in_fleet_set("c", IGNORED));
    // Logged once, though the stream is read every second.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(b.run.log.count(&format!("(ban {b4}, test) not applied")), 1);
    for ip in [b4.as_str(), IGNORED] {
        lapi.cscli(&["decisions", "delete", "--ip", ip]);
    }
    // Deletions come with the stream, read every 10 s while the pulls list (fleet::resync).
    eventually("the test decisions gone", 20, || {
        !t.in_fleet_set("c", &b4) && !t.in_fleet_set("b", IGNORED)
    });
}

fn a_deleted_decision_goes_from_every_set(t: &Topology, lapi: &Lapi, s4: &str) {
    lapi.cscli(&["decisions", "delete", "--ip", s4]);
    eventually(
        "the deleted decision gone from A's, B's and C's fleet4",
        20,
        || ["a", "b", "c"].iter().all(|h| !t.in_fleet_set(h, s4)),
    );
    assert!(
        t.flows(s4, "b") && t.flows(s4, "c"),
        "B and C let it in again"
    );
    // A still blocks it: its own block is local (blocked4), not the fleet's.
    assert!(!t.flows(s4, "a"));
    eventually("gone from crowdsec-firewall-bouncer's set too", 10, || {
        !t.missing("d", "ip crowdsec", "crowdsec-blacklists", &[s4.to_string()])
            .is_empty()
    });
}

/// The issue's outage: the LAPI stopped for 30 s (the real figure: long enough for the
/// push's back-off to reach 16 s and for every host's pull to fail many times).
fn an_outage_of_30_s_loses_and_duplicates_nothing(
    t: &Topology,
    lapi: &mut Lapi,
    a: &Host,
    b: &Host,
    c: &Host,
    outage: &[String],
) {
    const OUTAGE: Duration = Duration::from_secs(30);
    let t0 = Instant::now();
    lapi.pause();
    // 200 distinct scanners (100 v4, 100 v6) probe A over the first 20 s, 10 a second.
    for chunk in outage.chunks(10) {
        let tc = Instant::now();
        for src in chunk {
            t.probe(src, "a");
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tc.elapsed()));
    }
    a.wait_log("alerts wait in the spool and are sent when it is back", 10);
    b.wait_log("no decisions are pulled until it is back", 10);
    // A blocked every one of them locally meanwhile.
    let (o4, o6): (Vec<String>, Vec<String>) =
        outage.iter().cloned().partition(|s| !s.contains(':'));
    eventually("A blocked all 200 locally", 10, || {
        t.missing("a", "inet portsentry", "blocked4", &o4)
            .is_empty()
            && t.missing("a", "inet portsentry", "blocked6", &o6)
                .is_empty()
    });
    assert!(
        t0.elapsed() < OUTAGE,
        "the probes took longer than the outage"
    );
    std::thread::sleep(OUTAGE.saturating_sub(t0.elapsed()));
    let down = t0.elapsed();
    lapi.resume();
    let t1 = Instant::now();
    let absent = |lapi: &Lapi| -> Vec<String> {
        let m = decision_counts(lapi);
        outage
            .iter()
            .filter(|s| !m.contains_key(*s))
            .cloned()
            .collect()
    };
    within_secs(90, || absent(lapi).is_empty());
    let left = absent(lapi);
    assert!(
        left.is_empty(),
        "not all 200 in the LAPI within 90 s: {} missing, e.g. {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    let in_lapi = t1.elapsed();
    // Every one exactly once (a resent request would show twice).
    std::thread::sleep(Duration::from_secs(3));
    let m = decision_counts(lapi);
    let twice: Vec<&String> = outage.iter().filter(|s| m.get(*s) != Some(&1)).collect();
    assert!(twice.is_empty(), "not exactly once: {twice:?}");
    let lacking = || -> Vec<(&str, String)> {
        let mut v = Vec::new();
        for h in ["b", "c"] {
            for m in t.missing(h, "inet portsentry", "fleet4", &o4) {
                v.push((h, m));
            }
            for m in t.missing(h, "inet portsentry", "fleet6", &o6) {
                v.push((h, m));
            }
        }
        v
    };
    let t2 = Instant::now();
    while !lacking().is_empty() && t2.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let l = lacking();
    assert!(
        l.is_empty(),
        "not in the fleet sets: {l:?}\nC log:\n{}\nC fleet6: {}",
        c.run.log.lines().join("\n"),
        t.list_set("c", "fleet6")
    );
    eprintln!(
        "fleet ({}): LAPI down {} ms; all 200 in the LAPI {} ms after it came back, in B's and C's sets {} ms after",
        who(),
        down.as_millis(),
        in_lapi.as_millis(),
        t1.elapsed().as_millis()
    );
    a.wait_log("alerts waiting are being sent", 10);
    b.wait_log("pulling decisions again", 10);
    c.wait_log("pulling decisions again", 10);
}

fn a_bad_file_refuses_a_reload_and_a_wrong_password_is_a_clear_error(
    t: &Topology,
    lapi: &Lapi,
    b: &Host,
    c: &Host,
    late: &str,
) {
    use std::os::unix::fs::PermissionsExt;
    let creds = c.run.p("lapi.yaml");
    let mode = |m: u32| {
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(m)).unwrap();
    };
    // A credentials file others can read: the reload is refused, naming file and reason.
    mode(0o644);
    c.run.signal(nix::sys::signal::Signal::SIGHUP);
    c.wait_log(
        &format!(
            "adminalert: ERROR: new configuration rejected, keeping the old one: CROWDSEC_CREDENTIALS: {}: readable by other users (mode 0644)",
            creds.display()
        ),
        10,
    );
    mode(0o600);
    // A wrong password (a reload takes it): a clear error; detection and local blocking go on.
    let good = std::fs::read_to_string(&creds).unwrap();
    std::fs::write(&creds, good.replace("pw-c-0123456789", "wrong-password")).unwrap();
    c.run.signal(nix::sys::signal::Signal::SIGHUP);
    c.wait_log("adminalert: PortSentry reloaded its configuration.", 10);
    t.probe(late, "c");
    c.wait_log(
        &format!(
            "attackalert: Host {late} has been blocked via nftables set inet portsentry blocked4"
        ),
        10,
    );
    c.wait_log(
        &format!(
            "adminalert: ERROR: CrowdSec LAPI http://{LAPI} refused the login of machine \"ps-c\" (HTTP 401"
        ),
        15,
    );
    assert!(!t.flows(late, "c"), "C blocks it locally");
    let history = c.run.read("portsentry.history");
    assert!(
        history.contains(&format!("/{late} Port: {PORT} TCP Blocked")),
        "{history}"
    );
    let lines = c.run.log.lines();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("wrong-password") && !l.contains("pw-c-")),
        "a password in the log"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !decision_counts(lapi).contains_key(late),
        "sent with a wrong password?"
    );
    // Fixed and reloaded: the alert that waited goes, and reaches B.
    std::fs::write(&creds, good).unwrap();
    c.run.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("the waiting alert in the LAPI", 15, || {
        decision_counts(lapi).get(late) == Some(&1)
    });
    eventually("and in B's fleet set", 40, || t.in_fleet_set("b", late));
    let _ = b;
}

#[test]
fn a_credentials_file_others_can_read_stops_start_up_and_fails_check() {
    let test = "a_credentials_file_others_can_read_stops_start_up_and_fails_check";
    if !privileged(test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let net = Net::new();
    let run = Run::new(&net.target);
    let creds = run.p("lapi.yaml");
    std::fs::write(
        &creds,
        "url: http://192.0.2.1:8080/\nlogin: web1\npassword: secret-pw-123\n",
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    run.write_config(&format!(
        "TCP_PORTS=\"{PORT}\"\nCROWDSEC_CREDENTIALS=\"{}\"\n",
        creds.display()
    ));
    let why = format!(
        "CROWDSEC_CREDENTIALS: {}: readable by other users (mode 0644); it holds a secret: chmod 600 it",
        creds.display()
    );
    let o = run.start(&["-tcp"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "started with an exposed credentials file"
    );
    assert!(stderr.contains(&why), "{stderr}");
    run.log.wait_line(&format!("adminalert: ERROR: {why}"));
    assert!(run.pid().is_none(), "no daemon");
    let check = || {
        std::process::Command::new(common::BIN)
            .args(["--check", "-tcp", "-c"])
            .arg(run.p("portsentry.conf"))
            .output()
            .unwrap()
    };
    let o = check();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error: {why}")), "{err}");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = check();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("fleet: push to http://192.0.2.1:8080 as machine \"web1\""),
        "{out}"
    );
    // Plain http to another host: a warning (issue 24), not an error.
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(&format!(
            "warning: CrowdSec LAPI http://192.0.2.1:8080 (the url of {}) is plain http to another host: the bouncer key, the machine's password and its login token cross the network unencrypted",
            creds.display()
        )),
        "{err}"
    );
    for text in [out, err, stderr.into_owned(), run.log.lines().join("\n")] {
        assert!(
            !text.contains("secret-pw"),
            "the password was printed: {text}"
        );
    }
}

// -- The fleet thread driven directly (a LAPI and one host namespace) ------------------------

/// A LAPI namespace and a host namespace joined by a veth pair.
struct Pair {
    lapi: String,
    host: String,
    /// The LAPI side's veth.
    lapi_dev: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let id = format!("{}{tag}", std::process::id() % 100000);
        let p = Pair {
            lapi: format!("pfl{id}"),
            host: format!("pfh{id}"),
            lapi_dev: format!("vl{id}"),
        };
        must(&format!(
            "ip netns add {l} && ip netns add {h} && \
             ip link add vl{id} netns {l} type veth peer name vh{id} netns {h} && \
             ip -n {l} link set lo up && ip -n {h} link set lo up && \
             ip -n {l} addr add {LAPI4}/24 dev vl{id} && ip -n {h} addr add {HOST4}/24 dev vh{id} && \
             ip -n {h} addr add {HOST6}/64 dev vh{id} nodad && \
             ip -n {l} link set vl{id} up && ip -n {h} link set vh{id} up",
            l = p.lapi,
            h = p.host
        ));
        p
    }

    /// Runs `f` on a thread inside the host namespace (threads it starts stay there).
    fn in_host<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.host);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.lapi, self.host
        ));
    }
}

/// The daemon's settings for this host, read through `fleet::load` like the daemon does.
fn settings(dir: &Path, extra: &str) -> Settings {
    let conf = format!(
        "IGNORE_FILE=\"{d}/ignore\"\nHISTORY_FILE=\"{d}/portsentry.history\"\nBLOCKED_FILE=\"{d}/blocked\"\nBLOCK_METHOD=\"nftables\"\nBLOCK_TCP=\"1\"\nBLOCK_TIMEOUT=\"600\"\n{extra}",
        d = dir.display()
    );
    std::fs::write(dir.join("ignore"), "192.0.2.200\n").unwrap();
    let p = portsentry::config::parse(conf.as_bytes(), Path::new("/test.conf"));
    assert!(
        !portsentry::config::has_errors(&p.diagnostics),
        "{:?}",
        p.diagnostics
    );
    let cfg: Config = p.config;
    assert_eq!(cfg.block_method, BlockMethod::Nftables);
    fleet::load(&cfg)
        .expect("fleet settings")
        .expect("fleet on")
}

/// A fleet thread driven the way the event loop drives it, from the host namespace.
struct Direct {
    fleet: Arc<Mutex<Option<Fleet>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Direct {
    fn start(pair: &Pair, s: Settings) -> Direct {
        let f = pair.in_host(move || {
            portsentry::sys::block::nftables::setup(1 << 20).expect("nft table");
            Fleet::start(s).expect("fleet start")
        });
        Direct {
            fleet: Arc::new(Mutex::new(Some(f))),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn block(&self, ip: &str) {
        let mut g = self.fleet.lock().unwrap();
        let f = g.as_mut().unwrap();
        f.record_block(
            portsentry_epoch_ms(),
            ip.parse().unwrap(),
            11,
            Mode::Stcp,
            Scan::TcpSyn,
        );
    }

    fn flush(&self) {
        self.fleet.lock().unwrap().as_mut().unwrap().flush();
    }

    fn lines(&self) -> Vec<String> {
        if let Some(f) = self.fleet.lock().unwrap().as_mut() {
            let new = f.take_log();
            for l in &new {
                eprintln!("fleet: {l}");
            }
            self.log.lock().unwrap().extend(new);
        }
        self.log.lock().unwrap().clone()
    }

    fn wait_log(&self, part: &str, secs: u64) {
        eventually(&format!("log line with {part:?}"), secs, || {
            self.lines().iter().any(|l| l.contains(part))
        });
    }

    fn stop(&self) {
        if let Some(f) = self.fleet.lock().unwrap().take() {
            f.shutdown();
        }
    }
}

fn portsentry_epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_request_cut_off_by_kill_9_is_not_sent_twice() {
    if !ready("a_request_cut_off_by_kill_9_is_not_sent_twice") {
        return;
    }
    use portsentry::fleet::alert::{Numbered, Planned, Record, body};
    use portsentry::fleet::spool as fmt;
    let pair = Pair::new("c");
    let lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let dir = tempfile::tempdir().unwrap();
    lapi.machine("host-c", "pw-c-123456789", &dir.path().join("lapi.yaml"));
    let s = settings(
        dir.path(),
        &format!(
            "CROWDSEC_CREDENTIALS=\"{}/lapi.yaml\"\n",
            dir.path().display()
        ),
    );
    // The spool a daemon killed with -9 leaves behind: five records, a request for all five
    // announced (`S`), no `A` line. The LAPI got the first three of them (a LAPI that failed
    // half-way, or a 201 whose `A` line was never written).
    let recs: Vec<Numbered> = (1..=5u64)
        .map(|i| Numbered {
            seq: i,
            record: Record {
                epoch_ms: portsentry_epoch_ms(),
                ip: format!("192.0.2.{i}").parse().unwrap(),
                port: 11,
                mode: Mode::Stcp,
                scan: Scan::TcpSyn,
                ban_s: 600,
            },
        })
        .collect();
    let mut spool = fmt::header("deadbeef00000001");
    for r in &recs {
        spool.push_str(&fmt::record_line(r));
    }
    spool.push_str(&fmt::sent_line(1, 5));
    let p = s.push.as_ref().unwrap();
    std::fs::write(&p.spool_path, spool).unwrap();
    let (url, auth) = (p.creds.url.clone(), p.creds.auth.clone());
    let pre = body(
        "deadbeef00000001",
        &recs[..3]
            .iter()
            .map(|r| Planned::Single(*r))
            .collect::<Vec<_>>(),
    );
    pair.in_host(move || {
        let c = portsentry::sys::fleet::http::Client::new(url, &Default::default()).unwrap();
        let t = c.login(&auth).unwrap();
        c.post_alerts(&t, &pre).unwrap();
    });
    let host = Direct::start(&pair, s);
    host.wait_log("the LAPI has 3 of its alerts, 2 are sent again", 15);
    eventually("five alerts", 10, || alert_sources(&lapi).len() == 5);
    std::thread::sleep(Duration::from_secs(2));
    let mut v: Vec<String> = alert_sources(&lapi).into_iter().map(|x| x.0).collect();
    v.sort();
    assert_eq!(
        v,
        [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5"
        ]
    );
    host.stop();
}

#[test]
fn a_forged_flood_of_10000_sources_reaches_the_lapi_whole_in_few_alerts() {
    let test = "a_forged_flood_of_10000_sources_reaches_the_lapi_whole_in_few_alerts";
    if !ready(test) {
        return;
    }
    // 10,000 forged sources from one /64.
    forged_flood("e", "one /64", |i| format!("2001:db8:3::{:x}", i + 1));
}

#[test]
fn a_forged_flood_from_10000_prefixes_reaches_the_lapi_whole_in_few_alerts() {
    let test = "a_forged_flood_from_10000_prefixes_reaches_the_lapi_whole_in_few_alerts";
    if !ready(test) {
        return;
    }
    // 10,000 forged sources, each from a prefix of its own: per loop turn 50 from distinct
    // IPv6 /64s, 50 from distinct IPv4 /24s spread over 1.x to 223.x (their covering
    // network is 0.0.0.0/0). One alert per prefix would be 10,000 alerts; the families'
    // covering flood alerts keep them few.
    forged_flood("m", "5000 /64s and 5000 /24s", |i| {
        if i % 100 < 50 {
            format!("2001:db8:{:x}::1", 0x100 + i)
        } else {
            format!("{}.{}.7.1", 1 + i % 223, (i / 223) % 256)
        }
    });
}

/// 10,000 sources (`addr(0..10000)`) blocked as a flooded loop records them (100 per turn),
/// pushed through the real LAPI: every decision arrives, in no more alerts than the limits
/// allow, and the limits' summary line is logged.
fn forged_flood(tag: &str, what: &str, addr: impl Fn(u32) -> String) {
    let pair = Pair::new(tag);
    let lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let dir = tempfile::tempdir().unwrap();
    lapi.machine("host-e", "pw-e-123456789", &dir.path().join("lapi.yaml"));
    let s = settings(
        dir.path(),
        &format!(
            "CROWDSEC_CREDENTIALS=\"{}/lapi.yaml\"\n",
            dir.path().display()
        ),
    );
    let host = Direct::start(&pair, s);
    host.wait_log("pushing alerts", 5);
    let t0 = Instant::now();
    for turn in 0..100u32 {
        for i in 0..100u32 {
            host.block(&addr(turn * 100 + i));
        }
        host.flush();
    }
    let recorded = t0.elapsed();
    eventually("10,000 decisions in the LAPI", 120, || {
        host.fleet.lock().unwrap().as_ref().unwrap().status().sent >= 10_000
    });
    let delivered = t0.elapsed();
    let d = lapi.decisions();
    let mut v: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    let alerts = lapi.alerts().as_array().map_or(0, |a| a.len());
    eprintln!(
        "BENCH fleet flood ({what}): 10000 records in {:.0} ms, all delivered after {:.0} ms, {} decisions ({} distinct) in {alerts} alerts",
        recorded.as_secs_f64() * 1000.0,
        delivered.as_secs_f64() * 1000.0,
        d.len(),
        v.len()
    );
    assert_eq!((d.len(), v.len()), (10_000, 10_000));
    // The limits' bound: the global burst of 200 single alerts, then at most 20 a second,
    // plus at most 2 flood alerts (one per family) per request and 4 requests a second.
    // One alert per forged prefix would be about 10,000.
    let secs = delivered.as_secs() + 1;
    let bound = 200 + (20 + 2 * 4) * secs as usize;
    assert!(
        alerts <= bound,
        "the flood must not swamp the alert list: {alerts} alerts, more than {bound}"
    );
    host.wait_log("Fleet alert limit: ", 15);
    host.stop();
}

// -- Benchmark (printed, not timed; `bench/fleet.sh` runs it on a release build) --------------

/// Median and max (0, 0 for none).
fn median_max(v: &mut [u128]) -> (u128, u128) {
    v.sort_unstable();
    (
        v.get(v.len() / 2).copied().unwrap_or(0),
        v.last().copied().unwrap_or(0),
    )
}

/// Issue 12's benchmark, on the scenario's namespaces: (1) scan to "dropped on the other
/// hosts": 20 scanners (10 v4, 10 v6) probe A one at a time, each at a random moment of the
/// pull interval; `nft monitor` on B, C and D timestamps the element's arrival in their sets
/// (a set element is what drops the packets; the scenario test checks that it does).
/// (2) a forged flood of 10,000 distinct IPv6 sources (one /64, raw SYNs from the scanner)
/// at A: time until all are in the LAPI, in B's, C's and D's sets; A's CPU and peak RSS,
/// the LAPI's CPU, B's CPU.
#[test]
#[ignore = "benchmark: bench/fleet.sh"]
fn bench_fleet() {
    if !ready("bench_fleet") {
        return;
    }
    let t = Topology::new();
    let lapi = Lapi::start(&t.lapi, LAPI);
    let a = Host::start(&t, &lapi, "a", &[]);
    let b = Host::start(&t, &lapi, "b", &[]);
    let c = Host::start(&t, &lapi, "c", &[]);
    let d = FirewallBouncer::start(t.ns("d"), &lapi, "fw-d", "1s");
    let scanners: Vec<String> = (0..20u32)
        .map(|i| if i % 2 == 0 { v4(31 + i) } else { v6(0x31 + i) })
        .collect();
    t.scanner_addresses(&scanners);
    let mons: Vec<(&str, Monitor)> = ["b", "c", "d"]
        .iter()
        .map(|h| (*h, Monitor::start(t.ns(h))))
        .collect();
    let set_of = |h: &str, ip: &str| match (h, ip.contains(':')) {
        ("d", false) => "crowdsec-blacklists",
        ("d", true) => "crowdsec6-blacklists",
        (_, false) => "fleet4",
        (_, true) => "fleet6",
    };
    let mut rng = common::Rng(0x5eed_f1ee7);
    let (mut both, mut per): (Vec<u128>, [Vec<u128>; 3]) = (Vec::new(), Default::default());
    let mut local = Vec::new();
    let mut d_missed: Vec<String> = Vec::new();
    for s in &scanners {
        std::thread::sleep(Duration::from_millis(rng.below(1000)));
        let t0 = Instant::now();
        t.probe(s, "a");
        let blocked = format!(
            "attackalert: Host {s} has been blocked via nftables set inet portsentry {}",
            if s.contains(':') {
                "blocked6"
            } else {
                "blocked4"
            }
        );
        // B and C heal a missed decision by re-reading the stream (within 35 s, see
        // `fleet::stream::Resync`); D, crowdsec-firewall-bouncer, never does: a miss there is
        // counted, not waited for.
        let when = |i: usize| {
            let (h, m) = &mons[i];
            m.added(set_of(h, s), s, t0)
        };
        while (0..3).any(|i| when(i).is_none()) && t0.elapsed() < Duration::from_secs(40) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            when(0).is_some() && when(1).is_some(),
            "{s} never reached B and C; their nft monitor lines: {:#?}\nA's log: {:#?}",
            mons.iter().map(|(h, m)| (h, m.all())).collect::<Vec<_>>(),
            a.run.log.lines()
        );
        let ms = |i: usize| when(i).map(|x| (x - t0).as_millis());
        let (tb, tc) = (ms(0).unwrap_or(0), ms(1).unwrap_or(0));
        both.push(tb.max(tc));
        per[0].push(tb);
        per[1].push(tc);
        match ms(2) {
            Some(x) => per[2].push(x),
            None => d_missed.push(s.clone()),
        }
        if let Some(x) = a.run.log.arrival_containing(&blocked) {
            local.push(x.saturating_duration_since(t0).as_millis());
        }
    }
    let (lm, lx) = median_max(&mut local);
    let (bm, bx) = median_max(&mut both);
    let [pb, pc, pd] = &mut per;
    let ((bbm, bbx), (ccm, ccx), (ddm, ddx)) = (median_max(pb), median_max(pc), median_max(pd));
    println!(
        "BENCH fleet latency (20 scanners, pull every 1 s): blocked on A: median {lm} ms, max {lx} ms; \
         dropped on both B and C: median {bm} ms, max {bx} ms (B {bbm}/{bbx}, C {ccm}/{ccx}); \
         crowdsec-firewall-bouncer on D (update_frequency 1s): median {ddm} ms, max {ddx} ms, \
         never (40 s): {d_missed:?}"
    );

    // (2) The forged flood.
    t.scanner_neighbours("a");
    let n = 10_000u32;
    let forged: Vec<String> = (1..=n)
        .map(|i| format!("2001:db8:3::{:x}:{:x}", i >> 16, i & 0xffff))
        .collect();
    let (apid, bpid, lpid) = (a.pid(), b.pid(), lapi.pid().expect("LAPI pid"));
    let (a0, b0, l0) = (cpu_ms(apid), cpu_ms(bpid), cpu_ms(lpid));
    let t0 = Instant::now();
    must(&format!(
        "ip netns exec {} python3 {}/bench/probe.py burst 2001:db8:3::1 {n} {} {PORT} 30 tcp",
        t.scanner,
        env!("CARGO_MANIFEST_DIR"),
        v6(Topology::num("a"))
    ));
    let sent = t0.elapsed();
    // Counted through the LAPI's own API (cscli on 10,000 decisions takes seconds).
    let key = std::fs::read_to_string(b.run.p("bouncer.key")).unwrap();
    let in_lapi = || -> usize {
        let o = sh(&format!(
            "ip netns exec {} curl -s -H 'X-Api-Key: {}' 'http://{LAPI}/v1/decisions?range=2001:db8:3::/64&contains=false'",
            t.lapi,
            key.trim()
        ));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let mut t_lapi = None;
    let mut t_host: [Option<Duration>; 3] = [None; 3];
    let mut a_cpu_at_lapi = 0;
    let hosts = [
        ("b", "inet portsentry", "fleet6"),
        ("c", "inet portsentry", "fleet6"),
        ("d", "ip6 crowdsec6", "crowdsec6-blacklists"),
    ];
    let cpu = || (cpu_ms(apid) - a0, cpu_ms(bpid) - b0, cpu_ms(lpid) - l0);
    // CPU when the LAPI, B and C have all (the portsentry side is done), and over the 30 s
    // from the flood's start (A also pulls its own 10,000 bans back into its fleet set, and
    // the pulls re-read the whole stream once after it). D is waited for up to 180 s.
    let (mut done_cpu, mut cpu30) = (None, None);
    while t0.elapsed() < Duration::from_secs(180)
        && (cpu30.is_none() || t_lapi.is_none() || t_host.iter().any(Option::is_none))
    {
        if t_lapi.is_none() && in_lapi() >= n as usize {
            t_lapi = Some(t0.elapsed());
            a_cpu_at_lapi = cpu_ms(apid) - a0;
        }
        for (i, (h, table, set)) in hosts.iter().enumerate() {
            if t_host[i].is_none() && t.missing(h, table, set, &forged).is_empty() {
                t_host[i] = Some(t0.elapsed());
            }
        }
        if done_cpu.is_none() && t_lapi.is_some() && t_host[0].is_some() && t_host[1].is_some() {
            done_cpu = Some(cpu());
        }
        if cpu30.is_none() && t0.elapsed() >= Duration::from_secs(30) {
            cpu30 = Some(cpu());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (a1, b1, l1) = done_cpu.unwrap_or_default();
    let (a30, b30, l30) = cpu30.unwrap_or_default();
    let (rss, hwm) = rss_kib(apid);
    let ms = |x: Option<Duration>| {
        x.map_or("never (180 s)".to_string(), |d| {
            format!("{} ms", d.as_millis())
        })
    };
    let blocked_on_a = t.missing("a", "inet portsentry", "blocked6", &forged).len();
    println!(
        "BENCH fleet flood: {n} forged sources (one /64) sent in {} ms; blocked on A: {} of {n}; \
         all in the LAPI after {}; in B's set after {}, C's after {}, crowdsec-firewall-bouncer's (D) after {}; \
         CPU until the LAPI, B and C had all: A {} ms ({} ms until all were in the LAPI), B {} ms, LAPI {} ms; \
         CPU over 30 s from the flood's start: A {a30} ms, B {b30} ms, LAPI {l30} ms; \
         A's RSS {} KiB (peak {} KiB); {} alerts in the LAPI",
        sent.as_millis(),
        n as usize - blocked_on_a,
        ms(t_lapi),
        ms(t_host[0]),
        ms(t_host[1]),
        ms(t_host[2]),
        a1,
        a_cpu_at_lapi,
        b1,
        l1,
        rss,
        hwm,
        lapi.alerts().as_array().map_or(0, Vec::len)
    );
    for (i, (h, table, set)) in hosts.iter().enumerate() {
        if t_host[i].is_none() {
            let m = t.missing(h, table, set, &forged);
            println!(
                "{h} lacks {} of the {n}, e.g. {:?}",
                m.len(),
                m.iter().take(5).collect::<Vec<_>>()
            );
        }
    }
    for (h, host) in [("B", &b), ("C", &c)] {
        for l in host
            .run
            .log
            .lines()
            .iter()
            .filter(|l| l.contains("CrowdSec"))
        {
            println!("{h}: {l}");
        }
    }
    for l in a
        .run
        .log
        .lines()
        .iter()
        .filter(|l| l.contains("Fleet alert limit") || l.contains("CrowdSec"))
    {
        println!("A: {l}");
    }
    drop(d);
    no_panic(&[&a, &b, &c]);
}

/// A test PKI made with openssl in `dir`: a CA named `name` and a server certificate it signs
/// for the IP address `ip`. Returns (CA file, server certificate, server key).
fn pki(dir: &Path, name: &str, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let p = |f: &str| d.join(f).display().to_string();
    must(&format!(
        "cd {d} && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout ca.key -out ca.pem -days 2 -subj '/CN={name}' 2>/dev/null && \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout srv.key -out srv.csr -subj '/CN=lapi' 2>/dev/null && \
         printf 'subjectAltName=IP:{ip}\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' >ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out srv.pem -days 2 -extfile ext 2>/dev/null && chmod 644 srv.key",
        d = d.display()
    ));
    (p("ca.pem").into(), p("srv.pem").into(), p("srv.key").into())
}

#[test]
fn alerts_go_over_https_trusting_ca_cert_path_or_the_system_store_and_nothing_else() {
    if !ready("alerts_go_over_https_trusting_ca_cert_path_or_the_system_store_and_nothing_else") {
        return;
    }
    let pair = Pair::new("t");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "portsentry-test-ca", LAPI4);
    let (other_ca, _, _) = pki(dir.path(), "some-other-ca", LAPI4);
    let lapi = Lapi::start_tls(&pair.lapi, &format!("{LAPI4}:8443"), &cert, &key);
    assert_eq!(lapi.url(), format!("https://{LAPI4}:8443"));

    // The credentials file as `cscli machines add` writes it, plus the admin's
    // `ca_cert_path:` line (CrowdSec's own key for it).
    let creds = |host: &str, ca: &Path| {
        let hdir = dir.path().join(host);
        std::fs::create_dir_all(&hdir).unwrap();
        let f = hdir.join("lapi.yaml");
        lapi.machine(host, &format!("pw-{host}-123456789"), &f);
        let mut text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.contains(&format!("url: https://{LAPI4}:8443")),
            "{text}"
        );
        text.push_str(&format!("ca_cert_path: {}\n", ca.display()));
        std::fs::write(&f, text).unwrap();
        settings(
            &hdir,
            &format!("CROWDSEC_CREDENTIALS=\"{}\"\n", f.display()),
        )
    };

    // The CA that signed the LAPI's certificate: the alert arrives.
    let good = Direct::start(&pair, creds("host-t", &ca));
    good.block("192.0.2.71");
    good.flush();
    eventually("the alert over https in the LAPI", 15, || {
        alert_sources(&lapi)
            .iter()
            .any(|(ip, scen)| ip == "192.0.2.71" && scen == SYN_SCAN)
    });
    good.wait_log(&format!("CrowdSec LAPI https://{LAPI4}:8443"), 5);
    assert!(
        good.lines().iter().all(|l| !l.contains("unreachable")),
        "{:#?}",
        good.lines()
    );
    good.stop();

    // Another CA: no exchange at all. The link is reported lost with rustls' reason, the
    // alert waits in the spool, and the LAPI never sees it.
    let bad = Direct::start(&pair, creds("host-u", &other_ca));
    bad.block("192.0.2.72");
    bad.flush();
    bad.wait_log("unreachable", 15);
    let lost = bad
        .lines()
        .into_iter()
        .find(|l| l.contains("unreachable"))
        .unwrap();
    assert!(
        lost.starts_with(&format!("adminalert: CrowdSec LAPI https://{LAPI4}:8443")),
        "{lost}"
    );
    assert!(
        lost.to_lowercase().contains("certificate"),
        "the reason names the certificate: {lost}"
    );
    assert!(lost.contains("alerts wait in the spool"), "{lost}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        alert_sources(&lapi)
            .iter()
            .all(|(ip, _)| ip != "192.0.2.72"),
        "an alert went to a LAPI whose certificate is not trusted"
    );
    bad.stop();

    // No ca_cert_path: the system's CA store decides (`portsentry fleet test`, the login an
    // admin tries first). The machine's store does not hold the test CA: refused, exit 1.
    // The same store with the test CA in it (SSL_CERT_FILE, which replaces the system's
    // file as it does for OpenSSL): the login works.
    let hdir = dir.path().join("host-v");
    std::fs::create_dir_all(&hdir).unwrap();
    let f = hdir.join("lapi.yaml");
    lapi.machine("host-v", "pw-host-v-123456789", &f);
    let conf = hdir.join("portsentry.conf");
    std::fs::write(
        &conf,
        format!(
            "HISTORY_FILE=\"{d}/portsentry.history\"\nBLOCK_METHOD=\"nftables\"\nBLOCK_TCP=\"1\"\nCROWDSEC_CREDENTIALS=\"{f}\"\n",
            d = hdir.display(),
            f = f.display()
        ),
    )
    .unwrap();
    let fleet_test = |ca_file: Option<&Path>| {
        let mut c = std::process::Command::new("ip");
        c.args([
            "netns",
            "exec",
            &pair.host,
            common::BIN,
            "fleet",
            "test",
            "-c",
        ])
        .arg(&conf)
        .env_remove("SSL_CERT_DIR")
        .env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca_file {
            c.env("SSL_CERT_FILE", ca);
        }
        let o = c.output().unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (code, out) = fleet_test(None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "fleet: https: the LAPI's certificate is checked against the system's CA store"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "fleet: login to https://{LAPI4}:8443 as \"host-v\" FAILED:"
        )) && (out.contains("UnknownIssuer") || out.contains("No CA certificates")),
        "{out}"
    );
    let (code, out) = fleet_test(Some(&ca));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "fleet: login to https://{LAPI4}:8443 as \"host-v\": OK"
        )),
        "{out}"
    );
    // With `ca_cert_path` the store does not matter: that CA alone (the store given here
    // trusts the LAPI, the other CA in `ca_cert_path` does not: refused).
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str(&format!("ca_cert_path: {}\n", ca.display()));
    std::fs::write(&f, &text).unwrap();
    let (code, out) = fleet_test(None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "fleet: https: the LAPI's certificate must come from the CA of {}",
            ca.display()
        )),
        "{out}"
    );
    std::fs::write(
        &f,
        text.replace(&ca.display().to_string(), &other_ca.display().to_string()),
    )
    .unwrap();
    let (code, out) = fleet_test(Some(&ca));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");

    // The daemon takes a changed system store at its next reload (`update-ca-certificates`,
    // then `systemctl reload portsentry`). Its store (SSL_CERT_FILE standing for
    // /etc/ssl/certs/ca-certificates.crt) first lacks the test CA: a scan's alert waits.
    // The store gains the CA, SIGHUP: the link is back and the alert reaches the LAPI.
    let run = common::Run::new(&pair.host);
    lapi.machine("host-w", "pw-host-w-123456789", &run.p("lapi.yaml"));
    let store = run.p("ca-certificates.crt");
    std::fs::copy(&other_ca, &store).unwrap();
    run.write_config(&format!(
        "TCP_PORTS=\"4001\"\nBLOCK_TCP=\"1\"\nBLOCK_METHOD=\"nftables\"\nCROWDSEC_CREDENTIALS=\"{}\"\n",
        run.p("lapi.yaml").display()
    ));
    let o = run.start_env(&["-tcp"], &[("SSL_CERT_FILE", &store)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    const SCANNER: &str = "203.0.113.9";
    must(&format!(
        "ip -n {} addr add {SCANNER}/24 dev {}",
        pair.lapi, pair.lapi_dev
    ));
    common::answered(
        &pair.lapi,
        SCANNER,
        format!("{HOST4}:4001").parse().unwrap(),
        Duration::from_secs(3),
    );
    eventually("the daemon's link lost on the unknown CA", 15, || {
        run.log
            .count("unreachable: invalid peer certificate: UnknownIssuer")
            > 0
    });
    assert!(alert_sources(&lapi).iter().all(|(ip, _)| ip != SCANNER));
    std::fs::copy(&ca, &store).unwrap();
    run.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("the link back after the reload", 15, || {
        run.log.count(&format!(
            "CrowdSec LAPI https://{LAPI4}:8443 reachable again"
        )) > 0
    });
    eventually("the scan's alert in the LAPI", 15, || {
        alert_sources(&lapi).iter().any(|(ip, _)| ip == SCANNER)
    });
    run.stop();
}

/// A client certificate from the CA of [`pki`]'s `ca_dir` (made with `openssl ca`, whose
/// database also makes the CRL): subject `/OU=ou/CN=cn`, clientAuth, valid for two days
/// from now, or in 2020 when `expired`. Returns (certificate, key), the key mode 0600.
fn client_cert(ca_dir: &Path, name: &str, ou: &str, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
    let d = ca_dir.display();
    if !ca_dir.join("ca.cnf").exists() {
        std::fs::write(
            ca_dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = c\n[c]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\nserial = {d}/serial\n\
                 crlnumber = {d}/crlnumber\ndefault_md = sha256\ndefault_days = 2\ndefault_crl_days = 2\n\
                 policy = p\nunique_subject = no\nx509_extensions = x\n\
                 [p]\norganizationalUnitName = supplied\ncommonName = supplied\n\
                 [x]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n"
            ),
        )
        .unwrap();
        must(&format!(
            "cd {d} && : >index.txt && echo 1000 >serial && echo 01 >crlnumber"
        ));
    }
    let dates = if expired {
        "-startdate 20200101000000Z -enddate 20200102000000Z"
    } else {
        ""
    };
    must(&format!(
        "cd {d} && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout {name}.key -out {name}.csr -subj '/OU={ou}/CN={cn}' 2>/dev/null && \
         openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in {name}.csr \
           -out {name}.pem -notext {dates} 2>/dev/null && chmod 600 {name}.key"
    ));
    (
        ca_dir.join(format!("{name}.pem")),
        ca_dir.join(format!("{name}.key")),
    )
}

/// Issue 20: a machine and a bouncer log in with TLS client certificates instead of a
/// password and an API key, against the real LAPI with `agents_allowed_ou`,
/// `bouncers_allowed_ou` and a CRL. One LAPI and one daemon, its files swapped and reloaded
/// between phases: good certificates (an alert arrives, a decision lands in the set); an
/// expired agent certificate and a bouncer certificate of the agents' OU; good again (the
/// waiting alert goes); an agent certificate of the bouncers' OU and a revoked bouncer
/// certificate; good again; a revoked agent certificate and an expired bouncer certificate.
/// Each refusal is one `adminalert: ERROR` naming the file and the reason, and every probe
/// is still blocked locally. `portsentry fleet check`/`test` report the certificates.
#[test]
fn client_certificates_log_in_as_crowdsec_allows_and_a_bad_one_is_a_clear_error() {
    if !ready("client_certificates_log_in_as_crowdsec_allows_and_a_bad_one_is_a_clear_error") {
        return;
    }
    let pair = Pair::new("x");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "portsentry-client-ca", LAPI4);
    let ca_dir = ca.parent().unwrap().to_path_buf();
    let cc =
        |name: &str, ou: &str, cn: &str, expired: bool| client_cert(&ca_dir, name, ou, cn, expired);
    let agent = cc("agent", "agent-ou", "web1-agent", false);
    let bouncer = cc("bouncer", "bouncer-ou", "web1-bouncer", false);
    let agent_expired = cc("agent-expired", "agent-ou", "web1-agent", true);
    let bouncer_expired = cc("bouncer-expired", "bouncer-ou", "web1-bouncer", true);
    let agent_wrong_ou = cc("agent-wrong-ou", "bouncer-ou", "web1-agent", false);
    let bouncer_wrong_ou = cc("bouncer-wrong-ou", "agent-ou", "web1-bouncer", false);
    let agent_revoked = cc("agent-revoked", "agent-ou", "web1-agent-r", false);
    let bouncer_revoked = cc("bouncer-revoked", "bouncer-ou", "web1-bouncer-r", false);
    let crl = ca_dir.join("crl.pem");
    must(&format!(
        "cd {d} && openssl ca -config ca.cnf -cert ca.pem -keyfile ca.key -revoke agent-revoked.pem 2>/dev/null && \
         openssl ca -config ca.cnf -cert ca.pem -keyfile ca.key -revoke bouncer-revoked.pem 2>/dev/null && \
         openssl ca -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -out crl.pem 2>/dev/null",
        d = ca_dir.display()
    ));
    let lapi = Lapi::start_tls_opts(
        &pair.lapi,
        &format!("{LAPI4}:8443"),
        &cert,
        &key,
        &crowdsec::Options {
            client_certs: Some(crowdsec::ClientCerts {
                ca: ca.clone(),
                crl,
                agents_ou: "agent-ou".into(),
                bouncers_ou: "bouncer-ou".into(),
            }),
            ..Default::default()
        },
    );
    let url = format!("https://{LAPI4}:8443");

    // The daemon's files keep their names; each phase copies other certificates in.
    let run = common::Run::new(&pair.host);
    let (acert, akey) = (run.p("agent.pem"), run.p("agent.key"));
    let (bcert, bkey) = (run.p("bouncer.pem"), run.p("bouncer.key"));
    std::fs::write(
        run.p("lapi.yaml"),
        format!(
            "url: {url}\nca_cert_path: {}\ncert_path: {}\nkey_path: {}\n",
            ca.display(),
            acert.display(),
            akey.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(run.p("lapi.yaml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let wear = |a: &(PathBuf, PathBuf), b: &(PathBuf, PathBuf)| {
        for (from, to) in [(&a.0, &acert), (&a.1, &akey), (&b.0, &bcert), (&b.1, &bkey)] {
            std::fs::copy(from, to).unwrap();
        }
    };
    wear(&agent, &bouncer);
    run.write_config(&format!(
        "TCP_PORTS=\"4001\"\nBLOCK_TCP=\"1\"\nBLOCK_METHOD=\"nftables\"\nCROWDSEC_CREDENTIALS=\"{}\"\nCROWDSEC_BOUNCER_CERT_FILE=\"{}\"\nCROWDSEC_BOUNCER_CERT_KEY_FILE=\"{}\"\nCROWDSEC_PULL_INTERVAL=\"1\"\n",
        run.p("lapi.yaml").display(),
        bcert.display(),
        bkey.display()
    ));
    let fleet_cmd = |cmd: &str| {
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &pair.host, common::BIN, "fleet", cmd, "-c"])
            .arg(run.p("portsentry.conf"))
            .output()
            .unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (code, out) = fleet_cmd("test");
    assert_eq!(code, Some(0), "{out}");
    for want in [
        format!(
            "fleet: push to {url} as the machine of certificate {} ({})",
            acert.display(),
            run.p("lapi.yaml").display()
        ),
        format!(
            "fleet: pull from {url} with the bouncer certificate of {} every 1 s",
            bcert.display()
        ),
        format!(
            "fleet: https: the client certificate {} (CN web1-agent, OU agent-ou) with key {}, valid ",
            acert.display(),
            akey.display()
        ),
        "the LAPI admits it when its OU is in tls: agents_allowed_ou".to_string(),
        format!(
            "fleet: https: the client certificate {} (CN web1-bouncer, OU bouncer-ou) with key {}, valid ",
            bcert.display(),
            bkey.display()
        ),
        format!(
            "fleet: login to {url} as the machine of certificate {}: OK",
            acert.display()
        ),
        format!(
            "fleet: bouncer certificate of {} at {url}: OK",
            bcert.display()
        ),
    ] {
        assert!(out.contains(&want), "{want}\nnot in:\n{out}");
    }

    let o = run.start(&["-tcp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let mut n = 0;
    // A probe from a new scanner: blocked locally (the next connection gets no answer).
    let mut probe = || {
        n += 1;
        let s = format!("203.0.113.{}", 100 + n);
        must(&format!(
            "ip -n {} addr add {s}/24 dev {}",
            pair.lapi, pair.lapi_dev
        ));
        let to: std::net::SocketAddr = format!("{HOST4}:4001").parse().unwrap();
        common::answered(&pair.lapi, &s, to, Duration::from_secs(3));
        eventually("the local block", 10, || {
            run.log.count(&format!(
                "attackalert: Host {s} has been blocked via nftables set inet portsentry blocked4"
            )) > 0
        });
        assert!(
            !common::answered(&pair.lapi, &s, to, Duration::from_secs(2)),
            "{s} still gets answers"
        );
        s
    };
    let in_lapi = |ip: &str| alert_sources(&lapi).iter().any(|(a, _)| a == ip);
    let reload = |run: &common::Run| {
        let before = run
            .log
            .count("adminalert: PortSentry reloaded its configuration.");
        run.signal(nix::sys::signal::Signal::SIGHUP);
        eventually("the reload", 10, || {
            run.log
                .count("adminalert: PortSentry reloaded its configuration.")
                > before
        });
    };
    let mut decision = 0;
    let mut pulled = |run: &common::Run| {
        decision += 1;
        let ip = format!("198.51.100.{decision}");
        lapi.cscli(&["decisions", "add", "-i", &ip, "-d", "1h"]);
        eventually(
            "the decision pulled with the bouncer certificate",
            40,
            || set_covers(&pair.host, "fleet4", &ip),
        );
        let _ = run;
    };
    let refused = |run: &common::Run, file: &Path, whys: &[&str], rest: &str| {
        let start = format!(
            "adminalert: ERROR: CrowdSec LAPI {url}: the LAPI refused the client certificate {} (",
            file.display()
        );
        let t0 = Instant::now();
        while !run.log.lines().iter().any(|l| {
            l.starts_with(&start) && whys.iter().all(|w| l.contains(w)) && l.ends_with(rest)
        }) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no line \"{start}...{whys:?}...{rest}\" in 20 s:\n{:#?}",
                run.log.lines()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    const PUSH_END: &str = "; alerts wait in the spool";
    const PULL_END: &str = "; no decisions are pulled until it is fixed";

    // 1. Good certificates: the LAPI knows the machine and the bouncer as CN@address.
    let s1 = probe();
    eventually("the alert pushed with the agent certificate", 15, || {
        in_lapi(&s1)
    });
    pulled(&run);
    let machines = lapi.cscli(&["machines", "list", "-o", "json"]);
    assert!(
        machines.contains(&format!("web1-agent@{HOST4}")),
        "{machines}"
    );
    let bouncers = lapi.cscli(&["bouncers", "list", "-o", "json"]);
    assert!(
        bouncers.contains(&format!("web1-bouncer@{HOST4}")),
        "{bouncers}"
    );

    // 2. An expired agent certificate, a bouncer certificate of the agents' OU.
    wear(&agent_expired, &bouncer_wrong_ou);
    let (code, out) = fleet_cmd("test");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "warning: {}: it expired on 2020-01-02T00:00:00Z: the LAPI refuses it",
            acert.display()
        )),
        "{out}"
    );
    reload(&run);
    let s2 = probe();
    refused(
        &run,
        &acert,
        &[
            "in the TLS handshake (",
            "): it expired on 2020-01-02T00:00:00Z",
        ],
        PUSH_END,
    );
    refused(
        &run,
        &bcert,
        &[
            "(CN web1-bouncer, OU agent-ou) (HTTP 403: access forbidden): its OU must be in the LAPI's tls: bouncers_allowed_ou, and it must not be revoked (crl_path)",
        ],
        PULL_END,
    );
    assert!(!in_lapi(&s2), "an alert went with an expired certificate");

    // 3. Good again: the waiting alert goes, pulling resumes.
    wear(&agent, &bouncer);
    reload(&run);
    eventually("the waiting alert after the fix", 20, || in_lapi(&s2));
    pulled(&run);

    // 4. An agent certificate of the bouncers' OU, a revoked bouncer certificate.
    wear(&agent_wrong_ou, &bouncer_revoked);
    reload(&run);
    let s4 = probe();
    refused(
        &run,
        &acert,
        &[
            "(CN web1-agent, OU bouncer-ou) (HTTP 403: access forbidden: ",
            "client certificate OU ([bouncer-ou]) doesn't match expected OU ([agent-ou])",
            "its OU must be in the LAPI's tls: agents_allowed_ou",
        ],
        PUSH_END,
    );
    refused(
        &run,
        &bcert,
        &["(CN web1-bouncer-r, OU bouncer-ou) (HTTP 403: access forbidden)"],
        PULL_END,
    );
    assert!(!in_lapi(&s4));
    assert!(
        !lapi
            .cscli(&["bouncers", "list", "-o", "json"])
            .contains("web1-bouncer-r"),
        "the LAPI admitted a revoked certificate"
    );

    // 5. Good again, then 6. a revoked agent certificate and an expired bouncer one.
    wear(&agent, &bouncer);
    reload(&run);
    eventually("the waiting alert after the second fix", 20, || {
        in_lapi(&s4)
    });
    pulled(&run);
    wear(&agent_revoked, &bouncer_expired);
    reload(&run);
    let s6 = probe();
    refused(
        &run,
        &acert,
        &[
            "(CN web1-agent-r, OU agent-ou) (HTTP 403: access forbidden: ",
            "client certificate is revoked by CRL)",
        ],
        PUSH_END,
    );
    refused(
        &run,
        &bcert,
        &[
            "in the TLS handshake (",
            "): it expired on 2020-01-02T00:00:00Z",
        ],
        PULL_END,
    );
    assert!(!in_lapi(&s6));
    assert!(
        !lapi
            .cscli(&["machines", "list", "-o", "json"])
            .contains("web1-agent-r"),
        "the LAPI admitted a revoked certificate"
    );
    // The history holds every local block, the log no key.
    let history = run.read("portsentry.history");
    for s in [&s1, &s2, &s4, &s6] {
        assert!(
            history.contains(&format!("/{s} Port: 4001 TCP Blocked")),
            "{history}"
        );
    }
    assert!(
        run.log
            .lines()
            .iter()
            .all(|l| !l.contains("PRIVATE KEY") && !l.contains("panicked")),
        "{:#?}",
        run.log.lines()
    );
    run.stop();
}

// -- Issue 24: what the host depends on, and what a LAPI may do ------------------------------

/// Files of `/etc/netns/NS/` (which `ip netns exec NS` binds over those of /etc for the
/// daemon: resolv.conf, hosts), removed on drop.
struct NetnsEtc(PathBuf);

impl NetnsEtc {
    fn new(ns: &str, files: &[(&str, &str)]) -> NetnsEtc {
        let dir = PathBuf::from(format!("/etc/netns/{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        NetnsEtc(dir)
    }

    /// Rewrites a file in place (the same inode, so the daemon's bind mount sees it).
    fn rewrite(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One UDP datagram to `dst:port` whose source is `src`, sent over a raw socket from
/// namespace `ns` (`src` need not be an address of it: forged).
fn forge_udp(ns: &str, src: &str, dst: &str, port: u16) {
    must(&format!(
        "ip netns exec {ns} python3 {}/bench/probe.py burst {src} 1 {dst} {port} 5 >/dev/null",
        env!("CARGO_MANIFEST_DIR")
    ));
}

/// Does set `set` of table inet portsentry in namespace `ns` cover `addr`?
fn set_covers(ns: &str, set: &str, addr: &str) -> bool {
    let o = sh(&format!(
        "ip netns exec {ns} nft -j list set inet portsentry {set}"
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let x: std::net::IpAddr = addr.parse().unwrap();
    let num = |a: &str| -> Option<u128> {
        match a.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) => Some(u128::from(u32::from(a))),
            std::net::IpAddr::V6(a) => Some(u128::from(a)),
        }
    };
    let want = num(&x.to_string()).unwrap();
    let bits = if x.is_ipv4() { 32 } else { 128 };
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let val = if e["elem"].is_object() {
                &e["elem"]["val"]
            } else {
                e
            };
            let span = if let Some(r) = val.get("range") {
                num(r[0].as_str().unwrap_or("")).zip(num(r[1].as_str().unwrap_or("")))
            } else if let Some(p) = val.get("prefix") {
                let len = p["len"].as_u64().unwrap_or(0) as u32;
                num(p["addr"].as_str().unwrap_or("")).map(|a| {
                    let host = u128::MAX.checked_shr(128 - (bits - len)).unwrap_or(0);
                    (a, a | if bits - len == 0 { 0 } else { host })
                })
            } else {
                num(val.as_str().unwrap_or("")).map(|a| (a, a))
            };
            if span.is_some_and(|(a, b)| a <= want && want <= b) {
                return true;
            }
        }
    }
    false
}

/// The ids of the LAPI's decisions in force, by value.
fn decision_ids(lapi: &Lapi) -> std::collections::HashMap<String, i64> {
    let v: serde_json::Value =
        serde_json::from_str(&lapi.cscli(&["decisions", "list", "-a", "-l", "0", "-o", "json"]))
            .unwrap_or_default();
    let mut m = std::collections::HashMap::new();
    for a in v.as_array().into_iter().flatten() {
        for d in a["decisions"].as_array().into_iter().flatten() {
            if let (Some(val), Some(id)) = (d["value"].as_str(), d["id"].as_i64()) {
                m.insert(val.to_string(), id);
            }
        }
    }
    m
}

/// `portsentry status --json` of `run`: its `fleet` object.
fn fleet_status(run: &Run) -> serde_json::Value {
    let out = std::process::Command::new(common::BIN)
        .args(["status", "--json", "--pidfile"])
        .arg(run.p("portsentry.pid"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["fleet"].clone()
}

/// Issue 24, items 1 and 2 against the real LAPI: forged UDP datagrams "from" the LAPI, a
/// resolver of the host's resolv.conf (v4 and v6) and a NEVER_BLOCK host, with
/// BLOCK_UDP="1", are refused (one line each, however many come) and never pushed; a
/// datagram from another address is blocked. Then `cscli decisions add --range 0.0.0.0/0`
/// and `::/0` are refused (logged once with their ids) while a /24 holding the LAPI is
/// applied around it, and the LAPI is still heard: deleting the decisions empties the set.
/// Without issue 24 the datagram blocks the LAPI, and the /0 cuts it off for good.
#[test]
fn forged_datagrams_from_what_the_host_depends_on_and_wide_bans_never_cut_it_off() {
    let test = "forged_datagrams_from_what_the_host_depends_on_and_wide_bans_never_cut_it_off";
    if !ready(test) {
        return;
    }
    const PORT_U: u16 = 4002;
    const NS4: &str = "203.0.113.53";
    const NS6: &str = "2001:db8:113::53";
    const NEVER: &str = "203.0.113.123";
    const OTHER: &str = "203.0.113.77";
    let pair = Pair::new("g");
    must(&format!(
        "ip -n {} addr add 2001:db8:113::1/64 dev {} nodad",
        pair.lapi, pair.lapi_dev
    ));
    // The LAPI by name (its A and AAAA in the host's /etc/hosts), the resolvers in its
    // resolv.conf.
    const LAPI6: &str = "2001:db8:113::1";
    const HOSTS: &str = "127.0.0.1 localhost\n203.0.113.1 lapi.test\n2001:db8:113::1 lapi.test\n";
    let etc = NetnsEtc::new(
        &pair.host,
        &[
            (
                "resolv.conf",
                &format!("search example.org\nnameserver {NS4}\nnameserver {NS6}\n"),
            ),
            ("hosts", HOSTS),
        ],
    );
    let lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let run = Run::new(&pair.host);
    lapi.machine("host-g", "pw-g-123456789", &run.p("lapi.yaml"));
    let creds = std::fs::read_to_string(run.p("lapi.yaml")).unwrap();
    std::fs::write(
        run.p("lapi.yaml"),
        creds.replace(&format!("http://{LAPI4}:8080"), "http://lapi.test:8080"),
    )
    .unwrap();
    lapi.bouncer("host-g", &run.p("bouncer.key"));
    let d = run.dir.path().display().to_string();
    run.write_config(&format!(
        "UDP_PORTS=\"{PORT_U}\"\nBLOCK_UDP=\"1\"\nBLOCK_TCP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
         BLOCK_TIMEOUT=\"3600\"\nNEVER_BLOCK=\"{NEVER}, 2001:db8:113::123\"\n\
         CROWDSEC_CREDENTIALS=\"{d}/lapi.yaml\"\nCROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\n\
         CROWDSEC_PULL_INTERVAL=\"1\"\n"
    ));
    run.start_ok(&["-sudp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let wait = |part: &str| {
        eventually(&format!("a log line with {part:?}"), 20, || {
            run.log.count(part) > 0
        })
    };
    wait("pushing alerts and pulling decisions");
    wait(&format!(
        "adminalert: CrowdSec LAPI host lapi.test is {LAPI4}, {LAPI6}: never blocked"
    ));
    wait(&format!(
        "adminalert: WARNING: CrowdSec LAPI http://lapi.test:8080 (the url of {d}/lapi.yaml) is plain http to another host"
    ));

    // Item 1: the forged datagrams (the LAPI's twice), then one from another address.
    for (src, dst) in [
        (LAPI4, HOST4),
        (LAPI6, HOST6),
        (NS4, HOST4),
        (NS6, HOST6),
        (NEVER, HOST4),
        (LAPI4, HOST4),
        (OTHER, HOST4),
    ] {
        forge_udp(&pair.lapi, src, dst, PORT_U);
    }
    wait(&format!(
        "attackalert: Host {OTHER} has been blocked via nftables set inet portsentry blocked4"
    ));
    for (src, what) in [
        (LAPI4, "the CrowdSec LAPI"),
        (LAPI6, "the CrowdSec LAPI"),
        (NS4, "a nameserver of /etc/resolv.conf"),
        (NS6, "a nameserver of /etc/resolv.conf"),
        (NEVER, "in NEVER_BLOCK"),
    ] {
        wait(&format!(
            "securityalert: Refusing to block host {src}: it is {what}."
        ));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        run.log
            .count(&format!("Refusing to block host {LAPI4}: it is")),
        1,
        "one line for two datagrams within the repeat interval"
    );
    for (set, a) in [
        ("blocked4", LAPI4),
        ("blocked6", LAPI6),
        ("blocked4", NS4),
        ("blocked6", NS6),
        ("blocked4", NEVER),
    ] {
        assert!(!set_covers(&pair.host, set, a), "{a} blocked");
    }
    assert!(set_covers(&pair.host, "blocked4", OTHER));
    // Pushed: the other address, never a protected one.
    eventually("the other address's alert in the LAPI", 20, || {
        alert_sources(&lapi).iter().any(|(ip, _)| ip == OTHER)
    });
    let sources = alert_sources(&lapi);
    for a in [LAPI4, LAPI6, NS4, NS6, NEVER] {
        assert!(
            sources.iter().all(|(ip, _)| ip != a),
            "{a} pushed: {sources:?}"
        );
    }
    // The LAPI's name is resolved again at a reload: an address it gained is protected.
    const LAPI_NEW: &str = "203.0.113.201";
    etc.rewrite("hosts", &format!("{HOSTS}{LAPI_NEW} lapi.test\n"));
    run.signal(nix::sys::signal::Signal::SIGHUP);
    wait("adminalert: PortSentry reloaded its configuration.");
    wait(&format!(
        "adminalert: CrowdSec LAPI host lapi.test is {LAPI4}, {LAPI_NEW}, {LAPI6}: never blocked"
    ));
    forge_udp(&pair.lapi, LAPI_NEW, HOST4, PORT_U);
    wait(&format!(
        "securityalert: Refusing to block host {LAPI_NEW}: it is the CrowdSec LAPI."
    ));
    assert!(!set_covers(&pair.host, "blocked4", LAPI_NEW));

    // Item 2: a LAPI cannot ban everything.
    for (what, reason) in [
        (["--range", "0.0.0.0/0"], "everything"),
        (["--range", "::/0"], "everything6"),
        (["--range", "203.0.113.0/24"], "lapi-net"),
        (["--ip", "192.0.2.99"], "control"),
    ] {
        lapi.cscli(&[
            "decisions",
            "add",
            what[0],
            what[1],
            "--duration",
            "1h",
            "--reason",
            reason,
        ]);
    }
    let ids = decision_ids(&lapi);
    let (id4, id6) = (ids["0.0.0.0/0"], ids["::/0"]);
    wait(&format!(
        "securityalert: CrowdSec decision {id4} (ban 0.0.0.0/0, everything) refused: wider than /8 (CROWDSEC_WIDEST_BAN)"
    ));
    wait(&format!(
        "securityalert: CrowdSec decision {id6} (ban ::/0, everything6) refused: wider than /32 (CROWDSEC_WIDEST_BAN)"
    ));
    eventually("the control and the /24 applied", 40, || {
        set_covers(&pair.host, "fleet4", "192.0.2.99")
            && set_covers(&pair.host, "fleet4", "203.0.113.5")
    });
    // The /24 around what the host depends on: the LAPI, the resolver, NEVER_BLOCK, itself.
    for a in [LAPI4, NS4, NEVER, HOST4] {
        assert!(!set_covers(&pair.host, "fleet4", a), "{a} banned");
    }
    assert!(!set_covers(&pair.host, "fleet4", "198.51.100.1"));
    assert!(!set_covers(&pair.host, "fleet6", "2001:db8:99::1"));
    // Still heard: the link is up, and deleting the decisions takes them out again.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet_status(&run)["up"], true, "{}", fleet_status(&run));
    assert_eq!(
        run.log.count(&format!("CrowdSec decision {id4} ")),
        1,
        "logged once though pulled every second"
    );
    for (_, id) in ids {
        lapi.cscli(&["decisions", "delete", "--id", &id.to_string()]);
    }
    eventually("the deleted decisions gone from fleet4", 20, || {
        !set_covers(&pair.host, "fleet4", "192.0.2.99")
            && !set_covers(&pair.host, "fleet4", "203.0.113.5")
    });
    let lines = run.log.lines();
    assert!(
        lines.iter().all(|l| !l.contains("unreachable")),
        "{lines:#?}"
    );
    run.stop();
}

/// Issue 24, item 2 against a stand-in hostile LAPI (`common::hostile_lapi`): a 42 MB answer
/// of 300,001 objects (1,000 malformed, a 0.0.0.0/0 whose scenario holds a forged syslog
/// line and a terminal escape, then valid bans), a 256 MiB answer, one 16 MiB string. The
/// daemon keeps the first 100,000 objects of the first answer and refuses the two others
/// while reading them; its peak RSS stays under [`HOSTILE_RSS_BOUND_KIB`]; no log line
/// carries a control byte; real probes before and after are detected and blocked.
#[test]
fn a_hostile_lapi_cannot_exhaust_memory_forge_log_lines_or_stop_detection() {
    use common::hostile_lapi::{Answer, Hostile};
    let test = "a_hostile_lapi_cannot_exhaust_memory_forge_log_lines_or_stop_detection";
    if !ready(test) {
        return;
    }
    let pair = Pair::new("h");
    let hostile = Hostile::start(
        &pair.lapi,
        format!("{LAPI4}:8080").parse().unwrap(),
        vec![Answer::Huge {
            malformed: 1000,
            valid: 299_000,
        }],
    );
    let run = Run::new(&pair.host);
    std::fs::write(run.p("bouncer.key"), "hostile-test-key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(run.p("bouncer.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let d = run.dir.path().display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"{PORT}\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
         BLOCK_TIMEOUT=\"3600\"\nCROWDSEC_LAPI_URL=\"http://{LAPI4}:8080/\"\n\
         CROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"1\"\n"
    ));
    const SCAN1: &str = "203.0.113.9";
    const SCAN2: &str = "203.0.113.10";
    must(&format!(
        "ip -n {l} addr add {SCAN1}/24 dev {d} && ip -n {l} addr add {SCAN2}/24 dev {d}",
        l = pair.lapi,
        d = pair.lapi_dev
    ));
    run.start_ok(&["-stcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let pid = run.pid().expect("pid");
    let probe = |src: &str| {
        common::answered(
            &pair.lapi,
            src,
            format!("{HOST4}:{PORT}").parse().unwrap(),
            Duration::from_millis(500),
        );
        eventually(&format!("{src} detected and blocked"), 20, || {
            run.log.count(&format!(
                "attackalert: Host {src} has been blocked via nftables set inet portsentry blocked4"
            )) > 0
        });
    };
    probe(SCAN1);
    // What the first answer gave: the first 100,000 objects, the rest counted. Checked
    // before the next answers: after a failed pull the host reads the whole stream again,
    // and the stand-in's answer to that is empty, so the sets empty too (as they should).
    eventually("the first answer applied", 120, || {
        set_covers(&pair.host, "fleet4", "10.1.131.182")
    });
    assert!(set_covers(&pair.host, "fleet4", "10.0.1.0"));
    assert!(
        !set_covers(&pair.host, "fleet4", "10.1.131.183"),
        "beyond the cap"
    );
    assert!(!set_covers(&pair.host, "fleet4", "192.0.2.1"), "0.0.0.0/0");
    hostile.then(vec![Answer::Bytes(256 << 20), Answer::LongString(16 << 20)]);
    eventually("the three hostile answers served", 120, || {
        hostile.left() == 0 && hostile.streams() >= 4
    });
    eventually("the link back after them", 30, || {
        run.log.count("reachable again") > 0
    });
    let (rss, hwm) = rss_kib(pid);
    let served: Vec<(String, u64)> = hostile.seen.lock().unwrap().clone();
    eprintln!(
        "hostile LAPI: daemon RSS {rss} KiB, peak {hwm} KiB; answers written (request, bytes): {:?}",
        served
            .iter()
            .filter(|s| s.0.starts_with("GET /v1/decisions/stream"))
            .take(6)
            .collect::<Vec<_>>()
    );
    assert!(
        hwm < HOSTILE_RSS_BOUND_KIB,
        "peak RSS {hwm} KiB over the bound of {HOSTILE_RSS_BOUND_KIB} KiB"
    );
    assert!(common::alive(pid), "the daemon died");
    // Detection goes on.
    probe(SCAN2);
    let url = format!("http://{LAPI4}:8080");
    assert_eq!(
        run.log.count(&format!(
            "adminalert: WARNING: CrowdSec LAPI {url}: 1000 malformed decisions skipped (no id, type, scope, value or duration, or one of another type), 200001 decisions beyond the cap of 100000 per answer skipped"
        )),
        1,
        "{:#?}",
        run.log.lines()
    );
    // The wide decision: refused, its scenario escaped.
    assert_eq!(
        run.log.count(
            "securityalert: CrowdSec decision 999999 (ban 0.0.0.0/0, evil\\x0aattackalert: forged line\\x1b[2J\\x07) refused: wider than /8 (CROWDSEC_WIDEST_BAN)"
        ),
        1,
        "{:#?}",
        run.log.lines()
    );
    assert_eq!(
        run.log.count(&format!(
            "adminalert: CrowdSec LAPI {url} unreachable: bad answer: the decision stream answer is larger than 64 MiB: refused"
        )),
        1
    );
    let lines = run.log.lines();
    for l in &lines {
        assert!(
            !l.chars().any(|c| c.is_control()),
            "a control character reached syslog: {l:?}"
        );
        assert!(!l.starts_with("attackalert: forged"), "{l}");
    }
    // The 256 MiB answer was cut off while it was read, not read whole: no answer got
    // further than the 64 MiB cap and what the two sockets' buffers hold past it (measured:
    // 73.6 MB written), far from 256 MiB (the first answer, of 300,001 objects, is 42 MB).
    let big = served.iter().map(|s| s.1).max().unwrap_or(0);
    assert!(
        big > 40 << 20 && big < 100 << 20,
        "the largest answer written: {big} bytes (the 256 MiB one read whole?)"
    );
    run.stop();
}

/// Issue 20, item 3: a LAPI that answers slowly is pulled less often, and as often as
/// configured again once fast; one that fails (HTTP 500, a body cut short) is retried with
/// back-off and `portsentry status` says the host is behind; after every failure the next
/// pull reads the whole stream, so the ban of the answer that was cut (the real LAPI has
/// moved the bouncer's "last pull" by then) is applied all the same, once. A stand-in LAPI:
/// the real one cannot be made slow or fail on cue.
#[test]
fn a_slow_or_failing_lapi_is_pulled_less_often_and_no_decision_is_lost() {
    use common::hostile_lapi::{Answer, Hostile};
    let test = "a_slow_or_failing_lapi_is_pulled_less_often_and_no_decision_is_lost";
    if !ready(test) {
        return;
    }
    const BANNED: &str = "198.51.100.77";
    let slow = Answer::Slow(Duration::from_millis(1200));
    let pair = Pair::new("w");
    let hostile = Hostile::start(
        &pair.lapi,
        format!("{LAPI4}:8080").parse().unwrap(),
        vec![
            Answer::Empty,
            slow.clone(),
            slow,
            Answer::Status(500),
            Answer::Status(500),
            Answer::Status(503),
            Answer::Status(500),
            Answer::Cut(BANNED),
            Answer::Ban(BANNED),
        ],
    );
    // More decisions in force than a list pull pays for (fleet::resync::LIST_MAX): every
    // pull reads the stream, whose answers this test scripts.
    let many: Vec<String> = (1..=portsentry::fleet::resync::LIST_MAX + 1)
        .map(|i| {
            format!(
                "{{\"duration\":\"3h\",\"id\":{},\"origin\":\"cscli\",\"scenario\":\"manual\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"198.18.0.{i}\"}}",
                5000 + i
            )
        })
        .collect();
    hostile.set_list(&format!("[{}]", many.join(",")));
    let run = Run::new(&pair.host);
    std::fs::write(run.p("bouncer.key"), "slow-test-key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(run.p("bouncer.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let d = run.dir.path().display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"{PORT}\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
         BLOCK_TIMEOUT=\"3600\"\nCROWDSEC_LAPI_URL=\"http://{LAPI4}:8080/\"\n\
         CROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"1\"\n"
    ));
    run.start_ok(&["-stcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    let url = format!("http://{LAPI4}:8080");
    let fleet = || run.status_json()["fleet"].clone();
    // Slow: the interval doubles, shown in status, and comes back once the answers are fast.
    eventually("the slowness logged", 30, || {
        run.log
            .count(&format!("adminalert: CrowdSec LAPI {url} answers slowly ("))
            == 1
    });
    eventually("status shows the stretched interval", 10, || {
        fleet()["pull_every_ms"].as_u64().unwrap_or(0) >= 2000
    });
    let f = fleet();
    assert!(f["answer_ms"].as_u64().unwrap() >= 1200, "{f}");
    // Failures: retried with back-off; the host is behind, and status says so.
    eventually("the host shown behind", 30, || {
        fleet()["behind_ms"].as_u64().unwrap_or(0) > 2000
    });
    eventually("the cut answer, then the full one, served", 60, || {
        hostile.left() == 0
    });
    eventually("the banned address in fleet4", 20, || {
        set_covers(&pair.host, "fleet4", BANNED)
    });
    eventually("fast again and keeping pace", 30, || {
        let f = fleet();
        f["pull_every_ms"].as_u64() == Some(1000) && f["behind_ms"].as_u64() == Some(0)
    });
    let lines = run.log.lines();
    let served: Vec<String> = hostile
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .filter(|r| r.starts_with("GET /v1/decisions/stream"))
        .collect();
    eprintln!("slow/failing LAPI: stream requests {served:#?}");
    // The request after each failure (4 statuses, the cut body) read the whole stream.
    for (i, r) in served.iter().enumerate().take(9).skip(4) {
        assert!(
            r.contains("startup=true"),
            "request {i} after a failure: {r}"
        );
    }
    assert!(
        !served[2].contains("startup=true"),
        "a slow answer is no failure: {served:?}"
    );
    assert_eq!(
        run.log.count(&format!(
            "adminalert: CrowdSec LAPI {url} answers fast again ("
        )),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        run.log.count(&format!(
            "adminalert: CrowdSec LAPI {url} unreachable: HTTP 500"
        )),
        1,
        "the failures in a row logged once: {lines:#?}"
    );
    assert_eq!(
        run.log
            .count(&format!("CrowdSec LAPI {url} reachable again")),
        1
    );
    assert!(run.pid().is_some_and(common::alive), "the daemon runs on");
    run.stop();
}

/// The daemon's peak RSS while a hostile LAPI sends its answers (README "Pulled bans").
const HOSTILE_RSS_BOUND_KIB: u64 = 128 * 1024;

// -- Scale benchmark (issue 20; printed, not timed: `bench/fleet-scale.sh`) -------------------

/// CPU (user + system) of `pid` and of the children it has reaped, and of its live children
/// (PostgreSQL's backends), in ms.
fn tree_cpu_ms(pid: i32) -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |h| h.max(1) as u64);
    let fields = |p: i32| -> Vec<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        stat.rsplit_once(") ")
            .map_or("", |x| x.1)
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect()
    };
    // After the state: ppid is 1, utime 11, stime 12, cutime 13, cstime 14.
    let me = fields(pid);
    let mut ticks = me.get(11..15).map_or(0, |x| x.iter().sum::<u64>());
    for p in children_of(pid) {
        let f = fields(p);
        ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    }
    ticks * 1000 / hz
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|x| x.1.split_whitespace().nth(1))
            .and_then(|x| x.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Proportional set size of `pid` and its live children, KiB (shared memory counted once).
fn tree_pss_kib(pid: i32) -> u64 {
    let pss = |p: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    pss(pid) + children_of(pid).into_iter().map(pss).sum::<u64>()
}

/// The LAPI's requests served so far (`cs_lapi_route_requests_total`, all routes), read from
/// its Prometheus endpoint inside its namespace.
fn lapi_requests(ns: &str) -> u64 {
    let o = sh(&format!(
        "ip netns exec {ns} curl -s --max-time 5 http://127.0.0.1:6060/metrics"
    ));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("cs_lapi_route_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A process's user and system CPU so far, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn user_system_ticks(pid: i32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<u64> = stat
        .rsplit_once(") ")
        .map_or("", |x| x.1)
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// The LAPI's requests served so far per route and method (`cs_lapi_route_requests_total`).
fn lapi_routes(ns: &str) -> std::collections::BTreeMap<String, u64> {
    let o = sh(&format!(
        "ip netns exec {ns} curl -s --max-time 5 http://127.0.0.1:6060/metrics"
    ));
    let mut m = std::collections::BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("cs_lapi_route_requests_total{"))
    {
        let (labels, v) = l.rsplit_once(' ').unwrap_or((l, "0"));
        let label = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_string()
        };
        *m.entry(format!("{} {}", label("method"), label("route")))
            .or_insert(0) += v.parse::<f64>().unwrap_or(0.0) as u64;
    }
    m
}

/// TCP connections accepted so far in namespace `ns` (`Tcp: PassiveOpens` of /proc/net/snmp).
fn passive_opens(ns: &str) -> u64 {
    let o = sh(&format!("ip netns exec {ns} cat /proc/net/snmp"));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "PassiveOpens")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(v: &mut [u128], p: f64) -> u128 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A percentile for a line of figures: `-` when nothing was measured (not 0 ms, which a run
/// where no arrival came within the bound would otherwise print).
fn ms_or_none(v: &mut [u128], p: f64) -> String {
    if v.is_empty() {
        "-".to_string()
    } else {
        percentile(v, p).to_string()
    }
}

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Issue 20 item 3: a decision the stream never lists (the LAPI's race: stamped before a
/// pull, written after its query) still reaches the host, by a read of the decisions in
/// force (`fleet::resync`: while they are few, every pull is such a list, and the stream is
/// read every 10 s), and only once. Stand-in LAPI: the stream answers nothing, `GET
/// /v1/decisions` lists the ban. Without those reads the address never reaches the set.
#[test]
fn a_decision_the_stream_never_lists_arrives_by_the_catch_up_read() {
    use common::hostile_lapi::{Answer, Hostile};
    let test = "a_decision_the_stream_never_lists_arrives_by_the_catch_up_read";
    if !ready(test) {
        return;
    }
    const MISSED: &str = "198.51.100.78";
    let pair = Pair::new("k");
    let hostile = Hostile::start(
        &pair.lapi,
        format!("{LAPI4}:8080").parse().unwrap(),
        vec![Answer::Empty],
    );
    let run = Run::new(&pair.host);
    std::fs::write(run.p("bouncer.key"), "catch-up-test-key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(run.p("bouncer.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let d = run.dir.path().display().to_string();
    run.write_config(&format!(
        "TCP_PORTS=\"{PORT}\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
         BLOCK_TIMEOUT=\"3600\"\nCROWDSEC_LAPI_URL=\"http://{LAPI4}:8080/\"\n\
         CROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"1\"\n"
    ));
    run.start_ok(&["-stcp"]);
    run.log
        .wait_line("adminalert: PortSentry is now active and listening.");
    eventually("the first (full) read served", 20, || hostile.left() == 0);
    let requests = || -> Vec<String> {
        let seen = hostile.seen.lock().unwrap();
        seen.iter().map(|r| r.0.clone()).collect()
    };
    let before = requests().len();
    let since = Instant::now();
    hostile.set_list(&format!(
        "[{{\"duration\":\"3h\",\"id\":4243,\"origin\":\"crowdsec\",\"scenario\":\"portsentry/tcp-syn-scan\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"{MISSED}\"}}]"
    ));
    eventually("the address the stream never listed in fleet4", 30, || {
        set_covers(&pair.host, "fleet4", MISSED)
    });
    // A few more lists: the decision is the same one, the set holds it once.
    let t0 = Instant::now();
    while requests()[before..]
        .iter()
        .filter(|r| r.starts_with("GET /v1/decisions?"))
        .count()
        < 3
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = requests();
    let after: Vec<&String> = seen[before..].iter().collect();
    let catch_ups = after
        .iter()
        .filter(|r| r.starts_with("GET /v1/decisions?"))
        .count();
    let deltas = after
        .iter()
        .filter(|r| r.starts_with("GET /v1/decisions/stream?dedup=false"))
        .count();
    eprintln!("catch-up: {deltas} pulls of what changed, {catch_ups} lists: {after:#?}");
    assert!(catch_ups >= 3, "{after:#?}");
    assert!(
        after
            .iter()
            .filter(|r| r.starts_with("GET /v1/decisions?"))
            .all(|r| *r == "GET /v1/decisions?scopes=ip,range&origins=crowdsec,cscli"),
        "{after:#?}"
    );
    // With one decision in force the pulls list it; the stream is read once per 10 s.
    let windows = since.elapsed().as_secs() / 10 + 1;
    assert!(
        deltas as u64 <= windows,
        "{deltas} pulls of what changed in {:?}, {catch_ups} lists",
        since.elapsed()
    );
    let listing = sh(&format!(
        "ip netns exec {} nft list set inet portsentry fleet4",
        pair.host
    ));
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(listing.matches(MISSED).count(), 1, "{listing}");
    let lines = run.log.lines();
    assert!(lines.iter().all(|l| !l.contains("panicked")), "{lines:#?}");
}

/// Issue 20's benchmark: for each N of FLEET_N (default 10,50,100,200) and each database of
/// FLEET_DB (sqlite,postgresql), N real daemons (`-stcp`, nftables, each its own machine and
/// bouncer key, pulling every FLEET_INTERVAL seconds; FLEET_CLIENT=curl: N keep-alive curl
/// loops on the stream instead, the reference; FLEET_CURL_URL: another path for them), one
/// LAPI, the scanner. Printed per run: the LAPI's and the database's CPU per second and per
/// host and their memory while the fleet idles (FLEET_IDLE_S seconds), the requests per
/// second the LAPI served, the CPU each request cost, the interval at which LAPI and
/// database would fill this machine's cores, the daemons' CPU and RSS; then five scanners
/// probe host 1 one at a time (each at a random moment of the interval) and `nft monitor`
/// on every other host times the scanner's arrival in its fleet4 set: median, p99, max,
/// never (10 s).
#[test]
#[ignore = "benchmark: bench/fleet-scale.sh"]
fn bench_fleet_scale() {
    if !ready("bench_fleet_scale") {
        return;
    }
    let ns: Vec<u32> = env_list("FLEET_N", "10,50,100,200")
        .iter()
        .map(|n| n.parse().expect("FLEET_N"))
        .collect();
    let interval: u64 = std::env::var("FLEET_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let idle_s: u64 = std::env::var("FLEET_IDLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let curl = std::env::var("FLEET_CLIENT").is_ok_and(|v| v == "curl");
    for db in env_list("FLEET_DB", "sqlite,postgresql") {
        let db = match db.as_str() {
            "sqlite" => Db::Sqlite,
            "postgresql" => Db::Postgres,
            other => panic!("FLEET_DB: {other}"),
        };
        for &n in &ns {
            scale_run(db, n, interval, idle_s, curl);
        }
    }
}

fn scale_run(db: Db, n: u32, interval: u64, idle_s: u64, curl: bool) {
    use common::scale::{self, Scale};
    const SCANNERS: u32 = 5;
    // FLEET_CURL_URL: what the curl loops ask (path and query; default the stream's "what
    // changed", as the daemon's pull asks it).
    let curl_url = std::env::var("FLEET_CURL_URL")
        .unwrap_or_else(|_| "/v1/decisions/stream?dedup=false".to_string());
    let label = format!(
        "{db:?}{} N={n} interval={interval}s decisions={} client={}",
        if db == Db::Postgres && std::env::var("FLEET_PGBOUNCER").is_ok_and(|v| v == "1") {
            "+pgbouncer"
        } else {
            ""
        },
        std::env::var("FLEET_DECISIONS").unwrap_or_else(|_| "0".to_string()),
        if curl {
            format!("curl {curl_url}")
        } else {
            "portsentry".to_string()
        }
    );
    let t_setup = Instant::now();
    let s = Scale::new(n, SCANNERS);
    let pg = (db == Db::Postgres).then(|| Postgres::start(&s.lapi, postgres::Durability::Default));
    // FLEET_PGBOUNCER=1: the LAPI reaches PostgreSQL through pgbouncer.
    let pgb = pg
        .as_ref()
        .filter(|_| std::env::var("FLEET_PGBOUNCER").is_ok_and(|v| v == "1"))
        .map(postgres::PgBouncer::start);
    let lapi = Lapi::start_opts(
        &s.lapi,
        scale::LAPI,
        &crowdsec::Options {
            db_config: pgb
                .as_ref()
                .map(postgres::PgBouncer::db_config)
                .or_else(|| pg.as_ref().map(Postgres::db_config)),
            metrics: Some("127.0.0.1:6060".parse().unwrap()),
            ..Default::default()
        },
    );
    let lpid = lapi.pid().expect("LAPI pid");
    // FLEET_DECISIONS=K: K decisions in force (origin cscli, 198.18.0.0/15, 4 h) before the
    // fleet starts, so that what a pull costs can be seen to grow, or not, with them.
    let k: u32 = std::env::var("FLEET_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if k > 0 {
        let csv = lapi.config().with_file_name("decisions.csv");
        let mut rows = String::from("duration,origin,reason,scope,type,value\n");
        for j in 0..k {
            rows += &format!("4h,cscli,bench,ip,ban,198.18.{}.{}\n", j / 250, j % 250 + 1);
        }
        std::fs::write(&csv, rows).unwrap();
        lapi.cscli(&["decisions", "import", "-i", &csv.display().to_string()]);
        // crowdsec 1.4.6's import sets the origin `cscli-import` whatever the file says: made
        // `cscli` (what `cscli decisions add` writes), an origin the daemon's reads ask for.
        let fix = "UPDATE decisions SET origin = 'cscli' WHERE origin = 'cscli-import'";
        match &pg {
            Some(pg) => {
                pg.psql_in(postgres::DATABASE, fix);
            }
            None => must(&format!(
                "sqlite3 {} \"{fix}\"",
                lapi.config().with_file_name("data/crowdsec.db").display()
            )),
        }
        let listed = lapi.cscli(&["decisions", "list", "--origin", "cscli", "-o", "raw"]);
        assert!(listed.lines().count() > k as usize, "{listed}");
    }
    // FLEET_TRACE=DIR: PostgreSQL logs every statement with its parameters and the time it
    // ended (ms), kept in DIR with the bouncers and decisions, to tell why a host missed.
    let trace = std::env::var_os("FLEET_TRACE").map(PathBuf::from);
    if let (Some(_), Some(pg)) = (&trace, &pg) {
        pg.psql("ALTER SYSTEM SET log_min_duration_statement = 0");
        pg.psql("ALTER SYSTEM SET log_line_prefix = '%m [%p] '");
        pg.psql("SELECT pg_reload_conf()");
    }
    let mut runs = Vec::new();
    let mut curls = Vec::new();
    for (i, hns) in s.hosts.iter().enumerate() {
        // Host i's daemon: its own machine on the LAPI, blocking with nftables, `extra`
        // configuration lines (the pull's), in `mode`.
        let start_daemon = |run: &Run, extra: &str, mode: &str| {
            lapi.machine(
                &format!("m{i}"),
                &format!("pw-{i}-0123456789"),
                &run.p("lapi.yaml"),
            );
            let d = run.dir.path().display().to_string();
            run.write_config(&format!(
                "TCP_PORTS=\"{PORT}\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
                 BLOCK_TIMEOUT=\"3600\"\nCROWDSEC_CREDENTIALS=\"{d}/lapi.yaml\"\n{extra}"
            ));
            run.start_ok(&[mode]);
        };
        let run = Run::new(hns);
        let key = lapi.bouncer(&format!("b{i}"), &run.p("bouncer.key"));
        // FLEET_CURL_MACHINES=1: the curl reference registers a machine per host too, as a
        // daemon run does (to tell what the machines cost the LAPI from what the daemons do).
        if curl && std::env::var("FLEET_CURL_MACHINES").is_ok_and(|v| v == "1") {
            lapi.machine(
                &format!("m{i}"),
                &format!("pw-{i}-0123456789"),
                &run.p("lapi.yaml"),
            );
        }
        if curl {
            let sep = if curl_url.contains('?') { '&' } else { '?' };
            let url = format!("http://{}{curl_url}{sep}n=[1-1000000]", scale::LAPI);
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", hns, "curl", "-s", "-o", "/dev/null"])
                // curl 7.88 takes N/s, N/m, N/h only.
                .args([
                    "--rate",
                    &if interval == 1 {
                        "1/s".to_string()
                    } else {
                        format!("{}/h", 3600 / interval)
                    },
                ])
                .args(["-H", &format!("X-Api-Key: {key}"), &url])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            curls.push(cmd);
            // FLEET_CURL_WITH_DAEMONS=1: a daemon on every host too, that pushes and never
            // pulls (no bouncer key): what the daemons' presence costs the LAPI apart from
            // their pulls.
            // (=tcp: `-tcp`, listening sockets and no packet capture, instead of `-stcp`.)
            let with = std::env::var("FLEET_CURL_WITH_DAEMONS").unwrap_or_default();
            if with == "1" || with == "tcp" {
                start_daemon(&run, "", if with == "tcp" { "-tcp" } else { "-stcp" });
            }
            runs.push(run);
            continue;
        }
        let d = run.dir.path().display().to_string();
        let pulls = format!(
            "CROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"{interval}\"\n"
        );
        // FLEET_OTHERS=tcp: every host but the scanned one runs `-tcp` (listening sockets, no
        // packet capture): on one kernel every packet pays for every stealth capture of every
        // namespace, which inflates the LAPI's cost per request (doc/fleets.md "Scale"); a
        // fleet of real machines has one capture per kernel.
        let others_tcp = std::env::var("FLEET_OTHERS").is_ok_and(|v| v == "tcp");
        start_daemon(
            &run,
            &pulls,
            if others_tcp && i > 0 { "-tcp" } else { "-stcp" },
        );
        runs.push(run);
    }
    // The curl loops start once every bouncer is made: spread evenly over one second, so
    // that their requests come one at a time; FLEET_CURL_TOGETHER=1: in the same instant,
    // so that they come in bursts of N.
    let together = std::env::var("FLEET_CURL_TOGETHER").is_ok_and(|v| v == "1");
    let curls: Vec<std::process::Child> = curls
        .into_iter()
        .map(|mut c| {
            if !together {
                std::thread::sleep(Duration::from_millis(1000 / u64::from(n.max(1))));
            }
            c.spawn().expect("curl")
        })
        .collect();
    if !curl {
        for r in &runs {
            eventually("every daemon pulls", 120, || {
                r.log.count("pushing alerts and pulling decisions") > 0
            });
        }
    }
    let setup = t_setup.elapsed();
    // Let the first (startup) reads and the LAPI's caches settle.
    std::thread::sleep(Duration::from_secs(10));
    let pids: Vec<i32> = runs.iter().filter_map(Run::pid).collect();
    let pgpid = pg.as_ref().and_then(Postgres::pid);
    let pgbpid = pgb.as_ref().and_then(postgres::PgBouncer::pid);
    // The database's CPU: the server's processes, and pgbouncer's when it is there.
    let db_cpu = || pgpid.map_or(0, tree_cpu_ms) + pgbpid.map_or(0, tree_cpu_ms);
    let (l0, p0, r0, c0) = (
        cpu_ms(lpid),
        db_cpu(),
        lapi_requests(&s.lapi),
        passive_opens(&s.lapi),
    );
    let d0: Vec<u64> = pids.iter().map(|p| cpu_ms(*p)).collect();
    let routes0 = lapi_routes(&s.lapi);
    let us0 = user_system_ticks(lpid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_s));
    let secs = t0.elapsed().as_secs_f64();
    let (l1, p1, r1, c1) = (
        cpu_ms(lpid),
        db_cpu(),
        lapi_requests(&s.lapi),
        passive_opens(&s.lapi),
    );
    let d1: Vec<u64> = pids.iter().map(|p| cpu_ms(*p)).collect();
    let routes: Vec<String> = lapi_routes(&s.lapi)
        .into_iter()
        .map(|(r, v)| (v - routes0.get(&r).copied().unwrap_or(0), r))
        .filter(|(v, _)| *v > 0)
        .map(|(v, r)| format!("{r} {v}"))
        .collect();
    let us1 = user_system_ticks(lpid);
    println!(
        "BENCH fleet-scale {label}: requests while idle, by route: {}; LAPI CPU in user space {} ticks, in the kernel {} ticks (the kernel's share includes the softirq work of delivering its answers through the bridge to the hosts' namespaces)",
        routes.join(", "),
        us1.0 - us0.0,
        us1.1 - us0.1
    );
    // FLEET_TRACE: the LAPI's log so far (a line per request, with the time it took).
    if let Some(dir) = &trace {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::copy(
            lapi.config().with_file_name("log/crowdsec_api.log"),
            dir.join(format!(
                "{}-{n}-{}-lapi.log",
                format!("{db:?}").to_lowercase(),
                if curl { "curl" } else { "portsentry" }
            )),
        );
        let wal = lapi.config().with_file_name("data/crowdsec.db-wal");
        if let Ok(m) = std::fs::metadata(&wal) {
            println!(
                "BENCH fleet-scale {label}: SQLite write-ahead log {} KiB",
                m.len() / 1024
            );
        }
    }
    let conns = c1 - c0;
    let lapi_pct = (l1 - l0) as f64 / secs / 10.0;
    let db_pct = (p1 - p0) as f64 / secs / 10.0;
    let req_s = (r1 - r0) as f64 / secs;
    let per_req_ms = (l1 - l0 + p1 - p0) as f64 / (r1 - r0).max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let saturating_s = n as f64 * per_req_ms / (1000.0 * cores);
    let mut dcpu: Vec<u128> = d0
        .iter()
        .zip(&d1)
        .map(|(a, b)| u128::from(b - a) * 1000 / (secs * 1000.0) as u128)
        .collect();
    let mut drss: Vec<u128> = pids.iter().map(|p| u128::from(rss_kib(*p).0)).collect();
    let (lrss, _) = rss_kib(lpid);
    let pgpss = pgpid.map_or(0, tree_pss_kib);
    println!(
        "BENCH fleet-scale {label}: set-up {:.0} s; idle {secs:.0} s: LAPI CPU {lapi_pct:.1}% of a core ({:.3}% per host), \
         DB CPU {db_pct:.1}% ({:.3}% per host), LAPI RSS {} MiB, DB PSS {} MiB, {req_s:.1} requests/s, \
         {per_req_ms:.2} ms CPU (LAPI+DB) per request, {conns} new connections, LAPI+DB would fill the {cores:.0} cores at an interval of {saturating_s:.2} s; \
         daemons: CPU median {} ms/s max {} ms/s, RSS median {} MiB max {} MiB",
        setup.as_secs_f64(),
        lapi_pct / f64::from(n),
        db_pct / f64::from(n),
        lrss / 1024,
        pgpss / 1024,
        percentile(&mut dcpu, 0.5),
        percentile(&mut dcpu, 1.0),
        percentile(&mut drss, 0.5) / 1024,
        percentile(&mut drss, 1.0) / 1024,
    );
    if curl {
        for mut c in curls {
            let _ = c.kill();
            let _ = c.wait();
        }
        return;
    }
    // Propagation: every other host's fleet4, timed by `nft monitor` there.
    let mons: Vec<Monitor> = s.hosts[1..].iter().map(|h| Monitor::spawn(h)).collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut rng = common::Rng(0x5ca1e + u64::from(n));
    // The scans' cost: LAPI + database CPU over the scans, beyond the idle rate (with N = 1
    // that is the pushes and little else).
    let (ls0, ps0, rs0, ts0) = (
        cpu_ms(lpid),
        db_cpu(),
        lapi_requests(&s.lapi),
        Instant::now(),
    );
    let mut times: Vec<u128> = Vec::new();
    let mut never = 0usize;
    let mut missed: Vec<(usize, String, Instant)> = Vec::new();
    let mut blocked_on_1 = Vec::new();
    for k in 0..SCANNERS {
        let src = scale::scanner4(k);
        std::thread::sleep(Duration::from_millis(rng.below(interval * 1000)));
        let t0 = Instant::now();
        common::answered(
            &s.scanner,
            &src,
            format!("{}:{PORT}", scale::addr4(1)).parse().unwrap(),
            Duration::from_millis(300),
        );
        let mut got: Vec<Option<Instant>> = vec![None; mons.len()];
        while t0.elapsed() < Duration::from_secs(10) && got.iter().any(Option::is_none) {
            for (i, m) in mons.iter().enumerate() {
                if got[i].is_none() {
                    got[i] = m.added("fleet4", &src, t0);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (i, g) in got.into_iter().enumerate() {
            match g {
                Some(t) => times.push((t - t0).as_millis()),
                None => {
                    never += 1;
                    missed.push((i, src.clone(), t0));
                }
            }
        }
        if let Some(x) = runs[0]
            .log
            .arrival_containing(&format!("Host {src} has been blocked"))
        {
            blocked_on_1.push(x.saturating_duration_since(t0).as_millis());
        }
        // The hosts re-read the whole stream 5 s after new decisions: let that pass, as a
        // fleet between two scans would.
        std::thread::sleep(Duration::from_secs(6));
    }
    let scan_s = ts0.elapsed().as_secs_f64();
    let scan_cpu = (cpu_ms(lpid) + db_cpu() - ls0 - ps0) as f64;
    let idle_rate = (l1 - l0 + p1 - p0) as f64 / secs;
    println!(
        "BENCH fleet-scale {label}: scans: {SCANNERS} pushes in {scan_s:.0} s, {} requests, LAPI+DB CPU {scan_cpu:.0} ms, \
         {:.1} ms per scan beyond the idle rate (the push, and what the fleet's pulls do with it)",
        lapi_requests(&s.lapi) - rs0,
        (scan_cpu - idle_rate * scan_s) / f64::from(SCANNERS),
    );
    let total = SCANNERS as usize * mons.len();
    println!(
        "BENCH fleet-scale {label}: propagation to the {} other hosts ({total} arrivals, {} within 10 s): median {} ms, \
         p99 {} ms, max {} ms, never (10 s): {never}; blocked on host 1 after median {} ms",
        mons.len(),
        times.len(),
        ms_or_none(&mut times, 0.5),
        ms_or_none(&mut times, 0.99),
        ms_or_none(&mut times, 1.0),
        ms_or_none(&mut blocked_on_1, 0.5),
    );
    // Which host missed which scanner, and whether it came later (a slow host) or not by
    // the end of the run (a decision the host's incremental pulls never listed).
    for (i, src, t0) in &missed {
        let late = mons[*i].added("fleet4", src, *t0);
        println!(
            "BENCH fleet-scale {label}: missed: host {} (bouncer b{}) scanner {src}: {}",
            i + 2,
            i + 1,
            late.map_or("not by the end of the run".to_string(), |t| format!(
                "arrived after {} ms",
                (t - *t0).as_millis()
            )),
        );
    }
    if let (Some(dir), Some(pg)) = (&trace, &pg) {
        let tag = format!("{db:?}-{n}").to_lowercase();
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{tag}-postgres.log")), pg.log());
        let q = |sql: &str| pg.psql_in(postgres::DATABASE, sql);
        let _ = std::fs::write(
            dir.join(format!("{tag}-bouncers.txt")),
            q("SELECT id, name, last_pull FROM bouncers ORDER BY id"),
        );
        let _ = std::fs::write(
            dir.join(format!("{tag}-decisions.txt")),
            q("SELECT id, created_at, value FROM decisions ORDER BY id"),
        );
    }
    drop(mons);
    for r in &runs {
        let lines = r.log.lines();
        assert!(lines.iter().all(|l| !l.contains("panicked")), "{lines:#?}");
    }
}
