//! `zmtp`: ZeroMQ's wire protocol (ZMTP 3.1, RFC 23 and RFC 37) as a pure state machine over bytes.
//!
//! No sockets, no clock, nothing outside safe Rust (`forbid(unsafe_code)`), and no cipher of
//! its own: under the `curve` feature every primitive comes from the caller's
//! `curve::CryptoProvider`. A connection passes through these
//! stages:
//!
//! 1. **Greeting** (`greeting`): both sides send 64 bytes at once; we advertise 3.1 and NULL and
//!    accept any major >= 3.
//! 2. **NULL handshake** (`session`, `command`, `metadata`): each side sends READY with its
//!    `Socket-Type` (and `Identity`); incompatible pairs are refused (`socket_type`).
//! 3. **Traffic** (`frame`, `encoder`): messages of MORE-linked frames, plus SUBSCRIBE, CANCEL,
//!    PING and PONG commands; heartbeat deadlines in `heartbeat`.
//!
//! `Session` ties them together: `handle_input(bytes, now)` -> `poll_event()`; `send(frames)` ->
//! `encoder()` chunks for a vectored write; `poll_timeout()` / `handle_timeout(now)`.
//! Every length read off the wire is checked against `Limits` before anything is allocated, and
//! every failure is a typed `Error` that closes only the offending connection.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
#[cfg(feature = "curve")]
pub mod curve;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod fuzz;
pub mod greeting;
pub mod heartbeat;
pub mod metadata;
pub mod session;
pub mod socket_type;
pub mod z85;

pub use command::Command;
pub use encoder::Encoder;
pub use error::{CommandError, CurveError, Error, FrameError, GreetingError, NotReady};
pub use frame::{Frame, FrameDecoder, Limits};
pub use greeting::{Greeting, GreetingReader, Mechanism};
pub use heartbeat::{ttl_to_deciseconds, Heartbeat};
pub use metadata::Metadata;
pub use session::{Config, Event, Message, PeerInfo, Session};
pub use socket_type::SocketType;
