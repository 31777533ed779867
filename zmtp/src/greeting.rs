//! The 64-byte ZMTP greeting: layout as named byte ranges, encoding, and an incremental reader.
//!
//! RFC 23: `greeting = signature version mechanism as-server filler`. We send all 64 bytes at once
//! and never wait for the peer's greeting first (libzmq sends its own in 10 + 1 + 53 byte steps and
//! waits for ours). The reader accepts the peer's bytes split at any points, and fails as early as
//! the bytes allow: a ZMTP 1.0 or HTTP peer is refused after byte 0 or 9, not after 64.

use core::fmt;

use crate::error::GreetingError;

/// Length of a ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;

/// The version we advertise: 3.1 (RFC 37), so libzmq >= 4.3.3 sends subscriptions as commands.
pub const OUR_MAJOR: u8 = 3;
/// The minor version we advertise (see `OUR_MAJOR`).
pub const OUR_MINOR: u8 = 1;

/// Byte positions inside the greeting.
pub mod field {
    use core::ops::Range;
    /// `%xFF`.
    pub const SIGNATURE_HEAD: usize = 0;
    /// 8 bytes the RFC calls padding. libzmq puts identity length + 1 here; never checked.
    pub const PADDING: Range<usize> = 1..9;
    /// `%x7F`; a peer with the low bit clear speaks ZMTP 1.0.
    pub const SIGNATURE_TAIL: usize = 9;
    /// The major version.
    pub const MAJOR: usize = 10;
    /// The minor version.
    pub const MINOR: usize = 11;
    /// Mechanism name, NUL padded to 20 bytes.
    pub const MECHANISM: Range<usize> = 12..32;
    /// The as-server octet: 1 from a server, 0 from a client.
    pub const AS_SERVER: usize = 32;
    /// 31 bytes of filler; never checked (libzmq accepts junk here).
    pub const FILLER: Range<usize> = 33..64;
}

/// A security mechanism name from the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// NULL: no security.
    Null,
    /// PLAIN: recognised in a peer's greeting, never spoken here.
    Plain,
    /// CURVE (RFC 26), spoken with the `curve` feature.
    Curve,
    /// Any other 20-byte name, kept verbatim for the error message.
    Other([u8; 20]),
}

impl Mechanism {
    fn from_field(raw: &[u8; 20]) -> Self {
        match Self::name_of(raw) {
            b"NULL" => Self::Null,
            b"PLAIN" => Self::Plain,
            b"CURVE" => Self::Curve,
            _ => Self::Other(*raw),
        }
    }

    /// The name up to the first NUL; but a name with bytes after its NUL padding is "other",
    /// since libzmq compares all 20 bytes.
    fn name_of(raw: &[u8; 20]) -> &[u8] {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if raw[end..].iter().all(|&b| b == 0) {
            &raw[..end]
        } else {
            raw
        }
    }

    fn to_field(self) -> [u8; 20] {
        let name: &[u8] = match self {
            Self::Null => b"NULL",
            Self::Plain => b"PLAIN",
            Self::Curve => b"CURVE",
            Self::Other(raw) => return raw,
        };
        let mut field = [0u8; 20];
        field[..name.len()].copy_from_slice(name);
        field
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Plain => f.write_str("PLAIN"),
            Self::Curve => f.write_str("CURVE"),
            Self::Other(raw) => write!(f, "{:?}", String::from_utf8_lossy(Self::name_of(raw))),
        }
    }
}

/// A parsed greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// The sender's major version.
    pub major: u8,
    /// The sender's minor version.
    pub minor: u8,
    /// The security mechanism the sender speaks.
    pub mechanism: Mechanism,
    /// The as-server octet (any value but 0 reads as true).
    pub as_server: bool,
}

impl Greeting {
    /// The greeting we send: version 3.1, the given mechanism, zero padding and filler.
    pub fn ours(mechanism: Mechanism, as_server: bool) -> Self {
        Self { major: OUR_MAJOR, minor: OUR_MINOR, mechanism, as_server }
    }

    /// The 64 bytes on the wire: signature, version, mechanism and as-server; the rest zero.
    pub fn encode(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[field::SIGNATURE_HEAD] = 0xFF;
        out[field::SIGNATURE_TAIL] = 0x7F;
        out[field::MAJOR] = self.major;
        out[field::MINOR] = self.minor;
        out[field::MECHANISM].copy_from_slice(&self.mechanism.to_field());
        out[field::AS_SERVER] = u8::from(self.as_server);
        out
    }

    /// Parses a complete greeting. Padding and filler are ignored, as libzmq ignores them.
    pub fn parse(raw: &[u8; GREETING_LEN]) -> Result<Self, GreetingError> {
        check_prefix(raw)?;
        let mut mechanism = [0u8; 20];
        mechanism.copy_from_slice(&raw[field::MECHANISM]);
        Ok(Self {
            major: raw[field::MAJOR],
            minor: raw[field::MINOR],
            mechanism: Mechanism::from_field(&mechanism),
            // RFC 23: as-server is a single octet, 0 or 1; libzmq does not check it under NULL.
            as_server: raw[field::AS_SERVER] != 0,
        })
    }

    /// The ZMTP 3 minor version both sides speak: 1 when the peer says 3.1+ or any major above 3.
    pub fn agreed_minor(&self) -> u8 {
        if self.major > OUR_MAJOR {
            OUR_MINOR
        } else {
            self.minor.min(OUR_MINOR)
        }
    }
}

/// Checks whatever prefix of a greeting has arrived, so bad peers fail on their first bytes.
fn check_prefix(seen: &[u8]) -> Result<(), GreetingError> {
    if let Some(&byte) = seen.get(field::SIGNATURE_HEAD) {
        // RFC 23: "signature = %xFF padding %x7F"
        if byte != 0xFF {
            return Err(GreetingError::BadSignature { byte });
        }
    }
    if let Some(&byte) = seen.get(field::SIGNATURE_TAIL) {
        // RFC 23: a peer whose tail octet has the low bit clear speaks ZMTP 1.0.
        if byte & 1 == 0 {
            return Err(GreetingError::Zmtp10);
        }
    }
    if let Some(&major) = seen.get(field::MAJOR) {
        // We accept any major >= 3 and never downgrade (libzmq#1273).
        if major < OUR_MAJOR {
            let minor = seen.get(field::MINOR).copied().unwrap_or(0);
            return Err(GreetingError::UnsupportedVersion { major, minor });
        }
    }
    Ok(())
}

/// Collects a peer greeting from input split at any points.
#[derive(Debug, Clone)]
pub struct GreetingReader {
    buf: [u8; GREETING_LEN],
    filled: usize,
}

impl Default for GreetingReader {
    fn default() -> Self {
        Self { buf: [0; GREETING_LEN], filled: 0 }
    }
}

impl GreetingReader {
    /// Takes as many bytes as the greeting still needs from `input`; returns how many it took and
    /// the greeting once all 64 bytes are in.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Greeting>), GreetingError> {
        let take = input.len().min(GREETING_LEN - self.filled);
        self.buf[self.filled..self.filled + take].copy_from_slice(&input[..take]);
        self.filled += take;
        check_prefix(&self.buf[..self.filled])?;
        if self.filled < GREETING_LEN {
            return Ok((take, None));
        }
        Greeting::parse(&self.buf).map(|g| (take, Some(g)))
    }

    /// Bytes still missing.
    pub fn remaining(&self) -> usize {
        GREETING_LEN - self.filled
    }
}
