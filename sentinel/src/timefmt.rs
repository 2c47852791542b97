//! Time as people read it, in one place (a leaf every room may use), on the `jiff` crate:
//! UTC stamps for records and logs, the local hour and clock for findings about habits, and
//! the durations people type (`--for 5m`).

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Epoch nanoseconds as a timestamp; out-of-range values clamp to the nearest end.
fn at(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(if ns < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// RFC 3339 UTC with milliseconds: `2026-11-26T19:41:05.123Z`.
pub fn rfc3339_ms(ns: i64) -> String {
    at(ns).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// RFC 3339 UTC to the second: `2026-11-26T19:41:05Z`.
pub fn rfc3339_secs(ns: i64) -> String {
    at(ns).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 UTC to the second, with all nine digits of nanoseconds when there are any.
pub fn rfc3339_nanos(secs: i64, nsec: u32) -> String {
    let t = Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    match nsec.min(999_999_999) {
        0 => format!("{whole}Z"),
        n => format!("{whole}.{n:09}Z"),
    }
}

/// UTC wall clock with milliseconds: `19:41:05.123`.
pub fn utc_clock_ms(ns: i64) -> String {
    at(ns).strftime("%H:%M:%S%.3f").to_string()
}

/// `2026-11-26 19:41:05` (UTC) for line prefixes.
pub fn utc_stamp(ns: i64) -> String {
    at(ns).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Local hour (0-23): habits are learned in the host's own time.
pub fn local_hour(ns: i64) -> u8 {
    // Asked for every event, mostly of the same second: the time zone lookup once a second.
    thread_local! {
        static LAST: std::cell::Cell<(i64, u8)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    let sec = ns.div_euclid(1_000_000_000);
    LAST.with(|last| {
        let (s, h) = last.get();
        if s == sec {
            return h;
        }
        let h = TimeZone::system().to_datetime(at(ns)).hour() as u8;
        last.set((sec, h));
        h
    })
}

/// Local wall clock `14:02:11`.
pub fn local_clock(ns: i64) -> String {
    TimeZone::system()
        .to_datetime(at(ns))
        .strftime("%H:%M:%S")
        .to_string()
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(s: &str) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(s).ok()
}

/// Parses a duration as people type it: `500ms`, `30s`, `5m`, `1h30m`, `2d`, `1w` (jiff's
/// friendly format, days of 24 hours), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let hint = "(try 30s, 5m, 1h)";
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("invalid duration {s:?} {hint}"))?;
        std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("duration {s:?} out of range"))?
    } else {
        let span: jiff::Span = s
            .parse()
            .map_err(|e| format!("invalid duration {s:?} {hint}: {e}"))?;
        let signed = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("invalid duration {s:?} (units up to weeks): {e}"))?;
        std::time::Duration::try_from(signed)
            .map_err(|_| format!("duration {s:?} must be positive"))?
    };
    if d.is_zero() || d.as_secs() > 1_000_000_000 {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_stamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(1_795_722_065_123_000_000),
            "2026-11-26T19:41:05.123Z"
        );
        assert_eq!(
            rfc3339_ms(951_782_400_005_000_000),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            rfc3339_secs(1_764_180_000_000_000_000),
            "2025-11-26T18:00:00Z"
        );
        assert_eq!(rfc3339_nanos(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nanos(1, 5), "1970-01-01T00:00:01.000000005Z");
        assert_eq!(utc_clock_ms(1_795_722_065_123_000_000), "19:41:05.123");
        assert_eq!(utc_stamp(1_795_722_574_357_000_000), "2026-11-26 19:49:34");
        assert!(local_hour(1_795_722_065_123_000_000) < 24);
        assert_eq!(local_clock(0).len(), 8);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777))
        );
        assert_eq!(parse_http_date("yesterday"), None);
        // Far outside the calendar: clamped, never a panic.
        assert!(
            rfc3339_ms(i64::MAX).starts_with("2262-") || rfc3339_ms(i64::MAX).starts_with("9999-")
        );
    }

    #[test]
    fn durations_parse() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "5 parsecs",
            "0s",
            "0",
            "-1s",
            "1y",
            "1e99",
            "99999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
