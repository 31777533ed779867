//! Non-cryptographic randomness for identities, request ids, reconnect jitter and the start of
//! ROUTER identity counters: the one xorshift in ezarch, per thread, seeded from the clock, the
//! process id and a stack address. Not for secrets.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    let address = &local as *const u8 as u64;
    (clock ^ (u64::from(std::process::id()) << 32) ^ address.rotate_left(17)) | 1
}

/// The next 64 random bits of this thread's generator.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// `n` random bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| next_u64() as u8).collect()
}

/// A random UUID-shaped string (version 4 layout), as the original client's request ids.
pub fn uuid() -> String {
    let (a, b) = (next_u64(), next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}
