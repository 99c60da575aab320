//! nftables for the daemon and for `portsentry blocked`: the idempotent table set-up and the
//! listing run `nft` (once at start-up, or per admin command); the batched element adds of
//! the hot path go straight to the kernel over nfnetlink (`crate::block::nfnl` builds the bytes,
//! `sys::block::nfnl` owns the socket). The script text and the listing parser are pure
//! (`crate::block::nft`).
//!
//! Why not `nft -f -` on the hot path any more: one `nft` run costs about 4.5 ms of process
//! start and parsing whatever it does, and under a flood the nft processes took about as much
//! CPU as the daemon itself (perf, bench/nft-blocks.sh: 46 % of the samples). A netlink batch
//! is one `send` that the kernel processes before it returns.
//!
//! Adds are batched: an idle daemon sends at once (the first add after a quiet spell); under
//! load at most one batch per address family every [`MIN_GAP_MS`], so the batch grows with
//! the load and its fixed cost (one transaction) is shared.
//!
//! A batch is one transaction: one bad element fails all of it. A failed batch is split in
//! halves and retried, so the elements that fit still get in; once a single element fails
//! because the set is full (ENFILE), the set is marked full, the warning is logged once, and
//! later batches are tried once each (no splitting) until one succeeds again.
//!
//! A failed transaction is not cheap: the kernel's abort waits for an RCU grace period
//! (`synchronize_rcu` in `__nf_tables_abort`), about 8 ms here, with the daemon asleep in
//! `send` (state D). So after a batch failed as a whole because the set is full or the table
//! is gone, adds fail at once, with no transaction, for [`RETRY_MS`]; then one batch tries
//! again. Before, every batch tried: measured (2026-12-07, `-stcp`, BLOCK_SET_SIZE="1000",
//! 3,000 forged sources from all of IPv4 in 0.15 s), the daemon spent the next 16.4 s in
//! failing transactions, reading neither its ring nor its status socket, so under a longer
//! flood it was blind for as long as the flood lasted.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::block::nfnl::{self, Outcome};
use crate::block::nft::{self, Element, Failure, Prefix, Set};
use crate::observe::report;
use crate::sys::block::nfnl::Socket;

/// At most this many elements per transaction (about 165 KB for IPv6, within the socket's
/// send buffer).
pub const MAX_BATCH: usize = 4096;
/// Under load, send a batch at most this often unless MAX_BATCH adds wait.
pub const MIN_GAP_MS: u64 = 1;
/// After a batch failed as a whole for a full set or a missing table, adds fail without a
/// transaction for this long (see the module's comment).
pub const RETRY_MS: u64 = 1_000;

/// A failed `nft` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftError {
    /// What kind of failure.
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
    // The fleet's elements are not carried over: `add_script` knows the local sets only, and
    // the fleet thread fills its sets again from the LAPI's stream at its next start.
    let keep: Vec<(Prefix, u64)> = list()?
        .iter()
        .filter(|e| !e.set.is_fleet())
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
    /// The job waiting for it.
    pub token: u64,
    /// The address.
    pub addr: IpAddr,
    /// Its timeout in seconds (0: none).
    pub timeout_s: u64,
    /// A delete (room made for a source with more evidence, `Step::NftDel`), not an add.
    pub del: bool,
}

/// Batches the adds of one address family (each family has its own set and its own "full")
/// and sends them over its own nfnetlink socket (`sys::block::nfnl`).
pub struct Batcher {
    set: Set,
    size: u32,
    pending: Vec<Item>,
    full: bool,
    /// When the last batch was sent (None: never).
    last_start: Option<u64>,
    /// Since when adds fail without a transaction (see [`RETRY_MS`]).
    hold: Option<u64>,
    /// Opened at the first batch; dropped after a socket error and opened again at the next.
    sock: Option<Socket>,
}

impl Batcher {
    /// A batcher for `set`, whose size is `size` (for the "full" warning).
    pub fn new(set: Set, size: u32) -> Batcher {
        Batcher {
            set,
            size,
            pending: Vec::new(),
            full: false,
            last_start: None,
            hold: None,
            sock: None,
        }
    }

    /// Queue an element for the next batch.
    pub fn push(&mut self, item: Item) {
        self.pending.push(item);
    }

