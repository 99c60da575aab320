//! The fleet thread (issue 12): all network I/O with a CrowdSec LAPI, off the event loop.
//!
//! The loop's whole interface is [`Fleet`]: `start`, `record_block` / `record_report` (a push
//! onto a vector), `flush` (one write of the turn's records to the spool, then a wake-up),
//! `fd` (readable when the thread has log lines for the loop), `take_log`, `status` and
//! `shutdown`. The thread pushes what the spool holds (in order, in batches, with the limits
//! of `fleet::limit`), follows the decision stream into the nftables sets `fleet4`/`fleet6`,
//! and retries with back-off; the loop never waits for it.
//!
//! Delivery: a record is on disk (spool, page cache) before the thread can send it; an `S`
//! line goes to disk (fdatasync) before each request, an `A` line after its 201. A request
//! whose outcome is unknown (kill -9 between the request and its `A` line, a timeout or reset
//! after sending, a 5xx after which the LAPI may have kept part of it) is never simply sent
//! again: the thread first asks the LAPI (`GET /v1/alerts`) which of its records arrived
//! (every alert names its records in meta `portsentry_records`) and sends only the others.
//! So each record reaches the LAPI once, in order, across kill -9 and LAPI outages. Limits:
//! a power loss may lose the records of the last few ms not yet synced, and a LAPI that loses
//! its database loses what it had.

pub mod apply;
pub mod http;
pub mod spool;

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::clock;
use crate::config::{BlockMethod, Config};
use crate::fleet::alert::{self, Numbered, Record, Scan};
use crate::fleet::creds::{self, Credentials, LapiUrl, Secret};
use crate::fleet::link::{self, Link};
use crate::fleet::spool::Ranges;
use crate::fleet::{limit, msg};
use crate::mode::Mode;

use self::http::{Client, Failure, Token};
use self::spool::{Reader, Spool};

/// Everything the thread needs, read and checked by [`load`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub push: Option<Push>,
    pub pull: Option<Pull>,
    /// The ignore file: its networks are never banned from the fleet either.
    pub ignore_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Push {
    pub creds: Credentials,
    pub creds_path: PathBuf,
    pub ca_pem: Option<Vec<u8>>,
    pub ban_s: u64,
    pub send_log_only: bool,
    pub spool_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub url: LapiUrl,
    pub key: Secret,
    pub key_path: PathBuf,
    pub ca_pem: Option<Vec<u8>>,
    pub interval_ms: u64,
}

/// The spool beside `HISTORY_FILE` (Debian: /var/lib/portsentry/crowdsec.spool).
pub fn spool_path(cfg: &Config) -> PathBuf {
    cfg.history_file
        .as_deref()
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/var/lib/portsentry"))
        .join("crowdsec.spool")
}

/// Reads a file that holds a secret: it must be private (see `creds::check_private`).
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    creds::check_private(meta.mode(), meta.uid(), nix::unistd::geteuid().as_raw())
        .map_err(|e| format!("{shown}: {e}"))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8 text"))
}

