//! ezarch's CURVE provider (libsodium) against the `rustcrypto` one and RustCrypto's own boxes:
//! the golden transcripts replay byte for byte on libsodium's primitives given the transcripts'
//! randomness, and every box and MESSAGE box matches, at every length from empty past a few
//! keystream blocks and at the benchmarks' sizes.

use std::sync::Arc;

use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::{Aead, KeyInit};
use zmtp::curve::crypto::{random, Boxer, SecretKey};
use zmtp::curve::rustcrypto::RustCrypto;
use zmtp::curve::transcript::{record, CLIENT_SEED, SERVER_SEED};
use zmtp::curve::{CryptoProvider, Provider};
use zmtp::CurveError;

const TO_SERVER: &[u8] = include_bytes!("../zmtp/tests/vectors/curve_to_server.bin");
const TO_CLIENT: &[u8] = include_bytes!("../zmtp/tests/vectors/curve_to_client.bin");

fn sodium() -> Provider {
    ezarch::sodium::provider().expect("libsodium initialises")
}

/// libsodium's primitives with the seeded randomness of the `rustcrypto` provider.
struct SeededSodium {
    sodium: Provider,
    random: RustCrypto,
}

impl CryptoProvider for SeededSodium {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CurveError> {
        self.random.fill_random(out)
    }
    fn x25519_public(&self, secret: &[u8; 32]) -> [u8; 32] {
        self.sodium.x25519_public(secret)
    }
    fn x25519(&self, secret: &[u8; 32], public: &[u8; 32]) -> Option<[u8; 32]> {
        self.sodium.x25519(secret, public)
    }
    fn hsalsa20(&self, key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
        self.sodium.hsalsa20(key, input)
    }
    fn salsa20_xor(&self, key: &[u8; 32], nonce: &[u8; 8], block: u64, data: &mut [u8]) {
        self.sodium.salsa20_xor(key, nonce, block, data)
    }
    fn poly1305(&self, key: &[u8; 32], message: &[u8]) -> [u8; 16] {
        self.sodium.poly1305(key, message)
    }
    fn verify16(&self, a: &[u8; 16], b: &[u8; 16]) -> bool {
        self.sodium.verify16(a, b)
    }
    fn name(&self) -> String {
        format!("{} with seeded randomness", self.sodium.name())
    }
}

fn seeded_sodium(seed: u64) -> Provider {
    Arc::new(SeededSodium { sodium: sodium(), random: RustCrypto::seeded(seed) })
}

#[test]
fn libsodium_replays_the_golden_transcripts_byte_for_byte() {
    assert!(sodium().name().starts_with("libsodium 1."), "{}", sodium().name());
    let transcript =
        record(&seeded_sodium(SERVER_SEED), &seeded_sodium(CLIENT_SEED), std::time::Instant::now())
            .expect("the conversation");
    assert_eq!(&transcript.to_server[..], TO_SERVER);
    assert_eq!(&transcript.to_client[..], TO_CLIENT);
    // And either side on either provider talks to the other.
    let client = zmtp::curve::provider(RustCrypto::seeded(CLIENT_SEED));
    let mixed = record(&seeded_sodium(SERVER_SEED), &client, std::time::Instant::now());
    assert_eq!(mixed.expect("mixed providers").to_server, TO_SERVER);
}

#[test]
fn libsodium_boxes_match_rustcrypto_crypto_box_and_secretbox_at_every_length() {
    let (p, reference) = (sodium(), zmtp::curve::provider(RustCrypto::seeded(7)));
    let lengths = (0..300).chain([1023, 1024, 1025, 8191, 8192, 8193, 65_536, (1 << 20) + 17]);
    for (round, len) in lengths.enumerate() {
        // The symmetric boxes and the MESSAGE path, on both providers, against secretbox (the
        // differential fuzz target's check, at every length).
        let (key, nonce): ([u8; 32], [u8; 24]) = (random(&*p).unwrap(), random(&*p).unwrap());
        let plain: Vec<u8> = (0..len).map(|i| (i * 131 + round) as u8).collect();
        let data = [&key[..], &nonce[..], &plain[..]].concat();
        zmtp::fuzz::curve_box(&data, &p, |key: &[u8; 32], nonce: &[u8; 24], plain: &[u8]| {
            let reference = crypto_secretbox::XSalsa20Poly1305::new(GenericArray::from_slice(key));
            reference.encrypt(GenericArray::from_slice(nonce), plain).unwrap_or_default()
        });
        // The key exchange: libsodium's X25519 against RustCrypto's, and the precomputed box
        // against crypto_box.
        let (ours, theirs): ([u8; 32], [u8; 32]) = (random(&*p).unwrap(), random(&*p).unwrap());
        let their_public = p.x25519_public(&theirs);
        assert_eq!(their_public, reference.x25519_public(&theirs), "X25519 base, round {round}");
        assert_eq!(p.x25519(&ours, &their_public), reference.x25519(&ours, &their_public));
        let expected = crypto_box::SalsaBox::new(
            &crypto_box::PublicKey::from(their_public),
            &crypto_box::SecretKey::from(ours),
        )
        .encrypt(GenericArray::from_slice(&nonce), &plain[..])
        .unwrap();
        let mut sealed = Vec::new();
        Boxer::new(&p, &their_public, &SecretKey::from_bytes(ours)).unwrap().seal_into(
            &nonce,
            &plain,
            &mut sealed,
        );
        assert!(sealed == expected, "crypto_box on libsodium, length {len}");
    }
}

#[test]
fn libsodium_refuses_low_order_keys_and_compares_tags_exactly() {
    let p = sodium();
    let secret: [u8; 32] = random(&*p).unwrap();
    assert_eq!(p.x25519(&secret, &[0; 32]), None, "the all-zero point");
    let tag: [u8; 16] = random(&*p).unwrap();
    assert!(p.verify16(&tag, &tag));
    for at in 0..16 {
        let mut other = tag;
        other[at] ^= 1;
        assert!(!p.verify16(&tag, &other), "a difference at byte {at}");
    }
}
