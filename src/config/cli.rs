//! The command line: 1.2's single-dash modes (`-tcp` … `-audp`) plus our options, parsed with
//! clap after normalising argv. Pure: arguments in, a typed [`Cli`] or clap's error out.
//!
//! 1.2 takes exactly one mode argument (§1). We also accept one TCP mode plus one UDP mode in
//! one process (`portsentry -atcp -audp`), and long forms (`--tcp`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use crate::config::mode::Mode;

/// The configuration file when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/portsentry/portsentry.conf";
/// The pid file when `--pidfile` is not given.
pub const DEFAULT_PIDFILE: &str = "/run/portsentry.pid";

/// PortSentry - port scan detector and active response daemon.
#[derive(Debug, Parser, Clone, PartialEq, Eq)]
#[command(
    name = "portsentry",
    version,
    override_usage = "portsentry [-tcp|-stcp|-atcp] [-udp|-sudp|-audp] [OPTIONS]\n       portsentry --check [-c FILE] [--modes-file FILE]\n       portsentry blocked|modes|... (see portsentry(8))",
    about = "PortSentry - Port Scan Detector (Rust reimplementation, compatible with 1.2)",
    long_about = "PortSentry - Port Scan Detector.\n\n\
        Detects port scans and responds (log, hosts.deny, route or firewall command).\n\
        Give one TCP mode and/or one UDP mode, e.g. `portsentry -tcp -udp`.\n\
        Single-dash forms (-tcp, -stcp, ...) work exactly as in portsentry 1.2.",
    group(ArgGroup::new("tcp_mode").args(["tcp", "stcp", "atcp"]).multiple(false)),
    group(ArgGroup::new("udp_mode").args(["udp", "sudp", "audp"]).multiple(false)),
    group(ArgGroup::new("any_mode").args(["tcp", "stcp", "atcp", "udp", "sudp", "audp"]).multiple(true)),
)]
pub struct Cli {
    /// Classic TCP mode: bind TCP_PORTS and catch full connects
    #[arg(long)]
    pub tcp: bool,
    /// Stealth TCP mode: watch TCP_PORTS without binding (SYN, FIN, NULL, XMAS, ... probes)
    #[arg(long)]
    pub stcp: bool,
    /// Advanced stealth TCP mode: watch every unused port below ADVANCED_PORTS_TCP
    #[arg(long)]
    pub atcp: bool,
    /// Classic UDP mode: bind UDP_PORTS
    #[arg(long)]
    pub udp: bool,
    /// Stealth UDP mode: watch UDP_PORTS without binding
    #[arg(long)]
    pub sudp: bool,
    /// Advanced stealth UDP mode: watch every unused port below ADVANCED_PORTS_UDP
    #[arg(long)]
    pub audp: bool,
    /// Configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Stay in the foreground (no fork) and log to stderr as well as syslog
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// PID file, written once the daemon is ready and removed when it exits
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PIDFILE)]
    pub pidfile: PathBuf,
    /// Validate the configuration and the ignore file, print problems, exit 0 (good) or 1.
    /// Without a mode: the modes /etc/default/portsentry selects (see --modes-file)
    #[arg(long)]
    pub check: bool,
    /// With --check and no mode: the file whose TCP_MODE and UDP_MODE select the modes
    #[arg(long, value_name = "FILE", default_value = crate::config::defaults::DEFAULTS_FILE, requires = "check")]
    pub modes_file: PathBuf,
    /// Stealth and advanced modes: capture on this interface only (default: all interfaces)
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Stealth and advanced modes: also act on packets from this host's own addresses
    #[arg(long)]
    pub act_on_own_addresses: bool,
    /// Syslog socket to log to
    #[arg(long, value_name = "PATH", default_value = "/dev/log")]
    pub syslog_socket: PathBuf,
}

impl Cli {
    /// The selected modes, TCP first.
    pub fn modes(&self) -> Vec<Mode> {
        let flags = [
            (self.tcp, Mode::Tcp),
            (self.stcp, Mode::Stcp),
            (self.atcp, Mode::Atcp),
            (self.udp, Mode::Udp),
            (self.sudp, Mode::Sudp),
            (self.audp, Mode::Audp),
        ];
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, m)| *m)
            .collect()
    }

    /// Parse argv (including `argv[0]`) after normalising 1.2's single-dash modes.
    /// A mode is required, except with `--check` (which then reads the modes file).
    pub fn parse_from_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Cli, clap::Error> {
        let cli = Cli::try_parse_from(normalise(args))?;
        if cli.modes().is_empty() && !cli.check {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            return Err(cmd.error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "a mode is required: one of -tcp -stcp -atcp and/or one of -udp -sudp -audp",
            ));
        }
        Ok(cli)
    }
}

/// Turn `-tcp` into `--tcp` (and so on for the six modes) so clap sees long flags; clap would
/// otherwise read `-tcp` as the short flags `-t -c -p`. Everything else is left alone, and
/// nothing after a `--` is touched.
pub fn normalise<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for a in args {
        if !rest {
            if a == "--" {
                rest = true;
            } else if let Some(m) = a.to_str().and_then(|s| s.strip_prefix('-'))
                && Mode::from_name(m).is_some()
            {
                out.push(OsString::from(format!("--{m}")));
                continue;
            }
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from_args(
            std::iter::once("portsentry")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn single_dash_modes_as_in_1_2() {
        for m in Mode::ALL {
            let arg = format!("-{}", m.as_str());
            let cli = parse(&[&arg]).unwrap();
            assert_eq!(cli.modes(), vec![m]);
            assert_eq!(cli.config, PathBuf::from(DEFAULT_CONFIG));
            assert_eq!(cli.pidfile, PathBuf::from(DEFAULT_PIDFILE));
            assert!(!cli.foreground && !cli.check);
        }
    }

    #[test]
    fn one_tcp_and_one_udp_mode_together() {
        let cli = parse(&["-audp", "-atcp"]).unwrap();
        assert_eq!(cli.modes(), vec![Mode::Atcp, Mode::Audp]);
        let cli = parse(&["--tcp", "-udp", "-f", "-c", "/x.conf", "--pidfile", "/p"]).unwrap();
        assert_eq!(cli.modes(), vec![Mode::Tcp, Mode::Udp]);
        assert!(cli.foreground);
        assert_eq!(cli.config, PathBuf::from("/x.conf"));
        assert_eq!(cli.pidfile, PathBuf::from("/p"));
    }

    #[test]
    fn misuse_is_rejected() {
        assert!(parse(&[]).is_err(), "a mode is required");
        assert!(parse(&["-tcp", "-stcp"]).is_err(), "two TCP modes");
        assert!(parse(&["-udp", "-audp"]).is_err(), "two UDP modes");
        assert!(parse(&["-tcpx"]).is_err());
        assert!(parse(&["-foo"]).is_err());
        assert!(parse(&["tcp"]).is_err());
    }

    #[test]
    fn normalise_leaves_other_arguments_alone() {
        let v: Vec<OsString> = ["p", "-c", "-tcp", "--", "-udp"]
            .iter()
            .map(OsString::from)
            .collect();
        // The value of -c is normalised too: a config file named "-tcp" is not supported.
        assert_eq!(normalise(v), ["p", "-c", "--tcp", "--", "-udp"]);
    }
}
