//! CURVE (RFC 26/CurveZMQ) for ZMTP 3.x: the handshake (HELLO, WELCOME, INITIATE, READY,
//! ERROR) and the MESSAGE boxes that carry every frame after it, as pure functions over bytes.
//! Built only with the `curve` feature.
//!
//! Keys: each side has a permanent key pair (C, S); each connection makes transient ones (C',
//! S'). The server's WELCOME carries a cookie (C' and s', sealed under a key made for this
//! connection) that INITIATE must return; the server also keeps C', s' and that key until then
//! and checks the cookie against them. Short nonces are counters that must increase on every
//! command, both ways.
//!
//! Every primitive (X25519, HSalsa20, Salsa20, Poly1305, a constant-time compare, randomness)
//! comes from the `CryptoProvider` in `Curve`: this module is protocol logic only, in safe Rust,
//! with no cipher of its own. Secrets are wiped when dropped (`zeroize`).

pub mod channel;
pub mod crypto;
pub mod handshake;
pub mod link;
pub mod provider;
#[cfg(feature = "rustcrypto")]
pub mod rustcrypto;
#[cfg(feature = "rustcrypto")]
pub mod transcript;

use std::sync::Arc;

pub use self::channel::Channel;
pub use self::handshake::{ClientHandshake, ServerHandshake};
pub use self::link::Link;
pub use self::provider::{CryptoProvider, Provider};
use crate::error::CurveError;

/// A permanent key pair (or a transient one): the secret key (wiped when dropped) and its
/// public key.
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
    /// A new random key pair from `provider`'s random source; `NoRandomness` when it fails.
    pub fn generate(provider: &dyn CryptoProvider) -> Result<Self, CurveError> {
        let secret = zeroize::Zeroizing::new(crypto::random::<32>(provider)?);
        Ok(Self::from_secret(provider, *secret))
    }

    /// The key pair of a 32-byte secret key.
    pub fn from_secret(provider: &dyn CryptoProvider, secret: [u8; 32]) -> Self {
        let public = provider.x25519_public(&secret);
        Self { secret: crypto::SecretKey::from_bytes(secret), public }
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// A copy of the secret key's bytes, wiped when dropped (for `ezarch keygen`).
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        self.secret.to_bytes()
    }

    pub(crate) fn secret(&self) -> &crypto::SecretKey {
        &self.secret
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
#[derive(Clone)]
pub enum Curve {
    /// We are the CURVE server: our permanent keys, and who may connect.
    Server {
        /// Our permanent key pair.
        keys: KeyPair,
        /// Which client keys may connect.
        authorizer: Authorizer,
        /// The primitives.
        provider: Provider,
    },
    /// We are the CURVE client: our permanent keys and the server's public key.
    Client {
        /// Our permanent key pair.
        keys: KeyPair,
        /// The server's permanent public key.
        server: [u8; 32],
        /// The primitives.
        provider: Provider,
    },
}

impl Curve {
    /// The primitives this side uses.
    pub fn provider(&self) -> &Provider {
        match self {
            Curve::Server { provider, .. } | Curve::Client { provider, .. } => provider,
        }
    }
}

impl std::fmt::Debug for Curve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Curve::Server { keys, provider, .. } => {
                write!(f, "Curve::Server {{ keys: {keys:?}, provider: {} }}", provider.name())
            }
            Curve::Client { keys, provider, .. } => {
                write!(f, "Curve::Client {{ keys: {keys:?}, provider: {} }}", provider.name())
            }
        }
    }
}

/// A provider behind an `Arc`, ready for `Curve`.
pub fn provider(provider: impl CryptoProvider + 'static) -> Provider {
    Arc::new(provider)
}
