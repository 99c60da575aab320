//! The push side of the fleet thread: reads the spool's records, sends them to the LAPI in
//! batches with the limits of `fleet::limit`, asks the LAPI about a request whose outcome is
//! unknown, and keeps the spool small.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use super::Push;
use super::http::{Client, Failure, Token};
use super::shared::{Shared, client, rand64};
use super::spool::{self, Reader, Spool};
use crate::fleet::alert::{self, Numbered};
use crate::fleet::limit;
use crate::fleet::link::{self, Link};
use crate::fleet::spool::{Ranges, Scanned};
use crate::observe::report::{self, Side};
use crate::sys::clock;

/// A spool that took more than 64 KiB starts over once everything in it is delivered.
const RESET_MIN_BYTES: u64 = 64 * 1024;
/// A spool past half its bound whose delivered head is at least half of it has that head
/// cut off (so a full spool, half delivered, has room again while the rest waits).
const CUT_MIN_BYTES: u64 = spool::MAX_BYTES / 2;
/// After a failed compaction, the next try waits this long.
const COMPACT_RETRY_MS: u64 = 60_000;

/// Where the thread is in the spool.
#[derive(Default)]
pub(super) struct Cursor {
    reader: Option<Reader>,
    /// Next byte to read.
    read_off: u64,
    /// Records delivered or given up.
    done: Ranges,
    /// Read, not yet delivered: records with their file offsets, in order.
    queue: VecDeque<(Numbered, u64)>,
    /// Records of a request whose outcome is unknown.
    uncertain: Ranges,
}

impl Cursor {
    fn new(path: &Path, sc: Scanned) -> Cursor {
        Cursor {
            reader: Reader::open(path).ok(),
            read_off: sc.first_waiting.map_or(sc.valid_len as u64, |o| o as u64),
            done: sc.done,
            queue: VecDeque::new(),
            uncertain: sc.in_flight,
        }
    }
}

/// The push side's state on the thread.
pub(super) struct Pusher {
    pub(super) p: Push,
    client: Option<Client>,
    pub(super) token: Option<Token>,
    cur: Cursor,
    pub(super) limiter: limit::Limiter,
    pub(super) link: Link,
    pub(super) next_try: u64,
    /// The credentials were refused (logged once): retry slowly, or at once after a reload.
    pub(super) refused: bool,
    last_compact_error: Option<u64>,
}

impl Pusher {
    pub(super) fn new(p: Push, sc: Scanned, sh: &Shared, now: u64) -> Pusher {
        Pusher {
            client: client(&p.creds.url, &p.tls, &p.creds_path, sh),
            cur: Cursor::new(&p.spool_path, sc),
            p,
            token: None,
            limiter: limit::Limiter::new(limit::Limits::default(), now),
            link: Link::new(),
            next_try: now,
            refused: false,
            last_compact_error: None,
        }
    }

    /// New settings: a new login when the credentials changed, the spool state kept. The
    /// client is made anew and tried at once even when nothing changed, so that a reload
    /// after `update-ca-certificates` trusts the new system store at once (a client keeps
    /// the roots it loaded, and its open connections, for its life).
    pub(super) fn update(&mut self, p: Push, sh: &Shared, now: u64) {
        self.client = client(&p.creds.url, &p.tls, &p.creds_path, sh);
        self.next_try = now;
        if p.creds != self.p.creds || p.tls != self.p.tls {
            if p.creds.url != self.p.creds.url {
                self.link = Link::new();
            }
            self.token = None;
            self.refused = false;
        }
        self.p = p;
    }
}

