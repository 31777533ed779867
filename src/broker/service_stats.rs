//! Per-service counters for operators: requests taken, replies, `EZ_ERR` answers by reason, and
//! a latency histogram (request taken to reply sent), for `ez.services`, `ez.stats` and
//! `/metrics`. All monotonic, so a Prometheus rate over them is meaningful.
//!
//! Bounded: a service gets its own entry when a worker joins it, up to `MAX_TRACKED_SERVICES`
//! names of at most `MAX_TRACKED_NAME` bytes; requests for names no worker ever served (a client
//! can send any name), longer names and services beyond the bound are counted together under
//! `OTHER`, so no client can grow this table and no worker can grow it past 256 KiB of names.

use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;

/// Services with counters of their own; the rest are counted under `OTHER`.
pub const MAX_TRACKED_SERVICES: usize = 1_024;
/// Longest service name with counters of its own.
pub const MAX_TRACKED_NAME: usize = 256;
/// The name under which untracked services are counted.
pub const OTHER: &str = "(other)";
/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus `le`); one more
/// bucket, +Inf, holds the rest.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// Why the broker answered `EZ_ERR` instead of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `NO_SERVICE`: no live worker in time.
    NoService,
    /// `BUSY`: too many requests waiting, or a key collision.
    Busy,
    /// `TIMEOUT`: no reply within the task timeout.
    Timeout,
    /// `WORKER_LOST`: its worker went away and it was not sent again.
    WorkerLost,
    /// `SHUTTING_DOWN`: the broker is stopping.
    ShuttingDown,
}

impl Reason {
    /// Every reason, in the order `ServiceCounters::errors` holds them.
    pub const ALL: [Reason; 5] =
        [Reason::NoService, Reason::Busy, Reason::Timeout, Reason::WorkerLost, Reason::ShuttingDown];

    /// The REASON frame on the wire.
    pub fn wire(self) -> &'static [u8] {
        use super::wire;
        match self {
            Reason::NoService => wire::NO_SERVICE,
            Reason::Busy => wire::BUSY,
            Reason::Timeout => wire::TIMEOUT,
            Reason::WorkerLost => wire::WORKER_LOST,
            Reason::ShuttingDown => wire::SHUTTING_DOWN,
        }
    }

    /// The name in JSON and metric labels: the wire name in lower case.
    pub fn label(self) -> &'static str {
        match self {
            Reason::NoService => "no_service",
            Reason::Busy => "busy",
            Reason::Timeout => "timeout",
            Reason::WorkerLost => "worker_lost",
            Reason::ShuttingDown => "shutting_down",
        }
    }
}

/// Latencies in `LATENCY_BUCKETS`, non-cumulative (the renderer sums them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    /// Count per bucket; the last one is +Inf.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Observations in all.
    pub count: u64,
    /// Sum of every observation, in seconds.
    pub sum: f64,
}

/// `LATENCY_BUCKETS` in nanoseconds, for comparisons without floating point.
const BUCKET_NANOS: [u64; LATENCY_BUCKETS.len()] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    5_000_000_000,
    30_000_000_000,
];

impl Histogram {
    /// Counts one latency: in its bucket, the count and the sum.
    pub fn observe(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.iter().position(|&le| nanos <= le).unwrap_or(BUCKET_NANOS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum += latency.as_secs_f64();
    }
}

/// One service's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceCounters {
    /// Requests taken (a retry of one in flight is not counted again).
    pub requests: u64,
    /// Worker replies delivered to clients.
    pub replies: u64,
    /// `EZ_ERR` answers, by `Reason::ALL` order.
    pub errors: [u64; Reason::ALL.len()],
    /// Time from request taken to worker reply, for each reply.
    pub latency: Histogram,
}

impl ServiceCounters {
    /// `EZ_ERR reason` answers so far.
    pub fn error(&self, reason: Reason) -> u64 {
        self.errors[reason as usize]
    }
}

/// Where a request's service is counted, found once when the request is taken, so its answer
/// is counted without looking the name up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

impl Slot {
    /// Counted under `OTHER`.
    pub const OTHER: Slot = Slot(u32::MAX);
}

/// Counters for every tracked service and one entry for the rest.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Each tracked service's index in `counters`.
    index: HashMap<Bytes, usize>,
    counters: Vec<ServiceCounters>,
    other: ServiceCounters,
    /// The service counted last and its index: a request and its reply, and runs of requests
    /// for one service, skip the hash lookup.
    last: Option<(Bytes, usize)>,
    /// Services that joined when `MAX_TRACKED_SERVICES` were tracked (counted under `OTHER`).
    pub refused: u64,
}

