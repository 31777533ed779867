//! ZeroMQ socket semantics as plain structs: peers attach and detach, messages come in from peers
//! and go out to them; no I/O here. The reactor moves messages between these and connections.
//!
//! - `Router`: routes by identity frame (prepended on receive, stripped on send).
//! - `Dealer`: round-robin out, fair-queued in.
//! - `Publisher`: prefix-matched fan-out; drops for a subscriber at its high-water mark.
//! - `Subscriber`: counted subscriptions sent to every publisher, filtered locally too.

mod compact;
mod dealer;
mod peers;
mod publisher;
mod router;
mod subscriber;
mod trie;

use std::time::Duration;

use bytes::Bytes;
pub use compact::{compact, COMPACT_FRAME_MAX};
pub use dealer::Dealer;
pub use peers::{message_cost, Inbound, PeerKey, Peers, PRESSURE_RESERVE};
pub use publisher::{
    subscription_cost, Publisher, MAX_SUBSCRIPTION_COST_PER_PEER, MAX_SUBSCRIPTION_COST_PER_SOCKET,
    SUBSCRIPTION_OVERHEAD,
};
pub use router::{Attach, Router};
pub use subscriber::Subscriber;
pub use zmtp::SocketType;
use zmtp::{Heartbeat, Limits, Metadata};

/// A multipart message: frames as `Bytes` views, moved between sockets without copying.
pub type Message = zmtp::Message;

/// libzmq's default high-water mark, in messages, per peer and direction.
pub const DEFAULT_HWM: usize = 1000;
/// Default byte budget of one peer's queue in one direction.
pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;

/// Per-socket settings. `Default` gives libzmq-like values.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Identity announced in READY (DEALER, ROUTER); empty lets the peer ROUTER pick one.
    pub identity: Bytes,
    /// Outbound messages queued per peer before sends drop (ROUTER, PUB) or refuse (DEALER).
    pub send_hwm: usize,
    /// Inbound messages queued per peer before we stop reading from it.
    pub recv_hwm: usize,
    /// ROUTER: refuse unroutable or full sends with an error instead of dropping them.
    pub router_mandatory: bool,
    /// ROUTER: a new peer with an identity in use takes it over (the old one is disconnected).
    /// Off by default: the first keeps it and the newcomer is ignored, as in libzmq.
    pub router_handover: bool,
    /// When to send PINGs and when silence closes a connection (ZMTP 3.1); off by default.
    pub heartbeat: Heartbeat,
    /// How long a connection's greeting and handshake may take before it is closed.
    pub handshake_timeout: Duration,
    /// First reconnect delay (libzmq `ZMQ_RECONNECT_IVL`).
    pub reconnect_ivl: Duration,
    /// Reconnect delays double, with jitter, up to this.
    pub reconnect_ivl_max: Duration,
    /// Caps on what a peer may declare: frame, message, command and metadata sizes, frames per message.
    pub limits: Limits,
    /// Extra READY properties (`X-*`).
    pub metadata: Metadata,
    /// Encoded bytes a connection may hold before it stops taking messages from its queue.
    pub write_budget: usize,
    /// Payload bytes each peer's inbound or outbound queue may hold besides its HWM (a queue of
    /// 1000 messages of 16 MiB would otherwise be 16 GiB).
    pub queue_bytes: usize,
    /// DEALER: when a peer goes away, what was queued for it and not yet handed to its
    /// connection goes to the other peers instead of being discarded (libzmq discards).
    pub dealer_reroute: bool,
    /// CURVE (RFC 26) on every connection of this socket: `Curve::Server` for a socket that
    /// binds and authenticates clients, `Curve::Client` with the server's key for one that
    /// connects. `None`: NULL (no security).
    pub curve: Option<zmtp::curve::Curve>,
    /// Which door of the node this socket's listeners are, for connection slots
    /// (`reactor::Admission`); `None` for the shared slots only.
    pub door: Option<crate::door::Door>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            identity: Bytes::new(),
            send_hwm: DEFAULT_HWM,
            recv_hwm: DEFAULT_HWM,
            router_mandatory: false,
            router_handover: false,
            heartbeat: Heartbeat::default(),
            handshake_timeout: Duration::from_secs(10),
            reconnect_ivl: Duration::from_millis(100),
            reconnect_ivl_max: Duration::from_secs(2),
            limits: Limits::default(),
            metadata: Metadata::new(),
            write_budget: 1 << 20,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            dealer_reroute: false,
            curve: None,
            door: None,
        }
    }
}

