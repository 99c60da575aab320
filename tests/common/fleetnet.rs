//! A fleet in namespaces for the fleet tests and benchmark (issue 12): a LAPI namespace
//! holding a bridge (203.0.113.1, 2001:db8:113::1), target namespaces A, B, C and D and one
//! scanner namespace, each joined to the bridge by a veth pair. Addresses are documentation
//! ranges and live only inside these namespaces: 203.0.113.0/24 and 2001:db8:113::/64 (host
//! N is .N / ::N). A, B and C run portsentry (`-stcp`, BLOCK_METHOD="nftables", pushing and
//! pulling with their own machine and bouncer key); D runs Debian's crowdsec-firewall-bouncer
//! (the documented alternative). Everything made is removed on drop: daemons and the bouncer
//! are stopped by pid, namespaces deleted.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::crowdsec::Lapi;
use super::{Run, must, sh};

/// The watched port on every host (TCP_PORTS).
pub const PORT: u16 = 4001;
/// A port nothing listens on or watches: a connect is refused when traffic flows, times out
/// when it is dropped.
pub const CLOSED: u16 = 9;
/// The LAPI's address and port (on the bridge).
pub const LAPI: &str = "203.0.113.1:8080";

/// Host letters and their address number.
pub const HOSTS: [(&str, u8); 4] = [("a", 2), ("b", 3), ("c", 4), ("d", 5)];

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `203.0.113.N`.
pub fn v4(n: u32) -> String {
    format!("203.0.113.{n}")
}

/// `2001:db8:113::N` (hex), and `2001:db8:113::1:N` beyond 0xffff.
pub fn v6(n: u32) -> String {
    if n <= 0xffff {
        format!("2001:db8:113::{n:x}")
    } else {
        format!("2001:db8:113::{:x}:{:x}", n >> 16, n & 0xffff)
    }
}

/// The namespaces and links.
pub struct Topology {
    /// The LAPI's namespace (it holds the bridge).
    pub lapi: String,
    /// `a`, `b`, `c`, `d` → namespace.
    pub hosts: Vec<(String, String)>,
    pub scanner: String,
    /// The scanner's veth (for nmap -e).
    pub scanner_if: String,
}

impl Topology {
    pub fn new() -> Topology {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let t = Topology {
            lapi: format!("pfL{id}"),
            hosts: HOSTS
                .iter()
                .map(|(h, _)| (h.to_string(), format!("pf{}{id}", h.to_uppercase())))
                .collect(),
            scanner: format!("pfS{id}"),
            scanner_if: format!("fs{id}"),
        };
        let l = &t.lapi;
        must(&format!(
            "ip netns add {l} && ip -n {l} link set lo up && \
             ip -n {l} link add br0 type bridge && ip -n {l} link set br0 up && \
             ip -n {l} addr add 203.0.113.1/24 dev br0 && \
             ip -n {l} addr add 2001:db8:113::1/64 dev br0 nodad"
        ));
        let mut members: Vec<(String, String, u8)> = HOSTS
            .iter()
            .zip(&t.hosts)
            .map(|((h, n), (_, ns))| (ns.clone(), format!("f{h}{id}"), *n))
            .collect();
        members.push((t.scanner.clone(), t.scanner_if.clone(), 10));
        for (ns, dev, n) in &members {
            must(&format!(
                "ip netns add {ns} && ip -n {ns} link set lo up && \
                 ip link add {dev} netns {ns} type veth peer name p{dev} netns {l} && \
                 ip -n {l} link set p{dev} master br0 && ip -n {l} link set p{dev} up && \
                 ip -n {ns} addr add {a4}/24 dev {dev} && \
                 ip -n {ns} addr add {a6}/64 dev {dev} nodad && \
                 ip -n {ns} link set {dev} up",
                a4 = v4(u32::from(*n)),
                a6 = v6(u32::from(*n))
            ));
        }
        t
    }

    /// The namespace of host `h` (`a` ... `d`).
    pub fn ns(&self, h: &str) -> &str {
        &self.hosts.iter().find(|(x, _)| x == h).expect("host").1
    }

    /// Host `h`'s address number.
    pub fn num(h: &str) -> u32 {
        u32::from(HOSTS.iter().find(|(x, _)| *x == h).expect("host").1)
    }

