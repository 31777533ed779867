//! Golden CURVE transcripts: a whole conversation (greetings, HELLO, WELCOME, INITIATE, READY,
//! one MESSAGE each way) between sessions whose randomness is seeded replays byte for byte.
//! The bytes are in `tests/vectors/curve_to_server.bin` and `curve_to_client.bin`; ezarch's
//! tests check that its libsodium provider, given the same randomness, writes the same bytes,
//! and the CURVE fuzz targets start from them. `ZMTP_WRITE_VECTORS=1` rewrites them (only when
//! the protocol's bytes are meant to change).

use zmtp::curve::rustcrypto::RustCrypto;
use zmtp::curve::transcript::{record, CLIENT_SEED, SERVER_SEED};
use zmtp::curve::{provider, KeyPair};

const TO_SERVER: &[u8] = include_bytes!("vectors/curve_to_server.bin");
const TO_CLIENT: &[u8] = include_bytes!("vectors/curve_to_client.bin");

#[test]
fn a_seeded_conversation_replays_the_golden_transcript_byte_for_byte() {
    let server = provider(RustCrypto::seeded(SERVER_SEED));
    let client = provider(RustCrypto::seeded(CLIENT_SEED));
    let transcript = record(&server, &client, std::time::Instant::now())
        .expect("two good peers complete the conversation");
    if std::env::var_os("ZMTP_WRITE_VECTORS").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
        std::fs::write(format!("{dir}/curve_to_server.bin"), &transcript.to_server).unwrap();
        std::fs::write(format!("{dir}/curve_to_client.bin"), &transcript.to_client).unwrap();
        return;
    }
    // greeting 64 + HELLO (2 + 200) + INITIATE (9 + 257 + metadata) + MESSAGE
    assert_eq!(&transcript.to_server[..], TO_SERVER, "the client's bytes changed");
    assert_eq!(&transcript.to_client[..], TO_CLIENT, "the server's bytes changed");
    assert_eq!(TO_SERVER[64..66], [0x04, 200], "a HELLO command follows the greeting");
    assert_eq!(&TO_SERVER[66..72], b"\x05HELLO");
    assert_eq!(&TO_CLIENT[66..74], b"\x07WELCOME");
}

#[test]
fn other_randomness_gives_other_bytes_and_the_same_conversation() {
    let (server, client) = (provider(RustCrypto::seeded(11)), provider(RustCrypto::seeded(12)));
    let transcript = record(&server, &client, std::time::Instant::now())
        .expect("two good peers complete the conversation");
    assert_ne!(transcript.to_server, TO_SERVER);
    // The greeting does not depend on randomness; the HELLO's transient key does.
    assert_eq!(transcript.to_server[..64], TO_SERVER[..64]);
    assert_ne!(transcript.to_server[64..300], TO_SERVER[64..300]);
    // The permanent keys behind the transcripts are fixed.
    let key = KeyPair::from_secret(&*server, zmtp::curve::transcript::SERVER_SECRET);
    assert_eq!(zmtp::z85::encode(key.public()).unwrap().len(), 40);
}
