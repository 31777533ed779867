//! One connection's CURVE state for `Session`: the handshake while it runs, then the MESSAGE
//! channel, and the peer's permanent key.

use bytes::Bytes;

use super::channel::Channel;
use super::handshake::{error_command, ClientHandshake, ServerHandshake, Step};
use super::Curve;
use crate::error::{CurveError, Error};
use crate::metadata::Metadata;

#[derive(Debug)]
enum Handshake {
    Client(ClientHandshake),
    Server(ServerHandshake),
}

/// CURVE on one connection.
#[derive(Debug)]
pub struct Link {
    handshake: Option<Handshake>,
    channel: Option<Channel>,
    peer_key: Option<[u8; 32]>,
}

/// What a handshake command led to.
#[derive(Debug, Default)]
pub struct Progress {
    /// Command bodies to send, in order (WELCOME; INITIATE; READY; an ERROR before a refusal).
    pub send: Vec<Vec<u8>>,
    /// The handshake completed: the peer's metadata.
    pub done: Option<Metadata>,
}

impl Link {
    /// A link for `curve`; for a client, also the HELLO to send after the greeting. A client
    /// fails to start when its provider's random source does (or the server key is of low
    /// order).
    pub fn new(curve: &Curve, max_metadata: usize) -> Result<(Self, Option<Vec<u8>>), CurveError> {
        let (handshake, hello) = match curve {
            Curve::Server { keys, authorizer, provider } => {
                let handshake =
                    ServerHandshake::new(provider, keys.clone(), authorizer.clone(), max_metadata);
                (Handshake::Server(handshake), None)
            }
            Curve::Client { keys, server, provider } => {
                let (handshake, hello) =
                    ClientHandshake::start(provider, keys.clone(), *server, max_metadata)?;
                (Handshake::Client(handshake), Some(hello))
            }
        };
        Ok((Self { handshake: Some(handshake), channel: None, peer_key: None }, hello))
    }

    /// A handshake command from the peer; `ours` is our metadata for INITIATE or READY. A
    /// refused client key gets an ERROR command ("400") to send before the connection closes.
    pub fn on_handshake_command(
        &mut self,
        body: &[u8],
        ours: &Metadata,
    ) -> Result<Progress, (Progress, Error)> {
        let step = match &mut self.handshake {
            Some(Handshake::Client(h)) => h.on_command(body, ours),
            Some(Handshake::Server(h)) => h.on_command(body, ours),
            None => Err(CurveError::Malformed { command: "handshake command after READY" }.into()),
        };
        match step {
            Ok(Step::Send(command)) => Ok(Progress { send: vec![command], done: None }),
            Ok(Step::Done { reply, established }) => {
                self.handshake = None;
                self.channel = Some(established.channel);
                self.peer_key = Some(established.peer_key);
                Ok(Progress { send: reply.into_iter().collect(), done: Some(established.metadata) })
            }
            Err(e @ Error::Curve(CurveError::Unauthorized { .. })) => {
                // "400", as libzmq's ZAP denials say: a libzmq client then reports
                // ZMQ_EVENT_HANDSHAKE_FAILED_AUTH with status 400 to its monitor.
                let refusal = Progress { send: vec![error_command(b"400")], done: None };
                Err((refusal, e))
            }
            Err(e) => Err((Progress::default(), e)),
        }
    }

    /// Whether MESSAGE traffic has started.
    pub fn is_established(&self) -> bool {
        self.channel.is_some()
    }

    /// The peer's permanent public key, once the handshake completed.
    pub fn peer_key(&self) -> Option<[u8; 32]> {
        self.peer_key
    }

    /// One frame sealed into a whole MESSAGE command frame (see `Channel::seal`).
    pub fn seal(&mut self, payload_flags: u8, body: &[u8]) -> Option<Bytes> {
        self.channel.as_mut().map(|c| c.seal(payload_flags, body))
    }

    /// A MESSAGE command's body opened (see `Channel::open`).
    pub fn open(&mut self, body: &[u8]) -> Result<(u8, Bytes), CurveError> {
        self.channel.as_mut().ok_or(CurveError::NotAMessage)?.open(body)
    }
}