    /// Gives the scanner these addresses (of 203.0.113.0/24 and 2001:db8:113::/64).
    pub fn scanner_addresses(&self, addrs: &[String]) {
        let mut batch = String::new();
        for a in addrs {
            let plen = if a.contains(':') { "64 nodad" } else { "24" };
            batch.push_str(&format!("addr add {a}/{plen} dev {}\n", self.scanner_if));
        }
        let path = std::env::temp_dir().join(format!("{}.batch", self.scanner));
        std::fs::write(&path, batch).unwrap();
        must(&format!("ip -n {} -b {}", self.scanner, path.display()));
        let _ = std::fs::remove_file(path);
    }

    /// Static neighbour entries on the scanner for host `h` (raw sends to a neighbour being
    /// resolved are queued three deep and the rest dropped).
    pub fn scanner_neighbours(&self, h: &str) {
        let ns = self.ns(h);
        let o = sh(&format!("ip -n {ns} -o link show type veth"));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mac = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("mac")
            .to_string();
        let n = Self::num(h);
        for a in [v4(n), v6(n)] {
            must(&format!(
                "ip -n {} neigh replace {a} lladdr {mac} dev {} nud permanent",
                self.scanner, self.scanner_if
            ));
        }
    }

    /// One nmap SYN scan of PORT on host `h` from `src` (an address of the scanner).
    pub fn nmap_syn(&self, src: &str, h: &str) {
        let n = Self::num(h);
        let (six, dst) = if src.contains(':') {
            ("-6", v6(n))
        } else {
            ("", v4(n))
        };
        must(&format!(
            "ip netns exec {} timeout 30 nmap {six} -Pn -n -sS -S {src} -e {} -p {PORT} --max-retries 0 {dst} >/dev/null",
            self.scanner, self.scanner_if
        ));
    }

    /// A TCP connect (one SYN) from `src` to `dst:port`, at most `timeout` long. True when
    /// it was answered (connected or refused): the packets flow; false when it timed out.
    pub fn connect(&self, src: &str, dst: &str, port: u16, timeout: Duration) -> bool {
        let dst = SocketAddr::new(dst.parse().unwrap(), port);
        super::answered(&self.scanner, src, dst, timeout)
    }

    /// Does traffic from `src` reach host `h`? (A connect to its closed port, 1 s.)
    pub fn flows(&self, src: &str, h: &str) -> bool {
        let n = Self::num(h);
        let dst = if src.contains(':') { v6(n) } else { v4(n) };
        self.connect(src, &dst, CLOSED, Duration::from_secs(1))
    }

    /// The probe of a scanner at host `h`'s watched port (`-stcp` sees its SYN).
    pub fn probe(&self, src: &str, h: &str) {
        let n = Self::num(h);
        let dst = if src.contains(':') { v6(n) } else { v4(n) };
        self.connect(src, &dst, PORT, Duration::from_millis(300));
    }

    /// The address spans host `h`'s set `table`/`set` (e.g. `inet portsentry fleet4`) holds,
    /// read from `nft -j list set` (single addresses, prefixes and ranges).
    pub fn spans(&self, h: &str, table: &str, set: &str) -> Vec<(u128, u128)> {
        let o = sh(&format!(
            "ip netns exec {} nft -j list set {table} {set}",
            self.ns(h)
        ));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let num = |a: &serde_json::Value| -> Option<u128> {
            match a.as_str()?.parse::<IpAddr>().ok()? {
                IpAddr::V4(x) => Some(u128::from(u32::from(x))),
                IpAddr::V6(x) => Some(u128::from(x)),
            }
        };
        let mut out = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["set"]["elem"].as_array().into_iter().flatten() {
                let val = if e["elem"].is_object() {
                    &e["elem"]["val"]
                } else {
                    e
                };
                let span = if let Some(r) = val.get("range") {
                    num(&r[0]).zip(num(&r[1]))
                } else if let Some(p) = val.get("prefix") {
                    let bits: u32 = if p["addr"].as_str().is_some_and(|a| a.contains(':')) {
                        128
                    } else {
                        32
                    };
                    let len = p["len"].as_u64().unwrap_or(0) as u32;
                    num(&p["addr"]).map(|a| {
                        let host = if bits - len >= 128 {
                            u128::MAX
                        } else {
                            (1u128 << (bits - len)) - 1
                        };
                        (a, a | host)
                    })
                } else {
                    num(val).map(|a| (a, a))
                };
                out.extend(span);
            }
        }
        out
    }

    /// The addresses of `addrs` host `h`'s set `table`/`set` does not cover.
    pub fn missing(&self, h: &str, table: &str, set: &str, addrs: &[String]) -> Vec<String> {
        if addrs.is_empty() {
            return Vec::new();
        }
        let mut spans = self.spans(h, table, set);
        spans.sort_unstable();
        addrs
            .iter()
            .filter(|a| {
                let x = match a.parse::<IpAddr>() {
                    Ok(IpAddr::V4(x)) => u128::from(u32::from(x)),
                    Ok(IpAddr::V6(x)) => u128::from(x),
                    Err(_) => return true,
                };
                let i = spans.partition_point(|s| s.0 <= x);
                i == 0 || spans[i - 1].1 < x
            })
            .cloned()
            .collect()
    }

    /// Does portsentry's fleet set on host `h` cover `addr`?
    pub fn in_fleet_set(&self, h: &str, addr: &str) -> bool {
        let set = if addr.contains(':') {
            "fleet6"
        } else {
            "fleet4"
        };
        self.missing(h, "inet portsentry", set, &[addr.to_string()])
            .is_empty()
    }

    /// `nft list set inet portsentry NAME` on host `h`.
    pub fn list_set(&self, h: &str, name: &str) -> String {
        String::from_utf8_lossy(
            &sh(&format!(
                "ip netns exec {} nft list set inet portsentry {name}",
                self.ns(h)
            ))
            .stdout,
        )
        .into_owned()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let mut all = vec![self.lapi.clone(), self.scanner.clone()];
        all.extend(self.hosts.iter().map(|h| h.1.clone()));
        for ns in all {
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
    }
}

