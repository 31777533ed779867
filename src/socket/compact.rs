//! Compaction: a message that waits copies its small frames into one allocation of its own.
//!
//! Decoded frames are views of the read buffer they arrived in (16-256 KiB), so one 16-byte
//! message waiting in a queue keeps that whole buffer alive once the rest of it is gone. Copying
//! on every decode would cost an allocation per message on the hot path; instead the reactor
//! compacts only messages that are known to wait (queued behind a peer that does not read, or an
//! application that does not receive, or held by the broker), once each.

use bytes::{Bytes, BytesMut};

use crate::socket::Message;

/// Frames up to this size are copied when their message is compacted; larger ones are likely
/// most of their read buffer already (reads are at most 256 KiB), so copying them gains little.
pub const COMPACT_FRAME_MAX: usize = 8 << 10;

/// Copies `message`'s small frames into one new allocation (its frame `Vec` is trimmed too).
pub fn compact(message: &mut Message) {
    let small: usize = message.iter().map(|f| f.len()).filter(|&n| n <= COMPACT_FRAME_MAX).sum();
    if small > 0 {
        let mut copy = BytesMut::with_capacity(small);
        for frame in message.iter_mut().filter(|f| !f.is_empty() && f.len() <= COMPACT_FRAME_MAX) {
            copy.extend_from_slice(frame);
            *frame = copy.split().freeze();
        }
    }
    for frame in message.iter_mut().filter(|f| f.is_empty()) {
        *frame = Bytes::new(); // an empty view still holds its buffer
    }
    message.shrink_to_fit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_share_one_new_allocation_and_large_ones_stay() {
        let chunk = Bytes::from(vec![7u8; 64 << 10]);
        let big = Bytes::from(vec![1u8; COMPACT_FRAME_MAX + 1]);
        let mut message = Vec::with_capacity(12);
        message.extend([chunk.slice(0..5), chunk.slice(10..10), chunk.slice(100..116), big.clone()]);
        compact(&mut message);
        assert_eq!(message, vec![chunk.slice(0..5), Bytes::new(), chunk.slice(100..116), big.clone()]);
        assert_eq!(message.capacity(), 4);
        let (a, c) = (message[0].as_ptr() as usize, message[2].as_ptr() as usize);
        assert_eq!(c, a + 5, "the small frames sit side by side in one new buffer");
        let in_chunk =
            |p: usize| (chunk.as_ptr() as usize..chunk.as_ptr() as usize + chunk.len()).contains(&p);
        assert!(!in_chunk(a) && !in_chunk(c), "no view of the read buffer is left");
        assert_eq!(message[3].as_ptr(), big.as_ptr(), "the large frame is not copied");
    }
}
