//! Fleets (issue 12) against the REAL LAPI of Debian's crowdsec 1.4.6, started by the test in
//! its own namespace (`common::crowdsec`). Until the fleet is wired into the daemon's event
//! loop, these drive `sys::fleet::Fleet` directly, the way the loop will: `record_block`,
//! `flush`, `take_log`, from a thread inside a "host" namespace whose nftables table
//! `inet portsentry` gets the pulled bans. Privileged (root, namespaces, nft): says so loudly
//! when it cannot run, and fails under CI=true.

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crowdsec::{self, Lapi};
use common::{must, privileged, sh};
use portsentry::config::{BlockMethod, Config};
use portsentry::fleet::alert::Scan;
use portsentry::mode::Mode;
use portsentry::sys::fleet::{self, Fleet, Settings};

const LAPI4: &str = "203.0.113.1";
const HOST4: &str = "203.0.113.2";
const HOST6: &str = "2001:db8:113::2";

fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if !crowdsec::installed() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: crowdsec and cscli are not installed (.ci/run installs them)");
        }
        eprintln!("\n*** SKIPPED {test}: crowdsec (the LAPI) is not installed ***\n");
        return false;
    }
    true
}

/// A LAPI namespace and a host namespace joined by a veth pair.
struct Pair {
    lapi: String,
    host: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let id = format!("{}{tag}", std::process::id() % 100000);
        let p = Pair {
            lapi: format!("pfl{id}"),
            host: format!("pfh{id}"),
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

    fn set(&self, name: &str) -> String {
        String::from_utf8_lossy(
            &sh(&format!(
                "ip netns exec {} nft list set inet portsentry {name}",
                self.host
            ))
            .stdout,
        )
        .into_owned()
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

struct Host {
    fleet: Arc<Mutex<Option<Fleet>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Host {
    fn start(pair: &Pair, s: Settings) -> Host {
        let f = pair.in_host(move || {
            portsentry::sys::nftables::setup(1 << 20).expect("nft table");
            Fleet::start(s).expect("fleet start")
        });
        Host {
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

fn eventually(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never happened within {secs} s: {what}");
}

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

#[test]
fn a_block_reaches_the_lapi_and_comes_back_as_a_fleet_ban_and_a_deleted_decision_goes() {
    if !ready("a_block_reaches_the_lapi_and_comes_back_as_a_fleet_ban_and_a_deleted_decision_goes")
    {
        return;
    }
    let pair = Pair::new("a");
    let lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let dir = tempfile::tempdir().unwrap();
    lapi.machine("host-a", "pw-a-123456789", &dir.path().join("lapi.yaml"));
    lapi.bouncer("host-a", &dir.path().join("bouncer.key"));
    let s = settings(
        dir.path(),
        &format!(
            "CROWDSEC_CREDENTIALS=\"{d}/lapi.yaml\"\nCROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\n",
            d = dir.path().display()
        ),
    );
    let host = Host::start(&pair, s);
    host.wait_log("pushing alerts and pulling decisions", 5);
    host.block("192.0.2.77");
    host.block("2001:db8:77::77");
    host.flush();
    eventually("both alerts in the LAPI with our scenario", 15, || {
        let a = alert_sources(&lapi);
        a.contains(&("192.0.2.77".into(), "portsentry/tcp-syn-scan".into()))
            && a.contains(&("2001:db8:77::77".into(), "portsentry/tcp-syn-scan".into()))
    });
    assert!(
        lapi.decisions()
            .contains(&("192.0.2.77".into(), "portsentry/tcp-syn-scan".into()))
    );
    // Pulled back into this host's fleet sets (v4 and v6).
    eventually("fleet sets hold both", 10, || {
        pair.set("fleet4").contains("192.0.2.77") && pair.set("fleet6").contains("2001:db8:77::77")
    });
    let listing = String::from_utf8_lossy(
        &sh(&format!(
            "ip netns exec {} {} blocked list",
            pair.host,
            env!("CARGO_BIN_EXE_portsentry")
        ))
        .stdout,
    )
    .into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("192.0.2.77") && l.ends_with("crowdsec")),
        "{listing}"
    );
    // Deleted on the LAPI: gone from the set.
    lapi.cscli(&["decisions", "delete", "--ip", "192.0.2.77"]);
    eventually("deleted decision gone from fleet4", 10, || {
        !pair.set("fleet4").contains("192.0.2.77")
    });
    assert!(pair.set("fleet6").contains("2001:db8:77::77"));
    // A decision naming this host, or an ignored address, is not applied, and says so once.
    lapi.cscli(&[
        "decisions",
        "add",
        "--ip",
        HOST4,
        "--duration",
        "1h",
        "--reason",
        "test",
    ]);
    lapi.cscli(&[
        "decisions",
        "add",
        "--ip",
        "192.0.2.200",
        "--duration",
        "1h",
        "--reason",
        "test",
    ]);
    lapi.cscli(&[
        "decisions",
        "add",
        "--range",
        "198.51.100.0/24",
        "--duration",
        "1h",
        "--reason",
        "test",
    ]);
    eventually("range applied", 10, || {
        pair.set("fleet4").contains("198.51.100.0/24")
    });
    host.wait_log(
        &format!("(ban {HOST4}, test) not applied: {HOST4} is an address of this host"),
        5,
    );
    host.wait_log(
        "(ban 192.0.2.200, test) not applied: 192.0.2.200 is in the ignore file",
        5,
    );
    let set = pair.set("fleet4");
    assert!(
        !set.contains(HOST4) && !set.contains("192.0.2.200"),
        "{set}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let told: Vec<String> = host
        .lines()
        .into_iter()
        .filter(|l| l.contains(&format!("(ban {HOST4},")))
        .collect();
    assert_eq!(told.len(), 1, "logged once: {told:#?}");
    // `blocked del` refuses fleet bans.
    let out = sh(&format!(
        "ip netns exec {} {} blocked del 198.51.100.0/24",
        pair.host,
        env!("CARGO_BIN_EXE_portsentry")
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cscli decisions delete --range 198.51.100.0/24")
    );
    host.stop();
}

#[test]
fn alerts_wait_in_the_spool_while_the_lapi_is_down_and_arrive_once() {
    if !ready("alerts_wait_in_the_spool_while_the_lapi_is_down_and_arrive_once") {
        return;
    }
    let pair = Pair::new("b");
    let mut lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let dir = tempfile::tempdir().unwrap();
    lapi.machine("host-b", "pw-b-123456789", &dir.path().join("lapi.yaml"));
    let s = settings(
        dir.path(),
        &format!(
            "CROWDSEC_CREDENTIALS=\"{}/lapi.yaml\"\n",
            dir.path().display()
        ),
    );
    let host = Host::start(&pair, s);
    host.block("192.0.2.1");
    host.flush();
    eventually("first alert", 10, || alert_sources(&lapi).len() == 1);
    lapi.pause();
    // 200 distinct scanners from several prefixes, recorded over a few loop turns.
    let ips: Vec<String> = (0..200)
        .map(|i| format!("10.{}.{}.{}", i % 7, i / 7, i % 250 + 1))
        .collect();
    for chunk in ips.chunks(37) {
        for ip in chunk {
            host.block(ip);
        }
        host.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
    host.wait_log("unreachable", 10);
    std::thread::sleep(Duration::from_secs(3));
    lapi.resume();
    host.wait_log("reachable again", 90);
    eventually("all 201 alerts in the LAPI", 30, || {
        lapi.decisions().len() >= 201
    });
    std::thread::sleep(Duration::from_secs(2));
    let d = lapi.decisions();
    let mut values: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
    values.sort_unstable();
    let n = values.len();
    values.dedup();
    assert_eq!((n, values.len()), (201, 201), "every scanner exactly once");
    for ip in &ips {
        assert!(values.contains(&ip.as_str()), "{ip}");
    }
    host.stop();
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
    let (url, login, pw) = (
        p.creds.url.clone(),
        p.creds.login.clone(),
        p.creds.password.clone(),
    );
    let pre = body(
        "deadbeef00000001",
        &recs[..3]
            .iter()
            .map(|r| Planned::Single(*r))
            .collect::<Vec<_>>(),
    );
    pair.in_host(move || {
        let c = portsentry::sys::fleet::http::Client::new(url, None).unwrap();
        let t = c.login(&login, &pw).unwrap();
        c.post_alerts(&t, &pre).unwrap();
    });
    let host = Host::start(&pair, s);
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
fn a_wrong_password_is_a_clear_error_and_alerts_wait() {
    if !ready("a_wrong_password_is_a_clear_error_and_alerts_wait") {
        return;
    }
    let pair = Pair::new("d");
    let lapi = Lapi::start(&pair.lapi, &format!("{LAPI4}:8080"));
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("lapi.yaml");
    lapi.machine("host-d", "pw-d-123456789", &creds);
    let text = std::fs::read_to_string(&creds)
        .unwrap()
        .replace("pw-d-123456789", "wrong-password");
    std::fs::write(&creds, text).unwrap();
    let s = settings(
        dir.path(),
        &format!("CROWDSEC_CREDENTIALS=\"{}\"\n", creds.display()),
    );
    let host = Host::start(&pair, s);
    host.block("192.0.2.9");
    host.flush();
    host.wait_log("refused the login of machine \"host-d\" (HTTP 401", 10);
    assert!(
        host.lines().iter().all(|l| !l.contains("wrong-password")),
        "no password in the log"
    );
    assert_eq!(
        host.fleet
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .status()
            .waiting,
        1
    );
    host.stop();
}

#[test]
fn a_forged_flood_of_10000_sources_reaches_the_lapi_whole_in_few_alerts() {
    if !ready("a_forged_flood_of_10000_sources_reaches_the_lapi_whole_in_few_alerts") {
        return;
    }
    let pair = Pair::new("e");
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
    let host = Host::start(&pair, s);
    host.wait_log("pushing alerts", 5);
    let t0 = Instant::now();
    // 10,000 forged sources from one /64, recorded as a flooded loop would (100 per turn).
    for turn in 0..100u32 {
        for i in 0..100u32 {
            host.block(&format!("2001:db8:3::{:x}", turn * 100 + i + 1));
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
        "BENCH fleet flood: 10000 records in {:.0} ms, all delivered after {:.0} ms, {} decisions ({} distinct) in {alerts} alerts",
        recorded.as_secs_f64() * 1000.0,
        delivered.as_secs_f64() * 1000.0,
        d.len(),
        v.len()
    );
    assert_eq!((d.len(), v.len()), (10_000, 10_000));
    assert!(
        alerts <= 200,
        "the flood must not swamp the alert list: {alerts} alerts"
    );
    host.wait_log("Fleet alert limit: ", 15);
    host.stop();
}
