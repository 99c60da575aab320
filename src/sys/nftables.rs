//! Runs `nft` for the daemon and for `portsentry blocked`: the idempotent table set-up, the
//! listing, and the batched adds of the hot path. The script text and the listing parser are
//! pure (`crate::nft`); this module only feeds `nft -f -` and reads what it says.
//!
//! Why `nft -f -` per batch, and not one fork per block or a long-lived `nft -i`: measured
//! here (nftables 1.0.6, kernel 6.18, in a namespace), one `nft` run costs about 4.5 ms
//! whatever it does; 10 × 10,000 elements in one run took 0.40 s (250,000 elements/s); 1,000
//! one-element commands took 14 ms through one `nft -f` and 74 ms through `nft -i` (every line
//! of `nft -i` is its own netlink transaction). A long-lived `nft -e -i` was tried for lower
//! latency: it answered single lines in 5-15 ms here (no better than a fresh `nft -f`), and
//! its acknowledgements cannot be matched to commands reliably (a no-op command prints
//! nothing, an error prints several lines). One fork per block would cap a flood at ~200
//! blocks/s (the iptables KILL_ROUTE run of bench/nft-blocks.sh: 450-480/s). So at most
//! one `nft -f -` per address family runs at a time; adds that arrive meanwhile wait and go
//! together in the next run, so the batch grows with the load and costs one fork.
//!
//! A batch is one transaction: one bad element fails all of it. A failed batch is split in
//! halves and retried, so the elements that fit still get in; once a single element fails
//! because the set is full (ENFILE), the set is marked full, the warning is logged once, and
//! later batches are tried once each (no splitting) until one succeeds again.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::nft::{self, Element, Failure, Prefix, Set};

/// A batch running longer than this is killed and fails.
pub const BATCH_TIMEOUT_MS: u64 = 30_000;
/// At most this many elements per `nft` run.
pub const MAX_BATCH: usize = 20_000;
/// Under load, start a batch at most this often unless MAX_BATCH adds wait: every start
/// blocks the loop while the child execs (~1 ms), so fewer, larger batches keep the loop
/// reading probes. An idle daemon starts at once (the first add after a quiet spell).
pub const MIN_GAP_MS: u64 = 10;
/// Keep at most this much of nft's error output.
const STDERR_KEEP: usize = 4096;

/// A failed `nft` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftError {
    pub failure: Failure,
    /// What went wrong, for people (nft's first error line, or why it did not start).
    pub message: String,
}

impl std::fmt::Display for NftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NftError {}

/// The nft binary, looked up in PATH once: a spawn blocks the loop until the child has
/// exec'd, and every PATH entry tried before the right one is one more failed execve.
fn nft_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin".into()
        });
        std::env::split_paths(&path)
            .map(|d| d.join("nft"))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .unwrap_or_else(|| PathBuf::from("nft"))
    })
}

fn nft() -> Command {
    Command::new(nft_path())
}

fn not_started(e: &std::io::Error) -> NftError {
    let message = if e.kind() == ErrorKind::NotFound {
        "cannot run nft: not found in PATH (install the nftables package)".to_string()
    } else {
        format!("cannot run nft: {e}")
    };
    NftError {
        failure: Failure::Other,
        message,
    }
}

fn failed(stderr: &[u8]) -> NftError {
    let s = String::from_utf8_lossy(stderr);
    NftError {
        failure: nft::classify_failure(&s),
        message: nft::first_error_line(&s),
    }
}

/// Runs `script` through `nft -f -` and waits for it (start-up and the admin command).
pub fn run_script(script: &str) -> Result<(), NftError> {
    let mut child = nft()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| not_started(&e))?;
    if let Some(mut i) = child.stdin.take() {
        // nft reads all of stdin before it writes errors, so a blocking write cannot deadlock;
        // a write error (nft died early) shows in its exit status.
        let _ = i.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| not_started(&e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(&out.stderr))
    }
}

/// Creates the table, sets and chain, or re-uses them (never touches other tables).
///
/// A table `inet portsentry` made another way — for example from the KILL_ROUTE example in
/// the shipped portsentry.conf, whose sets have no `flags timeout` — makes `add set` fail with
/// "File exists". Then the table is rebuilt with its host and network elements carried over
/// (time left as the new timeout), all in one transaction: if anything fails, the old table
/// stays as it was and the error is reported.
pub fn setup(size: u32) -> Result<(), NftError> {
    match run_script(&nft::setup_script(size)) {
        Err(e) if e.message.contains("File exists") => rebuild(size).map_err(|e2| NftError {
            failure: e2.failure,
            message: format!(
                "{} (table inet portsentry exists with other sets; rebuilding it failed: {e2})",
                e.message
            ),
        }),
        r => r,
    }
}

