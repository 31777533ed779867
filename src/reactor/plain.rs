//! Plain TCP streams beside the ZMTP ones, for a request/response protocol the application
//! parses itself (the HTTP monitoring endpoint): the reactor accepts, reads into a bounded
//! buffer, writes one response and closes. One request per connection, no thread per request.
//!
//! Bounded: at most `PlainLimits::max_connections` at once, at most `max_input` bytes of
//! request, a request that is not complete `head_timeout` after the accept is dropped, and every
//! connection is closed `lifetime` after it was accepted whatever happens. When all slots are
//! taken, a newcomer takes the slot of the oldest connection still waiting for its request (a
//! crowd of silent clients cannot keep a health check out); only when every slot is writing a
//! response is the newcomer refused.
//!
//! Tokens: plain listeners and connections share the reactor's `Poll` with tokens at or above
//! `TOKEN_BASE` (even: a connection, odd: a listener), so the ZMTP slab's keys never meet them.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::connection::PeerAddr;

/// Tokens from here on are plain streams'.
pub(super) const TOKEN_BASE: usize = 1 << (usize::BITS - 2);

/// A plain connection, valid until it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlainId(usize);

/// The bounds on plain streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainLimits {
    /// Connections open at once across plain listeners.
    pub max_connections: usize,
    /// Bytes of request kept; a request that has not ended by then is the application's to
    /// refuse (`PlainStreams::input_done`).
    pub max_input: usize,
    /// Time from accept to a complete request; past it the connection is closed.
    pub head_timeout: Duration,
    /// Time from accept to close, whatever happens (a response that is slow to drain).
    pub lifetime: Duration,
}

impl Default for PlainLimits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            max_input: 8 << 10,
            head_timeout: Duration::from_secs(2),
            lifetime: Duration::from_secs(10),
        }
    }
}

/// Counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainStats {
    /// Connections accepted, those refused at once included.
    pub accepted: u64,
    /// Accepted and closed at once: `max_connections` were open, all writing responses.
    pub refused: u64,
    /// Closed to make room for a newcomer: the oldest still waiting for its request.
    pub evicted: u64,
    /// Closed with no complete request in `head_timeout`, or a response unfinished in
    /// `lifetime`.
    pub timed_out: u64,
    /// Responses the application gave (`Reactor::plain_respond`).
    pub responses: u64,
}

#[derive(Debug)]
struct PlainConn {
    stream: TcpStream,
    peer: PeerAddr,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    /// A response was given: close once it is written.
    responding: bool,
    /// The peer closed its side (or the connection failed): no more input will come.
    ended: bool,
    /// Waiting in `ready` for the application.
    queued: bool,
    accepted_at: Instant,
}

/// Every plain listener and connection of a reactor.
#[derive(Debug, Default)]
pub struct PlainStreams {
    limits: PlainLimits,
    listeners: Slab<TcpListener>,
    conns: Slab<PlainConn>,
    /// Connections with new input for the application.
    ready: VecDeque<usize>,
    pub stats: PlainStats,
}

