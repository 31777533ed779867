//! Who gets a connection slot, and whose unauthenticated handshake work runs now.
//!
//! Slots: `max_connections` in all. Each door (`Door`) has a share reserved for it
//! (`RESERVED_PERCENT`: clients and workers 10% each, brokers 1%); the rest is one pool any door
//! may use. So a flood at one door cannot take the slots that workers or brokers need, and the
//! other way round. No source address holds more than `per_address` connections (IPv6
//! addresses count by their /64, what one host usually has). When a new connection finds no
//! slot, the oldest connection still in its handshake that holds a slot the newcomer could use
//! is closed for it (`Admit::Evict`): silent or half-open connections cannot keep a legitimate
//! peer out. Only when none is left is the newcomer refused. Every refusal and eviction is
//! counted by reason.
//!
//! Handshake work: a CURVE server's HELLO and INITIATE cost key exchanges before the client is
//! authenticated. Each such read takes a token from its source address's bucket
//! (`HANDSHAKE_RATE` per second, up to `HANDSHAKE_BURST`) and from the turn's budget
//! (`HANDSHAKES_PER_TURN`); without one, the connection waits (its bytes stay in the kernel)
//! and is read on a later turn. A flood of HELLOs from one address slows that address only.
//!
//! A plain struct: the reactor asks and reports, and does the closing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::ids::ConnId;
use crate::door::Door;

/// Default cap on connections from one source address (`MAX_CONNECTIONS_PER_ADDRESS`): an
/// OpenResty host's pool of several hundred DEALERs fits under it.
pub const DEFAULT_PER_ADDRESS: usize = 1_024;
/// Share of `max_connections` reserved for each door (`Door::index` order), in percent.
pub const RESERVED_PERCENT: [usize; 3] = [10, 10, 1];
/// Unauthenticated CURVE handshake steps one source address may have run per second...
pub const HANDSHAKE_RATE: f64 = 200.0;
/// ...and at once, after a quiet spell.
pub const HANDSHAKE_BURST: f64 = 400.0;
/// Unauthenticated CURVE handshake steps run in one turn, all addresses together: few, so a
/// request that arrives behind them waits for at most that many key exchanges; waiting steps
/// with tokens run in the very next turn (see `turn_full`).
pub const HANDSHAKES_PER_TURN: usize = 2;

/// Connections of no door (sockets without one, and every outgoing connection) share the pool.
const NO_DOOR: usize = 3;

/// A source address as slots count it: an IPv4 address, or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Source {
    /// The source of a peer at `addr`.
    pub fn of(addr: SocketAddr) -> Self {
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => Self::V4(u32::from(ip)),
            IpAddr::V6(ip) => Self::V6((u128::from(ip) >> 64) as u64),
        }
    }
}

/// What `Admission::admit` decided for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A slot is free.
    Yes,
    /// Close this connection (the oldest still in its handshake in the way), then ask again.
    Evict(ConnId),
    /// No slot: close the newcomer.
    No(Refusal),
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source address holds `per_address` connections, all past their handshake.
    PerAddress,
    /// Its door's reserved slots and the shared pool are taken (or `max_connections` are
    /// open), all past their handshake.
    Full,
}

/// What admission refused or cut short; all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// New connections refused: no slot at their door or in the pool.
    pub refused_full: u64,
    /// New connections refused: their address held `per_address` connections.
    pub refused_per_address: u64,
    /// Connections still in their handshake closed to make room for a newcomer.
    pub evicted_handshaking: u64,
    /// Times a connection's unauthenticated CURVE handshake step waited for a later turn.
    pub handshakes_deferred: u64,
}

/// What admission noted of one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    slot: usize,
    source: Source,
    /// Accept order, unique: the key of its entry among those still handshaking.
    serial: u64,
}

impl Admitted {
    /// The source address it counts against.
    pub fn source(&self) -> Source {
        self.source
    }
}

#[derive(Debug, Clone, Copy)]
struct SourceEntry {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

impl SourceEntry {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * HANDSHAKE_RATE).min(HANDSHAKE_BURST);
        self.refilled = now;
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    slot: usize,
}

