//! The outgoing byte queue: headers and small frames batched into one buffer, large payloads
//! queued as the caller's own `Bytes` so a vectored write sends them without a copy.
//!
//! The caller drains it with `chunks()` (feed them to `writev`) and `consume(n)` after a write of
//! `n` bytes, partial writes included.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::command::Command;
use crate::frame::{encode_header, flags, MAX_HEADER_LEN};

/// Payloads up to this size are copied into the batch buffer; larger ones travel by reference.
/// libzmq copies whatever fits in its 8 KiB batch; copying is cheaper than an iovec below that.
pub const COPY_THRESHOLD: usize = 8 << 10;
/// The batch buffer grows in steps of this size, so headers share one allocation between seals.
const BATCH_CAPACITY: usize = 16 << 10;
/// A write that empties the queue with fewer bytes than this was light traffic: the batch
/// buffer is let go, so a quiet connection holds none. Busier connections keep it for the next.
const KEEP_BATCH_AFTER: usize = 4 << 10;

/// One connection's outgoing bytes: headers and small frames in a batch buffer, large payloads
/// by reference, in send order.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Sealed chunks, in send order, ahead of `batch`.
    queued: VecDeque<Bytes>,
    /// Headers and small payloads not yet sealed into `queued`.
    batch: BytesMut,
    /// Total bytes waiting in `queued` and `batch`.
    pending: usize,
}

impl Encoder {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes (the greeting).
    pub fn push_raw(&mut self, raw: &[u8]) {
        self.batch.extend_from_slice(raw);
        self.pending += raw.len();
    }

    /// Appends a command as one complete frame.
    pub fn push_command(&mut self, command: &Command) {
        let before = self.batch.len();
        command.encode(&mut self.batch);
        self.pending += self.batch.len() - before;
    }

    /// Appends a command frame whose body (name length, name, data) is already built.
    pub fn push_command_body(&mut self, body: &[u8]) {
        self.make_room(MAX_HEADER_LEN + body.len());
        let before = self.batch.len();
        encode_header(&mut self.batch, flags::COMMAND, body.len());
        self.batch.put_slice(body);
        self.pending += self.batch.len() - before;
    }

    /// Appends a whole frame, header included (a sealed CURVE MESSAGE): copied into the batch
    /// when small, queued by reference when large.
    pub fn push_framed(&mut self, frame: Bytes) {
        self.pending += frame.len();
        if frame.len() <= COPY_THRESHOLD {
            self.make_room(frame.len());
            self.batch.put_slice(&frame);
        } else {
            self.seal();
            self.queued.push_back(frame);
        }
    }

    /// Appends one data frame. `more` sets the MORE flag.
    pub fn push_frame(&mut self, body: &Bytes, more: bool) {
        let flag_bits = if more { flags::MORE } else { 0 };
        let copied = if body.len() <= COPY_THRESHOLD { body.len() } else { 0 };
        self.make_room(MAX_HEADER_LEN + copied);
        let before = self.batch.len();
        encode_header(&mut self.batch, flag_bits, body.len());
        self.pending += self.batch.len() - before + body.len();
        if copied > 0 || body.is_empty() {
            self.batch.put_slice(body);
        } else {
            self.seal();
            self.queued.push_back(body.clone());
        }
    }

    /// Appends every frame of a message, MORE on all but the last.
    pub fn push_message(&mut self, frames: &[Bytes]) {
        let last = frames.len().saturating_sub(1);
        for (i, frame) in frames.iter().enumerate() {
            self.push_frame(frame, i < last);
        }
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes held: what waits to be written plus the batch buffer's unused room.
    pub fn footprint(&self) -> usize {
        self.pending + (self.batch.capacity() - self.batch.len())
    }

    /// True when no bytes wait to be written.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// The waiting bytes as a sequence of slices, in order, for one vectored write.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.queued.iter().map(|b| &b[..]).chain((!self.batch.is_empty()).then_some(&self.batch[..]))
    }

    /// Drops the first `n` bytes after they were written.
    pub fn consume(&mut self, mut n: usize) {
        n = n.min(self.pending);
        let written = n;
        self.pending -= n;
        while n > 0 {
            let Some(front) = self.queued.front_mut() else {
                self.batch.advance(n);
                break;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queued.pop_front();
        }
        if self.pending == 0 {
            if written < KEEP_BATCH_AFTER || self.batch.capacity() > 2 * BATCH_CAPACITY {
                // Light traffic, or a buffer grown by a burst: hold none while quiet.
                self.batch = BytesMut::new();
            } else {
                self.batch.clear(); // rewind: the next batch reuses the buffer from its start
            }
        }
    }

    /// Ensures `n` more bytes fit in the batch without a reallocation per frame.
    fn make_room(&mut self, n: usize) {
        if self.batch.capacity() - self.batch.len() < n {
            self.batch.reserve(n.max(BATCH_CAPACITY));
        }
    }

    /// Moves the batch buffer into the queue so a by-reference payload can follow it in order.
    fn seal(&mut self) {
        if !self.batch.is_empty() {
            self.queued.push_back(self.batch.split().freeze());
        }
    }
}
