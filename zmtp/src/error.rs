//! Typed errors, scoped by blast radius.
//!
//! Every error here closes exactly one connection: the one whose bytes caused it. Nothing in this
//! crate returns `io::Error` or a string error; callers match on variants to count and log them.

use core::fmt;

use bytes::Bytes;

use crate::greeting::Mechanism;
use crate::socket_type::SocketType;

/// The 64-byte greeting was not one we can speak.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GreetingError {
    /// Byte 0 must be `0xFF` (RFC 23 §2.3 "signature"). Anything else is not ZMTP 2.0+.
    BadSignature {
        /// The byte received there.
        byte: u8,
    },
    /// Byte 9's low bit is 0: a ZMTP 1.0 peer (RFC 23 "backwards interoperability").
    Zmtp10,
    /// Major version below 3 (ZMTP 2.0 and older). We never downgrade (libzmq#1273).
    UnsupportedVersion {
        /// The peer's major version.
        major: u8,
        /// The peer's minor version (0 when it had not arrived yet).
        minor: u8,
    },
    /// The peer asked for a security mechanism we were not configured for.
    MechanismMismatch {
        /// The mechanism we are configured for.
        ours: Mechanism,
        /// The mechanism the peer's greeting names.
        theirs: Mechanism,
    },
}

/// A frame header broke a rule or a configured limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A data frame declared more bytes than `Limits::max_frame_size`.
    FrameTooLarge {
        /// The frame's size.
        declared: u64,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The frames of one message would add up to more than `Limits::max_message_size`.
    MessageTooLarge {
        /// Bytes of the message so far, this frame included.
        declared: u64,
        /// The limit it exceeds.
        limit: usize,
    },
    /// One message would hold more frames than `Limits::max_frames`.
    TooManyFrames {
        /// The most frames one message may hold.
        limit: usize,
    },
    /// A command frame declared more bytes than `Limits::max_command_size` (during the
    /// handshake: more than a READY with the most metadata allowed).
    CommandTooLarge {
        /// The command frame's size.
        declared: u64,
        /// The limit it exceeds.
        limit: usize,
    },
    /// A data frame arrived before the handshake completed (only READY or ERROR may).
    MessageBeforeHandshake {
        /// The size the data frame's header declared.
        declared: u64,
    },
}

/// A command body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The command frame was empty: no name-length byte.
    Empty,
    /// The name length byte points past the end of the frame.
    TruncatedName {
        /// The name length the command declared.
        name_len: usize,
        /// Bytes left after the length byte.
        available: usize,
    },
    /// A READY property name ran past the end of the command.
    TruncatedPropertyName {
        /// The name length the property declared.
        name_len: usize,
        /// Bytes left after the length byte.
        available: usize,
    },
    /// A READY property value length was missing or ran past the end of the command.
    TruncatedPropertyValue {
        /// The value length the property declared (0 when the 4-byte length itself was cut short).
        value_len: u64,
        /// Bytes left where the length, or the value after it, should be.
        available: usize,
    },
    /// A READY property had an empty name (RFC 23: name is 1..255 octets).
    EmptyPropertyName,
    /// The READY metadata as a whole was larger than `Limits::max_metadata_size`.
    MetadataTooLarge {
        /// The metadata's size in bytes.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// PING without its 2-byte TTL.
    TruncatedPing {
        /// Bytes of data the PING had (fewer than 2).
        available: usize,
    },
    /// ERROR whose reason length points past the end of the command.
    TruncatedError {
        /// The reason length the ERROR declared (0 when the length byte is missing).
        reason_len: usize,
        /// Bytes left after the length byte.
        available: usize,
    },
}

/// A CURVE (RFC 26) command was refused. The connection closes; for `Unauthorized` the server
/// first sends an ERROR command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CurveError {
    /// A command of the wrong name or size for this point of the handshake.
    Malformed {
        /// The command, or what about it was wrong (such as "HELLO version").
        command: &'static str,
    },
    /// A box that does not open: other keys, altered bytes, or another nonce.
    BadBox {
        /// The command whose box did not open.
        command: &'static str,
    },
    /// A short nonce that did not increase (a replay, or a reordering).
    NonceNotIncreasing {
        /// The short nonce received.
        got: u64,
        /// The peer's previous short nonce.
        last: u64,
    },
    /// The INITIATE's cookie is not the one this connection's WELCOME gave.
    BadCookie,
    /// The INITIATE's vouch does not name this connection's transient key and this server.
    BadVouch,
    /// The client's permanent key is not allowed.
    Unauthorized {
        /// The client's permanent public key.
        key: [u8; 32],
    },
    /// After the handshake, a frame that is not a MESSAGE command.
    NotAMessage,
    /// MESSAGE flags with reserved bits set.
    BadFlags {
        /// The flags octet as received.
        flags: u8,
    },
    /// The operating system's random source failed, so no transient key or nonce could be made.
    NoRandomness,
}

