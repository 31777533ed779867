//! A connection's life (entry point: `on_ready`, plus the turn's timers): accepting, connecting
//! and reconnecting, reading into sessions, attaching peers after their handshake, writing what
//! their sockets queued (`flush_conn`), closing, and the timers.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};
use zmtp::{Event, Session};

use super::admission::{Admit, Refusal, Source};
use super::connection::{Connection, ReadOutcome};
use super::ids::{ConnId, ConnectorId, ListenerId, SocketId};
use super::io_table::Entry;
use super::timers::TimerOwner;
use super::{session_config, CloseReason, PeerEvent, Reactor, Readiness, Transport};
use crate::door::Door;
use crate::socket::{Attach, Inbound, TopicChange, PRESSURE_RESERVE};

/// Bytes one connection may read in one turn before the others get theirs.
const READ_PER_TURN: usize = 1 << 20;

/// Where a new connection came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    /// A listener accepted it from this address.
    Accepted(SocketAddr),
    /// A connector made it.
    Connected(ConnectorId),
}

impl Reactor {
    pub(super) fn on_ready(&mut self, event: Readiness, now: Instant) {
        match self.io.kind(event.key) {
            Some(Entry::Listener(key)) => self.accept_all(key, now),
            Some(Entry::Conn(key)) => {
                // Paused for the memory budget, or waiting for the handshake budget, it would not
                // read to see the end of the stream: a peer that left must not keep holding what
                // it sent (nor cost a key exchange for a handshake it cannot finish).
                if event.hung_up && self.io.conn(key).is_some_and(|c| c.budget_paused || c.deferred) {
                    return self.close_conn(key, CloseReason::PeerClosed);
                }
                if event.writable {
                    self.flush_conn(key);
                }
                if event.readable {
                    self.read_conn(key, now);
                }
            }
            None => {}
        }
    }

