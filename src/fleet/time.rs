//! Times as the LAPI writes and reads them: RFC 3339 UTC timestamps (`start_at`, `stop_at`,
//! what Go's `time.Parse(time.RFC3339, ...)` accepts) and Go durations (`"3h59m58.5s"`, a
//! decision's time left in the stream, negative once it is over). Pure; the calendar is
//! jiff's.

/// `2026-11-30T12:01:02.345Z` for milliseconds since the epoch (UTC), through jiff as
/// `timefmt` does (the number itself if jiff cannot place it, beyond the year 9999).
pub fn rfc3339(epoch_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(epoch_ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => epoch_ms.to_string(),
    }
}

/// A Go duration string (`time.Duration.String()`: `"1h2m3.5s"`, `"-1.2s"`, `"750ms"`,
/// `"0s"`) in milliseconds, rounded towards zero. None if it is not one.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    // Nanoseconds, as Go keeps them; i128 so no realistic input overflows.
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, tail) = rest.split_at(int_len);
        let (frac, tail) = match tail.strip_prefix('.') {
            Some(t) => {
                let n = t.bytes().take_while(u8::is_ascii_digit).count();
                t.split_at(n)
            }
            None => ("", tail),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = tail
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(tail.len(), |(i, _)| i);
        let (unit, tail) = tail.split_at(unit_len);
        let ns: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(ns)?;
        let mut scale = ns;
        for b in frac.bytes().take(18) {
            scale /= 10;
            part += i128::from(b - b'0') * scale;
        }
        total = total.checked_add(part)?;
        rest = tail;
    }
    let ms = i64::try_from(total / 1_000_000).ok()?;
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_383_542_123), "2026-11-22T21:39:02.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("3h59m58.973021s"), Some(14_398_973));
        assert_eq!(parse_go_duration("-1.5s"), Some(-1500));
        assert_eq!(parse_go_duration("750ms"), Some(750));
        assert_eq!(parse_go_duration("0s"), Some(0));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1m0.5s"), Some(60_500));
        assert_eq!(parse_go_duration("2µs"), Some(0));
        assert_eq!(parse_go_duration("167h59m"), Some(604_740_000));
        assert_eq!(parse_go_duration(".5s"), Some(500));
        for bad in ["", "-", "h", "5", "5x", "1h-2m", "1..2s", "s5", "1e3s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_go_duration(&"9".repeat(60)), None);
    }
}
