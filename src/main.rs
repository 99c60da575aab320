//! `portsentry`: thin entry point. Parses the command line and hands over to the shell;
//! maps the result to the exit status. `portsentry blocked ...` is the admin command for
//! nftables blocks, with its own parser (`admin`), so the daemon's 1.2 command line is
//! untouched.

use portsentry::cli::Cli;
use portsentry::{admin, sys};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if admin::selected(&args) {
        std::process::exit(sys::admin::main(args));
    }
    let cli = match Cli::parse_from_args(args) {
        Ok(c) => c,
        // Usage on stderr and exit 2 for misuse; --help/--version on stdout and exit 0.
        Err(e) => e.exit(),
    };
    let socket = cli.syslog_socket.clone();
    std::process::exit(sys::run::main(cli, socket));
}
