//! One TCP connection: its stream, its ZMTP session, and its receive buffer. Reads drain the
//! socket into a buffer that the session slices frames out of; writes send the session's queued
//! chunks with one vectored write per batch and resume after partial writes.
//!
//! A connection with nothing buffered holds no read buffer (an idle connection costs its
//! structs, not 16 KiB), and it reports what it holds (`held`) for the node's memory budget.

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use mio::net::TcpStream;
use zmtp::Session;

use super::admission::Admitted;
use super::ids::{ConnectorId, SocketId};
use super::read_pool::{ReadPool, LARGE_READ};
use super::CloseReason;
use crate::socket::PeerKey;

/// Smallest and largest read sizes; the size adapts to how full reads come back.
const MIN_READ: usize = 16 << 10;
const MAX_READ: usize = 256 << 10;
/// iovecs per vectored write (Linux allows 1024; a few dozen covers every batch we build).
const MAX_IOVECS: usize = 64;

/// A peer's address for log lines: `ip:port`, or `unknown` when the OS could not say.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown"),
        }
    }
}

/// What one read attempt produced.
pub enum ReadOutcome {
    /// `read` bytes were read and fed to the session; its events are waiting. `drained`: the
    /// socket had no more for now.
    Progress { read: usize, drained: bool },
    /// Nothing to read now.
    WouldBlock,
}