impl ServiceStats {
    /// A worker joined `service`: it gets counters of its own, if there is room.
    pub fn track(&mut self, service: &[u8]) {
        if self.index.contains_key(service) || service == OTHER.as_bytes() {
            return;
        }
        if self.counters.len() >= MAX_TRACKED_SERVICES || service.len() > MAX_TRACKED_NAME {
            self.refused += 1;
            return;
        }
        self.index.insert(Bytes::copy_from_slice(service), self.counters.len());
        self.counters.push(ServiceCounters::default());
    }

    /// Where `service` is counted.
    pub fn slot(&mut self, service: &[u8]) -> Slot {
        if let Some((name, i)) = &self.last {
            if name[..] == *service {
                return Slot(*i as u32);
            }
        }
        match self.index.get_key_value(service) {
            Some((name, &i)) => {
                self.last = Some((name.clone(), i));
                Slot(i as u32)
            }
            None => Slot::OTHER,
        }
    }

    fn at(&mut self, slot: Slot) -> &mut ServiceCounters {
        match self.counters.get_mut(slot.0 as usize) {
            Some(counters) => counters,
            None => &mut self.other,
        }
    }

    /// A request for `service` was taken; returns where its answer is to be counted.
    pub fn request(&mut self, service: &[u8]) -> Slot {
        let slot = self.slot(service);
        self.at(slot).requests += 1;
        slot
    }

    /// A worker's reply to a request (counted at `slot`) taken `latency` ago.
    pub fn reply(&mut self, slot: Slot, latency: Duration) {
        let entry = self.at(slot);
        entry.replies += 1;
        entry.latency.observe(latency);
    }

    /// An `EZ_ERR reason` answer to a request counted at `slot`.
    pub fn error(&mut self, slot: Slot, reason: Reason) {
        self.at(slot).errors[reason as usize] += 1;
    }

    /// Every tracked service's counters, then `OTHER`'s.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &ServiceCounters)> {
        let other = std::iter::once((OTHER.as_bytes(), &self.other));
        self.index.iter().map(|(name, &i)| (&name[..], &self.counters[i])).chain(other)
    }

    /// The services with counters of their own.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.index.keys().map(|name| &name[..])
    }

    /// The counters of `service`, if it has its own.
    pub fn get(&self, service: &[u8]) -> Option<&ServiceCounters> {
        self.index.get(service).map(|&i| &self.counters[i])
    }

    /// The counters of everything counted under `OTHER`.
    pub fn other(&self) -> &ServiceCounters {
        &self.other
    }

    /// How many services have counters of their own.
    pub fn tracked(&self) -> usize {
        self.counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_services_with_workers_get_entries_and_the_table_is_bounded() {
        let mut stats = ServiceStats::default();
        assert_eq!(stats.request(b"nobody"), Slot::OTHER);
        assert_eq!(stats.other().requests, 1);
        assert!(stats.get(b"nobody").is_none());
        for i in 0..MAX_TRACKED_SERVICES + 10 {
            stats.track(format!("s{i}").as_bytes());
        }
        assert_eq!(stats.tracked(), MAX_TRACKED_SERVICES);
        assert_eq!(stats.refused, 10);
        let mut fresh = ServiceStats::default();
        fresh.track(&[b'n'; MAX_TRACKED_NAME + 1]);
        fresh.track(OTHER.as_bytes());
        assert_eq!((fresh.tracked(), fresh.refused), (0, 1), "long names and (other) get no entry");
        let slot = stats.request(b"s0");
        stats.reply(slot, Duration::from_micros(300));
        stats.error(slot, Reason::Timeout);
        let s0 = stats.get(b"s0").unwrap();
        assert_eq!((s0.requests, s0.replies, s0.error(Reason::Timeout)), (1, 1, 1));
        assert_eq!(s0.latency.buckets[2], 1, "300 us falls in the 0.5 ms bucket");
    }

    #[test]
    fn the_nanosecond_bounds_are_the_published_ones() {
        for (nanos, seconds) in BUCKET_NANOS.iter().zip(LATENCY_BUCKETS) {
            assert_eq!(Duration::from_nanos(*nanos).as_secs_f64(), seconds);
        }
    }

    #[test]
    fn the_last_service_is_remembered_and_others_still_found() {
        let mut stats = ServiceStats::default();
        stats.track(b"a");
        stats.track(b"b");
        for service in [b"a", b"b", b"a", b"a", b"c"] {
            let _ = stats.request(service);
        }
        assert_eq!(stats.get(b"a").unwrap().requests, 3);
        assert_eq!(stats.get(b"b").unwrap().requests, 1);
        assert_eq!(stats.other().requests, 1);
    }

    #[test]
    fn a_latency_beyond_the_last_bound_lands_in_inf() {
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_secs(60));
        histogram.observe(Duration::ZERO);
        assert_eq!(histogram.buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(histogram.buckets[0], 1);
        assert_eq!(histogram.count, 2);
        assert!((histogram.sum - 60.0).abs() < 1e-9);
    }
}