/// Why a send was refused. The message comes back so nothing is lost silently.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No peer can take it now (DEALER with full queues; ROUTER MANDATORY at HWM).
    WouldBlock(Message),
    /// ROUTER MANDATORY: no peer has that identity.
    Unroutable(Message),
    /// This socket type does not send data (SUB), or the message was empty.
    NotSupported(Message),
}

/// A one-line description of a send error, without the message's bytes.
pub fn describe(error: &SendError) -> &'static str {
    match error {
        SendError::WouldBlock(_) => "no peer can take it now",
        SendError::Unroutable(_) => "no peer has that identity",
        SendError::NotSupported(_) => "not supported by this socket type",
    }
}

/// A subscription made or dropped, by a SUB or by a peer of a PUB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicChange {
    /// SUBSCRIBE: messages whose first frame starts with the topic are wanted.
    Subscribe,
    /// CANCEL: one subscription to the topic is dropped.
    Cancel,
}

/// Counters a socket keeps; all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Messages queued for a peer (for at least one, PUB). Sends dropped are counted below, not
    /// here; a PUB message no peer subscribed to is neither (filtered out, as in libzmq).
    pub sent: u64,
    /// Messages the application received (`recv`).
    pub received: u64,
    /// ROUTER sends to an identity no peer has.
    pub dropped_unroutable: u64,
    /// Sends dropped because the peer's queue was full (ROUTER, PUB).
    pub dropped_hwm: u64,
    /// Messages refused as malformed (e.g. a ROUTER send with no identity frame).
    pub dropped_malformed: u64,
    /// Messages from peers that hold no routing slot (duplicate identities).
    pub dropped_ignored_peer: u64,
    /// Connections closed for bad input, timeouts, the memory budget or a revoked CURVE key.
    pub peers_failed: u64,
    /// PUB: subscriptions refused because a peer's or the socket's subscriptions cost too much.
    pub subscriptions_refused: u64,
}

impl std::ops::AddAssign for SocketStats {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.received += other.received;
        self.dropped_unroutable += other.dropped_unroutable;
        self.dropped_hwm += other.dropped_hwm;
        self.dropped_malformed += other.dropped_malformed;
        self.dropped_ignored_peer += other.dropped_ignored_peer;
        self.peers_failed += other.peers_failed;
        self.subscriptions_refused += other.subscriptions_refused;
    }
}

/// One socket of any of the four types.
#[derive(Debug)]
pub enum Socket {
    /// A ROUTER.
    Router(Router),
    /// A DEALER.
    Dealer(Dealer),
    /// A PUB.
    Pub(Publisher),
    /// A SUB.
    Sub(Subscriber),
}

impl Socket {
    /// A socket of `socket_type` with no peers; `None` for a type other than ROUTER, DEALER, PUB and SUB.
    pub fn new(socket_type: SocketType, options: &SocketOptions) -> Option<Self> {
        Some(match socket_type {
            SocketType::Router => Socket::Router(Router::new(options)),
            SocketType::Dealer => Socket::Dealer(Dealer::new(options)),
            SocketType::Pub => Socket::Pub(Publisher::new(options)),
            SocketType::Sub => Socket::Sub(Subscriber::new(options)),
            _ => return None,
        })
    }

    /// Which of the four types this is.
    pub fn socket_type(&self) -> SocketType {
        match self {
            Socket::Router(_) => SocketType::Router,
            Socket::Dealer(_) => SocketType::Dealer,
            Socket::Pub(_) => SocketType::Pub,
            Socket::Sub(_) => SocketType::Sub,
        }
    }

    /// The socket's peers and their queues.
    pub fn peers(&self) -> &Peers {
        match self {
            Socket::Router(s) => &s.peers,
            Socket::Dealer(s) => &s.peers,
            Socket::Pub(s) => &s.peers,
            Socket::Sub(s) => &s.peers,
        }
    }

