//! Times as admins read and write them: RFC 3339 with the zone's offset for output
//! (`2026-11-30T14:03:12+01:00`), and the `--since`/`--until` forms of `portsentry report`
//! for input (RFC 3339, a local date or date and time, `@EPOCH`, a relative age such as
//! `24h`, `7d`, `90m`, `2w`, and `now`, `today`, `yesterday`).
//!
//! Pure: the time zone and "now" are arguments (the shell reads `/etc/localtime` and the
//! clock). Uses jiff for the calendar and zone rules.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// `epoch` seconds as RFC 3339 in `tz`, to the second: `2026-11-30T14:03:12+01:00`.
pub fn rfc3339(epoch: i64, tz: &TimeZone) -> String {
    match Timestamp::from_second(epoch) {
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => epoch.to_string(),
    }
}

/// `epoch_ms` milliseconds as RFC 3339 in `tz` with milliseconds:
/// `2026-11-30T14:03:12.345+01:00` (event lines: several per second stay in order).
pub fn rfc3339_ms(epoch_ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(epoch_ms) {
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
        Err(_) => epoch_ms.to_string(),
    }
}

/// A short local label for chart axes and tables: `2026-11-30 14:00`.
pub fn local_minute(epoch: i64, tz: &TimeZone) -> String {
    match Timestamp::from_second(epoch) {
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => epoch.to_string(),
    }
}

/// A duration as `3d 4h 5m 6s` (largest unit first, zero units left out; `0s` for zero).
pub fn human_duration(mut secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut parts = Vec::new();
    for (unit, len) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = secs / len;
        secs %= len;
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.join(" ")
}

/// Parses a `--since`/`--until` value into epoch seconds, given `now` and the local zone.
///
/// * RFC 3339: `2026-11-30T14:00:00+01:00`, `2026-11-30T13:00:00Z`
/// * local date or date and time: `2026-11-30` (midnight), `2026-11-30T14:00`,
///   `2026-11-30 14:00:30`
/// * `@1795383542` (seconds since the epoch)
/// * an age: a number and a unit `s`, `m`, `h`, `d` or `w` (`24h`, `7d`, `90m`), optionally
///   followed by ` ago`: that long before `now`
/// * `now`, `today` (local midnight), `yesterday` (the midnight before)
pub fn parse_when(text: &str, now: i64, tz: &TimeZone) -> Result<i64, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "cannot read the time \"{}\": use RFC 3339 (2026-11-30T14:00:00+01:00), a date \
             (2026-11-30), a date and time (2026-11-30 14:00), @EPOCH, an age (24h, 7d, 90m, \
             2w), now, today or yesterday",
            text.escape_default()
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    match s {
        "now" => return Ok(now),
        "today" | "yesterday" => {
            let ts = Timestamp::from_second(now).map_err(|_| bad())?;
            let mut d = ts.to_zoned_datetime(tz.clone()).date();
            if s == "yesterday" {
                d = d.yesterday().map_err(|_| bad())?;
            }
            return midnight(d, tz).ok_or_else(bad);
        }
        _ => {}
    }
    if let Some(e) = s.strip_prefix('@') {
        return e.parse::<i64>().map_err(|_| bad());
    }
    if let Some(age) = age_seconds(s.strip_suffix(" ago").unwrap_or(s)) {
        return Ok(now.saturating_sub(age));
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    if let Ok(dt) = s.replacen(' ', "T", 1).parse::<DateTime>()
        && s.len() > 10
    {
        return dt
            .to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|_| bad());
    }
    if let Ok(d) = s.parse::<Date>() {
        return midnight(d, tz).ok_or_else(bad);
    }
    Err(bad())
}

fn midnight(d: Date, tz: &TimeZone) -> Option<i64> {
    d.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// `24h` → 86400. Units: s m h d w; the number is a whole, non-negative decimal.
fn age_seconds(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    // Absurd ages (past four centuries) are an error, not a wrap.
    let secs = n.checked_mul(mult)?;
    (secs <= 400 * 366 * 86_400).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plus_one() -> TimeZone {
        jiff::tz::offset(1).to_time_zone()
    }

    // 2026-11-30T13:00:00Z
    const NOW: i64 = 1_796_043_600;

    #[test]
    fn rfc3339_carries_the_zone_offset() {
        assert_eq!(rfc3339(NOW, &plus_one()), "2026-11-30T14:00:00+01:00");
        assert_eq!(rfc3339(NOW, &TimeZone::UTC), "2026-11-30T13:00:00+00:00");
        assert_eq!(
            rfc3339_ms(NOW * 1000 + 45, &plus_one()),
            "2026-11-30T14:00:00.045+01:00"
        );
        assert_eq!(local_minute(NOW, &plus_one()), "2026-11-30 14:00");
    }

    #[test]
    fn every_documented_form_parses() {
        let tz = plus_one();
        let p = |s: &str| parse_when(s, NOW, &tz).unwrap();
        assert_eq!(p("2026-11-30T14:00:00+01:00"), NOW);
        assert_eq!(p("2026-11-30T13:00:00Z"), NOW);
        assert_eq!(p("2026-11-30"), NOW - 14 * 3600);
        assert_eq!(p("2026-11-30T14:00"), NOW);
        assert_eq!(p("2026-11-30 14:00:30"), NOW + 30);
        assert_eq!(p("@1796043600"), NOW);
        assert_eq!(p("24h"), NOW - 86_400);
        assert_eq!(p("7d"), NOW - 7 * 86_400);
        assert_eq!(p("90m"), NOW - 5_400);
        assert_eq!(p("2w ago"), NOW - 14 * 86_400);
        assert_eq!(p("30s"), NOW - 30);
        assert_eq!(p("now"), NOW);
        assert_eq!(p("today"), NOW - 14 * 3600);
        assert_eq!(p("yesterday"), NOW - 38 * 3600);
    }

    #[test]
    fn nonsense_is_an_error_that_lists_the_forms() {
        for bad in [
            "",
            "tomorrow",
            "24",
            "h",
            "-5h",
            "5y",
            "2026-13-01",
            "99999999999999999d",
        ] {
            let e = parse_when(bad, NOW, &TimeZone::UTC).unwrap_err();
            assert!(e.contains("RFC 3339") && e.contains("24h"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_read_largest_unit_first() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(3_600), "1h");
        assert_eq!(human_duration(90_061), "1d 1h 1m 1s");
    }
}
