//! The reactor: one mio `Poll` that owns every listener, connection and connector, the timers,
//! and the sockets. The only code in ezarch that makes syscalls or reads the clock.
//!
//! A turn (`poll`) writes what sockets queued, waits for readiness or the next deadline, reads
//! every ready connection to `WouldBlock` (decoding many frames per read), fires due timers, and
//! writes again. The application calls `send`/`recv` between turns; messages move as `Bytes`
//! views from the connection that read them to the one that writes them.
//!
//! Peers attach to a socket only when their handshake completes, so half-open connections hold
//! no routing slot and cannot delay anyone (the CVE-2020-15166 class); the handshake timeout
//! closes them.
//!
//! One concern per file, each with its entry point: this file the public API; `turn` the event
//! loop's turn (`poll`); `admission` who gets a connection slot and whose unauthenticated
//! handshake work runs now; `lifecycle` a connection's life from accept or connect through reads,
//! writes, handshake and timers to close; `transfer` moving queued messages to transports
//! (`transfer`); `budget` the node-wide memory budget; `stall` compacting messages that wait;
//! `connection` one TCP connection's reads and writes; `io_table` and `ids` the tables and their
//! typed keys.

mod admission;
mod backoff;
mod budget;
mod close_reason;
mod connection;
pub mod endpoint;
pub mod fd_limit;
mod ids;
mod io_table;
mod lifecycle;
mod plain;
pub mod read_pool;
mod stall;
mod timers;
mod transfer;
mod turn;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use hashbrown::HashMap;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

pub use self::admission::{
    AdmissionStats, DEFAULT_PER_ADDRESS, HANDSHAKES_PER_TURN, HANDSHAKE_BURST, HANDSHAKE_RATE,
    RESERVED_PERCENT,
};
use self::backoff::Backoff;
pub use self::budget::{Limits, ReactorStats, DEFAULT_MAX_CONNECTIONS, DEFAULT_MEMORY_BUDGET};
pub use self::close_reason::CloseReason;
pub use self::endpoint::EndpointError;
pub use self::ids::SocketId;
use self::ids::{ConnId, ConnectorId, ListenerId};
use self::io_table::IoTable;
use self::plain::PlainStreams;
pub use self::plain::{PlainId, PlainLimits, PlainStats};
use self::read_pool::ReadPool;
use self::timers::Timers;
use crate::logging::Throttled;
use crate::socket::{
    Attach, Message, PeerKey, SendError, Socket, SocketOptions, SocketStats, SocketType, TopicChange,
};

/// Peer arrivals and departures, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer completed its handshake and holds a routing slot; `identity` is the routing id.
    Connected {
        /// The socket it attached to.
        socket: SocketId,
        /// Its routing identity.
        identity: Bytes,
    },
    /// A peer with a routing slot went away.
    Disconnected {
        /// The socket it was attached to.
        socket: SocketId,
        /// Its routing identity.
        identity: Bytes,
        /// Why its connection ended.
        reason: CloseReason,
    },
}

/// Errors from reactor calls (not from peers: those close one connection and are counted).
#[derive(Debug)]
pub enum Error {
    /// An endpoint string was refused.
    Endpoint(EndpointError),
    /// A system call failed (creating the poll, binding, listening), or an in-process identity is in use.
    Io(io::Error),
    /// No socket has that id (never created, or closed).
    UnknownSocket,
    /// The socket type is not one of ROUTER, DEALER, PUB, SUB, or the call does not apply to it.
    WrongSocketType(SocketType),
    /// Two sockets whose types cannot talk (RFC 23 pairs).
    Incompatible(SocketType, SocketType),
    /// An error while binding or connecting something named: a setting and its endpoint.
    Named {
        /// The setting and its endpoint.
        name: String,
        /// What went wrong.
        error: Box<Error>,
    },
}

impl Error {
    /// This error, said of `name` (`IN_PIPE_PORT_A tcp://127.0.0.1:9000`, say).
    pub fn named(self, name: impl Into<String>) -> Self {
        Error::Named { name: name.into(), error: Box::new(self) }
    }
}

