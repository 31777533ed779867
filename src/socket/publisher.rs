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

#[derive(Debug)]
pub struct Publisher {
    pub peers: Peers,
    trie: Trie<PeerKey>,
    /// Each peer's topics and counts, so a departing peer's subscriptions can be removed.
    topics: HashMap<PeerKey, PeerTopics>,
    matched: Vec<PeerKey>,
    /// Cost of every peer's subscriptions together.
    cost: usize,
    pub stats: SocketStats,
}

impl Publisher {
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

    pub fn send(&mut self, message: Message) {
        let Some(first) = message.first() else { return };
        self.trie.matches(first, &mut self.matched);
        let Some((&last, rest)) = self.matched.split_last() else { return };
        for &key in rest {
            if self.peers.push_outbound(key, message.clone()).is_err() {
                self.stats.dropped_hwm += 1;
            }
        }
        if self.peers.push_outbound(last, message).is_err() {
            self.stats.dropped_hwm += 1;
        }
    }

    /// Distinct (peer, topic) subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.topics.values().map(|t| t.counts.len()).sum()
    }
}
