//! The CURVE handshake (RFC 26), both sides, as state machines over command bodies (a command's
//! bytes after its frame header: name length, name, data).
//!
//! ```text
//! client                                    server
//! HELLO    C', Box[64 zeros](C'->S)   ->
//!                                      <-   WELCOME  Box[S' + cookie](S->C')
//! INITIATE cookie, Box[C + vouch + metadata](C'->S'), vouch = Box[C' + S](C->S')
//!                                      <-   READY    Box[metadata](S'->C')
//! ```
//!
//! The server checks the client's permanent key C with its `Authorizer` once the vouch proves
//! the client holds C's secret key.

use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

use super::channel::Channel;
use super::crypto::{long_nonce, random, short_nonce, Boxer, CookieBox, TAG};
use super::provider::{verify32, Provider};
use super::{Authorizer, KeyPair};
use crate::error::{CurveError, Error};
use crate::metadata::Metadata;

const HELLO: &[u8] = b"\x05HELLO";
const WELCOME: &[u8] = b"\x07WELCOME";
const INITIATE: &[u8] = b"\x08INITIATE";
const READY: &[u8] = b"\x05READY";
const ERROR: &[u8] = b"\x05ERROR";
const HELLO_LEN: usize = 200;
const WELCOME_LEN: usize = 168;
const COOKIE_LEN: usize = 96;
const VOUCH_LEN: usize = 96;
/// INITIATE without metadata: name, cookie, nonce, box of C and the vouch.
const INITIATE_MIN: usize = INITIATE.len() + COOKIE_LEN + 8 + TAG + 32 + VOUCH_LEN;
/// READY without metadata: name, nonce, an empty box.
const READY_MIN: usize = READY.len() + 8 + TAG;

fn malformed(command: &'static str) -> Error {
    CurveError::Malformed { command }.into()
}

fn bad_box(command: &'static str) -> Error {
    CurveError::BadBox { command }.into()
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(raw)
}

fn to_key(bytes: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[..32]);
    key
}

/// Metadata from a box's plaintext, its size checked against `max` first.
fn parse_metadata(data: &[u8], max: usize) -> Result<Metadata, Error> {
    Ok(Metadata::parse(&Bytes::copy_from_slice(data), max)?)
}

fn encode_metadata(metadata: &Metadata) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(metadata.encoded_len());
    metadata.encode(&mut out);
    out.to_vec()
}

/// An ERROR command body, if `body` is one: the peer refused us.
fn peer_error(body: &[u8]) -> Option<Error> {
    let reason = body.strip_prefix(ERROR)?;
    let text = reason.get(1..).unwrap_or_default();
    let len = usize::from(reason.first().copied().unwrap_or(0)).min(text.len());
    Some(Error::PeerError { reason: Bytes::copy_from_slice(&text[..len]) })
}

/// An ERROR command body with `reason` (at most 255 bytes).
pub fn error_command(reason: &[u8]) -> Vec<u8> {
    let reason = &reason[..reason.len().min(255)];
    let mut out = ERROR.to_vec();
    out.push(reason.len() as u8);
    out.extend_from_slice(reason);
    out
}

/// What the handshake produced on completion.
#[derive(Debug)]
pub struct Established {
    /// The peer's metadata (`Socket-Type`, `Identity`, ...).
    pub metadata: Metadata,
    /// The peer's permanent public key (the client's, for a server; the server's, for a client).
    pub peer_key: [u8; 32],
    /// The MESSAGE channel, its short nonces continuing from the handshake's.
    pub channel: Channel,
}

/// What to do after a handshake command.
#[derive(Debug)]
pub enum Step {
    /// Send this command body and wait for the next.
    Send(Vec<u8>),
    /// Done: send `reply` first if there is one (the server's READY).
    Done {
        /// A command body to send first (the server's READY).
        reply: Option<Vec<u8>>,
        /// What the handshake produced.
        established: Box<Established>,
    },
}

