//! Every request this broker has taken and not answered yet, waiting for a worker or in flight
//! at one, keyed by (client, request id): what lets the broker give each request exactly one
//! answer whatever workers do.
//!
//! - Waiting requests sit in a FIFO per service, in flight ones in a FIFO per worker in dispatch
//!   order (a worker answers in order, so a reply is nearly always at the front).
//! - A request whose key is already here is a duplicate (a client's retry): not taken again.
//! - Keys the broker answered itself or dispatched more than once are remembered for a while
//!   (`RECENT_ANSWERS`), so a late or second reply for them is dropped, not forwarded.
//!
//! A plain data structure: the broker decides what to do; this keeps the books.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::{HashMap, HashSet};

use crate::socket::{compact, message_cost, Message};

/// How many answered keys are remembered to drop late replies.
pub const RECENT_ANSWERS: usize = 65_536;
/// A request in flight this long has its frames copied out of the read buffers they arrived in.
const COMPACT_AFTER: Duration = Duration::from_millis(100);

/// A request's identity: its client (routing id, at most 255 bytes) and its request id, in one
/// buffer of its own (no view of a read buffer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey(Bytes);

impl RequestKey {
    /// `None` for a client id longer than 255 bytes, which no ZMTP routing id is.
    pub fn new(client: &[u8], req_id: &[u8]) -> Option<Self> {
        let len = u8::try_from(client.len()).ok()?;
        let mut key = BytesMut::with_capacity(1 + client.len() + req_id.len());
        key.put_u8(len);
        key.put_slice(client);
        key.put_slice(req_id);
        Some(Self(key.freeze()))
    }
}

/// Where a taken request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No worker could take it yet; answered NO_SERVICE at `deadline`.
    Waiting { deadline: Instant },
    /// Sent to `worker` at `at`.
    Dispatched { worker: Bytes, at: Instant },
}

/// One taken request.
#[derive(Debug)]
pub struct Tracked {
    /// `[IN_PIPE, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]`, as received (compacted once it
    /// has waited): what a redispatch sends again.
    pub request: Message,
    /// Dispatches so far.
    pub attempts: u32,
    pub state: State,
    compacted: bool,
}

#[derive(Debug, Default)]
pub struct Requests {
    tracked: HashMap<RequestKey, Tracked>,
    waiting: HashMap<Bytes, VecDeque<RequestKey>>,
    waiting_count: usize,
    /// What waiting requests cost, by `socket::message_cost`.
    waiting_bytes: usize,
    in_flight: HashMap<Bytes, VecDeque<RequestKey>>,
    /// No in-flight request is older than this (it may be early).
    oldest_dispatch: Option<Instant>,
    answered: HashSet<RequestKey>,
    answered_order: VecDeque<RequestKey>,
}

impl Requests {
    pub fn contains(&self, key: &RequestKey) -> bool {
        self.tracked.contains_key(key)
    }

    /// Requests waiting for a worker: in all, in bytes, and for `service`.
    pub fn waiting(&self, service: &[u8]) -> (usize, usize, usize) {
        let here = self.waiting.get(service).map_or(0, VecDeque::len);
        (self.waiting_count, self.waiting_bytes, here)
    }

    /// Requests dispatched and not answered.
    pub fn in_flight(&self) -> usize {
        self.tracked.len() - self.waiting_count
    }

    /// Tracks `request` as dispatched to `worker` (attempt `attempts`).
    pub fn dispatched(
        &mut self,
        key: RequestKey,
        request: Message,
        attempts: u32,
        worker: Bytes,
        now: Instant,
    ) {
        self.in_flight.entry(worker.clone()).or_default().push_back(key.clone());
        self.oldest_dispatch.get_or_insert(now);
        let state = State::Dispatched { worker, at: now };
        self.tracked.insert(key, Tracked { request, attempts, state, compacted: false });
    }

    /// Tracks `request` as waiting for a worker of `service` until `deadline`.
    pub fn wait(
        &mut self,
        key: RequestKey,
        service: &[u8],
        mut request: Message,
        attempts: u32,
        deadline: Instant,
    ) {
        compact(&mut request); // it waits: it must not pin a read buffer
        self.waiting_count += 1;
        self.waiting_bytes += message_cost(&request);
        match self.waiting.get_mut(service) {
            Some(queue) => queue.push_back(key.clone()),
            None => {
                self.waiting.insert(Bytes::copy_from_slice(service), VecDeque::from([key.clone()]));
            }
        }
        let state = State::Waiting { deadline };
        self.tracked.insert(key, Tracked { request, attempts, state, compacted: true });
    }

    /// Stops tracking `key` (answered); returns what was tracked.
    pub fn finish(&mut self, key: &RequestKey) -> Option<Tracked> {
        let tracked = self.tracked.remove(key)?;
        match &tracked.state {
            State::Dispatched { worker, .. } => remove_key(&mut self.in_flight, worker, key),
            State::Waiting { .. } => {
                let service = &tracked.request[5];
                remove_key(&mut self.waiting, service, key);
                self.waiting_count -= 1;
                self.waiting_bytes -= message_cost(&tracked.request);
            }
        }
        Some(tracked)
    }