/// One portsentry host of the fleet: its run (temp dir, fake syslog), machine and bouncer.
pub struct Host {
    pub name: String,
    pub run: Run,
}

impl Host {
    /// Registers host `h` on the LAPI (machine `ps-h`, bouncer `ps-h`), writes its config
    /// and its ignore file (loopback, 0.0.0.0 and `ignore`) and starts `portsentry -stcp` in
    /// its namespace.
    pub fn start(t: &Topology, lapi: &Lapi, h: &str, ignore: &[&str]) -> Host {
        let run = Run::new(t.ns(h));
        let d = run.dir.path().display().to_string();
        let mut list = String::from("127.0.0.1/32\n0.0.0.0\n");
        for i in ignore {
            list.push_str(&format!("{i}\n"));
        }
        std::fs::write(run.p("portsentry.ignore"), list).unwrap();
        lapi.machine(
            &format!("ps-{h}"),
            &format!("pw-{h}-0123456789"),
            &run.p("lapi.yaml"),
        );
        lapi.bouncer(&format!("ps-{h}"), &run.p("bouncer.key"));
        // The scenarios scan from hundreds of addresses of one test prefix (the outage's 100
        // IPv4 scanners are one /24), and bench_fleet's flood blocks 10,000 forged sources
        // seen once each: no prefix budget and no lone budget, which e2e_blockbudget and
        // e2e_flood cover.
        run.write_config(&format!(
            "TCP_PORTS=\"{PORT}\"\nBLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nBLOCK_METHOD=\"nftables\"\n\
             BLOCK_PREFIX_BUDGET=\"0\"\nBLOCK_LONE_BUDGET=\"0\"\nBLOCK_TIMEOUT=\"3600\"\nCROWDSEC_CREDENTIALS=\"{d}/lapi.yaml\"\n\
             CROWDSEC_BOUNCER_KEY_FILE=\"{d}/bouncer.key\"\nCROWDSEC_PULL_INTERVAL=\"1\"\n"
        ));
        let host = Host {
            name: h.to_string(),
            run,
        };
        host.run.start_ok(&["-stcp"]);
        host.run
            .log
            .wait_line("adminalert: PortSentry is now active and listening.");
        host.wait_log("pushing alerts and pulling decisions", 10);
        host
    }

    /// Wait until a log line contains `part`.
    pub fn wait_log(&self, part: &str, secs: u64) {
        eventually(
            &format!("{}: a log line with {part:?}", self.name),
            secs,
            || self.run.log.count(part) > 0,
        );
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.run.pid().expect("pid")
    }
}

/// Debian's crowdsec-firewall-bouncer in namespace `ns` (nftables mode, tables `ip crowdsec`
/// and `ip6 crowdsec6`, sets `crowdsec-blacklists` / `crowdsec6-blacklists`), polling the
/// LAPI every `every`.
pub struct FirewallBouncer {
    child: Option<Child>,
    ns: String,
    pub dir: tempfile::TempDir,
}

