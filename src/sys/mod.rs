//! The I/O shell: sockets, files, processes, syslog, signals, the clock and the event loop.
//! It carries out what the pure core decides and never decides itself. All `unsafe` of the
//! crate lives here, each block with a `// SAFETY:` line.
#![allow(unsafe_code)]

pub mod admin;
pub mod caps;
pub mod capture;
pub mod clock;
pub mod daemon;
pub mod exec;
pub mod files;
pub mod ignore_file;
pub mod listen;
pub mod log;
pub mod netinfo;
pub mod nfnl;
pub mod nftables;
pub mod notify;
pub mod resolve;
pub mod run;
pub mod sockdiag;
pub mod stealth;