/// The fleet settings of `cfg` with its files read and checked; None when no fleet key is
/// set. Err: every problem, each naming its file and reason (never a secret).
pub fn load(cfg: &Config) -> Result<Option<Settings>, Vec<String>> {
    let k = &cfg.fleet;
    if !k.enabled() {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut push = None;
    let mut ca_pem = None;
    if let Some(p) = &k.credentials {
        match read_secret_file(p)
            .and_then(|t| creds::parse(&t).map_err(|e| format!("{}: {e}", p.display())))
        {
            Ok(c) => {
                if let Some(ca) = &c.ca_cert_path {
                    match std::fs::read(ca) {
                        Ok(b) => ca_pem = Some(b),
                        Err(e) => errors.push(format!(
                            "{}: ca_cert_path {}: {e}",
                            p.display(),
                            ca.display()
                        )),
                    }
                }
                push = Some(Push {
                    creds: c,
                    creds_path: p.clone(),
                    ca_pem: ca_pem.clone(),
                    ban_s: k.ban_duration_s(cfg.block_timeout),
                    send_log_only: k.send_log_only,
                    spool_path: spool_path(cfg),
                });
            }
            Err(e) => errors.push(e),
        }
    }
    let mut pull = None;
    if let Some(p) = &k.bouncer_key_file {
        if cfg.block_method != BlockMethod::Nftables {
            errors.push("CROWDSEC_BOUNCER_KEY_FILE needs BLOCK_METHOD=\"nftables\"".to_string());
        }
        let url = match (&push, &k.lapi_url) {
            (Some(p), _) => Some(p.creds.url.clone()),
            (None, Some(u)) => LapiUrl::parse(u)
                .map_err(|e| errors.push(format!("CROWDSEC_LAPI_URL: {e}")))
                .ok(),
            (None, None) => {
                errors.push(
                    "CROWDSEC_BOUNCER_KEY_FILE needs CROWDSEC_LAPI_URL or CROWDSEC_CREDENTIALS"
                        .to_string(),
                );
                None
            }
        };
        match read_secret_file(p)
            .and_then(|t| creds::parse_key(&t).map_err(|e| format!("{}: {e}", p.display())))
        {
            Ok(key) => {
                if let Some(url) = url {
                    pull = Some(Pull {
                        url,
                        key,
                        key_path: p.clone(),
                        ca_pem: ca_pem.clone(),
                        interval_ms: k.pull_interval_s() * 1000,
                    });
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Some(Settings {
            push,
            pull,
            ignore_file: cfg.ignore_file.clone(),
        }))
    } else {
        Err(errors)
    }
}

/// What `--check` prints about the fleet (no secret), and whether the files are good.
pub fn describe(cfg: &Config) -> (Vec<String>, bool) {
    match load(cfg) {
        Ok(None) => (
            vec!["fleet: off (no CROWDSEC_CREDENTIALS, no CROWDSEC_BOUNCER_KEY_FILE)".to_string()],
            true,
        ),
        Ok(Some(s)) => {
            let mut out = Vec::new();
            if let Some(p) = &s.push {
                out.push(format!(
                    "fleet: push to {} as machine \"{}\" ({}), bans of {} s{}, spool {}",
                    p.creds.url.as_str(),
                    p.creds.login,
                    p.creds_path.display(),
                    p.ban_s,
                    if p.send_log_only {
                        ", log-only reports too"
                    } else {
                        ""
                    },
                    p.spool_path.display()
                ));
            }
            if let Some(p) = &s.pull {
                out.push(format!(
                    "fleet: pull from {} with the bouncer key of {} every {} s into sets fleet4/fleet6",
                    p.url.as_str(),
                    p.key_path.display(),
                    p.interval_ms / 1000
                ));
            }
            (out, true)
        }
        Err(e) => (
            e.into_iter().map(|l| format!("error: {l}")).collect(),
            false,
        ),
    }
}

/// `portsentry fleet test`: the login and the bouncer key, against the LAPI. Lines to print
/// and whether all worked.
pub fn test_login(s: &Settings) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut ok = true;
    if let Some(p) = &s.push {
        match Client::new(p.creds.url.clone(), p.ca_pem.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.login(&p.creds.login, &p.creds.password)
                    .map_err(|e| e.to_string())
            }) {
            Ok(_) => out.push(format!(
                "fleet: login to {} as \"{}\": OK",
                p.creds.url.as_str(),
                p.creds.login
            )),
            Err(e) => {
                ok = false;
                out.push(format!(
                    "fleet: login to {} as \"{}\" FAILED: {e}",
                    p.creds.url.as_str(),
                    p.creds.login
                ));
            }
        }
    }
    if let Some(p) = &s.pull {
        match Client::new(p.url.clone(), p.ca_pem.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|c| c.check_key(&p.key).map_err(|e| e.to_string()))
        {
            Ok(()) => out.push(format!(
                "fleet: bouncer key of {} at {}: OK",
                p.key_path.display(),
                p.url.as_str()
            )),
            Err(e) => {
                ok = false;
                out.push(format!(
                    "fleet: bouncer key of {} at {} FAILED: {e}",
                    p.key_path.display(),
                    p.url.as_str()
                ));
            }
        }
    }
    (out, ok)
}

/// `portsentry fleet check|test`: prints the settings (and the test's results); the exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    use crate::fleet::cli::{FleetCli, FleetCmd};
    let a = match FleetCli::parse_from_args(args.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let cfg = match std::fs::read(&a.config) {
        Ok(b) => {
            let p = crate::config::parse(&b, &a.config);
            let mut d = p.diagnostics;
            d.extend(crate::fleet::validate(&p.config, &a.config));
            for x in &d {
                eprintln!("{x}");
            }
            if crate::config::has_errors(&d) {
                return 1;
            }
            p.config
        }
        Err(e) => {
            eprintln!("portsentry fleet: {}: {e}", a.config.display());
            return 1;
        }
    };
    let (lines, ok) = describe(&cfg);
    for l in &lines {
        println!("{l}");
    }
    if !ok {
        return 1;
    }
    if a.cmd == FleetCmd::Test
        && let Ok(Some(s)) = load(&cfg)
    {
        let (lines, ok) = test_login(&s);
        for l in &lines {
            println!("{l}");
        }
        if !ok {
            return 1;
        }
    }
    0
}

/// The link's state as `portsentry status` (issue 13) will show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    pub push: Option<link::State>,
    pub pull: Option<link::State>,
    /// Records in the spool not yet delivered.
    pub waiting: u64,
    /// Records delivered since start.
    pub sent: u64,
    /// Records dropped (spool full, or refused by the LAPI).
    pub dropped: u64,
    /// Decisions in force from the stream.
    pub decisions: usize,
}