impl PlainStreams {
    pub fn new(limits: PlainLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Listens on `addr` (a listening socket made by the reactor); returns its local address.
    pub fn listen(&mut self, registry: &Registry, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        let local = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let key = self.listeners.vacant_key();
        registry.register(&mut listener, Token(TOKEN_BASE + 2 * key + 1), Interest::READABLE)?;
        self.listeners.insert(listener);
        Ok(local)
    }

    /// Handles readiness for a token at or above `TOKEN_BASE`.
    pub fn on_ready(&mut self, registry: &Registry, token: usize, writable: bool, now: Instant) {
        let index = token - TOKEN_BASE;
        if index % 2 == 1 {
            return self.accept_all(registry, index / 2, now);
        }
        let key = index / 2;
        if writable {
            self.write(registry, key);
        }
        self.read(registry, key);
    }

    fn accept_all(&mut self, registry: &Registry, listener: usize, now: Instant) {
        loop {
            let Some(l) = self.listeners.get(listener) else { return };
            match l.accept() {
                Ok((stream, addr)) => self.add(registry, stream, addr, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return log::warn!("monitor accept failed: {e}"),
            }
        }
    }

    fn add(&mut self, registry: &Registry, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        self.stats.accepted += 1;
        if self.conns.len() >= self.limits.max_connections {
            let waiting = self.conns.iter().filter(|(_, c)| !c.responding).min_by_key(|(_, c)| c.accepted_at);
            let Some((oldest, _)) = waiting else {
                self.stats.refused += 1;
                log::debug!(
                    "monitor connection from {addr} refused: {} responses being written",
                    self.conns.len()
                );
                return; // dropped: closed at once
            };
            self.stats.evicted += 1;
            self.close(registry, oldest);
        }
        let key = self.conns.vacant_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = registry.register(&mut stream, Token(TOKEN_BASE + 2 * key), interest) {
            return log::warn!("cannot register a monitor connection: {e}");
        }
        self.conns.insert(PlainConn {
            stream,
            peer: PeerAddr(Some(addr)),
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            responding: false,
            ended: false,
            queued: false,
            accepted_at: now,
        });
    }

    fn read(&mut self, registry: &Registry, key: usize) {
        let max_input = self.limits.max_input;
        let Some(conn) = self.conns.get_mut(key) else { return };
        let mut got = false;
        let mut ended = false;
        let mut chunk = [0u8; 2048];
        while conn.input.len() < max_input {
            let room = (max_input - conn.input.len()).min(chunk.len());
            match conn.stream.read(&mut chunk[..room]) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    got = !conn.responding;
                    if !conn.responding {
                        conn.input.extend_from_slice(&chunk[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        conn.ended |= ended;
        if (got || ended) && !conn.responding && !conn.queued {
            if conn.input.is_empty() {
                return self.close(registry, key); // gone before saying anything
            }
            conn.queued = true;
            self.ready.push_back(key);
        }
    }

    fn write(&mut self, registry: &Registry, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(0) => break,
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        if conn.responding {
            self.close(registry, key);
        }
    }

    /// The next connection with new input for the application.
    pub fn next_ready(&mut self) -> Option<PlainId> {
        while let Some(key) = self.ready.pop_front() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.queued = false;
                if !conn.responding {
                    return Some(PlainId(key));
                }
            }
        }
        None
    }

    /// What connection `id` sent so far (at most `max_input` bytes).
    pub fn input(&self, id: PlainId) -> Option<&[u8]> {
        self.conns.get(id.0).map(|c| &c.input[..])
    }

    /// Whether no more input will come for `id`: it sent `max_input` bytes, or closed its side.
    pub fn input_done(&self, id: PlainId) -> bool {
        self.conns.get(id.0).is_some_and(|c| c.ended || c.input.len() >= self.limits.max_input)
    }

    /// Writes `response` to `id`, then closes it.
    pub fn respond(&mut self, registry: &Registry, id: PlainId, response: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(id.0) else { return };
        conn.output = response;
        conn.written = 0;
        conn.responding = true;
        conn.input = Vec::new();
        self.stats.responses += 1;
        self.write(registry, id.0);
    }

    /// Closes `id` at once.
    pub fn close_id(&mut self, registry: &Registry, id: PlainId) {
        self.close(registry, id.0);
    }

    /// Closes `key`. Input the peer sent that was never read (a request body, the rest of an
    /// oversized head) is read and dropped first, as far as it has arrived: closing a socket
    /// with unread input sends a reset, which could destroy the response before the peer reads
    /// it.
    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = registry.deregister(&mut conn.stream);
            let mut sink = [0u8; 2048];
            for _ in 0..32 {
                if !matches!(conn.stream.read(&mut sink), Ok(1..)) {
                    break;
                }
            }
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
    }

    /// When `conn` is closed unless it gets further.
    fn deadline(&self, conn: &PlainConn) -> Instant {
        let limit = if conn.responding { self.limits.lifetime } else { self.limits.head_timeout };
        crate::time::after(conn.accepted_at, limit)
    }

    /// The earliest deadline of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(_, c)| self.deadline(c)).min()
    }

    /// Closes connections past their deadline.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<usize> =
            self.conns.iter().filter(|(_, c)| self.deadline(c) <= now).map(|(k, _)| k).collect();
        for key in due {
            if let Some(conn) = self.conns.get(key) {
                let what = if conn.responding { "response not written" } else { "no complete request" };
                log::debug!("monitor connection from {} closed: {what} in time", conn.peer);
            }
            self.stats.timed_out += 1;
            self.close(registry, key);
        }
    }

    /// Bytes of responses not written yet.
    pub fn pending_output(&self) -> usize {
        self.conns.iter().map(|(_, c)| c.output.len() - c.written).sum()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.len()
    }
}