fn rebuild(size: u32) -> Result<(), NftError> {
    let keep: Vec<(Prefix, u64)> = list()?
        .iter()
        .map(|e| {
            (
                e.prefix,
                e.expires_ms.map_or(0, |ms| ms.div_ceil(1000).max(1)),
            )
        })
        .collect();
    run_script(&format!(
        "{}{}{}",
        nft::delete_table_script(),
        nft::setup_script(size),
        nft::add_script(&keep)
    ))
}

/// Every element of our sets. A missing table is `Failure::Missing`.
pub fn list() -> Result<Vec<Element>, NftError> {
    let out = nft()
        .args(nft::LIST_ARGS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_started(&e))?;
    if !out.status.success() {
        return Err(failed(&out.stderr));
    }
    nft::parse_listing(&String::from_utf8_lossy(&out.stdout)).map_err(|e| NftError {
        failure: Failure::Other,
        message: e.to_string(),
    })
}

/// A host in the set and its time left in ms (None: never expires).
pub type Kept = (IpAddr, Option<u64>);

/// The single addresses in the host sets with their time left, for
/// `Engine::restore_blocked`.
pub fn hosts(elems: &[Element]) -> Vec<Kept> {
    elems
        .iter()
        .filter(|e| matches!(e.set, Set::Hosts4 | Set::Hosts6))
        .map(|e| (e.prefix.addr, e.expires_ms))
        .collect()
}

/// One add waiting for its batch; `token` lets the executor find the job that waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub token: u64,
    pub addr: IpAddr,
    pub timeout_s: u64,
}

struct Inflight {
    child: Child,
    items: Vec<Item>,
    started: u64,
    stderr: Vec<u8>,
}

/// Batches the adds of one address family (each family has its own set and its own "full").
pub struct Batcher {
    set: Set,
    size: u32,
    pending: Vec<Item>,
    retry: VecDeque<Vec<Item>>,
    inflight: Option<Inflight>,
    full: bool,
    /// When the last batch started (None: never).
    last_start: Option<u64>,
    /// When the running batch was last checked: under a flood the executor is pumped for
    /// every probe, and one check per millisecond is enough.
    last_check: u64,
    /// An `nft -f -` started while idle, waiting for its script on stdin: it has loaded and
    /// initialised by the time a probe comes, which takes its start (~1 ms) off the
    /// probe-to-block latency. It costs one idle process per address family; it exits when
    /// its stdin closes (daemon gone or the batcher dropped).
    spare: Option<Child>,
}

fn spawn_batch_nft() -> std::io::Result<Child> {
    nft()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
}

/// The spare if it still waits; one that died (killed by someone) is reaped and dropped.
fn alive(mut c: Child) -> Option<Child> {
    matches!(c.try_wait(), Ok(None)).then_some(c)
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Reap what we started: a spare ends on EOF; a batch still running is stopped.
        if let Some(mut c) = self.spare.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        if let Some(mut f) = self.inflight.take() {
            let _ = f.child.kill();
            let _ = f.child.wait();
        }
    }
}

impl Batcher {
    pub fn new(set: Set, size: u32) -> Batcher {
        Batcher {
            set,
            size,
            pending: Vec::new(),
            retry: VecDeque::new(),
            inflight: None,
            full: false,
            last_start: None,
            last_check: 0,
            spare: None,
        }
    }

    pub fn push(&mut self, item: Item) {
        self.pending.push(item);
    }

    pub fn busy(&self) -> bool {
        self.inflight.is_some() || !self.pending.is_empty() || !self.retry.is_empty()
    }

