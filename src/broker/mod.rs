//! The EZ Arch broker (generation 1, PROTOCOL.md §2) as a pure state machine: messages and `now`
//! in, messages out. No sockets: the node feeds it what its three sockets read and sends what it
//! emits. Fixes over the original, each marked where it is enforced:
//! - least-tasks selection, ties spread round-robin;
//! - malformed input of any shape is counted and dropped, never a crash;
//! - a request with no live worker is held (bounded) and answered `EZ_ERR NO_SERVICE` in time,
//!   but not during a startup grace in which workers have not heartbeated to us yet;
//! - engaged tasks expire after `task_timeout`, so counts cannot drift forever;
//! - our own dispatches count at once; our own ENGAGED/UNENGAGED echoes are not counted twice;
//!   no stray reply drives a count below zero;
//! - replies are routed by the in pipe's identity known from its connection, not learned from the
//!   first request, so a fresh broker routes replies from its first second.

mod registry;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

pub use self::registry::{Heartbeat, Registry, MAX_TASKS_PER_WORKER, MAX_WORKERS};
use crate::socket::{message_cost, Message};
use crate::time::after;

/// Frame values of the protocol.
pub mod wire {
    pub const WORKER: &[u8] = b"\x01";
    pub const CLIENT: &[u8] = b"\x02";
    pub const HEARTBEAT: &[u8] = b"\x01";
    pub const REPLY: &[u8] = b"\x02";
    pub const STATE_HEARTBEAT: &[u8] = b"\x01";
    pub const STATE_ENGAGED: &[u8] = b"\x02";
    pub const STATE_UNENGAGED: &[u8] = b"\x03";
    pub const EZ_ERR: &[u8] = b"EZ_ERR";
    pub const NO_SERVICE: &[u8] = b"NO_SERVICE";
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Our state DEALER's identity, as the broker pipe's ROUTER puts it in front of our
    /// broadcasts; lets us recognise our own echoes.
    pub identity: Bytes,
    /// A worker with no heartbeat for this long is dropped (WORKER_LIFETIME_S).
    pub worker_lifetime: Duration,
    /// An engaged task with no reply for this long is released.
    pub task_timeout: Duration,
    /// How long a request for a service with no live worker waits before NO_SERVICE.
    pub no_service_wait: Duration,
    /// After start, requests wait at least this long for workers to heartbeat to us.
    pub startup_grace: Duration,
    /// Requests held waiting for a worker, across services; beyond it NO_SERVICE at once.
    pub max_waiting: usize,
    /// Bytes those requests may hold together (by `socket::message_cost`); beyond it the same.
    pub max_waiting_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            identity: Bytes::from_static(b"broker"),
            worker_lifetime: Duration::from_secs(9),
            task_timeout: Duration::from_secs(30),
            no_service_wait: Duration::from_secs(1),
            startup_grace: Duration::from_millis(3500),
            max_waiting: 10_000,
            max_waiting_bytes: 64 << 20,
        }
    }
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send on the in-ROUTER (first frame: the in pipe's identity).
    ToClient(Message),
    /// Send on the worker-ROUTER (first frame: the worker pipe's identity).
    ToWorker(Message),
    /// Send on the state DEALER (the broker pipe publishes it to every broker).
    Broadcast(Message),
}

/// Counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub requests: u64,
    pub dispatched: u64,
    pub replies: u64,
    pub no_service: u64,
    pub malformed: u64,
    pub tasks_timed_out: u64,
    pub workers_expired: u64,
    /// Heartbeats of new workers ignored because the registry was full.
    pub workers_refused: u64,
}

/// A request waiting for a worker of its service.
#[derive(Debug)]
struct Waiting {
    deadline: Instant,
    /// What `request` costs, by `socket::message_cost`.
    cost: usize,
    /// `[IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]`, as received (compacted).
    request: Message,
}

#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    started: Instant,
    registry: Registry,
    /// The in pipe's identity on our in-ROUTER, and the worker pipe's on our worker-ROUTER.
    in_pipe: Option<Bytes>,
    worker_pipe: Option<Bytes>,
    waiting: HashMap<Bytes, VecDeque<Waiting>>,
    waiting_count: usize,
    /// What the held requests cost, by `socket::message_cost`.
    waiting_bytes: usize,
    outputs: VecDeque<Output>,
    pub stats: BrokerStats,
}

impl Broker {
    pub fn new(config: BrokerConfig, now: Instant) -> Self {
        Self {
            registry: Registry::new(config.worker_lifetime, config.task_timeout),
            config,
            started: now,
            in_pipe: None,
            worker_pipe: None,
            waiting: HashMap::new(),
            waiting_count: 0,
            waiting_bytes: 0,
            outputs: VecDeque::new(),
            stats: BrokerStats::default(),
        }
    }

