//! Per-peer queues shared by every socket type: a `Peer` entry per attached peer with its inbound
//! and outbound message queues (each bounded by a high-water mark in messages and a budget in bytes),
//! fair-queued input across peers, and the list of peers with new outbound messages for the
//! reactor to write.
//!
//! Queues count what messages cost on the heap (`message_cost`: payload plus the frame list), and
//! `Peers` keeps the total of all its queues for the reactor's node-wide budget. Under memory
//! pressure (the reactor says when) a peer's outbound queue takes no more than
//! `PRESSURE_RESERVE` bytes, so peers that do not read cannot grow the node past its budget.

use std::collections::VecDeque;

use bytes::Bytes;
use slab::Slab;

use crate::socket::compact::compact;
use crate::socket::{Message, SocketOptions};

/// Under memory pressure, what one peer's outbound queue may still hold (and what one
/// connection may still buffer of its input, see the reactor): enough for small messages to keep
/// flowing while the peers that hold the memory wait.
pub const PRESSURE_RESERVE: usize = 32 << 10;

/// What a queued message costs on the heap: its payload plus its frame list.
pub fn message_cost(message: &Message) -> usize {
    let payload: usize = message.iter().map(|frame| frame.len()).sum();
    payload + message.capacity() * std::mem::size_of::<Bytes>() + std::mem::size_of::<Message>()
}

/// A message queue that knows what its messages cost.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Each message with its cost, computed once when it was queued.
    messages: VecDeque<(Message, usize)>,
    bytes: usize,
    /// Messages at the back not compacted yet.
    uncompacted: usize,
}

impl Queue {
    /// Queues at the back; returns the message's cost.
    pub(crate) fn push_back(&mut self, message: Message) -> usize {
        let cost = message_cost(&message);
        self.bytes += cost;
        self.messages.push_back((message, cost));
        self.uncompacted += 1;
        cost
    }

    /// Queues at the front; returns the message's cost.
    pub(crate) fn push_front(&mut self, message: Message) -> usize {
        let cost = message_cost(&message);
        self.bytes += cost;
        self.messages.push_front((message, cost));
        cost
    }

    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        self.pop_front_with_cost().map(|(message, _)| message)
    }

    /// Takes the front message and says what it cost.
    fn pop_front_with_cost(&mut self) -> Option<(Message, usize)> {
        let (message, cost) = self.messages.pop_front()?;
        self.bytes -= cost;
        self.uncompacted = self.uncompacted.min(self.messages.len());
        Some((message, cost))
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Compacts the messages that joined since the last call; returns the change in cost.
    fn compact_new(&mut self) -> isize {
        let before = self.bytes as isize;
        let start = self.messages.len() - self.uncompacted;
        for (message, cost) in self.messages.range_mut(start..) {
            compact(message);
            let compacted = message_cost(message);
            self.bytes = self.bytes - *cost + compacted;
            *cost = compacted;
        }
        self.uncompacted = 0;
        self.bytes as isize - before
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// At the high-water mark or over the byte budget.
    pub(crate) fn is_full(&self, hwm: usize, bytes: usize) -> bool {
        self.messages.len() >= hwm || self.bytes >= bytes
    }
}

/// A peer's key inside its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub usize);

/// One peer of a socket.
#[derive(Debug, Default)]
pub struct Peer {
    /// The routing identity (ROUTER) or the peer's announced identity (others).
    pub identity: Bytes,
    /// Messages received from the peer, waiting for `recv`.
    inbound: Queue,
    /// Messages for the peer, waiting for its transport to take them.
    outbound: Queue,
    /// False while a persistent peer has no live connection.
    pub(crate) connected: bool,
    /// A connecting side's peer that outlives its connections (see `Dealer::attach_persistent`).
    persistent: bool,
    /// Whether this peer is queued in the fair-queue ring.
    in_ring: bool,
    /// Whether this peer is listed in `dirty`.
    in_dirty: bool,
}

impl Peer {
    /// Every message still queued for this (departed) peer, oldest first.
    pub fn take_outbound(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.outbound.pop_front()).collect()
    }
}

/// Outcome of queueing an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Below the high-water mark: keep reading from this peer.
    More,
    /// At the high-water mark: stop reading from this peer until `recv` makes room.
    Full,
}

/// A socket's peers: their queues, input fair-queued across them, and the peers with new
/// outbound messages for the reactor.
#[derive(Debug)]
pub struct Peers {
    peers: Slab<Peer>,
    /// Peers with inbound messages, in round-robin order (fair queueing, libzmq `fq`).
    ring: VecDeque<PeerKey>,
    /// Peers whose outbound queue gained messages since the reactor last looked.
    dirty: Vec<PeerKey>,
    send_hwm: usize,
    recv_hwm: usize,
    /// Bytes each queue may hold, whatever its message count.
    queue_bytes: usize,
    /// What every queue here holds together, by `message_cost`.
    queued: usize,
    /// Set by the reactor while the node is over its memory budget.
    pressure: bool,
}

