//! Reconnect delays, libzmq-like: the first retry after `ivl` (100 ms by default), then doubling
//! with up to 50% random jitter, capped at `max`. Reset once a connection completes its handshake.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    ivl: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(ivl: Duration, max: Duration) -> Self {
        let ivl = ivl.max(Duration::from_millis(1));
        Self { ivl, max: max.max(ivl), current: ivl }
    }

    /// The delay before the next attempt; `random` (from `crate::random`) supplies the jitter.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter_range = (base.as_micros() as u64 / 2).max(1);
        let jitter = Duration::from_micros(random % jitter_range);
        (base + jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.current = self.ivl;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..8).map(|i| backoff.next_delay(i * 7919)).collect();
        let bases = [100u64, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base && *delay <= (base + base / 2).min(Duration::from_secs(2)),
                "{delay:?} vs {base:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay(0) < Duration::from_millis(150));
    }
}