/// An I/O error in an operator's words: the kind, without the OS error number.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
        io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".into(),
        _ => e.to_string(),
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Endpoint(e) => write!(f, "{e}"),
            Error::Io(e) => f.write_str(&describe_io(e)),
            Error::UnknownSocket => f.write_str("no such socket"),
            Error::WrongSocketType(t) => write!(f, "not supported on a {t} socket"),
            Error::Incompatible(a, b) => write!(f, "{a} cannot connect to {b}"),
            Error::Named { name, error } => write!(f, "{name}: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<EndpointError> for Error {
    fn from(e: EndpointError) -> Self {
        Error::Endpoint(e)
    }
}

/// How the messages queued for a peer reach it.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp(ConnId),
    /// Another socket on this reactor, and the peer that stands for us there.
    Inproc {
        socket: SocketId,
        peer: PeerKey,
    },
    /// A connecting side's peer between connections: messages wait in its queue.
    Waiting,
}

/// What one readiness event says about one I/O table entry or plain stream.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    /// The mio token: an `IoTable` key, or a plain stream's at `plain::TOKEN_BASE` and above.
    key: usize,
    readable: bool,
    writable: bool,
    /// The peer closed its end or the socket failed.
    hung_up: bool,
}

#[derive(Debug)]
struct SocketEntry {
    socket: Socket,
    options: SocketOptions,
    transports: HashMap<PeerKey, Transport>,
    /// Each TCP peer's READY properties.
    metadata: HashMap<PeerKey, zmtp::Metadata>,
    listeners: Vec<ListenerId>,
    connectors: Vec<ConnectorId>,
    /// Listed in the reactor's `touched`.
    touched: bool,
}

#[derive(Debug)]
struct Connector {
    socket: SocketId,
    addr: SocketAddr,
    backoff: Backoff,
    conn: Option<ConnId>,
    /// DEALER: the peer that outlives connections so queued messages survive a reconnect.
    peer: Option<PeerKey>,
    /// Connections in a row the server closed before our CURVE handshake completed.
    curve_failures: u32,
}

/// The event loop: every socket with its listeners, connections and connectors, the timers and the
/// plain streams, on one mio `Poll`.
pub struct Reactor {
    poll: Poll,
    events: Events,
    io: IoTable,
    sockets: Slab<SocketEntry>,
    connectors: Slab<Connector>,
    timers: Timers,
    /// Connections with bytes to write.
    to_flush: Vec<ConnId>,
    /// Sockets sent on since the last pump (see `transfer`).
    touched: Vec<SocketId>,
    /// Something other than a send may have queued messages (a peer attached or left): the next
    /// pump looks at every socket.
    pump_everything: bool,
    /// Connections whose reading was paused at the high-water mark and may resume.
    to_resume: Vec<ConnId>,
    /// Connections that had their share of reading in a turn and have more to read.
    to_continue: Vec<ConnId>,
    /// Connection slots by door and address, and the handshake budget.
    admission: admission::Admission,
    /// Accepted CURVE connections whose next handshake step waits for the budget.
    handshake_waiters: Vec<ConnId>,
    peer_events: VecDeque<PeerEvent>,
    ready: Vec<Readiness>,
    dirty: Vec<PeerKey>,
    limits: Limits,
    /// TCP connections open (accepted and connected).
    conn_count: usize,
    /// What every connection holds itself (partial input, unsent output), by `Connection::held`.
    held: usize,
    /// Whether the node is over its memory budget (queues then take no more than the reserve).
    pressure: bool,
    /// Since when it has been over the budget.
    over_budget_since: Option<Instant>,
    /// Connections whose reading paused for the memory budget, in the order they paused.
    budget_waiters: Vec<ConnId>,
    /// Connections that left messages waiting, to check for compaction (see `stall`).
    stalled: Vec<ConnId>,
    last_stall_check: Instant,
    /// When the current turn's wait ended: the time stamp for notes made during the turn.
    turn_started: Instant,
    stats: ReactorStats,
    budget_log: Throttled,
    refusal_log: Throttled,
    eviction_log: Throttled,
    /// Plain TCP streams (the HTTP monitor), beside the ZMTP connections.
    plain: PlainStreams,
    /// Large read buffers kept for the next large frame.
    read_pool: ReadPool,
}

impl Reactor {
    /// A reactor with the default `Limits`.
    pub fn new() -> io::Result<Self> {
        Self::with_limits(Limits::default())
    }