/// Connection slots by door and address, and the handshake budget (see the module doc).
#[derive(Debug)]
pub struct Admission {
    max_connections: usize,
    per_address: usize,
    /// Slots reserved per door.
    reserved: [usize; 3],
    /// Accepted connections per door, and of no door.
    open: [usize; 4],
    sources: HashMap<Source, SourceEntry>,
    /// Accepted connections still in their handshake, by accept order.
    handshaking: BTreeMap<u64, Pending>,
    /// The same, by source address (the oldest of one address without a walk past others).
    handshaking_from: HashMap<Source, BTreeSet<u64>>,
    next_serial: u64,
    turn_budget: usize,
    /// A step with a token was refused this turn for want of turn budget: the next turn comes
    /// at once.
    turn_full: bool,
    /// When idle addresses are next forgotten.
    next_sweep: Option<Instant>,
    /// What it refused.
    pub stats: AdmissionStats,
}

impl Admission {
    /// Slots for `max_connections`, at most `per_address` from one address.
    pub fn new(max_connections: usize, per_address: usize) -> Self {
        Self {
            max_connections,
            per_address: per_address.max(1),
            reserved: RESERVED_PERCENT.map(|p| max_connections * p / 100),
            open: [0; 4],
            sources: HashMap::new(),
            handshaking: BTreeMap::new(),
            handshaking_from: HashMap::new(),
            next_serial: 0,
            turn_budget: HANDSHAKES_PER_TURN,
            turn_full: false,
            next_sweep: None,
            stats: AdmissionStats::default(),
        }
    }

    /// Whether a new connection at `door` from `source` may have a slot, with `total`
    /// connections (accepted and outgoing) open.
    pub fn admit(&self, door: Option<Door>, source: Source, total: usize) -> Admit {
        let slot = door.map_or(NO_DOOR, Door::index);
        if self.sources.get(&source).is_some_and(|e| e.open >= self.per_address) {
            let oldest = self.handshaking_from.get(&source).and_then(|serials| serials.first());
            let conn = oldest.and_then(|serial| self.handshaking.get(serial)).map(|p| p.conn);
            return conn.map_or(Admit::No(Refusal::PerAddress), Admit::Evict);
        }
        let reserved_free = slot < NO_DOOR && self.open[slot] < self.reserved[slot];
        if total < self.max_connections && (reserved_free || self.pool_used(total) < self.pool_size()) {
            return Admit::Yes;
        }
        // A slot the newcomer could use: one of its own door's, or one in the pool.
        let in_the_way =
            |p: &Pending| p.slot == slot || p.slot == NO_DOOR || self.open[p.slot] > self.reserved[p.slot];
        self.oldest(in_the_way).map_or(Admit::No(Refusal::Full), Admit::Evict)
    }

    /// Counts a refusal.
    pub fn refused(&mut self, why: Refusal) {
        match why {
            Refusal::PerAddress => self.stats.refused_per_address += 1,
            Refusal::Full => self.stats.refused_full += 1,
        }
    }

    /// Counts a connection closed to make room.
    pub fn evicted(&mut self) {
        self.stats.evicted_handshaking += 1;
    }

    /// A connection took a slot at `door` from `source`; it is in its handshake.
    pub fn admitted(&mut self, conn: ConnId, door: Option<Door>, source: Source, now: Instant) -> Admitted {
        let slot = door.map_or(NO_DOOR, Door::index);
        self.open[slot] += 1;
        let entry = self.sources.entry(source).or_insert(SourceEntry {
            open: 0,
            tokens: HANDSHAKE_BURST,
            refilled: now,
        });
        entry.open += 1;
        let serial = self.next_serial;
        self.next_serial += 1;
        self.handshaking.insert(serial, Pending { conn, slot });
        self.handshaking_from.entry(source).or_default().insert(serial);
        Admitted { slot, source, serial }
    }

    /// The connection finished its handshake: it is no longer the first to be closed for room.
    pub fn handshake_done(&mut self, admitted: &Admitted) {
        if self.handshaking.remove(&admitted.serial).is_some() {
            if let Some(serials) = self.handshaking_from.get_mut(&admitted.source) {
                serials.remove(&admitted.serial);
                if serials.is_empty() {
                    self.handshaking_from.remove(&admitted.source);
                }
            }
        }
    }