/// The client's side.
pub struct ClientHandshake {
    keys: KeyPair,
    server: [u8; 32],
    transient: KeyPair,
    /// Our next short nonce.
    nonce: u64,
    /// The server's transient key, once WELCOME told it.
    server_transient: Option<[u8; 32]>,
    max_metadata: usize,
    provider: Provider,
}

impl std::fmt::Debug for ClientHandshake {
    /// Without the transient key pair.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake with the server whose permanent key is `server`; returns the HELLO.
    /// Fails when the provider's random source does, or `server` is of low order.
    pub fn start(
        provider: &Provider,
        keys: KeyPair,
        server: [u8; 32],
        max_metadata: usize,
    ) -> Result<(Self, Vec<u8>), CurveError> {
        let transient = KeyPair::generate(&**provider)?;
        let mut hello = Vec::with_capacity(HELLO_LEN);
        hello.extend_from_slice(HELLO);
        hello.extend_from_slice(&[1, 0]);
        hello.extend_from_slice(&[0u8; 72]);
        hello.extend_from_slice(transient.public());
        hello.extend_from_slice(&1u64.to_be_bytes());
        let boxer = Boxer::new(provider, &server, transient.secret())
            .ok_or(CurveError::BadBox { command: "HELLO" })?;
        boxer.seal_into(&short_nonce(b"CurveZMQHELLO---", 1), &[0u8; 64], &mut hello);
        let provider = provider.clone();
        let handshake =
            Self { keys, server, transient, nonce: 2, server_transient: None, max_metadata, provider };
        Ok((handshake, hello))
    }

    /// The server's next command: WELCOME (answered with INITIATE, which carries `ours`), then
    /// READY.
    pub fn on_command(&mut self, body: &[u8], ours: &Metadata) -> Result<Step, Error> {
        if let Some(error) = peer_error(body) {
            return Err(error);
        }
        match self.server_transient {
            None => self.on_welcome(body, ours).map(Step::Send),
            Some(server_transient) => self.on_ready(body, server_transient),
        }
    }

    fn on_welcome(&mut self, body: &[u8], ours: &Metadata) -> Result<Vec<u8>, Error> {
        if body.len() != WELCOME_LEN || !body.starts_with(WELCOME) {
            return Err(malformed("WELCOME"));
        }
        let long = &body[WELCOME.len()..WELCOME.len() + 16];
        let p = &self.provider;
        let boxer = Boxer::new(p, &self.server, self.transient.secret()).ok_or_else(|| bad_box("WELCOME"))?;
        let plain = boxer
            .open(&long_nonce(b"WELCOME-", long), &body[WELCOME.len() + 16..])
            .ok_or_else(|| bad_box("WELCOME"))?;
        let server_transient = to_key(&plain[..32]);
        let cookie = &plain[32..32 + COOKIE_LEN];
        // The vouch: Box[C' + S](C->S'), proving we hold C's secret key.
        let vouch_long: [u8; 16] = random(&**p)?;
        let mut vouch = vouch_long.to_vec();
        let mut vouched = self.transient.public().to_vec();
        vouched.extend_from_slice(&self.server);
        let to_server_transient =
            Boxer::new(p, &server_transient, self.keys.secret()).ok_or_else(|| bad_box("WELCOME"))?;
        to_server_transient.seal_into(&long_nonce(b"VOUCH---", &vouch_long), &vouched, &mut vouch);
        let mut plaintext = self.keys.public().to_vec();
        plaintext.extend_from_slice(&vouch);
        plaintext.extend_from_slice(&encode_metadata(ours));
        let mut initiate = INITIATE.to_vec();
        initiate.extend_from_slice(cookie);
        initiate.extend_from_slice(&self.nonce.to_be_bytes());
        let to_server =
            Boxer::new(p, &server_transient, self.transient.secret()).ok_or_else(|| bad_box("WELCOME"))?;
        to_server.seal_into(&short_nonce(b"CurveZMQINITIATE", self.nonce), &plaintext, &mut initiate);
        self.nonce += 1;
        self.server_transient = Some(server_transient);
        Ok(initiate)
    }

