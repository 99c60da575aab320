//! What the admin sees: the syslog and history lines of every detection and response
//! (`report`), the EVENTS_FILE JSON lines (`events`), the counters behind `portsentry status`
//! and METRICS_FILE (`stats`), the `status` and `report` commands (`insight`) and the report's
//! summary of a history (`summary`), with the time formats they read and print (`timefmt`).
//!
//! Pure: typed events and counters in, text out. Writing the lines and files, the status
//! socket and syslog are the shell's `sys::observe`.

pub mod events;
pub mod insight;
pub mod report;
pub mod stats;
pub mod summary;
pub mod timefmt;
