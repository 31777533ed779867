//! Checked time arithmetic: a deadline further away than `Instant` can hold is brought within
//! reach (the wait halved until it fits), instead of panicking (a setting or an API caller may ask
//! for any wait).
//! And wall-clock time stamps for log lines (RFC 3339, UTC, milliseconds), with no time crate.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `now + wait`; when that overflows, `now` plus `wait` halved as often as it takes to fit.
pub fn after(now: Instant, mut wait: Duration) -> Instant {
    loop {
        if let Some(at) = now.checked_add(wait) {
            return at;
        }
        wait /= 2;
    }
}

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC). Times before 1970 print as the epoch.
pub fn rfc3339_utc(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let millis = since.subsec_millis();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_are_rfc3339_utc_with_milliseconds() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(rfc3339_utc(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(at(951_782_400, 7)), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_utc(at(1_795_960_800 + 3_723, 999)), "2026-11-29T15:02:03.999Z");
        assert_eq!(rfc3339_utc(at(4_107_542_399, 0)), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn huge_waits_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        let far = after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(1_000_000_000), "{:?}", far - now);
        assert_eq!(after(now, Duration::ZERO), now);
    }
}