    /// The oldest waiting request of `service`, taken out of the books.
    pub fn next_waiting(&mut self, service: &[u8]) -> Option<(RequestKey, Tracked)> {
        let key = self.waiting.get(service)?.front()?.clone();
        let tracked = self.finish(&key)?;
        Some((key, tracked))
    }

    /// Services with requests waiting.
    pub fn waiting_services(&self) -> Vec<Bytes> {
        self.waiting.keys().cloned().collect()
    }

    /// Every request in flight at `worker`, in dispatch order, taken out of the books.
    pub fn take_worker(&mut self, worker: &[u8]) -> Vec<(RequestKey, Tracked)> {
        let keys = self.in_flight.remove(worker).unwrap_or_default();
        keys.into_iter().filter_map(|key| self.tracked.remove(&key).map(|t| (key, t))).collect()
    }

    /// Remembers `key` as answered, so a late reply for it is recognised.
    pub fn remember_answered(&mut self, key: RequestKey) {
        if !self.answered.insert(key.clone()) {
            return;
        }
        self.answered_order.push_back(key);
        if self.answered_order.len() > RECENT_ANSWERS {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
    }

    pub fn was_answered(&self, key: &RequestKey) -> bool {
        self.answered.contains(key)
    }

    /// The earliest moment something here is due: a waiting request's deadline, an in-flight
    /// request's `timeout`, or the compaction of one in flight for `COMPACT_AFTER`.
    pub fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        let waiting = self
            .waiting
            .values()
            .filter_map(|q| q.front())
            .filter_map(|key| match self.tracked.get(key)?.state {
                State::Waiting { deadline } => Some(deadline),
                State::Dispatched { .. } => None,
            })
            .min();
        let in_flight = self.oldest_dispatch.map(|at| crate::time::after(at, timeout.min(COMPACT_AFTER)));
        [waiting, in_flight].into_iter().flatten().min()
    }

    /// Takes out waiting requests past their deadline, and in-flight ones dispatched `timeout`
    /// ago or more; compacts in-flight ones older than `COMPACT_AFTER`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> (Vec<Tracked>, Vec<(RequestKey, Tracked)>) {
        let mut waited = Vec::new();
        for service in self.waiting_services() {
            while let Some(key) = self.waiting.get(&service).and_then(|q| q.front()).cloned() {
                let due = matches!(self.tracked.get(&key).map(|t| &t.state), Some(State::Waiting { deadline }) if *deadline <= now);
                if !due {
                    break;
                }
                waited.extend(self.finish(&key));
            }
        }
        let mut timed_out = Vec::new();
        let mut oldest: Option<Instant> = None;
        let workers: Vec<Bytes> = self.in_flight.keys().cloned().collect();
        for worker in workers {
            let Some(queue) = self.in_flight.get_mut(&worker) else { continue };
            while let Some(key) = queue.front() {
                match self.tracked.get(key).map(|t| &t.state) {
                    Some(State::Dispatched { at, .. }) if now.saturating_duration_since(*at) < timeout => {
                        break
                    }
                    Some(State::Waiting { .. }) => break,
                    _ => {}
                }
                // Due (or no longer tracked): out of the queue and the books.
                let Some(key) = queue.pop_front() else { break };
                timed_out.extend(self.tracked.remove(&key).map(|t| (key, t)));
            }
            compact_old(queue, &mut self.tracked, now);
            if let Some(State::Dispatched { at, .. }) =
                queue.front().and_then(|k| self.tracked.get(k)).map(|t| &t.state)
            {
                oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
            }
            if queue.is_empty() {
                self.in_flight.remove(&worker);
            }
        }
        self.oldest_dispatch = oldest;
        (waited, timed_out)
    }
}

/// Compacts the requests of a worker's queue in flight for `COMPACT_AFTER`, once each.
fn compact_old(queue: &VecDeque<RequestKey>, tracked: &mut HashMap<RequestKey, Tracked>, now: Instant) {
    for key in queue {
        let Some(t) = tracked.get_mut(key) else { continue };
        let State::Dispatched { at, .. } = t.state else { continue };
        if now.saturating_duration_since(at) < COMPACT_AFTER {
            return;
        }
        if !t.compacted {
            compact(&mut t.request);
            t.compacted = true;
        }
    }
}

/// Removes `key` from the FIFO of `owner` (nearly always its front); drops an emptied FIFO.
fn remove_key(queues: &mut HashMap<Bytes, VecDeque<RequestKey>>, owner: &[u8], key: &RequestKey) {
    let Some(queue) = queues.get_mut(owner) else { return };
    if queue.front() == Some(key) {
        queue.pop_front();
    } else if let Some(at) = queue.iter().position(|k| k == key) {
        queue.remove(at);
    }
    if queue.is_empty() {
        queues.remove(owner);
    }
}
