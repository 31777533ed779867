//! ZMTP commands: READY, ERROR, SUBSCRIBE, CANCEL, PING, PONG, and any other name kept as unknown.
//!
//! RFC 23 §2.5: `command-body = command-name command-data`, `command-name = OCTET 1*255
//! command-name-char`. Every length is checked against what is left before a slice is taken.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::CommandError;
use crate::frame::{encode_header, flags};
use crate::metadata::Metadata;

/// RFC 37: "the context ... up to 16 octets". Longer contexts are truncated, as libzmq does.
pub const MAX_PING_CONTEXT: usize = 16;
/// libzmq#4226: a TTL above 655 deciseconds overflows libzmq's timer arithmetic. Our heartbeat
/// never sends more (`heartbeat::ttl_to_deciseconds`); `Command::encode` itself writes what it holds.
pub const MAX_PING_TTL_DECISECONDS: u16 = 655;

/// A parsed command. Payloads are views of the received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// READY: the sender's properties (`Socket-Type`, `Identity`, ...).
    Ready(Metadata),
    /// ERROR: the sender refuses the connection and closes it.
    Error {
        /// Why, in at most 255 bytes (longer reasons are cut when encoded).
        reason: Bytes,
    },
    /// SUBSCRIBE (ZMTP 3.1): the sender subscribes to `topic`.
    Subscribe {
        /// The topic: the command's whole data.
        topic: Bytes,
    },
    /// CANCEL (ZMTP 3.1): the sender drops its subscription to `topic`.
    Cancel {
        /// The topic: the command's whole data.
        topic: Bytes,
    },
    /// PING (RFC 37): the sender asks for a PONG.
    Ping {
        /// How long the receiver may go without traffic before dropping the sender, in tenths of
        /// a second; 0 for no limit.
        ttl_deciseconds: u16,
        /// Bytes for the PONG to echo, at most `MAX_PING_CONTEXT` (longer contexts are truncated).
        context: Bytes,
    },
    /// PONG (RFC 37): the answer to a PING.
    Pong {
        /// The PING's context, echoed (at most `MAX_PING_CONTEXT` bytes).
        context: Bytes,
    },
    /// Any other name. libzmq silently drops these after the handshake; so do we.
    Unknown {
        /// The command name as received.
        name: Bytes,
        /// The bytes after the name.
        data: Bytes,
    },
}

impl Command {
    /// Parses a command frame body. `max_metadata` caps the summed READY properties.
    pub fn parse(mut body: Bytes, max_metadata: usize) -> Result<Self, CommandError> {
        let name_len = usize::from(*body.first().ok_or(CommandError::Empty)?);
        let available = body.len() - 1;
        if name_len > available {
            return Err(CommandError::TruncatedName { name_len, available });
        }
        body.advance(1);
        let name = body.split_to(name_len);
        let data = body;
        Ok(match &name[..] {
            b"READY" => Command::Ready(Metadata::parse(&data, max_metadata)?),
            b"ERROR" => Command::Error { reason: parse_error_reason(data)? },
            b"SUBSCRIBE" => Command::Subscribe { topic: data },
            b"CANCEL" => Command::Cancel { topic: data },
            b"PING" => parse_ping(data)?,
            b"PONG" => Command::Pong { context: data.slice(..data.len().min(MAX_PING_CONTEXT)) },
            _ => Command::Unknown { name, data },
        })
    }

    /// Appends this command as one complete frame (header included) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (name, body_len): (&[u8], usize) = match self {
            Command::Ready(meta) => (b"READY", meta.encoded_len()),
            Command::Error { reason } => (b"ERROR", 1 + reason.len().min(255)),
            Command::Subscribe { topic } => (b"SUBSCRIBE", topic.len()),
            Command::Cancel { topic } => (b"CANCEL", topic.len()),
            Command::Ping { context, .. } => (b"PING", 2 + context.len().min(MAX_PING_CONTEXT)),
            Command::Pong { context } => (b"PONG", context.len().min(MAX_PING_CONTEXT)),
            Command::Unknown { name, data } => (&name[..name.len().min(255)], data.len()),
        };
        encode_header(out, flags::COMMAND, 1 + name.len() + body_len);
        out.put_u8(name.len() as u8);
        out.put_slice(name);
        match self {
            Command::Ready(meta) => meta.encode(out),
            Command::Error { reason } => {
                let reason = &reason[..reason.len().min(255)];
                out.put_u8(reason.len() as u8);
                out.put_slice(reason);
            }
            Command::Subscribe { topic } | Command::Cancel { topic } => out.put_slice(topic),
            Command::Ping { ttl_deciseconds, context } => {
                out.put_u16(*ttl_deciseconds);
                out.put_slice(&context[..context.len().min(MAX_PING_CONTEXT)]);
            }
            Command::Pong { context } => out.put_slice(&context[..context.len().min(MAX_PING_CONTEXT)]),
            Command::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// RFC 23: `error = command-size %d5 "ERROR" error-reason`, `error-reason = OCTET 0*255VCHAR`.
fn parse_error_reason(mut data: Bytes) -> Result<Bytes, CommandError> {
    let Some(&len) = data.first() else {
        return Err(CommandError::TruncatedError { reason_len: 0, available: 0 });
    };
    let reason_len = usize::from(len);
    let available = data.len() - 1;
    if reason_len > available {
        return Err(CommandError::TruncatedError { reason_len, available });
    }
    data.advance(1);
    Ok(data.split_to(reason_len))
}

/// RFC 37: `ping = command-size %d4 "PING" ping-ttl ping-context`, `ping-ttl = 2OCTET`.
fn parse_ping(mut data: Bytes) -> Result<Command, CommandError> {
    if data.len() < 2 {
        return Err(CommandError::TruncatedPing { available: data.len() });
    }
    let ttl_deciseconds = data.get_u16();
    data.truncate(MAX_PING_CONTEXT);
    Ok(Command::Ping { ttl_deciseconds, context: data })
}
