//! ezarch's CURVE primitives: libsodium (the library libzmq and pyzmq use for CURVE), built from
//! the source bundled in `libsodium-sys-stable` and linked statically, behind zmtp's
//! `CryptoProvider`. This module is the only one that calls it, and the one place in ezarch
//! besides `reactor::connection::read_into_spare` and `signals` that needs `unsafe`: each call
//! says why it is sound.
//!
//! Randomness comes from the operating system through `getrandom` rather than libsodium's
//! `randombytes_buf`, which aborts the process when the source fails; here a failure closes the
//! one connection that needed the bytes.

#![allow(unsafe_code)]

use std::sync::{Arc, OnceLock};

use libsodium_sys as sodium;
use zmtp::curve::{CryptoProvider, Provider};
use zmtp::CurveError;

/// libsodium, initialised.
#[derive(Debug)]
pub struct Sodium {
    version: String,
}

/// The process's one libsodium provider; `None` if `sodium_init` failed (CURVE then refuses to
/// start, with an error naming it).
pub fn provider() -> Option<Provider> {
    static PROVIDER: OnceLock<Option<Provider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Sodium::init().map(|s| Arc::new(s) as Provider)).clone()
}

/// A new random key pair (`ezarch keygen`, tests); `NoRandomness` when the random source or
/// libsodium fails.
pub fn generate_keys() -> Result<zmtp::curve::KeyPair, CurveError> {
    let provider = provider().ok_or(CurveError::NoRandomness)?;
    zmtp::curve::KeyPair::generate(&*provider)
}

impl Sodium {
    /// Initialises libsodium (picking its CPU-specific code); `None` when it cannot.
    fn init() -> Option<Self> {
        // SAFETY: sodium_init takes no arguments, is safe to call more than once and from any
        // thread; it returns 0 (done now), 1 (done before) or -1 (failed).
        if unsafe { sodium::sodium_init() } < 0 {
            return None;
        }
        // SAFETY: sodium_version_string returns a pointer to a static, NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(sodium::sodium_version_string()) };
        Some(Self { version: version.to_string_lossy().into_owned() })
    }
}

impl CryptoProvider for Sodium {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CurveError> {
        getrandom::getrandom(out).map_err(|_| CurveError::NoRandomness)
    }

    fn x25519_public(&self, secret: &[u8; 32]) -> [u8; 32] {
        let mut public = [0u8; 32];
        // SAFETY: `public` is 32 writable bytes and `secret` 32 readable ones, the sizes
        // crypto_scalarmult_curve25519_base reads and writes. It fails only for a result of
        // all zeros, which the clamped base-point product never is.
        unsafe { sodium::crypto_scalarmult_curve25519_base(public.as_mut_ptr(), secret.as_ptr()) };
        public
    }

    fn x25519(&self, secret: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        let mut shared = [0u8; 32];
        // SAFETY: `shared` is 32 writable bytes, `secret` and `public` 32 readable ones each.
        // A return of -1 means a low-order `public` (the result would be all zeros).
        let result = unsafe {
            sodium::crypto_scalarmult_curve25519(shared.as_mut_ptr(), secret.as_ptr(), public.as_ptr())
        };
        (result == 0).then_some(shared)
    }

    fn hsalsa20(&self, key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: `out` is 32 writable bytes, `input` 16 and `key` 32 readable ones; a null
        // constant selects Salsa20's own ("expand 32-byte k"). It always returns 0.
        unsafe {
            sodium::crypto_core_hsalsa20(out.as_mut_ptr(), input.as_ptr(), key.as_ptr(), std::ptr::null())
        };
        out
    }

    fn salsa20_xor(&self, key: &[u8; 32], nonce: &[u8; 8], block: u64, data: &mut [u8]) {
        let ptr = data.as_mut_ptr();
        // SAFETY: the message and ciphertext are the same `data.len()` bytes (libsodium allows
        // them to be the same buffer); `nonce` is 8 and `key` 32 readable bytes. It returns 0
        // for every length that fits in a usize.
        unsafe {
            sodium::crypto_stream_salsa20_xor_ic(
                ptr,
                ptr,
                data.len() as u64,
                nonce.as_ptr(),
                block,
                key.as_ptr(),
            )
        };
    }

    fn poly1305(&self, key: &[u8; 32], message: &[u8]) -> [u8; 16] {
        let mut tag = [0u8; 16];
        // SAFETY: `tag` is 16 writable bytes, `message` `message.len()` readable ones and
        // `key` 32. It always returns 0.
        unsafe {
            sodium::crypto_onetimeauth_poly1305(
                tag.as_mut_ptr(),
                message.as_ptr(),
                message.len() as u64,
                key.as_ptr(),
            )
        };
        tag
    }

    fn verify16(&self, a: &[u8; 16], b: &[u8; 16]) -> bool {
        // SAFETY: `a` and `b` are 16 readable bytes each; 0 means equal.
        unsafe { sodium::crypto_verify_16(a.as_ptr(), b.as_ptr()) == 0 }
    }

    fn name(&self) -> String {
        format!("libsodium {}", self.version)
    }
}
