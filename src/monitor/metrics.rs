//! A `Snapshot` as Prometheus text exposition (format 0.0.4): every `ez.stats` figure, and per
//! service its requests, replies, errors by reason, live workers, in-flight and waiting
//! requests and a latency histogram. Names carry the `ezarch_` prefix; counters end in
//! `_total`, durations are in `_seconds`, sizes in `_bytes`.

use std::fmt::Write;

use crate::broker::{Reason, ServiceCounters, LATENCY_BUCKETS, OTHER};
use crate::door::Door;
use crate::node::snapshot::{display_name, Snapshot};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family after another.
struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A sample; `labels` as (name, value) pairs, values escaped here.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"");
                escape_label(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// One single-sample family per `(name, help, value)`.
    fn singles<T: std::fmt::Display + Copy>(&mut self, kind: &str, families: &[(&str, &str, T)]) {
        for &(name, help, value) in families {
            self.single(name, kind, help, value);
        }
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value: `\`, `"` and newlines escaped, as the format asks.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The whole exposition for `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut w = Writer { out: String::with_capacity(4096) };
    w.family("ezarch_build_info", "gauge", "The running version, as a label; always 1.");
    w.sample("ezarch_build_info", &[("version", snapshot.version)], 1);
    w.single(
        "ezarch_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        snapshot.uptime.as_secs_f64(),
    );
    let draining = u8::from(snapshot.draining);
    w.single("ezarch_draining", "gauge", "1 while the node stops (new requests: SHUTTING_DOWN).", draining);
    node_metrics(&mut w, snapshot);
    if let Some(b) = &snapshot.broker {
        broker_metrics(&mut w, b);
        service_metrics(&mut w, b);
    }
    w.out
}

fn node_metrics(w: &mut Writer, s: &Snapshot) {
    let (r, m) = (&s.reactor, &s.messages);
    let gauges: [(&str, &str, usize); 5] = [
        ("ezarch_connections", "TCP connections open (ZMTP).", s.connections),
        ("ezarch_connections_handshaking", "Accepted connections still in their handshake.", s.handshaking),
        ("ezarch_connections_max", "MAX_CONNECTIONS: more are refused.", s.max_connections),
        ("ezarch_memory_used_bytes", "Bytes held by connections and queues.", s.memory_used),
        (
            "ezarch_memory_budget_bytes",
            "INBOUND_BUDGET_MB in bytes: reading pauses beyond it.",
            s.memory_budget,
        ),
    ];
    w.singles("gauge", &gauges);
    let counters: [(&str, &str, u64); 11] = [
        (
            "ezarch_connections_refused_total",
            "Connections refused: no slot (ezarch_refusals_total says why).",
            r.connections_refused,
        ),
        (
            "ezarch_peers_failed_total",
            "Connections closed for bad input, timeouts, the memory budget or a revoked CURVE key.",
            m.peers_failed,
        ),
        (
            "ezarch_curve_refused_total",
            "Peers refused in the CURVE handshake: key not allowed.",
            r.curve_refused,
        ),
        ("ezarch_received_bytes_total", "Bytes read from ZMTP connections.", r.bytes_read),
        ("ezarch_sent_bytes_total", "Bytes written to ZMTP connections.", r.bytes_written),
        (
            "ezarch_memory_pauses_total",
            "Times a connection paused reading for the memory budget.",
            r.budget_pauses,
        ),
        (
            "ezarch_memory_evictions_total",
            "Connections closed for holding the most over the budget.",
            r.budget_evictions,
        ),
        (
            "ezarch_read_buffers_reused_total",
            "Large frames read into a pooled buffer instead of a fresh one.",
            r.read_pool.reused,
        ),
        (
            "ezarch_read_buffers_refused_total",
            "Large read buffers freed because the pool was full.",
            r.read_pool.refused,
        ),
        ("ezarch_messages_received_total", "Messages received by every socket.", m.received),
        (
            "ezarch_messages_sent_total",
            "Messages every socket queued for a peer (drops are counted apart).",
            m.sent,
        ),
    ];
    w.singles("counter", &counters);
    w.family("ezarch_messages_dropped_total", "counter", "Messages dropped by sockets, by cause.");
    for (cause, value) in [
        ("hwm", m.dropped_hwm),
        ("unroutable", m.dropped_unroutable),
        ("malformed", m.dropped_malformed),
        ("ignored_peer", m.dropped_ignored_peer),
    ] {
        w.sample("ezarch_messages_dropped_total", &[("cause", cause)], value);
    }
    w.family("ezarch_pipe_forwarded_total", "counter", "Messages a pipe forwarded, by direction.");
    for pipe in &s.pipes {
        let (front, back) = (pipe.stats.forwarded_in, pipe.stats.forwarded_out);
        w.sample("ezarch_pipe_forwarded_total", &[("pipe", pipe.name), ("direction", "in")], front);
        w.sample("ezarch_pipe_forwarded_total", &[("pipe", pipe.name), ("direction", "out")], back);
    }
    w.family("ezarch_pipe_dropped_total", "counter", "Messages a pipe's far side refused.");
    for pipe in &s.pipes {
        w.sample("ezarch_pipe_dropped_total", &[("pipe", pipe.name)], pipe.stats.dropped);
    }
    let refused = &s.refusals;
    w.family(
        "ezarch_forbidden_total",
        "counter",
        "Refused by CURVE_PERMISSIONS: client requests, worker heartbeats.",
    );
    w.sample("ezarch_forbidden_total", &[("what", "request")], refused.clients.forbidden);
    w.sample("ezarch_forbidden_total", &[("what", "heartbeat")], refused.workers.forbidden);
    w.family(
        "ezarch_refusals_total",
        "counter",
        "What the security model refused, by reason and door (README: Security model).",
    );
    let mut refusal = |reason: &str, door: &str, value: u64| {
        w.sample("ezarch_refusals_total", &[("reason", reason), ("door", door)], value);
    };
    refusal("curve_not_allowed", "any", refused.curve_not_allowed);
    for door in Door::ALL {
        refusal("curve_wrong_door", door.label(), refused.curve_wrong_door[door.index()]);
    }
    refusal("forbidden", "clients", refused.clients.forbidden);
    refusal("forbidden", "workers", refused.workers.forbidden);
    refusal("identity_taken", "workers", refused.workers.identity_taken);
    refusal("dispatch_dropped", "workers", refused.workers.dispatch_dropped);
    let admission = &s.reactor.admission;
    refusal("connections_full", "any", admission.refused_full);
    refusal("connections_per_address", "any", admission.refused_per_address);
    refusal("handshakes_evicted", "any", admission.evicted_handshaking);
    refusal("handshakes_deferred", "any", admission.handshakes_deferred);
    if let Some(b) = &s.broker {
        refusal("replies_refused", "workers", b.stats.replies_refused);
        refusal("acks_refused", "workers", b.stats.acks_refused);
        refusal("replies_unknown", "workers", b.stats.replies_unknown);
    }
    let (monitor, _) = s.monitor;
    w.single("ezarch_monitor_responses_total", "counter", "HTTP responses sent.", monitor.responses);
    let dropped = monitor.evicted + monitor.timed_out;
    let help = "HTTP connections closed with no complete request (slot taken, or too slow).";
    w.single("ezarch_monitor_dropped_total", "counter", help, dropped);
    w.single(
        "ezarch_monitor_refused_total",
        "counter",
        "HTTP connections refused: all slots writing responses.",
        monitor.refused,
    );
}

fn broker_metrics(w: &mut Writer, b: &crate::node::snapshot::BrokerSnapshot) {
    let st = &b.stats;
    w.single("ezarch_broker_attached", "gauge", "1 when the broker can take requests.", u8::from(b.attached));
    let counters: [(&str, &str, u64); 11] = [
        ("ezarch_requests_total", "Client requests taken.", st.requests),
        ("ezarch_dispatched_total", "Dispatches to workers (redispatches included).", st.dispatched),
        ("ezarch_replies_total", "Worker replies.", st.replies),
        ("ezarch_redispatched_total", "Requests sent again after their worker went away.", st.redispatched),
        ("ezarch_duplicate_requests_total", "Retries of a request already taken.", st.duplicates),
        ("ezarch_late_replies_total", "Replies dropped: their request was answered.", st.late_replies),
        (
            "ezarch_malformed_messages_total",
            "Malformed protocol messages dropped by the broker.",
            st.malformed,
        ),
        ("ezarch_management_requests_total", "ez.* management requests.", st.management),
        ("ezarch_workers_left_total", "Workers gone when their connection closed.", st.workers_left),
        ("ezarch_workers_expired_total", "Workers dropped for missing heartbeats.", st.workers_expired),
        (
            "ezarch_workers_refused_total",
            "Worker heartbeats ignored: the registry was full.",
            st.workers_refused,
        ),
    ];
    w.singles("counter", &counters);
    w.family("ezarch_errors_total", "counter", "EZ_ERR answers, by reason.");
    for reason in Reason::ALL {
        w.sample("ezarch_errors_total", &[("reason", reason.label())], st.error(reason));
    }
    let gauges: [(&str, &str, usize); 3] = [
        ("ezarch_workers", "Workers known.", b.workers),
        ("ezarch_requests_waiting", "Requests waiting for a worker.", b.requests_waiting),
        ("ezarch_requests_in_flight", "Requests at workers, not answered yet.", b.requests_in_flight),
    ];
    w.singles("gauge", &gauges);
    let untracked = b.services_untracked;
    w.single(
        "ezarch_services_untracked_total",
        "counter",
        "Services counted under \"(other)\": too many.",
        untracked,
    );
}

fn service_metrics(w: &mut Writer, b: &crate::node::snapshot::BrokerSnapshot) {
    let names: Vec<String> = b.services.iter().map(|s| display_name(&s.name)).collect();
    let all = || names.iter().map(String::as_str).zip(b.services.iter().map(|s| &s.counters));
    let with_other = || all().chain(std::iter::once((OTHER, &b.other)));
    type Field = fn(&ServiceCounters) -> u64;
    let counters: [(&str, &str, Field); 2] = [
        ("ezarch_service_requests_total", "Requests taken, per service.", |c| c.requests),
        ("ezarch_service_replies_total", "Worker replies, per service.", |c| c.replies),
    ];
    for (metric, help, field) in counters {
        w.family(metric, "counter", help);
        for (name, c) in with_other() {
            w.sample(metric, &[("service", name)], field(c));
        }
    }
    w.family("ezarch_service_errors_total", "counter", "EZ_ERR answers, per service and reason.");
    for (name, c) in with_other() {
        for reason in Reason::ALL {
            let labels = [("service", name), ("reason", reason.label())];
            w.sample("ezarch_service_errors_total", &labels, c.error(reason));
        }
    }
    type Gauge = fn(&crate::node::snapshot::ServiceSnapshot) -> usize;
    let gauges: [(&str, &str, Gauge); 3] = [
        ("ezarch_service_live_workers", "Live workers, per service.", |s| s.live_workers),
        ("ezarch_service_in_flight", "Requests at workers, per service.", |s| s.in_flight),
        ("ezarch_service_waiting", "Requests waiting for a worker, per service.", |s| s.waiting),
    ];
    for (metric, help, field) in gauges {
        w.family(metric, "gauge", help);
        for (name, service) in names.iter().zip(&b.services) {
            w.sample(metric, &[("service", name)], field(service));
        }
    }
    let metric = "ezarch_service_latency_seconds";
    w.family(metric, "histogram", "Time from a request taken to its worker's reply, per service.");
    let (bucket, sum, count) =
        (format!("{metric}_bucket"), format!("{metric}_sum"), format!("{metric}_count"));
    let bounds: Vec<String> =
        LATENCY_BUCKETS.iter().map(f64::to_string).chain(std::iter::once("+Inf".to_string())).collect();
    for (name, c) in with_other() {
        let h = &c.latency;
        let mut cumulative = 0;
        for (le, n) in bounds.iter().zip(&h.buckets) {
            cumulative += n;
            w.sample(&bucket, &[("service", name), ("le", le)], cumulative);
        }
        w.sample(&sum, &[("service", name)], h.sum);
        w.sample(&count, &[("service", name)], h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
