//! Helpers for the privileged end-to-end tests: a target and a scanner network namespace
//! joined by a veth pair (addresses only inside them: 198.51.100.0/24 and 2001:db8::/64,
//! documentation ranges), a fake syslog socket that collects the daemon's lines, and the
//! daemon started with a temporary config. Everything made is removed on drop.
//!
//! Without root, or without `ip`, the tests say so loudly and are skipped — unless CI=true,
//! where that is a failure.
#![allow(dead_code)]

pub mod crowdsec;
pub mod fleetnet;
pub mod flood;
pub mod hostile_lapi;
pub mod loglines;
pub mod postgres;
pub mod scale;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TARGET4: &str = "198.51.100.1";
pub const SCANNER4: &str = "198.51.100.2";
/// A second scanner address, used as the ignored source.
pub const SCANNER4B: &str = "198.51.100.3";
pub const TARGET6: &str = "2001:db8::1";
pub const SCANNER6: &str = "2001:db8::2";

pub const BIN: &str = env!("CARGO_BIN_EXE_portsentry");

/// The optimized daemon (the build the package ships), for the tests that measure a flood: an
/// unoptimized debug build judges about half as many packets a second, so under a 200,000
/// packet/s flood its capture ring overflows (measured: 80,016 of 100,000 forged probes
/// judged, against all 100,000 with the release build, in the same minute). `tests/run-all`
/// builds it and names it in PORTSENTRY_RELEASE_BIN. Without it the test says so loudly and is
/// skipped; under CI=true that is a failure.
pub fn release_bin(test: &str) -> Option<&'static str> {
    static BIN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let bin = BIN.get_or_init(|| {
        std::env::var("PORTSENTRY_RELEASE_BIN")
            .ok()
            .filter(|p| Path::new(p).is_file())
    });
    if let Some(b) = bin {
        return Some(b.as_str());
    }
    let msg = format!(
        "{test}: needs the optimized daemon: `cargo build --release` and \
         PORTSENTRY_RELEASE_BIN=target/release/portsentry (tests/run-all does both)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIPPED {msg} ***\n");
    None
}

/// fail2ban's stock `portsentry` filter: `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`, with
/// <HOST> the address. Checked by hand (no regex crate): the line must end with exactly
/// `/<host> Port: <digits> TCP Blocked` or `... UDP Blocked`.
pub fn fail2ban_host(line: &str) -> Option<String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let rest = line
        .strip_suffix(" TCP Blocked")
        .or_else(|| line.strip_suffix(" UDP Blocked"))?;
    let (head, port) = rest.rsplit_once(" Port: ")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (_, host) = head.rsplit_once('/')?;
    host.parse::<IpAddr>().ok().map(|h| h.to_string())
}

/// True when privileged tests can run; otherwise prints why (and panics under CI=true).
pub fn privileged(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = nix::unistd::geteuid().is_root();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    if root && ip {
        return true;
    }
    let why = if !root {
        "not root"
    } else {
        "`ip` (iproute2) missing"
    };
    if ci {
        panic!("{test}: privileged end-to-end test cannot run under CI=true: {why}");
    }
    eprintln!(
        "\n*** SKIPPED {test}: privileged end-to-end test needs root and iproute2 ({why}) ***\n"
    );
    false
}

pub fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs")
}

pub fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "command failed: {cmd}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A target and a scanner namespace joined by veth.
pub struct Net {
    pub target: String,
    pub scanner: String,
}

