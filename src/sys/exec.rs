//! Carries out response [`Job`]s. Steps of one job run in order (KILL_RUN_CMD before or after
//! the others, §6.1), each started when the previous one ends, and every step runs even if an
//! earlier one failed. Jobs for different hosts run side by side, so a slow command never
//! holds up detection or another host's block. Commands run as `/bin/sh -c CMD` with
//! stdin/stdout/stderr on /dev/null, no inherited descriptors (everything we open is
//! close-on-exec), a default signal mask, and a time limit; their exit status decides success
//! (1.2 counted every status as success and handed its sockets to the command as stdio,
//! §6.3, §10.1 item 11). Children are reaped from the event loop.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::engine::{Job, Step};
use crate::report;

use super::files::{self, DenyResult};

/// Commands running longer than this are killed and count as failed.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;
/// At most this many jobs run at once; the rest wait in order.
pub const MAX_PARALLEL: usize = 16;

struct Running {
    job: Job,
    next: usize,
    ok: bool,
    child: Option<(Child, u64)>,
}

pub struct Executor {
    hosts_deny: PathBuf,
    queue: VecDeque<Job>,
    running: Vec<Running>,
}

/// What the executor has to say after a pump: log lines, and finished jobs with their result.
#[derive(Default)]
pub struct Progress {
    pub log: Vec<String>,
    pub done: Vec<(Job, bool)>,
}

impl Executor {
    pub fn new(hosts_deny: PathBuf) -> Executor {
        Executor {
            hosts_deny,
            queue: VecDeque::new(),
            running: Vec::new(),
        }
    }

    pub fn set_hosts_deny(&mut self, p: PathBuf) {
        self.hosts_deny = p;
    }

    pub fn submit(&mut self, job: Job) {
        self.queue.push_back(job);
    }

    /// True while a command runs or a job waits (the loop then polls with a short timeout).
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || !self.running.is_empty()
    }

    /// Reap finished children, enforce time limits, start what can start.
    pub fn pump(&mut self, now: u64) -> Progress {
        let mut p = Progress::default();
        while self.running.len() < MAX_PARALLEL {
            match self.queue.pop_front() {
                Some(job) => self.running.push(Running {
                    ok: job.preflight_ok,
                    job,
                    next: 0,
                    child: None,
                }),
                None => break,
            }
        }
        let hosts_deny = self.hosts_deny.clone();
        let mut i = 0;
        let mut sink = Vec::new();
        while i < self.running.len() {
            let r = &mut self.running[i];
            // Jobs over the global report rate run without a word (engine::Respond::quiet).
            let log = if r.job.quiet { &mut sink } else { &mut p.log };
            let more = advance(r, now, &hosts_deny, log);
            sink.clear();
            if !more {
                let r = self.running.swap_remove(i);
                p.done.push((r.job, r.ok));
                continue;
            }
            i += 1;
        }
        p
    }
}

/// Drive one job as far as it goes without waiting. Returns false when the job is finished.
fn advance(r: &mut Running, now: u64, hosts_deny: &std::path::Path, log: &mut Vec<String>) -> bool {
    let ip = r.job.target;
    loop {
        if let Some((child, started)) = r.child.as_mut() {
            let step = &r.job.steps[r.next - 1];
            match child.try_wait() {
                Ok(None) if now.saturating_sub(*started) < COMMAND_TIMEOUT_MS => return true,
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    log.push(report::command_timed_out(
                        ip,
                        COMMAND_TIMEOUT_MS / 1000,
                        command_of(step),
                    ));
                    r.ok = false;
                }
                Ok(Some(st)) => {
                    let ok = st.success();
                    r.ok &= ok;
                    log.push(command_result(step, ip, st));
                }
                Err(e) => {
                    log.push(report::command_not_started(ip, e, command_of(step)));
                    r.ok = false;
                }
            }
            r.child = None;
        }
        let Some(step) = r.job.steps.get(r.next) else {
            return false;
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
                }
            },
            Step::Route { command } | Step::RunCmd { command } => match spawn(command) {
                Ok(c) => r.child = Some((c, now)),
                Err(e) => {
                    log.push(report::command_not_started(ip, e, command));
                    r.ok = false;
                }
            },
        }
    }
}

fn command_of(step: &Step) -> &str {
    match step {
        Step::Route { command } | Step::RunCmd { command } => command,
        Step::HostsDeny { line } => line,
    }
}

fn command_result(step: &Step, ip: IpAddr, st: std::process::ExitStatus) -> String {
    match (step, st.code(), st.signal()) {
        (Step::Route { command }, Some(0), _) => report::blocked_via_route(ip, command),
        (Step::RunCmd { command }, Some(0), _) => report::external_command_run(ip, command),
        (s, Some(code), _) => report::command_exited(ip, code, command_of(s)),
        (s, None, sig) => report::command_killed(ip, sig.unwrap_or(0), command_of(s)),
    }
}

fn spawn(command: &str) -> std::io::Result<Child> {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if std::env::var_os("PATH").is_none() {
        c.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (sigprocmask, setpgid). The daemon blocks the signals it
    // reads through signalfd; the command must start with a clean mask, in its own process
    // group so a terminal's ^C on a foreground daemon does not reach it.
    unsafe {
        c.pre_exec(|| {
            let empty = nix::sys::signal::SigSet::empty();
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )?;
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    c.spawn()
}
