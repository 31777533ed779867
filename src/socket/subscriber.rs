//! SUB: keeps counted subscriptions, tells every publisher about each distinct topic (and again
//! after every reconnect), and filters what arrives by the same prefixes, as libzmq does.

use bytes::Bytes;
use hashbrown::HashMap;

use crate::socket::peers::{Inbound, PeerKey, Peers};
use crate::socket::trie::Trie;
use crate::socket::{Message, SocketOptions, SocketStats};

/// A SUB socket: counted subscriptions, and what arrives filtered by their prefixes.
#[derive(Debug)]
pub struct Subscriber {
    /// Its peers and their queues.
    pub peers: Peers,
    topics: HashMap<Bytes, u32>,
    filter: Trie<()>,
    matched: Vec<()>,
    /// Its counters.
    pub stats: SocketStats,
}

impl Subscriber {
    /// A SUB with no peers or subscriptions yet.
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            peers: Peers::new(options),
            topics: HashMap::new(),
            filter: Trie::new(),
            matched: Vec::new(),
            stats: SocketStats::default(),
        }
    }

    /// Counts a subscription; true when the topic is new and publishers must be told.
    pub fn subscribe(&mut self, topic: Bytes) -> bool {
        self.filter.add(&topic, ());
        let count = self.topics.entry(topic).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Drops one count; true when the topic is gone and publishers must be told.
    pub fn cancel(&mut self, topic: &Bytes) -> bool {
        let Some(count) = self.topics.get_mut(topic) else { return false };
        self.filter.remove(topic, ());
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.topics.remove(topic);
        true
    }

    /// The distinct topics, to resend after a (re)connect.
    pub fn topics(&self) -> impl Iterator<Item = &Bytes> {
        self.topics.keys()
    }

    /// A message arrived from `key`'s peer: queued when its first frame starts with a subscribed
    /// topic, otherwise dropped.
    pub fn deliver(&mut self, key: PeerKey, message: Message) -> Inbound {
        let first = message.first().map_or(&[][..], |f| &f[..]);
        self.filter.matches(first, &mut self.matched);
        if self.matched.is_empty() {
            return Inbound::More;
        }
        self.peers.push_inbound(key, message)
    }
}
