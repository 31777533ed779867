//! Every request this broker has taken and not answered yet, waiting for a worker or in flight
//! at one, keyed by (client, request id): what lets the broker give each request exactly one
//! answer whatever workers do.
//!
//! - Waiting requests sit in a FIFO per service. In-flight ones are only in the table: taking and
//!   finishing one is a table insert and remove, nothing more. What needs them by worker or by
//!   age (a lost worker, timeouts) scans the table: a lost worker at once, timeouts every
//!   `SWEEP` while requests are in flight.
//! - A request whose key is already here is a duplicate (a client's retry): not taken again.
//! - Keys the broker answered itself or dispatched more than once are remembered for a while
//!   (`RECENT_ANSWERS`), so a late or second reply for them is dropped, not forwarded.
//!
//! - A reply finishes a request only when it comes from the worker the request was dispatched
//!   to; a generation-2 worker names its request by a `Token`, 128 bits from the operating
//!   system's random source, given to that worker alone. Anything else is a stray.
//!
//! A plain data structure: the broker decides what to do; this keeps the books. Keys are 64-bit
//! hashes (seeded per process), so taking and finishing a request allocates nothing for its key;
//! the kept request itself is compared to tell a rare collision (2^-64 per pair) from a match.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet};

use super::kept::Kept;
use super::registry::Generation;
use super::service_stats::Slot;

/// When a request was taken and where its service is counted, and the worker it was sent to
/// before its current dispatch: what it carries from one dispatch to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// It is answered TIMEOUT `timeout` after this at the latest.
    pub since: Instant,
    /// Where its service is counted.
    pub slot: Slot,
    /// The generation-1 worker (by its id's hash) it was dispatched to before it was sent again:
    /// that worker did get it, so its reply is still an answer (the first reply wins).
    pub previous: Option<WorkerHash>,
}

impl Taken {
    /// A request taken at `since`, counted at `slot`, not dispatched yet.
    pub fn new(since: Instant, slot: Slot) -> Self {
        Self { since, slot, previous: None }
    }
}

/// How many answered keys are remembered to drop late replies.
pub const RECENT_ANSWERS: usize = 65_536;
/// How often in-flight requests are checked for their timeout while there are any (so a
/// timeout is answered up to this late).
pub const SWEEP: Duration = Duration::from_millis(100);

/// A request's identity: a seeded 64-bit hash of its client (routing id) and request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(u64);

/// What a generation-2 worker is given in place of a request id: 16 bytes from the operating
/// system's random source, unique to one dispatch, so no worker can name another's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; 16]);

impl Token {
    /// The token's bytes, as the worker gets them.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The token a generation-2 worker's ACK or reply names; `None` unless 16 bytes.
    pub fn from_frame(frame: &[u8]) -> Option<Self> {
        Some(Self(frame.try_into().ok()?))
    }
}

/// Why a reply (or an ACK) is not the answer to a request in flight at its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stray {
    /// Its request was answered already (or the token was ours, and its request is done).
    Late,
    /// No request this broker took: another broker's, one forgotten (its pipe went away), or a
    /// token nobody was given.
    Unknown,
    /// Its request is in flight at another worker, or waiting: this worker was never sent it.
    WrongWorker,
}

/// Hashes (client, request id) pairs, and worker ids, with a random per-instance seed, so peers
/// cannot aim for collisions.
#[derive(Debug, Default, Clone)]
pub struct KeyHasher(DefaultHashBuilder);

impl KeyHasher {
    /// The key of (client, request id).
    pub fn key(&self, client: &[u8], req_id: &[u8]) -> RequestKey {
        RequestKey(self.0.hash_one((client, req_id)))
    }

    fn worker(&self, worker: &[u8]) -> WorkerHash {
        WorkerHash::new(self.0.hash_one(worker)).unwrap_or(WorkerHash::MIN)
    }
}

/// What the books say of a request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No request with this key is taken.
    Absent,
    /// This very request (same client and request id) is taken: a retry.
    Taken,
    /// Another request has the same key (2^-64): this one cannot be tracked.
    Collision,
}

/// Where a taken request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No worker could take it yet; answered NO_SERVICE at `deadline`.
    Waiting { deadline: Instant },
    /// Sent at `at` to the worker whose id hashes to `worker`, which speaks `generation`;
    /// `acked` once a generation-2 worker said it took it (generation 1 has no ACK: always
    /// true); `dispatch`: which of the books' dispatches this is (a generation-2 token names it).
    Dispatched { worker: WorkerHash, at: Instant, generation: Generation, acked: bool, dispatch: u32 },
}

/// A worker id's seeded 64-bit hash (never zero), kept for each dispatch instead of the id.
pub type WorkerHash = std::num::NonZeroU64;

