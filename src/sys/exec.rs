//! Carries out response [`Job`]s. Steps of one job run in order (KILL_RUN_CMD before or after
//! the others, §6.1), each started when the previous one ends, and every step runs even if an
//! earlier one failed. Jobs for different hosts run side by side, so a slow command never
//! holds up detection or another host's block. Commands run as `/bin/sh -c CMD` with
//! stdin/stdout/stderr on /dev/null, no inherited descriptors (everything we open is
//! close-on-exec), a default signal mask, and a time limit; their exit status decides success
//! (1.2 counted every status as success and handed its sockets to the command as stdio,
//! §6.3, §10.1 item 11). Children are reaped from the event loop.
//!
//! A spare shell waits ready while commands are configured: starting `/bin/sh` (exec, the
//! dynamic loader, libc) is most of the time from probe to command start, so the next command
//! is handed to a shell that already runs (`IFS= read -r c; eval "$c"`: the same parsing as
//! `sh -c`), and a new spare is started after it; once it has read the line its stdin is
//! /dev/null again. It exits when the daemon does (its stdin pipe closes). A command that
//! times out is killed with its whole process group, so nothing it started lingers.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::engine::{Job, Step};
use crate::report;

use super::files::{self, DenyResult};
use super::nftables::{Batcher, Item};
use crate::nft::Set;

/// Commands running longer than this are killed and count as failed.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;
/// At most this many jobs run at once; the rest wait in order.
pub const MAX_PARALLEL: usize = 16;
/// What the spare shell runs: one line from its stdin, evaluated as `sh -c` would.
/// After the line, stdin is /dev/null as for any other command.
const SPARE_SCRIPT: &str = "IFS= read -r c || exit 126; exec </dev/null; eval \"$c\"";
/// A spare shell that could not be started is tried again after this long.
const SPARE_RETRY_MS: u64 = 1_000;

/// A `/bin/sh` already started, waiting for its command line on `stdin`.
struct Spare {
    child: Child,
    stdin: ChildStdin,
}

struct Running {
    job: Job,
    next: usize,
    ok: bool,
    /// Steps that failed so far (commands, the hosts.deny line, the nftables element).
    failures: u64,
    child: Option<(Child, u64)>,
}

/// Runs response jobs: commands, hosts.deny lines, nftables elements.
pub struct Executor {
    hosts_deny: PathBuf,
    queue: VecDeque<Job>,
    running: Vec<Running>,
    /// BLOCK_METHOD="nftables": one batcher per address family.
    nft: Option<[Batcher; 2]>,
    /// Jobs waiting for their element's batch, by token. They hold no process, so they do
    /// not count against MAX_PARALLEL: under a flood thousands wait for one netlink batch.
    nft_wait: HashMap<u64, Running>,
    next_token: u64,
    /// Keep a spare shell (commands are configured).
    want_spare: bool,
    spare: Option<Spare>,
    /// When starting a spare last failed.
    spare_failed: Option<u64>,
}

/// Where a job stands after [`advance`].
enum Next {
    /// A command runs: come back later.
    Busy,
    /// Its next step is this set element.
    Nft {
        addr: IpAddr,
        timeout_s: u64,
    },
    Done,
}

/// What the executor has to say after a pump: log lines, and finished jobs with their result.
#[derive(Default)]
pub struct Progress {
    /// Lines to log.
    pub log: Vec<String>,
    /// Jobs that ended, with whether every step succeeded.
    pub done: Vec<(Job, bool)>,
    /// Steps of the ended jobs that failed (`portsentry status`: command failures).
    pub failures: u64,
}

impl Executor {
    /// No jobs yet; hosts.deny lines go to `hosts_deny`.
    pub fn new(hosts_deny: PathBuf) -> Executor {
        Executor {
            hosts_deny,
            queue: VecDeque::new(),
            running: Vec::new(),
            nft: None,
            nft_wait: HashMap::new(),
            next_token: 0,
            want_spare: false,
            spare: None,
            spare_failed: None,
        }
    }

    /// Keep a spare shell ready (when KILL_ROUTE, KILL_RUN_CMD or KILL_ROUTE_UNDO is set), or
    /// let the current one go.
    pub fn set_spare(&mut self, on: bool) {
        self.want_spare = on;
        if !on {
            // Closing its stdin ends it; reap it.
            if let Some(mut s) = self.spare.take() {
                drop(s.stdin);
                let _ = s.child.wait();
            }
        }
    }

    /// Turns the nftables path on (with the sets' size, for the "full" warning) or off.
    /// Jobs waiting on a batch of the old batchers fail (the next hit retries them).
    pub fn set_nft(&mut self, size: Option<u32>) {
        for (_, mut r) in self.nft_wait.drain() {
            r.ok = false;
            self.running.push(r);
        }
        self.nft = size.map(|n| [Batcher::new(Set::Hosts4, n), Batcher::new(Set::Hosts6, n)]);
    }

    /// True while adds wait for a netlink batch (the loop then polls every millisecond, so
    /// a batch held back by `MIN_GAP_MS` goes out in time).
    pub fn nft_running(&self) -> bool {
        self.nft
            .as_ref()
            .is_some_and(|b| b.iter().any(Batcher::busy))
    }