/// Reads new records, sends what is due, keeps the spool small. Returns when it wants
/// to run again.
pub(super) fn pump(
    p: &mut Pusher,
    sh: &Shared,
    now: u64,
    sent: &mut u64,
    dropped: &mut u64,
) -> u64 {
    fill_queue(&mut p.cur, sh);
    if p.last_compact_error
        .is_none_or(|t| now.saturating_sub(t) >= COMPACT_RETRY_MS)
    {
        match sh.with_spool(|s| compact(&mut p.cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES)) {
            Some(Err(e)) => {
                p.last_compact_error = Some(now);
                let path = sh.spool_path().unwrap_or_default();
                sh.log(report::fleet_spool_compact_failed(&path, &e.to_string()));
            }
            _ => p.last_compact_error = None,
        }
    }
    if p.cur.queue.is_empty() {
        return now + 1000;
    }
    if now < p.next_try {
        return p.next_try;
    }
    let url = p.p.creds.url.as_str().to_string();
    // A token first (login), then what arrived of an uncertain request, then a batch.
    let step = ensure_token(p, sh)
        .and_then(|()| recover(p, sh, sent))
        .and_then(|()| send_batch(p, now, sh, sent, dropped));
    match step {
        Ok(gap) => {
            if let Some((down, skipped)) = p.link.ok(clock::now_ms()) {
                let waiting = sh.with_spool(|s| s.waiting).unwrap_or(0);
                sh.log(report::fleet_link_regained(
                    Side::Push,
                    &url,
                    down,
                    waiting,
                    skipped,
                ));
            }
            p.next_try = clock::now_ms() + gap;
        }
        Err(Step::Down(why)) => {
            if let Some((skipped, _)) = p.link.failed(clock::now_ms()) {
                sh.log(report::fleet_link_lost(Side::Push, &url, &why, skipped));
            }
            p.next_try = clock::now_ms() + p.link.retry_in(rand64());
        }
        Err(Step::Refused) => {
            p.next_try = clock::now_ms() + link::BACKOFF_MAX_MS;
        }
    }
    p.next_try
}

enum Step {
    /// The LAPI could not be reached or failed: retry with back-off.
    Down(String),
    /// The credentials were refused (logged): retry slowly.
    Refused,
}

fn ensure_token(p: &mut Pusher, sh: &Shared) -> Result<(), Step> {
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
    match c.login(&p.p.creds.auth) {
        Ok(t) => {
            p.token = Some(t);
            p.refused = false;
            Ok(())
        }
        Err(Failure::Status(s @ (401 | 403), m)) => {
            if !p.refused {
                p.refused = true;
                sh.log(report::fleet_login_refused(
                    c.url.as_str(),
                    p.p.creds.auth.login(),
                    &p.p.creds_path,
                    s,
                    &m,
                ));
            }
            Err(Step::Refused)
        }
        Err(Failure::CertRefused(why)) => {
            if !p.refused {
                p.refused = true;
                sh.log(report::fleet_cert_refused(Side::Push, c.url.as_str(), &why));
            }
            Err(Step::Refused)
        }
        Err(e) => Err(Step::Down(e.to_string())),
    }
}

