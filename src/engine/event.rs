//! What the engine says happened, typed: the vocabulary between the decision core and the
//! shell. `report::event_line` words each event as 1.2's syslog lines (byte for byte); the
//! shell only carries the lines to syslog. Nothing here is text: the engine never formats.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::config::mode::{Mode, Proto};
use crate::config::protect::Reason;

use super::Detail;

/// A source as the lines name it: the address, and the name RESOLVE_HOST found for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The address.
    pub ip: IpAddr,
    /// The resolver's answer, unescaped (`report` escapes it); None: not looked up or no name.
    pub name: Option<String>,
}

impl Host {
    /// A host without a name.
    pub fn addr(ip: IpAddr) -> Host {
        Host { ip, name: None }
    }

    /// The name column of 1.2's lines: the name, or the address text without one.
    pub fn name_text(&self) -> Cow<'_, str> {
        match &self.name {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(self.ip.to_string()),
        }
    }
}

/// The two response keys that need `$TARGET$` (1.2 skips them without it, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// KILL_ROUTE
    Route,
    /// KILL_HOSTS_DENY
    HostsDeny,
}

impl Action {
    /// The configuration key.
    pub fn key(self) -> &'static str {
        match self {
            Action::Route => "KILL_ROUTE",
            Action::HostsDeny => "KILL_HOSTS_DENY",
        }
    }
}

/// One thing the engine reports. Each becomes one syslog line (`report::event_line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A hit was reported: a connect (classic modes) or a probe (stealth, advanced).
    Detected {
        /// The source.
        host: Host,
        /// The port it touched.
        port: u16,
        /// The mode that saw it.
        mode: Mode,
        /// Connect, or the kind of probe.
        detail: Detail,
    },
    /// The probe carried IPv4 options or IPv6 extension headers (stealth modes, §3.2).
    IpOptions {
        /// The source.
        host: Host,
        /// TCP or UDP.
        proto: Proto,
        /// The port it touched.
        port: u16,
    },
    /// Hits from `ip` that were not reported one by one since its last report.
    HitsSuppressed {
        /// The source.
        ip: IpAddr,
        /// How many hits.
        count: u64,
        /// The repeat interval they fell in, in seconds.
        seconds: u64,
    },
    /// The host is blocked already (or its block is under way): nothing more is done.
    AlreadyBlocked {
        /// The source.
        host: Host,
        /// The mode that saw it (the line differs between classic and stealth modes).
        mode: Mode,
    },
    /// A protected address (this host's, a gateway, loopback, ...) is never blocked.
    Refused {
        /// The source.
        ip: IpAddr,
        /// What it is.
        reason: Reason,
    },
    /// BLOCK_RATE_LIMIT was reached (announced once per episode).
    BlockCapReached {
        /// BLOCK_RATE_LIMIT.
        per_minute: u32,
    },
    /// This host's block was refused by BLOCK_RATE_LIMIT.
    BlockCapRefused {
        /// The source.
        host: Host,
    },
    /// BLOCK_PREFIX_BUDGET: a prefix spent its block budget (announced once per episode).
    BudgetSpent {
        /// The prefix and its length (/24, /64).
        prefix: IpAddr,
        /// Its length.
        len: u8,
        /// The key: burst, per minute.
        burst: u32,
        /// Blocks per minute after the burst.
        per_minute: u32,
    },
    /// BLOCK_LONE_BUDGET is spent (logged once per episode).
    LoneBudgetSpent {
        /// The key: burst, per minute.
        burst: u32,
        /// Blocks per minute after the burst.
        per_minute: u32,
    },
    /// This host's block was refused: it was seen once and BLOCK_LONE_BUDGET is spent.
    LoneRefused {
        /// The source.
        host: Host,
    },
    /// Blocks BLOCK_LONE_BUDGET refused in the last `seconds`.
    LoneRefusals {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
    },
    /// This host's block was refused: its prefix's budget is spent.
    BudgetRefused {
        /// The source.
        host: Host,
        /// Its prefix.
        prefix: IpAddr,
        /// The prefix's length.
        len: u8,
    },
    /// BLOCK_x="0": reported, not acted on.
    LogOnly {
        /// Whose BLOCK_x it is.
        proto: Proto,
    },
    /// KILL_ROUTE or KILL_HOSTS_DENY lacks `$TARGET$`: skipped, and the block fails.
    NoTarget {
        /// The key.
        action: Action,
    },
    /// A block's steps did not all succeed: nothing is remembered, the next hit retries.
    CouldNotBlock {
        /// The source.
        host: Host,
        /// The mode that saw it (1.2's line differs by mode).
        mode: Mode,
    },
    /// The nftables set of `new`'s family is full: `old`, a block of less evidence, is
    /// unblocked to make room (`engine::blocks`).
    Evicted {
        /// The host unblocked.
        old: IpAddr,
        /// Its evidence score.
        old_evidence: u32,
        /// The host blocked in its place.
        new: IpAddr,
        /// Its evidence score.
        new_evidence: u32,
    },
    /// The blocked-host memory is full: the block ran but is not remembered.
    MemoryFull {
        /// The memory's size, in hosts.
        max: usize,
    },
    /// A block reached BLOCK_TIMEOUT and is forgotten.
    Expired {
        /// The host.
        ip: IpAddr,
        /// The mode that blocked it.
        mode: Mode,
    },
    /// Reports the limits held back in the last `seconds`.
    ReportsSuppressed {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
        /// The prefixes that lost the most: address, prefix length, count.
        by_prefix: Vec<(IpAddr, u8, u64)>,
        /// The rest.
        others: u64,
    },
    /// Blocks BLOCK_RATE_LIMIT refused in the last `seconds`.
    BlocksRefused {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
    },
    /// Blocks BLOCK_PREFIX_BUDGET refused in the last `seconds`.
    BudgetRefusals {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
        /// The prefixes refused the most: address, prefix length, count.
        by_prefix: Vec<(IpAddr, u8, u64)>,
        /// The rest.
        others: u64,
    },
    /// Blocks of reports over the report limits (a flood's) dropped in the last `seconds`
    /// because as many as the flood queue holds were already waiting.
    BlocksShed {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
    },
    /// Blocks unblocked to make room (as [`Event::Evicted`]) in the last `seconds` for
    /// sources whose reports the report limits held back (so no line named them).
    QuietEvictions {
        /// How many.
        count: u64,
        /// Over how many seconds.
        seconds: u64,
    },
}
