//! systemd's readiness protocol (`Type=notify`, sd_notify(3)) through the `sd-notify` crate:
//! `READY=1` once the daemon listens, `RELOADING=1` … `READY=1` around a SIGHUP reload,
//! `STOPPING=1` at shutdown, a `STATUS=` line that `systemctl status` shows, and
//! `WATCHDOG=1` pings when the unit sets `WatchdogSec=`.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset: the init script, a shell) every call does nothing.
//! A failed send is not an error for the daemon: it keeps working, and systemd's own timeout
//! says what went wrong.

use std::time::Duration;

use sd_notify::NotifyState;

/// systemd's notification state: the watchdog interval and the last STATUS= line.
pub struct Notifier {
    /// `WatchdogSec=`: ping at half of it.
    watchdog: Option<Duration>,
    last_ping: u64,
    status: String,
}

impl Notifier {
    /// Read the watchdog setting of this process's environment (`WATCHDOG_USEC`, for this pid).
    pub fn from_env(now_ms: u64) -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: now_ms,
            status: String::new(),
        }
    }

    fn send(states: &[NotifyState]) {
        let _ = sd_notify::notify(states);
    }

    /// Start-up is done: the daemon listens (or captures) and has written its pid file.
    pub fn ready(&mut self, status: &str) {
        self.status = status.to_string();
        Self::send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload begins (SIGHUP). systemd 253 and later want the monotonic time beside it.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(t) = NotifyState::monotonic_usec_now() {
            states.push(t);
        }
        Self::send(&states);
    }

    /// The reload is over (applied or rejected): ready again.
    pub fn reloaded(&mut self, status: &str) {
        self.ready(status);
    }

    /// The daemon is stopping.
    pub fn stopping(&self) {
        Self::send(&[NotifyState::Stopping]);
    }

    /// A new `STATUS=` line, sent only when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.status {
            self.status = status.to_string();
            Self::send(&[NotifyState::Status(status)]);
        }
    }

    /// The longest the event loop may sleep so the watchdog is pinged in time (None: no
    /// watchdog).
    pub fn max_sleep_ms(&self) -> Option<u64> {
        self.watchdog
            .map(|w| (w.as_millis() as u64 / 4).clamp(1, 1000))
    }

    /// Call on every loop turn: pings the watchdog at half its interval. The ping comes from
    /// the loop itself, so a loop stuck somewhere is caught by systemd.
    pub fn tick(&mut self, now_ms: u64) {
        let Some(w) = self.watchdog else { return };
        if now_ms.saturating_sub(self.last_ping) >= w.as_millis() as u64 / 2 {
            self.last_ping = now_ms;
            Self::send(&[NotifyState::Watchdog]);
        }
    }
}