/// One taken request.
#[derive(Debug)]
pub struct Tracked {
    /// Its client, request id, service and body, for a redispatch or an answer.
    pub kept: Kept,
    /// Dispatches so far.
    pub attempts: u32,
    /// When it was taken (it is answered TIMEOUT `timeout` after that at the latest), and
    /// where its service is counted.
    pub taken: Taken,
    pub state: State,
}

/// The books: every request taken and not answered yet, and recently answered keys.
#[derive(Debug, Default)]
pub struct Requests {
    hasher: KeyHasher,
    tracked: HashMap<RequestKey, Tracked>,
    waiting: HashMap<Bytes, VecDeque<RequestKey>>,
    waiting_count: usize,
    /// What waiting requests hold, by `Kept::cost`.
    waiting_bytes: usize,
    /// When in-flight requests were last checked (see `SWEEP`); `None` with none in flight.
    last_sweep: Option<Instant>,
    answered: HashSet<RequestKey>,
    answered_order: VecDeque<RequestKey>,
    /// Every generation-2 token in flight, and the last `RECENT_ANSWERS` retired ones (so a
    /// late reply is told from a forged one), with their requests' keys and dispatches.
    tokens: HashMap<Token, (RequestKey, u32)>,
    /// The tokens above, oldest first.
    token_order: VecDeque<Token>,
    /// The last dispatch's number.
    dispatches: u32,
    random: crate::random::OsRandom,
}

impl Requests {
    /// The key of (client, request id).
    pub fn key(&self, client: &[u8], req_id: &[u8]) -> RequestKey {
        self.hasher.key(client, req_id)
    }

