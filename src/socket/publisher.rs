//! PUB: each message goes to every peer with a subscription that prefixes its first frame; a
//! peer at its high-water mark misses it (counted) and the others are not slowed.
//! Subscriptions are counted per peer, so "A" twice needs two cancels.

use bytes::Bytes;
use hashbrown::HashMap;

use crate::socket::pipes::{PipeKey, Pipes};
use crate::socket::trie::Trie;
use crate::socket::{Message, SocketOptions, SocketStats};

/// Most distinct topics one peer may hold; more are ignored (and logged) to bound memory.
pub const MAX_TOPICS_PER_PEER: usize = 1 << 20;
/// Most bytes of distinct topics one peer may hold (the trie spends a node per byte).
pub const MAX_TOPIC_BYTES_PER_PEER: usize = 1 << 20;

#[derive(Debug, Default)]
struct PeerTopics {
    counts: HashMap<Bytes, u32>,
    /// Bytes of the distinct topics in `counts`.
    bytes: usize,
}

#[derive(Debug)]
pub struct Publisher {
    pub pipes: Pipes,
    trie: Trie<PipeKey>,
    /// Each peer's topics and counts, so a departing peer's subscriptions can be removed.
    topics: HashMap<PipeKey, PeerTopics>,
    matched: Vec<PipeKey>,
    pub stats: SocketStats,
}

impl Publisher {
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            pipes: Pipes::new(options),
            trie: Trie::new(),
            topics: HashMap::new(),
            matched: Vec::new(),
            stats: SocketStats::default(),
        }
    }

    pub fn subscribe(&mut self, key: PipeKey, topic: Bytes) {
        if self.pipes.get(key).is_none() {
            return;
        }
        let held = self.topics.entry(key).or_default();
        if !held.counts.contains_key(&topic) {
            if held.counts.len() >= MAX_TOPICS_PER_PEER || held.bytes + topic.len() > MAX_TOPIC_BYTES_PER_PEER
            {
                log::info!("peer {key:?} holds too many subscriptions; {} more bytes ignored", topic.len());
                return;
            }
            held.bytes += topic.len();
        }
        self.trie.add(&topic, key);
        *held.counts.entry(topic).or_insert(0) += 1;
    }

    pub fn cancel(&mut self, key: PipeKey, topic: &Bytes) {
        let Some(held) = self.topics.get_mut(&key) else { return };
        let Some(count) = held.counts.get_mut(topic) else { return };
        self.trie.remove(topic, key);
        *count -= 1;
        if *count == 0 {
            held.counts.remove(topic);
            held.bytes -= topic.len();
        }
    }

    pub fn detach(&mut self, key: PipeKey) {
        for (topic, count) in self.topics.remove(&key).unwrap_or_default().counts {
            self.trie.remove_times(&topic, key, count);
        }
        self.pipes.remove(key);
    }

    pub fn send(&mut self, message: Message) {
        let Some(first) = message.first() else { return };
        self.trie.matches(first, &mut self.matched);
        let Some((&last, rest)) = self.matched.split_last() else { return };
        for &key in rest {
            if self.pipes.push_outbound(key, message.clone()).is_err() {
                self.stats.dropped_hwm += 1;
            }
        }
        if self.pipes.push_outbound(last, message).is_err() {
            self.stats.dropped_hwm += 1;
        }
    }

    /// Distinct (peer, topic) subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.topics.values().map(|t| t.counts.len()).sum()
    }
}
