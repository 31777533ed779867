//! Resource bounds under hostile load, against the reactor with raw ZMTP peers on real TCP
//! connections: what a crowd of peers, a patient peer or a legal but heavy peer can make the node
//! hold. Each test pushes past a bound and checks what was refused or kept.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ezarch::reactor::Reactor;
use ezarch::socket::{SocketOptions, SocketType};
use ezarch::zmtp::{Command, Config, Event, Session};

/// Binds a socket of `socket_type` on a free loopback port; returns it and its `host:port`.
fn listening(
    reactor: &mut Reactor,
    socket_type: SocketType,
    options: SocketOptions,
) -> (ezarch::reactor::SocketId, String) {
    let socket = reactor.socket(socket_type, options).unwrap();
    let addr = reactor.bind(socket, "tcp://127.0.0.1:0").unwrap();
    (socket, addr.to_string())
}

/// A blocking raw peer: a zmtp `Session` of `socket_type` over a std `TcpStream`.
struct RawPeer {
    stream: TcpStream,
    session: Session,
    buf: BytesMut,
}

impl RawPeer {
    fn connect(addr: &str, socket_type: SocketType) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut peer = Self {
            stream,
            session: Session::new(Config::new(socket_type), Instant::now()),
            buf: BytesMut::new(),
        };
        peer.flush();
        peer
    }

    fn flush(&mut self) {
        let out: Vec<u8> = self.session.encoder().chunks().flatten().copied().collect();
        self.session.encoder().consume(out.len());
        self.stream.write_all(&out).unwrap();
    }

    /// Reads once and returns the session's events (empty at end of stream).
    fn read_events(&mut self) -> Vec<Event> {
        let mut chunk = [0u8; 64 << 10];
        let n = self.stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return Vec::new();
        }
        self.buf.extend_from_slice(&chunk[..n]);
        self.session.handle_input(&mut self.buf, Instant::now()).unwrap();
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }
}

#[test]
fn a_ping_flood_arms_one_timer_not_one_per_ping() {
    let mut reactor = Reactor::new().unwrap();
    let (_router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    const PINGS: usize = 5_000;
    let peer = thread::spawn(move || {
        let mut peer = RawPeer::connect(&addr, SocketType::Dealer);
        let mut pings = BytesMut::new();
        for i in 0..PINGS {
            // TTLs up to 6,553 s, later and earlier by turns: each re-arms the peer's TTL timer.
            let ttl_deciseconds = u16::MAX - (i % 1_000) as u16;
            let context = Bytes::from(format!("{i:016}"));
            Command::Ping { ttl_deciseconds, context }.encode(&mut pings);
        }
        peer.stream.write_all(&pings).unwrap();
        let mut pongs = 0;
        while pongs < PINGS {
            let events = peer.read_events();
            assert!(!events.is_empty(), "closed after {pongs} PONGs");
            pongs += events.iter().filter(|e| matches!(e, Event::Pong { .. })).count();
        }
        peer // still connected
    });
    let done = reactor.run_until(Duration::from_secs(30), |_| peer.is_finished()).unwrap();
    assert!(done, "the peer did not get its PONGs in time");
    let _peer = peer.join().unwrap();
    assert_eq!(reactor.connection_count(), 1);
    assert_eq!(reactor.armed_timers(), 1, "one TTL deadline for the one connection");
}

#[test]
fn a_data_frame_before_ready_closes_the_connection_at_its_header() {
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { handshake_timeout: Duration::from_secs(120), ..SocketOptions::default() };
    let (router, addr) = listening(&mut reactor, SocketType::Router, options);
    let mut stream = TcpStream::connect(&addr).unwrap();
    let mut hello = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    hello.extend_from_slice(b"NULL");
    hello.resize(64, 0);
    // The 9-byte header of a 16 MiB data frame where READY must come, and nothing more.
    hello.push(0x02);
    hello.extend_from_slice(&(16u64 << 20).to_be_bytes());
    stream.write_all(&hello).unwrap();
    let closed =
        reactor.run_until(Duration::from_secs(20), |r| r.stats(router).unwrap().peers_failed == 1).unwrap();
    assert!(closed, "the connection waited for the body instead of closing at the header");
    assert_eq!(reactor.connection_count(), 0);
    let mut rest = Vec::new();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.read_to_end(&mut rest); // our greeting and READY, then the end of the stream
}