    /// Where KILL_HOSTS_DENY lines go from now on (a reload).
    pub fn set_hosts_deny(&mut self, p: PathBuf) {
        self.hosts_deny = p;
    }

    /// Queue a job; it starts at the next pump with a free slot.
    pub fn submit(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    /// True while a command runs or a job waits (the loop then polls with a short timeout).
    pub fn busy(&self) -> bool {
        !self.queue.is_empty()
            || !self.running.is_empty()
            || !self.nft_wait.is_empty()
            || self
                .nft
                .as_ref()
                .is_some_and(|b| b.iter().any(Batcher::busy))
    }

    /// Reap finished children, enforce time limits, start what can start.
    pub fn pump(&mut self, now: u64) -> Progress {
        let mut p = Progress::default();
        self.pump_nft(now, &mut p.log);
        let hosts_deny = self.hosts_deny.clone();
        loop {
            while self.running.len() < MAX_PARALLEL {
                match self.queue.pop_front() {
                    Some(job) => self.running.push(Running {
                        ok: job.preflight_ok,
                        job,
                        next: 0,
                        failures: 0,
                        child: None,
                    }),
                    None => break,
                }
            }
            let more = self.pump_running(now, &hosts_deny, &mut p.log, &mut p.failures);
            p.done.extend(more);
            // Jobs that moved on to an nft batch made room: start more, so one batch
            // collects everything that is queued.
            if self.queue.is_empty() || self.running.len() >= MAX_PARALLEL {
                break;
            }
        }
        self.pump_nft(now, &mut p.log);
        // Jobs whose element was settled at once (nft could not start) go on now.
        if self.running.iter().any(|r| r.child.is_none()) {
            let more = self.pump_running(now, &hosts_deny, &mut p.log, &mut p.failures);
            p.done.extend(more);
        }
        self.keep_spare(now);
        p
    }

    /// Start a spare shell if one is wanted and none waits (after any command has been
    /// handed over, so this never delays one).
    fn keep_spare(&mut self, now: u64) {
        // No wait on every pump (it runs per block under a flood): a spare that died (killed
        // by hand?) is found and reaped when the next command wants it (`start`).
        if self.spare.is_some() {
            return;
        }
        let retry = self
            .spare_failed
            .is_none_or(|t| now.saturating_sub(t) >= SPARE_RETRY_MS);
        if !self.want_spare || !retry {
            return;
        }
        match spawn_spare() {
            Ok(s) => {
                self.spare = Some(s);
                self.spare_failed = None;
            }
            Err(_) => self.spare_failed = Some(now),
        }
    }

    fn pump_running(
        &mut self,
        now: u64,
        hosts_deny: &std::path::Path,
        log: &mut Vec<String>,
        failures: &mut u64,
    ) -> Vec<(Job, bool)> {
        let mut done = Vec::new();
        let mut i = 0;
        let mut sink = Vec::new();
        while i < self.running.len() {
            let r = &mut self.running[i];
            // Jobs over the global report rate run without a word (engine::Respond::quiet).
            let out = if r.job.quiet { &mut sink } else { &mut *log };
            let next = advance(r, now, hosts_deny, out, &mut self.spare);
            sink.clear();
            match next {
                Next::Busy => i += 1,
                Next::Done => {
                    let r = self.running.swap_remove(i);
                    *failures += r.failures;
                    done.push((r.job, r.ok));
                }
                Next::Nft { addr, timeout_s } => {
                    let r = self.running.swap_remove(i);
                    self.wait_nft(r, addr, timeout_s, log);
                }
            }
        }
        done
    }

    fn wait_nft(&mut self, mut r: Running, addr: IpAddr, timeout_s: u64, log: &mut Vec<String>) {
        let Some(b) = self.nft.as_mut() else {
            // BLOCK_METHOD was changed to "command" by a reload while this job waited.
            log.push(report::nft_add_failed(
                addr,
                "BLOCK_METHOD is no longer \"nftables\"",
            ));
            r.ok = false;
            r.failures += 1;
            self.running.push(r);
            return;
        };
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        let i = usize::from(!addr.is_ipv4());
        if let Some(b) = b.get_mut(i) {
            b.push(Item {
                token,
                addr,
                timeout_s,
            });
        }
        self.nft_wait.insert(token, r);
    }

    /// Reap finished batches (their jobs go on with the next step) and start new ones.
    fn pump_nft(&mut self, now: u64, log: &mut Vec<String>) {
        let Some(batchers) = self.nft.as_mut() else {
            return;
        };
        for b in batchers.iter_mut() {
            for (item, ok) in b.pump(now, log) {
                if let Some(mut r) = self.nft_wait.remove(&item.token) {
                    if ok && !r.job.quiet {
                        log.push(report::nft_blocked(item.addr, item.timeout_s));
                    }
                    r.ok &= ok;
                    r.failures += u64::from(!ok);
                    self.running.push(r);
                }
            }
        }
    }
}

/// Drive one job as far as it goes without waiting.
fn advance(
    r: &mut Running,
    now: u64,
    hosts_deny: &std::path::Path,
    log: &mut Vec<String>,
    spare: &mut Option<Spare>,
) -> Next {
    let ip = r.job.target;
    loop {
        if let Some((child, started)) = r.child.as_mut() {
            let step = &r.job.steps[r.next - 1];
            match child.try_wait() {
                Ok(None) if now.saturating_sub(*started) < COMMAND_TIMEOUT_MS => return Next::Busy,
                Ok(None) => {
                    // The whole group: the shell and whatever it started (each command
                    // runs in a process group of its own, see `shell`).
                    if let Ok(pg) = i32::try_from(child.id()) {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pg),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    log.push(report::command_timed_out(
                        ip,
                        COMMAND_TIMEOUT_MS / 1000,
                        command_of(step),
                    ));
                    r.ok = false;
                    r.failures += 1;
                }
                Ok(Some(st)) => {
                    let ok = st.success();
                    r.ok &= ok;
                    r.failures += u64::from(!ok);
                    log.push(command_result(step, ip, st));
                }
                Err(e) => {
                    log.push(report::command_not_started(ip, e, command_of(step)));
                    r.ok = false;
                    r.failures += 1;
                }
            }
            r.child = None;
        }
        let Some(step) = r.job.steps.get(r.next) else {
            return Next::Done;
        };
        r.next += 1;
        match step {
            Step::HostsDeny { line } => match files::hosts_deny_append(hosts_deny, line) {
                Ok(DenyResult::Appended) => log.push(report::blocked_via_wrappers(ip, line)),
                Ok(DenyResult::AlreadyPresent) => log.push(report::already_in_hosts_deny(ip)),
                Err(_) => {
                    log.push(report::cannot_open_hosts_deny(hosts_deny));
                    log.push(report::hosts_deny_block_failed(ip));
                    r.ok = false;
                    r.failures += 1;
                }
            },
            Step::NftAdd { addr, timeout_s } => {
                return Next::Nft {
                    addr: *addr,
                    timeout_s: *timeout_s,
                };
            }
            Step::Route { command } | Step::RunCmd { command } | Step::Undo { command } => {
                match start(command, spare) {
                    Ok(c) => r.child = Some((c, now)),
                    Err(e) => {
                        log.push(report::command_not_started(ip, e, command));
                        r.ok = false;
                        r.failures += 1;
                    }
                }
            }
        }
    }
}

fn command_of(step: &Step) -> &str {
    match step {
        Step::Route { command } | Step::RunCmd { command } | Step::Undo { command } => command,
        Step::HostsDeny { line } => line,
        Step::NftAdd { .. } => "nft",
    }
}

fn command_result(step: &Step, ip: IpAddr, st: std::process::ExitStatus) -> String {
    match (step, st.code(), st.signal()) {
        (Step::Route { command }, Some(0), _) => report::blocked_via_route(ip, command),
        (Step::RunCmd { command }, Some(0), _) => report::external_command_run(ip, command),
        (Step::Undo { command }, Some(0), _) => report::undo_run(ip, command),
        (s, Some(code), _) => report::command_exited(ip, code, command_of(s)),
        (s, None, sig) => report::command_killed(ip, sig.unwrap_or(0), command_of(s)),
    }
}

/// Run `command`: through the spare shell if one waits (and takes it), else a new shell.
fn start(command: &str, spare: &mut Option<Spare>) -> std::io::Result<Child> {
    // A line break would end the spare's `read` early: such a command gets its own shell.
    if let Some(mut s) = spare.take().filter(|_| !command.contains('\n')) {
        let line = format!("{command}\n");
        if matches!(s.child.try_wait(), Ok(None)) && s.stdin.write_all(line.as_bytes()).is_ok() {
            drop(s.stdin); // end of file after the line
            return Ok(s.child);
        }
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    spawn(command)
}

fn spawn_spare() -> std::io::Result<Spare> {
    let mut c = shell();
    c.arg("-c").arg(SPARE_SCRIPT).stdin(Stdio::piped());
    let mut child = c.spawn()?;
    match child.stdin.take() {
        Some(stdin) => Ok(Spare { child, stdin }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other("spare shell without stdin"))
        }
    }
}

fn spawn(command: &str) -> std::io::Result<Child> {
    let mut c = shell();
    c.arg("-c").arg(command).stdin(Stdio::null());
    c.spawn()
}

/// `/bin/sh` with stdout and stderr on /dev/null, a PATH, in its own process group.
fn shell() -> Command {
    let mut c = Command::new("/bin/sh");
    c.stdout(Stdio::null()).stderr(Stdio::null());
    if std::env::var_os("PATH").is_none() {
        c.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    // Its own process group, so a terminal's ^C on a foreground daemon does not reach it.
    // No pre_exec closure: std then starts the shell with posix_spawn (vfork-like, no copy of
    // the daemon's page tables), and it gives the child an empty signal mask (the daemon
    // blocks the signals it reads through signalfd; e2e tests check the child's SigBlk).
    c.process_group(0);
    c
}
