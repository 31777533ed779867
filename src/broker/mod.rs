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
//!   first request, so a fresh broker routes replies from its first second;
//! - a reply (or a generation-2 ACK) is taken only from the worker its request is in flight at,
//!   and only for a request this broker took; anything else is counted and dropped, never routed
//!   (`requests::Stray`). Generation-2 workers name requests by 128-bit random tokens;
//! - every request taken gets exactly one answer (`requests`): the worker's reply, or
//!   `EZ_ERR` with NO_SERVICE (no worker in time), BUSY (too many waiting), TIMEOUT (no reply in
//!   `task_timeout`) or WORKER_LOST (its worker went away more than `max_redispatches` times; before
//!   that it is sent again, with the same request id, to another worker). A request id already
//!   taken is not taken twice, and a late or second reply is dropped.

mod kept;
mod registry;
mod requests;
mod service_stats;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use self::kept::Kept;
pub use self::registry::{Generation, Heartbeat, Registry, MAX_TASKS_PER_WORKER, MAX_WORKERS};
pub use self::requests::{
    ack_wait, Expired, KeyHasher, Lookup, RequestKey, Requests, Stray, Taken, Token, RECENT_ANSWERS, SWEEP,
};
pub use self::service_stats::{
    Histogram, Reason, ServiceCounters, ServiceStats, Slot, LATENCY_BUCKETS, MAX_TRACKED_SERVICES, OTHER,
};
use crate::socket::Message;
use crate::time::after;

/// Frame values of the protocol.
pub mod wire {
    /// Marks a worker's message: `["", 0x01, COMMAND, ...]`.
    pub const WORKER: &[u8] = b"\x01";
    /// Marks a client's request: `["", 0x02, REQ_ID, SERVICE, BODY...]`.
    pub const CLIENT: &[u8] = b"\x02";
    /// Worker command: a heartbeat for the service that follows.
    pub const HEARTBEAT: &[u8] = b"\x01";
    /// Worker command: a reply to the request named after it.
    pub const REPLY: &[u8] = b"\x02";
    /// Broadcast state: a worker's heartbeat, `[0x01, SERVICE, WORKER]`.
    pub const STATE_HEARTBEAT: &[u8] = b"\x01";
    /// Broadcast state: a broker gave a worker one more task, `[0x02, WORKER]`.
    pub const STATE_ENGAGED: &[u8] = b"\x02";
    /// Broadcast state: a worker replied, one task fewer, `[0x03, WORKER]`.
    pub const STATE_UNENGAGED: &[u8] = b"\x03";
    /// Heads an answer given instead of a worker's reply: `["", REQ_ID, "EZ_ERR", REASON]`.
    pub const EZ_ERR: &[u8] = b"EZ_ERR";
    /// No live worker of the service in time (or an `ez.` name the node does not answer).
    pub const NO_SERVICE: &[u8] = b"NO_SERVICE";
    /// Too many requests were waiting for a worker, or the request's key collided.
    pub const BUSY: &[u8] = b"BUSY";
    /// No reply within `task_timeout` of the request being taken.
    pub const TIMEOUT: &[u8] = b"TIMEOUT";
    /// Its worker went away and the request is not sent again.
    pub const WORKER_LOST: &[u8] = b"WORKER_LOST";
    /// The broker is stopping.
    pub const SHUTTING_DOWN: &[u8] = b"SHUTTING_DOWN";
    /// The client's CURVE key may not call this service (answered by the in pipe).
    pub const FORBIDDEN: &[u8] = b"FORBIDDEN";
    /// Generation 2, worker command: the worker took the request named after it.
    pub const ACK: &[u8] = b"\x03";
    /// A worker's reply status for a request it served (`["OK", RESULT...]`).
    pub const OK: &[u8] = b"OK";
    /// A worker's reply status for a failed request (`["ERR", MESSAGE]`).
    pub const ERR: &[u8] = b"ERR";
    /// What the client gets in place of a generation-2 worker's `ERR`.
    pub const SERVICE_ERR: &[u8] = b"SERVICE_ERR";
}