/// Reads records after `read_off` into the queue (at most two requests' worth ahead).
fn fill_queue(cur: &mut Cursor, sh: &Shared) {
    if cur.queue.len() >= limit::MAX_PER_REQUEST * 2 {
        return;
    }
    let end = sh.with_spool(|s| s.len).unwrap_or(0);
    if end <= cur.read_off {
        return;
    }
    let Some(r) = &cur.reader else {
        return;
    };
    let Ok(bytes) = r.read_at(cur.read_off, end, 4 << 20) else {
        return;
    };
    let (recs, used) =
        crate::fleet::spool::records_after(&bytes, &cur.done, limit::MAX_PER_REQUEST * 2);
    let base = cur.read_off;
    for (n, off) in &recs {
        cur.queue.push_back((*n, base + *off as u64));
    }
    // If the record limit stopped the parse, continue after the last record taken.
    cur.read_off = match recs.last() {
        Some((_, off)) if recs.len() >= limit::MAX_PER_REQUEST * 2 => {
            let line_end = bytes[*off..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(used, |e| off + e + 1);
            base + line_end as u64
        }
        _ => base + used as u64,
    };
}

/// Keeps the spool small, under the spool's lock (so the loop's append waits for it: a copy
/// of at most [`spool::MAX_BYTES`], tens of ms, and only when half the bound is delivered).
/// Everything delivered and the file over `reset_min`: it starts over (new id). Over
/// `cut_min` with at least half of it a delivered head: the head is cut off, the rest keeps
/// its numbers, and the cursor's offsets move with it. Never while a request's outcome is
/// unknown (its records must keep their place for the recovery).
fn compact(cur: &mut Cursor, s: &mut Spool, reset_min: u64, cut_min: u64) -> io::Result<()> {
    if !cur.uncertain.is_empty() {
        return Ok(());
    }
    if cur.queue.is_empty() && s.len == cur.read_off {
        if s.len >= reset_min {
            s.reset()?;
            cur.read_off = s.len;
            cur.done = Ranges::default();
            cur.reader = Reader::open(s.path()).ok();
        }
        return Ok(());
    }
    // Everything before the first record still waiting is delivered.
    let from = cur.queue.front().map_or(cur.read_off, |(_, off)| *off);
    if s.len < cut_min || from < s.len / 2 {
        return Ok(());
    }
    let at = s.cut_before(from)?;
    let shift = from - at;
    cur.read_off -= shift;
    for q in &mut cur.queue {
        q.1 -= shift;
    }
    cur.reader = Reader::open(s.path()).ok();
    Ok(())
}

/// Records of an uncertain request: ask the LAPI which arrived, mark those done.
fn recover(p: &mut Pusher, sh: &Shared, sent: &mut u64) -> Result<(), Step> {
    if p.cur.uncertain.is_empty() {
        return Ok(());
    }
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let oldest = p
        .cur
        .queue
        .iter()
        .filter(|(n, _)| p.cur.uncertain.contains(n.seq))
        .map(|(n, _)| n.record.epoch_ms)
        .min()
        .unwrap_or_else(clock::epoch_ms);
    // Alerts start at their record's time; ten minutes more for clocks that disagree.
    let since = u64::try_from((clock::epoch_ms() - oldest) / 1000).unwrap_or(0) + 600;
    let id = sh.with_spool(|s| s.id.clone()).unwrap_or_default();
    let bytes = match c.search_alerts(t, since) {
        Ok(b) => b,
        Err(Failure::Status(401, _)) => {
            p.token = None;
            return Err(Step::Down("login token refused".to_string()));
        }
        Err(e) => return Err(Step::Down(e.to_string())),
    };
    let found = alert::delivered_seqs(&id, &bytes)
        .map_err(|m| Step::Down(Failure::BadAnswer(m).to_string()))?;
    let found: Vec<u64> = found
        .into_iter()
        .filter(|s| p.cur.uncertain.contains(*s))
        .collect();
    let resend = p
        .cur
        .queue
        .iter()
        .filter(|(n, _)| p.cur.uncertain.contains(n.seq) && !found.contains(&n.seq))
        .count();
    mark_done(&mut p.cur, sh, &found);
    *sent += found.len() as u64;
    sh.log(report::fleet_recovered(found.len(), resend));
    p.cur.uncertain = Ranges::default();
    Ok(())
}

/// Appends `A` lines for `seqs`, drops them from the queue.
fn mark_done(cur: &mut Cursor, sh: &Shared, seqs: &[u64]) {
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
        cur.done.insert(a, b);
        i += 1;
    }
    sh.with_spool(|s| {
        let _ = s.write(&text);
        s.waiting = s.waiting.saturating_sub(seqs.len() as u64);
    });
    cur.queue.retain(|(n, _)| !cur.done.contains(n.seq));
}