    /// The set changed outside the daemon (`portsentry blocked del`, a reload): the next
    /// batch is tried at once, even within [`RETRY_MS`] of a failure.
    pub fn retry_now(&mut self) {
        self.hold = None;
    }

    /// Adds wait for the next batch (the loop then polls every millisecond).
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends what waits, if a batch is due. Returns the items that are done, with their
    /// result; appends log lines.
    pub fn pump(&mut self, now: u64, log: &mut Vec<String>) -> Vec<(Item, bool)> {
        let mut done = Vec::new();
        let due = self.pending.len() >= MAX_BATCH
            || self
                .last_start
                .is_none_or(|t| now.saturating_sub(t) >= MIN_GAP_MS);
        if self.pending.is_empty() || !due {
            return done;
        }
        self.last_start = Some(now);
        // Deletes first, in transactions of their own (a delete of an element already gone
        // fails its whole transaction): the room they make is there for the adds after them.
        let (dels, adds): (Vec<Item>, Vec<Item>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|i| i.del);
        let mut queue: VecDeque<Vec<Item>> = dels.chunks(MAX_BATCH).map(<[Item]>::to_vec).collect();
        while let Some(batch) = queue.pop_front() {
            let status = self.send(&batch);
            self.settle_del(batch, status, log, &mut done, &mut queue);
        }
        if held(self.hold, now) {
            // The set is full or the table gone: these would fail as the last batch did.
            done.extend(adds.into_iter().map(|i| (i, false)));
            return done;
        }
        let mut queue: VecDeque<Vec<Item>> = VecDeque::new();
        let mut rest = adds;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH));
            queue.push_back(rest);
            rest = tail;
        }
        while let Some(batch) = queue.pop_front() {
            if held(self.hold, now) {
                done.extend(batch.into_iter().map(|i| (i, false)));
                continue;
            }
            let status = self.send(&batch);
            self.settle(now, batch, status, log, &mut done, &mut queue);
        }
        done
    }

    /// One transaction for `batch`.
    fn send(&mut self, batch: &[Item]) -> Result<(), NftError> {
        if self.sock.is_none() {
            self.sock = Some(Socket::open().map_err(|e| NftError {
                failure: Failure::Other,
                message: format!("cannot open a netlink socket to nftables: {e}"),
            })?);
        }
        let Some(sock) = self.sock.as_mut() else {
            return Err(NftError {
                failure: Failure::Other,
                message: "no netlink socket".to_string(),
            });
        };
        let req = if batch.first().is_some_and(|i| i.del) {
            let addrs: Vec<IpAddr> = batch.iter().map(|i| i.addr).collect();
            nfnl::del_elements(sock.seq(), self.set, &addrs)
        } else {
            let elems: Vec<(IpAddr, u64)> = batch
                .iter()
                .map(|i| (i.addr, i.timeout_s.saturating_mul(1000)))
                .collect();
            nfnl::add_elements(sock.seq(), self.set, &elems)
        };
        match sock.transact(&req) {
            Ok(Outcome::Done) => Ok(()),
            Ok(Outcome::Failed(errno)) => {
                let failure = nfnl::failure_of(errno);
                let why = std::io::Error::from_raw_os_error(errno);
                let message = if failure == Failure::Missing {
                    format!(
                        "table {} {} or its set {} is gone ({why}); a restart or reload makes it again",
                        nft::FAMILY,
                        nft::TABLE,
                        self.set.name()
                    )
                } else {
                    format!("netlink: {why}")
                };
                Err(NftError { failure, message })
            }
            Ok(Outcome::Incomplete) => Err(NftError {
                failure: Failure::Other,
                message: "netlink: the kernel's answer to a batch was lost".to_string(),
            }),
            Err(e) => {
                self.sock = None;
                Err(NftError {
                    failure: Failure::Other,
                    message: format!("netlink: {e}"),
                })
            }
        }
    }

    /// A delete batch's result: done, or split until each element is known; one element
    /// that fails with ENOENT is gone already, which is what a delete wants. A delete that
    /// went through made room: adds are tried again at once.
    fn settle_del(
        &mut self,
        items: Vec<Item>,
        status: Result<(), NftError>,
        log: &mut Vec<String>,
        done: &mut Vec<(Item, bool)>,
        queue: &mut VecDeque<Vec<Item>>,
    ) {
        match status {
            Ok(()) => {
                self.hold = None;
                done.extend(items.into_iter().map(|i| (i, true)));
            }
            Err(e) if items.len() > 1 && e.failure != Failure::Other => split(items, queue),
            Err(e) if e.failure == Failure::Missing => {
                done.extend(items.into_iter().map(|i| (i, true)));
            }
            Err(e) => {
                for i in &items {
                    log.push(report::nft_del_failed(i.addr, &e.message));
                }
                done.extend(items.into_iter().map(|i| (i, false)));
            }
        }
    }

    fn settle(
        &mut self,
        now: u64,
        items: Vec<Item>,
        status: Result<(), NftError>,
        log: &mut Vec<String>,
        done: &mut Vec<(Item, bool)>,
        queue: &mut VecDeque<Vec<Item>>,
    ) {
        match status {
            Ok(()) => {
                self.hold = None;
                if self.full {
                    self.full = false;
                    log.push(report::nft_set_room(self.set));
                }
                done.extend(items.into_iter().map(|i| (i, true)));
            }
            Err(e)
                if items.len() > 1
                    && e.failure != Failure::Missing
                    && !(self.full && e.failure == Failure::SetFull) =>
            {
                // Find the elements that fit. (A missing table or set fails every element
                // alike: no split.)
                split(items, queue);
            }
            Err(e) => {
                if matches!(e.failure, Failure::SetFull | Failure::Missing) {
                    self.hold = Some(now);
                }
                if e.failure == Failure::SetFull {
                    if !self.full {
                        self.full = true;
                        log.push(report::nft_set_full(self.set, self.size));
                    }
                } else {
                    for i in &items {
                        log.push(report::nft_add_failed(i.addr, &e.message));
                    }
                }
                done.extend(items.into_iter().map(|i| (i, false)));
            }
        }
    }
}