    /// The socket's peers and their queues, to change.
    pub fn peers_mut(&mut self) -> &mut Peers {
        match self {
            Socket::Router(s) => &mut s.peers,
            Socket::Dealer(s) => &mut s.peers,
            Socket::Pub(s) => &mut s.peers,
            Socket::Sub(s) => &mut s.peers,
        }
    }

    /// What this socket's queues hold, by `message_cost` (a DEALER's no-peer queue included).
    pub fn queued_bytes(&self) -> usize {
        let waiting = match self {
            Socket::Dealer(s) => s.waiting_bytes(),
            _ => 0,
        };
        self.peers().queued_bytes() + waiting
    }

    /// The socket's counters.
    pub fn stats(&self) -> &SocketStats {
        match self {
            Socket::Router(s) => &s.stats,
            Socket::Dealer(s) => &s.stats,
            Socket::Pub(s) => &s.stats,
            Socket::Sub(s) => &s.stats,
        }
    }

    /// The socket's counters, to count into.
    pub fn stats_mut(&mut self) -> &mut SocketStats {
        match self {
            Socket::Router(s) => &mut s.stats,
            Socket::Dealer(s) => &mut s.stats,
            Socket::Pub(s) => &mut s.stats,
            Socket::Sub(s) => &mut s.stats,
        }
    }

    /// A peer completed its handshake (or an in-process peer joined).
    pub fn attach(&mut self, identity: Bytes) -> Attach {
        match self {
            Socket::Router(s) => s.attach(identity),
            Socket::Dealer(s) => Attach::Attached(s.attach(identity)),
            Socket::Pub(s) => Attach::Attached(s.peers.insert(identity)),
            Socket::Sub(s) => Attach::Attached(s.peers.insert(identity)),
        }
    }

    /// A connect to an endpoint began. DEALER: returns a peer that stands for that endpoint
    /// across reconnects, so what is queued on it is delivered after the next handshake; each
    /// connection then attaches with `reconnected`. Other types: `None`, a peer per connection
    /// (`attach`).
    pub fn connecting(&mut self) -> Option<PeerKey> {
        match self {
            Socket::Dealer(s) => Some(s.attach_persistent()),
            _ => None,
        }
    }

    /// A connection for `key` (from `connecting`) completed its handshake with `identity`.
    pub fn reconnected(&mut self, key: PeerKey, identity: Bytes) -> Attach {
        match self.peers_mut().reconnect(key, identity.clone()) {
            true => Attach::Attached(key),
            false => self.attach(identity),
        }
    }

    /// A peer's connection went away. Returns true when the peer stays to wait for a reconnect
    /// (from `connecting`), its queue kept; otherwise the peer and its queue are gone.
    pub fn detach(&mut self, key: PeerKey) -> bool {
        match self {
            Socket::Router(s) => s.detach(key),
            Socket::Dealer(s) => return s.detach(key),
            Socket::Pub(s) => s.detach(key),
            Socket::Sub(s) => {
                s.peers.remove(key);
            }
        }
        false
    }

    /// The peer announcing `identity`: the ROUTER's routing table, or any peer with that
    /// identity for other types.
    pub fn find_peer(&self, identity: &[u8]) -> Option<PeerKey> {
        match self {
            Socket::Router(router) => router.peer(identity),
            _ => {
                let peers = self.peers();
                peers.keys().find(|&k| peers.get(k).is_some_and(|p| p.identity == identity))
            }
        }
    }

