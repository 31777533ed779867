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

pub mod backoff;
mod connection;
pub mod endpoint;
mod timers;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use zmtp::{Event, Session};

use self::backoff::{Backoff, Jitter};
use self::connection::{CloseReason, Connection, ReadOutcome};
pub use self::endpoint::EndpointError;
use self::timers::{TimerOwner, Timers};
use crate::socket::{
    Attach, Inbound, Message, PipeKey, SendError, Socket, SocketOptions, SocketStats, SocketType,
};

/// A socket created on a reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(usize);

/// Peer arrivals and departures, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer completed its handshake and holds a routing slot; `identity` is the routing id.
    Connected { socket: SocketId, identity: Bytes },
    /// A peer with a routing slot went away.
    Disconnected { socket: SocketId, identity: Bytes, reason: String },
}

/// Errors from reactor calls (not from peers: those close one connection and are counted).
#[derive(Debug)]
pub enum Error {
    Endpoint(EndpointError),
    Io(io::Error),
    UnknownSocket,
    /// The socket type is not one of ROUTER, DEALER, PUB, SUB, or the call does not apply to it.
    WrongSocketType(SocketType),
    /// Two sockets whose types cannot talk (RFC 23 pairs).
    Incompatible(SocketType, SocketType),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Endpoint(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::UnknownSocket => f.write_str("no such socket"),
            Error::WrongSocketType(t) => write!(f, "not supported on a {t} socket"),
            Error::Incompatible(a, b) => write!(f, "{a} cannot connect to {b}"),
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

/// How a pipe's messages reach its peer.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp(usize),
    /// Another socket on this reactor, and the pipe that stands for us there.
    Inproc {
        socket: usize,
        pipe: PipeKey,
    },
    /// A connecting side's pipe between connections: messages wait in its queue.
    Waiting,
}

#[derive(Debug)]
struct SocketEntry {
    socket: Socket,
    options: SocketOptions,
    transports: HashMap<PipeKey, Transport>,
    /// Each TCP peer's READY properties.
    metadata: HashMap<PipeKey, zmtp::Metadata>,
    listeners: Vec<usize>,
    connectors: Vec<usize>,
}

#[derive(Debug)]
enum Io {
    Listener { listener: TcpListener, socket: usize },
    Conn(Box<Connection>),
}

#[derive(Debug)]
struct Connector {
    socket: usize,
    addr: SocketAddr,
    backoff: Backoff,
    conn: Option<usize>,
    /// DEALER: the pipe that outlives connections so queued messages survive a reconnect.
    pipe: Option<PipeKey>,
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    io: Slab<Io>,
    sockets: Slab<SocketEntry>,
    connectors: Slab<Connector>,
    timers: Timers,
    jitter: Jitter,
    /// Connections with bytes to write.
    to_flush: Vec<usize>,
    /// Connections whose reading was paused at the high-water mark and may resume.
    to_resume: Vec<usize>,
    peer_events: VecDeque<PeerEvent>,
    ready: Vec<(usize, bool, bool)>,
    dirty: Vec<PipeKey>,
}

impl Reactor {
    pub fn new() -> io::Result<Self> {
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = clock.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            io: Slab::new(),
            sockets: Slab::new(),
            connectors: Slab::new(),
            timers: Timers::default(),
            jitter: Jitter::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            to_flush: Vec::new(),
            to_resume: Vec::new(),
            peer_events: VecDeque::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
        })
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
        let key = self.io.vacant_key();
        self.poll.registry().register(&mut listener, Token(key), Interest::READABLE)?;
        self.io.insert(Io::Listener { listener, socket: id.0 });
        self.sockets[id.0].listeners.push(key);
        log::info!("{} socket listening on tcp://{local}", self.sockets[id.0].socket.socket_type());
        Ok(local)
    }

    /// Connects to `tcp://HOST:PORT`, now and again after every disconnect, until closed.
    pub fn connect(&mut self, id: SocketId, endpoint: &str) -> Result<(), Error> {
        let addr = endpoint::resolve(endpoint)?;
        let entry = self.entry_mut(id)?;
        let backoff = Backoff::new(entry.options.reconnect_ivl, entry.options.reconnect_ivl_max);
        let pipe = match &mut entry.socket {
            Socket::Dealer(dealer) => Some(dealer.attach_persistent()),
            _ => None,
        };
        if let Some(pipe) = pipe {
            entry.transports.insert(pipe, Transport::Waiting);
        }
        let key = self.connectors.insert(Connector { socket: id.0, addr, backoff, conn: None, pipe });
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
        ea.transports.insert(pa, Transport::Inproc { socket: b.0, pipe: pb });
        eb.transports.insert(pb, Transport::Inproc { socket: a.0, pipe: pa });
        share_subscriptions(ea, eb, pb);
        share_subscriptions(eb, ea, pa);
        for (id, pipe) in [(a, pa), (b, pb)] {
            let identity = self.sockets[id.0].socket.pipes().get(pipe).map(|p| p.identity.clone());
            self.peer_events
                .push_back(PeerEvent::Connected { socket: id, identity: identity.unwrap_or_default() });
        }
        Ok(())
    }

    /// Queues a message; written during the next `poll`.
    pub fn send(&mut self, id: SocketId, message: Message) -> Result<(), SendError> {
        match self.sockets.get_mut(id.0) {
            Some(entry) => entry.socket.send(message),
            None => Err(SendError::NotSupported(message)),
        }
    }

    /// The next received message, fair-queued across peers.
    pub fn recv(&mut self, id: SocketId) -> Option<Message> {
        let entry = self.sockets.get_mut(id.0)?;
        let (pipe, message, resumed) = entry.socket.recv()?;
        if resumed {
            match entry.transports.get(&pipe) {
                Some(&Transport::Tcp(conn)) => self.to_resume.push(conn),
                Some(&Transport::Inproc { socket, pipe }) => {
                    if let Some(other) = self.sockets.get_mut(socket) {
                        other.socket.pipes_mut().mark_dirty(pipe);
                    }
                }
                _ => {}
            }
        }
        Some(message)
    }

    /// SUB: subscribes to messages whose first frame starts with `topic` ("" for all).
    pub fn subscribe(&mut self, id: SocketId, topic: &[u8]) -> Result<(), Error> {
        self.change_subscription(id, topic, true)
    }

    /// SUB: drops one subscription to `topic`.
    pub fn unsubscribe(&mut self, id: SocketId, topic: &[u8]) -> Result<(), Error> {
        self.change_subscription(id, topic, false)
    }

    pub fn stats(&self, id: SocketId) -> Option<SocketStats> {
        self.sockets.get(id.0).map(|e| *e.socket.stats())
    }

    /// PUB: distinct (peer, topic) subscriptions held; 0 for other types.
    pub fn subscription_count(&self, id: SocketId) -> usize {
        match self.sockets.get(id.0).map(|e| &e.socket) {
            Some(Socket::Pub(publisher)) => publisher.subscription_count(),
            _ => 0,
        }
    }

    /// Peers currently attached with a live transport.
    pub fn peer_count(&self, id: SocketId) -> usize {
        self.sockets
            .get(id.0)
            .map_or(0, |e| e.transports.values().filter(|t| !matches!(t, Transport::Waiting)).count())
    }

    /// Connections of any state (handshaking included), for limits and tests.
    pub fn connection_count(&self) -> usize {
        self.io.iter().filter(|(_, io)| matches!(io, Io::Conn(_))).count()
    }

    /// Whether any socket still has messages or bytes waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        let queued = self
            .sockets
            .iter()
            .any(|(_, e)| e.socket.pipes().keys().any(|k| e.socket.pipes().outbound_len(k) > 0));
        let unwritten = self.io.iter().any(|(_, io)| match io {
            Io::Conn(c) => c.session.pending_output() > 0,
            Io::Listener { .. } => false,
        });
        queued || unwritten
    }

    /// A READY property of the peer with routing identity `identity` (ROUTER), or of any peer
    /// announcing that identity (other types).
    pub fn peer_metadata(&self, id: SocketId, identity: &[u8], name: &str) -> Option<Bytes> {
        let entry = self.sockets.get(id.0)?;
        let pipes = entry.socket.pipes();
        let pipe = match &entry.socket {
            Socket::Router(router) => router.peer(identity)?,
            _ => pipes.keys().find(|&k| pipes.get(k).is_some_and(|p| p.identity == identity))?,
        };
        entry.metadata.get(&pipe)?.get(name).cloned()
    }

    /// Closes every listener: no new connections; existing ones carry on (graceful shutdown).
    pub fn stop_listening(&mut self) {
        let listeners: Vec<usize> =
            self.io.iter().filter(|(_, io)| matches!(io, Io::Listener { .. })).map(|(k, _)| k).collect();
        for key in listeners {
            if let Some(Io::Listener { mut listener, socket }) = self.io.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut listener);
                if let Some(entry) = self.sockets.get_mut(socket) {
                    entry.listeners.retain(|&k| k != key);
                }
            }
        }
    }

    pub fn poll_peer_event(&mut self) -> Option<PeerEvent> {
        self.peer_events.pop_front()
    }

    /// Closes a socket: its connections, listeners and connectors go; in-process peers detach.
    pub fn close(&mut self, id: SocketId) {
        let Some(entry) = self.sockets.get(id.0) else { return };
        let conns: Vec<usize> = entry
            .transports
            .values()
            .filter_map(|t| if let Transport::Tcp(k) = t { Some(*k) } else { None })
            .collect();
        let inproc: Vec<(usize, PipeKey)> = entry
            .transports
            .values()
            .filter_map(|t| {
                if let Transport::Inproc { socket, pipe } = t {
                    Some((*socket, *pipe))
                } else {
                    None
                }
            })
            .collect();
        let handshaking: Vec<usize> = self
            .io
            .iter()
            .filter_map(|(k, io)| matches!(io, Io::Conn(c) if c.socket == id.0).then_some(k))
            .collect();
        for key in self.sockets[id.0].connectors.clone() {
            self.connectors.try_remove(key);
        }
        for key in conns.into_iter().chain(handshaking) {
            if let Some(Io::Conn(conn)) = self.io.get_mut(key) {
                conn.connector = None;
            }
            self.close_conn(key, CloseReason::Local);
        }
        for key in self.sockets[id.0].listeners.clone() {
            if let Some(Io::Listener { mut listener, .. }) = self.io.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut listener);
            }
        }
        for (other, pipe) in inproc {
            if let Some(entry) = self.sockets.get_mut(other) {
                entry.transports.remove(&pipe);
                entry.socket.detach(pipe, false);
            }
        }
        self.sockets.remove(id.0);
    }

    // ---- the event loop ----

    /// One turn: write, wait up to `timeout` (None: until something happens), read, fire timers,
    /// write again.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let delivered = self.pump_all();
        self.flush_pending();
        let now = Instant::now();
        let mut wait = timeout;
        if let Some(next) = self.timers.next() {
            let until = next.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        let busy = delivered > 0 || !self.to_resume.is_empty();
        if busy || self.sockets.iter().any(|(_, e)| e.socket.pipes().has_dirty()) {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        let now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter().map(|e| {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            (e.token().0, readable, e.is_writable())
        }));
        for &(key, readable, writable) in &ready {
            self.on_ready(key, readable, writable, now);
        }
        ready.clear();
        self.ready = ready;
        for key in std::mem::take(&mut self.to_resume) {
            if let Some(Io::Conn(conn)) = self.io.get_mut(key) {
                conn.read_paused = false;
                self.read_conn(key, now);
            }
        }
        self.fire_timers(now);
        self.pump_all();
        self.flush_pending();
        Ok(())
    }

    /// Polls until `done` says so or `timeout` passes; returns whether `done` said so.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.poll(Some((deadline - now).min(Duration::from_millis(50))))?;
        }
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
        match self.io.get(key) {
            Some(Io::Listener { .. }) => self.accept_all(key, now),
            Some(Io::Conn(_)) => {
                if writable {
                    self.flush_conn(key);
                }
                if readable {
                    self.read_conn(key, now);
                }
            }
            None => {}
        }
    }

    fn accept_all(&mut self, key: usize, now: Instant) {
        loop {
            let Some(Io::Listener { listener, socket }) = self.io.get(key) else { return };
            let socket = *socket;
            match listener.accept() {
                Ok((stream, addr)) => {
                    log::debug!("accepted {addr}");
                    self.add_conn(stream, socket, None, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, mut stream: TcpStream, socket: usize, connector: Option<usize>, now: Instant) {
        let Some(entry) = self.sockets.get(socket) else { return };
        let _ = stream.set_nodelay(true);
        let config = session_config(entry.socket.socket_type(), &entry.options, connector.is_none());
        let key = self.io.vacant_key();
        if let Err(e) =
            self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("cannot register a connection: {e}");
            return;
        }
        let session = Session::new(config, now);
        self.io.insert(Io::Conn(Box::new(Connection::new(stream, session, socket, connector))));
        if let Some(ck) = connector {
            if let Some(c) = self.connectors.get_mut(ck) {
                c.conn = Some(key);
            }
        }
        // Our greeting and READY go out at once (speculative write), never waiting for the peer's.
        self.flush_conn(key);
        self.rearm_timer(key);
    }

    fn start_connect(&mut self, ck: usize, now: Instant) {
        let Some(connector) = self.connectors.get(ck) else { return };
        let (addr, socket) = (connector.addr, connector.socket);
        match TcpStream::connect(addr) {
            Ok(stream) => self.add_conn(stream, socket, Some(ck), now),
            Err(e) => {
                log::debug!("connect to {addr} failed: {e}");
                self.schedule_reconnect(ck, now);
            }
        }
    }

    fn schedule_reconnect(&mut self, ck: usize, now: Instant) {
        let random = self.jitter.next_u64();
        let Some(connector) = self.connectors.get_mut(ck) else { return };
        let delay = connector.backoff.next_delay(random);
        log::debug!("reconnecting to {} in {delay:?}", connector.addr);
        self.timers.schedule(now + delay, TimerOwner::Reconnect(ck));
    }

    fn read_conn(&mut self, key: usize, now: Instant) {
        loop {
            let Some(Io::Conn(conn)) = self.io.get_mut(key) else { return };
            if conn.read_paused {
                break;
            }
            match conn.read_once(now) {
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Progress { drained }) => {
                    self.drain_session_events(key);
                    if drained {
                        break;
                    }
                }
                Err(reason) => {
                    self.drain_session_events(key);
                    self.close_conn(key, reason);
                    return;
                }
            }
        }
        self.after_activity(key);
    }

    /// Hands a session's events to its socket.
    fn drain_session_events(&mut self, key: usize) {
        while let Some(Io::Conn(conn)) = self.io.get_mut(key) {
            let Some(event) = conn.session.poll_event() else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket) else { return };
            match event {
                Event::HandshakeComplete(info) => self.on_handshake(key, info),
                Event::Message(message) => match conn.pipe {
                    Some(pipe) => {
                        if entry.socket.deliver(pipe, message) == Inbound::Full {
                            conn.read_paused = true;
                        }
                    }
                    None => entry.socket.stats_mut().dropped_ignored_peer += 1,
                },
                Event::Subscribe(topic) => {
                    if let (Some(pipe), Socket::Pub(publisher)) = (conn.pipe, &mut entry.socket) {
                        publisher.subscribe(pipe, topic);
                    }
                }
                Event::Cancel(topic) => {
                    if let (Some(pipe), Socket::Pub(publisher)) = (conn.pipe, &mut entry.socket) {
                        publisher.cancel(pipe, &topic);
                    }
                }
                Event::Ping { .. } | Event::Pong { .. } => {}
            }
        }
    }

    fn on_handshake(&mut self, key: usize, info: zmtp::PeerInfo) {
        let identity = info.identity;
        let Some(Io::Conn(conn)) = self.io.get_mut(key) else { return };
        let Some(entry) = self.sockets.get_mut(conn.socket) else { return };
        let persistent = conn.connector.and_then(|ck| self.connectors.get_mut(ck)).and_then(|c| {
            c.backoff.reset();
            c.pipe
        });
        let attach = match persistent {
            Some(pipe) => {
                if let Some(p) = entry.socket.pipes_mut().get_mut(pipe) {
                    p.connected = true;
                    p.identity = identity;
                }
                Attach::Attached(pipe)
            }
            None => entry.socket.attach(identity),
        };
        let (pipe, evicted) = match attach {
            Attach::Attached(pipe) => (pipe, None),
            // The slab may hand the evicted pipe's key to the newcomer: take the old transport
            // out before the new one goes in.
            Attach::TookOver { key: pipe, evicted } => (pipe, entry.transports.remove(&evicted)),
            Attach::Ignored => {
                log::info!("peer {:?} ignored: its identity is already connected", conn.peer_addr);
                conn.ignored = true;
                return;
            }
        };
        conn.pipe = Some(pipe);
        entry.transports.insert(pipe, Transport::Tcp(key));
        entry.metadata.insert(pipe, info.metadata);
        entry.socket.pipes_mut().mark_dirty(pipe);
        if let Socket::Sub(subscriber) = &entry.socket {
            for topic in subscriber.topics() {
                let _ = conn.session.subscribe(topic);
            }
        }
        let identity = entry.socket.pipes().get(pipe).map(|p| p.identity.clone()).unwrap_or_default();
        let socket = SocketId(conn.socket);
        if let Some(Transport::Tcp(old)) = evicted {
            if let Some(Io::Conn(old_conn)) = self.io.get_mut(old) {
                old_conn.pipe = None; // its pipe is gone already; the newcomer holds the identity
            }
            let reason = CloseReason::Evicted.to_string();
            self.peer_events.push_back(PeerEvent::Disconnected {
                socket,
                identity: identity.clone(),
                reason,
            });
            self.close_conn(old, CloseReason::Evicted);
        }
        self.peer_events.push_back(PeerEvent::Connected { socket, identity });
    }

    fn close_conn(&mut self, key: usize, reason: CloseReason) {
        let Some(Io::Conn(mut conn)) = self.io.try_remove(key) else { return };
        let _ = conn.flush();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let addr = conn.peer_addr;
        let Some(entry) = self.sockets.get_mut(conn.socket) else { return };
        if reason.is_failure() {
            entry.socket.stats_mut().peers_failed += 1;
            log::info!("closing connection {addr:?}: {reason}");
        } else {
            log::debug!("connection {addr:?} closed: {reason}");
        }
        let connector = conn.connector.and_then(|ck| self.connectors.get_mut(ck).map(|c| (ck, c)));
        if let Some(pipe) = conn.pipe {
            let identity = entry.socket.pipes().get(pipe).map(|p| p.identity.clone()).unwrap_or_default();
            let keep = connector.as_ref().is_some_and(|(_, c)| c.pipe == Some(pipe));
            if keep {
                entry.transports.insert(pipe, Transport::Waiting);
            } else {
                entry.transports.remove(&pipe);
            }
            entry.metadata.remove(&pipe);
            entry.socket.detach(pipe, keep);
            let socket = SocketId(conn.socket);
            self.peer_events.push_back(PeerEvent::Disconnected {
                socket,
                identity,
                reason: reason.to_string(),
            });
        }
        if let Some((ck, c)) = connector {
            c.conn = None;
            self.schedule_reconnect(ck, Instant::now());
        }
    }

    /// After reading or firing timers: queue a write if bytes wait, and re-arm the timer.
    fn after_activity(&mut self, key: usize) {
        if let Some(Io::Conn(conn)) = self.io.get_mut(key) {
            if conn.pending_output() > 0 {
                self.to_flush.push(key);
            }
        }
        self.rearm_timer(key);
    }

    fn rearm_timer(&mut self, key: usize) {
        let Some(Io::Conn(conn)) = self.io.get_mut(key) else { return };
        let deadline = conn.session.poll_timeout();
        if deadline != conn.deadline {
            conn.deadline = deadline;
            if let Some(at) = deadline {
                self.timers.schedule(at, TimerOwner::Connection(key));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((at, owner)) = self.timers.pop_due(now) {
            match owner {
                TimerOwner::Connection(key) => {
                    let Some(Io::Conn(conn)) = self.io.get_mut(key) else { continue };
                    if conn.deadline != Some(at) {
                        continue; // stale entry
                    }
                    conn.deadline = None;
                    match conn.session.handle_timeout(now) {
                        Ok(()) => self.after_activity(key),
                        Err(e) => self.close_conn(key, CloseReason::Protocol(e)),
                    }
                }
                TimerOwner::Reconnect(ck) => {
                    if self.connectors.get(ck).is_some_and(|c| c.conn.is_none()) {
                        self.start_connect(ck, now);
                    }
                }
            }
        }
    }

    // ---- moving messages to transports ----

    /// Moves what sockets queued to their transports now: in-process peers get it in their
    /// inbound queues, TCP peers get it encoded and written. `poll` does this on its own; call it
    /// between polls to let in-process hops run without waiting for the next turn. Returns how
    /// many messages reached in-process peers.
    pub fn transfer(&mut self) -> usize {
        self.pump_all()
    }

    fn pump_all(&mut self) -> usize {
        let mut inproc = 0;
        let mut dirty = std::mem::take(&mut self.dirty);
        // Walks socket keys by index: pumping may mark pipes of later sockets dirty (in-process
        // delivery), and those are picked up in the same pass.
        for socket in 0..self.sockets.capacity() {
            let Some(entry) = self.sockets.get_mut(socket) else { continue };
            if !entry.socket.pipes().has_dirty() {
                continue;
            }
            dirty.clear();
            entry.socket.pipes_mut().take_dirty(&mut dirty);
            for &pipe in &dirty {
                inproc += self.pump_pipe(socket, pipe);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        inproc
    }

    /// Returns how many messages reached an in-process peer.
    fn pump_pipe(&mut self, socket: usize, pipe: PipeKey) -> usize {
        let Some(entry) = self.sockets.get(socket) else { return 0 };
        match entry.transports.get(&pipe).copied() {
            Some(Transport::Tcp(key)) => {
                self.flush_conn(key);
                0
            }
            Some(Transport::Inproc { socket: other, pipe: theirs }) => {
                self.pump_inproc(socket, pipe, other, theirs)
            }
            _ => 0,
        }
    }

    /// Moves messages from our pipe straight into the other socket's inbound queue; returns how
    /// many moved.
    fn pump_inproc(&mut self, socket: usize, pipe: PipeKey, other: usize, theirs: PipeKey) -> usize {
        let mut moved = 0;
        let Some((ours, peer)) = self.sockets.get2_mut(socket, other) else { return 0 };
        while !peer.socket.pipes().inbound_full(theirs) {
            let Some(message) = ours.socket.pipes_mut().pop_outbound(pipe) else { return moved };
            peer.socket.deliver(theirs, message);
            moved += 1;
        }
        moved
    }

    /// Moves queued messages into the connection's encoder (up to its write budget) and writes.
    fn flush_conn(&mut self, key: usize) {
        loop {
            let Some(Io::Conn(conn)) = self.io.get_mut(key) else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket) else { return };
            if let Some(pipe) = conn.pipe {
                let budget = entry.options.write_budget;
                let pipes = entry.socket.pipes_mut();
                while conn.pending_output() < budget {
                    let Some(message) = pipes.pop_outbound(pipe) else { break };
                    if conn.session.send(&message).is_err() {
                        pipes.unpop_outbound(pipe, message);
                        break;
                    }
                }
            }
            let more_queued = conn.pipe.is_some_and(|p| entry.socket.pipes().outbound_len(p) > 0);
            match conn.flush() {
                Ok(true) if more_queued => continue,
                Ok(_) => return,
                Err(reason) => return self.close_conn(key, reason),
            }
        }
    }

    fn flush_pending(&mut self) {
        for key in std::mem::take(&mut self.to_flush) {
            self.flush_conn(key);
        }
    }

    // ---- helpers ----

    fn entry(&self, id: SocketId) -> Result<&SocketEntry, Error> {
        self.sockets.get(id.0).ok_or(Error::UnknownSocket)
    }

    fn entry_mut(&mut self, id: SocketId) -> Result<&mut SocketEntry, Error> {
        self.sockets.get_mut(id.0).ok_or(Error::UnknownSocket)
    }

    fn change_subscription(&mut self, id: SocketId, topic: &[u8], subscribe: bool) -> Result<(), Error> {
        let topic = Bytes::copy_from_slice(topic);
        let entry = self.sockets.get_mut(id.0).ok_or(Error::UnknownSocket)?;
        let Socket::Sub(subscriber) = &mut entry.socket else {
            return Err(Error::WrongSocketType(entry.socket.socket_type()));
        };
        let changed = if subscribe { subscriber.subscribe(topic.clone()) } else { subscriber.cancel(&topic) };
        if !changed {
            return Ok(());
        }
        let transports: Vec<Transport> = entry.transports.values().copied().collect();
        for transport in transports {
            match transport {
                Transport::Tcp(key) => {
                    if let Some(Io::Conn(conn)) = self.io.get_mut(key) {
                        let _ = if subscribe {
                            conn.session.subscribe(&topic)
                        } else {
                            conn.session.cancel(&topic)
                        };
                        self.to_flush.push(key);
                    }
                }
                Transport::Inproc { socket, pipe } => {
                    if let Some(Socket::Pub(publisher)) = self.sockets.get_mut(socket).map(|e| &mut e.socket)
                    {
                        if subscribe {
                            publisher.subscribe(pipe, topic.clone());
                        } else {
                            publisher.cancel(pipe, &topic);
                        }
                    }
                }
                Transport::Waiting => {}
            }
        }
        Ok(())
    }
}

fn attach_inproc(entry: &mut SocketEntry, identity: Bytes) -> Result<PipeKey, Error> {
    match entry.socket.attach(identity) {
        Attach::Attached(pipe) => Ok(pipe),
        Attach::TookOver { key, .. } => Ok(key),
        Attach::Ignored => Err(Error::Io(io::Error::new(io::ErrorKind::AlreadyExists, "identity in use"))),
    }
}

/// A SUB's topics go to a PUB peer that just joined in memory.
fn share_subscriptions(from: &SocketEntry, to: &mut SocketEntry, pipe_at_to: PipeKey) {
    if let (Socket::Sub(subscriber), Socket::Pub(publisher)) = (&from.socket, &mut to.socket) {
        for topic in subscriber.topics() {
            publisher.subscribe(pipe_at_to, topic.clone());
        }
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
