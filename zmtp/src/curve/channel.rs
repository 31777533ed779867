//! The MESSAGE command (RFC 26): after the handshake every ZMTP frame, commands included, travels
//! as `[7]"MESSAGE" nonce box`, the box holding a flags octet (bit 0 MORE, bit 1 COMMAND, as
//! libzmq sets them) and the frame's body, sealed between the two transient keys. Short nonces
//! count up from where the handshake left them and must increase on every received command.
//!
//! On the wire libzmq carries each MESSAGE in a plain data frame (no COMMAND or MORE flag: both
//! are inside the box), and so do we; we accept either form.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::crypto::{Boxer, CounterBox, TAG};
use crate::error::CurveError;
use crate::frame::encode_header;

const NAME: &[u8] = b"\x07MESSAGE";
/// The MESSAGE command's bytes around a frame's body: name, nonce, tag, flags.
pub const OVERHEAD: usize = NAME.len() + 8 + TAG + 1;
/// Payload flag: more frames of this message follow.
pub const MORE: u8 = 0x01;
/// Payload flag: the frame is a ZMTP command (PING, SUBSCRIBE, ...).
pub const COMMAND: u8 = 0x02;

/// Frames up to this size are written into a shared chunk of `ARENA` bytes rather than an
/// allocation of their own, as the read buffer shares one allocation among many frames. The
/// same trade-off as there: a frame that is kept keeps its whole chunk alive (at most 16 KiB
/// per kept small frame), while the memory budget counts the frame's own bytes.
const SMALL: usize = 2 << 10;
const ARENA: usize = 16 << 10;

/// One connection's MESSAGE traffic, both ways.
#[derive(Debug)]
pub struct Channel {
    send: CounterBox,
    recv: CounterBox,
    /// Room for small sealed and opened frames (see `SMALL`).
    arena: BytesMut,
    /// The short nonce of our next command.
    next_send: u64,
    /// The peer's last short nonce.
    last_recv: u64,
}

impl Channel {
    /// `client`: which side we are (it picks the nonce prefixes); the nonces continue from the
    /// handshake's.
    pub(super) fn new(boxer: Boxer, client: bool, next_send: u64, last_recv: u64) -> Self {
        let (send_prefix, recv_prefix) = match client {
            true => (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES"),
            false => (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC"),
        };
        let (send, recv) = (CounterBox::new(&boxer, send_prefix), CounterBox::new(&boxer, recv_prefix));
        Self { send, recv, arena: BytesMut::new(), next_send, last_recv }
    }

    /// A frame of at most `len` bytes, written by `write`: into the arena for small frames (a
    /// new arena when this one is used up), into a buffer of its own for large ones.
    fn write_frame(&mut self, len: usize, write: impl FnOnce(&mut BytesMut)) -> BytesMut {
        if len > SMALL {
            let mut own = BytesMut::with_capacity(len);
            write(&mut own);
            return own;
        }
        if self.arena.capacity() < len {
            self.arena = BytesMut::with_capacity(ARENA);
        }
        write(&mut self.arena);
        self.arena.split()
    }

    /// One frame (`payload_flags`: `MORE`, `COMMAND`) as a whole ZMTP frame carrying its
    /// MESSAGE, header included, ready to write.
    pub fn seal(&mut self, payload_flags: u8, body: &[u8]) -> Bytes {
        let command_len = OVERHEAD + body.len();
        let counter = self.next_send;
        let mut sealed = self.write_frame(command_len + crate::frame::MAX_HEADER_LEN, |out| {
            encode_header(out, 0, command_len);
            out.put_slice(NAME);
            out.put_u64(counter);
            out.put_bytes(0, TAG);
            out.put_u8(payload_flags);
            out.put_slice(body);
        });
        let boxed_at = sealed.len() - body.len() - 1 - TAG;
        self.send.seal_in_place(counter, &mut sealed[boxed_at..]);
        self.next_send += 1;
        sealed.freeze()
    }

    /// A MESSAGE command's body (name included) opened: the payload flags and the frame's body.
    pub fn open(&mut self, command: &[u8]) -> Result<(u8, Bytes), CurveError> {
        if command.len() < OVERHEAD || !command.starts_with(NAME) {
            return Err(CurveError::NotAMessage);
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&command[NAME.len()..NAME.len() + 8]);
        let nonce = u64::from_be_bytes(raw);
        if nonce <= self.last_recv {
            return Err(CurveError::NonceNotIncreasing { got: nonce, last: self.last_recv });
        }
        let (tag, text) = command[NAME.len() + 8..].split_at(TAG);
        let mut plain = self.write_frame(text.len(), |out| out.extend_from_slice(text));
        if !self.recv.open_in_place(nonce, tag, &mut plain) {
            return Err(CurveError::BadBox { command: "MESSAGE" });
        }
        self.last_recv = nonce;
        let payload_flags = plain[0];
        if payload_flags & !(MORE | COMMAND) != 0 {
            return Err(CurveError::BadFlags { flags: payload_flags });
        }
        plain.advance(1);
        Ok((payload_flags, plain.freeze()))
    }
}