    /// A reactor with the given connection limit and memory budget.
    pub fn with_limits(limits: Limits) -> io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            io: IoTable::default(),
            sockets: Slab::new(),
            connectors: Slab::new(),
            timers: Timers::default(),
            to_flush: Vec::new(),
            touched: Vec::new(),
            pump_everything: false,
            to_resume: Vec::new(),
            to_continue: Vec::new(),
            admission: admission::Admission::new(limits.max_connections, limits.per_address),
            handshake_waiters: Vec::new(),
            peer_events: VecDeque::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            limits,
            conn_count: 0,
            held: 0,
            pressure: false,
            over_budget_since: None,
            budget_waiters: Vec::new(),
            stalled: Vec::new(),
            last_stall_check: Instant::now(),
            turn_started: Instant::now(),
            stats: ReactorStats::default(),
            budget_log: Throttled::default(),
            refusal_log: Throttled::default(),
            eviction_log: Throttled::default(),
            plain: PlainStreams::new(PlainLimits::default()),
            read_pool: ReadPool::default(),
        })
    }

    /// The connection limit and memory budget this reactor enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reactor-wide counters: connections refused, reads paused for the memory budget, bytes, the
    /// read buffer pool.
    pub fn reactor_stats(&self) -> ReactorStats {
        ReactorStats { read_pool: self.read_pool.stats, admission: self.admission.stats, ..self.stats }
    }

    /// Accepted connections from `addr`'s source (its IPv6 /64) open now.
    pub fn connections_from(&self, addr: SocketAddr) -> usize {
        self.admission.open_from(admission::Source::of(addr))
    }

    // ---- sockets ----

    /// Creates a ROUTER, DEALER, PUB or SUB socket.
    pub fn socket(&mut self, socket_type: SocketType, options: SocketOptions) -> Result<SocketId, Error> {
        let socket = Socket::new(socket_type, &options).ok_or(Error::WrongSocketType(socket_type))?;
        let entry = SocketEntry {
            socket,
            options,
            transports: HashMap::new(),
            metadata: HashMap::new(),
            listeners: Vec::new(),
            connectors: Vec::new(),
            touched: false,
        };
        Ok(SocketId(self.sockets.insert(entry)))
    }

    /// Listens on `tcp://HOST:PORT` (`*` for every interface, port 0 for any); returns the address.
    pub fn bind(&mut self, id: SocketId, endpoint: &str) -> Result<SocketAddr, Error> {
        self.entry(id)?;
        let addr = endpoint::resolve(endpoint)?;
        let std_listener = listen(addr)?;
        let local = std_listener.local_addr()?;
        let mut listener = TcpListener::from_std(std_listener);
        let token = Token(self.io.next_token());
        self.poll.registry().register(&mut listener, token, Interest::READABLE)?;
        let key = self.io.insert_listener(listener, id);
        self.sockets[id.0].listeners.push(key);
        log::debug!("{} socket listening on tcp://{local}", self.sockets[id.0].socket.socket_type());
        Ok(local)
    }

    // ---- plain streams (see `plain`) ----

    /// Listens on `tcp://HOST:PORT` for plain streams (not ZMTP): the application reads each
    /// request with `plain_input` and answers with `plain_respond`. `stop_listening` leaves
    /// these listeners open, so a draining node can still say so.
    pub fn listen_plain(&mut self, endpoint: &str) -> Result<SocketAddr, Error> {
        let listener = listen(endpoint::resolve(endpoint)?)?;
        Ok(self.plain.listen(self.poll.registry(), listener)?)
    }

    /// The next plain connection with new input.
    pub fn next_plain_request(&mut self) -> Option<PlainId> {
        self.plain.next_ready()
    }

    /// What plain connection `id` sent so far.
    pub fn plain_input(&self, id: PlainId) -> Option<&[u8]> {
        self.plain.input(id)
    }

    /// Whether no more input will come for `id`: it sent as much as a request may hold
    /// (`PlainLimits::max_input`), or closed its side.
    pub fn plain_input_done(&self, id: PlainId) -> bool {
        self.plain.input_done(id)
    }

    /// Writes `response` to plain connection `id`, then closes it.
    pub fn plain_respond(&mut self, id: PlainId, response: Vec<u8>) {
        self.plain.respond(self.poll.registry(), id, response);
    }

    /// Closes plain connection `id` at once.
    pub fn plain_close(&mut self, id: PlainId) {
        self.plain.close_id(self.poll.registry(), id);
    }

    /// Plain connections' counters, and how many are open.
    pub fn plain_stats(&self) -> (PlainStats, usize) {
        (self.plain.stats, self.plain.open())
    }

    /// Connects to `tcp://HOST:PORT`, now and again after every disconnect, until closed.
    pub fn connect(&mut self, id: SocketId, endpoint: &str) -> Result<(), Error> {
        let addr = endpoint::resolve(endpoint)?;
        let entry = self.entry_mut(id)?;
        let backoff = Backoff::new(entry.options.reconnect_ivl, entry.options.reconnect_ivl_max);
        let peer = entry.socket.connecting();
        if let Some(peer) = peer {
            entry.transports.insert(peer, Transport::Waiting);
        }
        let key = ConnectorId(self.connectors.insert(Connector {
            socket: id,
            addr,
            backoff,
            conn: None,
            peer,
            curve_failures: 0,
        }));
        self.sockets[id.0].connectors.push(key);
        self.start_connect(key, Instant::now());
        Ok(())
    }

    /// Connects two sockets of this reactor in memory: a normal peer each for the other
    /// (identity, high-water marks, subscriptions), with no TCP hop and no copy.
    pub fn connect_inproc(&mut self, a: SocketId, b: SocketId) -> Result<(), Error> {
        let (ea, eb) = self.sockets.get2_mut(a.0, b.0).ok_or(Error::UnknownSocket)?;
        let (ta, tb) = (ea.socket.socket_type(), eb.socket.socket_type());
        if !ta.is_compatible_with(tb) {
            return Err(Error::Incompatible(ta, tb));
        }
        let pa = attach_inproc(ea, eb.options.identity.clone())?;
        let pb = attach_inproc(eb, ea.options.identity.clone())?;
        ea.transports.insert(pa, Transport::Inproc { socket: b, peer: pb });
        eb.transports.insert(pb, Transport::Inproc { socket: a, peer: pa });
        share_subscriptions(ea, eb, pb);
        share_subscriptions(eb, ea, pa);
        self.pump_everything = true;
        for (id, peer) in [(a, pa), (b, pb)] {
            let identity = self.sockets[id.0].socket.peers().get(peer).map(|p| p.identity.clone());
            self.peer_events
                .push_back(PeerEvent::Connected { socket: id, identity: identity.unwrap_or_default() });
        }
        Ok(())
    }

    /// Queues a message; written during the next `poll`.
    pub fn send(&mut self, id: SocketId, message: Message) -> Result<(), SendError> {
        let Some(entry) = self.sockets.get_mut(id.0) else { return Err(SendError::NotSupported(message)) };
        entry.socket.send(message)?;
        self.touch(id);
        Ok(())
    }

    /// The next received message, fair-queued across peers.
    pub fn recv(&mut self, id: SocketId) -> Option<Message> {
        self.recv_from(id).map(|(_, message)| message)
    }

    /// The next received message and the peer it came from (a key valid while that peer stays).
    pub fn recv_from(&mut self, id: SocketId) -> Option<(PeerKey, Message)> {
        let entry = self.sockets.get_mut(id.0)?;
        let (peer, message, resumed) = entry.socket.recv()?;
        if resumed {
            match entry.transports.get(&peer) {
                Some(&Transport::Tcp(conn)) => self.to_resume.push(conn),
                Some(&Transport::Inproc { socket, peer }) => {
                    if let Some(other) = self.sockets.get_mut(socket.0) {
                        other.socket.peers_mut().mark_dirty(peer);
                        self.touch(socket);
                    }
                }
                _ => {}
            }
        }
        Some((peer, message))
    }

    /// DEALER: queues a message for one peer (a key from `recv_from`), not round-robin.
    pub fn send_to(&mut self, id: SocketId, peer: PeerKey, message: Message) -> Result<(), SendError> {
        let Some(entry) = self.sockets.get_mut(id.0) else { return Err(SendError::NotSupported(message)) };
        entry.socket.send_to(peer, message)?;
        self.touch(id);
        Ok(())
    }

    /// SUB: subscribes to messages whose first frame starts with `topic` ("" for all).
    pub fn subscribe(&mut self, id: SocketId, topic: &[u8]) -> Result<(), Error> {
        self.change_subscription(id, topic, TopicChange::Subscribe)
    }

    /// SUB: drops one subscription to `topic`.
    pub fn unsubscribe(&mut self, id: SocketId, topic: &[u8]) -> Result<(), Error> {
        self.change_subscription(id, topic, TopicChange::Cancel)
    }

    /// Socket `id`'s counters; `None` for an unknown socket.
    pub fn stats(&self, id: SocketId) -> Option<SocketStats> {
        self.sockets.get(id.0).map(|e| *e.socket.stats())
    }

    /// Every socket's counters added up.
    pub fn total_socket_stats(&self) -> SocketStats {
        let mut total = SocketStats::default();
        for (_, entry) in &self.sockets {
            total += *entry.socket.stats();
        }
        total
    }

    /// PUB: distinct (peer, topic) subscriptions held; 0 for other types.
    pub fn subscription_count(&self, id: SocketId) -> usize {
        self.sockets.get(id.0).map_or(0, |e| e.socket.subscription_count())
    }

    /// Whether a message is waiting to be received (`recv` would return one).
    pub fn has_inbound(&self, id: SocketId) -> bool {
        self.sockets.get(id.0).is_some_and(|e| e.socket.peers().has_inbound())
    }

    /// Peers currently attached with a live transport.
    pub fn peer_count(&self, id: SocketId) -> usize {
        self.sockets
            .get(id.0)
            .map_or(0, |e| e.transports.values().filter(|t| !matches!(t, Transport::Waiting)).count())
    }

    /// Connections of any state (handshaking included), for limits and tests.
    pub fn connection_count(&self) -> usize {
        self.conn_count
    }

    /// Accepted connections that have not finished their handshake.
    pub fn handshaking_count(&self) -> usize {
        self.admission.handshaking()
    }

    /// Deadlines armed (handshake, heartbeat, reconnect): at most one per connection and
    /// connector, whatever the peers send.
    pub fn armed_timers(&self) -> usize {
        self.timers.len()
    }

    /// Whether any socket still has messages or bytes waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        let queued = self
            .sockets
            .iter()
            .any(|(_, e)| e.socket.peers().keys().any(|k| e.socket.peers().outbound_len(k) > 0));
        let unwritten = self.io.conns().any(|(_, c)| c.session.pending_output() > 0);
        queued || unwritten || self.plain.pending_output() > 0
    }

    /// A READY property of the peer with routing identity `identity` (ROUTER), or of any peer
    /// announcing that identity (other types).
    pub fn peer_metadata(&self, id: SocketId, identity: &[u8], name: &str) -> Option<Bytes> {
        let entry = self.sockets.get(id.0)?;
        let peer = entry.socket.find_peer(identity)?;
        entry.metadata.get(&peer)?.get(name).cloned()
    }

    /// The CURVE key of the client connected to socket `id` with `identity` (a ROUTER's routing
    /// identity, or the identity another type's peer announced), this side being the CURVE
    /// server; `None` for NULL or in-process peers.
    pub fn peer_curve_key(&self, id: SocketId, identity: &[u8]) -> Option<[u8; 32]> {
        let entry = self.sockets.get(id.0)?;
        let peer = entry.socket.find_peer(identity)?;
        match entry.transports.get(&peer)? {
            Transport::Tcp(key) => self.io.conn(*key)?.session.curve_client_key(),
            _ => None,
        }
    }

    /// Closes every connection whose CURVE peer key `keep` refuses (an allowlist reloaded);
    /// returns how many closed. Connections of keys still allowed, and NULL ones, stay.
    pub fn close_curve_peers(&mut self, keep: impl Fn(&[u8; 32]) -> bool) -> usize {
        let revoked: Vec<ConnId> = self
            .io
            .conns()
            .filter_map(|(k, c)| c.session.curve_client_key().filter(|key| !keep(key)).map(|_| k))
            .collect();
        for &key in &revoked {
            self.close_conn(key, CloseReason::KeyRevoked);
        }
        revoked.len()
    }

    /// Closes every listener: no new connections; existing ones carry on (graceful shutdown).
    pub fn stop_listening(&mut self) {
        let listeners: Vec<ListenerId> = self.io.listeners().collect();
        for key in listeners {
            if let Some((mut listener, socket)) = self.io.remove_listener(key) {
                let _ = self.poll.registry().deregister(&mut listener);
                if let Some(entry) = self.sockets.get_mut(socket.0) {
                    entry.listeners.retain(|&k| k != key);
                }
            }
        }
    }

    /// The next peer arrival or departure, oldest first.
    pub fn poll_peer_event(&mut self) -> Option<PeerEvent> {
        self.peer_events.pop_front()
    }

    /// Closes a socket: its connections, listeners and connectors go; in-process peers detach.
    pub fn close(&mut self, id: SocketId) {
        let Some(entry) = self.sockets.get(id.0) else { return };
        let inproc: Vec<(SocketId, PeerKey)> = entry
            .transports
            .values()
            .filter_map(|t| match t {
                Transport::Inproc { socket, peer } => Some((*socket, *peer)),
                _ => None,
            })
            .collect();
        // Every connection of this socket, attached or still handshaking.
        let conns: Vec<ConnId> = self.io.conns().filter(|(_, c)| c.socket == id).map(|(k, _)| k).collect();
        for key in self.sockets[id.0].connectors.clone() {
            self.connectors.try_remove(key.0);
            self.timers.set(timers::TimerOwner::Reconnect(key), None);
        }
        for key in conns {
            self.close_conn(key, CloseReason::Local);
        }
        for key in self.sockets[id.0].listeners.clone() {
            if let Some((mut listener, _)) = self.io.remove_listener(key) {
                let _ = self.poll.registry().deregister(&mut listener);
            }
        }
        for (other, peer) in inproc {
            if let Some(entry) = self.sockets.get_mut(other.0) {
                entry.transports.remove(&peer);
                entry.socket.detach(peer);
            }
        }
        self.pump_everything = true;
        self.sockets.remove(id.0);
    }

    // ---- helpers ----

    fn entry(&self, id: SocketId) -> Result<&SocketEntry, Error> {
        self.sockets.get(id.0).ok_or(Error::UnknownSocket)
    }

    fn entry_mut(&mut self, id: SocketId) -> Result<&mut SocketEntry, Error> {
        self.sockets.get_mut(id.0).ok_or(Error::UnknownSocket)
    }

    /// Counts a SUB's subscription change and, when every peer must be told, tells each: TCP
    /// peers by command, in-process peers by recording it on their socket.
    fn change_subscription(&mut self, id: SocketId, topic: &[u8], change: TopicChange) -> Result<(), Error> {
        let topic = Bytes::copy_from_slice(topic);
        let entry = self.sockets.get_mut(id.0).ok_or(Error::UnknownSocket)?;
        let socket_type = entry.socket.socket_type();
        if !entry.socket.change_subscription(&topic, change).ok_or(Error::WrongSocketType(socket_type))? {
            return Ok(());
        }
        let transports: Vec<Transport> = entry.transports.values().copied().collect();
        for transport in transports {
            match transport {
                Transport::Tcp(key) => {
                    if let Some(conn) = self.io.conn_mut(key) {
                        let _ = match change {
                            TopicChange::Subscribe => conn.session.subscribe(&topic),
                            TopicChange::Cancel => conn.session.cancel(&topic),
                        };
                        self.to_flush.push(key);
                    }
                }
                Transport::Inproc { socket, peer } => {
                    if let Some(other) = self.sockets.get_mut(socket.0) {
                        other.socket.peer_subscription(peer, &topic, change);
                    }
                }
                Transport::Waiting => {}
            }
        }
        Ok(())
    }
}

