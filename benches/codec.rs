//! Codec throughput: frame decode and encode for 16 B, 1 KiB, 64 KiB and 1 MiB frames, whole
//! session decode of small messages, and allocations per decoded frame (a counting allocator).
//!
//! Run: `cargo bench --bench codec`. Figures and how to read them: benches/README.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use zmtp::{Config, Encoder, FrameDecoder, Limits, Session, SocketType};

/// Counts every allocation, so the bench can report allocations per decoded frame.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZES: &[(usize, &str)] = &[(16, "16B"), (1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

/// Enough frames of `size` bytes to fill about 4 MiB (at least 4 frames).
fn frame_count(size: usize) -> usize {
    ((4 << 20) / (size + 9)).max(4)
}

/// `count` encoded single-frame messages of `size` bytes.
fn wire(size: usize, count: usize) -> Vec<u8> {
    let mut encoder = Encoder::new();
    let body = Bytes::from(vec![0xA5u8; size]);
    for _ in 0..count {
        encoder.push_frame(&body, false);
    }
    encoder.chunks().flatten().copied().collect()
}

fn limits() -> Limits {
    Limits { max_frame_size: 2 << 20, ..Limits::default() }
}

fn decode_all(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(frame)) = decoder.decode(buf) {
        n += frame.body.len().min(1);
        std::hint::black_box(&frame);
    }
    n
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for &(size, label) in SIZES {
        let count = frame_count(size);
        let bytes = wire(size, count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("frames", label), &bytes, |b, bytes| {
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| decode_all(&mut FrameDecoder::new(limits()), buf),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for &(size, label) in SIZES {
        let count = frame_count(size);
        let body = Bytes::from(vec![0x5Au8; size]);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("frames", label), &body, |b, body| {
            let mut encoder = Encoder::new();
            b.iter(|| {
                for _ in 0..count {
                    encoder.push_frame(body, false);
                }
                let pending = encoder.pending();
                std::hint::black_box(encoder.chunks().count());
                encoder.consume(pending);
            })
        });
    }
    group.finish();
}

/// Whole-session decode: frames assembled into 1-frame and 5-frame messages with events.
fn bench_session(c: &mut Criterion) {
    let mut group = c.benchmark_group("session");
    for parts in [1usize, 5] {
        let count = 50_000;
        let mut encoder = Encoder::new();
        let frames: Vec<Bytes> = (0..parts).map(|_| Bytes::from(vec![1u8; 16])).collect();
        for _ in 0..count {
            encoder.push_message(&frames);
        }
        let traffic: Vec<u8> = encoder.chunks().flatten().copied().collect();
        let mut hello = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
        hello.extend_from_slice(b"NULL");
        hello.resize(64, 0);
        hello.extend_from_slice(b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER");
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(BenchmarkId::new("messages_16B", format!("{parts}_frames")), |b| {
            b.iter_batched_ref(
                || {
                    let now = Instant::now();
                    let mut session = Session::new(Config::new(SocketType::Router), now);
                    session.handle_input(&mut BytesMut::from(&hello[..]), now).unwrap();
                    session.poll_event();
                    (session, BytesMut::from(&traffic[..]), now)
                },
                |(session, buf, now)| {
                    session.handle_input(buf, *now).unwrap();
                    while let Some(event) = session.poll_event() {
                        std::hint::black_box(event);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Not a timing: prints allocations per decoded 16-byte frame and per 5-frame session message.
fn report_allocations(_: &mut Criterion) {
    let count = 100_000;
    let bytes = wire(16, count);
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = FrameDecoder::new(limits());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let decoded = decode_all(&mut decoder, &mut buf);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations: {allocations} for {decoded} decoded 16 B frames = {:.6} per frame",
        allocations as f64 / decoded as f64
    );
}

criterion_group!(benches, report_allocations, bench_decode, bench_encode, bench_session);
criterion_main!(benches);