impl Peers {
    /// No peers yet, with the high-water marks and queue byte budget of `options` (each at least 1).
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            peers: Slab::new(),
            ring: VecDeque::new(),
            dirty: Vec::new(),
            send_hwm: options.send_hwm.max(1),
            recv_hwm: options.recv_hwm.max(1),
            queue_bytes: options.queue_bytes.max(1),
            queued: 0,
            pressure: false,
        }
    }

    /// What every queue of these peers holds, by `message_cost`.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// The reactor says whether the node is over its memory budget.
    pub fn set_pressure(&mut self, pressure: bool) {
        self.pressure = pressure;
    }

    /// What `key`'s queues (inbound and outbound) hold.
    pub fn holdings(&self, key: PeerKey) -> usize {
        self.peers.get(key.0).map_or(0, |p| p.inbound.bytes() + p.outbound.bytes())
    }

    /// Copies the small frames of messages newly queued for `key`'s peer into allocations of
    /// their own: they wait (the peer is not reading), so they must not pin read buffers.
    pub fn compact_outbound(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            self.queued = self.queued.saturating_add_signed(peer.outbound.compact_new());
        }
    }

    /// The same for messages received from `key`'s peer that wait for the application.
    pub fn compact_inbound(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            self.queued = self.queued.saturating_add_signed(peer.inbound.compact_new());
        }
    }

    /// Adds a peer with `identity` and a live connection; it goes when its connection does.
    pub fn insert(&mut self, identity: Bytes) -> PeerKey {
        PeerKey(self.peers.insert(Peer { identity, connected: true, ..Peer::default() }))
    }

    /// A peer that outlives its connections: it starts disconnected, and `disconnect` keeps it
    /// and its queues.
    pub fn insert_persistent(&mut self) -> PeerKey {
        PeerKey(self.peers.insert(Peer { persistent: true, ..Peer::default() }))
    }

    /// A persistent peer's new connection completed its handshake; false for any other key.
    pub fn reconnect(&mut self, key: PeerKey, identity: Bytes) -> bool {
        let Some(peer) = self.peers.get_mut(key.0).filter(|p| p.persistent) else { return false };
        peer.connected = true;
        peer.identity = identity;
        true
    }

    /// A peer's connection went away. A persistent peer stays, with its queues, marked
    /// disconnected (returns true); any other peer is left for the socket to remove.
    pub fn disconnect(&mut self, key: PeerKey) -> bool {
        let Some(peer) = self.peers.get_mut(key.0).filter(|p| p.persistent) else { return false };
        peer.connected = false;
        true
    }

    /// Removes a peer and whatever it still queued.
    pub fn remove(&mut self, key: PeerKey) -> Option<Peer> {
        let peer = self.peers.try_remove(key.0)?;
        self.queued -= peer.inbound.bytes() + peer.outbound.bytes();
        if peer.in_ring {
            self.ring.retain(|&k| k != key);
        }
        if peer.in_dirty {
            self.dirty.retain(|&k| k != key);
        }
        Some(peer)
    }

    /// The peer of `key`, if it is still here.
    pub fn get(&self, key: PeerKey) -> Option<&Peer> {
        self.peers.get(key.0)
    }

    /// Every peer's key.
    pub fn keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers.iter().map(|(k, _)| PeerKey(k))
    }

    /// Queues a message received from `key`'s peer.
    pub fn push_inbound(&mut self, key: PeerKey, message: Message) -> Inbound {
        let Some(peer) = self.peers.get_mut(key.0) else { return Inbound::More };
        self.queued += peer.inbound.push_back(message);
        if !peer.in_ring {
            peer.in_ring = true;
            self.ring.push_back(key);
        }
        if peer.inbound.is_full(self.recv_hwm, self.queue_bytes) {
            Inbound::Full
        } else {
            Inbound::More
        }
    }

    /// Whether any peer has an inbound message waiting.
    pub fn has_inbound(&self) -> bool {
        !self.ring.is_empty()
    }

    /// Takes the next inbound message, fair-queued across peers one whole message at a time.
    /// Also says whether that peer just dropped below its high-water mark (resume reading).
    pub fn pop_inbound(&mut self) -> Option<(PeerKey, Message, bool)> {
        while let Some(key) = self.ring.pop_front() {
            let Some(peer) = self.peers.get_mut(key.0) else { continue };
            let was_full = peer.inbound.is_full(self.recv_hwm, self.queue_bytes);
            let Some((message, cost)) = peer.inbound.pop_front_with_cost() else {
                peer.in_ring = false;
                continue;
            };
            self.queued -= cost;
            let resumed = was_full && !peer.inbound.is_full(self.recv_hwm, self.queue_bytes);
            if peer.inbound.is_empty() {
                peer.in_ring = false;
            } else {
                self.ring.push_back(key);
            }
            return Some((key, message, resumed));
        }
        None
    }

    /// Whether `key`'s peer can take one more outbound message: below its high-water mark and
    /// byte limit and, under memory pressure, below the pressure reserve.
    pub fn has_room(&self, key: PeerKey) -> bool {
        self.peers.get(key.0).is_some_and(|p| {
            let full = p.outbound.is_full(self.send_hwm, self.queue_bytes);
            let over_reserve = self.pressure && p.outbound.bytes() >= PRESSURE_RESERVE;
            !full && !over_reserve
        })
    }

    /// Queues a message for `key`'s peer, or gives it back when the peer is full or gone.
    pub fn push_outbound(&mut self, key: PeerKey, message: Message) -> Result<(), Message> {
        if !self.has_room(key) {
            return Err(message);
        }
        let Some(peer) = self.peers.get_mut(key.0) else { return Err(message) };
        self.queued += peer.outbound.push_back(message);
        if !peer.in_dirty {
            peer.in_dirty = true;
            self.dirty.push(key);
        }
        Ok(())
    }

    /// Lists `key` for the reactor again (its transport can take more now).
    pub fn mark_dirty(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            if !peer.in_dirty && !peer.outbound.is_empty() {
                peer.in_dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Whether any peer waits for the reactor.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The next outbound message of `key`, for its transport.
    pub fn pop_outbound(&mut self, key: PeerKey) -> Option<Message> {
        let (message, cost) = self.peers.get_mut(key.0)?.outbound.pop_front_with_cost()?;
        self.queued -= cost;
        Some(message)
    }

    /// Puts a message back at the front (the transport could not take it after all).
    pub fn unpop_outbound(&mut self, key: PeerKey, message: Message) {
        if let Some(peer) = self.peers.get_mut(key.0) {
            self.queued += peer.outbound.push_front(message);
        }
    }

    /// How many messages wait for `key`'s peer; 0 when it is gone.
    pub fn outbound_len(&self, key: PeerKey) -> usize {
        self.peers.get(key.0).map_or(0, |p| p.outbound.len())
    }

    /// Peers with new outbound messages since the last call.
    pub fn take_dirty(&mut self, into: &mut Vec<PeerKey>) {
        for key in self.dirty.drain(..) {
            if let Some(peer) = self.peers.get_mut(key.0) {
                peer.in_dirty = false;
                into.push(key);
            }
        }
    }

    /// Whether `queue` is full by this socket's send limits (messages or bytes).
    pub(crate) fn send_queue_full(&self, queue: &Queue) -> bool {
        queue.is_full(self.send_hwm, self.queue_bytes)
    }

    /// Whether `key`'s inbound queue is at its high-water mark or byte budget.
    pub fn inbound_full(&self, key: PeerKey) -> bool {
        self.peers.get(key.0).is_some_and(|p| p.inbound.is_full(self.recv_hwm, self.queue_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::testing::{attached, b};
    use crate::socket::{Dealer, Router, SendError};

    #[test]
    fn queues_are_bounded_in_bytes_as_well_as_messages() {
        let options = SocketOptions { queue_bytes: 1 << 20, ..SocketOptions::default() };
        let big = Bytes::from(vec![0u8; 400 << 10]);
        let mut router = Router::new(&options);
        let peer = attached(router.attach(b("p")));
        assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::More);
        assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::More);
        assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::Full, "1.2 MiB queued: stop reading");
        let (_, _, resumed) = router.peers.pop_inbound().unwrap();
        assert!(resumed, "back under the byte budget: resume reading");

        let mut dealer = Dealer::new(&options);
        for _ in 0..3 {
            dealer.send(vec![big.clone()]).unwrap(); // no peer yet: waits, within 1 MiB
        }
        assert!(matches!(dealer.send(vec![big.clone()]), Err(SendError::WouldBlock(_))));
        let key = dealer.attach(Bytes::new());
        assert_eq!(dealer.peers.outbound_len(key), 3);
        assert!(
            matches!(dealer.send(vec![big]), Err(SendError::WouldBlock(_))),
            "the peer's queue is full in bytes"
        );
    }
}
