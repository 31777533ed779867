//! Checked time arithmetic: a deadline further away than `Instant` can hold saturates to the
//! furthest one it can, instead of panicking (a setting or an API caller may ask for any wait).

use std::time::{Duration, Instant};

/// `now + wait`, or the latest instant that fits when that overflows.
pub fn after(now: Instant, mut wait: Duration) -> Instant {
    loop {
        if let Some(at) = now.checked_add(wait) {
            return at;
        }
        wait /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_waits_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        let far = after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(1_000_000_000), "{:?}", far - now);
        assert_eq!(after(now, Duration::ZERO), now);
    }
}
