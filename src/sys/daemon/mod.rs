//! The daemon: what ties the stages together and is shell only. Start-up in order (`start`),
//! fork, readiness pipe and pid file (`fork`), one daemon per mode (`modelock`), the event
//! loop (`event_loop`), SIGHUP, SIGUSR1 and shutdown (`reload`), and systemd's readiness
//! protocol (`notify`).

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: configuration error, nothing bound, not root, another instance.
pub const EXIT_FAIL: i32 = 1;

pub mod event_loop;
pub mod fork;
pub mod modelock;
pub mod notify;
pub mod reload;
pub mod start;
