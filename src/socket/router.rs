//! ROUTER: every message in gets its peer's identity frame in front; every message out is routed
//! by its first frame, which is stripped.
//!
//! Identities: the peer's READY `Identity` when it sent one (any bytes, a leading 0x00 included,
//! as libzmq accepts them), else a generated 5-byte `0x00` + counter. Duplicates: the first peer
//! keeps the identity and the newcomer holds no routing slot (libzmq's behaviour); with
//! `router_handover` the newcomer takes it and the old peer is disconnected.

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::HashMap;

use crate::socket::peers::{Inbound, PeerKey, Peers};
use crate::socket::{Message, SendError, SocketOptions, SocketStats};

/// What became of a peer that completed its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// It attached under this key (a ROUTER: with a routing slot).
    Attached(PeerKey),
    /// Its identity is taken: it stays connected but gets no routing slot; its input is dropped.
    Ignored,
    /// Handover: it took the identity from `evicted`, whose connection must be closed.
    TookOver {
        /// The newcomer's key.
        key: PeerKey,
        /// The peer that held the identity, already removed.
        evicted: PeerKey,
    },
}

/// A ROUTER socket: routes by identity frame, prepended on receive and stripped on send.
#[derive(Debug)]
pub struct Router {
    /// Its peers and their queues.
    pub peers: Peers,
    by_identity: HashMap<Bytes, PeerKey>,
    next_generated: u32,
    mandatory: bool,
    handover: bool,
    /// Its counters.
    pub stats: SocketStats,
}

impl Router {
    /// A ROUTER with no peers yet; generated identities count from a random start.
    pub fn new(options: &SocketOptions) -> Self {
        Self {
            peers: Peers::new(options),
            by_identity: HashMap::new(),
            // A start that differs between processes, as libzmq's.
            next_generated: crate::random::next_u64() as u32,
            mandatory: options.router_mandatory,
            handover: options.router_handover,
            stats: SocketStats::default(),
        }
    }

    /// A peer completed its handshake with `identity` (empty: one is generated). A taken identity
    /// leaves the newcomer `Ignored`, or with `router_handover` lets it take over.
    pub fn attach(&mut self, identity: Bytes) -> Attach {
        if identity.is_empty() {
            let identity = self.generate_identity();
            return Attach::Attached(self.insert(identity));
        }
        let Some(&existing) = self.by_identity.get(&identity) else {
            return Attach::Attached(self.insert(identity));
        };
        if !self.handover {
            return Attach::Ignored;
        }
        self.detach(existing);
        Attach::TookOver { key: self.insert(identity), evicted: existing }
    }

    /// Removes `key`'s peer and its queues, and frees its identity if that peer still held it.
    pub fn detach(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.remove(key) {
            if self.by_identity.get(&peer.identity) == Some(&key) {
                self.by_identity.remove(&peer.identity);
            }
        }
    }

    /// Looks up the peer holding `identity`.
    pub fn peer(&self, identity: &[u8]) -> Option<PeerKey> {
        self.by_identity.get(identity).copied()
    }

    /// A message arrived from `key`'s peer: queued with the peer's identity frame in front.
    pub fn deliver(&mut self, key: PeerKey, mut message: Message) -> Inbound {
        let Some(peer) = self.peers.get(key) else { return Inbound::More };
        message.insert(0, peer.identity.clone());
        self.peers.push_inbound(key, message)
    }

    /// Queues `message` for the peer its first frame names, that frame stripped. Fewer than two
    /// frames: refused (counted). An unknown identity or a full queue: dropped (counted), or
    /// refused with `router_mandatory`.
    pub fn send(&mut self, mut message: Message) -> Result<(), SendError> {
        if message.len() < 2 {
            self.stats.dropped_malformed += 1;
            return Err(SendError::NotSupported(message));
        }
        let Some(key) = self.peer(&message[0]) else {
            self.stats.dropped_unroutable += 1;
            return if self.mandatory { Err(SendError::Unroutable(message)) } else { Ok(()) };
        };
        if !self.peers.has_room(key) {
            self.stats.dropped_hwm += 1;
            return if self.mandatory { Err(SendError::WouldBlock(message)) } else { Ok(()) };
        }
        message.remove(0);
        // has_room was checked just above, so this cannot hand the message back.
        let _ = self.peers.push_outbound(key, message);
        self.stats.sent += 1;
        Ok(())
    }

