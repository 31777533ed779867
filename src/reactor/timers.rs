//! Deadlines for the reactor: a min-heap with lazy cancellation. Each entry carries the deadline
//! its owner registered; an owner that re-registers simply makes its older entries stale.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerOwner {
    /// A connection's session timers (handshake, heartbeat), by I/O slab key.
    Connection(usize),
    /// A connector's reconnect attempt, by connector slab key.
    Reconnect(usize),
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerOwner)>>,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, owner: TimerOwner) {
        self.heap.push(Reverse((at, owner)));
    }

    /// The earliest registered deadline (possibly stale).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops one entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerOwner)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }
}
