//! A raw TCP relay, the limit any forwarder on this machine can reach: it binds FRONT and BACK,
//! pairs the first peer that sends bytes on each, and copies bytes both ways on one thread with
//! one epoll loop, never looking at them (no framing, no routing, no queues). The load
//! generator's DEALERs greet each other through it, so it carries the same ZMTP traffic as the
//! forwarders do, without the ROUTER's envelope.
//!
//! Run by `benches/forwarder.rs` as `forwarder --tcp-relay FRONT BACK` (its own process, like
//! the other contenders).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use mio::{Events, Interest, Poll, Token};

/// Bytes read per `read` call, as large as the pipe's largest read.
const BUFFER: usize = 256 << 10;

/// Bytes read from one side and not yet written to the other.
struct Half {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Half {
    fn new(first: Vec<u8>) -> Self {
        let end = first.len();
        let mut buf = first;
        buf.resize(BUFFER, 0);
        Self { buf, start: 0, end }
    }

    /// Writes what is pending, then reads and writes until `from` or `to` would block. Returns
    /// whether anything moved; an error or end of stream ends the relay.
    fn pump(&mut self, from: &mut mio::net::TcpStream, to: &mut mio::net::TcpStream) -> io::Result<bool> {
        let mut moved = false;
        loop {
            while self.start < self.end {
                match to.write(&self.buf[self.start..self.end]) {
                    Ok(n) => {
                        self.start += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(moved),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            match from.read(&mut self.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    (self.start, self.end) = (0, n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(moved),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Accepts on `listener` until a peer sends bytes (readiness probes connect and close without
/// sending); returns that peer and its first bytes.
fn accept_talker(listener: &TcpListener) -> io::Result<(TcpStream, Vec<u8>)> {
    loop {
        let (mut stream, _) = listener.accept()?;
        let mut first = vec![0; BUFFER];
        match stream.read(&mut first) {
            Ok(0) | Err(_) => continue,
            Ok(n) => {
                first.truncate(n);
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                return Ok((stream, first));
            }
        }
    }
}

/// Relays between the first talking peers on `front` and `back` until one of them leaves.
pub fn run(front: &str, back: &str) -> io::Result<()> {
    let front = TcpListener::bind(front.trim_start_matches("tcp://"))?;
    let back = TcpListener::bind(back.trim_start_matches("tcp://"))?;
    let (a, a_first) = accept_talker(&front)?;
    let (b, b_first) = accept_talker(&back)?;
    let mut a = mio::net::TcpStream::from_std(a);
    let mut b = mio::net::TcpStream::from_std(b);
    let mut poll = Poll::new()?;
    poll.registry().register(&mut a, Token(0), Interest::READABLE | Interest::WRITABLE)?;
    poll.registry().register(&mut b, Token(1), Interest::READABLE | Interest::WRITABLE)?;
    let (mut a_to_b, mut b_to_a) = (Half::new(a_first), Half::new(b_first));
    let mut events = Events::with_capacity(8);
    loop {
        // Edge-triggered: keep pumping both ways until nothing moves, then wait.
        while a_to_b.pump(&mut a, &mut b)? | b_to_a.pump(&mut b, &mut a)? {}
        poll.poll(&mut events, None)?;
    }
}