#[derive(Debug)]
pub struct Connection {
    pub stream: TcpStream,
    pub session: Session,
    pub peer_addr: Option<SocketAddr>,
    /// The socket this connection belongs to.
    pub socket: SocketId,
    /// The connector that made it, for connecting sides.
    pub connector: Option<ConnectorId>,
    /// The peer it feeds, once the handshake completed and the socket accepted the peer.
    pub peer: Option<PeerKey>,
    /// A ROUTER peer with a duplicate identity: connected, but its input is dropped.
    pub ignored: bool,
    /// Reading stopped because the peer's inbound queue is at its high-water mark.
    pub read_paused: bool,
    /// Reading stopped because the node is over its memory budget (see the reactor).
    pub budget_paused: bool,
    /// Since when messages of this connection have been waiting (see `stall`).
    pub stalled_since: Option<Instant>,
    /// The deadline armed in the reactor's timers (saves a lookup when it has not changed).
    pub deadline: Option<Instant>,
    /// What `held` said when the reactor last counted it into the node's total.
    pub accounted: usize,
    /// Bytes of the peer's READY properties, which the reactor keeps while it is connected.
    pub metadata_bytes: usize,
    /// Bytes written since the reactor last added them to its counters.
    pub written: u64,
    /// Its slot, for an accepted connection (see `admission`).
    pub admitted: Option<Admitted>,
    /// A CURVE server's side of an accepted connection: its handshake steps before READY cost
    /// key exchanges, paced by `admission`.
    pub authenticates: bool,
    /// Waiting for a later turn's handshake budget.
    pub deferred: bool,
    rbuf: BytesMut,
    /// Size of the allocation `rbuf` is a view of, when it came from the read pool (else 0).
    rbuf_pooled: usize,
    read_size: usize,
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        session: Session,
        socket: SocketId,
        connector: Option<ConnectorId>,
    ) -> Self {
        Self {
            peer_addr: stream.peer_addr().ok(),
            stream,
            session,
            socket,
            connector,
            peer: None,
            ignored: false,
            read_paused: false,
            budget_paused: false,
            stalled_since: None,
            deadline: None,
            accounted: 0,
            metadata_bytes: 0,
            written: 0,
            admitted: None,
            authenticates: false,
            deferred: false,
            rbuf: BytesMut::new(),
            rbuf_pooled: 0,
            read_size: MIN_READ,
        }
    }

    /// One read of at most `limit` bytes into the receive buffer, fed to the session. A read
    /// shorter than asked means the socket is drained (TCP), which saves the extra read that
    /// would say WouldBlock.
    pub fn read_once(
        &mut self,
        now: Instant,
        limit: usize,
        pool: &mut ReadPool,
    ) -> Result<ReadOutcome, CloseReason> {
        // `needed` is bounded by the session's limits: the header was checked before it counts.
        let needed = self.session.needed(&self.rbuf);
        let mut want = self.read_size.max(needed).min(limit).max(1);
        if want >= LARGE_READ {
            self.choose_buffer(want, pool);
        }
        if self.rbuf_pooled > 0 {
            // A pooled buffer is read up to its frame's end and no further: it holds that one
            // large frame, so small messages after it cannot keep megabytes alive while the
            // budget counts their bytes.
            want = want.min(needed.max(1));
        }
        let result = loop {
            match read_into_spare(&self.stream, &mut self.rbuf, want) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(0) => Err(CloseReason::PeerClosed),
            Ok(n) => {
                self.adapt_read_size(n == want);
                self.session.handle_input(&mut self.rbuf, now).map_err(CloseReason::Protocol)?;
                self.release_read_buffer(pool);
                Ok(ReadOutcome::Progress { read: n, drained: n < want })
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
            Err(e) => Err(CloseReason::Io(e.kind())),
        }
    }

    /// Before reading a large frame's body: if the receive buffer has no room for it, what it
    /// holds (the start of the frame, at most one read's worth) moves to a buffer from the pool,
    /// which the frame then fills without being copied again.
    fn choose_buffer(&mut self, want: usize, pool: &mut ReadPool) {
        if self.rbuf.capacity() - self.rbuf.len() < want {
            let (fresh, size) = pool.take(self.rbuf.len() + want);
            self.switch_to(fresh, size, pool);
        }
    }

    /// Reads into `fresh` (a pooled allocation of `size` bytes) from now on; what the old buffer
    /// held moves along, and the old view goes back to the pool.
    fn switch_to(&mut self, mut fresh: BytesMut, size: usize, pool: &mut ReadPool) {
        fresh.extend_from_slice(&self.rbuf);
        let old = std::mem::replace(&mut self.rbuf, fresh);
        pool.give(old, std::mem::replace(&mut self.rbuf_pooled, size));
    }

    /// After a read: the receive buffer is a view of an allocation that the frames just decoded
    /// share, possibly a 16 MiB one. With nothing partial left the view is dropped (the frames
    /// keep the allocation only as long as they live), or handed to the pool if it came from
    /// there; a partial frame with little room after it moves to a small buffer of its own (the
    /// next read would reallocate anyway). So what a connection keeps between reads is what it
    /// counts: `rbuf.capacity()`.
    fn release_read_buffer(&mut self, pool: &mut ReadPool) {
        let kept = if self.rbuf.is_empty() {
            BytesMut::new()
        } else if self.rbuf.capacity() < MIN_READ {
            BytesMut::from(&self.rbuf[..])
        } else {
            return;
        };
        pool.give(std::mem::replace(&mut self.rbuf, kept), std::mem::take(&mut self.rbuf_pooled));
    }

    /// Writes queued bytes until done or the socket is full. Returns true when all went out.
    pub fn flush(&mut self) -> Result<bool, CloseReason> {
        loop {
            let encoder = self.session.encoder();
            if encoder.is_empty() {
                return Ok(true);
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(encoder.chunks()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(n) => {
                    self.session.encoder().consume(n);
                    self.written += n as u64;
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected => return Ok(false),
                    _ => return Err(CloseReason::Io(e.kind())),
                },
            }
        }
    }

    /// What the next read may be, for an accepted CURVE server connection still in its
    /// handshake: `Some(n)`, the rest of the peer's greeting (free); `None`, a handshake step
    /// that costs key exchanges (see `admission`). Everything else reads freely: `Some(MAX)`.
    pub fn handshake_read(&self) -> Option<usize> {
        if !self.authenticates || self.session.is_ready() {
            return Some(usize::MAX);
        }
        self.session.awaits_greeting().then(|| self.session.needed(&self.rbuf).max(1))
    }

    /// The peer's address, for log lines.
    pub fn peer_addr(&self) -> PeerAddr {
        PeerAddr(self.peer_addr)
    }

    /// Bytes queued for writing.
    pub fn pending_output(&mut self) -> usize {
        self.session.encoder().pending()
    }

    /// Bytes of input held: the read buffer (a partial frame and the room reserved for the
    /// rest) and the frames of a message still in progress.
    pub fn input_held(&self) -> usize {
        self.rbuf.capacity() + self.session.buffered_message_bytes()
    }

    /// Everything this connection holds for the memory budget: input held, unsent output with
    /// its batch buffer, and the peer's READY properties.
    pub fn held(&self) -> usize {
        self.input_held() + self.session.output_footprint() + self.metadata_bytes
    }

    fn adapt_read_size(&mut self, filled: bool) {
        self.read_size = if filled { (self.read_size * 2).min(MAX_READ) } else { MIN_READ };
    }
}

/// Reads up to `want` bytes into `buf`'s spare capacity, growing it first, without zeroing that
/// capacity: zeroing cost a full extra pass over every large frame (a 1 MiB frame is read into
/// its own buffer). Returns how many bytes were read; they are appended to `buf`.
#[allow(unsafe_code)]
fn read_into_spare(stream: &TcpStream, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    buf.reserve(want);
    let spare = buf.spare_capacity_mut();
    let len = want.min(spare.len());
    // SAFETY: `spare` is `buf`'s allocated, unused capacity, valid for writes of `len` bytes;
    // read(2) writes at most `len` bytes there and says how many. No byte is read by us before
    // the kernel wrote it, and no reference to uninitialized memory is created.
    let n = unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize; // 0 <= n <= len, as read(2) promises
                        // SAFETY: the first `n` bytes of the spare capacity were just written by read(2).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}