/// True when crowdsec-firewall-bouncer is installed.
pub fn firewall_bouncer_installed() -> bool {
    Command::new("crowdsec-firewall-bouncer")
        .arg("-V")
        .output()
        .is_ok()
}

impl FirewallBouncer {
    pub fn start(ns: &str, lapi: &Lapi, name: &str, every: &str) -> FirewallBouncer {
        let dir = tempfile::tempdir().unwrap();
        let key = lapi.bouncer(name, &dir.path().join("key"));
        let d = dir.path().display();
        let cfg = dir.path().join("bouncer.yaml");
        std::fs::write(
            &cfg,
            format!(
                "mode: nftables\npid_dir: {d}/\nupdate_frequency: {every}\ndaemonize: false\n\
                 log_mode: file\nlog_dir: {d}/\nlog_level: info\napi_url: http://{LAPI}/\n\
                 api_key: {key}\ninsecure_skip_verify: false\ndisable_ipv6: false\n\
                 deny_action: DROP\ndeny_log: false\nsupported_decisions_types:\n  - ban\n\
                 blacklists_ipv4: crowdsec-blacklists\nblacklists_ipv6: crowdsec6-blacklists\n\
                 nftables:\n  ipv4:\n    enabled: true\n    set-only: false\n    table: crowdsec\n    chain: crowdsec-chain\n\
                 \x20 ipv6:\n    enabled: true\n    set-only: false\n    table: crowdsec6\n    chain: crowdsec6-chain\n\
                 prometheus:\n  enabled: false\n  listen_addr: 127.0.0.1\n  listen_port: 60601\n"
            ),
        )
        .unwrap();
        let mut b = FirewallBouncer {
            child: None,
            ns: ns.to_string(),
            dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stdout.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "crowdsec-firewall-bouncer", "-c"])
            .arg(self.dir.path().join("bouncer.yaml"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("crowdsec-firewall-bouncer");
        self.child = Some(child);
    }

    /// Stops it (by pid) and starts it again: its start reads the whole stream.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Its log (for failure messages).
    pub fn log(&self) -> String {
        let mut s = String::new();
        for f in ["stdout.log", "crowdsec-firewall-bouncer.log"] {
            s.push_str(&std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default());
        }
        s
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("crowdsec-firewall-bouncer.log")
    }
}

impl Drop for FirewallBouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl FirewallBouncer {
    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            super::stop_child(c, nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
        }
    }
}

/// Wait (up to `secs`) until `cond` holds, else panic naming `what`.
pub fn eventually(what: &str, secs: u64, cond: impl Fn() -> bool) {
    if !within_secs(secs, cond) {
        panic!("never happened within {secs} s: {what}");
    }
}

/// Whether `cond` comes true within `secs` (checked every 100 ms), for a caller that says
/// itself what was missing.
pub fn within_secs(secs: u64, cond: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// CPU time (user + system) of `pid` so far, in ms.
pub fn cpu_ms(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |x| x.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the state.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |h| h.max(1) as u64);
    ticks * 1000 / hz
}

/// VmRSS and VmHWM (peak) of `pid` in KiB.
pub fn rss_kib(pid: i32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// `nft monitor` in a namespace: every line it prints, with when it arrived.
pub struct Monitor {
    child: Option<Child>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
}

impl Monitor {
    pub fn start(ns: &str) -> Monitor {
        let m = Monitor::spawn(ns);
        // Let it subscribe before anything is measured.
        std::thread::sleep(Duration::from_millis(200));
        m
    }

    /// As [`Monitor::start`] without the wait (many at once: wait once for all).
    pub fn spawn(ns: &str) -> Monitor {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("nft monitor");
        let out = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l2.lock().unwrap().push((Instant::now(), line));
            }
        });
        Monitor {
            child: Some(child),
            lines,
        }
    }

    /// Every line so far (for failure messages).
    pub fn all(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|x| x.1.clone())
            .collect()
    }

    /// When an `add element` line naming `addr` (as a whole word) in a set whose name
    /// contains `set` first arrived after `since`.
    pub fn added(&self, set: &str, addr: &str, since: Instant) -> Option<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(t, l)| {
                *t >= since
                    && l.starts_with("add element")
                    && l.contains(set)
                    && l.split([' ', ',', '{', '}']).any(|w| w == addr)
            })
            .map(|x| x.0)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
