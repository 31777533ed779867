//! PUB: each message goes to every peer with a subscription that prefixes its first frame; a
//! peer at its high-water mark misses it (counted) and the others are not slowed.
//! Subscriptions are counted per peer, so "A" twice needs two cancels.
//!
//! What subscriptions hold is bounded per peer and per socket, counted as what they really
//! cost: each distinct (peer, topic) costs the topic twice (the peer's copy and, at most, the
//! trie's label) plus `SUBSCRIPTION_OVERHEAD` for the table entries and the trie node. Topics are
//! copied out of the message they came in, so a subscription never keeps a read buffer alive.

use bytes::Bytes;
use hashbrown::HashMap;

use crate::socket::peers::{PeerKey, Peers};
use crate::socket::trie::Trie;
use crate::socket::{Message, SocketOptions, SocketStats};

/// Bytes one distinct (peer, topic) subscription costs besides its topic bytes: a hash table
/// entry, a trie node and a subscriber slot (measured by `tests/memory.rs`).
pub const SUBSCRIPTION_OVERHEAD: usize = 384;
/// Most subscription cost one peer may hold; more subscriptions are refused and counted.
pub const MAX_SUBSCRIPTION_COST_PER_PEER: usize = 1 << 20;
/// Most subscription cost all peers of one socket may hold together.
pub const MAX_SUBSCRIPTION_COST_PER_SOCKET: usize = 16 << 20;

/// What one distinct subscription to `topic` costs.
pub fn subscription_cost(topic: &[u8]) -> usize {
    2 * topic.len() + SUBSCRIPTION_OVERHEAD
}

#[derive(Debug, Default)]
struct PeerTopics {
    counts: HashMap<Bytes, u32>,
    /// Cost of the distinct topics in `counts`.
    cost: usize,
    /// Whether a refusal was logged for this peer already (one line per peer, not per topic).
    refusal_logged: bool,
}

/// A PUB socket: prefix-matched fan-out, its subscriptions' cost bounded per peer and per socket.
#[derive(Debug)]
pub struct Publisher {
    /// Its peers and their queues.
    pub peers: Peers,
    trie: Trie<PeerKey>,
    /// Each peer's topics and counts, so a departing peer's subscriptions can be removed.
    topics: HashMap<PeerKey, PeerTopics>,
    matched: Vec<PeerKey>,
    /// Cost of every peer's subscriptions together.
    cost: usize,
    /// Its counters.
    pub stats: SocketStats,
}

