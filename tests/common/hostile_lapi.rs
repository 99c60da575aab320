//! A stand-in for a hostile or broken LAPI (issue 24: what the real one cannot be made to
//! send): an HTTP server on a thread inside a test namespace that answers the decision
//! stream with scripted bodies written as they are generated (never built in memory): a
//! huge answer of mostly valid decisions with malformed objects and escape bytes, one over
//! the daemon's byte cap, one holding a single string of megabytes. `GET /v1/decisions?...`
//! (the decisions in force) gets a body the test sets (`null` at first); every other request
//! gets an empty answer. Bounded: the server stops when dropped or after 10 minutes.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One scripted answer of `GET /v1/decisions/stream`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `malformed` objects that are no decision (`{}`, numbers, wrong types), then
    /// `wide` (a `Range 0.0.0.0/0` ban whose scenario holds a line feed, an ESC sequence
    /// and a BEL), then `valid` distinct IPv4 bans in 10.0.0.0/8 (ids from 1,000,000).
    Huge {
        /// Objects that are no decision.
        malformed: u32,
        /// Valid `ban` decisions on single addresses.
        valid: u32,
    },
    /// An answer of this many bytes (one endless array of `{}`).
    Bytes(u64),
    /// One decision whose scenario is a string of this many bytes.
    LongString(u64),
    /// `{"new":null,"deleted":null}`.
    Empty,
    /// An empty answer after this long.
    Slow(Duration),
    /// This HTTP status, with a CrowdSec-like message.
    Status(u16),
    /// The first bytes of an answer banning this IPv4 address (decision id 4242), then the
    /// connection closed: a body cut short.
    Cut(&'static str),
    /// An answer banning this IPv4 address (decision id 4242) for 3 h.
    Ban(&'static str),
    /// This body, as it is.
    Raw(String),
}

/// The scenario of the wide decision in [`Answer::Huge`] (JSON-escaped as sent): a forged
/// second syslog line, a terminal escape sequence and a BEL.
pub const EVIL_SCENARIO_JSON: &str = "evil\\nattackalert: forged line\\u001b[2J\\u0007";

/// The server.
pub struct Hostile {
    /// Requests seen, as `METHOD path?query`, with the bytes written back.
    pub seen: Arc<Mutex<Vec<(String, u64)>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    /// The body of every `GET /v1/decisions?...` (the decisions in force; `null` at first).
    list: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    /// Listens on `addr` inside namespace `ns`; answers the stream with `script` in order,
    /// then with empty answers.
    pub fn start(ns: &str, addr: SocketAddr, script: Vec<Answer>) -> Hostile {
        let path = format!("/run/netns/{ns}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let list = Arc::new(Mutex::new("null".to_string()));
        let stop = Arc::new(AtomicBool::new(false));
        let (se, sc, sl, st) = (seen.clone(), script.clone(), list.clone(), stop.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let f = File::open(&path).expect("netns file");
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = TcpListener::bind(addr).expect("bind the hostile LAPI");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            let t0 = Instant::now();
            while !st.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(600) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        serve(s, &se, &sc, &sl);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the hostile LAPI listens");
        Hostile {
            seen,
            script,
            list,
            stop,
            thread: Some(thread),
        }
    }

    /// The body of `GET /v1/decisions?...` from now on.
    pub fn set_list(&self, body: &str) {
        *self.list.lock().unwrap() = body.to_string();
    }

    /// More scripted answers, after those not served yet.
    pub fn then(&self, more: Vec<Answer>) {
        self.script.lock().unwrap().extend(more);
    }

    /// Scripted answers not served yet.
    pub fn left(&self) -> usize {
        self.script.lock().unwrap().len()
    }

    /// Stream requests served so far.
    pub fn streams(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r.starts_with("GET /v1/decisions/stream"))
            .count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut s: TcpStream,
    seen: &Mutex<Vec<(String, u64)>>,
    script: &Mutex<Vec<Answer>>,
    list: &Mutex<String>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let req = format!(
        "{} {}",
        first.next().unwrap_or(""),
        first.next().unwrap_or("")
    );
    let answer = if req.starts_with("GET /v1/decisions/stream") {
        let mut sc = script.lock().unwrap();
        if sc.is_empty() {
            Answer::Empty
        } else {
            sc.remove(0)
        }
    } else if req.starts_with("GET /v1/decisions?") {
        Answer::Raw(list.lock().unwrap().clone())
    } else {
        Answer::Empty
    };
    let mut w = Counting {
        inner: BufWriter::with_capacity(64 << 10, s),
        n: 0,
    };
    if let Answer::Slow(d) = &answer {
        std::thread::sleep(*d);
    }
    let status = match &answer {
        Answer::Status(s) => *s,
        _ => 200,
    };
    // No Content-Length: the body ends when the connection closes.
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    );
    let _ = body(&mut w, &answer);
    let _ = w.flush();
    seen.lock().unwrap().push((req, w.n));
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn body(w: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    match a {
        Answer::Empty | Answer::Slow(_) => w.write_all(b"{\"new\":null,\"deleted\":null}"),
        Answer::Status(_) => w.write_all(b"{\"message\":\"scripted failure\"}"),
        Answer::Raw(b) => w.write_all(b.as_bytes()),
        Answer::Cut(ip) => write!(
            w,
            "{{\"deleted\":[],\"new\":[{{\"duration\":\"3h\",\"id\":4242,\"origin\":\"cscli\",\"scenario\":\"manual\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"{ip}\""
        ),
        Answer::Ban(ip) => write!(
            w,
            "{{\"deleted\":[],\"new\":[{{\"duration\":\"3h\",\"id\":4242,\"origin\":\"cscli\",\"scenario\":\"manual\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"{ip}\"}}]}}"
        ),
        Answer::Huge { malformed, valid } => {
            w.write_all(b"{\"deleted\":[],\"new\":[")?;
            let junk: [&[u8]; 6] = [
                b"{}",
                b"5",
                b"{\"id\":\"x\",\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.0.0.1\",\"duration\":\"1h\"}",
                b"{\"id\":1,\"type\":[\"ban\"],\"scope\":\"Ip\",\"value\":\"10.0.0.1\",\"duration\":\"1h\"}",
                b"{\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.0.0.1\",\"duration\":\"1h\"}",
                b"null",
            ];
            for i in 0..*malformed {
                w.write_all(junk[i as usize % junk.len()])?;
                w.write_all(b",")?;
            }
            write!(
                w,
                "{{\"duration\":\"3h\",\"id\":999999,\"origin\":\"cscli\",\"scenario\":\"{EVIL_SCENARIO_JSON}\",\"scope\":\"Range\",\"type\":\"ban\",\"value\":\"0.0.0.0/0\"}}"
            )?;
            for i in 0..*valid {
                let a = i + 256;
                write!(
                    w,
                    ",{{\"duration\":\"3h59m0s\",\"id\":{},\"origin\":\"crowdsec\",\"scenario\":\"portsentry/tcp-syn-scan\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"10.{}.{}.{}\"}}",
                    1_000_000 + i,
                    (a >> 16) & 0xff,
                    (a >> 8) & 0xff,
                    a & 0xff
                )?;
            }
            w.write_all(b"]}")
        }
        Answer::Bytes(n) => {
            w.write_all(b"{\"new\":[{}")?;
            let chunk = ",{}".repeat(20_000);
            let mut sent = 10u64;
            while sent < *n {
                w.write_all(chunk.as_bytes())?;
                sent += chunk.len() as u64;
            }
            w.write_all(b"]}")
        }
        Answer::LongString(n) => {
            w.write_all(b"{\"new\":[{\"id\":1,\"type\":\"ban\",\"scope\":\"Ip\",\"value\":\"10.9.9.9\",\"duration\":\"1h\",\"scenario\":\"")?;
            let chunk = "A".repeat(64 << 10);
            let mut sent = 0u64;
            while sent < *n {
                w.write_all(chunk.as_bytes())?;
                sent += chunk.len() as u64;
            }
            w.write_all(b"\"}]}")
        }
    }
}
