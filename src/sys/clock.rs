//! The only module that reads the clock: monotonic milliseconds for the engine, wall-clock
//! seconds and local broken-down time for the history and blocked-file lines (§7.3), and
//! wall-clock nanoseconds to compare with the kernel's packet timestamps (`capture`).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::observe::report::LocalTime;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on a monotonic clock (since the first call).
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Milliseconds since the epoch (event lines: several per second stay in order; the fleet's
/// alert times).
pub fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the epoch.
pub fn epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now, in ns since the epoch (CLOCK_REALTIME, the clock of packet timestamps).
pub fn realtime_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Local time for `epoch`, as 1.2's `localtime()` gives it (TZ honoured).
pub fn local_time(epoch: i64) -> LocalTime {
    let t: libc::time_t = epoch as libc::time_t;
    // SAFETY: `tm` is plain data, zero is a valid bit pattern; localtime_r writes into it and
    // only reads `t`. It is the thread-safe variant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        return LocalTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        };
    }
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u8,
        day: tm.tm_mday as u8,
        hour: tm.tm_hour as u8,
        minute: tm.tm_min as u8,
        second: tm.tm_sec as u8,
    }
}
