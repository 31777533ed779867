//! Z85 (RFC 32/Z85): binary as printable text, 4 bytes to 5 characters. CURVE keys are written
//! this way (40 characters for 32 bytes), in settings files and by `zmq.curve_keypair()`.

/// The 85 characters, in digit order.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why text is not Z85.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Z85Error {
    /// Z85 text comes in groups of 5 characters.
    Length(usize),
    /// A character outside the alphabet, at this offset.
    Character(usize),
    /// A group of 5 characters whose value does not fit 4 bytes, at this offset.
    Overflow(usize),
}

impl std::fmt::Display for Z85Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Z85Error::Length(n) => write!(f, "{n} characters: Z85 comes in groups of 5"),
            Z85Error::Character(at) => write!(f, "character {at} is not a Z85 character"),
            Z85Error::Overflow(at) => write!(f, "the group at character {at} is too large for 4 bytes"),
        }
    }
}

impl std::error::Error for Z85Error {}

/// `data` as Z85 text; `None` unless its length is a multiple of 4.
pub fn encode(data: &[u8]) -> Option<String> {
    if !data.len().is_multiple_of(4) {
        return None;
    }
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
    }
    Some(out)
}

/// The bytes Z85 `text` stands for.
pub fn decode(text: &str) -> Result<Vec<u8>, Z85Error> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(5) {
        return Err(Z85Error::Length(text.len()));
    }
    let mut out = Vec::with_capacity(text.len() / 5 * 4);
    for (group, chunk) in text.chunks_exact(5).enumerate() {
        let mut value: u64 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let digit = ALPHABET.iter().position(|&a| a == c).ok_or(Z85Error::Character(group * 5 + i))?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow(group * 5))?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

/// A 32-byte key from its 40-character Z85 text.
pub fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    if text.len() != 40 {
        return Err(Z85Error::Length(text.len()));
    }
    let bytes = decode(text)?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_32_test_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&data).as_deref(), Some("HelloWorld"));
        assert_eq!(decode("HelloWorld").unwrap(), data);
    }

    #[test]
    fn keys_round_trip_and_bad_text_is_named() {
        let key: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let text = encode(&key).unwrap();
        assert_eq!(text.len(), 40);
        assert_eq!(decode_key(&text).unwrap().to_vec(), key);
        assert_eq!(decode_key("short"), Err(Z85Error::Length(5)));
        assert_eq!(decode("Hell\""), Err(Z85Error::Character(4)));
        assert_eq!(decode("#####"), Err(Z85Error::Overflow(0)));
        assert_eq!(encode(&[1, 2, 3]), None);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
