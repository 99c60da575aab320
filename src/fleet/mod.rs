//! Fleets through CrowdSec's Local API (issue 12): the pure core. portsentry acts as a LAPI
//! *machine* (it pushes an alert with a `ban` decision for every block) and, optionally, as a
//! *bouncer* (it pulls the LAPI's decision stream into nftables sets of its own).
//!
//! This module owns the meaning of everything that crosses that link, and nothing else:
//! the config keys and their cross-checks (`keys`), the credentials file (`creds`), the alert
//! JSON and the scenario names (`alert`), the per-prefix limits that keep a forged flood from
//! swamping the LAPI (`limit`), the on-disk spool's record format (`spool`), the decision
//! stream (`stream`) and when to read more of it (`resync`), address spans (`span`), the
//! pulled bans as disjoint nftables intervals (`bans`), the link state and its back-off
//! (`link`). Its log lines live with all the others, in `report::fleet`.
//!
//! Must never: open a socket or a file, read the clock, or log. The shell (`sys::fleet`) does
//! all I/O on a thread of its own and hands time, bytes and random numbers in.

pub mod alert;
pub mod bans;
pub mod cli;
pub mod creds;
pub mod keys;
pub mod limit;
pub mod link;
pub mod resync;
pub mod span;
pub mod spool;
pub mod stream;
pub mod time;
pub mod x509;

pub use keys::{Keys, validate};
