//! What things really cost on the heap, measured with a live-bytes counting allocator (this test
//! binary installs one), against what the code counts for its limits. A count below the real
//! cost would let a peer hold more than a documented limit says.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use ezarch::socket::{subscription_cost, Publisher, SocketOptions};

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
                let peer = publisher.pipes.insert(Bytes::new(), true);
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