struct Shared {
    spool: Mutex<Option<Spool>>,
    log: Mutex<Vec<String>>,
    status: Mutex<Status>,
    stop: AtomicBool,
    /// The thread waits on this; the loop writes it.
    wake: EventFd,
    /// The loop polls this; the thread writes it with log lines.
    back: EventFd,
}

impl Shared {
    fn log(&self, line: String) {
        if let Ok(mut l) = self.log.lock() {
            // Bounded: a loop that stopped reading must not make the thread grow.
            if l.len() < 10_000 {
                l.push(line);
            }
        }
        let _ = self.back.write(1);
    }
}

/// The event loop's handle on the fleet thread.
pub struct Fleet {
    shared: Arc<Shared>,
    pending: Vec<Record>,
    ban_s: u64,
    send_log_only: bool,
    push: bool,
    thread: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Opens the spool (reading it whole: up to [`spool::MAX_BYTES`]) and starts the thread.
    pub fn start(settings: Settings) -> Result<Fleet, String> {
        let wake = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| format!("eventfd: {e}"))?;
        let back = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| format!("eventfd: {e}"))?;
        let shared = Arc::new(Shared {
            spool: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            status: Mutex::new(Status::default()),
            stop: AtomicBool::new(false),
            wake,
            back,
        });
        let mut start = None;
        if let Some(p) = &settings.push {
            let o = Spool::open(&p.spool_path)
                .map_err(|e| format!("CrowdSec spool {}: {e}", p.spool_path.display()))?;
            if o.torn_bytes > 0 {
                shared.log(msg::spool_torn(o.torn_bytes));
            }
            if o.scanned.bad_lines > 0 {
                shared.log(msg::spool_corrupt(o.scanned.bad_lines));
            }
            if o.set_aside {
                shared.log(format!(
                    "adminalert: WARNING: CrowdSec spool {} had no readable header; moved aside to {}.bad",
                    p.spool_path.display(),
                    p.spool_path.with_extension("spool").display()
                ));
            }
            start = Some(o.scanned);
            if let Ok(mut s) = shared.spool.lock() {
                *s = Some(o.spool);
            }
        }
        let (ban_s, send_log_only, push) = match &settings.push {
            Some(p) => (p.ban_s, p.send_log_only, true),
            None => (0, false, false),
        };
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || Worker::new(settings, sh, start).run())
            .map_err(|e| format!("cannot start the fleet thread: {e}"))?;
        Ok(Fleet {
            shared,
            pending: Vec::new(),
            ban_s,
            send_log_only,
            push,
            thread: Some(thread),
        })
    }

    /// A host was blocked (BLOCK_x=1/2): an alert with a ban. Cheap: no I/O.
    pub fn record_block(&mut self, epoch_ms: i64, ip: IpAddr, port: u16, mode: Mode, scan: Scan) {
        if self.push {
            self.pending.push(Record {
                epoch_ms,
                ip: ip.to_canonical(),
                port,
                mode,
                scan,
                ban_s: self.ban_s,
            });
        }
    }

    /// A log-only report (BLOCK_x=0): an alert without a decision, with CROWDSEC_SEND_LOG_ONLY.
    pub fn record_report(&mut self, epoch_ms: i64, ip: IpAddr, port: u16, mode: Mode, scan: Scan) {
        if self.push && self.send_log_only {
            self.pending.push(Record {
                epoch_ms,
                ip: ip.to_canonical(),
                port,
                mode,
                scan,
                ban_s: 0,
            });
        }
    }

    /// Once per loop turn: one write of the turn's records to the spool, then wake the thread.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut err = None;
        if let Ok(mut g) = self.shared.spool.lock()
            && let Some(s) = g.as_mut()
            && let Err(e) = s.append(&self.pending)
        {
            err = Some(format!("{}: {e}", s.path().display()));
        }
        self.pending.clear();
        if let Some(e) = err {
            self.shared.log(msg::spool_unusable(&e, "write failed"));
        }
        let _ = self.shared.wake.write(1);
    }

    /// Readable when [`Fleet::take_log`] has lines.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.back.as_fd()
    }

    /// The thread's log lines since the last call (clears `fd`).
    pub fn take_log(&mut self) -> Vec<String> {
        let _ = self.shared.back.read();
        self.shared
            .log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub fn status(&self) -> Status {
        self.shared.status.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the thread: waits at most ~2 s (an HTTP exchange in progress is left to end
    /// with the process). The spool stays for the next start.
    pub fn shutdown(mut self) {
        self.flush();
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.wake.write(1);
        if let Some(t) = self.thread.take() {
            for _ in 0..200 {
                if t.is_finished() {
                    let _ = t.join();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

fn rand64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(clock::now_ms());
    h.finish()
}

/// The push side's state on the thread.
struct Pusher {
    p: Push,
    client: Option<Client>,
    token: Option<Token>,
    reader: Option<Reader>,
    read_off: u64,
    done: Ranges,
    /// Read, not yet delivered: records with their file offsets, in order.
    queue: VecDeque<(Numbered, u64)>,
    /// Records of a request whose outcome is unknown.
    uncertain: Ranges,
    limiter: limit::Limiter,
    link: Link,
    next_try: u64,
    /// The credentials were refused: wait for a reload (or retry slowly).
    refused: bool,
    waiting: u64,
}

struct Puller {
    p: Pull,
    client: Option<Client>,
    model: crate::fleet::bans::Model,
    applied: std::collections::BTreeMap<crate::fleet::bans::Span, u64>,
    started: bool,
    link: Link,
    next_try: u64,
    told: HashSet<(i64, String)>,
    ignore: apply::IgnoreCache,
    last_apply_error: Option<u64>,
}

struct Worker {
    shared: Arc<Shared>,
    push: Option<Pusher>,
    pull: Option<Puller>,
    sent: u64,
    dropped: u64,
}

impl Worker {
    fn new(
        s: Settings,
        shared: Arc<Shared>,
        scanned: Option<crate::fleet::spool::Scanned>,
    ) -> Worker {
        let now = clock::now_ms();
        let push = s.push.map(|p| {
            let sc = scanned.unwrap_or_default();
            let reader = Reader::open(&p.spool_path).ok();
            Pusher {
                client: Client::new(p.creds.url.clone(), p.ca_pem.as_deref())
                    .map_err(|e| {
                        shared.log(msg::spool_unusable(&p.creds_path.display().to_string(), &e))
                    })
                    .ok(),
                p,
                token: None,
                reader,
                read_off: sc.first_waiting.map_or(sc.valid_len as u64, |o| o as u64),
                done: sc.done,
                queue: VecDeque::new(),
                uncertain: sc.in_flight,
                limiter: limit::Limiter::new(limit::Limits::default(), now),
                link: Link::new(),
                next_try: now,
                refused: false,
                waiting: sc.waiting,
            }
        });
        let pull = s.pull.map(|p| Puller {
            client: Client::new(p.url.clone(), p.ca_pem.as_deref()).ok(),
            p,
            model: Default::default(),
            applied: Default::default(),
            started: false,
            link: Link::new(),
            next_try: now,
            told: HashSet::new(),
            ignore: apply::IgnoreCache::new(s.ignore_file.clone()),
            last_apply_error: None,
        });
        Worker {
            shared,
            push,
            pull,
            sent: 0,
            dropped: 0,
        }
    }

    fn run(mut self) {
        let url = self
            .push
            .as_ref()
            .map(|p| p.p.creds.url.as_str().to_string())
            .or_else(|| self.pull.as_ref().map(|p| p.p.url.as_str().to_string()))
            .unwrap_or_default();
        let waiting = self.push.as_ref().map_or(0, |p| p.waiting);
        self.shared.log(msg::started(
            &url,
            self.push.is_some(),
            self.pull.is_some(),
            waiting,
        ));
        if let Some(pl) = &mut self.pull {
            apply::read_applied(pl, clock::now_ms());
        }
        let mut last_summary_check = clock::now_ms();
        while !self.shared.stop.load(Ordering::SeqCst) {
            let now = clock::now_ms();
            let mut next = now + 1000;
            if self.push.is_some() {
                next = next.min(self.pump_push(now));
            }
            if let Some(pl) = &mut self.pull
                && now >= pl.next_try
            {
                pull_once(pl, &self.shared, now);
            }
            if let Some(pl) = &self.pull {
                next = next.min(pl.next_try);
            }
            if now.saturating_sub(last_summary_check) >= 1000 {
                last_summary_check = now;
                self.housekeeping(now);
            }
            self.publish();
            let wait = next.saturating_sub(clock::now_ms()).min(1000);
            if wait > 0 {
                let mut fds = [PollFd::new(self.shared.wake.as_fd(), PollFlags::POLLIN)];
                let _ = poll(
                    &mut fds,
                    PollTimeout::from(u16::try_from(wait).unwrap_or(1000)),
                );
                let _ = self.shared.wake.read();
            }
        }
    }

    fn publish(&self) {
        if let Ok(mut s) = self.shared.status.lock() {
            s.push = self.push.as_ref().map(|p| p.link.state());
            s.pull = self.pull.as_ref().map(|p| p.link.state());
            s.waiting = self.push.as_ref().map_or(0, |p| p.waiting);
            s.sent = self.sent;
            s.dropped = self.dropped;
            s.decisions = self.pull.as_ref().map_or(0, |p| p.model.len());
        }
    }

    fn housekeeping(&mut self, now: u64) {
        let mut full = 0;
        if let Ok(mut g) = self.shared.spool.lock()
            && let Some(s) = g.as_mut()
        {
            full = std::mem::take(&mut s.dropped);
        }
        if full > 0 {
            self.dropped += full;
            self.shared.log(msg::spool_full(full, spool::MAX_BYTES));
        }
        if let Some(p) = &mut self.push
            && let Some((total, secs, top)) = p.limiter.summary(now, 10_000)
        {
            self.shared.log(msg::grouped(total, secs, &top));
        }
    }

    /// Reads new records, sends what is due. Returns when it wants to run again.
    fn pump_push(&mut self, now: u64) -> u64 {
        let Some(p) = self.push.as_mut() else {
            return now + 1000;
        };
        fill_queue(p, &self.shared);
        if p.queue.is_empty() {
            compact(p, &self.shared);
            return now + 1000;
        }
        if now < p.next_try {
            return p.next_try;
        }
        let url = p.p.creds.url.as_str().to_string();
        // A token first (login), then what arrived of an uncertain request, then a batch.
        let step = ensure_token(p, now, &self.shared)
            .and_then(|()| recover(p, &self.shared, &mut self.sent));
        let step =
            step.and_then(|()| send_batch(p, now, &self.shared, &mut self.sent, &mut self.dropped));
        match step {
            Ok(gap) => {
                if let Some((down, skipped)) = p.link.ok(clock::now_ms()) {
                    self.shared
                        .log(msg::link_regained(&url, down, p.waiting, skipped));
                }
                p.next_try = clock::now_ms() + gap;
            }
            Err(Step::Down(why)) => {
                if let Some((skipped, _)) = p.link.failed(clock::now_ms()) {
                    self.shared.log(msg::link_lost(&url, &why, skipped));
                }
                p.next_try = clock::now_ms() + p.link.retry_in(rand64());
            }
            Err(Step::Refused) => {
                p.next_try = clock::now_ms() + link::BACKOFF_MAX_MS;
            }
        }
        p.next_try
    }
}

enum Step {
    /// The LAPI could not be reached or failed: retry with back-off.
    Down(String),
    /// The credentials were refused (logged): retry slowly.
    Refused,
}

fn ensure_token(p: &mut Pusher, _now: u64, sh: &Shared) -> Result<(), Step> {
    let fresh = p
        .token
        .as_ref()
        .is_some_and(|t| t.expires_epoch == 0 || t.expires_epoch > clock::epoch() + 60);
    if fresh {
        return Ok(());
    }
    p.token = None;
    let Some(c) = &p.client else {
        return Err(Step::Down("no HTTP client (bad ca_cert_path)".to_string()));
    };
    match c.login(&p.p.creds.login, &p.p.creds.password) {
        Ok(t) => {
            p.token = Some(t);
            p.refused = false;
            Ok(())
        }
        Err(Failure::Status(s @ (401 | 403), m)) => {
            if !p.refused {
                p.refused = true;
                sh.log(msg::login_refused(
                    c.url.as_str(),
                    &p.p.creds.login,
                    &p.p.creds_path.display().to_string(),
                    s,
                    &m,
                ));
            }
            Err(Step::Refused)
        }
        Err(e) => Err(Step::Down(e.to_string())),
    }
}

fn fill_queue(p: &mut Pusher, sh: &Shared) {
    if p.queue.len() >= limit::MAX_PER_REQUEST * 2 {
        return;
    }
    let end = sh
        .spool
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|s| s.len))
        .unwrap_or(0);
    if end <= p.read_off {
        return;
    }
    let Some(r) = &p.reader else {
        return;
    };
    let Ok(bytes) = r.read_at(p.read_off, end, 4 << 20) else {
        return;
    };
    let (recs, used) =
        crate::fleet::spool::records_after(&bytes, &p.done, limit::MAX_PER_REQUEST * 2);
    let base = p.read_off;
    for (n, off) in &recs {
        p.queue.push_back((*n, base + *off as u64));
    }
    // If the record limit stopped the parse, continue after the last record taken.
    p.read_off = match recs.last() {
        Some((_, off)) if recs.len() >= limit::MAX_PER_REQUEST * 2 => {
            let line_end = bytes[*off..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(used, |e| off + e + 1);
            base + line_end as u64
        }
        _ => base + used as u64,
    };
    let total_waiting = p.queue.len() as u64;
    p.waiting = p.waiting.max(total_waiting);
}

/// Records of an uncertain request: ask the LAPI which arrived, mark those done.
fn recover(p: &mut Pusher, sh: &Shared, sent: &mut u64) -> Result<(), Step> {
    if p.uncertain.is_empty() {
        return Ok(());
    }
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let oldest = p
        .queue
        .iter()
        .filter(|(n, _)| p.uncertain.contains(n.seq))
        .map(|(n, _)| n.record.epoch_ms)
        .min()
        .unwrap_or_else(clock::epoch_ms);
    // Alerts start at their record's time; ten minutes more for clocks that disagree.
    let since = u64::try_from((clock::epoch_ms() - oldest) / 1000).unwrap_or(0) + 600;
    let id = sh
        .spool
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|s| s.id.clone()))
        .unwrap_or_default();
    let bytes = match c.search_alerts(t, since) {
        Ok(b) => b,
        Err(Failure::Status(401, _)) => {
            p.token = None;
            return Err(Step::Down("login token refused".to_string()));
        }
        Err(e) => return Err(Step::Down(e.to_string())),
    };
    let found = alert::delivered_seqs(&id, &bytes).map_err(Step::Down)?;
    let found: Vec<u64> = found
        .into_iter()
        .filter(|s| p.uncertain.contains(*s))
        .collect();
    let resend = p
        .queue
        .iter()
        .filter(|(n, _)| p.uncertain.contains(n.seq) && !found.contains(&n.seq))
        .count();
    mark_done(p, sh, &found);
    *sent += found.len() as u64;
    sh.log(msg::recovered(found.len(), resend));
    p.uncertain = Ranges::default();
    Ok(())
}

/// Appends `A` lines for `seqs`, drops them from the queue.
fn mark_done(p: &mut Pusher, sh: &Shared, seqs: &[u64]) {
    if seqs.is_empty() {
        return;
    }
    let mut text = String::new();
    let mut v = seqs.to_vec();
    v.sort_unstable();
    let mut i = 0;
    while i < v.len() {
        let a = v[i];
        let mut b = a;
        while i + 1 < v.len() && v[i + 1] == b + 1 {
            i += 1;
            b += 1;
        }
        text.push_str(&crate::fleet::spool::done_line(a, b));
        p.done.insert(a, b);
        i += 1;
    }
    if let Ok(mut g) = sh.spool.lock()
        && let Some(s) = g.as_mut()
    {
        let _ = s.write(&text);
    }
    p.queue.retain(|(n, _)| !p.done.contains(n.seq));
    p.waiting = p.waiting.saturating_sub(seqs.len() as u64);
}

fn send_batch(
    p: &mut Pusher,
    now: u64,
    sh: &Shared,
    sent: &mut u64,
    dropped: &mut u64,
) -> Result<u64, Step> {
    let batch: Vec<Numbered> = p
        .queue
        .iter()
        .take(limit::MAX_PER_REQUEST)
        .map(|(n, _)| *n)
        .collect();
    if batch.is_empty() {
        return Ok(limit::MIN_GAP_MS);
    }
    let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
    let plan = p.limiter.plan(now, &batch);
    let id = sh
        .spool
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|s| s.id.clone()))
        .unwrap_or_default();
    let body = alert::body(&id, &plan);
    // On disk before it goes out: the records and the note that this request may have.
    if let Ok(mut g) = sh.spool.lock()
        && let Some(s) = g.as_mut()
    {
        let _ = s.write(&crate::fleet::spool::sent_line(first, last));
        let _ = s.sync();
    }
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let seqs: Vec<u64> = batch.iter().map(|n| n.seq).collect();
    match c.post_alerts(t, &body) {
        Ok(()) => {
            mark_done(p, sh, &seqs);
            *sent += seqs.len() as u64;
            Ok(limit::gap_after(&plan))
        }
        Err(Failure::NotSent(m)) => Err(Step::Down(m)),
        Err(Failure::Unknown(m)) => {
            for s in &seqs {
                p.uncertain.insert(*s, *s);
            }
            Err(Step::Down(m))
        }
        Err(Failure::Status(401 | 403, _)) => {
            // Expired or revoked token: log in again at once (not sent: the LAPI refuses
            // before reading the alerts).
            p.token = None;
            p.next_try = now;
            Ok(0)
        }
        Err(Failure::Status(s, m)) => {
            sh.log(msg::batch_refused(c.url.as_str(), seqs.len(), s, &m));
            mark_done(p, sh, &seqs);
            *dropped += seqs.len() as u64;
            Ok(limit::MIN_GAP_MS)
        }
    }
}

/// Starts the spool over when everything in it is done, or cuts the done head off when it
/// takes more than half of the bound.
fn compact(p: &mut Pusher, sh: &Shared) {
    if !p.uncertain.is_empty() {
        return;
    }
    let Ok(mut g) = sh.spool.lock() else {
        return;
    };
    let Some(s) = g.as_mut() else {
        return;
    };
    if s.len != p.read_off || s.len < 64 * 1024 {
        return;
    }
    if s.reset().is_ok() {
        p.read_off = s.len;
        p.done = Ranges::default();
        p.waiting = 0;
        p.reader = Reader::open(s.path()).ok();
    }
}

fn pull_once(pl: &mut Puller, sh: &Shared, now: u64) {
    let url = pl.p.url.as_str().to_string();
    let Some(c) = &pl.client else {
        pl.next_try = now + link::BACKOFF_MAX_MS;
        return;
    };
    let startup = !pl.started;
    match c
        .stream(&pl.p.key, startup)
        .and_then(|b| crate::fleet::stream::parse(&b).map_err(|m| Failure::Status(200, m)))
    {
        Ok(changes) => {
            let now = clock::now_ms();
            pl.model.apply(now, &changes, startup);
            pl.started = true;
            if let Some((down, skipped)) = pl.link.ok(now) {
                sh.log(msg::link_regained(&url, down, 0, skipped));
            }
            apply::sync_sets(pl, sh, now);
            pl.next_try = now + pl.p.interval_ms;
        }
        Err(Failure::Status(s @ (401 | 403), _)) => {
            if pl.link.failed(now).is_some() {
                sh.log(msg::key_refused(
                    &url,
                    &pl.p.key_path.display().to_string(),
                    s,
                ));
            }
            pl.next_try = now + link::BACKOFF_MAX_MS;
        }
        Err(e) => {
            if let Some((skipped, _)) = pl.link.failed(now) {
                sh.log(msg::link_lost(&url, &e.to_string(), skipped));
            }
            pl.next_try = now
                + pl.link
                    .retry_in(rand64())
                    .min(pl.p.interval_ms.max(1000) * 8);
        }
    }
}
