//! The node-wide bounds: how many connections one reactor holds (who gets a slot is
//! `admission`'s), and how many bytes all of them together may hold in partial input, queued
//! messages and unsent output.
//!
//! The budget rule: while the total is under `memory_budget`, every connection reads freely.
//! Over it, a connection may still read while what it holds itself (its partial input, its
//! queues, its unsent output) is under `PRESSURE_RESERVE`; the others pause, and resume in the
//! order they paused once the total is back under the budget. Queues take no more than the
//! reserve per peer meanwhile (`Peers::set_pressure`). So the peers that hold the memory are the
//! ones that wait, small messages keep flowing, and the total stays under
//! `memory_budget + connections x PRESSURE_RESERVE` whatever peers do.
//!
//! Pausing alone could wait forever: peers whose large messages are all half received hold the
//! budget and none can finish. So when the node has stayed over its budget with connections
//! waiting for `evict_after`, the connection holding the most is closed (counted, logged), and
//! again every `evict_after` while it lasts.

use std::time::{Duration, Instant};

use super::ids::ConnId;
use super::{CloseReason, Reactor};
use crate::socket::PRESSURE_RESERVE;

/// Default cap on connections per reactor (`MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default node-wide budget (`INBOUND_BUDGET_MB`): 256 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;
/// Default time over the budget, with connections waiting, before the largest holder is closed.
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(5);

/// Node-wide bounds for one reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TCP connections held at once, accepted and connected together. Beyond it new connections
    /// are accepted and closed at once (counted in `ReactorStats::connections_refused`).
    pub max_connections: usize,
    /// Bytes all connections together may hold in partial input, queues and unsent output
    /// before reading pauses (see the module doc).
    pub memory_budget: usize,
    /// How long the node may stay over its budget with connections waiting before the one
    /// holding the most is closed.
    pub evict_after: Duration,
    /// Accepted connections from one source address (an IPv6 address's /64) at once
    /// (`MAX_CONNECTIONS_PER_ADDRESS`; see `admission`).
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            evict_after: DEFAULT_EVICT_AFTER,
            per_address: super::admission::DEFAULT_PER_ADDRESS,
        }
    }
}

/// Reactor-wide counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Connections accepted and closed at once: no slot for them (`admission` says why).
    pub connections_refused: u64,
    /// Connection slots refused or reclaimed, by reason (see `admission`).
    pub admission: super::admission::AdmissionStats,
    /// Times a connection's reading paused because the node was over its memory budget.
    pub budget_pauses: u64,
    /// Connections closed because they held the most while the node stayed over its budget.
    pub budget_evictions: u64,
    /// Peers refused during the CURVE handshake because their key is not allowed.
    pub curve_refused: u64,
    /// Bytes read from ZMTP connections.
    pub bytes_read: u64,
    /// Bytes written to ZMTP connections.
    pub bytes_written: u64,
    /// What the pool of large read buffers did (see `read_pool`).
    pub read_pool: super::read_pool::ReadPoolStats,
}

impl Reactor {
    /// Bytes held now: partial input and unsent output of every connection, and every queue.
    pub fn memory_used(&self) -> usize {
        self.held + self.sockets.iter().map(|(_, e)| e.socket.queued_bytes()).sum::<usize>()
    }

    /// Counts connection `key`'s holdings into the total again after they changed.
    pub(super) fn account(&mut self, key: ConnId) {
        if let Some(conn) = self.io.conn_mut(key) {
            let held = conn.held();
            self.held = self.held - conn.accounted + held;
            conn.accounted = held;
        }
    }

    /// How many bytes connection `key` may read now; `None` when it must wait for the budget.
    pub(super) fn read_allowance(&self, key: ConnId) -> Option<usize> {
        let used = self.memory_used();
        if used < self.limits.memory_budget {
            return Some(self.limits.memory_budget - used);
        }
        let conn = self.io.conn(key)?;
        let own = self.footprint(conn);
        (own < PRESSURE_RESERVE).then(|| PRESSURE_RESERVE - own)
    }

    /// Stops reading `key` until the total is back under the budget.
    pub(super) fn pause_for_budget(&mut self, key: ConnId, now: Instant) {
        let Some(conn) = self.io.conn_mut(key) else { return };
        if std::mem::replace(&mut conn.budget_paused, true) {
            return;
        }
        self.budget_waiters.push(key);
        self.stats.budget_pauses += 1;
        if let Some(count) = self.budget_log.note(now) {
            log::warn!(
                "memory budget of {} MiB reached ({} MiB held): reading paused for {count} connection(s) \
                 holding more than {} KiB each; {} wait now",
                self.limits.memory_budget >> 20,
                self.memory_used() >> 20,
                PRESSURE_RESERVE >> 10,
                self.budget_waiters.len()
            );
        }
    }

    /// Whether paused connections can read again.
    pub(super) fn budget_has_room(&self) -> bool {
        !self.budget_waiters.is_empty() && self.memory_used() < self.limits.memory_budget
    }

    /// Lets paused connections read again, in the order they paused, while there is room.
    pub(super) fn resume_budget_waiters(&mut self, now: Instant) {
        if !self.budget_has_room() {
            return;
        }
        for key in std::mem::take(&mut self.budget_waiters) {
            if let Some(conn) = self.io.conn_mut(key) {
                conn.budget_paused = false;
                self.read_conn(key, now);
            }
        }
    }

    /// Tells every socket whether the node is over its budget (queues then take no more than
    /// the pressure reserve per peer).
    pub(super) fn update_pressure(&mut self, now: Instant) {
        let pressure = self.memory_used() >= self.limits.memory_budget;
        if pressure != self.pressure {
            self.pressure = pressure;
            self.over_budget_since = pressure.then_some(now);
            for (_, entry) in self.sockets.iter_mut() {
                entry.socket.peers_mut().set_pressure(pressure);
            }
        }
    }

    /// When the largest holder is to be closed, if the node is over its budget with connections
    /// waiting.
    pub(super) fn next_eviction(&self) -> Option<Instant> {
        let since = self.over_budget_since?;
        (!self.budget_waiters.is_empty()).then(|| crate::time::after(since, self.limits.evict_after))
    }

    /// Closes the connection holding the most when the node has been stuck over its budget.
    pub(super) fn evict_if_stuck(&mut self, now: Instant) {
        if self.next_eviction().is_none_or(|at| at > now) {
            return;
        }
        self.over_budget_since = Some(now);
        let largest =
            self.io.conns().map(|(key, conn)| (key, self.footprint(conn))).max_by_key(|&(_, held)| held);
        let Some((key, held)) = largest else { return };
        if let Some(conn) = self.io.conn(key) {
            log::warn!(
                "closing {}: it held {} KiB, the most, while the node stayed over its {} MiB memory \
                 budget for {:?}",
                conn.peer_addr(),
                held >> 10,
                self.limits.memory_budget >> 20,
                self.limits.evict_after
            );
        }
        self.stats.budget_evictions += 1;
        self.close_conn(key, CloseReason::MemoryBudget);
    }

    /// What connection `conn` holds, its queues included.
    fn footprint(&self, conn: &super::connection::Connection) -> usize {
        let queued = conn
            .peer
            .zip(self.sockets.get(conn.socket.0))
            .map_or(0, |(peer, entry)| entry.socket.peers().holdings(peer));
        conn.held() + queued
    }
}
