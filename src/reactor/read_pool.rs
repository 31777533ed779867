//! Large read buffers, kept for reuse. A large frame is read into a buffer of its own and leaves
//! as a `Bytes` view of it (zero copy); once the frame has been written out, the buffer is free
//! again. Allocating a fresh one for every large frame costs a page fault per 4 KiB touched (the
//! allocator maps big blocks fresh and unmaps them on free, glibc's and musl's alike), which was
//! a fifth of the peer's CPU at 1 MiB. So a connection done with a large buffer hands its empty
//! view here, and the next large read takes back one whose frames are all gone
//! (`BytesMut::try_reclaim`). A pooled buffer holds one large frame and nothing else (the
//! connection reads it up to the frame's end), so no small message can keep it alive.
//!
//! The pool is one per reactor and bounded: at most `MAX_BUFFERS` buffers and `MAX_BYTES` in
//! all, buffers larger than `MAX_BUFFER` never kept. It is a fixed cost beside the memory
//! budget, not counted in it: the frames that still share a pooled buffer are counted where
//! they wait. What it refused is counted (`ReadPoolStats::refused`).

use bytes::BytesMut;

/// Reads for a frame body of at least this many bytes take a pooled buffer. It is twice the
/// largest plain read (`connection::MAX_READ`, 256 KiB), so smaller frames keep the allocator's
/// own reuse, which serves them without page faults.
pub const LARGE_READ: usize = 512 << 10;
/// Buffers kept at most.
pub const MAX_BUFFERS: usize = 8;
/// Bytes kept at most, all buffers together.
pub const MAX_BYTES: usize = 16 << 20;
/// Larger buffers are never kept (a 16 MiB frame's buffer would fill the pool alone).
pub const MAX_BUFFER: usize = 4 << 20;
/// Fresh large buffers are rounded up to a multiple of this, plus one more, so that frames of
/// nearly the same size (a few header bytes apart) fit each other's buffers.
const ROUND: usize = 64 << 10;

/// What the pool did, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPoolStats {
    /// Large reads that took back a pooled buffer.
    pub reused: u64,
    /// Large reads that had to allocate (no pooled buffer free and large enough).
    pub allocated: u64,
    /// Buffers not kept because the pool was full or they were too large.
    pub refused: u64,
}

/// Empty views of large read buffers, each with the size of its whole allocation.
#[derive(Debug, Default)]
pub struct ReadPool {
    buffers: Vec<(BytesMut, usize)>,
    bytes: usize,
    /// What the pool did so far.
    pub stats: ReadPoolStats,
}

impl ReadPool {
    /// An empty buffer with room for at least `want` bytes, and the size of its allocation: a
    /// pooled one that nothing else uses any more, or a fresh one.
    pub fn take(&mut self, want: usize) -> (BytesMut, usize) {
        if let Some(free) = self.take_free(want) {
            return free;
        }
        self.stats.allocated += 1;
        let size = want.div_ceil(ROUND).saturating_add(1).saturating_mul(ROUND);
        (BytesMut::with_capacity(size), size)
    }

    /// A pooled buffer with room for `want` bytes that nothing else uses any more, if any.
    fn take_free(&mut self, want: usize) -> Option<(BytesMut, usize)> {
        let free = self.buffers.iter_mut().position(|(buf, size)| *size >= want && buf.try_reclaim(*size))?;
        let (buf, size) = self.buffers.swap_remove(free);
        self.bytes -= size;
        self.stats.reused += 1;
        Some((buf, size))
    }

