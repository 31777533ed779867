//! Resource bounds under hostile load, against the reactor with raw ZMTP peers on real TCP
//! connections: what a crowd of peers, a patient peer or a legal but heavy peer can make the node
//! hold. Each test pushes past a bound and checks what was refused or kept.

mod interop;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ezarch::reactor::{Limits, Reactor};
use ezarch::socket::{SocketOptions, SocketType, PRESSURE_RESERVE};
use ezarch::zmtp::{Command, Config, Event, Session};
use interop::{echo, spawn};

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

#[test]
fn connections_beyond_the_limit_make_room_by_closing_the_oldest_handshakes_or_are_refused() {
    let mut reactor = Reactor::with_limits(Limits { max_connections: 5, ..Limits::default() }).unwrap();
    let (router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    // Eight silent connections: each past the fifth closes the oldest still in its handshake.
    let streams: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let settled = reactor
        .run_until(Duration::from_secs(20), |r| r.reactor_stats().admission.evicted_handshaking == 3)
        .unwrap();
    assert!(settled, "{:?}", reactor.reactor_stats());
    assert_eq!((reactor.connection_count(), reactor.reactor_stats().connections_refused), (5, 0));
    // The three oldest see our greeting, then the end of the stream.
    for mut stream in &streams[..3] {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        assert!(stream.read_to_end(&mut rest).is_ok(), "an evicted connection was not closed");
    }
    drop(streams);
    assert!(reactor.run_until(Duration::from_secs(20), |r| r.connection_count() == 0).unwrap());
    // Five peers that finish their handshake hold their slots: three more are refused.
    let peers: Vec<RawPeer> = (0..5).map(|_| RawPeer::connect(&addr, SocketType::Dealer)).collect();
    assert!(reactor.run_until(Duration::from_secs(20), |r| r.peer_count(router) == 5).unwrap());
    let late: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let refused =
        reactor.run_until(Duration::from_secs(20), |r| r.reactor_stats().connections_refused == 3).unwrap();
    assert!(refused, "{:?}", reactor.reactor_stats());
    assert_eq!(reactor.reactor_stats().admission.refused_full, 3);
    drop((peers, late));
    assert!(reactor.run_until(Duration::from_secs(20), |r| r.connection_count() == 0).unwrap());
    // With room again, a real peer is served.
    let mut good = spawn("dealer_echo", &format!("tcp://{addr}"), &["good", "5", "16,1000"]);
    interop::drive(&mut reactor, &mut [&mut good], Duration::from_secs(30), |r| echo(r, router));
    good.ok_line();
}

#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let limits = Limits { per_address: 4, ..Limits::default() };
    let mut reactor = Reactor::with_limits(limits).unwrap();
    let (router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    let peers: Vec<RawPeer> = (0..4).map(|_| RawPeer::connect(&addr, SocketType::Dealer)).collect();
    assert!(reactor.run_until(Duration::from_secs(20), |r| r.peer_count(router) == 4).unwrap());
    let late: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let refused = reactor
        .run_until(Duration::from_secs(20), |r| r.reactor_stats().admission.refused_per_address == 2)
        .unwrap();
    assert!(refused, "{:?}", reactor.reactor_stats());
    let from = peers[0].stream.local_addr().unwrap();
    assert_eq!((reactor.connection_count(), reactor.connections_from(from)), (4, 4));
    drop((peers, late));
}

/// A raw DEALER peer that completes its handshake, then sends the 9-byte header of a frame of
/// `frame` bytes and `sent` bytes of its body, and never finishes it. Returns when the bytes are
/// written (or the node stopped reading them for `patience`), keeping the connection open.
fn hold_partial_frame(addr: String, frame: u64, sent: usize, patience: Duration) -> TcpStream {
    let mut peer = RawPeer::connect(&addr, SocketType::Dealer);
    peer.stream.set_write_timeout(Some(patience)).unwrap();
    let mut bytes = vec![0x02];
    bytes.extend_from_slice(&frame.to_be_bytes());
    bytes.resize(9 + sent, b'z');
    let _ = peer.stream.write_all(&bytes); // a timeout here means the node stopped reading: fine
    peer.stream
}

#[test]
fn peers_holding_unfinished_frames_pause_at_the_budget_while_small_messages_flow() {
    const BUDGET: usize = 4 << 20;
    const HOLDERS: usize = 8;
    let mut reactor = Reactor::with_limits(Limits { memory_budget: BUDGET, ..Limits::default() }).unwrap();
    let (router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    // Eight peers each try to park 3 MiB of a 4 MiB frame: 24 MiB against a 4 MiB budget.
    let holders: Vec<_> = (0..HOLDERS)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || hold_partial_frame(addr, 4 << 20, 3 << 20, Duration::from_secs(3)))
        })
        .collect();
    let mut peak = 0;
    let paused = reactor
        .run_until(Duration::from_secs(30), |r| {
            peak = peak.max(r.memory_used());
            holders.iter().all(|h| h.is_finished())
        })
        .unwrap();
    assert!(paused, "the holders' writes did not finish or time out");
    let bound = BUDGET + HOLDERS * PRESSURE_RESERVE + (256 << 10);
    assert!(peak <= bound, "{peak} bytes held, bound {bound}");
    assert!(peak >= BUDGET, "the holders did fill the budget: {peak}");
    assert!(reactor.reactor_stats().budget_pauses >= 1);
    // The budget is spent, and a good peer with small messages is still served.
    let mut good = spawn("dealer_echo", &format!("tcp://{addr}"), &["good", "20", "16,1000"]);
    interop::drive(&mut reactor, &mut [&mut good], Duration::from_secs(30), |r| {
        echo(r, router);
        peak = peak.max(r.memory_used());
    });
    good.ok_line();
    assert!(peak <= bound, "{peak} bytes held, bound {bound}");
    // The holders leave: everything they held is released.
    let streams: Vec<TcpStream> = holders.into_iter().map(|h| h.join().unwrap()).collect();
    drop(streams);
    let released = reactor.run_until(Duration::from_secs(20), |r| r.connection_count() == 0).unwrap();
    assert!(released);
    assert_eq!(reactor.memory_used(), 0);
}