impl Net {
    pub fn new() -> Net {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}x{n}", std::process::id() % 100000);
        let net = Net {
            target: format!("pst{id}"),
            scanner: format!("pss{id}"),
        };
        let (t, s) = (&net.target, &net.scanner);
        let (vt, vs) = (format!("vt{id}"), format!("vs{id}"));
        must(&format!("ip netns add {t} && ip netns add {s}"));
        must(&format!(
            "ip link add {vt} netns {t} type veth peer name {vs} netns {s} && \
             ip -n {t} link set lo up && ip -n {s} link set lo up && \
             ip -n {t} addr add {TARGET4}/24 dev {vt} && \
             ip -n {s} addr add {SCANNER4}/24 dev {vs} && \
             ip -n {s} addr add {SCANNER4B}/24 dev {vs} && \
             ip -n {t} addr add {TARGET6}/64 dev {vt} nodad && \
             ip -n {s} addr add {SCANNER6}/64 dev {vs} nodad && \
             ip -n {t} link set {vt} up && ip -n {s} link set {vs} up"
        ));
        net
    }

    /// Run `f` on a thread that has entered namespace `ns` (sockets it makes live there).
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        flood::in_namespace(ns, f)
    }

    /// TCP connect from the scanner (optionally from a given source), then read what the
    /// target sends (the banner) until EOF. Err if the connect fails or times out.
    pub fn connect(&self, src: Option<&str>, dst: &str, port: u16) -> Result<Vec<u8>, String> {
        let src: Option<IpAddr> = src.map(|s| s.parse().unwrap());
        let dst: SocketAddr = SocketAddr::new(dst.parse().unwrap(), port);
        Self::within(&self.scanner, move || {
            let s = match src {
                None => TcpStream::connect_timeout(&dst, Duration::from_secs(2)),
                Some(a) => {
                    let sock = nix::sys::socket::socket(
                        if a.is_ipv4() {
                            nix::sys::socket::AddressFamily::Inet
                        } else {
                            nix::sys::socket::AddressFamily::Inet6
                        },
                        nix::sys::socket::SockType::Stream,
                        nix::sys::socket::SockFlag::empty(),
                        None,
                    )
                    .map_err(|e| e.to_string())?;
                    use std::os::fd::AsRawFd;
                    nix::sys::socket::bind(
                        sock.as_raw_fd(),
                        &nix::sys::socket::SockaddrStorage::from(SocketAddr::new(a, 0)),
                    )
                    .map_err(|e| e.to_string())?;
                    nix::sys::socket::connect(
                        sock.as_raw_fd(),
                        &nix::sys::socket::SockaddrStorage::from(dst),
                    )
                    .map_err(|e| e.to_string())?;
                    Ok(TcpStream::from(sock))
                }
            }
            .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = Vec::new();
            let mut s = s;
            let _ = s.read_to_end(&mut buf);
            Ok(buf)
        })
    }

    /// Send one UDP datagram from the scanner; return the reply (banner) if one comes.
    pub fn udp(&self, src: Option<&str>, dst: &str, port: u16) -> Option<Vec<u8>> {
        let dst: SocketAddr = SocketAddr::new(dst.parse().unwrap(), port);
        let bind: SocketAddr = match src {
            Some(s) => SocketAddr::new(s.parse().unwrap(), 0),
            None if dst.is_ipv4() => "0.0.0.0:0".parse().unwrap(),
            None => "[::]:0".parse().unwrap(),
        };
        Self::within(&self.scanner, move || {
            let s = UdpSocket::bind(bind).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(700)))
                .unwrap();
            s.send_to(b"probe", dst).unwrap();
            let mut buf = [0u8; 512];
            s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.target, self.scanner
        ));
    }
}

/// Collects every datagram sent to a fake syslog socket.
pub struct Syslog {
    pub path: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    /// When each line arrived (same index as `lines`).
    stamps: Arc<Mutex<Vec<Instant>>>,
}

