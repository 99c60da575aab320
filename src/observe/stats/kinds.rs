//! The labels some counters are kept by: how a block was carried out (`Method`), why one
//! was refused (`Refusal`), why a report was held back (`Suppression`).

/// How a block was carried out (label `method`). One block may use several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// An element of the daemon's nftables set.
    Nftables,
    /// KILL_ROUTE.
    Route,
    /// KILL_HOSTS_DENY.
    HostsDeny,
    /// KILL_RUN_CMD.
    RunCmd,
}

impl Method {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Nftables => "nftables",
            Method::Route => "route",
            Method::HostsDeny => "hosts_deny",
            Method::RunCmd => "run_cmd",
        }
    }
}

/// Why a block was refused by policy (label `reason`). A block that was tried and failed (a
/// command's exit status, a full nftables set) is a failed block and a command failure, not
/// a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// BLOCK_RATE_LIMIT reached.
    RateLimit,
    /// A protected address: this host's own, loopback, multicast, broadcast, a gateway.
    Protected,
    /// BLOCK_PREFIX_BUDGET: the source prefix spent its block budget.
    PrefixBudget,
    /// A flood's block dropped: the queue of blocks over the report limits was full.
    FloodQueue,
    /// BLOCK_LONE_BUDGET: a source seen once while the budget for such blocks is spent.
    LoneBudget,
}

impl Refusal {
    /// Every reason (listed from zero).
    pub const ALL: [Refusal; 5] = [
        Refusal::RateLimit,
        Refusal::Protected,
        Refusal::PrefixBudget,
        Refusal::FloodQueue,
        Refusal::LoneBudget,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimit => "rate_limit",
            Refusal::Protected => "protected",
            Refusal::PrefixBudget => "prefix_budget",
            Refusal::FloodQueue => "flood_queue",
            Refusal::LoneBudget => "lone_budget",
        }
    }
}

/// Why reports were kept out of the log (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suppression {
    /// The report limits (per host, per prefix, overall) during a flood.
    RateLimit,
    /// Repeats of a host already reported within the repeat interval.
    Repeat,
}

impl Suppression {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::RateLimit => "rate_limit",
            Suppression::Repeat => "repeat",
        }
    }
}