/// The broker's settings: its identity, timeouts and bounds.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Our state DEALER's identity, as the broker pipe's ROUTER puts it in front of our
    /// broadcasts; lets us recognise our own echoes.
    pub identity: Bytes,
    /// A worker with no heartbeat for this long is dropped (WORKER_LIFETIME_S).
    pub worker_lifetime: Duration,
    /// A dispatched request with no reply for this long is answered `EZ_ERR TIMEOUT`.
    pub task_timeout: Duration,
    /// How long a request for a service with no live worker waits before NO_SERVICE.
    pub no_service_wait: Duration,
    /// After start, requests wait at least this long for workers to heartbeat to us.
    pub startup_grace: Duration,
    /// Requests held waiting for a worker, across services; beyond it `EZ_ERR BUSY` at once.
    pub max_waiting: usize,
    /// Bytes those requests may hold together (by `socket::message_cost`); beyond it the same.
    pub max_waiting_bytes: usize,
    /// Requests held waiting for a worker of one service; beyond it the same.
    pub max_waiting_per_service: usize,
    /// Times a request is sent again after its worker went away; past it `EZ_ERR WORKER_LOST`.
    pub max_redispatches: u32,
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
            max_waiting_per_service: 1_000,
            max_redispatches: 1,
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
    /// Send on the generation-2 workers' ROUTER (first frame: the worker's identity).
    ToGen2Worker(Message),
    /// A request for a management service (`ez.*`), for the node to answer: it knows more than
    /// the broker (connections, bytes, pipes). The request as it came from the in-ROUTER.
    Management(Message),
}

/// Counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Client requests for worker services, duplicates and refused ones included (not `ez.*`).
    pub requests: u64,
    /// Requests sent to a worker, each resend included.
    pub dispatched: u64,
    /// Worker replies received, late ones and other brokers' included.
    pub replies: u64,
    /// Requests answered `EZ_ERR NO_SERVICE`.
    pub no_service: u64,
    /// Messages dropped as malformed, from any socket.
    pub malformed: u64,
    /// Engaged tasks whose deadline passed with no reply to release them.
    pub tasks_timed_out: u64,
    /// Workers dropped for want of a heartbeat.
    pub workers_expired: u64,
    /// Heartbeats of new workers ignored because the registry was full.
    pub workers_refused: u64,
    /// Requests answered `EZ_ERR BUSY`: too many were waiting for a worker.
    pub busy: u64,
    /// Requests answered `EZ_ERR TIMEOUT`.
    pub timeouts: u64,
    /// Requests answered `EZ_ERR WORKER_LOST`.
    pub worker_lost: u64,
    /// Requests sent again after their worker went away.
    pub redispatched: u64,
    /// Requests not taken because the same (client, request id) was already taken.
    pub duplicates: u64,
    /// Replies dropped because their request had been answered already.
    pub late_replies: u64,
    /// Replies dropped because their request is in flight at another worker (or waiting):
    /// this worker was never sent it (never routed).
    pub replies_refused: u64,
    /// Generation-2 ACKs dropped for the same reason.
    pub acks_refused: u64,
    /// Replies and ACKs dropped because they name no request this broker took: another
    /// broker's, one forgotten when a pipe went away, or a token nobody was given.
    pub replies_unknown: u64,
    /// Workers forgotten at once because their connection closed.
    pub workers_left: u64,
    /// Requests answered `EZ_ERR SHUTTING_DOWN`.
    pub shutting_down: u64,
    /// Requests for management services (`ez.*`), answered by the node, not by workers.
    pub management: u64,
}

impl BrokerStats {
    /// The counter of `EZ_ERR reason` answers.
    pub fn error_mut(&mut self, reason: Reason) -> &mut u64 {
        match reason {
            Reason::NoService => &mut self.no_service,
            Reason::Busy => &mut self.busy,
            Reason::Timeout => &mut self.timeouts,
            Reason::WorkerLost => &mut self.worker_lost,
            Reason::ShuttingDown => &mut self.shutting_down,
        }
    }

