//! portsentry: a Rust reimplementation of PortSentry 1.2 (Debian 1.2-14), compatible with its
//! command line, configuration, log lines and files.
//!
//! The crate is split into a pure decision core and a thin I/O shell (`sys`). Only `sys` may
//! use `unsafe` (the `[lints]` table of Cargo.toml denies it everywhere else). The core's
//! folders follow the path of one packet, and `sys` has a folder of the same name for the
//! shell side of each:
//!
//! - `capture`: from the wire to a probe (kernel filter, packet views, checksums,
//!   reassembly, classification, the per-packet decision of the stealth modes);
//! - `engine`: the per-host decision (scan trigger, ignore, protect, budget, verdict);
//! - `block`: what is done about a host (nftables, templates of the commands, the admin's
//!   `portsentry blocked`);
//! - `observe`: what the admin sees (log and history lines, events, counters, status and
//!   report);
//! - `config`: what the daemon is told (portsentry.conf, command line, modes, ignore file,
//!   protected addresses, capabilities);
//! - `fleet`: sharing blocks with a CrowdSec fleet.
//!
//! `sys::daemon` (start-up, the event loop, reload) is shell only: it ties the stages together.

pub mod block;
pub mod capture;
pub mod config;
pub mod engine;
pub mod fleet;
pub mod fuzzcheck;
pub mod observe;
pub mod sys;
#[cfg(test)]
mod testrng;
