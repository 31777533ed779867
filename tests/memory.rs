//! What things really cost on the heap, measured with a live-bytes counting allocator (this test
//! binary installs one), against what the code counts for its limits. A count below the real
//! cost would let a peer hold more than a documented limit says.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::Reactor;
use ezarch::socket::{subscription_cost, Publisher, SocketOptions, SocketType};

struct LiveBytes;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

/// The live count is process-wide: tests that measure it take turns.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Heap bytes held after `build` returns what it built, minus what was held before.
fn held_by<T>(build: impl FnOnce() -> T) -> (T, usize) {
    let before = live();
    let built = build();
    (built, (live() - before).max(0) as usize)
}

#[test]
fn subscriptions_cost_at_most_what_the_publisher_counts() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    for (peers, topics, len) in
        [(4, 5_000, 8), (2, 3_000, 16), (4, 1_000, 200), (3, 3, 64 << 10), (1, 20_000, 1), (1, 700, 2)]
    {
        let inputs: Vec<Vec<u8>> = (0..topics)
            .map(|i: usize| {
                let mut topic = vec![b't'; len];
                let tag = i.to_be_bytes();
                let n = len.min(tag.len());
                topic[len - n..].copy_from_slice(&tag[tag.len() - n..]);
                topic
            })
            .collect();
        let (publisher, real) = held_by(|| {
            let mut publisher = Publisher::new(&SocketOptions::default());
            for _ in 0..peers {
                let peer = publisher.peers.insert(Bytes::new());
                for topic in &inputs {
                    publisher.subscribe(peer, topic);
                }
            }
            publisher
        });
        let counted = publisher.subscription_cost();
        let held = publisher.subscription_count();
        assert!(held > 0);
        assert!(
            real <= counted,
            "{peers} peers x {topics} topics of {len} B: {real} B on the heap, {counted} B counted ({} per subscription)",
            real / held
        );
        assert!(counted <= held * subscription_cost(&inputs[0]));
    }
}

/// Greeting and READY of a raw DEALER peer, then `count` one-frame messages of `size` bytes,
/// each as its own write.
fn raw_dealer(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut hello = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    hello.extend_from_slice(b"NULL");
    hello.resize(64, 0);
    let mut ready = vec![5u8];
    ready.extend_from_slice(b"READY");
    ready.extend_from_slice(&[11]);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&6u32.to_be_bytes());
    ready.extend_from_slice(b"DEALER");
    hello.extend_from_slice(&[0x04, ready.len() as u8]);
    hello.extend_from_slice(&ready);
    stream.write_all(&hello).unwrap();
    stream
}

#[test]
fn small_messages_waiting_in_a_queue_do_not_pin_their_read_buffers() {
    // The application does not receive: 200 messages of 16 bytes, each read on its own (into a
    // read buffer of its own), wait in the inbound queue until it is full. Uncompacted, each
    // would keep a 16 KiB read buffer alive: 3.2 MB for 3.2 KB of payload.
    const MESSAGES: usize = 200;
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { recv_hwm: MESSAGES, ..SocketOptions::default() };
    let socket = reactor.socket(SocketType::Router, options).unwrap();
    let addr = reactor.bind(socket, "tcp://127.0.0.1:0").unwrap().to_string();
    let mut stream = raw_dealer(&addr);
    assert!(reactor.run_until(Duration::from_secs(10), |r| r.peer_count(socket) == 1).unwrap());
    let before = live();
    for i in 0..MESSAGES {
        let queued = reactor.memory_used();
        stream.write_all(&[0, 16]).unwrap();
        stream.write_all(&[i as u8; 16]).unwrap();
        let read = reactor.run_until(Duration::from_secs(10), |r| r.memory_used() != queued).unwrap();
        assert!(read, "message {i} was not read");
    }
    // Stalled (the queue is full and nobody receives), they are compacted within a check or two.
    let held = || (live() - before).max(0) as usize;
    let pinned_at_first = held();
    let compacted = reactor.run_until(Duration::from_secs(10), |_| held() < MESSAGES * 1024).unwrap();
    let held = held();
    assert!(compacted, "{MESSAGES} queued 16-byte messages hold {held} bytes of heap");
    assert!(pinned_at_first > MESSAGES * (8 << 10), "each did pin a read buffer at first: {pinned_at_first}");
    let counted = reactor.memory_used();
    assert!(held <= counted * 2, "{held} bytes held, {counted} counted");
    // They are all there, intact.
    for i in 0..MESSAGES {
        let message = reactor.recv(socket).unwrap();
        assert_eq!(&message[1][..], &[i as u8; 16][..]);
    }
}