/// A failed batch of several: each half is tried again, before the rest.
fn split(mut items: Vec<Item>, queue: &mut VecDeque<Vec<Item>>) {
    let b = items.split_off(items.len() / 2);
    queue.push_front(b);
    queue.push_front(items);
}

/// Do adds fail at `now` without a transaction? (`hold`: since when.)
fn held(hold: Option<u64>, now: u64) -> bool {
    hold.is_some_and(|at| now.saturating_sub(at) < RETRY_MS)
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
        if report::blocked_line_host(line).is_some_and(|ip| keep.contains(&ip.to_canonical())) {
            kept.push_str(line);
            kept.push('\n');
            n += 1;
        }
    }
    // Replaced as a whole: a crash never leaves the file empty or half-written.
    crate::sys::atomic::write(path, kept.as_bytes(), 0o644)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_full_set_or_a_missing_table_adds_wait_a_second_before_the_next_transaction() {
        assert!(!held(None, 5_000));
        let h = Some(5_000);
        assert!(held(h, 5_000));
        assert!(held(h, 5_000 + RETRY_MS - 1));
        assert!(!held(h, 5_000 + RETRY_MS), "one batch tries again");
        // A clock that went back (a restored snapshot) never holds longer.
        assert!(held(h, 4_000));
    }

    /// While held, a pump fails what waits at once and never opens a socket: a batcher
    /// with no socket stays without one.
    #[test]
    fn a_held_batcher_fails_its_adds_without_a_transaction() {
        let mut b = Batcher::new(Set::Hosts4, 1000);
        b.hold = Some(10_000);
        for t in 0..3 {
            b.push(Item {
                token: t,
                addr: IpAddr::from([192, 0, 2, t as u8 + 1]),
                timeout_s: 0,
                del: false,
            });
        }
        let mut log = Vec::new();
        let done = b.pump(10_500, &mut log);
        assert_eq!(done.len(), 3);
        assert!(done.iter().all(|(_, ok)| !ok));
        assert!(b.sock.is_none(), "no transaction was tried");
        assert!(
            log.is_empty(),
            "the set-full warning was logged when it became full"
        );
        assert!(!b.busy());
        b.retry_now();
        assert!(!held(b.hold, 10_500), "a re-read of the set lifts the hold");
    }
}
