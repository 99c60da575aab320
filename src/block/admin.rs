//! `portsentry blocked list|add|del|flush`: the admin command for the nftables blocks
//! (issue 4). Its own clap parser, chosen by `main` when `argv[1]` is `blocked`, so the daemon's
//! command line (1.2's single-dash modes, a required mode) stays as it is. Pure: arguments
//! in, a typed [`Admin`] out; plus the planning of a delete and the list formatting. The
//! shell side is `sys::block::admin`.
//!
//! Exit codes: 0 done, 1 failed (nft error, nothing to delete), 2 usage.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::block::nft::{self, Element, Prefix};
use crate::config::cli::DEFAULT_CONFIG;

/// Exit status: done.
pub const EXIT_OK: i32 = 0;
/// Exit status: the command failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: i32 = 2;

/// List and change the hosts portsentry blocks with nftables (table inet portsentry).
#[derive(Debug, Parser, Clone, PartialEq, Eq)]
#[command(name = "portsentry blocked", bin_name = "portsentry blocked", version)]
pub struct Admin {
    /// Configuration file: BLOCK_TIMEOUT (default of add) and BLOCK_SET_SIZE are read from it
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// PID file of a daemon to tell about a change (SIGUSR1); repeatable.
    /// Default: every /run/portsentry*.pid
    #[arg(long, value_name = "FILE")]
    pub pidfile: Vec<PathBuf>,
    #[command(subcommand)]
    /// What to do.
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand, Clone, PartialEq, Eq)]
/// The `portsentry blocked` subcommands.
pub enum Cmd {
    /// List blocked addresses and networks with the time left
    List,
    /// Block an address or network (ADDR or ADDR/LEN) by hand
    Add {
        #[arg(value_name = "ADDR[/LEN]", value_parser = parse_prefix)]
        /// The address or network to block.
        target: Prefix,
        /// Seconds until it expires (0: never); default BLOCK_TIMEOUT of the config
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Unblock an address, or every blocked address and network inside ADDR/LEN
    Del {
        #[arg(value_name = "ADDR[/LEN]", value_parser = parse_prefix)]
        /// The address or network to unblock (every element inside it).
        target: Prefix,
    },
    /// Unblock everything (the table and its rules stay)
    Flush,
}

fn parse_prefix(s: &str) -> Result<Prefix, String> {
    s.parse::<Prefix>().map_err(|e| e.to_string())
}

impl Admin {
    /// `args` are argv from `blocked` on (`argv[1]` onwards).
    pub fn parse_from_args<I: IntoIterator<Item = OsString>>(
        args: I,
    ) -> Result<Admin, clap::Error> {
        Admin::try_parse_from(args)
    }
}

/// True when argv selects the admin command (`portsentry blocked ...`).
pub fn selected(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "blocked")
}

/// What `del TARGET` removes from a listing: every element TARGET covers. A single address
/// that is blocked only through a network it lies in cannot be cut out of that network;
/// the error says which network to delete.
///
/// Bans from a CrowdSec fleet (sets `fleet4`/`fleet6`) are the LAPI's: they are never
/// deleted here (the next pull would not bring them back, and the other hosts would keep
/// them), and a target blocked only by the fleet says how to remove it there.
pub fn plan_delete(target: &Prefix, elems: &[Element]) -> Result<Vec<Prefix>, String> {
    let (fleet, elems): (Vec<&Element>, Vec<&Element>) =
        elems.iter().partition(|e| e.set.is_fleet());
    let hit: Vec<Prefix> = elems
        .iter()
        .map(|e| e.prefix)
        .filter(|p| target.covers(p))
        .collect();
    if !hit.is_empty() {
        return Ok(hit);
    }
    if fleet
        .iter()
        .any(|e| e.prefix.covers(target) || target.covers(&e.prefix))
    {
        let how = if target.is_host() { "--ip" } else { "--range" };
        return Err(format!(
            "{target} is blocked by the CrowdSec fleet (origin crowdsec), not by this host: remove the decision on the LAPI with cscli decisions delete {how} {target}"
        ));
    }
    match elems.iter().find(|e| e.prefix.covers(target)) {
        Some(e) => Err(format!(
            "{target} is not blocked by itself but inside the blocked network {}; delete that",
            e.prefix
        )),
        None => Err(format!("{target} is not blocked")),
    }
}

