//! The shell of `config`: the ignore file kept in memory and re-read when it changes
//! (`ignore_file`), this host's addresses and gateways for the protected set (`netinfo`), and
//! the capabilities read and dropped (`caps`). portsentry.conf itself is read at start-up and
//! on reload (`sys::daemon`).

pub mod caps;
pub mod ignore_file;
pub mod netinfo;
