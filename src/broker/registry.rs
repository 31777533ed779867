//! Which workers serve which service, until when, and how many tasks each is engaged in.
//!
//! Task counts are deadlines, not bare integers: each engagement expires after the task timeout
//! unless a reply (UNENGAGED) releases it first, so a lost reply cannot pin a count forever and
//! no stray reply can push a count below zero.
//!
//! The registry knows its earliest deadline (`next_expiry`), so the node sleeps until then
//! instead of sweeping on a tick. Worker and service names are copied out of the messages they
//! came in, so a registered worker does not keep a whole read buffer alive.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

use crate::time::after;

/// Most engagements tracked per worker; beyond it the oldest is dropped (bounded memory).
pub const MAX_TASKS_PER_WORKER: usize = 1_000;
/// Most workers known at once; heartbeats of more new ones are ignored until some expire.
pub const MAX_WORKERS: usize = 4_096;

/// Which protocol a worker speaks (PROTOCOL.md §2 and §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generation {
    /// Through the worker pipe: dispatches carry the client's address, replies too.
    #[default]
    One,
    /// Connected straight to this broker: dispatches carry a request id only, the worker ACKs.
    Two,
}

#[derive(Debug)]
struct Worker {
    service: Bytes,
    generation: Generation,
    expires: Instant,
    /// Deadlines of engaged tasks, oldest first.
    tasks: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct Service {
    workers: Vec<Bytes>,
    /// Where the next tie-break scan starts, so equal workers take turns.
    cursor: usize,
}

/// The known workers by service, with their expiries and task deadlines.
#[derive(Debug)]
pub struct Registry {
    lifetime: Duration,
    task_timeout: Duration,
    workers: HashMap<Bytes, Worker>,
    services: HashMap<Bytes, Service>,
    /// No worker or task expires before this (it may be early: heartbeats push expiries later).
    next_expiry: Option<Instant>,
    /// Heartbeats refused since the registry was last below `MAX_WORKERS` (for one log line).
    workers_refused: u64,
}

/// What a heartbeat changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// A worker not known before.
    Joined,
    /// A known worker, now for another service.
    Moved,
    /// A known worker: its expiry moved.
    Renewed,
    /// A new worker, ignored: `MAX_WORKERS` are known.
    Refused,
}

impl Registry {
    /// An empty registry: a worker lives `lifetime` past each heartbeat, a task `task_timeout`.
    pub fn new(lifetime: Duration, task_timeout: Duration) -> Self {
        Self {
            lifetime,
            task_timeout,
            workers: HashMap::new(),
            services: HashMap::new(),
            next_expiry: None,
            workers_refused: 0,
        }
    }

    /// A heartbeat: the worker serves `service` until now + lifetime.
    pub fn heartbeat(&mut self, service: &[u8], worker: &[u8], now: Instant) -> Heartbeat {
        self.heartbeat_of(service, worker, Generation::One, now)
    }

    /// A heartbeat from a worker speaking `generation`.
    pub fn heartbeat_of(
        &mut self,
        service: &[u8],
        worker: &[u8],
        generation: Generation,
        now: Instant,
    ) -> Heartbeat {
        let expires = after(now, self.lifetime);
        let full = self.workers.len() >= MAX_WORKERS;
        let (worker, change) = match self.workers.get_key_value_mut(worker) {
            Some((_, known)) if known.service == service => {
                known.expires = expires;
                known.generation = generation;
                return Heartbeat::Renewed;
            }
            Some((id, known)) => {
                known.expires = expires;
                known.generation = generation;
                let old = std::mem::replace(&mut known.service, Bytes::copy_from_slice(service));
                let id = id.clone();
                self.unlist(&old, &id);
                (id, Heartbeat::Moved)
            }
            None if full => {
                if self.workers_refused == 0 {
                    log::warn!("worker registry full ({MAX_WORKERS} workers): new workers are ignored until some expire");
                }
                self.workers_refused += 1;
                return Heartbeat::Refused;
            }
            None => {
                let id = Bytes::copy_from_slice(worker);
                let service = Bytes::copy_from_slice(service);
                let entry = Worker { service, generation, expires, tasks: VecDeque::new() };
                self.workers.insert(id.clone(), entry);
                self.note_deadline(expires);
                (id, Heartbeat::Joined)
            }
        };
        match self.services.get_mut(service) {
            Some(entry) => entry.workers.push(worker),
            None => {
                let entry = Service { workers: vec![worker], cursor: 0 };
                self.services.insert(Bytes::copy_from_slice(service), entry);
            }
        }
        change
    }

