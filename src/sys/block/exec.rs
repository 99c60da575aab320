//! Carries out response [`Job`]s. Steps of one job run in order (KILL_RUN_CMD before or after
//! the others, §6.1), each started when the previous one ends, and every step runs even if an
//! earlier one failed. Jobs for different hosts run side by side, so a slow command never
//! holds up detection or another host's block. Commands run as `/bin/sh -c CMD` with
//! stdin/stdout/stderr on /dev/null, no inherited descriptors (everything we open is
//! close-on-exec), a default signal mask, and a time limit; their exit status decides success
//! (1.2 counted every status as success and handed its sockets to the command as stdio,
//! §6.3, §10.1 item 11). Children are reaped from the event loop. A command that times out is
//! killed with its whole process group, so nothing it started lingers.
//!
//! Commands go to a spare shell that is already running (`spares`: started on a thread of
//! its own, so the loop never waits for a spawn); while the next spare is on its way a job
//! waits for it, unless starting spares fails, when the job starts a shell of its own.
//!
//! A flood of forged sources must not delay the block of a real scan (bench scenario E): jobs
//! of reports the report limits held back (`Job::quiet`: the forged flood is what fills the
//! limits) queue apart and run at most [`FLOOD_PARALLEL`] at a time (the number of CPUs),
//! while the other jobs go first and keep the rest of the [`MAX_PARALLEL`] slots.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use crate::engine::{FLOOD_QUEUE_MAX, Job, Step};
use crate::observe::report;

use crate::block::nft::Set;
use crate::sys::block::files::{self, DenyResult};
use crate::sys::block::nftables::{Batcher, Item};
use crate::sys::block::spares::{Spare, Spares};
use crate::sys::block::spawn::{self, Exit, Proc};

/// Commands running longer than this are killed and count as failed.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;
/// At most this many jobs run at once; the rest wait in order.
pub const MAX_PARALLEL: usize = 16;
/// Jobs of reports over the report limits (a flood) run at most this many at a time (the
/// CPUs; at least one, at most `MAX_PARALLEL - 4`, so four slots stay for other jobs).
pub fn flood_parallel() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, MAX_PARALLEL - 4)
    })
}
/// Running commands are looked at (wait4) at least this often, SIGCHLD or not.
const REAP_MS: u64 = 100;
/// After starting a spare shell failed, commands start shells of their own for this long.
const SPARE_RETRY_MS: u64 = 1_000;

struct Running {
    job: Job,
    next: usize,
    ok: bool,
    /// Steps that failed so far (commands, the hosts.deny line, the nftables element).
    failures: u64,
    child: Option<(Proc, u64)>,
}

/// Runs response jobs: commands, hosts.deny lines, nftables elements.
pub struct Executor {
    hosts_deny: PathBuf,
    /// Jobs waiting for a slot, in order: those of reports within the limits, then those of
    /// reports over them (a flood).
    queue: VecDeque<Job>,
    flood: VecDeque<Job>,
    running: Vec<Running>,
    /// BLOCK_METHOD="nftables": one batcher per address family.
    nft: Option<[Batcher; 2]>,
    /// Jobs waiting for their element's batch, by token. They hold no process, so they do
    /// not count against MAX_PARALLEL: under a flood thousands wait for one netlink batch.
    nft_wait: HashMap<u64, Running>,
    next_token: u64,
    /// The spare-shell thread, while commands are configured.
    spares: Option<Spares>,
    /// The spare taken from it, ready for the next command.
    spare: Option<Spare>,
    /// When starting a spare last failed.
    spare_failed: Option<u64>,
    /// A child ended (SIGCHLD) since running commands were last looked at.
    child_exited: bool,
    /// When running commands were last looked at (wait4 on each).
    last_reap: u64,
}

