//! What the engine says happened, typed: the vocabulary between the decision core and the
//! shell. `report::event_line` words each event as 1.2's syslog lines (byte for byte); the
//! shell only carries the lines to syslog. Nothing here is text: the engine never formats.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::mode::{Mode, Proto};
use crate::protect::Reason;

use super::Detail;

/// A source as the lines name it: the address, and the name RESOLVE_HOST found for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
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
        host: Host,
        port: u16,
        mode: Mode,
        detail: Detail,
    },
    /// The probe carried IPv4 options or IPv6 extension headers (stealth modes, §3.2).
    IpOptions { host: Host, proto: Proto, port: u16 },
    /// Hits from `ip` that were not reported one by one since its last report.
    HitsSuppressed {
        ip: IpAddr,
        count: u64,
        seconds: u64,
    },
    /// The host is blocked already (or its block is under way): nothing more is done.
    AlreadyBlocked { host: Host, mode: Mode },
    /// A protected address (this host's, a gateway, loopback, ...) is never blocked.
    Refused { ip: IpAddr, reason: Reason },
    /// BLOCK_RATE_LIMIT was reached (announced once per episode).
    BlockCapReached { per_minute: u32 },
    /// This host's block was refused by BLOCK_RATE_LIMIT.
    BlockCapRefused { host: Host },
    /// BLOCK_x="0": reported, not acted on.
    LogOnly { proto: Proto },
    /// KILL_ROUTE or KILL_HOSTS_DENY lacks `$TARGET$`: skipped, and the block fails.
    NoTarget { action: Action },
    /// A block's steps did not all succeed: nothing is remembered, the next hit retries.
    CouldNotBlock { host: Host, mode: Mode },
    /// The blocked-host memory is full: the block ran but is not remembered.
    MemoryFull { max: usize },
    /// A block reached BLOCK_TIMEOUT and is forgotten.
    Expired { ip: IpAddr, mode: Mode },
    /// Reports the limits held back in the last `seconds`, with the prefixes that lost most
    /// (address, prefix length, count) and the rest.
    ReportsSuppressed {
        count: u64,
        seconds: u64,
        by_prefix: Vec<(IpAddr, u8, u64)>,
        others: u64,
    },
    /// Blocks BLOCK_RATE_LIMIT refused in the last `seconds`.
    BlocksRefused { count: u64, seconds: u64 },
}
