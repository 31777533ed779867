//! CURVE (RFC 26/CurveZMQ) for ZMTP 3.x: the handshake (HELLO, WELCOME, INITIATE, READY,
//! ERROR) and the MESSAGE boxes that carry every frame after it, as pure functions over bytes.
//! Built only with the `curve` feature.
//!
//! Keys: each side has a permanent key pair (C, S); each connection makes transient ones (C',
//! S'). The server's WELCOME carries a cookie (C' and s', sealed under a key made for this
//! connection) that INITIATE must return; the server also keeps C', s' and that key until then
//! and checks the cookie against them. Short nonces are counters that must increase on every
//! command, both ways.

pub mod channel;
pub(crate) mod crypto;
pub mod handshake;
pub mod link;
mod poly1305;
// The crate's exceptions to `deny(unsafe_code)`: see each module's doc.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod poly1305_simd;
mod salsa20;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod salsa20_simd;

use std::sync::Arc;

pub use self::channel::Channel;
pub use self::handshake::{ClientHandshake, ServerHandshake};
pub use self::link::Link;

/// A permanent key pair (or a transient one): the secret key and its public key.
#[derive(Clone)]
pub struct KeyPair {
    secret: crypto::SecretKey,
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let public = crate::z85::encode(&self.public).unwrap_or_default();
        write!(f, "KeyPair {{ public: {public}, secret: .. }}")
    }
}

impl KeyPair {
    /// A new random key pair.
    ///
    /// # Panics
    /// When the operating system's random source fails (at start-up or when connecting; what a
    /// peer's bytes lead to uses `try_generate`).
    pub fn generate() -> Self {
        match Self::try_generate() {
            Ok(keys) => keys,
            Err(e) => panic!("{e}"),
        }
    }

    /// A new random key pair, or `NoRandomness`.
    pub fn try_generate() -> Result<Self, crate::error::CurveError> {
        Ok(Self::from_secret(crypto::random_key()?))
    }

    /// The key pair of a 32-byte secret key.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = crypto::SecretKey::from_bytes(secret);
        let public = secret.public_key();
        Self { secret, public }
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The secret key's bytes (for `ezarch keygen`).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }
}

/// The check an `Authorizer` runs on a client's permanent public key.
type KeyCheck = dyn Fn(&[u8; 32]) -> bool + Send + Sync;

/// Decides whether a client's permanent public key may connect (the server's allowlist).
#[derive(Clone)]
pub struct Authorizer(Arc<KeyCheck>);

impl Authorizer {
    /// An authorizer that lets a key connect when `check` returns true for it.
    pub fn new(check: impl Fn(&[u8; 32]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(check))
    }

    /// Every key may connect (CURVE for encryption only).
    pub fn any() -> Self {
        Self::new(|_| true)
    }

    /// Whether `key` may connect.
    pub fn allows(&self, key: &[u8; 32]) -> bool {
        (self.0)(key)
    }
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer(..)")
    }
}

/// How a connection uses CURVE.
#[derive(Debug, Clone)]
pub enum Curve {
    /// We are the CURVE server: our permanent keys, and who may connect.
    Server {
        /// Our permanent key pair.
        keys: KeyPair,
        /// Which client keys may connect.
        authorizer: Authorizer,
    },
    /// We are the CURVE client: our permanent keys and the server's public key.
    Client {
        /// Our permanent key pair.
        keys: KeyPair,
        /// The server's permanent public key.
        server: [u8; 32],
    },
}