#[test]
fn a_holder_that_can_never_finish_is_closed_when_the_node_stays_over_its_budget() {
    // A 5 MiB frame against a 4 MiB budget can never complete: waiting for it would hold the
    // budget forever. After `evict_after` over the budget the largest holder is closed.
    const BUDGET: usize = 4 << 20;
    let limits =
        Limits { memory_budget: BUDGET, evict_after: Duration::from_millis(500), ..Limits::default() };
    let mut reactor = Reactor::with_limits(limits).unwrap();
    let (router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    let holder = {
        let addr = addr.clone();
        thread::spawn(move || hold_partial_frame(addr, 6 << 20, 5 << 20, Duration::from_secs(5)))
    };
    let evicted =
        reactor.run_until(Duration::from_secs(30), |r| r.reactor_stats().budget_evictions == 1).unwrap();
    assert!(evicted, "{:?}, {} bytes held", reactor.reactor_stats(), reactor.memory_used());
    assert!(reactor.run_until(Duration::from_secs(10), |r| r.memory_used() == 0).unwrap());
    assert_eq!(reactor.stats(router).unwrap().peers_failed, 1);
    drop(holder.join().unwrap());
    // The node serves again.
    let mut good = spawn("dealer_echo", &format!("tcp://{addr}"), &["good", "5", "16,100000"]);
    interop::drive(&mut reactor, &mut [&mut good], Duration::from_secs(30), |r| echo(r, router));
    good.ok_line();
}

#[test]
fn a_queue_full_by_bytes_resumes_reading_once_compaction_brings_it_under_its_limit() {
    // A ROUTER whose application never receives: its inbound queue fills by bytes and reading
    // pauses. Compacting the waiting messages (after STALL_AGE) shrinks their cost below the
    // limit without a single message taken, and that alone must resume reading: the peer's
    // messages keep arriving until all of them are queued.
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { queue_bytes: 1 << 20, recv_hwm: 1_000_000, ..SocketOptions::default() };
    let (router, addr) = listening(&mut reactor, SocketType::Router, options);
    let dealer = reactor
        .socket(SocketType::Dealer, SocketOptions { send_hwm: 1_000_000, ..SocketOptions::default() })
        .unwrap();
    reactor.connect(dealer, &format!("tcp://{addr}")).unwrap();
    let both = |r: &mut Reactor| r.peer_count(dealer) == 1 && r.peer_count(router) == 1;
    assert!(reactor.run_until(Duration::from_secs(10), both).unwrap());
    let handshakes = reactor.reactor_stats().bytes_read;
    // 9,000 messages: about 1.5 MiB of queue uncompacted, about 0.7 MiB compacted.
    const MESSAGES: usize = 9_000;
    for _ in 0..MESSAGES {
        reactor.send(dealer, vec![Bytes::from_static(&[7; 16])]).unwrap();
    }
    // Each 16-byte message is 18 bytes on the wire; uncompacted it costs about 170 bytes of the
    // 1 MiB queue (its Vec's spare capacity counts), compacted under 80, so reading pauses on
    // the way and must resume.
    let wire = handshakes + (MESSAGES * 18) as u64;
    let read_all =
        reactor.run_until(Duration::from_secs(20), |r| r.reactor_stats().bytes_read >= wire).unwrap();
    assert!(read_all, "reading stayed paused: {} of {wire} bytes read", reactor.reactor_stats().bytes_read);
    let mut received = 0;
    while reactor.recv(router).is_some() {
        received += 1;
    }
    assert_eq!(received, MESSAGES);
}

#[test]
fn a_small_message_after_a_large_frame_does_not_share_the_large_frames_buffer() {
    // A large frame is read into a buffer of its own (reused from a pool). What follows it must
    // not be read into that buffer's spare room: a kept 9 KiB message would otherwise keep a
    // megabyte alive while the memory budget counts 9 KiB.
    let mut reactor = Reactor::new().unwrap();
    let (router, addr) = listening(&mut reactor, SocketType::Router, SocketOptions::default());
    let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    reactor.connect(dealer, &format!("tcp://{addr}")).unwrap();
    let both = |r: &mut Reactor| r.peer_count(dealer) == 1 && r.peer_count(router) == 1;
    assert!(reactor.run_until(Duration::from_secs(10), both).unwrap());
    let (large, small) = (Bytes::from(vec![1u8; 1 << 20]), Bytes::from(vec![2u8; 9 << 10]));
    for _ in 0..3 {
        reactor.send(dealer, vec![large.clone()]).unwrap();
        reactor.send(dealer, vec![small.clone()]).unwrap();
    }
    let mut bodies = Vec::new();
    let all = reactor
        .run_until(Duration::from_secs(10), |r| {
            while let Some(message) = r.recv(router) {
                bodies.push(message[1].clone());
            }
            bodies.len() == 6
        })
        .unwrap();
    assert!(all, "got {} of 6 messages", bodies.len());
    for pair in bodies.chunks(2) {
        let (large, small) = (&pair[0], &pair[1]);
        assert_eq!((large.len(), small.len()), (1 << 20, 9 << 10));
        let start = large.as_ptr() as usize;
        let after_it = start..start + large.len() + (512 << 10);
        assert!(
            !after_it.contains(&(small.as_ptr() as usize)),
            "the small message was read into the large frame's buffer"
        );
    }
}