    /// Whether the request (client, request id) with `key` is taken.
    pub fn lookup(&self, key: RequestKey, client: &[u8], req_id: &[u8]) -> Lookup {
        match self.tracked.get(&key) {
            None => Lookup::Absent,
            Some(t) if t.kept.is(client, req_id) => Lookup::Taken,
            Some(_) => Lookup::Collision,
        }
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

    /// Requests dispatched and not answered, per service (walks every one: for snapshots).
    pub fn in_flight_by_service(&self) -> HashMap<&[u8], usize> {
        let mut counts = HashMap::new();
        for tracked in self.tracked.values() {
            if matches!(tracked.state, State::Dispatched { .. }) {
                *counts.entry(tracked.kept.service()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// A new token for a generation-2 dispatch; `None` if the operating system's random source
    /// failed.
    pub fn mint_token(&mut self) -> Option<Token> {
        self.random.take().map(Token)
    }

    /// Tracks a request taken at `since` as dispatched to `worker` (attempt `attempts`); a
    /// generation-2 one under `token`.
    pub fn dispatched(
        &mut self,
        key: RequestKey,
        kept: Kept,
        attempts: u32,
        taken: Taken,
        to: (&[u8], Generation, Option<Token>),
        now: Instant,
    ) {
        self.last_sweep.get_or_insert(now);
        let (worker, generation, token) = to;
        let acked = generation == Generation::One;
        let worker = self.hasher.worker(worker);
        self.dispatches = self.dispatches.wrapping_add(1);
        let dispatch = self.dispatches;
        if let Some(token) = token {
            self.remember_token(token, key, dispatch);
        }
        let state = State::Dispatched { worker, at: now, generation, acked, dispatch };
        self.tracked.insert(key, Tracked { kept, attempts, taken, state });
    }

    /// The request in flight at `worker` under `token`, if there is one.
    fn by_token(&self, token: &Token, worker: &[u8]) -> Result<RequestKey, Stray> {
        let Some(&(key, dispatch)) = self.tokens.get(token) else { return Err(Stray::Unknown) };
        match self.tracked.get(&key).map(|t| &t.state) {
            Some(State::Dispatched { dispatch: d, worker: w, .. }) if *d == dispatch => {
                if *w == self.hasher.worker(worker) {
                    Ok(key)
                } else {
                    Err(Stray::WrongWorker)
                }
            }
            _ => Err(Stray::Late), // a token we gave, whose request is done
        }
    }

    /// A generation-2 worker says it took the request it knows as `token`: noted when that
    /// request is in flight at that very worker.
    pub fn ack(&mut self, token: &Token, worker: &[u8]) -> Result<(), Stray> {
        let key = self.by_token(token, worker)?;
        if let Some(Tracked { state: State::Dispatched { acked, .. }, .. }) = self.tracked.get_mut(&key) {
            *acked = true;
        }
        Ok(())
    }

    /// A generation-2 worker's reply under `token`: its request is finished if it is in flight
    /// at that very worker.
    pub fn finish_token(&mut self, token: &Token, worker: &[u8]) -> Result<(RequestKey, Tracked), Stray> {
        let key = self.by_token(token, worker)?;
        Ok((key, self.finish(key).ok_or(Stray::Unknown)?))
    }

    /// What a request carries to its next dispatch: its `Taken`, with the generation-1 worker it
    /// is at now as the previous one.
    pub fn taken_again(&self, tracked: &Tracked) -> Taken {
        let previous = match tracked.state {
            State::Dispatched { worker, generation: Generation::One, .. } => Some(worker),
            _ => tracked.taken.previous,
        };
        Taken { previous, ..tracked.taken }
    }

    /// Tracks a request taken at `since` as waiting for a worker of its service until `deadline`.
    pub fn wait(&mut self, key: RequestKey, kept: Kept, attempts: u32, taken: Taken, deadline: Instant) {
        self.waiting_count += 1;
        self.waiting_bytes += kept.cost();
        match self.waiting.get_mut(kept.service()) {
            Some(queue) => queue.push_back(key),
            None => {
                self.waiting.insert(Bytes::copy_from_slice(kept.service()), VecDeque::from([key]));
            }
        }
        let state = State::Waiting { deadline };
        self.tracked.insert(key, Tracked { kept, attempts, taken, state });
    }

    /// A generation-1 reply from `worker` for (client, request id), whose key is `key`: its
    /// request is finished if it is in flight at that very worker, or was before it was sent
    /// again (the first reply wins); with whether it was in flight at `worker` (not only before).
    pub fn finish_reply(
        &mut self,
        key: RequestKey,
        client: &[u8],
        req_id: &[u8],
        worker: &[u8],
    ) -> Result<(Tracked, bool), Stray> {
        let worker = self.hasher.worker(worker);
        match self.tracked.get(&key) {
            Some(t) if t.kept.is(client, req_id) => {
                let holds = matches!(t.state,
                    State::Dispatched { worker: w, generation: Generation::One, .. } if w == worker);
                if holds || t.taken.previous == Some(worker) {
                    self.finish(key).map(|t| (t, holds)).ok_or(Stray::Unknown)
                } else {
                    Err(Stray::WrongWorker) // a worker it was never sent to
                }
            }
            Some(_) => Err(Stray::Unknown), // another request with the same key (2^-64)
            None if self.was_answered(&key) => Err(Stray::Late),
            None => Err(Stray::Unknown),
        }
    }

    /// Stops tracking `key`; returns what was tracked.
    fn finish(&mut self, key: RequestKey) -> Option<Tracked> {
        let tracked = self.tracked.remove(&key)?;
        self.unlist(key, &tracked);
        Some(tracked)
    }

    /// Takes every request `pred` picks out of the books, in dispatch order.
    fn extract(&mut self, pred: impl Fn(&Tracked) -> bool) -> Vec<(RequestKey, Tracked)> {
        let mut taken: Vec<_> = self.tracked.extract_if(|_, t| pred(t)).collect();
        taken.sort_by_key(|(_, t)| dispatched_at(t));
        taken
    }

    /// A request left the books: its token, if it had one, is remembered as retired for a while.
    /// Notes a new token; beyond `RECENT_ANSWERS` the oldest is forgotten, unless its dispatch
    /// is still in flight (then it goes to the back of the line).
    fn remember_token(&mut self, token: Token, key: RequestKey, dispatch: u32) {
        self.tokens.insert(token, (key, dispatch));
        self.token_order.push_back(token);
        if self.token_order.len() <= RECENT_ANSWERS {
            return;
        }
        let Some(old) = self.token_order.pop_front() else { return };
        let in_flight = self.tokens.get(&old).is_some_and(|&(key, dispatch)| {
            matches!(self.tracked.get(&key).map(|t| &t.state), Some(State::Dispatched { dispatch: d, .. }) if *d == dispatch)
        });
        if in_flight {
            self.token_order.push_back(old);
        } else {
            self.tokens.remove(&old);
        }
    }

    /// Takes a waiting request's `key` out of its service's FIFO.
    fn unlist(&mut self, key: RequestKey, tracked: &Tracked) {
        if let State::Waiting { .. } = tracked.state {
            let service = tracked.kept.service();
            if let Some(queue) = self.waiting.get_mut(service) {
                if queue.front() == Some(&key) {
                    queue.pop_front();
                } else if let Some(at) = queue.iter().position(|k| *k == key) {
                    queue.remove(at);
                }
                if queue.is_empty() {
                    self.waiting.remove(service);
                }
            }
            self.waiting_count -= 1;
            self.waiting_bytes -= tracked.kept.cost();
        }
    }

    /// The oldest waiting request of `service`, taken out of the books.
    pub fn next_waiting(&mut self, service: &[u8]) -> Option<(RequestKey, Tracked)> {
        let key = *self.waiting.get(service)?.front()?;
        Some((key, self.finish(key)?))
    }

    /// Services with requests waiting.
    pub fn waiting_services(&self) -> Vec<Bytes> {
        self.waiting.keys().cloned().collect()
    }

    /// Every request in flight at `worker`, in dispatch order, taken out of the books.
    pub fn take_worker(&mut self, worker: &[u8]) -> Vec<(RequestKey, Tracked)> {
        let worker = self.hasher.worker(worker);
        self.extract(|t| matches!(t.state, State::Dispatched { worker: w, .. } if w == worker))
    }

    /// Forgets every request, waiting and in flight, without an answer (the broker can no
    /// longer answer them or vouch for them; their clients retry elsewhere).
    pub fn forget_all(&mut self) -> usize {
        let count = self.extract(|_| true).len();
        self.waiting.clear();
        (self.waiting_count, self.waiting_bytes, self.last_sweep) = (0, 0, None);
        count
    }

    /// Forgets the requests in flight at generation-1 workers without an answer.
    pub fn forget_generation_1(&mut self) -> usize {
        self.extract(|t| matches!(t.state, State::Dispatched { generation: Generation::One, .. })).len()
    }

    /// Every request in flight, in dispatch order, taken out of the books.
    pub fn take_in_flight(&mut self) -> Vec<(RequestKey, Tracked)> {
        let taken = self.extract(|t| dispatched_at(t).is_some());
        self.last_sweep = None;
        taken
    }

    /// Remembers `key` as answered, so a late reply for it is recognised.
    pub fn remember_answered(&mut self, key: RequestKey) {
        if !self.answered.insert(key) {
            return;
        }
        self.answered_order.push_back(key);
        if self.answered_order.len() > RECENT_ANSWERS {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
    }

    /// Whether `key` is among the last `RECENT_ANSWERS` answered keys remembered.
    pub fn was_answered(&self, key: &RequestKey) -> bool {
        self.answered.contains(key)
    }

    /// The earliest moment something here is due: a waiting request's deadline, or the next
    /// check of the in-flight ones.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self
            .waiting
            .values()
            .filter_map(|q| q.front())
            .filter_map(|key| match self.tracked.get(key)?.state {
                State::Waiting { deadline } => Some(deadline),
                State::Dispatched { .. } => None,
            })
            .min();
        let sweep = self.last_sweep.map(|at| crate::time::after(at, SWEEP));
        [waiting, sweep].into_iter().flatten().min()
    }

    /// Takes out waiting requests past their deadline, and (every `SWEEP`) in-flight ones taken
    /// `timeout` ago or more, oldest first, and generation-2 ones not ACKed within `ack_wait`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Expired {
        let mut waited = Vec::new();
        for service in self.waiting_services() {
            while let Some(key) = self.waiting.get(&service).and_then(|q| q.front()).copied() {
                let due = matches!(self.tracked.get(&key).map(|t| &t.state),
                    Some(State::Waiting { deadline }) if *deadline <= now);
                if !due {
                    break;
                }
                waited.extend(self.finish(key));
            }
        }
        if self.last_sweep.is_none_or(|at| now.saturating_duration_since(at) < SWEEP) {
            return Expired { waited, ..Expired::default() };
        }
        let timed_out = self.extract(|t| {
            dispatched_at(t).is_some() && now.saturating_duration_since(t.taken.since) >= timeout
        });
        let not_acked = self.extract(|t| match t.state {
            State::Dispatched { at, acked: false, .. } => {
                now.saturating_duration_since(at) >= ack_wait(t.attempts)
            }
            _ => false,
        });
        self.last_sweep = (self.in_flight() > 0).then_some(now);
        Expired { waited, timed_out, not_acked }
    }
}

/// What `Requests::expire` took out.
#[derive(Debug, Default)]
pub struct Expired {
    /// Waited for a worker past their deadline.
    pub waited: Vec<Tracked>,
    /// In flight (or taken) for the whole timeout.
    pub timed_out: Vec<(RequestKey, Tracked)>,
    /// Sent to a generation-2 worker that did not ACK in time.
    pub not_acked: Vec<(RequestKey, Tracked)>,
}

/// How long a generation-2 worker has to ACK the `attempts`-th dispatch of a request: 1 s,
/// doubling with each resend, at most 5 s (the author's rewrite: MIN/MAX_REQ_TIMEOUT).
pub fn ack_wait(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(3);
    (Duration::from_secs(1) * (1 << doublings)).min(Duration::from_secs(5))
}

/// When `tracked` was dispatched, if it is in flight.
fn dispatched_at(tracked: &Tracked) -> Option<Instant> {
    match tracked.state {
        State::Dispatched { at, .. } => Some(at),
        State::Waiting { .. } => None,
    }
}
