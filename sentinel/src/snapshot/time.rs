//! The fingerprint's clock: milliseconds since the epoch (stamps are formatted by
//! `crate::timefmt`).

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "YYYY-MM-DDTHH:MM:SS.mmmZ" for epoch milliseconds.
pub fn iso_ms(ms: i64) -> String {
    crate::timefmt::rfc3339_ms(ms.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::iso_ms(951_782_400_005), "2000-02-29T00:00:00.005Z");
    }
}
