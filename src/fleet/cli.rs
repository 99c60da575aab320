//! `portsentry fleet check|test [-c FILE]`: the fleet settings as the daemon reads them, and
//! (`test`) a login to the LAPI and a check of the bouncer key. Its own clap parser, chosen
//! by `main` when argv[1] is `fleet`, like `portsentry blocked`. Pure: arguments in, a typed
//! value out. Exit codes: 0 good, 1 a problem (printed), 2 usage.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::cli::DEFAULT_CONFIG;

/// Check the CrowdSec fleet settings (CROWDSEC_* keys) and the link to the LAPI.
#[derive(Debug, Parser, Clone, PartialEq, Eq)]
#[command(name = "portsentry fleet", bin_name = "portsentry fleet", version)]
pub struct FleetCli {
    /// Configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    /// What to do.
    pub cmd: FleetCmd,
}

#[derive(Debug, Subcommand, Clone, Copy, PartialEq, Eq)]
/// The `portsentry fleet` commands.
pub enum FleetCmd {
    /// Read the keys and their files (credentials, bouncer key) and print the settings
    Check,
    /// As check, then log in to the LAPI as the machine and check the bouncer key
    Test,
}

/// True when argv selects this command (`portsentry fleet ...`).
pub fn selected(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "fleet")
}

impl FleetCli {
    /// `args` from `fleet` on (argv[1] onwards).
    pub fn parse_from_args<I: IntoIterator<Item = OsString>>(
        args: I,
    ) -> Result<FleetCli, clap::Error> {
        FleetCli::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<FleetCli, clap::Error> {
        FleetCli::parse_from_args(
            std::iter::once("fleet")
                .chain(a.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn subcommands() {
        assert_eq!(parse(&["check"]).unwrap().cmd, FleetCmd::Check);
        let t = parse(&["-c", "/x.conf", "test"]).unwrap();
        assert_eq!(
            (t.cmd, t.config),
            (FleetCmd::Test, PathBuf::from("/x.conf"))
        );
        for bad in [&[][..], &["nope"], &["test", "x"]] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(selected(&v(&["portsentry", "fleet", "test"])));
        assert!(!selected(&v(&["portsentry", "-tcp"])));
    }
}