    /// The protocol `worker` speaks, if it is known.
    pub fn generation(&self, worker: &[u8]) -> Option<Generation> {
        self.workers.get(worker).map(|w| w.generation)
    }

    /// Forgets `worker` at once (its connection closed); returns its service if it was known.
    pub fn remove(&mut self, worker: &[u8]) -> Option<Bytes> {
        let (id, known) = self.workers.remove_entry(worker)?;
        self.unlist(&known.service, &id);
        Some(known.service)
    }

    /// One more task for `worker` (unknown workers are ignored).
    pub fn engage(&mut self, worker: &[u8], now: Instant) {
        if let Some(w) = self.workers.get_mut(worker) {
            if w.tasks.len() >= MAX_TASKS_PER_WORKER {
                w.tasks.pop_front();
            }
            let deadline = after(now, self.task_timeout);
            w.tasks.push_back(deadline);
            self.note_deadline(deadline);
        }
    }

    /// One task fewer for `worker`; never below zero.
    pub fn release(&mut self, worker: &[u8]) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.tasks.pop_front();
        }
    }

    /// The live worker of `service` with the fewest tasks; among equals, the next in turn.
    pub fn pick(&mut self, service: &[u8], now: Instant) -> Option<Bytes> {
        let entry = self.services.get_mut(service)?;
        let n = entry.workers.len();
        let mut best: Option<(usize, usize)> = None; // (tasks, index)
        for step in 0..n {
            let index = (entry.cursor + step) % n;
            let Some(worker) = self.workers.get(&entry.workers[index]) else { continue };
            if worker.expires <= now {
                continue;
            }
            if best.is_none_or(|(tasks, _)| worker.tasks.len() < tasks) {
                best = Some((worker.tasks.len(), index));
            }
        }
        let (_, index) = best?;
        entry.cursor = (index + 1) % n;
        Some(entry.workers[index].clone())
    }

    /// Tasks `worker` is engaged in now.
    pub fn tasks(&self, worker: &[u8]) -> usize {
        self.workers.get(worker).map_or(0, |w| w.tasks.len())
    }

    /// Live workers of `service`.
    pub fn live_workers(&self, service: &[u8], now: Instant) -> usize {
        self.services.get(service).map_or(0, |s| {
            s.workers.iter().filter(|w| self.workers.get(*w).is_some_and(|w| w.expires > now)).count()
        })
    }

    /// Every service some known worker serves.
    pub fn services(&self) -> impl Iterator<Item = &[u8]> {
        self.services.keys().map(|name| &name[..])
    }

    /// Known workers, live or not yet expired.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// No worker or task expires before this; `None` when nothing can expire.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Drops expired workers (their tasks go with them) and expired tasks. Returns the expired
    /// workers as (worker, service) and how many tasks expired.
    pub fn expire(&mut self, now: Instant) -> (Vec<(Bytes, Bytes)>, u64) {
        if self.next_expiry.is_none_or(|at| at > now) {
            return (Vec::new(), 0);
        }
        let mut tasks_expired = 0;
        let mut gone = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, worker) in &mut self.workers {
            while worker.tasks.front().is_some_and(|&d| d <= now) {
                worker.tasks.pop_front();
                tasks_expired += 1;
            }
            if worker.expires <= now {
                gone.push((id.clone(), worker.service.clone()));
                continue;
            }
            let soonest = worker.tasks.front().map_or(worker.expires, |&t| t.min(worker.expires));
            next = Some(next.map_or(soonest, |n| n.min(soonest)));
        }
        for (id, service) in &gone {
            self.workers.remove(id);
            self.unlist(service, id);
        }
        if self.workers.len() < MAX_WORKERS {
            self.workers_refused = 0;
        }
        self.next_expiry = next;
        (gone, tasks_expired)
    }

    fn note_deadline(&mut self, at: Instant) {
        self.next_expiry = Some(self.next_expiry.map_or(at, |n| n.min(at)));
    }

    fn unlist(&mut self, service: &[u8], worker: &[u8]) {
        if let Some(entry) = self.services.get_mut(service) {
            entry.workers.retain(|w| w != worker);
            if entry.workers.is_empty() {
                self.services.remove(service);
            } else {
                entry.cursor %= entry.workers.len();
            }
        }
    }
}