    /// Keeps `buf` (emptied first), whose allocation is `size` bytes. When the pool is full, the
    /// smallest buffer kept makes room for a larger one (so buffers of smaller frames met
    /// earlier cannot keep out the ones the traffic needs now); otherwise `buf` is refused.
    pub fn give(&mut self, mut buf: BytesMut, size: usize) {
        if size < LARGE_READ {
            return;
        }
        if size > MAX_BUFFER {
            self.stats.refused += 1;
            return;
        }
        while self.buffers.len() >= MAX_BUFFERS || self.bytes + size > MAX_BYTES {
            let smallest =
                self.buffers.iter().enumerate().min_by_key(|(_, (_, s))| *s).map(|(i, (_, s))| (i, *s));
            match smallest {
                Some((i, kept)) if kept < size => {
                    self.buffers.swap_remove(i);
                    self.bytes -= kept;
                    self.stats.refused += 1;
                }
                _ => {
                    self.stats.refused += 1;
                    return;
                }
            }
        }
        buf.clear();
        self.bytes += size;
        self.buffers.push((buf, size));
    }

    /// Bytes of the buffers kept (some may still be shared with frames on their way out).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_its_frames_are_gone() {
        let mut pool = ReadPool::default();
        let (mut buf, size) = pool.take(1 << 20);
        assert!(size > 1 << 20 && buf.capacity() >= size);
        buf.extend_from_slice(&vec![7; 1 << 20]);
        let frame = buf.split_to(1 << 20).freeze();
        let first = frame.as_ptr();
        pool.give(buf, size);
        // The frame still shares the allocation: the next large read gets a fresh buffer.
        let (other, other_size) = pool.take(1 << 20);
        assert_ne!(other.as_ptr(), first);
        assert_eq!(pool.stats.allocated, 2);
        drop(frame);
        let (again, again_size) = pool.take(1 << 20);
        assert_eq!((again.as_ptr(), again_size), (first, size));
        assert!(again.is_empty() && again.capacity() >= size);
        assert_eq!(pool.stats.reused, 1);
        pool.give(other, other_size);
        assert_eq!(pool.bytes(), other_size);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bounds() {
        let mut pool = ReadPool::default();
        for _ in 0..MAX_BUFFERS + 3 {
            pool.give(BytesMut::with_capacity(MAX_BUFFER / 2), MAX_BUFFER / 2);
        }
        assert!(pool.bytes() <= MAX_BYTES);
        assert_eq!(pool.buffers.len(), MAX_BYTES / (MAX_BUFFER / 2));
        assert_eq!(pool.stats.refused, (MAX_BUFFERS + 3 - pool.buffers.len()) as u64);
        pool.give(BytesMut::with_capacity(LARGE_READ / 2), LARGE_READ / 2); // small: just dropped
        pool.give(BytesMut::new(), MAX_BUFFER + 1); // too large: refused
        assert_eq!(pool.stats.refused, (MAX_BUFFERS + 4 - pool.buffers.len()) as u64);
    }

    #[test]
    fn a_buffer_too_small_for_the_read_is_not_taken() {
        let mut pool = ReadPool::default();
        let (buf, size) = pool.take(LARGE_READ);
        pool.give(buf, size);
        let (_, bigger) = pool.take(size + 1);
        assert!(bigger > size + 1);
        assert_eq!((pool.stats.reused, pool.buffers.len()), (0, 1));
    }

    #[test]
    fn a_larger_buffer_takes_the_place_of_the_smallest_in_a_full_pool() {
        let mut pool = ReadPool::default();
        for _ in 0..MAX_BUFFERS {
            pool.give(BytesMut::with_capacity(LARGE_READ), LARGE_READ);
        }
        pool.give(BytesMut::with_capacity(MAX_BUFFER), MAX_BUFFER);
        assert_eq!(pool.buffers.len(), MAX_BUFFERS);
        assert_eq!(pool.bytes(), (MAX_BUFFERS - 1) * LARGE_READ + MAX_BUFFER);
        assert_eq!(pool.stats.refused, 1);
        let (buf, size) = pool.take(MAX_BUFFER);
        assert_eq!((size, pool.stats.reused), (MAX_BUFFER, 1));
        assert!(buf.capacity() >= MAX_BUFFER);
    }
}
