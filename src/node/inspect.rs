//! How a node shows itself to operators: `Node::snapshot` gathers the figures at one instant,
//! and `ez.*` management requests (PROTOCOL.md-style frames, documented in `spec.org`) are
//! answered from it by the node itself, never by a worker:
//! - `ez.service NAME` -> `["200"]` when NAME has a live worker (or is one of these), else
//!   `["404"]`
//!   (`["400"]` without exactly one NAME frame);
//! - `ez.services` -> `["OK", JSON]`, `ez.stats` -> `["OK", JSON]`;
//! - `ez.ping` -> `["OK"]`, for round-trip times;
//! - any other `ez.` name -> `["EZ_ERR", "NO_SERVICE"]` at once.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;

use super::snapshot::{uptime, BrokerSnapshot, PipeSnapshot, Refusals, ServiceSnapshot, Snapshot};
use super::Node;
use crate::broker::wire;
use crate::door::Door;
use crate::socket::Message;

/// The management services the node answers.
pub const MANAGEMENT_SERVICES: [&[u8]; 4] = [b"ez.service", b"ez.services", b"ez.stats", b"ez.ping"];

impl Node {
    /// Every figure an operator may ask for, now.
    pub fn snapshot(&self) -> Snapshot {
        let reactor = &self.reactor;
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            uptime: uptime(self.started),
            draining: self.draining,
            broker: self.broker.as_ref().map(|b| broker_snapshot(b, Instant::now())),
            pipes: self
                .forwarders
                .iter()
                .zip(&self.pipe_names)
                .map(|(f, &name)| PipeSnapshot { name, stats: f.stats })
                .collect(),
            reactor: reactor.reactor_stats(),
            connections: reactor.connection_count(),
            handshaking: reactor.handshaking_count(),
            max_connections: reactor.limits().max_connections,
            memory_used: reactor.memory_used(),
            memory_budget: reactor.limits().memory_budget,
            messages: reactor.total_socket_stats(),
            monitor: reactor.plain_stats(),
            refusals: self.refusals(),
        }
    }

    /// What the handshakes and the doors' gates refused.
    fn refusals(&self) -> Refusals {
        let handshakes = self.security.refusals();
        let mut refusals = Refusals {
            curve_not_allowed: handshakes.not_allowed(),
            curve_wrong_door: Door::ALL.map(|door| handshakes.at(door)),
            ..Refusals::default()
        };
        for gate in self.forwarders.iter().filter_map(|f| f.gate.as_ref()) {
            let stats = match gate.door {
                Door::Clients => &mut refusals.clients,
                _ => &mut refusals.workers,
            };
            stats.forbidden += gate.stats.forbidden;
            stats.identity_taken += gate.stats.identity_taken;
            stats.dispatch_dropped += gate.stats.dispatch_dropped;
        }
        refusals
    }

    /// Answers the management requests the broker handed over; returns how many.
    pub(super) fn answer_management(&mut self) -> u64 {
        let Some(b) = &mut self.broker else { return 0 };
        if b.management.is_empty() {
            return 0;
        }
        let requests = std::mem::take(&mut b.management);
        let count = requests.len() as u64;
        // One snapshot serves every request of the batch: a flood of ez.stats costs one per turn.
        let mut snapshot = None;
        for request in requests {
            let reply = self.management_reply(&request, &mut snapshot);
            if let Some(b) = &self.broker {
                b.answer_management(&mut self.reactor, &request, reply);
            }
        }
        count
    }

    /// The snapshot in `cache`, taken now if there is none yet.
    fn cached<'a>(&self, cache: &'a mut Option<Snapshot>) -> &'a Snapshot {
        cache.get_or_insert_with(|| self.snapshot())
    }

    /// The reply frames for one management request `[IN_PIPE, CLIENT, "", 0x02, REQ_ID,
    /// SERVICE, BODY...]`.
    fn management_reply(&self, request: &Message, snapshot: &mut Option<Snapshot>) -> Vec<Bytes> {
        let text = |s: &'static str| Bytes::from_static(s.as_bytes());
        let body = &request[6..];
        match &request[5][..] {
            b"ez.service" => {
                let [name] = body else { return vec![text("400")] };
                let live = self.broker.as_ref().is_some_and(|b| {
                    MANAGEMENT_SERVICES.contains(&&name[..])
                        || b.broker.registry().live_workers(name, Instant::now()) > 0
                });
                vec![text(if live { "200" } else { "404" })]
            }
            b"ez.services" => {
                vec![Bytes::from_static(wire::OK), Bytes::from(self.cached(snapshot).services_json())]
            }
            b"ez.stats" => {
                vec![Bytes::from_static(wire::OK), Bytes::from(self.cached(snapshot).stats_json())]
            }
            b"ez.ping" => vec![Bytes::from_static(wire::OK)],
            _ => vec![Bytes::from_static(wire::EZ_ERR), Bytes::from_static(wire::NO_SERVICE)],
        }
    }
}

fn broker_snapshot(node: &super::BrokerNode, now: Instant) -> BrokerSnapshot {
    let broker = &node.broker;
    let registry = broker.registry();
    let requests = broker.requests();
    let in_flight = requests.in_flight_by_service();
    let names: BTreeSet<&[u8]> = registry.services().chain(broker.service_stats.names()).collect();
    let services = names
        .into_iter()
        .map(|name| ServiceSnapshot {
            name: Bytes::copy_from_slice(name),
            live_workers: registry.live_workers(name, now),
            in_flight: in_flight.get(name).copied().unwrap_or(0),
            waiting: requests.waiting(name).2,
            counters: broker.service_stats.get(name).copied().unwrap_or_default(),
        })
        .collect();
    BrokerSnapshot {
        stats: broker.stats,
        attached: node.attached(),
        workers: registry.worker_count(),
        requests_waiting: requests.waiting(b"").0,
        requests_in_flight: requests.in_flight(),
        services,
        other: *broker.service_stats.other(),
        services_untracked: broker.service_stats.refused,
    }
}