/// Where a job stands after [`advance`].
enum Next {
    /// A command runs: come back later.
    Busy,
    /// Its next step is this set element: added, or deleted (`del`) to make room.
    Nft {
        addr: IpAddr,
        timeout_s: u64,
        del: bool,
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
            flood: VecDeque::new(),
            running: Vec::new(),
            nft: None,
            nft_wait: HashMap::new(),
            next_token: 0,
            spares: None,
            spare: None,
            spare_failed: None,
            child_exited: false,
            last_reap: 0,
        }
    }

    /// The loop read a SIGCHLD: a command (or a spare shell) ended; the next pump reaps it.
    pub fn child_exited(&mut self) {
        self.child_exited = true;
    }

    /// Look at the running commands (wait4 each) in this pump? After a SIGCHLD, and at least
    /// every [`REAP_MS`] in case one was missed. Under a flood of blocks a wait4 per running
    /// job on every pump (every hit, every loop turn) was a tenth of the daemon's time.
    fn reap_due(&mut self, now: u64) -> bool {
        let due = self.child_exited || now.saturating_sub(self.last_reap) >= REAP_MS;
        if due {
            self.child_exited = false;
            self.last_reap = now;
        }
        due
    }

    /// Keep a spare shell ready (when KILL_ROUTE, KILL_RUN_CMD or KILL_ROUTE_UNDO is set), or
    /// let the current one go.
    pub fn set_spare(&mut self, on: bool) {
        if !on {
            self.spares = None;
            if let Some(s) = self.spare.take() {
                s.dismiss();
            }
        } else if self.spares.is_none() {
            // Without the thread, commands start shells of their own (as if spares failed).
            self.spares = Spares::start().ok();
        }
    }

    /// While a spare shell is on its way: readable when it is ready (the loop polls it and
    /// pumps then).
    pub fn spare_fd(&self) -> Option<BorrowedFd<'_>> {
        self.spares.as_ref().and_then(Spares::fd)
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

    /// The sets were re-read (`portsentry blocked` changed them, or a reload): adds held
    /// back after a full set or a missing table are tried again at once.
    pub fn nft_changed(&mut self) {
        for b in self.nft.iter_mut().flatten() {
            b.retry_now();
        }
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

    /// Queue a job; it starts at the next pump with a free slot. A quiet job (a report
    /// over the report limits) finding [`FLOOD_QUEUE_MAX`] others waiting is not queued: it
    /// comes back, for the engine to forget (`Engine::job_shed`).
    pub fn submit(&mut self, job: Job) -> Option<Job> {
        if job.quiet {
            if self.flood.len() >= FLOOD_QUEUE_MAX {
                return Some(job);
            }
            self.flood.push_back(job);
        } else {
            self.queue.push_back(job);
        }
        None
    }

    /// The host's report, first held back by the report limits, has now been logged: its
    /// quiet job moves ahead of the other quiet ones (from the flood queue to the head of the
    /// main queue) and is logged from now on, wherever it stands.
    pub fn promote(&mut self, ip: IpAddr) {
        if let Some(i) = self.flood.iter().position(|j| j.target == ip) {
            if let Some(mut job) = self.flood.remove(i) {
                job.quiet = false;
                self.queue.push_front(job);
            }
            return;
        }
        for r in self
            .running
            .iter_mut()
            .chain(self.nft_wait.values_mut())
            .filter(|r| r.job.target == ip)
        {
            r.job.quiet = false;
        }
    }

    /// True while a command runs or a job waits (the loop then polls with a short timeout).
    pub fn busy(&self) -> bool {
        !self.queue.is_empty()
            || !self.flood.is_empty()
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
        self.take_spare(now);
        self.pump_nft(now, &mut p.log);
        let hosts_deny = self.hosts_deny.clone();
        loop {
            let started = self.fill_slots();
            let before = self.running.len();
            let more = self.pump_running(now, &hosts_deny, &mut p.log, &mut p.failures);
            p.done.extend(more);
            // Jobs that ended or moved on to an nft batch made room: start more (so one
            // batch collects everything that is queued), until nothing changes.
            let freed = self.running.len() < before;
            if self.running.len() >= MAX_PARALLEL || (started == 0 && !freed) {
                break;
            }
        }
        self.pump_nft(now, &mut p.log);
        // Jobs whose element was settled at once (nft could not start) go on now.
        if self.running.iter().any(|r| r.child.is_none()) {
            let more = self.pump_running(now, &hosts_deny, &mut p.log, &mut p.failures);
            p.done.extend(more);
        }
        self.take_spare(now);
        p
    }

    /// Move queued jobs into free slots: jobs within the report limits first; flood jobs
    /// while fewer than [`flood_parallel`] of them run. Returns how many started.
    fn fill_slots(&mut self) -> usize {
        let mut started = 0;
        let mut flood_running = self.running.iter().filter(|r| r.job.quiet).count();
        while self.running.len() < MAX_PARALLEL {
            let job = match self.queue.pop_front() {
                Some(j) => j,
                None if flood_running < flood_parallel() => match self.flood.pop_front() {
                    Some(j) => {
                        flood_running += 1;
                        j
                    }
                    None => break,
                },
                None => break,
            };
            self.running.push(Running {
                ok: job.preflight_ok,
                job,
                next: 0,
                failures: 0,
                child: None,
            });
            started += 1;
        }
        started
    }

    /// Keep one spare shell at hand: take the one the thread has ready, or ask for one.
    fn take_spare(&mut self, now: u64) {
        let Some(sp) = self.spares.as_mut() else {
            return;
        };
        if self.spare.is_none() {
            match sp.take() {
                Some(Ok(s)) => {
                    self.spare = Some(s);
                    self.spare_failed = None;
                }
                Some(Err(_)) => self.spare_failed = Some(now),
                None => {}
            }
        }
        let resting = self
            .spare_failed
            .is_some_and(|t| now.saturating_sub(t) < SPARE_RETRY_MS);
        if self.spare.is_none() && !resting {
            sp.ask();
        }
    }

    /// Commands wait for the spare on its way (true), or start shells of their own (no spare
    /// thread, or starting spares failed lately).
    fn wait_for_spare(&self, now: u64) -> bool {
        self.spares.is_some()
            && self
                .spare_failed
                .is_none_or(|t| now.saturating_sub(t) >= SPARE_RETRY_MS)
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
        let wait = self.wait_for_spare(now);
        let reap = self.reap_due(now);
        // Jobs within the report limits first: they get the spare shell.
        self.running.sort_by_key(|r| r.job.quiet);
        while i < self.running.len() {
            let r = &mut self.running[i];
            // Jobs over the global report rate run without a word (engine::Respond::quiet).
            let out = if r.job.quiet { &mut sink } else { &mut *log };
            let next = advance(r, now, hosts_deny, out, &mut self.spare, wait, reap);
            sink.clear();
            match next {
                Next::Busy => i += 1,
                Next::Done => {
                    let r = self.running.swap_remove(i);
                    *failures += r.failures;
                    done.push((r.job, r.ok));
                }
                Next::Nft {
                    addr,
                    timeout_s,
                    del,
                } => {
                    let r = self.running.swap_remove(i);
                    self.wait_nft(r, addr, timeout_s, del, log);
                }
            }
        }
        done
    }

    fn wait_nft(
        &mut self,
        mut r: Running,
        addr: IpAddr,
        timeout_s: u64,
        del: bool,
        log: &mut Vec<String>,
    ) {
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
                del,
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
                    if ok && !r.job.quiet && !item.del {
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
    wait_for_spare: bool,
    reap: bool,
) -> Next {
    let ip = r.job.target;
    loop {
        if let Some((child, started)) = r.child.as_mut() {
            if !reap && now.saturating_sub(*started) < COMMAND_TIMEOUT_MS {
                // No child has ended since the last look (no SIGCHLD): no wait4 per job.
                return Next::Busy;
            }
            let step = &r.job.steps[r.next - 1];
            match child.try_wait() {
                Ok(None) if now.saturating_sub(*started) < COMMAND_TIMEOUT_MS => return Next::Busy,
                Ok(None) => {
                    // The whole group: the shell and whatever it started (each command
                    // runs in a process group of its own, see `spawn`).
                    child.kill_and_reap();
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
        let command = matches!(
            step,
            Step::Route { .. } | Step::RunCmd { .. } | Step::Undo { .. }
        );
        if command && spare.is_none() && wait_for_spare {
            // The next spare shell is on its way (the loop wakes when it is ready).
            return Next::Busy;
        }
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
            Step::HostsDenyRemove { deny } => {
                match files::hosts_deny_remove(hosts_deny, ip, deny) {
                    Ok(lines) if lines.is_empty() => log.push(report::not_in_hosts_deny(ip)),
                    Ok(lines) => {
                        log.extend(lines.iter().map(|l| report::unblocked_via_wrappers(ip, l)))
                    }
                    Err(e) => {
                        log.push(report::hosts_deny_remove_failed(ip, hosts_deny, &e));
                        r.ok = false;
                        r.failures += 1;
                    }
                }
            }
            Step::NftAdd { addr, timeout_s } => {
                return Next::Nft {
                    addr: *addr,
                    timeout_s: *timeout_s,
                    del: false,
                };
            }
            Step::NftDel { addr } => {
                return Next::Nft {
                    addr: *addr,
                    timeout_s: 0,
                    del: true,
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
        Step::HostsDenyRemove { deny } => &deny.template,
        Step::NftAdd { .. } | Step::NftDel { .. } => "nft",
    }
}

fn command_result(step: &Step, ip: IpAddr, st: Exit) -> String {
    match (step, st) {
        (Step::Route { command }, Exit::Code(0)) => report::blocked_via_route(ip, command),
        (Step::RunCmd { command }, Exit::Code(0)) => report::external_command_run(ip, command),
        (Step::Undo { command }, Exit::Code(0)) => report::undo_run(ip, command),
        (s, Exit::Code(code)) => report::command_exited(ip, code, command_of(s)),
        (s, Exit::Signal(sig)) => report::command_killed(ip, sig, command_of(s)),
    }
}

/// Run `command`: through the spare shell if one waits (and takes it), else a new shell.
fn start(command: &str, spare: &mut Option<Spare>) -> std::io::Result<Proc> {
    if let Some(s) = spare.take() {
        match s.run(command) {
            Ok(child) => return Ok(child),
            // A line break in the command, or the spare died (killed by hand?).
            Err(s) => s.dismiss(),
        }
    }
    spawn::shell(command, spawn::Stdin::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mode::Mode;
    use crate::engine::{JobKind, Record};

    fn job(n: u8, quiet: bool, command: &str) -> Job {
        let ip = IpAddr::from([192, 0, 2, n]);
        Job {
            target: ip,
            steps: vec![Step::RunCmd {
                command: command.to_string(),
            }],
            record: Record {
                name: ip.to_string(),
                ip,
                port: 1,
                mode: Mode::Tcp,
                detail: crate::engine::Detail::Connect,
                blocked_file: true,
                write: true,
            },
            quiet,
            preflight_ok: true,
            flood: quiet,
            kind: JobKind::Respond {
                expire_after_ms: None,
                undo: None,
                deny: None,
                evidence: 2,
            },
        }
    }

    fn running(e: &Executor, quiet: bool) -> usize {
        e.running.iter().filter(|r| r.job.quiet == quiet).count()
    }

    /// Jobs of reports over the limits (a flood) run at most `flood_parallel()` at a time and
    /// after the others, which keep the remaining slots: a real scan's block does not queue
    /// behind a thousand forged ones.
    #[test]
    fn flood_jobs_run_few_at_a_time_and_after_the_others() {
        let mut e = Executor::new(PathBuf::from("/nonexistent/hosts.deny"));
        for n in 0..40 {
            e.submit(job(n, true, "sleep 5"));
        }
        let p = e.pump(0);
        assert!(p.done.is_empty());
        assert_eq!(running(&e, true), flood_parallel());
        assert_eq!(e.flood.len(), 40 - flood_parallel());
        // Real reports come later: they start at once, in the free slots.
        for n in 100..110 {
            e.submit(job(n, false, "sleep 5"));
        }
        e.pump(1);
        assert_eq!(running(&e, false), 10);
        assert_eq!(running(&e, true), flood_parallel());
        // More than the slots left: the rest waits for a slot, ahead of the flood.
        for n in 110..120 {
            e.submit(job(n, false, "sleep 5"));
        }
        e.pump(2);
        assert_eq!(e.running.len(), MAX_PARALLEL);
        assert_eq!(e.queue.len(), 10 + flood_parallel() - (MAX_PARALLEL - 10));
        // Time limit: every running command is killed after COMMAND_TIMEOUT_MS; the next
        // ones start, the queued real reports first.
        let p = e.pump(COMMAND_TIMEOUT_MS + 3);
        assert_eq!(p.done.len(), MAX_PARALLEL);
        assert!(p.done.iter().all(|(_, ok)| !ok));
        assert!(running(&e, false) > 0);
        assert!(running(&e, true) <= flood_parallel());
        e.pump(2 * COMMAND_TIMEOUT_MS + 10);
        e.pump(3 * COMMAND_TIMEOUT_MS + 20);
    }

    /// The flood queue is bounded: past FLOOD_QUEUE_MAX waiting quiet jobs a new one comes
    /// back (the engine forgets it); other jobs are always queued.
    #[test]
    fn the_flood_queue_sheds_past_its_bound_but_never_a_logged_job() {
        let mut e = Executor::new(PathBuf::from("/nonexistent/hosts.deny"));
        let mut shed = 0;
        for n in 0..FLOOD_QUEUE_MAX + 10 {
            shed += usize::from(e.submit(job(n as u8, true, "true")).is_some());
        }
        assert_eq!((shed, e.flood.len()), (10, FLOOD_QUEUE_MAX));
        assert!(e.submit(job(1, false, "true")).is_none());
        assert_eq!(e.queue.len(), 1);
    }

    /// A quiet job whose host is then reported (engine `Verdict::promote`) leaves the flood
    /// queue for the head of the main queue, and is logged; a running one is logged from then
    /// on.
    #[test]
    fn a_promoted_flood_job_runs_next_and_is_logged() {
        let mut e = Executor::new(PathBuf::from("/nonexistent/hosts.deny"));
        for n in 0..40 {
            e.submit(job(n, true, "sleep 5"));
        }
        e.pump(0);
        for n in 100..120 {
            e.submit(job(n, false, "sleep 5"));
        }
        e.pump(1);
        assert_eq!(e.running.len(), MAX_PARALLEL);
        // Job 39 waits at the end of the flood queue; promoted, it is next of all.
        e.promote(IpAddr::from([192, 0, 2, 39]));
        assert_eq!(
            e.queue.front().map(|j| j.target),
            Some(IpAddr::from([192, 0, 2, 39]))
        );
        assert!(!e.queue[0].quiet);
        assert!(
            e.flood
                .iter()
                .all(|j| j.target != IpAddr::from([192, 0, 2, 39]))
        );
        // Job 0 runs quietly; promoted, it stays where it is and is logged.
        e.promote(IpAddr::from([192, 0, 2, 0]));
        assert!(
            e.running
                .iter()
                .any(|r| r.job.target == IpAddr::from([192, 0, 2, 0]) && !r.job.quiet)
        );
        let p = e.pump(COMMAND_TIMEOUT_MS + 3);
        assert!(
            p.log.iter().any(|l| l.contains("192.0.2.0")),
            "the promoted job's timeout is logged: {:?}",
            p.log
        );
        assert!(
            !p.log.iter().any(|l| l.contains("192.0.2.1 ")),
            "{:?}",
            p.log
        );
        // The promoted waiting job started before any other quiet one.
        assert!(
            e.running
                .iter()
                .any(|r| r.job.target == IpAddr::from([192, 0, 2, 39]))
        );
        e.pump(2 * COMMAND_TIMEOUT_MS + 10);
        e.pump(3 * COMMAND_TIMEOUT_MS + 20);
    }

    /// With the spare-shell thread, a command goes to a shell that is already running; the
    /// next spare follows without the loop starting it.
    #[test]
    fn commands_go_to_spares_started_off_the_loop() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut e = Executor::new(d.path().join("hosts.deny"));
        e.set_spare(true);
        let t0 = std::time::Instant::now();
        let mut spare_pid = None;
        while spare_pid.is_none() && t0.elapsed() < std::time::Duration::from_secs(5) {
            e.pump(0);
            spare_pid = e.spare.as_ref().map(|s| s.pid());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let spare_pid = spare_pid.expect("a spare shell is ready");
        e.submit(job(1, false, &format!("echo $$ > {}", out.display())));
        let mut done = Vec::new();
        let t0 = std::time::Instant::now();
        while done.is_empty() && t0.elapsed() < std::time::Duration::from_secs(5) {
            // As the loop does when it reads a SIGCHLD.
            e.child_exited();
            done = e.pump(1).done;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(done.len(), 1);
        assert!(done[0].1, "the command ran");
        // `$$` in the command is the spare shell's pid: the command ran in it.
        let ran_in: u32 = std::fs::read_to_string(&out)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(ran_in, spare_pid);
        let t0 = std::time::Instant::now();
        while e.spare.is_none() && t0.elapsed() < std::time::Duration::from_secs(5) {
            e.pump(2);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let next = e.spare.as_ref().map(|s| s.pid()).expect("a new spare");
        assert_ne!(next, spare_pid);
        e.set_spare(false);
        assert!(e.spare.is_none());
    }
}
