//! `portsentry`: thin entry point. Parses the command line and hands over to the shell;
//! maps the result to the exit status.

use portsentry::cli::Cli;
use portsentry::sys;

fn main() {
    let cli = match Cli::parse_from_args(std::env::args_os()) {
        Ok(c) => c,
        // Usage on stderr and exit 2 for misuse; --help/--version on stdout and exit 0.
        Err(e) => e.exit(),
    };
    let socket = cli.syslog_socket.clone();
    std::process::exit(sys::run::main(cli, socket));
}
