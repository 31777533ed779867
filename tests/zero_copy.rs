//! Zero-copy promises, checked by pointer and by allocation count (this test binary installs a
//! counting allocator): decoded frames are views of the receive buffer, decoding them allocates
//! nothing, and large payloads leave the encoder as the very `Bytes` the caller gave.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use zmtp::{Encoder, FrameDecoder, Limits};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn small_frames(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| [0u8, 16].into_iter().chain([i as u8; 16])).collect()
}

#[test]
fn decoded_frames_are_views_of_the_receive_buffer() {
    let mut buf = BytesMut::from(&small_frames(100)[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert_eq!(frames.len(), 100);
    for (i, frame) in frames.iter().enumerate() {
        assert!(range.contains(&(frame.body.as_ptr() as usize)), "frame {i} was copied");
        assert_eq!(&frame.body[..], &[i as u8; 16]);
    }
}

#[test]
fn decoding_small_frames_allocates_nothing_per_frame() {
    let mut buf = BytesMut::from(&small_frames(10_000)[..]);
    let mut decoder = FrameDecoder::new(Limits::default());
    // The first split turns the buffer into a shared one: one allocation for the whole buffer.
    let first = decoder.decode(&mut buf).unwrap().unwrap();
    let before = allocations();
    let mut decoded = 0;
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        decoded += 1;
        drop(frame);
    }
    assert_eq!(decoded, 9_999);
    assert_eq!(allocations() - before, 0, "allocations while decoding {decoded} frames");
    drop(first);
}

#[test]
fn large_payloads_leave_the_encoder_without_a_copy() {
    let payload = Bytes::from(vec![7u8; 1 << 20]);
    let mut encoder = Encoder::new();
    encoder.push_frame(&Bytes::from_static(b"header"), true);
    encoder.push_frame(&payload, false);
    let chunks: Vec<&[u8]> = encoder.chunks().collect();
    // The batch with both headers and the small frame, then the payload itself.
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0], b"\x01\x06header\x02\x00\x00\x00\x00\x00\x10\x00\x00");
    assert_eq!(chunks[1].as_ptr(), payload.as_ptr(), "the 1 MiB payload was copied");
    assert_eq!(encoder.pending(), chunks[0].len() + payload.len());
}

#[test]
fn encoding_a_large_payload_allocates_no_payload_sized_buffer() {
    let payload = Bytes::from(vec![7u8; 1 << 20]);
    let mut encoder = Encoder::new();
    encoder.push_frame(&Bytes::from_static(b"warm"), false);
    encoder.consume(encoder.pending());
    let before = allocations();
    for _ in 0..100 {
        encoder.push_frame(&payload, false);
    }
    // Queue growth only: a handful of allocations for 100 MiB of payload.
    assert!(allocations() - before < 16, "{} allocations", allocations() - before);
    assert_eq!(encoder.pending(), 100 * ((1 << 20) + 9));
}
