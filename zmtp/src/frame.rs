//! Frames: flags, headers, the size limits, and the zero-copy frame decoder and header encoder.
//!
//! RFC 23 §2.4: `frame = flags size body`; flags bit 0 is MORE, bit 1 LONG (8-byte big-endian
//! size instead of 1 byte), bit 2 COMMAND. Bits 3-7 "MUST be zero" but libzmq ignores them, and
//! so do we. A frame whose body already sits in the receive buffer comes out as a `Bytes` view of
//! that buffer: no copy, no allocation per frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;

/// Frame flag bits.
pub mod flags {
    /// More frames of this message follow.
    pub const MORE: u8 = 0x01;
    /// The size is 8 bytes, big-endian, instead of 1.
    pub const LONG: u8 = 0x02;
    /// The frame is a command, not message data.
    pub const COMMAND: u8 = 0x04;
}

/// Largest body a short (1-byte size) header can describe.
pub const MAX_SHORT_SIZE: usize = 255;
/// Longest frame header: flags + 8-byte size.
pub const MAX_HEADER_LEN: usize = 9;

/// Default cap on one data frame: 16 MiB, the same order as RabbitMQ 4's default
/// `max_message_size` (16 MiB) and well above NATS's 1 MiB payload default.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
/// Default cap on one whole message: room for a 16 MiB body plus routing envelopes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 << 20;
/// Default cap on frames in one message (EZ Arch messages have fewer than 16).
pub const DEFAULT_MAX_FRAMES: usize = 256;
/// Default cap on one command frame: a 64 KiB SUBSCRIBE topic plus its name fits.
pub const DEFAULT_MAX_COMMAND_SIZE: usize = (64 << 10) + 256;
/// Default cap on the summed READY properties.
pub const DEFAULT_MAX_METADATA_SIZE: usize = 16 << 10;
/// Bytes of a READY or ERROR command besides the properties or reason: the name-length octet,
/// the name, and ERROR's reason-length octet.
const HANDSHAKE_COMMAND_OVERHEAD: usize = 1 + 5 + 1;
/// Bytes of CURVE's largest handshake command besides the metadata: INITIATE's name, cookie,
/// nonce, box tag, client key and vouch (RFC 26: 257 octets and up).
pub const CURVE_HANDSHAKE_OVERHEAD: usize = 257;

/// Limits applied to what a peer declares, before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest data frame body, in bytes.
    pub max_frame_size: usize,
    /// Largest sum of the data frame bodies of one message, in bytes.
    pub max_message_size: usize,
    /// Most data frames in one message.
    pub max_frames: usize,
    /// Largest command frame body, in bytes.
    pub max_command_size: usize,
    /// Largest READY metadata (the summed properties), in bytes.
    pub max_metadata_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frames: DEFAULT_MAX_FRAMES,
            max_command_size: DEFAULT_MAX_COMMAND_SIZE,
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The flags octet as received (reserved bits included).
    pub flags: u8,
    /// The frame's body, without its header.
    pub body: Bytes,
}

impl Frame {
    /// True when the COMMAND flag is set.
    pub fn is_command(&self) -> bool {
        self.flags & flags::COMMAND != 0
    }

    /// MORE on a data frame. libzmq ignores MORE on a command, and so do we.
    pub fn more(&self) -> bool {
        !self.is_command() && self.flags & flags::MORE != 0
    }
}

/// Writes a frame header: short form up to 255 bytes, long form from 256, as libzmq does.
pub fn encode_header(out: &mut BytesMut, flag_bits: u8, len: usize) {
    if len <= MAX_SHORT_SIZE {
        out.put_u8(flag_bits);
        out.put_u8(len as u8);
    } else {
        out.put_u8(flag_bits | flags::LONG);
        out.put_u64(len as u64);
    }
}

/// Where the decoder is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete header.
    Header,
    /// Header consumed and checked; waiting for `len` body bytes.
    Body { flags: u8, len: usize },
}