    /// The in pipe's DEALER attached to our in-ROUTER with this identity.
    pub fn set_in_pipe(&mut self, identity: Bytes) {
        self.in_pipe = Some(identity);
    }

    /// The worker pipe's DEALER attached to our worker-ROUTER with this identity.
    pub fn set_worker_pipe(&mut self, identity: Bytes, now: Instant) {
        self.worker_pipe = Some(identity);
        self.retry_waiting(now, None);
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// `[IN_PIPE_ID, CLIENT_ID, "", 0x02, REQ_ID, SERVICE, BODY...]` from the in-ROUTER.
    pub fn handle_client(&mut self, now: Instant, message: Message) {
        let valid = message.len() >= 6 && message[2].is_empty() && message[3] == wire::CLIENT;
        if !valid {
            return self.malformed("client request", &message);
        }
        self.stats.requests += 1;
        if self.in_pipe.is_none() {
            self.in_pipe = Some(message[0].clone());
        }
        self.route_request(now, message);
    }

    /// From the worker-ROUTER: a heartbeat `[PIPE, WORKER, "", 0x01, 0x01, SERVICE]` or a reply
    /// `[PIPE, WORKER, "", 0x01, 0x02, CLIENT, "", REQ_ID, REPLY...]`.
    pub fn handle_worker(&mut self, now: Instant, mut message: Message) {
        if message.len() < 5 || !message[2].is_empty() || message[3] != wire::WORKER {
            return self.malformed("worker message", &message);
        }
        if self.worker_pipe.is_none() {
            self.worker_pipe = Some(message[0].clone());
        }
        match &message[4][..] {
            m if m == wire::HEARTBEAT && message.len() == 6 => {
                let (service, worker) = (message[5].clone(), message[1].clone());
                self.note_heartbeat(&service, &worker, now);
                self.outputs.push_back(Output::Broadcast(vec![
                    Bytes::from_static(wire::STATE_HEARTBEAT),
                    service.clone(),
                    worker,
                ]));
                self.retry_waiting(now, Some(&service));
            }
            m if m == wire::REPLY && message.len() >= 8 && message[6].is_empty() => {
                let worker = message[1].clone();
                self.stats.replies += 1;
                // Our own dispatch or another broker's: release one task either way, at once.
                self.registry.release(&worker);
                self.outputs
                    .push_back(Output::Broadcast(vec![Bytes::from_static(wire::STATE_UNENGAGED), worker]));
                let Some(in_pipe) = self.in_pipe.clone() else {
                    return self.malformed("reply before the in pipe is known", &message);
                };
                // [PIPE, WORKER, "", 0x01, 0x02, CLIENT, "", REQ_ID, REPLY...]
                //   -> [IN_PIPE, CLIENT, "", REQ_ID, REPLY...], in place
                message.drain(1..5);
                message[0] = in_pipe;
                self.outputs.push_back(Output::ToClient(message));
            }
            _ => self.malformed("worker message", &message),
        }
    }

    /// From the broadcast SUB: `[SENDER, 0x01, SERVICE, WORKER]`, `[SENDER, 0x02|0x03, WORKER]`.
    pub fn handle_state(&mut self, now: Instant, message: Message) {
        if message.len() < 3 {
            return self.malformed("state message", &message);
        }
        let ours = message[0] == self.config.identity;
        match (&message[1][..], message.len()) {
            (m, 4) if m == wire::STATE_HEARTBEAT => {
                self.note_heartbeat(&message[2], &message[3], now);
                self.retry_waiting(now, Some(&message[2]));
            }
            // Our own ENGAGED/UNENGAGED were counted when we acted; count only other brokers'.
            (m, 3) if m == wire::STATE_ENGAGED => {
                if !ours {
                    self.registry.engage(&message[2], now);
                }
            }
            (m, 3) if m == wire::STATE_UNENGAGED => {
                if !ours {
                    self.registry.release(&message[2]);
                }
            }
            _ => self.malformed("state message", &message),
        }
    }

    /// When `handle_timeout` must next run: the earliest held request's deadline or worker or
    /// task expiry. `None` when nothing is pending; the node sleeps until then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let held = self.waiting.values().filter_map(|q| q.front().map(|w| w.deadline)).min();
        [held, self.registry.next_expiry()].into_iter().flatten().min()
    }

