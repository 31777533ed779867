//! Deadlines for the reactor: one slot per owner. Re-arming an owner moves its one entry, so
//! no traffic pattern (a PING flood re-arming a connection's TTL, say) can make the set grow:
//! it holds at most one entry per connection and per connector.

use std::collections::BTreeSet;
use std::time::Instant;

use hashbrown::HashMap;

use super::ids::{ConnId, ConnectorId};

/// What a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerOwner {
    /// A connection's session timers (handshake, heartbeat), by I/O slab key.
    Connection(ConnId),
    /// A connector's reconnect attempt, by connector slab key.
    Reconnect(ConnectorId),
}

#[derive(Debug, Default)]
pub struct Timers {
    /// Every armed deadline, soonest first.
    due: BTreeSet<(Instant, TimerOwner)>,
    /// Each owner's one deadline.
    slots: HashMap<TimerOwner, Instant>,
}

impl Timers {
    /// Arms `owner` for `at`, replacing its previous deadline; `None` disarms it.
    pub fn set(&mut self, owner: TimerOwner, at: Option<Instant>) {
        let previous = match at {
            Some(at) => self.slots.insert(owner, at),
            None => self.slots.remove(&owner),
        };
        if previous == at {
            return;
        }
        if let Some(previous) = previous {
            self.due.remove(&(previous, owner));
        }
        if let Some(at) = at {
            self.due.insert((at, owner));
        }
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Disarms and returns one owner due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerOwner> {
        if self.next()? > now {
            return None;
        }
        let (_, owner) = self.due.pop_first()?;
        self.slots.remove(&owner);
        Some(owner)
    }

    /// Armed deadlines: one per owner at most.
    pub fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn re_arming_moves_the_one_entry_an_owner_has() {
        let start = Instant::now();
        let mut timers = Timers::default();
        let conn = TimerOwner::Connection(ConnId(7));
        // A PING flood: every PING re-arms the connection's TTL, later and earlier by turns.
        for i in 0..5_000u64 {
            let ttl = Duration::from_secs(6_553 - (i % 3_000));
            timers.set(conn, Some(start + Duration::from_millis(i) + ttl));
        }
        assert_eq!(timers.len(), 1);
        timers.set(TimerOwner::Reconnect(ConnectorId(7)), Some(start + Duration::from_millis(5)));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next(), Some(start + Duration::from_millis(5)));
        assert_eq!(timers.pop_due(start), None);
        assert_eq!(
            timers.pop_due(start + Duration::from_millis(5)),
            Some(TimerOwner::Reconnect(ConnectorId(7)))
        );
        timers.set(conn, None);
        assert_eq!((timers.len(), timers.next()), (0, None));
    }

    #[test]
    fn owners_due_together_all_fire_once() {
        let at = Instant::now();
        let mut timers = Timers::default();
        for key in 0..3 {
            timers.set(TimerOwner::Connection(ConnId(key)), Some(at));
            timers.set(TimerOwner::Connection(ConnId(key)), Some(at)); // the same deadline again: no-op
        }
        let fired: Vec<_> = std::iter::from_fn(|| timers.pop_due(at)).collect();
        assert_eq!(fired.len(), 3);
        assert_eq!(timers.len(), 0);
    }
}
