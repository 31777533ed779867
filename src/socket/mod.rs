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
pub use trie::Trie;
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
    pub heartbeat: Heartbeat,
    pub handshake_timeout: Duration,
    /// First reconnect delay (libzmq `ZMQ_RECONNECT_IVL`).
    pub reconnect_ivl: Duration,
    /// Reconnect delays double, with jitter, up to this.
    pub reconnect_ivl_max: Duration,
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

/// Counters a socket keeps; all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub sent: u64,
    pub received: u64,
    /// ROUTER sends to an identity no peer has.
    pub dropped_unroutable: u64,
    /// Sends dropped because the peer's queue was full (ROUTER, PUB).
    pub dropped_hwm: u64,
    /// Messages refused as malformed (e.g. a ROUTER send with no identity frame).
    pub dropped_malformed: u64,
    /// Messages from peers that hold no routing slot (duplicate identities).
    pub dropped_ignored_peer: u64,
    /// Connections closed for bad input or timeouts.
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
    Router(Router),
    Dealer(Dealer),
    Pub(Publisher),
    Sub(Subscriber),
}

impl Socket {
    pub fn new(socket_type: SocketType, options: &SocketOptions) -> Option<Self> {
        Some(match socket_type {
            SocketType::Router => Socket::Router(Router::new(options)),
            SocketType::Dealer => Socket::Dealer(Dealer::new(options)),
            SocketType::Pub => Socket::Pub(Publisher::new(options)),
            SocketType::Sub => Socket::Sub(Subscriber::new(options)),
            _ => return None,
        })
    }

    pub fn socket_type(&self) -> SocketType {
        match self {
            Socket::Router(_) => SocketType::Router,
            Socket::Dealer(_) => SocketType::Dealer,
            Socket::Pub(_) => SocketType::Pub,
            Socket::Sub(_) => SocketType::Sub,
        }
    }

    pub fn peers(&self) -> &Peers {
        match self {
            Socket::Router(s) => &s.peers,
            Socket::Dealer(s) => &s.peers,
            Socket::Pub(s) => &s.peers,
            Socket::Sub(s) => &s.peers,
        }
    }

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

    pub fn stats(&self) -> &SocketStats {
        match self {
            Socket::Router(s) => &s.stats,
            Socket::Dealer(s) => &s.stats,
            Socket::Pub(s) => &s.stats,
            Socket::Sub(s) => &s.stats,
        }
    }

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
            Socket::Pub(s) => Attach::Attached(s.peers.insert(identity, true)),
            Socket::Sub(s) => Attach::Attached(s.peers.insert(identity, true)),
        }
    }

    /// A peer left. `keep_queue` keeps a connecting side's peer and its queue for the reconnect.
    pub fn detach(&mut self, key: PeerKey, keep_queue: bool) {
        match self {
            Socket::Router(s) => s.detach(key),
            Socket::Dealer(s) => s.detach(key, keep_queue),
            Socket::Pub(s) => s.detach(key),
            Socket::Sub(s) => {
                s.peers.remove(key);
            }
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
        dealer.send_to(key, message)?;
        dealer.stats.sent += 1;
        Ok(())
    }

    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if message.is_empty() {
            return Err(SendError::NotSupported(message));
        }
        let result = match self {
            Socket::Router(s) => s.send(message),
            Socket::Dealer(s) => s.send(message),
            Socket::Pub(s) => {
                s.send(message);
                Ok(())
            }
            Socket::Sub(_) => Err(SendError::NotSupported(message)),
        };
        if result.is_ok() {
            self.stats_mut().sent += 1;
        }
        result
    }
}