    /// The topics this socket asks every peer for (SUB), to tell a peer that just attached;
    /// none for other types.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Bytes> {
        let topics = match self {
            Socket::Sub(s) => Some(s.topics()),
            _ => None,
        };
        topics.into_iter().flatten()
    }

    /// SUB: counts a subscription made or dropped by the application. Returns whether every
    /// peer must be told (the first subscription to a topic, or the last one dropped); `None`
    /// when this is not a SUB.
    pub fn change_subscription(&mut self, topic: &Bytes, change: TopicChange) -> Option<bool> {
        let Socket::Sub(subscriber) = self else { return None };
        Some(match change {
            TopicChange::Subscribe => subscriber.subscribe(topic.clone()),
            TopicChange::Cancel => subscriber.cancel(topic),
        })
    }

    /// Peer `key` subscribed or cancelled: a PUB records it; other types ignore it (RFC 29).
    pub fn peer_subscription(&mut self, key: PeerKey, topic: &[u8], change: TopicChange) {
        if let Socket::Pub(publisher) = self {
            match change {
                TopicChange::Subscribe => publisher.subscribe(key, topic),
                TopicChange::Cancel => publisher.cancel(key, topic),
            }
        }
    }

    /// PUB: distinct (peer, topic) subscriptions held; 0 for other types.
    pub fn subscription_count(&self) -> usize {
        match self {
            Socket::Pub(publisher) => publisher.subscription_count(),
            _ => 0,
        }
    }

    /// A message arrived from `key`'s peer.
    pub fn deliver(&mut self, key: PeerKey, message: Message) -> Inbound {
        match self {
            Socket::Router(s) => s.deliver(key, message),
            Socket::Dealer(s) => s.peers.push_inbound(key, message),
            Socket::Sub(s) => s.deliver(key, message),
            // RFC 29: a publisher drops data from subscribers.
            Socket::Pub(_) => Inbound::More,
        }
    }

    /// Takes the next inbound message with its peer and whether that peer just dropped below its
    /// high-water mark (`Peers::pop_inbound`); counts it as received.
    pub fn recv(&mut self) -> Option<(PeerKey, Message, bool)> {
        let next = self.peers_mut().pop_inbound();
        if next.is_some() {
            self.stats_mut().received += 1;
        }
        next
    }

    /// DEALER: queues `message` for the peer of `key` only; other types do not support it.
    pub fn send_to(&mut self, key: PeerKey, message: Message) -> Result<(), SendError> {
        let Socket::Dealer(dealer) = self else { return Err(SendError::NotSupported(message)) };
        dealer.send_to(key, message)
    }

    /// Queues `message` by the socket type's rule (see the module doc).
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if message.is_empty() {
            return Err(SendError::NotSupported(message));
        }
        match self {
            Socket::Router(s) => s.send(message),
            Socket::Dealer(s) => s.send(message),
            Socket::Pub(s) => {
                s.send(message);
                Ok(())
            }
            Socket::Sub(_) => Err(SendError::NotSupported(message)),
        }
    }
}

