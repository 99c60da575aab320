//! The shell of `block`: carrying responses out. Response jobs and their steps (`exec`), the
//! shells that run KILL_ROUTE and KILL_RUN_CMD (`spawn`, `spares`), nftables through `nft` and
//! the nfnetlink socket of the hot path (`nftables`, `nfnl`), the blocked-file, history and
//! hosts.deny writes (`files`), and `portsentry blocked` (`admin`).

pub mod admin;
pub mod exec;
pub mod files;
pub mod nfnl;
pub mod nftables;
pub mod spares;
pub mod spawn;