    /// The connection closed: its slot is free.
    pub fn released(&mut self, admitted: &Admitted) {
        self.handshake_done(admitted);
        self.open[admitted.slot] = self.open[admitted.slot].saturating_sub(1);
        if let Some(entry) = self.sources.get_mut(&admitted.source) {
            entry.open = entry.open.saturating_sub(1);
        }
    }

    /// A new turn: its handshake budget is whole again; idle addresses whose bucket is full
    /// again are forgotten (at most once a second).
    pub fn new_turn(&mut self, now: Instant) {
        self.turn_budget = HANDSHAKES_PER_TURN;
        self.turn_full = false;
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(crate::time::after(now, Duration::from_secs(1)));
        // Addresses with nothing open are kept while their bucket refills (closing every
        // connection does not reset a bucket), but never more of them than slots.
        let crowded = self.sources.len() > 2 * self.max_connections;
        self.sources.retain(|_, e| {
            e.refill(now);
            e.open > 0 || !crowded && e.tokens < HANDSHAKE_BURST
        });
    }

    /// Gives back a handshake step's token that read nothing (the peer had sent nothing more).
    pub fn refund_handshake(&mut self, source: Source) {
        if let Some(entry) = self.sources.get_mut(&source) {
            entry.tokens = (entry.tokens + 1.0).min(HANDSHAKE_BURST);
            self.turn_budget += 1;
        }
    }

    /// Whether one unauthenticated handshake step from `source` may run now; if not, it is
    /// counted as deferred.
    pub fn take_handshake(&mut self, source: Source, now: Instant) -> bool {
        let entry = self.sources.get_mut(&source);
        let granted = match entry {
            Some(entry) => {
                entry.refill(now);
                let has_token = entry.tokens >= 1.0;
                let granted = has_token && self.turn_budget > 0;
                if granted {
                    entry.tokens -= 1.0;
                    self.turn_budget -= 1;
                }
                self.turn_full |= has_token && !granted;
                granted
            }
            None => true, // not an accepted connection: not ours to pace
        };
        if !granted {
            self.stats.handshakes_deferred += 1;
        }
        granted
    }

    /// Whether a waiting handshake step had its token but not this turn's budget: the next
    /// turn should not wait.
    pub fn turn_full(&self) -> bool {
        self.turn_full
    }

    /// Connections from `source` now.
    pub fn open_from(&self, source: Source) -> usize {
        self.sources.get(&source).map_or(0, |e| e.open)
    }

    /// Accepted connections still in their handshake.
    pub fn handshaking(&self) -> usize {
        self.handshaking.len()
    }

    fn pool_size(&self) -> usize {
        self.max_connections - self.reserved.iter().sum::<usize>()
    }

    /// Connections in the pool: every one not counted against its door's reservation.
    fn pool_used(&self, total: usize) -> usize {
        let in_reservations: usize = (0..3).map(|d| self.open[d].min(self.reserved[d])).sum();
        total.saturating_sub(in_reservations)
    }