/// Why a session ended. Each is fatal for the one connection only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer's greeting was refused.
    Greeting(GreetingError),
    /// A frame header broke a rule or a configured limit.
    Frame(FrameError),
    /// A command body could not be parsed.
    Command(CommandError),
    /// The first frame after the greeting was not a READY (or ERROR) command.
    ExpectedReady {
        /// What arrived instead.
        got: UnexpectedFrame,
    },
    /// READY carried a `Socket-Type` value that no ZMTP socket type has.
    UnknownSocketType {
        /// The value as received.
        value: Bytes,
    },
    /// READY carried no `Socket-Type` (RFC 23: the sender SHALL specify it).
    MissingSocketType,
    /// The peer's socket type cannot talk to ours (RFC 23 "socket type pairs").
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The peer's socket type.
        theirs: SocketType,
    },
    /// The peer sent an ERROR command; `reason` is what it said.
    PeerError {
        /// The ERROR's reason, as sent.
        reason: Bytes,
    },
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// No traffic arrived within the heartbeat timeout (or the TTL the peer asked for).
    HeartbeatTimeout,
    /// The CURVE mechanism refused a command.
    Curve(CurveError),
}

/// What arrived where READY was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnexpectedFrame {
    /// A data (message) frame.
    Message,
    /// A command other than READY or ERROR.
    Command,
}

/// `Session::send` was called before the handshake completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotReady;

impl From<GreetingError> for Error {
    fn from(e: GreetingError) -> Self {
        Error::Greeting(e)
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}

impl From<CurveError> for Error {
    fn from(e: CurveError) -> Self {
        Error::Curve(e)
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Error::Command(e)
    }
}

impl fmt::Display for GreetingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignature { byte } => write!(f, "not a ZMTP greeting (first byte {byte:#04x})"),
            Self::Zmtp10 => f.write_str("ZMTP 1.0 peer refused"),
            Self::UnsupportedVersion { major, minor } => {
                write!(f, "ZMTP {major}.{minor} refused (need 3.x or later)")
            }
            Self::MechanismMismatch { ours, theirs } => {
                write!(f, "mechanism {theirs} refused (configured for {ours})")
            }
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { declared, limit } => {
                write!(f, "frame of {declared} bytes exceeds the {limit}-byte limit")
            }
            Self::MessageTooLarge { declared, limit } => {
                write!(f, "message of {declared}+ bytes exceeds the {limit}-byte limit")
            }
            Self::TooManyFrames { limit } => write!(f, "message has more than {limit} frames"),
            Self::CommandTooLarge { declared, limit } => {
                write!(f, "command of {declared} bytes exceeds the {limit}-byte limit")
            }
            Self::MessageBeforeHandshake { declared } => {
                write!(f, "a {declared}-byte data frame before the handshake completed")
            }
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty command frame"),
            Self::TruncatedName { name_len, available } => {
                write!(f, "command name of {name_len} bytes, {available} available")
            }
            Self::TruncatedPropertyName { name_len, available } => {
                write!(f, "property name of {name_len} bytes, {available} available")
            }
            Self::TruncatedPropertyValue { value_len, available } => {
                write!(f, "property value of {value_len} bytes, {available} available")
            }
            Self::EmptyPropertyName => f.write_str("empty property name"),
            Self::MetadataTooLarge { size, limit } => {
                write!(f, "metadata of {size} bytes exceeds the {limit}-byte limit")
            }
            Self::TruncatedPing { available } => write!(f, "PING of {available} bytes lacks a TTL"),
            Self::TruncatedError { reason_len, available } => {
                write!(f, "ERROR reason of {reason_len} bytes, {available} available")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Greeting(e) => write!(f, "greeting: {e}"),
            Self::Frame(e) => write!(f, "framing: {e}"),
            Self::Command(e) => write!(f, "command: {e}"),
            Self::ExpectedReady { got } => write!(f, "expected READY, got a {got:?} frame"),
            Self::UnknownSocketType { value } => write!(f, "unknown socket type {value:?}"),
            Self::MissingSocketType => f.write_str("READY without Socket-Type"),
            Self::IncompatibleSocketType { ours, theirs } => {
                write!(f, "peer socket type {theirs} cannot talk to {ours}")
            }
            Self::PeerError { reason } => write!(f, "peer sent ERROR {reason:?}"),
            Self::HandshakeTimeout => f.write_str("handshake timed out"),
            Self::HeartbeatTimeout => f.write_str("heartbeat timed out"),
            Self::Curve(e) => write!(f, "CURVE: {e}"),
        }
    }
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { command } => write!(f, "malformed {command}"),
            Self::BadBox { command } => write!(f, "{command} box does not open (wrong keys or altered)"),
            Self::NonceNotIncreasing { got, last } => write!(f, "short nonce {got} after {last}"),
            Self::BadCookie => f.write_str("INITIATE carries a cookie that is not ours"),
            Self::BadVouch => f.write_str("INITIATE's vouch names another key"),
            Self::Unauthorized { key } => {
                let key = crate::z85::encode(key).unwrap_or_default();
                write!(f, "client key {key} is not allowed")
            }
            Self::NotAMessage => f.write_str("a frame other than MESSAGE after the handshake"),
            Self::BadFlags { flags } => write!(f, "MESSAGE flags {flags:#04x} have reserved bits set"),
            Self::NoRandomness => f.write_str("the operating system's random source failed"),
        }
    }
}

impl std::error::Error for CurveError {}
impl std::error::Error for GreetingError {}
impl std::error::Error for FrameError {}
impl std::error::Error for CommandError {}
impl std::error::Error for Error {}