    fn on_ready(&mut self, body: &[u8], server_transient: [u8; 32]) -> Result<Step, Error> {
        if body.len() < READY_MIN || !body.starts_with(READY) {
            return Err(malformed("READY"));
        }
        let nonce = read_u64(&body[READY.len()..]);
        let boxer = Boxer::new(&self.provider, &server_transient, self.transient.secret())
            .ok_or_else(|| bad_box("READY"))?;
        let plain = boxer
            .open(&short_nonce(b"CurveZMQREADY---", nonce), &body[READY.len() + 8..])
            .ok_or_else(|| bad_box("READY"))?;
        let metadata = parse_metadata(&plain, self.max_metadata)?;
        let channel = Channel::new(boxer, true, self.nonce, nonce);
        let established = Box::new(Established { metadata, peer_key: self.server, channel });
        Ok(Step::Done { reply: None, established })
    }
}

/// The server's side.
pub struct ServerHandshake {
    keys: KeyPair,
    authorizer: Authorizer,
    state: ServerState,
    max_metadata: usize,
    provider: Provider,
}

impl std::fmt::Debug for ServerHandshake {
    /// Without the state: it holds the cookie key and s', which would open this connection.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake").field("keys", &self.keys).finish_non_exhaustive()
    }
}

enum ServerState {
    AwaitHello,
    /// WELCOME sent: what INITIATE must match. The cookie holds C' and s' too; both must agree.
    AwaitInitiate {
        client_transient: [u8; 32],
        transient: KeyPair,
        cookie_key: Zeroizing<[u8; 32]>,
        last_nonce: u64,
    },
    Done,
}

impl ServerHandshake {
    /// A server side awaiting HELLO: our permanent keys, who may connect, and the cap on the
    /// client's metadata.
    pub fn new(provider: &Provider, keys: KeyPair, authorizer: Authorizer, max_metadata: usize) -> Self {
        let provider = provider.clone();
        Self { keys, authorizer, state: ServerState::AwaitHello, max_metadata, provider }
    }

