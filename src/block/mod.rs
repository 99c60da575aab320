//! Blocking and the other responses, as data: the nftables table, sets and element batches
//! as `nft` text (`nft`) and as nfnetlink bytes for the hot path (`nfnl`), the `$TARGET$`,
//! `$PORT$`, `$MODE$` substitution of KILL_ROUTE, KILL_HOSTS_DENY and KILL_RUN_CMD
//! (`template`), which hosts.deny lines a block wrote and removes when it ends
//! (`hosts_deny`), and the admin's `portsentry blocked list|add|del|flush` command (`admin`).
//!
//! The engine decides which host is blocked and how; this folder says what the commands,
//! batches and lines are. Running them (processes, the netlink socket, the blocked file and
//! hosts.deny writes) is the shell's `sys::block`.

pub mod admin;
pub mod hosts_deny;
pub mod nfnl;
pub mod nft;
pub mod template;