fn attach_inproc(entry: &mut SocketEntry, identity: Bytes) -> Result<PeerKey, Error> {
    match entry.socket.attach(identity) {
        Attach::Attached(peer) => Ok(peer),
        Attach::TookOver { key, .. } => Ok(key),
        Attach::Ignored => Err(Error::Io(io::Error::new(io::ErrorKind::AlreadyExists, "identity in use"))),
    }
}

/// A socket's subscriptions go to a peer that just joined in memory (`peer_at_to` at its end).
fn share_subscriptions(from: &SocketEntry, to: &mut SocketEntry, peer_at_to: PeerKey) {
    for topic in from.socket.subscriptions() {
        to.socket.peer_subscription(peer_at_to, topic, TopicChange::Subscribe);
    }
}

fn session_config(socket_type: SocketType, options: &SocketOptions, as_server: bool) -> zmtp::Config {
    let mut config = zmtp::Config::new(socket_type);
    config.identity = options.identity.clone();
    config.metadata = options.metadata.clone();
    config.as_server = as_server;
    config.limits = options.limits;
    config.handshake_timeout = options.handshake_timeout;
    config.heartbeat = options.heartbeat;
    config.curve = options.curve.clone();
    config
}

/// A listening socket with SO_REUSEADDR and a deep backlog, non-blocking.
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
