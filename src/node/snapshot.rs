//! What an operator can see of a running node, taken at one instant: the broker's counters and
//! per-service figures, connections, bytes, memory, queues and pipes. Built on demand (for
//! `ez.stats`, `ez.services` and `/metrics`), never on the request path; written out as JSON
//! here and as Prometheus text in `monitor::metrics`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::json::Json;
use crate::broker::{BrokerStats, Reason, ServiceCounters};
use crate::door::Door;
use crate::pipe::{GateStats, PipeStats};
use crate::reactor::{PlainStats, ReactorStats};
use crate::socket::SocketStats;

/// One service as the broker sees it.
#[derive(Debug, Clone)]
pub struct ServiceSnapshot {
    /// The service name as it came on the wire.
    pub name: Bytes,
    /// Workers whose last heartbeat is recent enough.
    pub live_workers: usize,
    /// Requests at its workers, not answered yet.
    pub in_flight: usize,
    /// Requests waiting for one of its workers.
    pub waiting: usize,
    /// Its counters; zeros when it has none of its own (it is counted under `other`).
    pub counters: ServiceCounters,
}

/// The broker's part of a snapshot.
#[derive(Debug, Clone)]
pub struct BrokerSnapshot {
    /// The broker's counters.
    pub stats: BrokerStats,
    /// Whether it can take requests (in pipe, worker pipe and broadcast attached).
    pub attached: bool,
    /// Workers known, across services.
    pub workers: usize,
    /// Requests waiting for a worker.
    pub requests_waiting: usize,
    /// Requests dispatched and not answered yet.
    pub requests_in_flight: usize,
    /// Every service with a worker now or counters of its own, by name.
    pub services: Vec<ServiceSnapshot>,
    /// Requests for every other name (see `broker::OTHER`).
    pub other: ServiceCounters,
    /// Services beyond `broker::MAX_TRACKED_SERVICES`, counted under `other`.
    pub services_untracked: u64,
}

/// A pipe's counters, with its name (`in`, `worker`, `broker`, or `pipe`).
#[derive(Debug, Clone)]
pub struct PipeSnapshot {
    /// Which pipe.
    pub name: &'static str,
    /// Its counters.
    pub stats: PipeStats,
}

/// Everything at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// This build's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// Time since the node started.
    pub uptime: Duration,
    /// Stopping: new requests are answered SHUTTING_DOWN.
    pub draining: bool,
    /// The broker's part; `None` on a node without a broker (`ezarch pipe`).
    pub broker: Option<BrokerSnapshot>,
    /// Each pipe's counters, in the order the node added them.
    pub pipes: Vec<PipeSnapshot>,
    /// The reactor-wide counters (`Reactor::reactor_stats`).
    pub reactor: ReactorStats,
    /// ZMTP connections open now, handshaking ones included.
    pub connections: usize,
    /// Accepted connections still in their handshake.
    pub handshaking: usize,
    /// `MAX_CONNECTIONS`, as lowered to fit the open-file limit.
    pub max_connections: usize,
    /// Bytes held now against the inbound budget.
    pub memory_used: usize,
    /// The inbound budget in bytes (`INBOUND_BUDGET_MB`).
    pub memory_budget: usize,
    /// Every socket's counters added up.
    pub messages: SocketStats,
    /// The HTTP monitor's counters and open connections.
    pub monitor: (PlainStats, usize),
    /// What the security model refused, by reason.
    pub refusals: Refusals,
}

/// Every refusal of the security model (README, "Security model"), by reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusals {
    /// CURVE handshakes refused: the key is not in `CURVE_CLIENT_KEYS`.
    pub curve_not_allowed: u64,
    /// CURVE handshakes refused at a door whose `CURVE_PERMISSIONS` rule the key lacks, per
    /// door (`Door::index`).
    pub curve_wrong_door: [u64; 3],
    /// What the client door's gate refused (`forbidden`: requests answered FORBIDDEN).
    pub clients: GateStats,
    /// What the worker doors' gate refused (`forbidden`: heartbeats for services the key may
    /// not serve; `identity_taken`, `dispatch_dropped`).
    pub workers: GateStats,
}

impl Snapshot {
    /// The broker's view of one service, if it knows it.
    pub fn service(&self, name: &[u8]) -> Option<&ServiceSnapshot> {
        self.broker.as_ref()?.services.iter().find(|s| s.name == name)
    }