    /// `EZ_ERR reason` answers so far.
    pub fn error(&self, reason: Reason) -> u64 {
        *{ *self }.error_mut(reason)
    }
}

/// The prefix of management service names: requests for them never go to a worker.
pub const MANAGEMENT_PREFIX: &[u8] = b"ez.";

/// The broker state machine (see the module doc): messages and `now` in, `Output`s out.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    started: Instant,
    registry: Registry,
    /// The in pipe's identity on our in-ROUTER, and the worker pipe's on our worker-ROUTER.
    in_pipe_identity: Option<Bytes>,
    worker_pipe_identity: Option<Bytes>,
    requests: Requests,
    /// Stopping: new requests are answered SHUTTING_DOWN; those in flight may still finish.
    stopping: bool,
    /// No other broker shares the broker pipe: ENGAGED/UNENGAGED would reach only ourselves.
    alone: bool,
    outputs: VecDeque<Output>,
    /// Its counters, all services together.
    pub stats: BrokerStats,
    /// Per-service counters and latencies, for operators.
    pub service_stats: ServiceStats,
    /// NO_SERVICE answers are logged at most once per `logging::LOG_INTERVAL`.
    no_service_log: crate::logging::Throttled,
    /// Stray replies and ACKs likewise.
    stray_log: crate::logging::Throttled,
}

impl Broker {
    /// A broker with no workers or requests yet; its startup grace runs from `now`.
    pub fn new(config: BrokerConfig, now: Instant) -> Self {
        Self {
            registry: Registry::new(config.worker_lifetime, config.task_timeout),
            config,
            started: now,
            in_pipe_identity: None,
            worker_pipe_identity: None,
            requests: Requests::default(),
            stopping: false,
            alone: false,
            outputs: VecDeque::new(),
            stats: BrokerStats::default(),
            service_stats: ServiceStats::default(),
            no_service_log: crate::logging::Throttled::default(),
            stray_log: crate::logging::Throttled::default(),
        }
    }

    /// The in pipe's DEALER attached to our in-ROUTER with this identity.
    pub fn set_in_pipe(&mut self, identity: Bytes) {
        self.in_pipe_identity = Some(identity);
    }

    /// Whether the in pipe's identity is known (it attached, or a request came through it).
    pub fn in_pipe_known(&self) -> bool {
        self.in_pipe_identity.is_some()
    }

    /// The in pipe went away (a broker in another process): nothing can be answered until it is
    /// back, so the books are cleared without answers; clients retry, through another broker or
    /// this one once the in pipe is back, and a retry is then taken anew.
    pub fn in_pipe_lost(&mut self) {
        self.in_pipe_identity = None;
        let forgotten = self.requests.forget_all();
        log::warn!("the in pipe went away: {forgotten} requests forgotten (their clients retry)");
    }

    /// The worker pipe went away: dispatches that were on their way may be lost, so requests in
    /// flight at generation-1 workers are forgotten (a client's retry is then taken anew), and
    /// new ones wait for the pipe to come back.
    pub fn worker_pipe_lost(&mut self) {
        self.worker_pipe_identity = None;
        let forgotten = self.requests.forget_generation_1();
        log::warn!(
            "the worker pipe went away: {forgotten} requests in flight forgotten (their clients retry)"
        );
    }

    /// The worker pipe's DEALER attached to our worker-ROUTER with this identity.
    pub fn set_worker_pipe(&mut self, identity: Bytes, now: Instant) {
        self.worker_pipe_identity = Some(identity);
        self.retry_waiting(now, None);
    }

