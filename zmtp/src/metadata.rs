//! READY metadata: the property list (`Socket-Type`, `Identity`, `X-*`, ...).
//!
//! RFC 23: `metadata = *property`, `property = name value`, `name = OCTET 1*255name-char`,
//! `value = 4OCTET *OCTET`. Names are case-insensitive when read; we write the canonical case
//! libzmq expects (`Socket-Type`, `Identity`), since libzmq matches those names exactly.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CommandError;

/// The property naming the sender's socket type.
pub const SOCKET_TYPE: &str = "Socket-Type";
/// The property carrying the sender's identity (sent by REQ, DEALER and ROUTER).
pub const IDENTITY: &str = "Identity";

/// Properties in the order received. On duplicates the last one wins, as in libzmq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    properties: Vec<(Bytes, Bytes)>,
}

impl Metadata {
    /// An empty property list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a property. Names longer than 255 bytes are cut to 255 when encoded.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.properties.push((name.into(), value.into()));
    }

    /// The value of `name`, compared case-insensitively; the last of duplicates wins.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.properties.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every property as (name, value), in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.properties.iter().map(|(n, v)| (n, v))
    }

    /// How many properties there are, duplicates included.
    pub fn len(&self) -> usize {
        self.properties.len()
    }

    /// True when there are no properties.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }

    /// Parses a property list, refusing truncation and more than `max_size` bytes in total.
    pub fn parse(data: &Bytes, max_size: usize) -> Result<Self, CommandError> {
        if data.len() > max_size {
            return Err(CommandError::MetadataTooLarge { size: data.len(), limit: max_size });
        }
        let mut properties = Vec::new();
        let mut rest = &data[..];
        while let Some((&name_len, after)) = rest.split_first() {
            let name_len = usize::from(name_len);
            if name_len == 0 {
                return Err(CommandError::EmptyPropertyName);
            }
            let Some((name, after)) = split_checked(after, name_len) else {
                return Err(CommandError::TruncatedPropertyName { name_len, available: after.len() });
            };
            let Some((len_bytes, after)) = split_checked(after, 4) else {
                return Err(CommandError::TruncatedPropertyValue { value_len: 0, available: after.len() });
            };
            let value_len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
            let Some((value, after)) = usize::try_from(value_len).ok().and_then(|n| split_checked(after, n))
            else {
                return Err(CommandError::TruncatedPropertyValue {
                    value_len: u64::from(value_len),
                    available: after.len(),
                });
            };
            properties.push((data.slice_ref(name), data.slice_ref(value)));
            rest = after;
        }
        Ok(Self { properties })
    }

    /// How many bytes `encode` writes.
    pub fn encoded_len(&self) -> usize {
        self.properties.iter().map(|(n, v)| 1 + n.len().min(255) + 4 + v.len()).sum()
    }

    /// Appends the properties in wire form to `out`, names cut to 255 bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        for (name, value) in &self.properties {
            let name = &name[..name.len().min(255)];
            out.put_u8(name.len() as u8);
            out.put_slice(name);
            out.put_u32(value.len() as u32);
            out.put_slice(value);
        }
    }
}

fn split_checked(buf: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (n <= buf.len()).then(|| buf.split_at(n))
}
