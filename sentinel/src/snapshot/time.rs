//! UTC time stamps for the fingerprint, on top of the feed's RFC 3339 formatter.

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "YYYY-MM-DDTHH:MM:SS.mmmZ" for epoch seconds plus milliseconds.
pub fn iso8601(secs: i64, ms: u32) -> String {
    let ns = secs
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ms.min(999)) * 1_000_000);
    crate::feed::rfc3339(ns)
}

/// "YYYY-mm-dd HH:MM:SS" (UTC) for watch-mode line prefixes.
pub fn stamp(ms: i64) -> String {
    let s = iso8601(ms.div_euclid(1000), 0);
    format!("{} {}", &s[..10], &s[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(iso8601(1_795_722_574, 357), "2026-11-26T19:49:34.357Z");
        assert_eq!(stamp(1_795_722_574_357), "2026-11-26 19:49:34");
    }
}