/// Helpers for the socket modules' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Attach, PeerKey};
    use bytes::Bytes;

    /// A frame from a string.
    pub fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// The key of a peer that attached; panics on `Ignored` or `TookOver`.
    pub fn attached(attach: Attach) -> PeerKey {
        match attach {
            Attach::Attached(key) => key,
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{attached, b};
    use super::*;

    fn socket(socket_type: SocketType) -> Socket {
        Socket::new(socket_type, &SocketOptions::default()).unwrap()
    }

    #[test]
    fn a_connecting_dealers_peer_and_its_queue_outlive_each_connection() {
        let mut dealer = socket(SocketType::Dealer);
        let peer = dealer.connecting().unwrap();
        dealer.send(vec![b("before the first connection")]).unwrap();
        assert_eq!(attached(dealer.reconnected(peer, b("server"))), peer);
        assert!(dealer.detach(peer), "the peer waits for the reconnect");
        dealer.send(vec![b("during the outage")]).unwrap();
        assert_eq!(attached(dealer.reconnected(peer, b("server"))), peer);
        let queued: Vec<_> = std::iter::from_fn(|| dealer.peers_mut().pop_outbound(peer)).collect();
        assert_eq!(queued, vec![vec![b("before the first connection")], vec![b("during the outage")]]);
    }

    #[test]
    fn other_types_attach_a_peer_per_connection_and_drop_it_with_the_connection() {
        for socket_type in [SocketType::Router, SocketType::Pub, SocketType::Sub] {
            let mut socket = socket(socket_type);
            assert_eq!(socket.connecting(), None, "{socket_type}");
            let peer = attached(socket.attach(b("peer")));
            assert!(!socket.detach(peer), "{socket_type}");
            assert!(socket.peers().get(peer).is_none(), "{socket_type}");
        }
        let mut dealer = socket(SocketType::Dealer);
        let bound = attached(dealer.attach(b("peer")));
        assert!(!dealer.detach(bound), "a binding DEALER's peer goes with its connection");
    }

    #[test]
    fn a_sub_tells_new_peers_each_distinct_topic_and_a_pub_records_what_peers_ask() {
        let mut sub = socket(SocketType::Sub);
        assert_eq!(sub.change_subscription(&b("news"), TopicChange::Subscribe), Some(true));
        assert_eq!(sub.change_subscription(&b("news"), TopicChange::Subscribe), Some(false), "counted");
        assert_eq!(sub.subscriptions().collect::<Vec<_>>(), vec![&b("news")]);
        assert_eq!(sub.change_subscription(&b("news"), TopicChange::Cancel), Some(false));
        assert_eq!(sub.change_subscription(&b("news"), TopicChange::Cancel), Some(true), "last one");
        assert_eq!(sub.subscriptions().count(), 0);

        let mut publisher = socket(SocketType::Pub);
        assert_eq!(publisher.change_subscription(&b("news"), TopicChange::Subscribe), None);
        assert_eq!(publisher.subscriptions().count(), 0);
        let peer = attached(publisher.attach(Bytes::new()));
        publisher.peer_subscription(peer, b"news", TopicChange::Subscribe);
        assert_eq!(publisher.subscription_count(), 1);
        publisher.send(vec![b("news"), b("today")]).unwrap();
        publisher.send(vec![b("sports")]).unwrap();
        assert_eq!(publisher.peers_mut().pop_outbound(peer), Some(vec![b("news"), b("today")]));
        assert_eq!(publisher.peers_mut().pop_outbound(peer), None);
        publisher.peer_subscription(peer, b"news", TopicChange::Cancel);
        assert_eq!(publisher.subscription_count(), 0);

        let mut router = socket(SocketType::Router);
        let peer = attached(router.attach(b("peer")));
        router.peer_subscription(peer, b"news", TopicChange::Subscribe); // ignored, RFC 29
        assert_eq!(router.subscription_count(), 0);
    }

    #[test]
    fn sent_counts_only_messages_queued_for_a_peer() {
        let options = SocketOptions { send_hwm: 1, ..SocketOptions::default() };
        let mut router = Socket::new(SocketType::Router, &options).unwrap();
        attached(router.attach(b("peer")));
        router.send(vec![b("peer"), b("1")]).unwrap();
        router.send(vec![b("peer"), b("2")]).unwrap(); // at its high-water mark: dropped
        router.send(vec![b("nobody"), b("3")]).unwrap(); // unroutable: dropped
        let stats = *router.stats();
        assert_eq!((stats.sent, stats.dropped_hwm, stats.dropped_unroutable), (1, 1, 1));

        let mut publisher = Socket::new(SocketType::Pub, &options).unwrap();
        let peer = attached(publisher.attach(Bytes::new()));
        publisher.peer_subscription(peer, b"", TopicChange::Subscribe);
        publisher.send(vec![b("1")]).unwrap();
        publisher.send(vec![b("2")]).unwrap(); // its only subscriber is full
        let stats = *publisher.stats();
        assert_eq!((stats.sent, stats.dropped_hwm), (1, 1));

        let mut dealer = Socket::new(SocketType::Dealer, &options).unwrap();
        let peer = attached(dealer.attach(Bytes::new()));
        dealer.send_to(peer, vec![b("1")]).unwrap();
        assert!(dealer.send(vec![b("2")]).is_err());
        assert_eq!(dealer.stats().sent, 1);
    }

    #[test]
    fn find_peer_uses_the_routing_table_on_a_router_and_announced_identities_elsewhere() {
        let mut router = socket(SocketType::Router);
        let alice = attached(router.attach(b("alice")));
        assert_eq!(router.find_peer(b"alice"), Some(alice));
        assert_eq!(router.find_peer(b"bob"), None);
        let mut dealer = socket(SocketType::Dealer);
        let broker = attached(dealer.attach(b("broker-1")));
        assert_eq!(dealer.find_peer(b"broker-1"), Some(broker));
    }
}