/// Splits frames off the front of a receive buffer, enforcing `Limits` on declared sizes.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    limits: Limits,
    state: State,
    /// Bytes in the data frames of the message in progress (frames with MORE seen so far).
    message_size: u64,
    /// Data frames of the message in progress.
    message_frames: usize,
    /// Until the handshake completes only READY or ERROR may come (RFC 23: "the peer SHALL send
    /// a READY command"), so a data frame is refused at its header, before a byte of its body
    /// is buffered, and commands are capped at what a READY can hold.
    handshake: bool,
    /// Bytes a handshake command may hold besides its metadata (NULL's READY, or CURVE's).
    handshake_overhead: usize,
}

impl FrameDecoder {
    /// A decoder for frames after the handshake: messages and commands.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Header,
            message_size: 0,
            message_frames: 0,
            handshake: false,
            handshake_overhead: HANDSHAKE_COMMAND_OVERHEAD,
        }
    }

    /// A decoder for a connection whose handshake is still under way (see `handshake_done`).
    pub fn for_handshake(limits: Limits) -> Self {
        Self { handshake: true, ..Self::new(limits) }
    }

    /// The same, for CURVE's handshake commands (an INITIATE carries metadata and 257 bytes).
    pub fn for_curve_handshake(limits: Limits) -> Self {
        Self { handshake_overhead: CURVE_HANDSHAKE_OVERHEAD, ..Self::for_handshake(limits) }
    }

    /// The handshake completed: data frames and every command up to the command limit may come.
    pub fn handshake_done(&mut self) {
        self.handshake = false;
    }

    /// Lets every frame carry `overhead` bytes more than the limits say (CURVE: a MESSAGE
    /// holds a whole frame and 33 bytes of its own); the frames it holds are checked against
    /// the limits once opened.
    pub fn allow_overhead(&mut self, overhead: usize) {
        let limits = &mut self.limits;
        limits.max_frame_size = limits.max_frame_size.saturating_add(overhead);
        limits.max_command_size = limits.max_command_size.max(limits.max_frame_size);
        let frames = u64::try_from(limits.max_frames).unwrap_or(u64::MAX);
        let extra = usize::try_from(frames.saturating_mul(overhead as u64)).unwrap_or(usize::MAX);
        limits.max_message_size = limits.max_message_size.saturating_add(extra);
    }

    /// Decodes one frame from the front of `buf`. `Ok(None)` means more bytes are needed; whatever
    /// was consumed is remembered, so call again with the same buffer once more has arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let (flags, len) = match self.state {
            State::Body { flags, len } => (flags, len),
            State::Header => match self.decode_header(buf)? {
                Some(header) => header,
                None => return Ok(None),
            },
        };
        if buf.len() < len {
            self.state = State::Body { flags, len };
            return Ok(None);
        }
        self.state = State::Header;
        let body = match len {
            // Empty and one-byte frames (delimiters, status codes) need no share of the buffer:
            // a static slice saves the reference count's two atomic operations per frame.
            0 => Bytes::new(),
            1 => {
                let byte = buf[0];
                buf.advance(1);
                one_byte(byte)
            }
            _ => buf.split_to(len).freeze(),
        };
        let frame = Frame { flags, body };
        self.account(&frame);
        Ok(Some(frame))
    }

    /// Bytes the decoder needs before it can make progress; a hint for sizing the next read.
    /// After a large header this is the rest of the body, so the caller can read it in one go.
    pub fn needed(&self, buf: &[u8]) -> usize {
        match self.state {
            State::Body { len, .. } => len.saturating_sub(buf.len()),
            State::Header => match buf.first() {
                Some(f) if f & flags::LONG != 0 => MAX_HEADER_LEN.saturating_sub(buf.len()),
                _ => 2usize.saturating_sub(buf.len()),
            },
        }
    }

    /// Reads and checks a header; consumes it only when complete.
    fn decode_header(&mut self, buf: &mut BytesMut) -> Result<Option<(u8, usize)>, FrameError> {
        let Some(&flags) = buf.first() else { return Ok(None) };
        let (header_len, declared) = if flags & flags::LONG != 0 {
            let Some(raw) = buf.get(1..MAX_HEADER_LEN) else { return Ok(None) };
            let mut size = [0u8; 8];
            size.copy_from_slice(raw);
            (MAX_HEADER_LEN, u64::from_be_bytes(size))
        } else {
            let Some(&size) = buf.get(1) else { return Ok(None) };
            (2, u64::from(size))
        };
        let len = self.check_size(flags, declared)?;
        buf.advance(header_len);
        Ok(Some((flags, len)))
    }

    /// Applies the limits to a declared size, in u64 so no size can overflow, and returns it as
    /// usize only once it is known to fit under a usize limit.
    fn check_size(&self, flags: u8, declared: u64) -> Result<usize, FrameError> {
        let limits = &self.limits;
        if flags & flags::COMMAND != 0 {
            let limit = self.command_limit();
            return within(declared, limit).ok_or(FrameError::CommandTooLarge { declared, limit });
        }
        if self.handshake {
            return Err(FrameError::MessageBeforeHandshake { declared });
        }
        let len = within(declared, limits.max_frame_size)
            .ok_or(FrameError::FrameTooLarge { declared, limit: limits.max_frame_size })?;
        if self.message_frames >= limits.max_frames {
            return Err(FrameError::TooManyFrames { limit: limits.max_frames });
        }
        let total = self.message_size.saturating_add(declared);
        if within(total, limits.max_message_size).is_none() {
            return Err(FrameError::MessageTooLarge { declared: total, limit: limits.max_message_size });
        }
        Ok(len)
    }

    /// The largest command acceptable now: during the handshake a READY with the most metadata
    /// allowed, or an ERROR with the longest reason.
    fn command_limit(&self) -> usize {
        let limits = &self.limits;
        if !self.handshake {
            return limits.max_command_size;
        }
        let ready = limits.max_metadata_size.saturating_add(self.handshake_overhead);
        ready.max(HANDSHAKE_COMMAND_OVERHEAD + 255).min(limits.max_command_size)
    }

    /// Tracks the message in progress so its caps hold across frames.
    fn account(&mut self, frame: &Frame) {
        if frame.is_command() {
            return;
        }
        if frame.more() {
            self.message_frames += 1;
            self.message_size = self.message_size.saturating_add(frame.body.len() as u64);
        } else {
            self.message_frames = 0;
            self.message_size = 0;
        }
    }
}