    /// `ez.stats`: the node's counters as one JSON object (fields in `spec.org`).
    pub fn stats_json(&self) -> String {
        let mut json = Json::new();
        json.begin_object()
            .string("version", self.version.as_bytes())
            .float("uptime_seconds", self.uptime.as_secs_f64())
            .boolean("draining", self.draining);
        if let Some(b) = &self.broker {
            let st = &b.stats;
            json.boolean("attached", b.attached)
                .number("requests", st.requests)
                .number("dispatched", st.dispatched)
                .number("replies", st.replies);
            json.object("errors");
            for reason in Reason::ALL {
                json.number(reason.label(), st.error(reason));
            }
            json.end_object()
                .number("redispatched", st.redispatched)
                .number("duplicates", st.duplicates)
                .number("late_replies", st.late_replies)
                .number("malformed", st.malformed)
                .number("management", st.management)
                .number("requests_waiting", b.requests_waiting as u64)
                .number("requests_in_flight", b.requests_in_flight as u64)
                .number("workers", b.workers as u64)
                .number("workers_left", st.workers_left)
                .number("workers_expired", st.workers_expired)
                .number("workers_refused", st.workers_refused)
                .number("services", b.services.len() as u64)
                .number("services_untracked", b.services_untracked);
        }
        let (m, r) = (&self.messages, &self.reactor);
        json.object("connections")
            .number("open", self.connections as u64)
            .number("handshaking", self.handshaking as u64)
            .number("max", self.max_connections as u64)
            .number("refused", r.connections_refused)
            .number("curve_refused", r.curve_refused)
            .number("peers_failed", m.peers_failed)
            .end_object();
        json.object("bytes").number("read", r.bytes_read).number("written", r.bytes_written).end_object();
        let refused = &self.refusals;
        json.object("forbidden")
            .number("requests", refused.clients.forbidden)
            .number("heartbeats", refused.workers.forbidden)
            .end_object();
        json.object("refusals").number("curve_not_allowed", refused.curve_not_allowed);
        json.object("curve_wrong_door");
        for door in Door::ALL {
            json.number(door.label(), refused.curve_wrong_door[door.index()]);
        }
        json.end_object()
            .number("forbidden_requests", refused.clients.forbidden)
            .number("forbidden_heartbeats", refused.workers.forbidden)
            .number("identity_taken", refused.workers.identity_taken)
            .number("dispatch_dropped", refused.workers.dispatch_dropped)
            .number("connections_full", r.admission.refused_full)
            .number("connections_per_address", r.admission.refused_per_address)
            .number("handshakes_evicted", r.admission.evicted_handshaking)
            .number("handshakes_deferred", r.admission.handshakes_deferred);
        if let Some(b) = &self.broker {
            json.number("replies_refused", b.stats.replies_refused)
                .number("acks_refused", b.stats.acks_refused)
                .number("replies_unknown", b.stats.replies_unknown);
        }
        json.end_object();
        json.object("memory")
            .number("used", self.memory_used as u64)
            .number("budget", self.memory_budget as u64)
            .number("pauses", r.budget_pauses)
            .number("evictions", r.budget_evictions)
            .number("read_buffers_reused", r.read_pool.reused)
            .number("read_buffers_refused", r.read_pool.refused)
            .end_object();
        json.object("messages")
            .number("received", m.received)
            .number("sent", m.sent)
            .number("dropped_hwm", m.dropped_hwm)
            .number("dropped_unroutable", m.dropped_unroutable)
            .number("dropped_malformed", m.dropped_malformed)
            .end_object();
        json.array("pipes");
        for pipe in &self.pipes {
            json.element()
                .string("name", pipe.name.as_bytes())
                .number("forwarded_in", pipe.stats.forwarded_in)
                .number("forwarded_out", pipe.stats.forwarded_out)
                .number("dropped", pipe.stats.dropped)
                .end_object();
        }
        json.end_array().end_object();
        json.finish()
    }

    /// `ez.services`: every service the broker knows, as a JSON object (fields in `spec.org`).
    pub fn services_json(&self) -> String {
        let mut json = Json::new();
        json.begin_object().array("services");
        for s in self.broker.iter().flat_map(|b| &b.services) {
            let c = &s.counters;
            json.element()
                .string("name", display_name(&s.name).as_bytes())
                .number("live_workers", s.live_workers as u64)
                .number("in_flight", s.in_flight as u64)
                .number("waiting", s.waiting as u64)
                .number("requests", c.requests)
                .number("replies", c.replies);
            json.object("errors");
            for reason in Reason::ALL {
                json.number(reason.label(), c.error(reason));
            }
            json.end_object().end_object();
        }
        json.end_array().end_object();
        json.finish()
    }
}

/// A service name as text for JSON, metric labels and terminals. A name that is valid UTF-8
/// with no backslash or control character is itself; any other is escaped byte by byte (`\xff`,
/// `\\`, `\n`). Distinct names stay distinct: only escaped names hold a backslash.
pub fn display_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) if !text.chars().any(|c| c == '\\' || c.is_control()) => text.to_string(),
        _ => name.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect(),
    }
}

/// Seconds since `started`, for `uptime`.
pub fn uptime(started: Instant) -> Duration {
    Instant::now().saturating_duration_since(started)
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn display_names_are_printable_and_distinct() {
        assert_eq!(display_name("échos".as_bytes()), "échos");
        assert_eq!(display_name(b"a\xffb"), "a\\xffb");
        assert_eq!(display_name(b"a\\xffb"), "a\\\\xffb", "a literal backslash is escaped too");
        assert_eq!(display_name(b"bell\x07"), "bell\\x07");
        assert_ne!(display_name("\u{fffd}".as_bytes()), display_name(b"\xff"));
    }
}
