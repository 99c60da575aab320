//! The I/O shell: sockets, files, processes, syslog, signals, the clock and the event loop.
//! It carries out what the pure core decides and never decides itself. All `unsafe` of the
//! crate lives here, each block with a `// SAFETY:` line.
//!
//! Its folders have the names of the core's (`capture`, `engine`, `block`, `observe`,
//! `config`, `fleet`), so the core and the shell of one concern are found at the same path;
//! `daemon` (start-up, the event loop, signals, reload) ties them together, and `clock` and
//! `atomic` are shared by all.
#![allow(unsafe_code)]

pub mod atomic;
pub mod block;
pub mod capture;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod fleet;
pub mod observe;
