//! Carries out `portsentry blocked ...` (parsed by `crate::block::admin`): talks to nftables through
//! `sys::block::nftables`, then tells running daemons with SIGUSR1 so they re-read the set (a host
//! unblocked here is forgotten there too, and blocked again on its next scan).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::block::admin::{self, Admin, Cmd, EXIT_FAIL, EXIT_OK};
use crate::block::nft::{self, Failure};
use crate::config::{self, Config};

use crate::sys::block::nftables::{self, NftError};

/// Runs the admin command; returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let a = match Admin::parse_from_args(args.into_iter().skip(1)) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(&a) {
        Ok(out) => {
            print!("{out}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("portsentry blocked: {e}");
            EXIT_FAIL
        }
    }
}

fn run(a: &Admin) -> Result<String, String> {
    let cfg = read_config(&a.config);
    match &a.cmd {
        Cmd::List => {
            let elems = nftables::list().map_err(|e| missing_or(e, "cannot list"))?;
            Ok(admin::format_list(&elems))
        }
        Cmd::Add { target, timeout } => {
            let t = timeout.unwrap_or(cfg.block_timeout);
            // Creates the table if no daemon did yet; a no-op when it exists.
            nftables::setup(cfg.block_set_size).map_err(|e| format!("cannot set up: {e}"))?;
            nftables::run_script(&nft::add_script(&[(*target, t)])).map_err(|e| {
                if e.failure == Failure::SetFull {
                    format!("cannot block {target}: the set is full (BLOCK_SET_SIZE)")
                } else {
                    format!("cannot block {target}: {e}")
                }
            })?;
            notify(&a.pidfile);
            Ok(if t > 0 {
                format!("blocked {target} for {t} s\n")
            } else {
                format!("blocked {target} (no timeout)\n")
            })
        }
        Cmd::Del { target } => {
            let elems = nftables::list().map_err(|e| missing_or(e, "cannot list"))?;
            let del = admin::plan_delete(target, &elems)?;
            nftables::run_script(&nft::delete_script(&del))
                .map_err(|e| format!("cannot unblock {target}: {e}"))?;
            notify(&a.pidfile);
            Ok(del.iter().map(|p| format!("unblocked {p}\n")).collect())
        }
        Cmd::Flush => {
            nftables::run_script(&nft::flush_script())
                .map_err(|e| missing_or(e, "cannot flush"))?;
            notify(&a.pidfile);
            Ok(String::new())
        }
    }
}

fn missing_or(e: NftError, what: &str) -> String {
    if e.failure == Failure::Missing {
        format!(
            "{what}: table {} {} does not exist (no daemon with BLOCK_METHOD=\"nftables\" has run)",
            nft::FAMILY,
            nft::TABLE
        )
    } else {
        format!("{what}: {e}")
    }
}

/// The config for defaults; a missing or broken file gives the built-in defaults (with a
/// warning for a broken one: the command still works on the set).
fn read_config(path: &Path) -> Config {
    match std::fs::read(path) {
        Ok(b) => {
            let p = config::parse(&b, path);
            for d in p
                .diagnostics
                .iter()
                .filter(|d| d.severity == config::Severity::Error)
            {
                eprintln!("portsentry blocked: warning: {d}");
            }
            p.config
        }
        Err(_) => Config::default(),
    }
}

/// SIGUSR1 to each daemon: the given pid files, or every /run/portsentry*.pid. Only a process
/// whose name is portsentry gets it (a stale pid file may name another process, which
/// SIGUSR1 would kill).
fn notify(pidfiles: &[PathBuf]) {
    let files: Vec<PathBuf> = if pidfiles.is_empty() {
        std::fs::read_dir("/run")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("portsentry") && n.ends_with(".pid"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        pidfiles.to_vec()
    };
    for f in files {
        let Some(pid) = std::fs::read_to_string(&f)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&p| p > 0)
        else {
            if !pidfiles.is_empty() {
                eprintln!(
                    "portsentry blocked: warning: {}: no pid; daemon not told",
                    f.display()
                );
            }
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "portsentry" {
            eprintln!(
                "portsentry blocked: warning: {}: pid {pid} is not portsentry; not told",
                f.display()
            );
            continue;
        }
        if let Err(e) = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        ) {
            eprintln!("portsentry blocked: warning: cannot signal pid {pid}: {e}");
        }
    }
}
