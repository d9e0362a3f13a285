//! Timestamps as the wire wants them: RFC 3339, UTC, `Z`, at most 3 fractional digits
//! (Python < 3.11 rejects 9-digit fractions, `docs/protocol.md` §3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339_millis(SystemTime::now())
}

pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Seconds from `a` to `b` with millisecond precision (0 if `b` is earlier).
pub fn seconds_between(a: SystemTime, b: SystemTime) -> f64 {
    let ms = b.duration_since(a).map(|d| d.as_millis()).unwrap_or(0);
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_z_and_short_fractions() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_seconds(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
    }
}