    /// The workers it knows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether another broker shares the broker pipe (`ezarch up` knows: the pipe is its own).
    /// Alone, the broker does not broadcast ENGAGED and UNENGAGED, which only another broker would
    /// read: two messages through the broker pipe per request saved. Heartbeats are broadcast
    /// always, so a broker that attaches learns the workers at once; task counts it misses
    /// meanwhile are deadlines anyway.
    pub fn set_alone(&mut self, alone: bool) {
        if alone != self.alone {
            log::info!("{}", if alone { "no other broker attached" } else { "another broker attached" });
        }
        self.alone = alone;
    }

    /// The requests taken and not answered yet.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// The next message to send, in order; `None` when all are out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// `[IN_PIPE_ID, CLIENT_ID, "", 0x02, REQ_ID, SERVICE, BODY...]` from the in-ROUTER.
    pub fn handle_client(&mut self, now: Instant, message: Message) {
        let valid = message.len() >= 6 && message[2].is_empty() && message[3] == wire::CLIENT;
        if !valid {
            return self.malformed("client request", &message);
        }
        if self.in_pipe_identity.is_none() {
            self.in_pipe_identity = Some(message[0].clone());
        }
        if message[5].starts_with(MANAGEMENT_PREFIX) {
            self.stats.management += 1;
            return self.outputs.push_back(Output::Management(message));
        }
        self.stats.requests += 1;
        if self.stopping {
            let slot = self.service_stats.request(&message[5]);
            return self.refuse(slot, &message[1], &message[4], Reason::ShuttingDown);
        }
        let key = self.requests.key(&message[1], &message[4]);
        match self.requests.lookup(key, &message[1], &message[4]) {
            Lookup::Absent => {
                let slot = self.service_stats.request(&message[5]);
                self.route_request(now, key, message, 0, Taken::new(now, slot))
            }
            // A retry of a request still waiting or in flight: its one answer is on its way.
            Lookup::Taken => self.stats.duplicates += 1,
            // Another request holds this key (2^-64): this one cannot be tracked; the client
            // may retry it.
            Lookup::Collision => {
                let slot = self.service_stats.request(&message[5]);
                self.refuse(slot, &message[1], &message[4], Reason::Busy)
            }
        }
    }

