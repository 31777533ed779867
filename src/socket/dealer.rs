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

/// A DEALER socket: round-robin out over peers with room, fair-queued in.
#[derive(Debug)]
pub struct Dealer {
    /// Its peers and their queues.
    pub peers: Peers,
    /// Peers in round-robin order.
    order: Vec<PeerKey>,
    next: usize,
    /// Messages sent while no peer existed.
    waiting: Queue,
    /// Send a departed peer's unsent messages to the others (`SocketOptions::dealer_reroute`).
    reroute: bool,
    /// Its counters.
    pub stats: SocketStats,
}

impl Dealer {
    /// A DEALER with no peers yet.
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
        let key = self.peers.insert(identity);
        self.take_waiting(key)
    }

    /// A peer for a connecting endpoint, created before its first connection so sends queue on
    /// it; it stays across that endpoint's reconnects, queue included, until the socket closes.
    pub fn attach_persistent(&mut self) -> PeerKey {
        let key = self.peers.insert_persistent();
        self.take_waiting(key)
    }

    /// Puts `key` in the round-robin order and moves to it what waited for a peer.
    fn take_waiting(&mut self, key: PeerKey) -> PeerKey {
        self.order.push(key);
        while self.peers.has_room(key) {
            let Some(message) = self.waiting.pop_front() else { break };
            let _ = self.peers.push_outbound(key, message);
        }
        key
    }

    /// A peer's connection went away: a persistent peer stays (returns true), any other goes,
    /// its unsent messages rerouted to the others with `dealer_reroute`.
    pub fn detach(&mut self, key: PeerKey) -> bool {
        if self.peers.disconnect(key) {
            return true;
        }
        let unsent = self.peers.remove(key).map(|mut peer| peer.take_outbound()).unwrap_or_default();
        self.order.retain(|&k| k != key);
        if !self.reroute || unsent.is_empty() {
            return false;
        }
        let count = unsent.len();
        let mut dropped = 0;
        for message in unsent {
            if self.route(message).is_err() {
                dropped += 1;
            }
        }
        self.stats.dropped_hwm += dropped as u64;
        log::info!(
            "a DEALER peer left: {} unsent messages went to the others, {dropped} dropped",
            count - dropped
        );
        false
    }

    /// Queues `message` for the peer of `key`: `Unroutable` when that peer is gone, `WouldBlock`
    /// when its queue is full.
    pub fn send_to(&mut self, key: PeerKey, message: Message) -> Result<(), SendError> {
        if self.peers.get(key).is_none() {
            return Err(SendError::Unroutable(message));
        }
        self.peers.push_outbound(key, message).map_err(SendError::WouldBlock)?;
        self.stats.sent += 1;
        Ok(())
    }

    /// Queues `message` for the next peer with room, round-robin, or for the first peer to
    /// attach when there is none yet; `WouldBlock` when every queue is full.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.route(message)?;
        self.stats.sent += 1;
        Ok(())
    }

    /// `send` without counting it (a departed peer's messages were counted when first sent).
    fn route(&mut self, message: Message) -> Result<(), SendError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::testing::b;

    #[test]
    fn dealer_round_robins_over_peers_with_room_and_queues_without_peers() {
        let mut dealer = Dealer::new(&SocketOptions { send_hwm: 2, ..SocketOptions::default() });
        dealer.send(vec![b("early")]).unwrap();
        let a = dealer.attach(Bytes::new());
        assert_eq!(
            dealer.peers.pop_outbound(a),
            Some(vec![b("early")]),
            "waiting message goes to the first peer"
        );
        let b_ = dealer.attach(Bytes::new());
        for i in 0..4 {
            dealer.send(vec![b(&i.to_string())]).unwrap();
        }
        assert!(matches!(dealer.send(vec![b("full")]), Err(SendError::WouldBlock(_))));
        assert_eq!(dealer.peers.outbound_len(a), 2);
        assert_eq!(dealer.peers.outbound_len(b_), 2);
        assert_eq!(dealer.peers.pop_outbound(a), Some(vec![b("0")]));
        assert_eq!(dealer.peers.pop_outbound(b_), Some(vec![b("1")]));
    }

    #[test]
    fn binding_dealer_discards_a_departed_peers_queue_and_connecting_one_keeps_it() {
        let mut dealer = Dealer::new(&SocketOptions::default());
        let bound_peer = dealer.attach(Bytes::new());
        dealer.send(vec![b("lost")]).unwrap();
        assert!(!dealer.detach(bound_peer));
        assert!(dealer.peers.get(bound_peer).is_none());

        let persistent = dealer.attach_persistent();
        dealer.send(vec![b("kept")]).unwrap();
        assert!(dealer.detach(persistent), "a connecting side's peer stays");
        assert_eq!(dealer.peers.pop_outbound(persistent), Some(vec![b("kept")]));
    }

    #[test]
    fn a_rerouting_dealer_sends_a_departed_peers_unsent_messages_to_the_others() {
        let mut dealer = Dealer::new(&SocketOptions { dealer_reroute: true, ..SocketOptions::default() });
        let (a, b_) = (dealer.attach(Bytes::new()), dealer.attach(Bytes::new()));
        for i in 0..4 {
            dealer.send(vec![Bytes::from(format!("m{i}"))]).unwrap(); // a gets m0, m2; b m1, m3
        }
        dealer.detach(a);
        let at_b: Vec<_> = std::iter::from_fn(|| dealer.peers.pop_outbound(b_)).collect();
        assert_eq!(at_b, vec![vec![b("m1")], vec![b("m3")], vec![b("m0")], vec![b("m2")]]);
        // With no peer left, they wait for the next one.
        dealer.send(vec![b("m4")]).unwrap();
        dealer.detach(b_);
        let next = dealer.attach(Bytes::new());
        assert_eq!(dealer.peers.pop_outbound(next), Some(vec![b("m4")]));
    }
}