/// `list` output: one line per element, address then time left, networks after hosts; the
/// bans pulled from a CrowdSec fleet last, with a third column `crowdsec` (their origin).
pub fn format_list(elems: &[Element]) -> String {
    let mut v: Vec<&Element> = elems.iter().collect();
    v.sort_by_key(|e| (e.set, e.prefix));
    let mut out = String::new();
    for e in v {
        let left = nft::human_left(e.expires_ms.or(e.timeout_ms));
        let what = match e.end {
            Some(end) => format!("{}-{end}", e.prefix.addr),
            None => e.prefix.to_string(),
        };
        if e.set.is_fleet() {
            out.push_str(&format!("{what:<43} {left:<7} {}\n", e.set.origin()));
        } else {
            out.push_str(&format!("{what:<43} {left}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::nft::Set;

    fn parse(args: &[&str]) -> Result<Admin, clap::Error> {
        Admin::parse_from_args(
            std::iter::once("blocked")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn el(s: &str, left: Option<u64>) -> Element {
        let prefix = p(s);
        Element {
            set: prefix.set(),
            prefix,
            timeout_ms: left,
            expires_ms: left,
            end: None,
        }
    }

    fn fleet(s: &str, end: Option<&str>) -> Element {
        let prefix = p(s);
        Element {
            set: if prefix.addr.is_ipv4() {
                Set::Fleet4
            } else {
                Set::Fleet6
            },
            prefix,
            timeout_ms: Some(14_400_000),
            expires_ms: Some(3_600_000),
            end: end.map(|e| e.parse().unwrap()),
        }
    }

    #[test]
    fn fleet_bans_are_listed_with_their_origin_and_never_deleted_here() {
        let elems = [
            fleet("198.51.100.0", Some("198.51.100.6")),
            el("192.0.2.2", None),
            fleet("2001:db8::7", None),
            fleet("203.0.113.0/24", None),
        ];
        let rows: Vec<Vec<String>> = format_list(&elems)
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec!["192.0.2.2", "never"],
                vec!["198.51.100.0-198.51.100.6", "1h00m", "crowdsec"],
                vec!["203.0.113.0/24", "1h00m", "crowdsec"],
                vec!["2001:db8::7", "1h00m", "crowdsec"],
            ]
        );
        assert_eq!(
            plan_delete(&p("2001:db8::7"), &elems),
            Err("2001:db8::7 is blocked by the CrowdSec fleet (origin crowdsec), not by this host: remove the decision on the LAPI with cscli decisions delete --ip 2001:db8::7".into())
        );
        assert!(
            plan_delete(&p("203.0.113.0/24"), &elems)
                .unwrap_err()
                .contains("--range 203.0.113.0/24")
        );
        // A network delete takes the local elements only.
        assert_eq!(
            plan_delete(&p("0.0.0.0/0"), &elems),
            Ok(vec![p("192.0.2.2")])
        );
    }

    #[test]
    fn subcommands_parse() {
        assert_eq!(parse(&["list"]).unwrap().cmd, Cmd::List);
        assert_eq!(parse(&["flush"]).unwrap().cmd, Cmd::Flush);
        let a = parse(&["-c", "/x.conf", "add", "10.0.0.0/8", "--timeout", "60"]).unwrap();
        assert_eq!(a.config, PathBuf::from("/x.conf"));
        assert_eq!(
            a.cmd,
            Cmd::Add {
                target: p("10.0.0.0/8"),
                timeout: Some(60)
            }
        );
        let a = parse(&["--pidfile", "/a", "--pidfile", "/b", "del", "2001:db8::2"]).unwrap();
        assert_eq!(a.pidfile, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            a.cmd,
            Cmd::Del {
                target: p("2001:db8::2")
            }
        );
    }

    #[test]
    fn misuse_is_a_usage_error_with_a_clear_message() {
        for bad in [
            &[][..],
            &["nope"],
            &["add"],
            &["add", "10.0.0.1/8"],
            &["add", "300.1.1.1"],
            &["add", "1.2.3.4", "--timeout", "-1"],
            &["del"],
            &["list", "extra"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE, "{bad:?}");
        }
        let e = parse(&["add", "10.0.0.1/8"]).unwrap_err().to_string();
        assert!(e.contains("did you mean 10.0.0.0/8?"), "{e}");
    }

    #[test]
    fn selection_by_first_argument() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(selected(&v(&["portsentry", "blocked", "list"])));
        assert!(!selected(&v(&["portsentry", "-tcp"])));
        assert!(!selected(&v(&["portsentry"])));
        assert!(!selected(&v(&["portsentry", "-c", "blocked"])));
    }

    #[test]
    fn delete_plans() {
        let elems = [
            el("192.0.2.2", Some(5_000)),
            el("192.0.2.3", None),
            el("198.51.100.7", None),
            el("10.0.0.0/8", None),
            el("2001:db8::2", None),
        ];
        assert_eq!(
            plan_delete(&p("192.0.2.2"), &elems),
            Ok(vec![p("192.0.2.2")])
        );
        assert_eq!(
            plan_delete(&p("192.0.2.0/24"), &elems),
            Ok(vec![p("192.0.2.2"), p("192.0.2.3")])
        );
        assert_eq!(plan_delete(&p("0.0.0.0/0"), &elems).map(|v| v.len()), Ok(4));
        assert_eq!(
            plan_delete(&p("10.1.2.3"), &elems),
            Err("10.1.2.3 is not blocked by itself but inside the blocked network 10.0.0.0/8; delete that".into())
        );
        assert_eq!(
            plan_delete(&p("203.0.113.1"), &elems),
            Err("203.0.113.1 is not blocked".into())
        );
        assert_eq!(plan_delete(&p("::/0"), &elems), Ok(vec![p("2001:db8::2")]));
    }

    #[test]
    fn list_format() {
        let elems = [
            el("10.0.0.0/8", None),
            el("192.0.2.3", Some(61_000)),
            el("2001:db8::2", None),
            el("192.0.2.2", Some(500)),
        ];
        let out = format_list(&elems);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["192.0.2.2", "1s"],
                ["192.0.2.3", "1m01s"],
                ["2001:db8::2", "never"],
                ["10.0.0.0/8", "never"]
            ]
        );
        assert_eq!(format_list(&[]), "");
        assert_eq!(elems[0].set, Set::Nets4);
    }
}