    /// Reap a finished run, start the next one. Returns the items that are done, with their
    /// result; appends log lines.
    pub fn pump(&mut self, now: u64, log: &mut Vec<String>) -> Vec<(Item, bool)> {
        let mut done = Vec::new();
        if self.inflight.is_some() && now == self.last_check {
            return done;
        }
        self.last_check = now;
        if let Some(f) = self.inflight.as_mut() {
            drain(f);
            let status = match f.child.try_wait() {
                Ok(None) if now.saturating_sub(f.started) < BATCH_TIMEOUT_MS => return done,
                Ok(None) => {
                    let _ = f.child.kill();
                    let _ = f.child.wait();
                    Err(NftError {
                        failure: Failure::Other,
                        message: format!("nft ran longer than {} s", BATCH_TIMEOUT_MS / 1000),
                    })
                }
                Ok(Some(st)) if st.success() => Ok(()),
                Ok(Some(_)) => {
                    drain(f);
                    Err(failed(&f.stderr))
                }
                Err(e) => Err(not_started(&e)),
            };
            let items = self.inflight.take().map(|f| f.items).unwrap_or_default();
            self.settle(items, status, log, &mut done);
        }
        let due = self.pending.len() >= MAX_BATCH
            || !self.retry.is_empty()
            || self
                .last_start
                .is_none_or(|t| now.saturating_sub(t) >= MIN_GAP_MS);
        if self.inflight.is_none() && due {
            let batch = match self.retry.pop_front() {
                Some(b) => b,
                None => {
                    let n = self.pending.len().min(MAX_BATCH);
                    self.pending.drain(..n).collect()
                }
            };
            if !batch.is_empty() {
                self.start(batch, now, log, &mut done);
            }
        }
        if self.spare.is_none() && self.inflight.is_none() && self.pending.is_empty() {
            // Idle: have the next nft ready. A failure to start shows at the next batch.
            self.spare = spawn_batch_nft().ok();
        }
        done
    }

    fn settle(
        &mut self,
        items: Vec<Item>,
        status: Result<(), NftError>,
        log: &mut Vec<String>,
        done: &mut Vec<(Item, bool)>,
    ) {
        match status {
            Ok(()) => {
                if self.full {
                    self.full = false;
                    log.push(nft::msg_set_room(self.set));
                }
                done.extend(items.into_iter().map(|i| (i, true)));
            }
            Err(e) if items.len() > 1 && !(self.full && e.failure == Failure::SetFull) => {
                // Find the elements that fit: retry each half, before newer adds.
                let mut a = items;
                let b = a.split_off(a.len() / 2);
                self.retry.push_front(b);
                self.retry.push_front(a);
            }
            Err(e) => {
                if e.failure == Failure::SetFull {
                    if !self.full {
                        self.full = true;
                        log.push(nft::msg_set_full(self.set, self.size));
                    }
                } else {
                    for i in &items {
                        log.push(nft::msg_add_failed(i.addr, &e.message));
                    }
                }
                done.extend(items.into_iter().map(|i| (i, false)));
            }
        }
    }

    fn start(
        &mut self,
        batch: Vec<Item>,
        now: u64,
        log: &mut Vec<String>,
        done: &mut Vec<(Item, bool)>,
    ) {
        let elems: Vec<(Prefix, u64)> = batch
            .iter()
            .map(|i| (Prefix::host(i.addr), i.timeout_s))
            .collect();
        let script = nft::add_script(&elems);
        self.last_start = Some(now);
        let spare = self.spare.take().and_then(alive);
        let mut child = match spare.map_or_else(spawn_batch_nft, Ok) {
            Ok(c) => c,
            Err(e) => {
                let e = not_started(&e);
                self.settle(batch, Err(e), log, done);
                return;
            }
        };
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(script.as_bytes());
        }
        if let Some(err) = child.stderr.as_ref() {
            // Drained from the loop while nft runs, so a long error message cannot fill
            // the pipe and stall it.
            let _ = nix::fcntl::fcntl(
                err.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        self.inflight = Some(Inflight {
            child,
            items: batch,
            started: now,
            stderr: Vec::new(),
        });
    }
}

fn drain(f: &mut Inflight) {
    let Some(err) = f.child.stderr.as_mut() else {
        return;
    };
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = STDERR_KEEP.saturating_sub(f.stderr.len());
                f.stderr
                    .extend_from_slice(buf.get(..n.min(room)).unwrap_or(&[]));
            }
        }
    }
}

/// Keeps the lines of a `BLOCKED_FILE.<mode>` whose host is still in the set and drops the
/// rest: with nftables the blocks outlive the daemon, so the file that lists them must too
/// (1.2 clears it on start because its blocks were forgotten, §7.1). A missing file is
/// created empty, as a truncation would.
pub fn keep_blocked_lines(
    path: &std::path::Path,
    keep: &std::collections::HashSet<IpAddr>,
) -> std::io::Result<usize> {
    let old = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&old);
    let mut kept = String::new();
    let mut n = 0;
    for line in text.lines() {
        if nft::blocked_line_host(line).is_some_and(|ip| keep.contains(&ip.to_canonical())) {
            kept.push_str(line);
            kept.push('\n');
            n += 1;
        }
    }
    super::files::truncate(path)?;
    if !kept.is_empty() {
        let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
        f.write_all(kept.as_bytes())?;
    }
    Ok(n)
}
