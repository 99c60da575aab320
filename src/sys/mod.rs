//! The I/O shell: sockets, files, processes, syslog, signals, the clock and the event loop.
//! It carries out what the pure core decides and never decides itself. All `unsafe` of the
//! crate lives here, each block with a `// SAFETY:` line.
#![allow(unsafe_code)]

pub mod admin;
pub mod atomic;
pub mod caps;
pub mod capture;
pub mod classic;
pub mod clock;
pub mod daemon;
pub mod event_loop;
pub mod events_file;
pub mod exec;
pub mod files;
pub mod fleet;
pub mod ignore_file;
pub mod insight;
pub mod listen;
pub mod log;
pub mod metrics_file;
pub mod modelock;
pub mod netinfo;
pub mod nfnl;
pub mod nftables;
pub mod notify;
pub mod observe;
pub mod reload;
pub mod resolve;
pub mod respond;
pub mod sockdiag;
pub mod spares;
pub mod spawn;
pub mod start;
pub mod status_sock;
pub mod stealth;
