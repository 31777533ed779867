//! Randomness. `next_u64` and friends: non-cryptographic, for identities, request ids,
//! reconnect jitter and the start of ROUTER identity counters: the one xorshift in ezarch, per
//! thread, seeded from the clock, the process id and a stack address. Not for secrets.
//! `OsRandom`: the operating system's random source (getrandom(2)), for what must not be
//! guessed (generation-2 tokens), read 4 KiB at a time.

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

/// Bytes from the operating system's random source, read a buffer at a time so that taking 16
/// of them is usually a copy, not a system call.
#[derive(Debug)]
pub struct OsRandom {
    buffer: Box<[u8; 4096]>,
    /// Bytes of `buffer` already handed out (all of it, before the first read).
    used: usize,
}

impl Default for OsRandom {
    fn default() -> Self {
        Self { buffer: Box::new([0; 4096]), used: 4096 }
    }
}

impl OsRandom {
    /// `N` random bytes (N at most 4096); `None` when the operating system's source fails.
    pub fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.buffer.len() - self.used < N {
            getrandom::getrandom(&mut self.buffer[..]).ok()?;
            self.used = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buffer[self.used..self.used + N]);
        // What was handed out is not kept.
        self.buffer[self.used..self.used + N].fill(0);
        self.used += N;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::OsRandom;

    #[test]
    fn os_random_bytes_differ_and_span_buffer_refills() {
        let mut random = OsRandom::default();
        let tokens: Vec<[u8; 16]> = (0..600).map(|_| random.take().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len(), "600 tokens over three buffer fills, all distinct");
        assert!(tokens.iter().all(|t| t != &[0; 16]));
    }
}