    pub(super) fn accept_all(&mut self, key: ListenerId, now: Instant) {
        loop {
            let Some((listener, socket)) = self.io.listener(key) else { return };
            match listener.accept() {
                Ok((stream, addr)) => {
                    let door = self.sockets.get(socket.0).and_then(|e| e.options.door);
                    if !self.make_room(door, Source::of(addr), addr, now) {
                        drop(stream); // closed at once: the peer sees the end of the stream
                        continue;
                    }
                    log::debug!("accepted {addr}");
                    self.add_conn(stream, socket, Origin::Accepted(addr), now);
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

    /// Whether a new connection at `door` from `addr` gets a slot: connections still in their
    /// handshake are closed to make room while `admission` says so; a refusal is counted and
    /// logged (throttled).
    fn make_room(&mut self, door: Option<Door>, source: Source, addr: SocketAddr, now: Instant) -> bool {
        loop {
            match self.admission.admit(door, source, self.conn_count) {
                Admit::Yes => return true,
                Admit::Evict(old) => {
                    self.admission.evicted();
                    if let Some(count) = self.eviction_log.note(now) {
                        log::warn!(
                            "closed {count} connection(s) still in their handshake to make room for new \
                             ones: connection slots are full (MAX_CONNECTIONS={}, MAX_CONNECTIONS_PER_ADDRESS={})",
                            self.limits.max_connections,
                            self.limits.per_address
                        );
                    }
                    self.close_conn(old, CloseReason::MadeRoom);
                }
                Admit::No(why) => {
                    self.admission.refused(why);
                    self.stats.connections_refused += 1;
                    if let Some(count) = self.refusal_log.note(now) {
                        let why = match why {
                            Refusal::PerAddress => format!(
                                "{} holds MAX_CONNECTIONS_PER_ADDRESS={}",
                                addr.ip(),
                                self.limits.per_address
                            ),
                            Refusal::Full => format!(
                                "every slot for its door is taken ({} open, MAX_CONNECTIONS={})",
                                self.conn_count, self.limits.max_connections
                            ),
                        };
                        log::warn!("refused {count} connection(s), the last because {why}");
                    }
                    return false;
                }
            }
        }
    }

    pub(super) fn add_conn(&mut self, mut stream: TcpStream, socket: SocketId, origin: Origin, now: Instant) {
        let (connector, accepted) = match origin {
            Origin::Accepted(addr) => (None, Some(addr)),
            Origin::Connected(connector) => (Some(connector), None),
        };
        let Some(entry) = self.sockets.get(socket.0) else { return };
        let _ = stream.set_nodelay(true);
        let config = session_config(entry.socket.socket_type(), &entry.options, connector.is_none());
        let door = entry.options.door;
        let authenticates =
            connector.is_none() && matches!(entry.options.curve, Some(zmtp::curve::Curve::Server { .. }));
        let token = Token(self.io.next_token());
        if let Err(e) =
            self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("cannot register a connection: {e}");
            return;
        }
        let session = Session::new(config, now);
        if let Some(e) = session.failure() {
            // A CURVE client whose provider could not even make its HELLO (no randomness).
            log::warn!("connection not started: {e}");
            let _ = self.poll.registry().deregister(&mut stream);
            if let Some(ck) = connector {
                self.schedule_reconnect(ck, now);
            }
            return;
        }
        let mut conn = Connection::new(stream, session, socket, connector);
        conn.authenticates = authenticates;
        let key = self.io.insert_conn(conn);
        if let (Some(addr), Some(conn)) = (accepted, self.io.conn_mut(key)) {
            conn.admitted = Some(self.admission.admitted(key, door, Source::of(addr), now));
        }
        self.conn_count += 1;
        if let Some(ck) = connector {
            if let Some(c) = self.connectors.get_mut(ck.0) {
                c.conn = Some(key);
            }
        }
        // Our greeting and READY go out at once (speculative write), never waiting for the peer's.
        self.flush_conn(key);
        self.rearm_timer(key);
    }

    pub(super) fn start_connect(&mut self, ck: ConnectorId, now: Instant) {
        let Some(connector) = self.connectors.get(ck.0) else { return };
        let (addr, socket) = (connector.addr, connector.socket);
        match TcpStream::connect(addr) {
            Ok(stream) => self.add_conn(stream, socket, Origin::Connected(ck), now),
            Err(e) => {
                log::debug!("connect to {addr} failed: {e}");
                self.schedule_reconnect(ck, now);
            }
        }
    }

    pub(super) fn schedule_reconnect(&mut self, ck: ConnectorId, now: Instant) {
        let random = crate::random::next_u64();
        let Some(connector) = self.connectors.get_mut(ck.0) else { return };
        let delay = connector.backoff.next_delay(random);
        log::debug!("reconnecting to {} in {delay:?}", connector.addr);
        self.timers.set(TimerOwner::Reconnect(ck), Some(crate::time::after(now, delay)));
    }

    /// Reads connection `key` until its socket is drained, its queue or the memory budget says
    /// stop, or it has had `READ_PER_TURN` bytes this turn: then it goes on next turn, after
    /// the others, so one peer that never stops sending cannot starve the rest.
    pub(super) fn read_conn(&mut self, key: ConnId, now: Instant) {
        let mut read_this_turn = 0;
        loop {
            let Some(conn) = self.io.conn(key) else { return };
            if conn.read_paused || conn.budget_paused {
                break;
            }
            let Some(limit) = self.read_allowance(key) else {
                self.pause_for_budget(key, now);
                break;
            };
            let step = conn.handshake_read();
            let paced = if step.is_none() { conn.admitted.map(|a| a.source()) } else { None };
            let limit = limit.min(step.unwrap_or(usize::MAX));
            if let Some(source) = paced {
                if !self.admission.take_handshake(source, now) {
                    self.defer_handshake(key);
                    break;
                }
            }
            let Some(conn) = self.io.conn_mut(key) else { return };
            match conn.read_once(now, limit, &mut self.read_pool) {
                Ok(ReadOutcome::WouldBlock) => {
                    if let Some(source) = paced {
                        self.admission.refund_handshake(source); // nothing was there to work on
                    }
                    break;
                }
                Ok(ReadOutcome::Progress { read, drained }) => {
                    self.stats.bytes_read += read as u64;
                    self.drain_session_events(key);
                    self.account(key);
                    if drained {
                        break;
                    }
                    read_this_turn += read;
                    if read_this_turn >= READ_PER_TURN {
                        self.to_continue.push(key);
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
    pub(super) fn drain_session_events(&mut self, key: ConnId) {
        while let Some(conn) = self.io.conn_mut(key) {
            let Some(event) = conn.session.poll_event() else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return };
            match event {
                Event::HandshakeComplete(info) => self.on_handshake(key, info),
                Event::Message(message) => match conn.peer {
                    Some(peer) => {
                        if entry.socket.deliver(peer, message) == Inbound::Full {
                            conn.read_paused = true;
                            self.note_stall(key);
                        }
                    }
                    None => entry.socket.stats_mut().dropped_ignored_peer += 1,
                },
                Event::Subscribe(topic) => {
                    if let Some(peer) = conn.peer {
                        entry.socket.peer_subscription(peer, &topic, TopicChange::Subscribe);
                    }
                }
                Event::Cancel(topic) => {
                    if let Some(peer) = conn.peer {
                        entry.socket.peer_subscription(peer, &topic, TopicChange::Cancel);
                    }
                }
                Event::Ping { .. } | Event::Pong { .. } => {}
            }
        }
    }

    /// Reads `key` again on a later turn, when the handshake budget allows.
    fn defer_handshake(&mut self, key: ConnId) {
        if let Some(conn) = self.io.conn_mut(key) {
            if !std::mem::replace(&mut conn.deferred, true) {
                self.handshake_waiters.push(key);
            }
        }
    }

    /// Reads the connections whose handshake step waited, in the order they began waiting.
    pub(super) fn resume_handshakes(&mut self, now: Instant) {
        if self.handshake_waiters.is_empty() {
            return;
        }
        for key in std::mem::take(&mut self.handshake_waiters) {
            if let Some(conn) = self.io.conn_mut(key) {
                conn.deferred = false;
                self.read_conn(key, now);
            }
        }
    }

    pub(super) fn on_handshake(&mut self, key: ConnId, info: zmtp::PeerInfo) {
        let identity = info.identity;
        let Some(conn) = self.io.conn_mut(key) else { return };
        if let Some(admitted) = &conn.admitted {
            self.admission.handshake_done(admitted);
        }
        let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return };
        let persistent = conn.connector.and_then(|ck| self.connectors.get_mut(ck.0)).and_then(|c| {
            c.backoff.reset();
            c.curve_failures = 0;
            c.peer
        });
        let attach = match persistent {
            Some(peer) => entry.socket.reconnected(peer, identity),
            None => entry.socket.attach(identity),
        };
        let (peer, evicted) = match attach {
            Attach::Attached(peer) => (peer, None),
            // The slab may hand the evicted peer's key to the newcomer: take the old transport
            // out before the new one goes in.
            Attach::TookOver { key: peer, evicted } => (peer, entry.transports.remove(&evicted)),
            Attach::Ignored => {
                log::info!("peer {} ignored: its identity is already connected", conn.peer_addr());
                conn.ignored = true;
                return;
            }
        };
        conn.peer = Some(peer);
        conn.metadata_bytes = info.metadata.encoded_len();
        entry.transports.insert(peer, Transport::Tcp(key));
        entry.metadata.insert(peer, info.metadata);
        entry.socket.peers_mut().mark_dirty(peer);
        self.pump_everything = true;
        for topic in entry.socket.subscriptions() {
            let _ = conn.session.subscribe(topic);
        }
        let identity = entry.socket.peers().get(peer).map(|p| p.identity.clone()).unwrap_or_default();
        let socket = conn.socket;
        if let Some(Transport::Tcp(old)) = evicted {
            if let Some(old_conn) = self.io.conn_mut(old) {
                old_conn.peer = None; // its peer is gone already; the newcomer holds the identity
            }
            self.peer_events.push_back(PeerEvent::Disconnected {
                socket,
                identity: identity.clone(),
                reason: CloseReason::Evicted,
            });
            self.close_conn(old, CloseReason::Evicted);
        }
        self.peer_events.push_back(PeerEvent::Connected { socket, identity });
    }

    pub(super) fn close_conn(&mut self, key: ConnId, reason: CloseReason) {
        let Some(mut conn) = self.io.remove_conn(key) else { return };
        self.timers.set(TimerOwner::Connection(key), None);
        self.conn_count -= 1;
        if let Some(admitted) = &conn.admitted {
            self.admission.released(admitted);
        }
        self.held -= conn.accounted;
        let _ = conn.flush();
        self.stats.bytes_written += conn.written;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let addr = conn.peer_addr();
        if let CloseReason::Protocol(zmtp::Error::Curve(zmtp::CurveError::Unauthorized { .. })) = &reason {
            self.stats.curve_refused += 1;
        }
        let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return };
        let curve_client = matches!(entry.options.curve, Some(zmtp::curve::Curve::Client { .. }));
        let handshaking = curve_client && !conn.session.is_ready();
        // The server refused our key with an ERROR: said below, once per doubling.
        let refused = handshaking && matches!(&reason, CloseReason::Protocol(zmtp::Error::PeerError { .. }));
        if reason.is_failure() && !refused {
            entry.socket.stats_mut().peers_failed += 1;
            log::info!("closing connection {addr}: {reason}");
        } else {
            log::debug!("connection {addr} closed: {reason}");
        }
        let mut connector = conn.connector.and_then(|ck| self.connectors.get_mut(ck.0).map(|c| (ck, c)));
        let unfinished = handshaking && (refused || !reason.is_failure());
        if let Some((_, c)) = connector.as_mut().filter(|_| unfinished) {
            // A CURVE server that cannot open our HELLO or vouch (libzmq) just closes; one that
            // does not let our key in says ERROR. Say which, at the 1st, 2nd, 4th, 8th...
            // failure in a row.
            c.curve_failures += 1;
            if c.curve_failures.is_power_of_two() && refused {
                log::warn!(
                    "CURVE handshake with {addr} refused {} time(s) in a row ({reason}): the server \
                     does not let this key in at that port; check CURVE_CLIENT_KEYS and \
                     CURVE_PERMISSIONS there (README: Security model)",
                    c.curve_failures
                );
            } else if c.curve_failures.is_power_of_two() {
                log::warn!(
                    "CURVE handshake with {addr} failed {} time(s) in a row ({reason}): check that \
                     CURVE_SERVER_KEY is that server's public key and that it allows this key",
                    c.curve_failures
                );
            }
        }
        if let Some(peer) = conn.peer {
            let identity = entry.socket.peers().get(peer).map(|p| p.identity.clone()).unwrap_or_default();
            if entry.socket.detach(peer) {
                entry.transports.insert(peer, Transport::Waiting);
            } else {
                entry.transports.remove(&peer);
            }
            entry.metadata.remove(&peer);
            self.pump_everything = true;
            let socket = conn.socket;
            self.peer_events.push_back(PeerEvent::Disconnected { socket, identity, reason: reason.clone() });
        }
        if let Some((ck, c)) = connector {
            c.conn = None;
            self.schedule_reconnect(ck, Instant::now());
        }
    }

    /// After reading or firing timers: queue a write if bytes wait, and re-arm the timer.
    pub(super) fn after_activity(&mut self, key: ConnId) {
        if let Some(conn) = self.io.conn_mut(key) {
            if conn.pending_output() > 0 {
                self.to_flush.push(key);
            }
        }
        self.account(key);
        self.rearm_timer(key);
    }

    pub(super) fn rearm_timer(&mut self, key: ConnId) {
        let Some(conn) = self.io.conn_mut(key) else { return };
        let deadline = conn.session.poll_timeout();
        if deadline != conn.deadline {
            conn.deadline = deadline;
            self.timers.set(TimerOwner::Connection(key), deadline);
        }
    }

    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(owner) = self.timers.pop_due(now) {
            match owner {
                TimerOwner::Connection(key) => {
                    let Some(conn) = self.io.conn_mut(key) else { continue };
                    conn.deadline = None;
                    match conn.session.handle_timeout(now) {
                        Ok(()) => self.after_activity(key),
                        Err(e) => self.close_conn(key, CloseReason::Protocol(e)),
                    }
                }
                TimerOwner::Reconnect(ck) => {
                    if self.connectors.get(ck.0).is_some_and(|c| c.conn.is_none()) {
                        self.start_connect(ck, now);
                    }
                }
            }
        }
    }

    /// Moves queued messages into the connection's encoder (up to its write budget; under
    /// memory pressure, up to the pressure reserve) and writes. A connection that leaves
    /// messages queued is noted as possibly stalled (see `stall`).
    pub(super) fn flush_conn(&mut self, key: ConnId) {
        self.write_conn(key);
        let Some(conn) = self.io.conn(key) else { return };
        let queued = conn
            .peer
            .zip(self.sockets.get(conn.socket.0))
            .is_some_and(|(peer, entry)| entry.socket.peers().outbound_len(peer) > 0);
        if queued {
            self.note_stall(key);
        }
        self.account(key);
    }

    fn write_conn(&mut self, key: ConnId) {
        loop {
            let Some(conn) = self.io.conn_mut(key) else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return };
            if let Some(peer) = conn.peer {
                let budget = match self.pressure {
                    true => entry.options.write_budget.min(PRESSURE_RESERVE),
                    false => entry.options.write_budget,
                };
                let peers = entry.socket.peers_mut();
                while conn.pending_output() < budget {
                    let Some(message) = peers.pop_outbound(peer) else { break };
                    if conn.session.send(&message).is_err() {
                        peers.unpop_outbound(peer, message);
                        break;
                    }
                }
            }
            let more_queued = conn.peer.is_some_and(|p| entry.socket.peers().outbound_len(p) > 0);
            let flushed = conn.flush();
            self.stats.bytes_written += std::mem::take(&mut conn.written);
            match flushed {
                Ok(true) if more_queued => continue,
                Ok(_) => return,
                Err(reason) => return self.close_conn(key, reason),
            }
        }
    }

    pub(super) fn flush_pending(&mut self) {
        for key in std::mem::take(&mut self.to_flush) {
            self.flush_conn(key);
        }
    }
}
