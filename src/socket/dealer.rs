//! DEALER: round-robin out over peers with room, fair-queued in.
//!
//! Messages sent while no peer is attached wait in a socket-level queue (bounded by the send
//! high-water mark) and go to the first peer that attaches. A connecting side's peer outlives its
//! connection, so what was queued on it is delivered after the reconnect; a binding side's peer
//! and its queue go with the peer.

use bytes::Bytes;

use crate::socket::compact::compact;
use crate::socket::peers::{PeerKey, Peers, Queue};
use crate::socket::{Message, SendError, SocketOptions, SocketStats};

#[derive(Debug)]
pub struct Dealer {
    pub peers: Peers,
    /// Peers in round-robin order.
    order: Vec<PeerKey>,
    next: usize,
    /// Messages sent while no peer existed.
    waiting: Queue,
    /// Send a departed peer's unsent messages to the others (`SocketOptions::dealer_reroute`).
    reroute: bool,
    pub stats: SocketStats,
}

impl Dealer {
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            peers: Peers::new(options),
            order: Vec::new(),
            next: 0,
            waiting: Queue::default(),
            reroute: options.dealer_reroute,
            stats: SocketStats::default(),
        }
    }

    /// What waits for a first peer, by `message_cost`.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting.bytes()
    }

    /// A new peer; whatever waited for a peer moves to it.
    pub fn attach(&mut self, identity: Bytes) -> PeerKey {
        let key = self.peers.insert(identity, true);
        self.order.push(key);
        while self.peers.has_room(key) {
            let Some(message) = self.waiting.pop_front() else { break };
            let _ = self.peers.push_outbound(key, message);
        }
        key
    }

    /// A peer for a connecting endpoint, created before its first connection so sends queue on it.
    pub fn attach_persistent(&mut self) -> PeerKey {
        let key = self.attach(Bytes::new());
        if let Some(peer) = self.peers.get_mut(key) {
            peer.connected = false;
        }
        key
    }

    pub fn detach(&mut self, key: PeerKey, keep_queue: bool) {
        if keep_queue {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.connected = false;
            }
            return;
        }
        let unsent = self.peers.remove(key).map(|mut peer| peer.take_outbound()).unwrap_or_default();
        self.order.retain(|&k| k != key);
        if !self.reroute || unsent.is_empty() {
            return;
        }
        let count = unsent.len();
        let mut dropped = 0;
        for message in unsent {
            if self.send(message).is_err() {
                dropped += 1;
            }
        }
        self.stats.dropped_hwm += dropped as u64;
        log::info!(
            "a DEALER peer left: {} unsent messages went to the others, {dropped} dropped",
            count - dropped
        );
    }

    /// Queues `message` for the peer of `key`: `Unroutable` when that peer is gone, `WouldBlock`
    /// when its queue is full.
    pub fn send_to(&mut self, key: PeerKey, message: Message) -> Result<(), SendError> {
        if self.peers.get(key).is_none() {
            return Err(SendError::Unroutable(message));
        }
        self.peers.push_outbound(key, message).map_err(SendError::WouldBlock)
    }

    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if self.order.is_empty() {
            if self.peers.send_queue_full(&self.waiting) {
                return Err(SendError::WouldBlock(message));
            }
            let mut message = message;
            compact(&mut message); // it waits for a peer: it must not pin a read buffer
            self.waiting.push_back(message);
            return Ok(());
        }
        for step in 0..self.order.len() {
            let key = self.order[(self.next + step) % self.order.len()];
            if self.peers.has_room(key) {
                self.next = (self.next + step + 1) % self.order.len();
                let mut message = message;
                if self.peers.get(key).is_some_and(|p| !p.connected) {
                    compact(&mut message); // queued until the reconnect
                }
                let _ = self.peers.push_outbound(key, message);
                return Ok(());
            }
        }
        Err(SendError::WouldBlock(message))
    }
}
