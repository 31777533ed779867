//! ZMTP heartbeats (RFC 37 PING/PONG): when to ping, and when silence ends the connection.
//!
//! Three deadlines, each with time passed in:
//! - `next_ping`: we send a PING every `interval`.
//! - `ping_timeout`: after our PING, the peer has `timeout` to send anything at all.
//! - `peer_ttl`: the peer's PING asked us to drop it if nothing more arrives within its TTL.
//!
//! Any received byte cancels the last two (libzmq#2709: count bytes, not whole messages).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::command::{Command, MAX_PING_TTL_DECISECONDS};
use crate::error::Error;

/// Heartbeat settings for one connection; all off by default, as in libzmq. PINGs from the peer
/// are always answered, whatever these say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Send a PING this often (`ZMQ_HEARTBEAT_IVL`).
    pub interval: Option<Duration>,
    /// Close when nothing arrives this long after our PING; defaults to `interval`.
    pub timeout: Option<Duration>,
    /// The TTL we ask the peer to apply to us, sent in each PING; capped at 65.5 s.
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct HeartbeatTimers {
    config: Heartbeat,
    next_ping: Option<Instant>,
    ping_timeout: Option<Instant>,
    peer_ttl: Option<Instant>,
}

impl HeartbeatTimers {
    pub(crate) fn new(mut config: Heartbeat) -> Self {
        // A zero interval would make a PING due again at the instant it was sent: off instead.
        config.interval = config.interval.filter(|ivl| !ivl.is_zero());
        Self { config, next_ping: None, ping_timeout: None, peer_ttl: None }
    }

    /// Called when the handshake completes: the first PING is due one interval later.
    pub(crate) fn start(&mut self, now: Instant) {
        self.next_ping = self.config.interval.and_then(|ivl| now.checked_add(ivl));
    }

    /// Any bytes from the peer prove it alive.
    pub(crate) fn on_input(&mut self) {
        self.ping_timeout = None;
        self.peer_ttl = None;
    }

    /// The peer's PING carries a TTL: without further traffic within it, we drop the peer.
    pub(crate) fn on_peer_ping(&mut self, now: Instant, ttl: Duration) {
        if !ttl.is_zero() && self.peer_ttl.is_none() {
            self.peer_ttl = now.checked_add(ttl);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.next_ping, self.ping_timeout, self.peer_ttl].into_iter().flatten().min()
    }

    /// Fires due timers: an error when the peer went silent, else the PING to send, if due.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Result<Option<Command>, Error> {
        let due = |deadline: Option<Instant>| deadline.is_some_and(|d| d <= now);
        if due(self.ping_timeout) || due(self.peer_ttl) {
            return Err(Error::HeartbeatTimeout);
        }
        let (true, Some(interval)) = (due(self.next_ping), self.config.interval) else { return Ok(None) };
        let ttl_deciseconds = self.config.ttl.map_or(0, ttl_to_deciseconds);
        if self.ping_timeout.is_none() {
            self.ping_timeout = now.checked_add(self.config.timeout.unwrap_or(interval));
        }
        self.next_ping = now.checked_add(interval);
        Ok(Some(Command::Ping { ttl_deciseconds, context: Bytes::new() }))
    }
}

/// The TTL we advertise in PINGs, in deciseconds, never above libzmq's safe 655 (libzmq#4226).
pub fn ttl_to_deciseconds(ttl: Duration) -> u16 {
    let ds = ttl.as_millis() / 100;
    u16::try_from(ds).unwrap_or(u16::MAX).min(MAX_PING_TTL_DECISECONDS)
}
