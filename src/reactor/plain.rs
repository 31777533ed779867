//! Plain TCP streams beside the ZMTP ones, for a request/response protocol the application
//! parses itself (the HTTP monitoring endpoint): the reactor accepts, reads into a bounded
//! buffer, writes one response and closes. One request per connection, no thread per request.
//!
//! Bounded: at most `PlainLimits::max_connections` at once (more are accepted and closed,
//! counted), at most `max_input` bytes of request, and every connection closed `lifetime` after
//! it was accepted whatever it sent (a slow or silent client cannot hold a slot).
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
pub(super) const TOKEN_BASE: usize = 1 << 40;

/// A plain connection, valid until it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlainId(usize);

/// The bounds on plain streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainLimits {
    /// Connections open at once across plain listeners.
    pub max_connections: usize,
    /// Bytes of request kept; a request that has not ended by then is the application's to
    /// refuse (`PlainStreams::input_full`).
    pub max_input: usize,
    /// Time from accept to close, whatever happens.
    pub lifetime: Duration,
}

impl Default for PlainLimits {
    fn default() -> Self {
        Self { max_connections: 16, max_input: 8 << 10, lifetime: Duration::from_secs(10) }
    }
}

/// Counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainStats {
    pub accepted: u64,
    /// Accepted and closed at once: `max_connections` were open.
    pub refused: u64,
    /// Closed at the end of their lifetime, response unsent or unfinished.
    pub timed_out: u64,
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
    /// Waiting in `ready` for the application.
    queued: bool,
    closes_at: Instant,
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
            self.stats.refused += 1;
            log::debug!("monitor connection from {addr} refused: {} open", self.conns.len());
            return; // dropped: closed at once
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
            queued: false,
            closes_at: crate::time::after(now, self.limits.lifetime),
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
        if got && !conn.queued {
            conn.queued = true;
            self.ready.push_back(key);
        }
        if ended && !conn.responding && !conn.queued {
            self.close(registry, key);
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

    /// Whether `id` sent `max_input` bytes: no more will be read.
    pub fn input_full(&self, id: PlainId) -> bool {
        self.conns.get(id.0).is_some_and(|c| c.input.len() >= self.limits.max_input)
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

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = registry.deregister(&mut conn.stream);
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
    }

    /// When the oldest connection's lifetime ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(_, c)| c.closes_at).min()
    }

    /// Closes connections whose lifetime ended.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<usize> = self.conns.iter().filter(|(_, c)| c.closes_at <= now).map(|(k, _)| k).collect();
        for key in due {
            if let Some(conn) = self.conns.get(key) {
                log::debug!("monitor connection from {} closed: no complete request in time", conn.peer);
            }
            self.stats.timed_out += 1;
            self.close(registry, key);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.len()
    }
}
