//! Whole CURVE conversations replayed byte for byte (feature `rustcrypto`, for tests and fuzz
//! targets): a server and a client with fixed permanent keys and providers whose randomness is
//! seeded complete a handshake and exchange one message each way. The bytes each side wrote
//! are the golden transcripts in `zmtp/tests/vectors/`; any provider with the same randomness
//! must write the same bytes, and the fuzz targets start from them, so a fuzzed INITIATE
//! carries the cookie the seeded server expects and a fuzzed WELCOME answers the seeded
//! client's HELLO.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{Authorizer, Curve, KeyPair, Provider};
use crate::session::{Config, Event, Session};
use crate::socket_type::SocketType;

/// The server's permanent secret key in every transcript.
pub const SERVER_SECRET: [u8; 32] = [7; 32];
/// The client's permanent secret key in every transcript.
pub const CLIENT_SECRET: [u8; 32] = [9; 32];
/// The seed of the server's randomness in the golden transcripts.
pub const SERVER_SEED: u64 = 1;
/// The seed of the client's randomness in the golden transcripts.
pub const CLIENT_SEED: u64 = 2;

/// What each side wrote, in order: its greeting, its handshake commands, then one MESSAGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The client's bytes: greeting, HELLO, INITIATE, then a MESSAGE holding `["hello"]`.
    pub to_server: Vec<u8>,
    /// The server's bytes: greeting, WELCOME, READY, then a MESSAGE holding `["world"]`.
    pub to_client: Vec<u8>,
}

/// The server's session configuration: a ROUTER with `provider`, any client key allowed.
pub fn server_config(provider: &Provider) -> Config {
    let mut config = Config::new(SocketType::Router);
    let keys = KeyPair::from_secret(&**provider, SERVER_SECRET);
    config.curve = Some(Curve::Server { keys, authorizer: Authorizer::any(), provider: provider.clone() });
    config
}

/// The client's session configuration: a DEALER with identity `client` and `provider`,
/// talking to the server of `server_config` (`server_provider` derives that server's key).
pub fn client_config(provider: &Provider, server_provider: &Provider) -> Config {
    let mut config = Config::new(SocketType::Dealer);
    config.identity = Bytes::from_static(b"client");
    let server = *KeyPair::from_secret(&**server_provider, SERVER_SECRET).public();
    let keys = KeyPair::from_secret(&**provider, CLIENT_SECRET);
    config.curve = Some(Curve::Client { keys, server, provider: provider.clone() });
    config
}

/// Takes what `session` queued to write.
fn drain(session: &mut Session) -> Vec<u8> {
    let out: Vec<u8> = session.encoder().chunks().flatten().copied().collect();
    session.encoder().consume(out.len());
    out
}

/// Runs the conversation with these providers at `now` (the clock does not move: no timer
/// matters); `None` if the handshake or the messages fail.
pub fn record(server_provider: &Provider, client_provider: &Provider, now: Instant) -> Option<Transcript> {
    let mut server = Session::new(server_config(server_provider), now);
    let mut client = Session::new(client_config(client_provider, server_provider), now);
    let mut transcript = Transcript { to_server: Vec::new(), to_client: Vec::new() };
    for _ in 0..4 {
        let (to_server, to_client) = (drain(&mut client), drain(&mut server));
        server.handle_input(&mut BytesMut::from(&to_server[..]), now).ok()?;
        client.handle_input(&mut BytesMut::from(&to_client[..]), now).ok()?;
        transcript.to_server.extend(to_server);
        transcript.to_client.extend(to_client);
    }
    (server.is_ready() && client.is_ready()).then_some(())?;
    client.send(&[Bytes::from_static(b"hello")]).ok()?;
    server.send(&[Bytes::from_static(b"world")]).ok()?;
    let (to_server, to_client) = (drain(&mut client), drain(&mut server));
    server.handle_input(&mut BytesMut::from(&to_server[..]), now).ok()?;
    client.handle_input(&mut BytesMut::from(&to_client[..]), now).ok()?;
    let got = |session: &mut Session| {
        std::iter::from_fn(|| session.poll_event()).find_map(|e| {
            if let Event::Message(m) = e {
                Some(m)
            } else {
                None
            }
        })
    };
    let (at_server, at_client) = (got(&mut server)?, got(&mut client)?);
    (at_server == [Bytes::from_static(b"hello")]).then_some(())?;
    (at_client == [Bytes::from_static(b"world")]).then_some(())?;
    transcript.to_server.extend(to_server);
    transcript.to_client.extend(to_client);
    Some(transcript)
}
