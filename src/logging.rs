//! Log lines for operators, on stderr: `2026-11-29T13:42:41.123Z INFO ezarch::broker message`,
//! a UTC time stamp (RFC 3339, milliseconds), the level, where from, what happened. Lines a
//! peer can cause over and over (refusals, NO_SERVICE) go through `Throttled`.

use std::time::{Duration, Instant};

/// A throttled line is logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Sends `log` records at `level` and above to stderr.
pub fn init(level: log::LevelFilter) {
    let _ = fern::Dispatch::new()
        .format(|out, message, record| {
            let now = crate::time::rfc3339_utc(std::time::SystemTime::now());
            out.finish(format_args!("{now} {} {} {message}", record.level(), record.target()))
        })
        .level(level)
        .chain(std::io::stderr())
        .apply();
}

/// A warning that is logged at most once per `LOG_INTERVAL`, with a count of what it stands for.
#[derive(Debug, Default)]
pub struct Throttled {
    last: Option<Instant>,
    since: u64,
}

impl Throttled {
    /// Counts one occurrence; returns how many to report when a line is due now.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|at| now.saturating_duration_since(at) < LOG_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_line_is_due_once_per_interval_with_the_count_since() {
        let start = Instant::now();
        let mut log = Throttled::default();
        assert_eq!(log.note(start), Some(1), "the first is logged at once");
        for i in 1..1000 {
            assert_eq!(log.note(start + Duration::from_millis(i)), None);
        }
        assert_eq!(log.note(start + LOG_INTERVAL), Some(1000), "then one line for all since");
        assert_eq!(log.note(start + LOG_INTERVAL + Duration::from_secs(1)), None);
    }
}
