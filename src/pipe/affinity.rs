//! Reply affinity for the worker pipe: a worker's reply goes back to the broker that dispatched
//! its request, not round-robin to any broker, so the broker that keeps the books on a request
//! (and would otherwise answer it TIMEOUT) is the one that sees its reply.
//!
//! The pipe reads EZ Arch frames only for this (PROTOCOL.md §2): dispatches `[WORKER, "", CLIENT,
//! REQ_ID, BODY...]` arriving from a broker, and replies `[WORKER, "", 0x01, 0x02, CLIENT, "",
//! REQ_ID, REPLY...]` arriving from a worker. Anything else is forwarded as before. The table
//! holds at most `MAX_ENTRIES` dispatches; the oldest go first (their replies then go
//! round-robin, as with a plain pipe). Every dispatch is noted, even with one broker attached:
//! a second one may attach before the reply comes, and a reply it got could not be answered
//! by it (a broker not yet attached to the in pipe drops it, and the dispatcher, which keeps the
//! books, would then swallow the client's retry as a duplicate).

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::broker::{wire, KeyHasher, RequestKey};
use crate::socket::{Message, PeerKey};

/// Dispatches remembered at most.
pub const MAX_ENTRIES: usize = 100_000;

/// Which broker dispatched each request through the worker pipe, for its reply.
#[derive(Debug, Default)]
pub struct Affinity {
    hasher: KeyHasher,
    /// Which broker (the pipe's DEALER peer) dispatched each request, and when (a sequence).
    senders: HashMap<RequestKey, (PeerKey, u64)>,
    /// Keys in dispatch order, for evicting the oldest; stale ones (already replied) skipped.
    order: VecDeque<(u64, RequestKey)>,
    next_seq: u64,
    /// Replies sent to the broker that dispatched them.
    pub routed: u64,
}

impl Affinity {
    /// A message a broker sent through the pipe: remembers who dispatched it.
    pub fn note_dispatch(&mut self, from: PeerKey, message: &Message) {
        if message.len() < 4 || !message[1].is_empty() {
            return;
        }
        let key = self.hasher.key(&message[2], &message[3]);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.senders.insert(key, (from, seq));
        self.order.push_back((seq, key));
        while self.senders.len() > MAX_ENTRIES || self.order.len() > 2 * MAX_ENTRIES {
            let Some((seq, key)) = self.order.pop_front() else { break };
            if self.senders.get(&key).is_some_and(|&(_, s)| s == seq) {
                self.senders.remove(&key);
            }
        }
    }

    /// A message a worker sent through the pipe: the broker that dispatched it, for a reply
    /// whose dispatch was seen.
    pub fn reply_to(&mut self, message: &Message) -> Option<PeerKey> {
        let is_reply = message.len() >= 7
            && message[1].is_empty()
            && message[2] == wire::WORKER
            && message[3] == wire::REPLY
            && message[5].is_empty();
        if !is_reply {
            return None;
        }
        let key = self.hasher.key(&message[4], &message[6]);
        let (peer, _) = self.senders.remove(&key)?;
        if self.senders.is_empty() {
            self.order.clear(); // everything in it is stale
        }
        Some(peer)
    }

    /// Dispatches remembered now.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether no dispatch is remembered.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frames(parts: &[&[u8]]) -> Message {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    #[test]
    fn a_reply_goes_to_the_broker_that_dispatched_its_request() {
        let mut affinity = Affinity::default();
        affinity.note_dispatch(PeerKey(1), &frames(&[b"w1", b"", b"c1", b"r1", b"/echo"]));
        affinity.note_dispatch(PeerKey(2), &frames(&[b"w1", b"", b"c2", b"r1", b"/echo"]));
        let reply = |client: &[u8]| frames(&[b"w1", b"", b"\x01", b"\x02", client, b"", b"r1", b"OK"]);
        assert_eq!(affinity.reply_to(&reply(b"c2")), Some(PeerKey(2)));
        assert_eq!(affinity.reply_to(&reply(b"c1")), Some(PeerKey(1)));
        assert_eq!(affinity.reply_to(&reply(b"c1")), None, "remembered once");
        let heartbeat = frames(&[b"w1", b"", b"\x01", b"\x01", b"svc"]);
        assert_eq!(affinity.reply_to(&heartbeat), None);
        assert!(affinity.is_empty());
    }

    #[test]
    fn the_table_keeps_at_most_max_entries_dropping_the_oldest() {
        let mut affinity = Affinity::default();
        for i in 0..MAX_ENTRIES + 10 {
            let req = i.to_string();
            affinity.note_dispatch(PeerKey(1), &frames(&[b"w", b"", b"c", req.as_bytes()]));
        }
        assert_eq!(affinity.len(), MAX_ENTRIES);
        let reply = |req: &str| frames(&[b"w", b"", b"\x01", b"\x02", b"c", b"", req.as_bytes()]);
        assert_eq!(affinity.reply_to(&reply("0")), None, "the oldest went first");
        assert_eq!(affinity.reply_to(&reply(&(MAX_ENTRIES + 9).to_string())), Some(PeerKey(1)));
    }
}
