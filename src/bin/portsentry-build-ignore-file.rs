//! `portsentry-build-ignore-file`: writes `portsentry.ignore` from `portsentry.ignore.static`
//! and the host's interface addresses; `add-ip` / `rm-ip` edit the static file (replacing
//! Debian's `portsentry-add-ip` / `portsentry-rm-ip`). Reference §9.3.
//!
//! Thin shell: file reads, interface listing and writes happen here (replacements through
//! `portsentry::sys::atomic`, the daemon's writer); the text logic is
//! `portsentry::config::ignore_builder`. Exit codes: 0 success, 1 failure (missing static file, I/O
//! error, `rm-ip` found nothing), 2 bad usage or invalid address.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portsentry::config::ignore::{Net, parse_net};
use portsentry::config::ignore_builder::{
    Add, BuildInput, DEFAULT_OUTPUT, DEFAULT_STATIC, add_entry, build, remove_entry,
};
use portsentry::sys::atomic;

const NAME: &str = "portsentry-build-ignore-file";

#[derive(Parser)]
#[command(
    name = NAME,
    version,
    about = "Build portsentry's ignore file from the static list and the interface addresses",
    long_about = "Build portsentry's ignore file.\n\n\
        Without a subcommand, writes OUTPUT (atomically, mode 0644) from the valid entries of \
        the STATIC file (IPv4 or IPv6 addresses, optionally /prefix or a dotted IPv4 netmask) \
        followed by every address of every network interface. Invalid static lines are \
        reported on stderr as FILE:LINE: REASON and skipped.\n\n\
        add-ip and rm-ip edit the STATIC file; rebuild the ignore file (or restart \
        portsentry) afterwards to apply the change.\n\n\
        Exit status: 0 on success, 1 on failure (missing static file, I/O error, rm-ip found \
        no entry), 2 on bad usage or an invalid address."
)]
struct Cli {
    /// Static list of addresses never to block
    #[arg(long = "static", value_name = "FILE", default_value = DEFAULT_STATIC, global = true)]
    static_file: PathBuf,
    /// Ignore file to write
    #[arg(long, value_name = "FILE", default_value = DEFAULT_OUTPUT)]
    output: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Add ADDR[/n] to the static file unless an equal entry is already there
    AddIp {
        /// IPv4 or IPv6 address, optionally with /prefix (e.g. 192.0.2.0/24, 2001:db8::/32)
        #[arg(value_name = "ADDR[/n]", allow_hyphen_values = true)]
        addr: String,
    },
    /// Remove every entry equal to ADDR[/n] from the static file
    RmIp {
        /// IPv4 or IPv6 address, optionally with /prefix
        #[arg(value_name = "ADDR[/n]", allow_hyphen_values = true)]
        addr: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => build_file(&cli.static_file, &cli.output),
        Some(Command::AddIp { addr }) => with_net(addr, |net| add_ip(&cli.static_file, net)),
        Some(Command::RmIp { addr }) => with_net(addr, |net| rm_ip(&cli.static_file, net)),
    };
    result.unwrap_or_else(|failure| {
        eprintln!("{NAME}: {failure}");
        ExitCode::FAILURE
    })
}

/// Why the command failed (printed as `portsentry-build-ignore-file: {failure}`).
#[derive(Debug)]
enum Failure {
    /// A file could not be read.
    Read(PathBuf, io::Error),
    /// A file could not be written.
    Write(PathBuf, io::Error),
    /// The interface addresses could not be listed; the output has the static entries only.
    Interfaces(PathBuf, io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Failure::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            Failure::Interfaces(p, e) => write!(
                f,
                "cannot list interface addresses: {e}; {} has only the static entries",
                p.display()
            ),
        }
    }
}

type Outcome = Result<ExitCode, Failure>;

fn with_net(addr: &str, f: impl FnOnce(&Net) -> Outcome) -> Outcome {
    match parse_net(addr.trim()) {
        Ok(net) => f(&net),
        Err(reason) => {
            eprintln!("{NAME}: invalid address: {reason}");
            Ok(ExitCode::from(2))
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    fs::read(path).map_err(|e| Failure::Read(path.to_path_buf(), e))
}

fn build_file(static_path: &Path, output: &Path) -> Outcome {
    let static_text = read(static_path)?;
    let (addrs, iface_error) = match if_addrs::get_if_addrs() {
        Ok(ifaces) => (ifaces.iter().map(|i| i.ip()).collect::<Vec<IpAddr>>(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let built = build(&BuildInput {
        static_path: &static_path.display().to_string(),
        output_path: &output.display().to_string(),
        static_text: &static_text,
        interface_addrs: &addrs,
    });
    for w in &built.warnings {
        eprintln!("{}:{}: {}", static_path.display(), w.line, w.reason);
    }
    atomic::write(output, built.text.as_bytes(), 0o644)
        .map_err(|e| Failure::Write(output.to_path_buf(), e))?;
    match iface_error {
        // The file is still written (static entries are better than none), but the caller
        // must learn that the interface addresses are missing.
        Some(e) => Err(Failure::Interfaces(output.to_path_buf(), e)),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn add_ip(static_path: &Path, net: &Net) -> Outcome {
    let text = match fs::read(static_path) {
        Ok(t) => t,
        // Like Debian's script (`>>`), adding to a missing static file creates it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Failure::Read(static_path.to_path_buf(), e)),
    };
    match add_entry(&text, net) {
        Add::Exists { line } => {
            println!(
                "{net} is already in {} (line {line}); nothing changed",
                static_path.display()
            );
        }
        Add::Append(bytes) => {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .open(static_path)
                .and_then(|mut f| f.write_all(bytes.as_bytes()).map(|()| f))
                .map_err(|e| Failure::Write(static_path.to_path_buf(), e))?;
            f.flush()
                .and_then(|()| f.sync_all())
                .map_err(|e| Failure::Write(static_path.to_path_buf(), e))?;
            println!("added {net} to {}", static_path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rm_ip(static_path: &Path, net: &Net) -> Outcome {
    let text = read(static_path)?;
    let (new_text, removed) = remove_entry(&text, net);
    if removed.is_empty() {
        eprintln!("{NAME}: no entry for {net} in {}", static_path.display());
        return Ok(ExitCode::FAILURE);
    }
    let mode = fs::metadata(static_path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    atomic::write(static_path, &new_text, mode)
        .map_err(|e| Failure::Write(static_path.to_path_buf(), e))?;
    let n = removed.len();
    println!(
        "removed {n} {} for {net} from {}",
        if n == 1 { "entry" } else { "entries" },
        static_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
