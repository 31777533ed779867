//! Helpers shared by the codec tests: golden vectors from disk, hand-built peer bytes, and a way
//! to read what a session would write.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zmtp::{Config, Error, Event, Session, SocketType};

/// A file captured from pyzmq by `tests/capture_vectors.py`.
pub fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A ZMTP 3.x greeting with the given minor version and mechanism, written out by hand.
pub fn greeting(major: u8, minor: u8, mechanism: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = major;
    g[11] = minor;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism);
    g
}

/// A command frame (short or long form), written out by hand.
pub fn command(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(data);
    frame(0x04, &body)
}

/// A frame with the given flags (LONG added when the body needs it).
pub fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if body.len() <= 255 {
        out.push(flags);
        out.push(body.len() as u8);
    } else {
        out.push(flags | 0x02);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// One READY property.
pub fn property(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![name.len() as u8];
    out.extend_from_slice(name);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// READY with `Socket-Type` and, when given, `Identity`.
pub fn ready(socket_type: &[u8], identity: Option<&[u8]>) -> Vec<u8> {
    let mut props = property(b"Socket-Type", socket_type);
    if let Some(id) = identity {
        props.extend(property(b"Identity", id));
    }
    command(b"READY", &props)
}

/// Greeting + READY as a 3.`minor` peer of `socket_type` would send them.
pub fn peer_hello(socket_type: &[u8], minor: u8) -> Vec<u8> {
    let mut out = greeting(3, minor, b"NULL");
    out.extend(ready(socket_type, None));
    out
}

/// A session of type `ours` that has completed its handshake with a 3.`minor` peer.
pub fn active_session(ours: SocketType, peer_type: &[u8], minor: u8, now: Instant) -> Session {
    let mut session = Session::new(Config::new(ours), now);
    let mut buf = BytesMut::from(&peer_hello(peer_type, minor)[..]);
    session.handle_input(&mut buf, now).expect("handshake");
    assert!(session.is_ready());
    assert!(matches!(session.poll_event(), Some(Event::HandshakeComplete(_))));
    output(&mut session);
    session
}

/// Everything the session has queued for the wire, consumed.
pub fn output(session: &mut Session) -> Vec<u8> {
    let out: Vec<u8> = session.encoder().chunks().flatten().copied().collect();
    session.encoder().consume(out.len());
    out
}

/// Every event the session has queued.
pub fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// Feeds `bytes` in one piece; returns the events.
pub fn feed(session: &mut Session, bytes: &[u8], now: Instant) -> Result<Vec<Event>, zmtp::Error> {
    let mut buf = BytesMut::from(bytes);
    session.handle_input(&mut buf, now)?;
    Ok(events(session))
}

pub fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

/// Two sessions wired back to back with a clock the test steps (quinn-proto's `Pair` style).
pub struct Pair {
    pub client: Session,
    pub server: Session,
    pub now: Instant,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
}

impl Pair {
    pub fn new(client: Config, server: Config) -> Self {
        let now = Instant::now();
        Self {
            client: Session::new(client, now),
            server: Session::new(server, now),
            now,
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to send.
    pub fn drive(&mut self) -> Result<(), Error> {
        loop {
            let to_server = output(&mut self.client);
            let to_client = output(&mut self.server);
            if to_server.is_empty() && to_client.is_empty() {
                return Ok(());
            }
            self.server.handle_input(&mut BytesMut::from(&to_server[..]), self.now)?;
            self.client.handle_input(&mut BytesMut::from(&to_client[..]), self.now)?;
            self.server_events.extend(events(&mut self.server));
            self.client_events.extend(events(&mut self.client));
        }
    }

    /// Advances the clock by `step`, firing both sides' timers.
    pub fn advance(&mut self, step: Duration) -> (Result<(), Error>, Result<(), Error>) {
        self.now += step;
        (self.client.handle_timeout(self.now), self.server.handle_timeout(self.now))
    }
}
