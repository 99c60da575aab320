//! A small fake LAPI for unit-level error cases the real one cannot be made to produce on cue
//! (issue 12 allows it for these only; the end-to-end tests use Debian's crowdsec): 500s after
//! which it kept the alerts or not, garbage JSON, slow answers. One thread on 127.0.0.1, one
//! request per connection (`Connection: close`), answers scripted per endpoint; it keeps the
//! alerts it accepts and lists them back on `GET /v1/alerts` as the real LAPI does (their
//! `meta` included), and never hands out a decision.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::fleet::creds::LapiUrl;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The normal answer (201 and the alerts kept, the alert list, an empty stream).
    Normal,
    /// HTTP 500; for `POST /v1/alerts`, `keep` says whether the alerts were stored anyway
    /// (crowdsec 1.4.6 stores a request's alerts in chunks without one transaction).
    Error500 {
        /// The alerts were kept despite the 500.
        keep: bool,
    },
    /// 200 with a body that is not JSON.
    Garbage,
    /// No answer for this long (then the connection is closed).
    Slow(Duration),
    /// This status with a JSON message.
    Status(u16),
}

#[derive(Default)]
struct State {
    login: VecDeque<Answer>,
    post: VecDeque<Answer>,
    search: VecDeque<Answer>,
    stream: VecDeque<Answer>,
    /// Alerts accepted, as posted.
    kept: Vec<serde_json::Value>,
    /// Requests seen, as `METHOD path`.
    seen: Vec<String>,
}

/// The fake; stops and joins its thread on drop.
pub struct FakeLapi {
    /// `http://127.0.0.1:PORT/`.
    pub url: LapiUrl,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLapi {
    pub fn start() -> FakeLapi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = LapiUrl::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the test process ends, or the fake is dropped, within a minute.
            let t0 = std::time::Instant::now();
            while !sp.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve(s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeLapi {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers for the next `POST /v1/watchers/login` requests (then: Normal).
    pub fn script_login(&self, a: &[Answer]) {
        self.state.lock().unwrap().login.extend(a.iter().cloned());
    }

    /// Answers for the next `POST /v1/alerts` requests.
    pub fn script_post(&self, a: &[Answer]) {
        self.state.lock().unwrap().post.extend(a.iter().cloned());
    }

    /// Answers for the next `GET /v1/alerts` requests.
    pub fn script_search(&self, a: &[Answer]) {
        self.state.lock().unwrap().search.extend(a.iter().cloned());
    }

    /// Answers for the next `GET /v1/decisions/stream` requests.
    pub fn script_stream(&self, a: &[Answer]) {
        self.state.lock().unwrap().stream.extend(a.iter().cloned());
    }

    /// The alerts kept so far.
    pub fn kept(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().kept.clone()
    }

    /// The requests seen so far (`POST /v1/alerts`, ...).
    pub fn seen(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for FakeLapi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request: method, path, body.
fn read_request(s: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, body))
}

fn respond(s: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}

fn serve(mut s: TcpStream, state: &Mutex<State>) {
    let Some((method, path, body)) = read_request(&mut s) else {
        return;
    };
    let endpoint = path.split('?').next().unwrap_or("").to_string();
    let answer = {
        let mut st = state.lock().unwrap();
        st.seen.push(format!("{method} {endpoint}"));
        let q = match (method.as_str(), endpoint.as_str()) {
            ("POST", "/v1/watchers/login") => &mut st.login,
            ("POST", "/v1/alerts") => &mut st.post,
            ("GET", "/v1/alerts") => &mut st.search,
            ("GET", "/v1/decisions/stream") => &mut st.stream,
            _ => return respond(&mut s, 404, "{\"message\":\"no such endpoint\"}"),
        };
        q.pop_front().unwrap_or(Answer::Normal)
    };
    let keep = |state: &Mutex<State>| {
        if let Ok(serde_json::Value::Array(v)) = serde_json::from_slice(&body) {
            state.lock().unwrap().kept.extend(v);
        }
    };
    match answer {
        Answer::Slow(d) => std::thread::sleep(d),
        Answer::Garbage => respond(&mut s, 200, "<html>not json"),
        Answer::Status(code) => respond(&mut s, code, "{\"message\":\"scripted\"}"),
        Answer::Error500 { keep: k } => {
            if k && endpoint == "/v1/alerts" && method == "POST" {
                keep(state);
            }
            respond(&mut s, 500, "{\"message\":\"database is locked\"}");
        }
        Answer::Normal => match (method.as_str(), endpoint.as_str()) {
            ("POST", "/v1/watchers/login") => respond(
                &mut s,
                200,
                "{\"code\":200,\"expire\":\"2099-01-01T00:00:00Z\",\"token\":\"fake-token\"}",
            ),
            ("POST", _) => {
                keep(state);
                respond(&mut s, 201, "[\"1\"]");
            }
            ("GET", "/v1/alerts") => {
                let list = serde_json::to_string(&state.lock().unwrap().kept).unwrap();
                respond(&mut s, 200, &list);
            }
            _ => respond(&mut s, 200, "{\"new\":null,\"deleted\":null}"),
        },
    }
}