/// `Some(declared as usize)` when it is at most `limit`.
fn within(declared: u64, limit: usize) -> Option<usize> {
    usize::try_from(declared).ok().filter(|&len| len <= limit)
}

/// A one-byte frame body as a static slice (no allocation, no reference count).
fn one_byte(byte: u8) -> Bytes {
    static ALL: [u8; 256] = {
        let mut all = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            all[i] = i as u8;
            i += 1;
        }
        all
    };
    let at = usize::from(byte);
    Bytes::from_static(&ALL[at..at + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_one_byte_frames_decode_to_their_bytes_without_sharing_the_buffer() {
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&[0x01, 0, 0x01, 1, 0xFF, 0x00, 2, 7, 8, 0x00, 1, 0x00][..]);
        let bodies: Vec<Bytes> =
            std::iter::from_fn(|| decoder.decode(&mut buf).unwrap().map(|f| f.body)).collect();
        assert_eq!(bodies, [&b""[..], &[0xFF], &[7, 8], &[0x00]]);
        assert!(buf.is_empty());
        // Only the two-byte frame points into the read buffer.
        let start = buf.as_ptr() as usize - 12;
        let inside = |b: &Bytes| (start..start + 12).contains(&(b.as_ptr() as usize));
        assert_eq!(bodies.iter().map(inside).collect::<Vec<_>>(), [false, false, true, false]);
    }
}