    fn insert(&mut self, identity: Bytes) -> PeerKey {
        let key = self.peers.insert(identity.clone());
        self.by_identity.insert(identity, key);
        key
    }

    /// libzmq's scheme: 0x00 then a 32-bit big-endian counter from a random start.
    fn generate_identity(&mut self) -> Bytes {
        loop {
            let mut id = BytesMut::with_capacity(5);
            id.put_u8(0);
            id.put_u32(self.next_generated);
            self.next_generated = self.next_generated.wrapping_add(1);
            let id = id.freeze();
            if !self.by_identity.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::testing::{attached, b};

    #[test]
    fn router_prepends_identities_routes_by_them_and_drops_unroutable() {
        let mut router = Router::new(&SocketOptions::default());
        let alice = attached(router.attach(b("alice")));
        let anon = attached(router.attach(Bytes::new()));
        let anon_id = router.peers.get(anon).unwrap().identity.clone();
        assert_eq!(anon_id.len(), 5);
        assert_eq!(anon_id[0], 0);
        router.deliver(alice, vec![b("hi")]);
        assert_eq!(router.peers.pop_inbound().unwrap().1, vec![b("alice"), b("hi")]);
        router.send(vec![b("alice"), b("back")]).unwrap();
        assert_eq!(router.peers.pop_outbound(alice), Some(vec![b("back")]));
        router.send(vec![b("nobody"), b("x")]).unwrap();
        assert_eq!(router.stats.dropped_unroutable, 1);
    }

    #[test]
    fn router_accepts_identities_with_a_leading_zero_byte() {
        let mut router = Router::new(&SocketOptions::default());
        let id = Bytes::from_static(b"\x00\x01\x02\x03\x04\x05\x06\x07");
        let key = attached(router.attach(id.clone()));
        assert_eq!(router.peer(&id), Some(key));
    }

    #[test]
    fn router_mandatory_refuses_unroutable_and_full() {
        let options = SocketOptions { router_mandatory: true, send_hwm: 2, ..SocketOptions::default() };
        let mut router = Router::new(&options);
        router.attach(b("peer"));
        assert!(matches!(router.send(vec![b("nobody"), b("x")]), Err(SendError::Unroutable(_))));
        router.send(vec![b("peer"), b("1")]).unwrap();
        router.send(vec![b("peer"), b("2")]).unwrap();
        assert!(matches!(router.send(vec![b("peer"), b("3")]), Err(SendError::WouldBlock(_))));
    }

    #[test]
    fn router_duplicate_identity_policy() {
        let mut keep_first = Router::new(&SocketOptions::default());
        let first = attached(keep_first.attach(b("twin")));
        assert_eq!(keep_first.attach(b("twin")), Attach::Ignored);
        assert_eq!(keep_first.peer(b"twin"), Some(first));

        let mut handover = Router::new(&SocketOptions { router_handover: true, ..SocketOptions::default() });
        let old = attached(handover.attach(b("twin")));
        let Attach::TookOver { key, evicted } = handover.attach(b("twin")) else { panic!() };
        assert_eq!(evicted, old);
        assert_eq!(handover.peer(b"twin"), Some(key));
    }

    #[test]
    fn router_fair_queues_whole_messages_across_peers() {
        let mut router = Router::new(&SocketOptions::default());
        let peers: Vec<PeerKey> = ["a", "b", "c"].iter().map(|id| attached(router.attach(b(id)))).collect();
        for round in 0..3 {
            for &peer in &peers {
                router.deliver(peer, vec![b(&format!("m{round}")), b("tail")]);
            }
        }
        let order: Vec<(Bytes, Bytes)> = std::iter::from_fn(|| router.peers.pop_inbound())
            .map(|(_, m, _)| (m[0].clone(), m[1].clone()))
            .collect();
        let expected: Vec<(Bytes, Bytes)> =
            (0..3).flat_map(|r| ["a", "b", "c"].map(|id| (b(id), b(&format!("m{r}"))))).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn inbound_hwm_pauses_and_resumes_reading() {
        let options = SocketOptions { recv_hwm: 2, ..SocketOptions::default() };
        let mut router = Router::new(&options);
        let peer = attached(router.attach(b("p")));
        assert_eq!(router.deliver(peer, vec![b("1")]), Inbound::More);
        assert_eq!(router.deliver(peer, vec![b("2")]), Inbound::Full);
        let (_, _, resumed) = router.peers.pop_inbound().unwrap();
        assert!(resumed, "dropping below the HWM must resume reading");
    }
}