fn send_batch(
    p: &mut Pusher,
    now: u64,
    sh: &Shared,
    sent: &mut u64,
    dropped: &mut u64,
) -> Result<u64, Step> {
    let batch: Vec<Numbered> = p
        .cur
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
    let id = sh.with_spool(|s| s.id.clone()).unwrap_or_default();
    let body = alert::body(&id, &plan);
    // On disk before it goes out: the records and the note that this request may have.
    sh.with_spool(|s| {
        let _ = s.write(&crate::fleet::spool::sent_line(first, last));
        let _ = s.sync();
    });
    let (Some(c), Some(t)) = (&p.client, &p.token) else {
        return Err(Step::Down("not logged in".to_string()));
    };
    let seqs: Vec<u64> = batch.iter().map(|n| n.seq).collect();
    match c.post_alerts(t, &body) {
        Ok(()) => {
            mark_done(&mut p.cur, sh, &seqs);
            *sent += seqs.len() as u64;
            Ok(limit::gap_after(&plan))
        }
        Err(Failure::NotSent(m)) => Err(Step::Down(m)),
        // The handshake failed: nothing was read. A new login says why, in full.
        Err(Failure::CertRefused(m)) => {
            p.token = None;
            Err(Step::Down(m))
        }
        // (post_alerts reads no body: a bad answer would be one it cannot vouch for.)
        Err(Failure::Unknown(m) | Failure::BadAnswer(m)) => {
            for s in &seqs {
                p.cur.uncertain.insert(*s, *s);
            }
            Err(Step::Down(m))
        }
        Err(Failure::Status(401 | 403, _)) => {
            // Expired or revoked token: log in again at once (not sent: the LAPI refuses
            // before reading the alerts).
            p.token = None;
            Ok(0)
        }
        Err(Failure::Status(s, m)) => {
            sh.log(report::fleet_batch_refused(
                c.url.as_str(),
                seqs.len(),
                s,
                &m,
            ));
            mark_done(&mut p.cur, sh, &seqs);
            *dropped += seqs.len() as u64;
            Ok(limit::MIN_GAP_MS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use crate::fleet::alert::{Record, Scan};
    use crate::fleet::spool::{Line, parse_line};
    use nix::sys::eventfd::{EfdFlags, EventFd};

    fn shared() -> Shared {
        let efd = || EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        Shared::new(efd(), efd())
    }

    fn rec(i: u32) -> Record {
        Record {
            epoch_ms: 1_795_383_542_000 + i64::from(i),
            ip: std::net::IpAddr::V4((0x0a00_0000 + i).into()),
            port: 11,
            mode: Mode::Stcp,
            scan: Scan::TcpSyn,
            ban_s: 600,
        }
    }

    /// The record a queue entry's offset points at in the file as it is now.
    fn seq_at(cur: &Cursor, off: u64) -> u64 {
        let bytes = cur
            .reader
            .as_ref()
            .unwrap()
            .read_at(off, off + 200, 200)
            .unwrap();
        let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
        match parse_line(&bytes[..nl]) {
            Some(Line::Record(n)) => n.seq,
            other => panic!("no record at {off}: {other:?}"),
        }
    }

    fn open(sh: &Shared, path: &Path) -> Cursor {
        let o = Spool::open(path).unwrap();
        let cur = Cursor::new(path, o.scanned.clone());
        sh.set_spool(o.spool);
        cur
    }

    #[test]
    fn a_full_spool_half_delivered_gets_its_head_cut_and_takes_records_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crowdsec.spool");
        let sh = shared();
        let mut cur = open(&sh, &path);
        // Fill it to the bound: the last records do not fit and are counted as dropped.
        let mut n = 0u32;
        while sh.with_spool(|s| s.dropped).unwrap() == 0 {
            let batch: Vec<Record> = (n..n + 10_000).map(rec).collect();
            sh.append(&batch).unwrap();
            n += 10_000;
        }
        let (len, written) = sh
            .with_spool(|s| (s.len, s.next_seq_for_tests() - 1))
            .unwrap();
        assert!(len <= spool::MAX_BYTES && len > spool::MAX_BYTES - 200);
        // The thread delivers the first 60% (reading two requests' worth at a time).
        let half = written * 6 / 10;
        while cur.done.ranges().first().is_none_or(|r| r.1 < half) {
            fill_queue(&mut cur, &sh);
            let seqs: Vec<u64> = cur
                .queue
                .iter()
                .map(|(n, _)| n.seq)
                .filter(|s| *s <= half)
                .collect();
            mark_done(&mut cur, &sh, &seqs);
        }
        fill_queue(&mut cur, &sh);
        // Not while a request's outcome is unknown.
        cur.uncertain.insert(half + 1, half + 1);
        let full = std::fs::metadata(&path).unwrap().len();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
        cur.uncertain = Ranges::default();
        let t0 = std::time::Instant::now();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        let took = t0.elapsed();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < len / 2, "{after} of {len}");
        eprintln!("cut a {len}-byte spool to {after} bytes in {took:?}");
        // What waits is intact, with its numbers; the cursor points at the same records.
        let bytes = std::fs::read(&path).unwrap();
        let sc = crate::fleet::spool::scan(&bytes);
        assert_eq!(sc.waiting, written - half);
        assert_eq!(sc.next_seq, written + 1);
        let (first, off) = *cur.queue.front().unwrap();
        assert_eq!(first.seq, half + 1);
        assert_eq!(seq_at(&cur, off), half + 1);
        let (last, off) = *cur.queue.back().unwrap();
        assert_eq!(seq_at(&cur, off), last.seq);
        // Room again: new records are written, numbered on, and read by the thread.
        let dropped = sh.with_spool(|s| std::mem::take(&mut s.dropped)).unwrap();
        assert!(dropped > 0);
        sh.append(&[rec(n), rec(n + 1)]).unwrap();
        assert_eq!(sh.with_spool(|s| s.dropped).unwrap(), 0);
        let mut all = Vec::new();
        loop {
            fill_queue(&mut cur, &sh);
            let seqs: Vec<u64> = cur.queue.iter().map(|(n, _)| n.seq).collect();
            if seqs.is_empty() {
                break;
            }
            all.extend(seqs.iter().copied());
            mark_done(&mut cur, &sh, &seqs);
        }
        assert_eq!(all.len() as u64, written - half + 2);
        assert_eq!(all.last(), Some(&(written + 2)));
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "in order, once");
        assert_eq!(sh.with_spool(|s| s.waiting).unwrap(), 0);
        // Everything delivered: it starts over with a new id.
        let id = sh.with_spool(|s| s.id.clone()).unwrap();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_ne!(sh.with_spool(|s| s.id.clone()).unwrap(), id);
        assert!(std::fs::metadata(&path).unwrap().len() < 100);
        sh.append(&[rec(1)]).unwrap();
        fill_queue(&mut cur, &sh);
        assert_eq!(
            cur.queue.iter().map(|(n, _)| n.seq).collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn a_small_spool_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crowdsec.spool");
        let sh = shared();
        let mut cur = open(&sh, &path);
        sh.append(&(0..10).map(rec).collect::<Vec<_>>()).unwrap();
        fill_queue(&mut cur, &sh);
        mark_done(&mut cur, &sh, &[1, 2, 3, 4, 5, 6]);
        let before = std::fs::read(&path).unwrap();
        sh.with_spool(|s| compact(&mut cur, s, RESET_MIN_BYTES, CUT_MIN_BYTES))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(cur.queue.len(), 4);
        assert_eq!(sh.with_spool(|s| s.waiting).unwrap(), 4);
    }
}

/// The thread against a fake LAPI (`fake_lapi`): what the real one cannot be made to do on
/// cue. Push only: pulling writes nftables sets, which a unit test must not touch.
#[cfg(test)]
mod fake_tests {
    use super::super::fake_lapi::{Answer, FakeLapi};
    use super::super::{Fleet, Push, Settings};
    use crate::config::mode::Mode;
    use crate::fleet::alert::Scan;
    use crate::fleet::creds::{Credentials, MachineAuth, Secret};
    use std::time::{Duration, Instant};

    struct Run {
        fleet: Fleet,
        lines: Vec<String>,
        dir: tempfile::TempDir,
    }

    impl Run {
        fn start(f: &FakeLapi) -> Run {
            let dir = tempfile::tempdir().unwrap();
            let s = Settings {
                push: Some(Push {
                    creds: Credentials {
                        url: f.url.clone(),
                        auth: MachineAuth::Password {
                            login: "web1".into(),
                            password: Secret::new("pw".into()),
                        },
                        ca_cert_path: None,
                    },
                    creds_path: dir.path().join("lapi.yaml"),
                    tls: Default::default(),
                    ban_s: 600,
                    send_log_only: false,
                    spool_path: dir.path().join("crowdsec.spool"),
                }),
                pull: None,
                ignore_file: None,
                lapi_urls: vec![f.url.clone()],
                never_block: Vec::new(),
            };
            Run {
                fleet: Fleet::start(s).unwrap(),
                lines: Vec::new(),
                dir,
            }
        }

        fn block(&mut self, n: u8) {
            let ip = std::net::IpAddr::from([192, 0, 2, n]);
            self.fleet
                .record_block(1_795_383_542_000, ip, 11, Mode::Stcp, Scan::TcpSyn);
        }

        /// Waits (10 s) for a line containing `part`.
        fn wait(&mut self, part: &str) {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                self.lines.extend(self.fleet.take_log());
                if self.lines.iter().any(|l| l.contains(part)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("no line with {part:?}: {:#?}", self.lines);
        }

        fn spool_id(&self) -> String {
            let text = std::fs::read_to_string(self.dir.path().join("crowdsec.spool")).unwrap();
            text.split(' ').nth(2).unwrap().to_string()
        }
    }

    /// The record numbers of every alert the fake kept, each alert counted on its own (a
    /// record sent twice shows twice).
    fn kept_records(f: &FakeLapi, id: &str) -> Vec<u64> {
        let mut all = Vec::new();
        for a in f.kept() {
            let one = serde_json::to_vec(&vec![a]).unwrap();
            all.extend(crate::fleet::alert::delivered_seqs(id, &one).unwrap());
        }
        all.sort_unstable();
        all
    }

    fn three(f: &FakeLapi) -> Run {
        let mut r = Run::start(f);
        r.wait("pushing alerts; 0 alerts waiting in the spool");
        for n in 1..=3 {
            r.block(n);
        }
        r.fleet.flush();
        r
    }

    #[test]
    fn a_500_after_which_the_lapi_kept_the_alerts_is_asked_about_not_resent() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: true }]);
        let mut r = three(&f);
        r.wait("unreachable: HTTP 500: database is locked; alerts wait in the spool");
        r.wait("a request's outcome was unknown; the LAPI has 3 of its alerts, 0 are sent again");
        r.wait("reachable again after");
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        let st = r.fleet.status();
        assert_eq!((st.sent, st.waiting, st.dropped), (3, 0, 0));
        let posts = f.seen().iter().filter(|s| *s == "POST /v1/alerts").count();
        assert_eq!(posts, 1, "{:?}", f.seen());
        r.fleet.shutdown();
    }

    #[test]
    fn a_500_after_which_the_lapi_kept_nothing_is_sent_again_once() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: false }]);
        let mut r = three(&f);
        r.wait("the LAPI has 0 of its alerts, 3 are sent again");
        let t0 = Instant::now();
        while r.fleet.status().sent < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        r.fleet.shutdown();
    }

    #[test]
    fn garbage_from_the_alert_search_delays_the_recovery_but_never_duplicates() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Error500 { keep: true }]);
        f.script_search(&[Answer::Garbage, Answer::Error500 { keep: false }]);
        let mut r = three(&f);
        r.wait("the LAPI has 3 of its alerts, 0 are sent again");
        let searches = f.seen().iter().filter(|s| *s == "GET /v1/alerts").count();
        assert_eq!(searches, 3, "{:?}", f.seen());
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        // One lost line for the whole episode (rate-limited), then one regained line.
        r.wait("reachable again after");
        let lost: Vec<&String> = r
            .lines
            .iter()
            .filter(|l| l.contains("unreachable"))
            .collect();
        assert_eq!(lost.len(), 1, "{lost:#?}");
        r.fleet.shutdown();
    }

    #[test]
    fn a_request_refused_for_good_is_dropped_and_counted_and_the_next_goes() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Status(422)]);
        let mut r = three(&f);
        r.wait("refused 3 alerts for good (HTTP 422: scripted); they are dropped from the spool");
        r.block(4);
        r.fleet.flush();
        let t0 = Instant::now();
        while r.fleet.status().sent < 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [4]);
        let st = r.fleet.status();
        assert_eq!((st.sent, st.dropped, st.waiting), (1, 3, 0));
        r.fleet.shutdown();
    }

    #[test]
    fn an_expired_token_is_renewed_at_once_and_nothing_is_lost() {
        let f = FakeLapi::start();
        f.script_post(&[Answer::Status(401)]);
        let mut r = three(&f);
        let t0 = Instant::now();
        while r.fleet.status().sent < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(kept_records(&f, &r.spool_id()), [1, 2, 3]);
        let logins = f
            .seen()
            .iter()
            .filter(|s| *s == "POST /v1/watchers/login")
            .count();
        assert_eq!(logins, 2, "{:?}", f.seen());
        r.lines.extend(r.fleet.take_log());
        assert!(
            r.lines.iter().all(|l| !l.contains("unreachable")),
            "{:#?}",
            r.lines
        );
        r.fleet.shutdown();
    }
}