    /// From the worker-ROUTER: a heartbeat `[PIPE, WORKER, "", 0x01, 0x01, SERVICE]` or a reply
    /// `[PIPE, WORKER, "", 0x01, 0x02, CLIENT, "", REQ_ID, REPLY...]`.
    pub fn handle_worker(&mut self, now: Instant, mut message: Message) {
        if message.len() < 5 || !message[2].is_empty() || message[3] != wire::WORKER {
            return self.malformed("worker message", &message);
        }
        if self.worker_pipe_identity.is_none() {
            self.worker_pipe_identity = Some(message[0].clone());
        }
        match &message[4][..] {
            m if m == wire::HEARTBEAT && message.len() == 6 => {
                let (service, worker) = (message[5].clone(), message[1].clone());
                self.note_heartbeat(&service, &worker, Generation::One, now);
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
                let key = self.requests.key(&message[5], &message[7]);
                let (tracked, held) = match self.requests.finish_reply(key, &message[5], &message[7], &worker)
                {
                    Ok(found) => found,
                    Err(stray) => return self.refuse_reply(stray, "reply", &worker, now),
                };
                // The replier is one task lighter, if the request was still its own (a reply from
                // the worker it was sent to before a resend releases nothing: that worker's
                // tasks went when it was thought lost, and the new one's expires by deadline).
                if held {
                    self.registry.release(&worker);
                    if !self.alone {
                        let unengaged = Bytes::from_static(wire::STATE_UNENGAGED);
                        self.outputs.push_back(Output::Broadcast(vec![unengaged, worker]));
                    }
                }
                let latency = now.saturating_duration_since(tracked.taken.since);
                self.service_stats.reply(tracked.taken.slot, latency);
                // Answered now. Sent more than once, a second reply may follow.
                if tracked.attempts > 1 {
                    self.requests.remember_answered(key);
                }
                let Some(in_pipe_identity) = self.in_pipe_identity.clone() else {
                    return self.malformed("reply before the in pipe is known", &message);
                };
                // [PIPE, WORKER, "", 0x01, 0x02, CLIENT, "", REQ_ID, REPLY...]
                //   -> [IN_PIPE, CLIENT, "", REQ_ID, REPLY...], in place
                message.drain(1..5);
                message[0] = in_pipe_identity;
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
                self.note_heartbeat(&message[2], &message[3], Generation::One, now);
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

    /// When `handle_timeout` must next run: the earliest held request's deadline, an in-flight
    /// request's timeout, or a worker's or task's expiry. `None` when nothing is pending; the node
    /// sleeps until then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.next_deadline();
        [requests, self.registry.next_expiry()].into_iter().flatten().min()
    }

    /// Stopping, first step: new requests and those waiting for a worker are answered
    /// SHUTTING_DOWN; those in flight may still get their replies (see `finish_shutdown`).
    pub fn begin_shutdown(&mut self) {
        self.stopping = true;
        self.answer_waiting_shutting_down();
    }

    /// Every request waiting for a worker is answered SHUTTING_DOWN.
    fn answer_waiting_shutting_down(&mut self) {
        for service in self.requests.waiting_services() {
            while let Some((key, held)) = self.requests.next_waiting(&service) {
                self.answer_shutting_down(key, &held);
            }
        }
    }

    /// Stopping, last step: whatever is still in flight is answered SHUTTING_DOWN.
    pub fn finish_shutdown(&mut self) {
        self.answer_waiting_shutting_down();
        for (key, tracked) in self.requests.take_in_flight() {
            self.answer_shutting_down(key, &tracked);
        }
    }

    fn answer_shutting_down(&mut self, key: RequestKey, tracked: &requests::Tracked) {
        self.refuse_tracked(tracked, Reason::ShuttingDown);
        self.requests.remember_answered(key);
    }

    /// Answers `EZ_ERR reason` to a taken request.
    fn refuse_tracked(&mut self, tracked: &requests::Tracked, reason: Reason) {
        let kept = &tracked.kept;
        self.refuse(tracked.taken.slot, kept.client(), kept.req_id(), reason);
    }

    /// A worker's connection closed (the node sees it when the worker pipe, or the
    /// generation-2 port, shares its process): it is forgotten at once and what it had in
    /// flight is sent again or answered. Only a worker of that `generation`: a connection under
    /// the same identity on the other generation's socket is not that worker.
    pub fn worker_lost(&mut self, now: Instant, worker: &[u8], generation: Generation) {
        if self.registry.generation(worker) != Some(generation) {
            return;
        }
        let Some(service) = self.registry.remove(worker) else { return };
        self.stats.workers_left += 1;
        log::info!(
            "worker {} left service {}: its connection closed",
            printable(worker),
            printable(&service)
        );
        self.redispatch_from(now, worker);
    }

    /// Expires workers and tasks; answers NO_SERVICE for requests that waited long enough and
    /// TIMEOUT for those in flight too long; sends again what expired workers had in flight.
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
        for (worker, _) in &workers {
            self.redispatch_from(now, worker);
        }
        let Expired { waited, timed_out, not_acked } = self.requests.expire(now, self.config.task_timeout);
        for tracked in waited {
            if let Some(count) = self.no_service_log.note(now) {
                let service = tracked.kept.service();
                let since = match count {
                    1 => String::new(),
                    n => format!("; {} more since the last such line", n - 1),
                };
                log::info!(
                    "NO_SERVICE for {}: no live worker within {:?} ({} known, worker pipe {}){since}",
                    printable(service),
                    self.config.no_service_wait,
                    self.registry.live_workers(service, now),
                    if self.worker_pipe_identity.is_some() { "attached" } else { "away" }
                );
            }
            self.refuse_tracked(&tracked, Reason::NoService);
        }
        for (key, tracked) in timed_out {
            self.refuse_tracked(&tracked, Reason::Timeout);
            self.requests.remember_answered(key);
        }
        // A generation-2 worker that did not ACK in time: another worker (or the same) is asked.
        for (key, tracked) in not_acked {
            self.resend(now, key, tracked);
        }
    }

    /// Sends a taken request again, with its attempts so far.
    fn resend(&mut self, now: Instant, key: RequestKey, tracked: requests::Tracked) {
        let request = tracked.kept.to_request(self.in_pipe_identity.clone().unwrap_or_default());
        let taken = self.requests.taken_again(&tracked);
        self.route_request(now, key, request, tracked.attempts, taken);
    }

    /// Sends again, or answers WORKER_LOST, what `worker` had in flight.
    /// A generation-2 worker's requests are sent again only if it had not ACKed them; after
    /// its ACK its loss is the answer (as in the author's rewrite).
    fn redispatch_from(&mut self, now: Instant, worker: &[u8]) {
        for (key, tracked) in self.requests.take_worker(worker) {
            let resend = match tracked.state {
                requests::State::Dispatched { generation: Generation::Two, acked, .. } => !acked,
                _ => tracked.attempts <= self.config.max_redispatches,
            };
            if resend {
                self.resend(now, key, tracked);
            } else {
                self.refuse_tracked(&tracked, Reason::WorkerLost);
                self.requests.remember_answered(key);
            }
        }
    }

    /// `request` is `[IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]`, already checked,
    /// dispatched `attempts` times so far: to a live worker now, or held for one.
    fn route_request(
        &mut self,
        now: Instant,
        key: RequestKey,
        request: Message,
        attempts: u32,
        taken: Taken,
    ) {
        let service = request[5].clone();
        if let Some(worker) = self.ready_worker(&service, now) {
            return self.dispatch(now, key, worker, request, attempts + 1, taken);
        }
        if self.stopping {
            // A request sent again while stopping (its worker went away): no waiting now.
            self.refuse(taken.slot, &request[1], &request[4], Reason::ShuttingDown);
            self.requests.remember_answered(key);
            return;
        }
        let (count, bytes, here) = self.requests.waiting(&service);
        let kept = Kept::from_request(&request);
        let full = count >= self.config.max_waiting
            || bytes + kept.cost() > self.config.max_waiting_bytes
            || here >= self.config.max_waiting_per_service;
        if full {
            self.refuse(taken.slot, &request[1], &request[4], Reason::Busy);
            if attempts > 0 {
                self.requests.remember_answered(key);
            }
            return;
        }
        let deadline =
            after(now, self.config.no_service_wait).max(after(self.started, self.config.startup_grace));
        self.requests.wait(key, kept, attempts, taken, deadline);
    }

    /// A live worker of `service` we can reach now (a generation-1 one needs the worker pipe).
    fn ready_worker(&mut self, service: &[u8], now: Instant) -> Option<Bytes> {
        let worker = self.registry.pick(service, now)?;
        let reachable =
            self.worker_pipe_identity.is_some() || self.registry.generation(&worker) == Some(Generation::Two);
        reachable.then_some(worker)
    }

    /// Sends the request to `worker` (attempt `attempts` of a request `taken`), counted
    /// at once: to a generation-1 worker as `[WORKER_PIPE, WORKER, "", CLIENT, REQ_ID, BODY...]`
    /// (rewritten in place) with an ENGAGED broadcast; to a generation-2 worker as `[WORKER, "",
    /// TOKEN, BODY...]`, where TOKEN stands for (client, request id) until the reply.
    fn dispatch(
        &mut self,
        now: Instant,
        key: RequestKey,
        worker: Bytes,
        mut request: Message,
        attempts: u32,
        taken: Taken,
    ) {
        let generation = self.registry.generation(&worker).unwrap_or_default();
        let pipe = match (generation, self.worker_pipe_identity.clone()) {
            (Generation::One, None) => return,
            (_, pipe) => pipe.unwrap_or_default(),
        };
        let token = match generation {
            Generation::One => None,
            Generation::Two => match self.requests.mint_token() {
                Some(token) => Some(token),
                None => {
                    log::error!("the operating system's random source failed: request answered BUSY");
                    self.refuse(taken.slot, &request[1], &request[4], Reason::Busy);
                    return self.requests.remember_answered(key);
                }
            },
        };
        self.registry.engage(&worker, now);
        self.stats.dispatched += 1;
        if attempts > 1 {
            self.stats.redispatched += 1;
        }
        self.requests.dispatched(
            key,
            Kept::from_request(&request),
            attempts,
            taken,
            (&worker, generation, token),
            now,
        );
        if let Some(token) = token {
            let mut out = vec![worker, Bytes::new(), Bytes::copy_from_slice(token.bytes())];
            out.extend(request.drain(6..));
            return self.outputs.push_back(Output::ToGen2Worker(out));
        }
        // [IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]
        request.swap(3, 1); // [IN_PIPE, 0x02, "", CLIENT, REQ_ID, SERVICE, BODY...]
        request.remove(5); //  [IN_PIPE, 0x02, "", CLIENT, REQ_ID, BODY...]
        request[0] = pipe;
        request[1] = worker.clone();
        self.outputs.push_back(Output::ToWorker(request));
        if !self.alone {
            self.outputs.push_back(Output::Broadcast(vec![Bytes::from_static(wire::STATE_ENGAGED), worker]));
        }
    }

    /// From the generation-2 workers' ROUTER: a heartbeat `[WORKER, "", 0x01, 0x01, SERVICE]`,
    /// an ACK `[WORKER, "", 0x01, 0x03, TOKEN]` or a reply `[WORKER, "", 0x01, 0x02, TOKEN,
    /// "OK" | "ERR", RESULT...]`. Generation-2 workers are this broker's own: their heartbeats
    /// are not broadcast (other brokers cannot reach them).
    pub fn handle_gen2_worker(&mut self, now: Instant, message: Message) {
        if message.len() < 5 || !message[1].is_empty() || message[2] != wire::WORKER {
            return self.malformed("generation-2 worker message", &message);
        }
        match (&message[3][..], message.len()) {
            (m, 5) if m == wire::HEARTBEAT => {
                self.note_heartbeat(&message[4], &message[0], Generation::Two, now);
                self.retry_waiting(now, Some(&message[4]));
            }
            (m, 5) if m == wire::ACK => match Token::from_frame(&message[4]) {
                Some(token) => {
                    if let Err(stray) = self.requests.ack(&token, &message[0]) {
                        self.refuse_reply(stray, "ACK", &message[0], now);
                    }
                }
                None => self.malformed("generation-2 ACK", &message),
            },
            (m, 6..) if m == wire::REPLY => self.gen2_reply(now, message),
            _ => self.malformed("generation-2 worker message", &message),
        }
    }

    /// `[WORKER, "", 0x01, 0x02, TOKEN, STATUS, RESULT...]` -> the client gets
    /// `[IN_PIPE, CLIENT, "", REQ_ID, "OK" | "SERVICE_ERR", RESULT...]`.
    fn gen2_reply(&mut self, now: Instant, mut message: Message) {
        self.stats.replies += 1;
        let Some(token) = Token::from_frame(&message[4]) else {
            return self.malformed("generation-2 reply", &message);
        };
        let (key, tracked) = match self.requests.finish_token(&token, &message[0]) {
            Ok(found) => found,
            Err(stray) => return self.refuse_reply(stray, "reply", &message[0], now),
        };
        self.registry.release(&message[0]);
        if tracked.attempts > 1 {
            self.requests.remember_answered(key);
        }
        let latency = now.saturating_duration_since(tracked.taken.since);
        self.service_stats.reply(tracked.taken.slot, latency);
        let Some(in_pipe_identity) = self.in_pipe_identity.clone() else { return };
        if message[5] == wire::ERR {
            message[5] = Bytes::from_static(wire::SERVICE_ERR);
        }
        let mut answer = vec![
            in_pipe_identity,
            Bytes::copy_from_slice(tracked.kept.client()),
            Bytes::new(),
            Bytes::copy_from_slice(tracked.kept.req_id()),
        ];
        answer.extend(message.drain(5..));
        self.outputs.push_back(Output::ToClient(answer));
    }

    /// Sends held requests whose service now has a live worker: those of `only` (a heartbeat's
    /// service), or of every service (the worker pipe attached).
    fn retry_waiting(&mut self, now: Instant, only: Option<&[u8]>) {
        let services = match only {
            Some(service) if self.requests.waiting(service).2 > 0 => vec![Bytes::copy_from_slice(service)],
            Some(_) => return,
            None => self.requests.waiting_services(),
        };
        for service in services {
            while self.requests.waiting(&service).2 > 0 {
                let Some(worker) = self.ready_worker(&service, now) else { break };
                let Some((key, held)) = self.requests.next_waiting(&service) else { break };
                let request = held.kept.to_request(self.in_pipe_identity.clone().unwrap_or_default());
                self.dispatch(now, key, worker, request, held.attempts + 1, held.taken);
            }
        }
    }

    /// Answers `EZ_ERR REASON` to a request, counted by reason node-wide and for its service
    /// (at `slot`).
    fn refuse(&mut self, slot: Slot, client: &[u8], req_id: &[u8], reason: Reason) {
        *self.stats.error_mut(reason) += 1;
        self.service_stats.error(slot, reason);
        self.answer_to(client, req_id, reason.wire());
    }

    /// `[IN_PIPE, CLIENT, "", REQ_ID, "EZ_ERR", REASON]`.
    fn answer_to(&mut self, client: &[u8], req_id: &[u8], reason: &'static [u8]) {
        let Some(in_pipe_identity) = self.in_pipe_identity.clone() else { return };
        let err = Bytes::from_static(wire::EZ_ERR);
        self.outputs.push_back(Output::ToClient(vec![
            in_pipe_identity,
            Bytes::copy_from_slice(client),
            Bytes::new(),
            Bytes::copy_from_slice(req_id),
            err,
            Bytes::from_static(reason),
        ]));
    }

    fn note_heartbeat(&mut self, service: &[u8], worker: &[u8], generation: Generation, now: Instant) {
        match self.registry.heartbeat_of(service, worker, generation, now) {
            Heartbeat::Joined => {
                self.service_stats.track(service);
                log::info!("worker {} joined service {}", printable(worker), printable(service))
            }
            Heartbeat::Moved => {
                self.service_stats.track(service);
                log::debug!("worker {} moved to service {}", printable(worker), printable(service))
            }
            Heartbeat::Refused => self.stats.workers_refused += 1,
            Heartbeat::Renewed => {}
        }
    }

    /// A reply (`what`: or an ACK) that is not the answer to a request in flight at its sender,
    /// counted by why, never routed. Late ones are normal; unknown ones happen with several
    /// brokers or after a pipe went away; one from a worker its request was never sent to is
    /// an alarm, logged at most once per `LOG_INTERVAL`.
    fn refuse_reply(&mut self, stray: Stray, what: &str, worker: &[u8], now: Instant) {
        match (stray, what) {
            (Stray::Late, "reply") => self.stats.late_replies += 1,
            (Stray::Late, _) => log::debug!("late {what} from worker {}", printable(worker)),
            (Stray::Unknown, _) => {
                self.stats.replies_unknown += 1;
                log::debug!("{what} from worker {} names no request of ours", printable(worker));
            }
            (Stray::WrongWorker, _) => {
                match what {
                    "reply" => self.stats.replies_refused += 1,
                    _ => self.stats.acks_refused += 1,
                }
                if let Some(count) = self.stray_log.note(now) {
                    log::info!(
                        "{what} from worker {} dropped: its request was never sent to that worker \
                         ({count} such since the last line)",
                        printable(worker)
                    );
                }
            }
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