    /// The oldest connection still in its handshake that `pick` accepts.
    fn oldest(&self, pick: impl Fn(&Pending) -> bool) -> Option<ConnId> {
        self.handshaking.values().find(|p| pick(p)).map(|p| p.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: u8) -> Source {
        Source::of(SocketAddr::from(([127, 0, 0, n], 1000)))
    }

    /// Admits `n` connections at `door` from `source`, numbered from `first`.
    fn fill(
        a: &mut Admission,
        door: Door,
        source: Source,
        first: usize,
        n: usize,
        total: &mut usize,
    ) -> Vec<Admitted> {
        let now = Instant::now();
        (first..first + n)
            .map(|i| {
                assert_eq!(a.admit(Some(door), source, *total), Admit::Yes, "connection {i}");
                *total += 1;
                a.admitted(ConnId(i), Some(door), source, now)
            })
            .collect()
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_its_oldest_handshake_makes_room() {
        let mut a = Admission::new(1_000, 10);
        let mut total = 0;
        let conns = fill(&mut a, Door::Clients, src(1), 0, 10, &mut total);
        // Full for that address: its oldest handshaking connection goes first.
        assert_eq!(a.admit(Some(Door::Clients), src(1), total), Admit::Evict(ConnId(0)));
        for c in &conns {
            a.handshake_done(c);
        }
        assert_eq!(a.admit(Some(Door::Clients), src(1), total), Admit::No(Refusal::PerAddress));
        assert_eq!(
            a.admit(Some(Door::Clients), src(2), total),
            Admit::Yes,
            "another address is not affected"
        );
        a.released(&conns[3]);
        assert_eq!(a.admit(Some(Door::Clients), src(1), total - 1), Admit::Yes);
    }

    #[test]
    fn a_full_pool_leaves_each_door_its_reserved_slots() {
        // 100 slots: 10 reserved for clients, 10 for workers, 1 for brokers, 79 shared.
        let mut a = Admission::new(100, 1_000);
        let mut total = 0;
        let clients = fill(&mut a, Door::Clients, src(1), 0, 89, &mut total);
        for c in &clients {
            a.handshake_done(c);
        }
        assert_eq!(
            a.admit(Some(Door::Clients), src(2), total),
            Admit::No(Refusal::Full),
            "clients took their share and the pool"
        );
        let workers = fill(&mut a, Door::Workers, src(3), 100, 10, &mut total);
        fill(&mut a, Door::Brokers, src(4), 200, 1, &mut total);
        assert_eq!(total, 100);
        // Every slot is taken: a newcomer worker evicts the oldest handshaking worker.
        assert_eq!(a.admit(Some(Door::Workers), src(3), total), Admit::Evict(ConnId(100)));
        for w in &workers {
            a.handshake_done(w);
        }
        assert_eq!(a.admit(Some(Door::Workers), src(3), total), Admit::No(Refusal::Full));
    }

    #[test]
    fn a_newcomer_evicts_the_oldest_handshaking_connection_in_its_way_only() {
        let mut a = Admission::new(100, 1_000);
        let mut total = 0;
        // Silent clients fill their reserve and the pool; one broker waits in its handshake.
        fill(&mut a, Door::Clients, src(1), 0, 89, &mut total);
        let broker = fill(&mut a, Door::Brokers, src(2), 500, 1, &mut total);
        // A worker's reserved slots are free: it comes in without evicting anyone.
        assert_eq!(a.admit(Some(Door::Workers), src(3), total), Admit::Yes);
        fill(&mut a, Door::Workers, src(3), 600, 10, &mut total);
        // Now a client: the oldest silent client makes room, never the broker in its reserve.
        assert_eq!(a.admit(Some(Door::Clients), src(4), total), Admit::Evict(ConnId(0)));
        a.handshake_done(&broker[0]);
        assert_eq!(a.admit(Some(Door::Brokers), src(5), total), Admit::Evict(ConnId(0)), "the pool's oldest");
    }

    #[test]
    fn handshake_work_is_paced_per_address_and_per_turn() {
        let mut a = Admission::new(1_000, 1_000);
        let start = Instant::now();
        let (flood, other) = (src(1), src(2));
        a.admitted(ConnId(0), Some(Door::Clients), flood, start);
        a.admitted(ConnId(1), Some(Door::Clients), other, start);
        let mut granted = 0;
        for turn in 0..1_000 {
            a.new_turn(start);
            while a.take_handshake(flood, start) {
                granted += 1;
            }
            assert!(granted <= (turn + 1) * HANDSHAKES_PER_TURN, "the turn budget holds");
            // With tokens left, the next turn must not wait; without, it may.
            assert_eq!(a.turn_full(), granted < HANDSHAKE_BURST as usize, "turn {turn}");
        }
        assert_eq!(granted, HANDSHAKE_BURST as usize, "one address gets its burst, then waits");
        a.new_turn(start);
        assert!(a.take_handshake(other, start), "another address still gets its handshakes");
        let later = start + Duration::from_millis(100);
        let refilled: usize = (0..100)
            .map(|_| {
                a.new_turn(later);
                std::iter::from_fn(|| a.take_handshake(flood, later).then_some(())).count()
            })
            .sum();
        assert_eq!(refilled, (HANDSHAKE_RATE * 0.1) as usize, "the bucket refills at its rate");
        assert!(a.stats.handshakes_deferred > 0);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let v6 = |s: &str| Source::of(SocketAddr::new(s.parse().unwrap(), 1));
        assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:127.0.0.1"), src(1));
        assert_ne!(v6("::7f00:1"), src(1), "an IPv6 address is not the IPv4 one with its bits");
        assert_ne!(v6("2001:db8::1"), v6("a001:db8::1"), "every bit of the /64 counts");
    }
}
