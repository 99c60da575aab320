//! portsentry: a Rust reimplementation of PortSentry 1.2 (Debian 1.2-14), compatible with its
//! command line, configuration, log lines and files.
//!
//! The crate is split into a pure decision core (config, ignore list, engine, report and
//! template formatting) and a thin I/O shell (`sys`). Only `sys` may use `unsafe` (the
//! `[lints]` table of Cargo.toml denies it everywhere else).

pub mod admin;
pub mod bpf;
pub mod caps;
pub mod classify;
pub mod cli;
pub mod config;
pub mod csum;
pub mod dedup;
pub mod defaults;
pub mod defrag;
pub mod engine;
pub mod events;
pub mod fleet;
pub mod fuzzcheck;
pub mod ignore;
pub mod ignore_builder;
pub mod insight;
pub mod mode;
pub mod nfnl;
pub mod nft;
pub mod protect;
pub mod report;
pub mod socktable;
pub mod stats;
pub mod summary;
pub mod sys;
pub mod template;
#[cfg(test)]
mod testrng;
pub mod timefmt;
pub mod watch;
pub mod wire;