impl Publisher {
    /// A PUB with no peers or subscriptions yet.
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            peers: Peers::new(options),
            trie: Trie::new(),
            topics: HashMap::new(),
            matched: Vec::new(),
            cost: 0,
            stats: SocketStats::default(),
        }
    }

    /// One more subscription of `key`'s peer to `topic`; refused (and counted) when the peer's
    /// or the socket's subscriptions would cost more than their limits.
    pub fn subscribe(&mut self, key: PeerKey, topic: &[u8]) {
        if self.peers.get(key).is_none() {
            return;
        }
        let held = self.topics.entry(key).or_default();
        if let Some(count) = held.counts.get_mut(topic) {
            *count = count.saturating_add(1);
            self.trie.add(topic, key);
            return;
        }
        let cost = subscription_cost(topic);
        if held.cost + cost > MAX_SUBSCRIPTION_COST_PER_PEER
            || self.cost + cost > MAX_SUBSCRIPTION_COST_PER_SOCKET
        {
            self.stats.subscriptions_refused += 1;
            if !std::mem::replace(&mut held.refusal_logged, true) {
                log::warn!(
                    "subscriptions refused for peer {key:?}: it holds {} bytes of a {MAX_SUBSCRIPTION_COST_PER_PEER} \
                     limit, the socket {} of {MAX_SUBSCRIPTION_COST_PER_SOCKET}",
                    held.cost,
                    self.cost
                );
            }
            return;
        }
        held.cost += cost;
        self.cost += cost;
        self.trie.add(topic, key);
        held.counts.insert(Bytes::copy_from_slice(topic), 1);
    }

    /// One subscription fewer of `key`'s peer to `topic`.
    pub fn cancel(&mut self, key: PeerKey, topic: &[u8]) {
        let Some(held) = self.topics.get_mut(&key) else { return };
        let Some(count) = held.counts.get_mut(topic) else { return };
        self.trie.remove(topic, key);
        *count -= 1;
        if *count == 0 {
            held.counts.remove(topic);
            let cost = subscription_cost(topic);
            held.cost -= cost;
            self.cost -= cost;
        }
    }

    /// Removes `key`'s peer with its subscriptions and queues.
    pub fn detach(&mut self, key: PeerKey) {
        let held = self.topics.remove(&key).unwrap_or_default();
        self.cost -= held.cost;
        for (topic, count) in held.counts {
            self.trie.remove_times(&topic, key, count);
        }
        self.peers.remove(key);
    }

    /// What every peer's subscriptions cost together, by `subscription_cost`.
    pub fn subscription_cost(&self) -> usize {
        self.cost
    }

    /// Queues `message` for every peer subscribed to a prefix of its first frame; a peer at its
    /// high-water mark misses it (`dropped_hwm`). Counted as sent when some peer got it.
    pub fn send(&mut self, message: Message) {
        let Some(first) = message.first() else { return };
        self.trie.matches(first, &mut self.matched);
        let Some((&last, rest)) = self.matched.split_last() else { return };
        let mut queued = false;
        for &key in rest {
            match self.peers.push_outbound(key, message.clone()) {
                Ok(()) => queued = true,
                Err(_) => self.stats.dropped_hwm += 1,
            }
        }
        match self.peers.push_outbound(last, message) {
            Ok(()) => queued = true,
            Err(_) => self.stats.dropped_hwm += 1,
        }
        self.stats.sent += u64::from(queued);
    }

    /// Distinct (peer, topic) subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.topics.values().map(|t| t.counts.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::testing::b;

    #[test]
    fn publisher_matches_prefixes_counts_subscriptions_and_drops_at_hwm() {
        let mut publisher = Publisher::new(&SocketOptions { send_hwm: 1, ..SocketOptions::default() });
        let a = publisher.peers.insert(Bytes::new());
        let all = publisher.peers.insert(Bytes::new());
        publisher.subscribe(a, b"A");
        publisher.subscribe(a, b"A");
        publisher.subscribe(all, b"");
        publisher.cancel(a, b"A");
        publisher.send(vec![b("AB"), b("part")]);
        publisher.send(vec![b("BA")]);
        assert_eq!(publisher.peers.pop_outbound(a), Some(vec![b("AB"), b("part")]));
        assert_eq!(publisher.peers.pop_outbound(a), None);
        assert_eq!(publisher.peers.pop_outbound(all), Some(vec![b("AB"), b("part")]));
        assert_eq!(publisher.stats.dropped_hwm, 1, "BA hit the full queue of the subscribe-all peer");
        publisher.cancel(a, b"A");
        publisher.send(vec![b("A")]);
        assert_eq!(publisher.peers.pop_outbound(a), None, "two cancels end two subscriptions");
    }

    #[test]
    fn one_peer_cannot_hold_more_than_a_mebibyte_of_subscriptions() {
        let mut publisher = Publisher::new(&SocketOptions::default());
        let peer = publisher.peers.insert(Bytes::new());
        let topic = |i: u8| {
            let mut topic = vec![i; 64 << 10];
            topic[0] = i;
            topic
        };
        for i in 0..20u8 {
            publisher.subscribe(peer, &topic(i));
        }
        // Each 64 KiB topic costs 2 x 64 KiB + overhead: 7 fit in the 1 MiB allowance.
        assert_eq!(publisher.subscription_count(), 7);
        assert_eq!(publisher.stats.subscriptions_refused, 13);
        publisher.subscribe(peer, &topic(0)); // a repeat is only a count
        publisher.cancel(peer, &topic(1));
        publisher.subscribe(peer, &topic(19));
        assert_eq!(publisher.subscription_count(), 7, "a cancel frees room for another topic");
        assert!(publisher.subscription_cost() <= MAX_SUBSCRIPTION_COST_PER_PEER);
        publisher.detach(peer);
        assert_eq!((publisher.subscription_count(), publisher.subscription_cost()), (0, 0));
    }

    #[test]
    fn all_peers_of_a_socket_together_are_bounded_too() {
        let mut publisher = Publisher::new(&SocketOptions::default());
        let peers: Vec<PeerKey> = (0..40).map(|_| publisher.peers.insert(Bytes::new())).collect();
        for (n, &peer) in peers.iter().enumerate() {
            for i in 0..7u32 {
                let mut topic = vec![b'x'; 64 << 10];
                topic[..8].copy_from_slice(&((n as u32) << 8 | i).to_be_bytes().repeat(2));
                publisher.subscribe(peer, &topic);
            }
        }
        assert!(publisher.subscription_cost() <= MAX_SUBSCRIPTION_COST_PER_SOCKET);
        assert!(publisher.subscription_count() < 40 * 7, "{}", publisher.subscription_count());
        assert!(publisher.stats.subscriptions_refused > 0);
    }
}
