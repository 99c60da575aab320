//! The shell of `engine`: from a hit to the verdict carried out (`respond`: the engine
//! decides, the log lines, jobs and fleet records go out), with the reverse lookup of
//! RESOLVE_HOST in between (`resolve`).

pub mod resolve;
pub mod respond;