impl Syslog {
    pub fn new(dir: &Path) -> Syslog {
        let path = dir.join("log.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let (l2, s2) = (lines.clone(), stamps.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = sock.recv(&mut buf) {
                let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                // "<29>Mon dd hh:mm:ss portsentry[pid]: text" -> text
                let text = match s.find("]: ") {
                    Some(i) => s[i + 3..].to_string(),
                    None => s,
                };
                let at = Instant::now();
                let mut l = l2.lock().unwrap();
                s2.lock().unwrap().push(at);
                l.push(text);
            }
        });
        Syslog {
            path,
            lines,
            stamps,
        }
    }

    /// When the first line equal to `line` arrived, if it has.
    pub fn arrival(&self, line: &str) -> Option<Instant> {
        let l = self.lines.lock().unwrap();
        let i = l.iter().position(|x| x == line)?;
        self.stamps.lock().unwrap().get(i).copied()
    }

    /// When the first line containing `part` arrived, if one has.
    pub fn arrival_containing(&self, part: &str) -> Option<Instant> {
        let l = self.lines.lock().unwrap();
        let i = l.iter().position(|x| x.contains(part))?;
        self.stamps.lock().unwrap().get(i).copied()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait until a line equal to `line` has arrived ([`EVENT_WAIT`]), else panic with the log.
    pub fn wait_line(&self, line: &str) {
        self.wait(|l| l == line, line)
    }

    pub fn wait_contains(&self, part: &str) {
        self.wait(|l| l.contains(part), part)
    }

    fn wait(&self, pred: impl Fn(&str) -> bool, what: &str) {
        let t0 = Instant::now();
        while t0.elapsed() < EVENT_WAIT {
            if self.lines().iter().any(|l| pred(l)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line {what:?}; got:\n{}", self.lines().join("\n"));
    }
}

/// A daemon run: temp dir with config, ignore file, state files, pid file, syslog.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub log: Syslog,
    pub ns: String,
    /// The daemon binary (the build of this `cargo test` unless set, see [`release_bin`]).
    pub bin: &'static str,
}

impl Run {
    pub fn new(ns: &str) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let log = Syslog::new(dir.path());
        Run {
            dir,
            log,
            ns: ns.to_string(),
            bin: BIN,
        }
    }

    pub fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.p(name)).unwrap_or_default()
    }

    /// Write portsentry.conf from the common keys plus `extra` lines.
    pub fn write_config(&self, extra: &str) {
        let d = self.dir.path().display();
        let text = format!(
            "# test config\n\
             IGNORE_FILE=\"{d}/portsentry.ignore\"\n\
             HISTORY_FILE=\"{d}/portsentry.history\"\n\
             BLOCKED_FILE=\"{d}/portsentry.blocked\"\n\
             HOSTS_DENY_FILE=\"{d}/hosts.deny\"\n\
             {extra}\n"
        );
        std::fs::write(self.p("portsentry.conf"), text).unwrap();
        if !self.p("portsentry.ignore").exists() {
            std::fs::write(self.p("portsentry.ignore"), "127.0.0.1/32\n0.0.0.0\n").unwrap();
        }
    }

    /// Start the daemon (forking) in the target namespace; returns the parent's output.
    pub fn start(&self, modes: &[&str]) -> std::process::Output {
        self.start_env(modes, &[])
    }

    /// As [`Run::start`], with these environment variables set for the daemon.
    pub fn start_env(&self, modes: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
        let mut c = Command::new("ip");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["netns", "exec", &self.ns, self.bin]).args(modes);
        c.arg("-c").arg(self.p("portsentry.conf"));
        c.arg("--pidfile").arg(self.p("portsentry.pid"));
        c.arg("--syslog-socket").arg(&self.log.path);
        c.output().expect("daemon runs")
    }

    pub fn start_ok(&self, modes: &[&str]) {
        let o = self.start(modes);
        assert!(
            o.status.success(),
            "daemon failed to start: {}\nlog:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log.lines().join("\n")
        );
    }

    pub fn pid(&self) -> Option<i32> {
        self.read("portsentry.pid").trim().parse().ok()
    }

    /// `portsentry status --json` of this run's daemon.
    pub fn status_json(&self) -> serde_json::Value {
        let o = Command::new(self.bin)
            .arg("status")
            .arg("--json")
            .arg("-c")
            .arg(self.p("portsentry.conf"))
            .arg("--pidfile")
            .arg(self.p("portsentry.pid"))
            .output()
            .expect("portsentry status runs");
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
    }

    /// The packet path of `portsentry status`, one `stage count` pair per line (what the
    /// flood tests print).
    pub fn path_text(&self) -> String {
        let s = self.status_json();
        let mut out = String::new();
        for part in ["capture", "hits"] {
            if let Some(o) = s["path"][part].as_object() {
                let kv: Vec<String> = o.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out.push_str(&format!("  {part}: {}\n", kv.join(", ")));
            }
        }
        out
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.pid().expect("pid file");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
    }

    /// Wait ([`EVENT_WAIT`]) until `name` contains `part`.
    pub fn wait_file(&self, name: &str, part: &str) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.read(name);
            if s.contains(part) {
                return s;
            }
            if t0.elapsed() > EVENT_WAIT {
                panic!(
                    "{name} never contained {part:?}; it has {s:?}\nlog:\n{}",
                    self.log.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for the process to be gone ([`EVENT_WAIT`]).
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let p = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
            let t0 = Instant::now();
            while alive(pid) && t0.elapsed() < EVENT_WAIT {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True while `pid` runs (a zombie waiting for a reaper counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A TCP connect (one SYN) from `src` to `dst` inside namespace `ns`, at most `timeout` long.
/// True when it was answered (connected or refused): the packets flow; false when it timed
/// out (dropped).
pub fn answered(ns: &str, src: &str, dst: SocketAddr, timeout: Duration) -> bool {
    let src: IpAddr = src.parse().unwrap();
    Net::within(ns, move || {
        use nix::sys::socket::*;
        use std::os::fd::AsRawFd;
        let fam = if src.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let s = socket(fam, SockType::Stream, SockFlag::empty(), None).unwrap();
        bind(
            s.as_raw_fd(),
            &SockaddrStorage::from(SocketAddr::new(src, 0)),
        )
        .unwrap();
        let tv =
            nix::sys::time::TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
        setsockopt(&s, sockopt::SendTimeout, &tv).unwrap();
        match connect(s.as_raw_fd(), &SockaddrStorage::from(dst)) {
            Ok(()) | Err(nix::errno::Errno::ECONNREFUSED) => true,
            Err(_) => false,
        }
    })
}

/// True when `tool` (a path) is there; otherwise says so loudly, and panics under CI=true
/// (`hint`: how to install it).
pub fn have_tool(test: &str, tool: &str, hint: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    let msg = format!("{test}: {tool} is missing ({hint})");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIPPED {msg} ***\n");
    false
}

/// Write `text` to a file (helper for commands in configs).
pub fn write(path: &Path, text: &str) {
    File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

impl Net {
    /// Give the scanner `n` more IPv4 addresses (198.51.100.10 ...) and IPv6 addresses
    /// (2001:db8::1:0 ...) and return them.
    pub fn scanner_addresses(&self, n: u32) -> Vec<String> {
        assert!(n <= 200);
        let dev = format!("vs{}", &self.scanner[3..]);
        let mut batch = String::new();
        let mut out = Vec::new();
        for i in 0..n {
            let v4 = format!("198.51.100.{}", 10 + i);
            let v6 = format!("2001:db8::1:{i:x}");
            batch.push_str(&format!(
                "addr add {v4}/24 dev {dev}\naddr add {v6}/64 dev {dev} nodad\n"
            ));
            out.push(v4);
            out.push(v6);
        }
        let path = std::env::temp_dir().join(format!("{}.batch", self.scanner));
        std::fs::write(&path, batch).unwrap();
        must(&format!("ip -n {} -b {}", self.scanner, path.display()));
        let _ = std::fs::remove_file(path);
        out
    }
}

/// A small deterministic pseudo-random generator (xorshift), so tests need no extra crate.
#[allow(unused_imports)] // not every test crate uses it
pub use flood::Rng;

/// Stops a child this test started (by its pid: `ip netns exec` execs the program, so the
/// pid is the program's): `sig`, up to `grace` for it to exit, then SIGKILL.
pub fn stop_child(mut c: std::process::Child, sig: nix::sys::signal::Signal, grace: Duration) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
    let t0 = Instant::now();
    while t0.elapsed() < grace {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// The child processes of `pid`, whichever of its threads started them (the daemon starts
/// its spare shells on a thread of their own; `/proc/PID/task/TID/children` is per thread).
pub fn children(pid: &str) -> Vec<String> {
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    tasks
        .iter()
        .flat_map(|t| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{t}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Wait ([`EVENT_WAIT`]) for a process named `comm` among the children and grandchildren of `pid`
/// (a command the daemon runs through `/bin/sh -c`).
pub fn wait_descendant(pid: i32, comm: &str) -> String {
    let name = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    let t0 = Instant::now();
    loop {
        for c in children(&pid.to_string()) {
            if name(&c).trim() == comm {
                return c;
            }
            if let Some(g) = children(&c).into_iter().find(|g| name(g).trim() == comm) {
                return g;
            }
        }
        assert!(t0.elapsed() < EVENT_WAIT, "no {comm} under pid {pid}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Packets from one source that reached the IP layer of namespace `ns`: an nftables counter in
/// a prerouting chain of a table of its own, ahead of everything else. That is what the host
/// itself received: under a flood the device's input backlog drops packets before any socket
/// or capture sees them (a UDP sender is not even told: the kernel hides ENOBUFS from it), and
/// a detector cannot be asked to report what never arrived.
pub struct Arrivals {
    ns: String,
    table: String,
}

impl Arrivals {
    pub fn new(ns: &str, src: &str) -> Arrivals {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let table = format!("psarr{n}");
        let fam = if src.contains(':') { "ip6" } else { "ip" };
        must(&format!(
            "ip netns exec {ns} nft 'add table inet {table}; \
             add chain inet {table} pre {{ type filter hook prerouting priority -400; }}; \
             add rule inet {table} pre {fam} saddr {src} counter'"
        ));
        Arrivals {
            ns: ns.to_string(),
            table,
        }
    }

    /// How many have arrived.
    pub fn count(&self) -> u64 {
        let o = sh(&format!(
            "ip netns exec {} nft list chain inet {} pre",
            self.ns, self.table
        ));
        let t = String::from_utf8_lossy(&o.stdout);
        t.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns exec {} nft delete table inet {} 2>/dev/null",
            self.ns, self.table
        ));
    }
}

/// A link's packet counters in namespace `ns`: (rx_packets, rx_dropped, tx_packets,
/// tx_dropped). On a veth, tx_dropped of the sending end counts what the other end's input
/// backlog refused.
pub fn link_counts(ns: &str, dev: &str) -> (u64, u64, u64, u64) {
    let r = |f: &str| -> u64 {
        String::from_utf8_lossy(
            &sh(&format!(
                "ip netns exec {ns} cat /sys/class/net/{dev}/statistics/{f}"
            ))
            .stdout,
        )
        .trim()
        .parse()
        .unwrap_or(0)
    };
    (
        r("rx_packets"),
        r("rx_dropped"),
        r("tx_packets"),
        r("tx_dropped"),
    )
}

/// The upper bound of every wait on an event (a log line, a file's content, a process, a
/// counter): generous, because the machines that run the suite are shared and loaded (a
/// 2-core machine at load average 6 has started the daemon in over 2 s). A wait ends as soon
/// as its event happens, so the bound costs nothing when all is well.
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

/// Wait ([`EVENT_WAIT`]) until `f` holds, else panic with `what`.
pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < EVENT_WAIT, "{what} (waited {EVENT_WAIT:?})");
        std::thread::sleep(Duration::from_millis(10));
    }
}