    /// The client's next command: HELLO (answered with WELCOME), then INITIATE (answered with
    /// READY carrying `ours`, or refused with `CurveError::Unauthorized`).
    pub fn on_command(&mut self, body: &[u8], ours: &Metadata) -> Result<Step, Error> {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::AwaitHello => self.on_hello(body).map(Step::Send),
            ServerState::AwaitInitiate { client_transient, transient, cookie_key, last_nonce } => {
                self.on_initiate(body, ours, client_transient, transient, cookie_key, last_nonce)
            }
            ServerState::Done => Err(malformed("handshake command after READY")),
        }
    }

    fn on_hello(&mut self, body: &[u8]) -> Result<Vec<u8>, Error> {
        if body.len() != HELLO_LEN || !body.starts_with(HELLO) {
            return Err(malformed("HELLO"));
        }
        if body[6..8] != [1, 0] {
            return Err(malformed("HELLO version"));
        }
        let client_transient = to_key(&body[80..112]);
        let nonce = read_u64(&body[112..120]);
        let p = &self.provider;
        let boxer = Boxer::new(p, &client_transient, self.keys.secret()).ok_or_else(|| bad_box("HELLO"))?;
        let plain = boxer
            .open(&short_nonce(b"CurveZMQHELLO---", nonce), &body[120..200])
            .ok_or_else(|| bad_box("HELLO"))?;
        if plain.iter().any(|&b| b != 0) {
            return Err(malformed("HELLO signature"));
        }
        let transient = KeyPair::generate(&**p)?;
        let cookie_key = Zeroizing::new(random::<32>(&**p)?);
        // cookie = long nonce + Box[C' + s'](K)
        let cookie_long: [u8; 16] = random(&**p)?;
        let mut cookie_plain = Zeroizing::new(client_transient.to_vec());
        cookie_plain.extend_from_slice(&*transient.secret_bytes());
        let mut cookie = cookie_long.to_vec();
        let cookie_nonce = long_nonce(b"COOKIE--", &cookie_long);
        CookieBox::with_key(p, &cookie_key).seal_into(&cookie_nonce, &cookie_plain, &mut cookie);
        let mut welcome_plain = Zeroizing::new(transient.public().to_vec());
        welcome_plain.extend_from_slice(&cookie);
        let welcome_long: [u8; 16] = random(&**p)?;
        let mut welcome = WELCOME.to_vec();
        welcome.extend_from_slice(&welcome_long);
        boxer.seal_into(&long_nonce(b"WELCOME-", &welcome_long), &welcome_plain, &mut welcome);
        self.state =
            ServerState::AwaitInitiate { client_transient, transient, cookie_key, last_nonce: nonce };
        Ok(welcome)
    }

    fn on_initiate(
        &mut self,
        body: &[u8],
        ours: &Metadata,
        client_transient: [u8; 32],
        transient: KeyPair,
        cookie_key: Zeroizing<[u8; 32]>,
        last_nonce: u64,
    ) -> Result<Step, Error> {
        if body.len() < INITIATE_MIN || !body.starts_with(INITIATE) {
            return Err(malformed("INITIATE"));
        }
        let body = &body[INITIATE.len()..];
        let (cookie, rest) = body.split_at(COOKIE_LEN);
        let p = &self.provider;
        let cookie_plain = CookieBox::with_key(p, &cookie_key)
            .open(&long_nonce(b"COOKIE--", &cookie[..16]), &cookie[16..])
            .ok_or(CurveError::BadCookie)?;
        let cookie_is_ours = verify32(&**p, &cookie_plain[..32], &client_transient)
            & verify32(&**p, &cookie_plain[32..64], &*transient.secret_bytes());
        if !cookie_is_ours {
            return Err(CurveError::BadCookie.into());
        }
        let nonce = read_u64(rest);
        if nonce <= last_nonce {
            return Err(CurveError::NonceNotIncreasing { got: nonce, last: last_nonce }.into());
        }
        let boxer =
            Boxer::new(p, &client_transient, transient.secret()).ok_or_else(|| bad_box("INITIATE"))?;
        let plain = boxer
            .open(&short_nonce(b"CurveZMQINITIATE", nonce), &rest[8..])
            .ok_or_else(|| bad_box("INITIATE"))?;
        let client_key = to_key(&plain[..32]);
        let vouch = &plain[32..32 + VOUCH_LEN];
        let vouched = Boxer::new(p, &client_key, transient.secret())
            .ok_or(CurveError::BadVouch)?
            .open(&long_nonce(b"VOUCH---", &vouch[..16]), &vouch[16..])
            .ok_or(CurveError::BadVouch)?;
        if vouched[..32] != client_transient || vouched[32..64] != *self.keys.public() {
            return Err(CurveError::BadVouch.into());
        }
        let metadata = parse_metadata(&plain[32 + VOUCH_LEN..], self.max_metadata)?;
        if !self.authorizer.allows(&client_key) {
            return Err(CurveError::Unauthorized { key: client_key }.into());
        }
        let mut ready = READY.to_vec();
        ready.extend_from_slice(&1u64.to_be_bytes());
        boxer.seal_into(&short_nonce(b"CurveZMQREADY---", 1), &encode_metadata(ours), &mut ready);
        let channel = Channel::new(boxer, false, 2, nonce);
        let established = Box::new(Established { metadata, peer_key: client_key, channel });
        Ok(Step::Done { reply: Some(ready), established })
    }
}

#[cfg(all(test, feature = "rustcrypto"))]
mod tests {
    use super::*;
    use crate::curve::rustcrypto::RustCrypto;

