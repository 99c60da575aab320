//! `portsentry`: thin entry point. Parses the command line and hands over to the shell;
//! maps the result to the exit status. `portsentry blocked ...` is the admin command for
//! nftables blocks, with its own parser (`admin`), and `portsentry modes` prints the modes
//! /etc/default/portsentry selects (`defaults`); `portsentry status` and `portsentry report`
//! show what the daemon sees and did (`insight`), and `portsentry fleet check|test` checks
//! the CrowdSec settings (`fleet::cli`). The daemon's 1.2 command line is untouched.

use portsentry::config::cli::Cli;
use portsentry::{block::admin, config::defaults, observe::insight, sys};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if admin::selected(&args) {
        std::process::exit(sys::block::admin::main(args));
    }
    if portsentry::fleet::cli::selected(&args) {
        std::process::exit(sys::fleet::main(args));
    }
    if defaults::selected(&args) {
        std::process::exit(modes(&args));
    }
    if insight::status_selected(&args) {
        std::process::exit(sys::observe::insight::status_main(args));
    }
    if insight::report_selected(&args) {
        std::process::exit(sys::observe::insight::report_main(args));
    }
    let cli = match Cli::parse_from_args(args) {
        Ok(c) => c,
        // Usage on stderr and exit 2 for misuse; --help/--version on stdout and exit 0.
        Err(e) => e.exit(),
    };
    let socket = cli.syslog_socket.clone();
    std::process::exit(sys::daemon::start::main(cli, socket));
}

/// `portsentry modes`: the mode options from /etc/default/portsentry (see `defaults`).
fn modes(args: &[std::ffi::OsString]) -> i32 {
    use std::io::Write;
    let m = match defaults::parse_args(args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("portsentry: {e}");
            return 2;
        }
    };
    let text = match std::fs::read(&m.file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            eprintln!("portsentry: {}: {e}", m.file);
            return if m.systemd { 255 } else { 2 };
        }
    };
    let (out, err, code) = defaults::command(&m, text.as_deref());
    let _ = std::io::stdout().write_all(out.as_bytes());
    let _ = std::io::stderr().write_all(err.as_bytes());
    code
}