    /// Expires workers and tasks, and answers NO_SERVICE for requests that waited long enough.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (workers, tasks) = self.registry.expire(now);
        for (worker, service) in &workers {
            log::info!(
                "worker {} expired from service {}: no heartbeat for {:?}",
                printable(worker),
                printable(service),
                self.config.worker_lifetime
            );
        }
        self.stats.workers_expired += workers.len() as u64;
        self.stats.tasks_timed_out += tasks;
        let mut expired = Vec::new();
        for queue in self.waiting.values_mut() {
            while queue.front().is_some_and(|w| w.deadline <= now) {
                expired.extend(queue.pop_front());
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
        for held in expired {
            self.unhold(&held);
            self.answer_no_service(held.request);
        }
    }

    /// `request` is `[IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]`, already checked.
    fn route_request(&mut self, now: Instant, request: Message) {
        let service = request[5].clone();
        if let Some(worker) = self.ready_worker(&service, now) {
            return self.dispatch(now, worker, request);
        }
        let mut request = request;
        crate::socket::compact(&mut request); // it waits: it must not pin a read buffer
        let cost = message_cost(&request);
        let full = self.waiting_count >= self.config.max_waiting
            || self.waiting_bytes + cost > self.config.max_waiting_bytes;
        if full {
            return self.answer_no_service(request);
        }
        let deadline =
            after(now, self.config.no_service_wait).max(after(self.started, self.config.startup_grace));
        self.waiting_count += 1;
        self.waiting_bytes += cost;
        self.waiting.entry(service).or_default().push_back(Waiting { deadline, cost, request });
    }

    /// A held request leaves the waiting list.
    fn unhold(&mut self, held: &Waiting) {
        self.waiting_count -= 1;
        self.waiting_bytes -= held.cost;
    }

    fn ready_worker(&mut self, service: &[u8], now: Instant) -> Option<Bytes> {
        self.worker_pipe.as_ref()?;
        self.registry.pick(service, now)
    }

    /// Rewrites the request in place into `[WORKER_PIPE, WORKER, "", CLIENT, REQ_ID, BODY...]`
    /// (no copy, no new `Vec`); counted at once, then broadcast.
    fn dispatch(&mut self, now: Instant, worker: Bytes, mut request: Message) {
        let Some(pipe) = self.worker_pipe.clone() else { return };
        self.registry.engage(&worker, now);
        self.stats.dispatched += 1;
        // [IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]
        request.swap(3, 1); // [IN_PIPE, 0x02, "", CLIENT, REQ_ID, SERVICE, BODY...]
        request.remove(5); //  [IN_PIPE, 0x02, "", CLIENT, REQ_ID, BODY...]
        request[0] = pipe;
        request[1] = worker.clone();
        self.outputs.push_back(Output::ToWorker(request));
        self.outputs.push_back(Output::Broadcast(vec![Bytes::from_static(wire::STATE_ENGAGED), worker]));
    }

    /// Sends held requests whose service now has a live worker: those of `only` (a heartbeat's
    /// service), or of every service (the worker pipe attached).
    fn retry_waiting(&mut self, now: Instant, only: Option<&[u8]>) {
        if self.waiting_count == 0 {
            return;
        }
        let services: Vec<Bytes> = match only {
            Some(service) => {
                self.waiting.get_key_value(service).map(|(k, _)| k.clone()).into_iter().collect()
            }
            None => self.waiting.keys().cloned().collect(),
        };
        for service in services {
            while let Some(worker) = self.ready_worker(&service, now) {
                let Some(held) = self.waiting.get_mut(&service).and_then(|q| q.pop_front()) else { break };
                self.unhold(&held);
                self.dispatch(now, worker, held.request);
            }
            if self.waiting.get(&service).is_some_and(|q| q.is_empty()) {
                self.waiting.remove(&service);
            }
        }
    }

    /// `[IN_PIPE, CLIENT, "", REQ_ID, "EZ_ERR", "NO_SERVICE"]`
    fn answer_no_service(&mut self, request: Message) {
        self.stats.no_service += 1;
        let Some(in_pipe) = self.in_pipe.clone() else { return };
        let (client, req_id) = (request[1].clone(), request[4].clone());
        let err = Bytes::from_static(wire::EZ_ERR);
        let no_service = Bytes::from_static(wire::NO_SERVICE);
        self.outputs.push_back(Output::ToClient(vec![
            in_pipe,
            client,
            Bytes::new(),
            req_id,
            err,
            no_service,
        ]));
    }

    fn note_heartbeat(&mut self, service: &[u8], worker: &[u8], now: Instant) {
        match self.registry.heartbeat(service, worker, now) {
            Heartbeat::Joined => {
                log::info!("worker {} joined service {}", printable(worker), printable(service))
            }
            Heartbeat::Moved => {
                log::debug!("worker {} moved to service {}", printable(worker), printable(service))
            }
            Heartbeat::Refused => self.stats.workers_refused += 1,
            Heartbeat::Renewed => {}
        }
    }

    fn malformed(&mut self, what: &str, message: &Message) {
        self.stats.malformed += 1;
        log::debug!("dropping a malformed {what} of {} frames", message.len());
    }
}

/// Bytes as text for a log line: printable ASCII as is, anything else as `\xNN`, at most 64.
pub fn printable(bytes: &[u8]) -> String {
    let mut text: String =
        bytes.iter().take(64).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > 64 {
        text.push_str("...");
    }
    text
}