    fn provider() -> Provider {
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        crate::curve::provider(RustCrypto::seeded(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
    }

    fn keys(p: &Provider) -> KeyPair {
        KeyPair::generate(&**p).unwrap()
    }

    fn metadata(socket_type: &str) -> Metadata {
        let mut m = Metadata::new();
        m.push("Socket-Type", socket_type.to_string());
        m
    }

    /// Runs a whole handshake; returns both sides' results.
    fn handshake(
        client_keys: KeyPair,
        server_key: [u8; 32],
        server: &mut ServerHandshake,
    ) -> (Result<Established, Error>, Option<Result<Established, Error>>) {
        let (mut client, hello) = ClientHandshake::start(&provider(), client_keys, server_key, 1024).unwrap();
        let welcome = match server.on_command(&hello, &metadata("ROUTER")) {
            Ok(Step::Send(welcome)) => welcome,
            Ok(_) => panic!("no WELCOME"),
            Err(e) => return (Err(e), None),
        };
        let initiate = match client.on_command(&welcome, &metadata("DEALER")) {
            Ok(Step::Send(initiate)) => initiate,
            Ok(_) => panic!("no INITIATE"),
            Err(e) => return (Err(e), None),
        };
        let (ready, server_done) = match server.on_command(&initiate, &metadata("ROUTER")) {
            Ok(Step::Done { reply: Some(ready), established }) => (ready, *established),
            Ok(_) => panic!("no READY"),
            Err(e) => return (Err(e), None),
        };
        match client.on_command(&ready, &metadata("DEALER")) {
            Ok(Step::Done { established, .. }) => (Ok(server_done), Some(Ok(*established))),
            Ok(_) => panic!("not done"),
            Err(e) => (Ok(server_done), Some(Err(e))),
        }
    }

    #[test]
    fn a_handshake_establishes_a_channel_both_ways_and_names_the_client() {
        let p = provider();
        let (server_keys, client_keys) = (keys(&p), keys(&p));
        let mut server = ServerHandshake::new(&p, server_keys.clone(), Authorizer::any(), 1024);
        let (server_side, client_side) = handshake(client_keys.clone(), *server_keys.public(), &mut server);
        let (mut s, mut c) = (server_side.unwrap(), client_side.unwrap().unwrap());
        assert_eq!(s.peer_key, *client_keys.public());
        assert_eq!(s.metadata.get("Socket-Type").map(|v| &v[..]), Some(&b"DEALER"[..]));
        assert_eq!(c.metadata.get("Socket-Type").map(|v| &v[..]), Some(&b"ROUTER"[..]));
        let frame = c.channel.seal(super::super::channel::MORE, b"hello");
        // header (2) + command name, nonce, box of flags and body
        let body = &frame[2..];
        assert_eq!(s.channel.open(body).unwrap(), (1, Bytes::from_static(b"hello")));
        assert!(matches!(s.channel.open(body), Err(CurveError::NonceNotIncreasing { .. })), "a replay");
        let back = s.channel.seal(0, b"world");
        assert_eq!(c.channel.open(&back[2..]).unwrap(), (0, Bytes::from_static(b"world")));
    }

    #[test]
    fn an_unknown_client_key_or_a_wrong_server_key_is_refused() {
        let p = provider();
        let (server_keys, client_keys) = (keys(&p), keys(&p));
        let allowed = *keys(&p).public();
        let mut server =
            ServerHandshake::new(&p, server_keys.clone(), Authorizer::new(move |k| *k == allowed), 1024);
        let (result, _) = handshake(client_keys.clone(), *server_keys.public(), &mut server);
        assert_eq!(
            result.unwrap_err(),
            Error::Curve(CurveError::Unauthorized { key: *client_keys.public() })
        );
        let mut server = ServerHandshake::new(&p, server_keys, Authorizer::any(), 1024);
        let (result, _) = handshake(client_keys, *keys(&p).public(), &mut server);
        assert_eq!(result.unwrap_err(), Error::Curve(CurveError::BadBox { command: "HELLO" }));
    }

    #[test]
    fn garbled_or_short_commands_are_refused_by_name() {
        let p = provider();
        let server_keys = keys(&p);
        let mut server = ServerHandshake::new(&p, server_keys.clone(), Authorizer::any(), 1024);
        let ours = metadata("ROUTER");
        assert_eq!(server.on_command(&[5, b'H'], &ours).unwrap_err(), malformed("HELLO"));
        let (_, mut hello) = ClientHandshake::start(&p, keys(&p), *server_keys.public(), 1024).unwrap();
        hello[150] ^= 0x40;
        let mut server = ServerHandshake::new(&p, server_keys.clone(), Authorizer::any(), 1024);
        assert_eq!(server.on_command(&hello, &ours).unwrap_err(), bad_box("HELLO"));
        // A good HELLO, then an INITIATE whose cookie was altered.
        let (mut client, hello) = ClientHandshake::start(&p, keys(&p), *server_keys.public(), 1024).unwrap();
        let mut server = ServerHandshake::new(&p, server_keys, Authorizer::any(), 1024);
        let Ok(Step::Send(welcome)) = server.on_command(&hello, &ours) else { panic!() };
        let Ok(Step::Send(mut initiate)) = client.on_command(&welcome, &metadata("DEALER")) else { panic!() };
        initiate[INITIATE.len() + 20] ^= 1;
        assert_eq!(server.on_command(&initiate, &ours).unwrap_err(), Error::Curve(CurveError::BadCookie));
    }

    #[test]
    fn oversized_initiate_metadata_is_refused() {
        let p = provider();
        let server_keys = keys(&p);
        let mut server = ServerHandshake::new(&p, server_keys.clone(), Authorizer::any(), 64);
        let (mut client, hello) = ClientHandshake::start(&p, keys(&p), *server_keys.public(), 1024).unwrap();
        let ours = metadata("ROUTER");
        let Ok(Step::Send(welcome)) = server.on_command(&hello, &ours) else { panic!() };
        let mut big = metadata("DEALER");
        big.push("X-Pad", vec![b'x'; 200]);
        let Ok(Step::Send(initiate)) = client.on_command(&welcome, &big) else { panic!() };
        assert!(matches!(server.on_command(&initiate, &ours), Err(Error::Command(_))));
    }

    #[test]
    fn a_low_order_key_or_a_failed_random_source_fails_the_handshake_without_a_panic() {
        let p = provider();
        // The all-zero point: X25519 with it is all zeros whatever the secret.
        assert!(matches!(
            ClientHandshake::start(&p, keys(&p), [0; 32], 1024),
            Err(CurveError::BadBox { .. })
        ));
        let server_keys = keys(&p);
        let (_, mut hello) = ClientHandshake::start(&p, keys(&p), *server_keys.public(), 1024).unwrap();
        hello[80..112].fill(0); // a low-order C'
        let mut server = ServerHandshake::new(&p, server_keys.clone(), Authorizer::any(), 1024);
        assert_eq!(server.on_command(&hello, &metadata("ROUTER")).unwrap_err(), bad_box("HELLO"));
        let broken = RustCrypto::seeded(99);
        broken.fail_random();
        let broken = crate::curve::provider(broken);
        assert!(matches!(KeyPair::generate(&*broken), Err(CurveError::NoRandomness)));
        let (_, hello) = ClientHandshake::start(&p, keys(&p), *server_keys.public(), 1024).unwrap();
        let mut server = ServerHandshake::new(&broken, server_keys, Authorizer::any(), 1024);
        let failed = server.on_command(&hello, &metadata("ROUTER")).unwrap_err();
        assert_eq!(failed, Error::Curve(CurveError::NoRandomness), "no WELCOME without randomness");
    }
}
