//! Which workers serve which service, until when, and how many tasks each is engaged in.
//!
//! Task counts are deadlines, not bare integers: each engagement expires after the task timeout
//! unless a reply (UNENGAGED) releases it first, so a lost reply cannot pin a count forever and
//! no stray reply can push a count below zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;

/// Most engagements tracked per worker; beyond it the oldest is dropped (bounded memory).
const MAX_TASKS_PER_WORKER: usize = 100_000;

#[derive(Debug)]
struct Worker {
    service: Bytes,
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

#[derive(Debug)]
pub struct Registry {
    lifetime: Duration,
    task_timeout: Duration,
    workers: HashMap<Bytes, Worker>,
    services: HashMap<Bytes, Service>,
}

impl Registry {
    pub fn new(lifetime: Duration, task_timeout: Duration) -> Self {
        Self { lifetime, task_timeout, workers: HashMap::new(), services: HashMap::new() }
    }

    /// A heartbeat: the worker serves `service` until now + lifetime.
    pub fn heartbeat(&mut self, service: &Bytes, worker: &Bytes, now: Instant) {
        let expires = now + self.lifetime;
        if let Some(known) = self.workers.get_mut(worker) {
            known.expires = expires;
            if known.service == *service {
                return;
            }
            let old = std::mem::replace(&mut known.service, service.clone());
            self.unlist(&old, worker);
        } else {
            self.workers
                .insert(worker.clone(), Worker { service: service.clone(), expires, tasks: VecDeque::new() });
        }
        self.services.entry(service.clone()).or_default().workers.push(worker.clone());
    }

    /// One more task for `worker` (unknown workers are ignored).
    pub fn engage(&mut self, worker: &[u8], now: Instant) {
        if let Some(w) = self.workers.get_mut(worker) {
            if w.tasks.len() >= MAX_TASKS_PER_WORKER {
                w.tasks.pop_front();
            }
            w.tasks.push_back(now + self.task_timeout);
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

    /// Drops expired workers (their tasks go with them) and expired tasks; returns both counts.
    pub fn expire(&mut self, now: Instant) -> (u64, u64) {
        let mut tasks_expired = 0;
        let mut gone = Vec::new();
        for (id, worker) in &mut self.workers {
            while worker.tasks.front().is_some_and(|&d| d <= now) {
                worker.tasks.pop_front();
                tasks_expired += 1;
            }
            if worker.expires <= now {
                gone.push((id.clone(), worker.service.clone()));
            }
        }
        for (id, service) in &gone {
            self.workers.remove(id);
            self.unlist(service, id);
        }
        (gone.len() as u64, tasks_expired)
    }

    fn unlist(&mut self, service: &Bytes, worker: &Bytes) {
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
