//! zmtp's NaCl boxes, arranged from a provider's primitives, against NaCl's own test vector and
//! RustCrypto's `crypto_box` and `crypto_secretbox`, byte for byte, on the `rustcrypto`
//! provider. (ezarch's tests run the same comparisons on its libsodium provider.)

use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::{Aead, KeyInit};
use zmtp::curve::crypto::{
    long_nonce, random, short_nonce, Boxer, CookieBox, CounterBox, NaclBox, SecretKey, TAG,
};
use zmtp::curve::rustcrypto::RustCrypto;
use zmtp::curve::{provider, Provider};

fn seeded(seed: u64) -> Provider {
    provider(RustCrypto::seeded(seed))
}

/// NaCl's own `crypto_box` test vector (tests/box.c in NaCl, and libsodium's box test): Alice's
/// secret key, Bob's public key, the nonce, and the first bytes of the box.
#[test]
fn a_box_matches_nacl_byte_for_byte() {
    let alice_secret = [
        0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45, 0xdf,
        0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
    ];
    let bob_public = [
        0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35, 0x37, 0x3f,
        0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88, 0x2b, 0x4f,
    ];
    let nonce = [
        0x69, 0x69, 0x6e, 0xe9, 0x55, 0xb6, 0x2b, 0x73, 0xcd, 0x62, 0xbd, 0xa8, 0x75, 0xfc, 0x73, 0xd6, 0x82,
        0x19, 0xe0, 0x03, 0x6b, 0x7a, 0x0b, 0x37,
    ];
    let message = [
        0xbe, 0x07, 0x5f, 0xc5, 0x3c, 0x81, 0xf2, 0xd5, 0xcf, 0x14, 0x13, 0x16, 0xeb, 0xeb, 0x0c, 0x7b, 0x52,
        0x28, 0xc5, 0x2a, 0x4c, 0x62, 0xcb, 0xd4, 0x4b, 0x66, 0x84, 0x9b, 0x64, 0x24, 0x4f, 0xfc,
    ];
    let p = seeded(1);
    let boxer = Boxer::new(&p, &bob_public, &SecretKey::from_bytes(alice_secret)).unwrap();
    let mut out = Vec::new();
    boxer.seal_into(&nonce, &message, &mut out);
    // The ciphertext after the 16-byte tag, as NaCl prints it: the shared key, the nonce and
    // the stream match. (NaCl's tag covers its whole 131-byte message, not this prefix.)
    assert_eq!(out.len(), TAG + 32);
    assert_eq!(out[TAG..TAG + 8], [0x8e, 0x99, 0x3b, 0x9f, 0x48, 0x68, 0x12, 0x73]);
}

#[test]
fn a_box_opens_only_with_its_keys_and_nonce() {
    let p = seeded(2);
    let (a, b) = (SecretKey::from_bytes(random(&*p).unwrap()), SecretKey::from_bytes(random(&*p).unwrap()));
    let to_b = Boxer::new(&p, &p.x25519_public(b.bytes()), &a).unwrap();
    let from_a = Boxer::new(&p, &p.x25519_public(a.bytes()), &b).unwrap();
    let nonce = short_nonce(b"CurveZMQMESSAGEC", 7);
    let mut sealed = Vec::new();
    to_b.seal_into(&nonce, b"hello", &mut sealed);
    assert_eq!(sealed.len(), 5 + TAG);
    assert_eq!(from_a.open(&nonce, &sealed).as_deref().map(|v| &v[..]), Some(&b"hello"[..]));
    assert!(from_a.open(&short_nonce(b"CurveZMQMESSAGEC", 8), &sealed).is_none());
    let mut bad_tag = sealed.clone();
    bad_tag[3] ^= 0x80;
    assert!(from_a.open(&nonce, &bad_tag).is_none());
    sealed[TAG] ^= 1;
    assert!(from_a.open(&nonce, &sealed).is_none());
    assert!(from_a.open(&nonce, &[0u8; 3]).is_none(), "shorter than a tag");
    let cookie = CookieBox::with_key(&p, &random(&*p).unwrap());
    let long: [u8; 16] = random(&*p).unwrap();
    let mut sealed = Vec::new();
    cookie.seal_into(&long_nonce(b"COOKIE--", &long), b"secret", &mut sealed);
    let opened = cookie.open(&long_nonce(b"COOKIE--", &long), &sealed);
    assert_eq!(opened.as_deref().map(|v| &v[..]), Some(&b"secret"[..]));
}

/// Every length from empty to past a keystream block, and the sizes the benchmarks use: the
/// boxes are RustCrypto's `crypto_box` and `crypto_secretbox`, byte for byte, both ways.
#[test]
fn boxes_match_rustcrypto_crypto_box_and_secretbox() {
    let p = seeded(3);
    let lengths = (0..300).chain([1023, 1024, 1025, 8191, 8192, 8193, 65_536, (1 << 20) + 17]);
    for (round, len) in lengths.enumerate() {
        let (ours, theirs): ([u8; 32], [u8; 32]) = (random(&*p).unwrap(), random(&*p).unwrap());
        let nonce: [u8; 24] = random(&*p).unwrap();
        let plain: Vec<u8> = (0..len).map(|i| (i * 131 + round) as u8).collect();
        let their_public = p.x25519_public(&theirs);
        let reference = crypto_box::SalsaBox::new(
            &crypto_box::PublicKey::from(their_public),
            &crypto_box::SecretKey::from(ours),
        );
        let expected = reference.encrypt(GenericArray::from_slice(&nonce), &plain[..]).unwrap();
        let boxer = Boxer::new(&p, &their_public, &SecretKey::from_bytes(ours)).unwrap();
        let mut sealed = Vec::new();
        boxer.seal_into(&nonce, &plain, &mut sealed);
        assert!(sealed == expected, "crypto_box, length {len}");
        assert_eq!(
            boxer.open(&nonce, &expected).as_deref().map(|v| &v[..]),
            Some(&plain[..]),
            "open, length {len}"
        );
        let symmetric = crypto_secretbox::XSalsa20Poly1305::new(GenericArray::from_slice(&ours));
        let expected = symmetric.encrypt(GenericArray::from_slice(&nonce), &plain[..]).unwrap();
        let mut sealed = Vec::new();
        CookieBox::with_key(&p, &ours).seal_into(&nonce, &plain, &mut sealed);
        assert!(sealed == expected, "secretbox, length {len}");
    }
}

#[test]
fn counter_boxes_match_the_plain_box_in_any_counter_order() {
    let p = seeded(4);
    let shared = NaclBox::with_key(&p, &random(&*p).unwrap());
    let prefix = b"CurveZMQMESSAGEC";
    let mut counter_box = CounterBox::new(&shared, prefix);
    for counter in [1u64, 2, 3, 9, 10, 4, 100, 107, 108, 5, u64::MAX - 1, u64::MAX] {
        let plain: Vec<u8> = (0..counter % 300 + 1).map(|i| i as u8).collect();
        let mut expected = Vec::new();
        shared.seal_into(&short_nonce(prefix, counter), &plain, &mut expected);
        let mut sealed = vec![0u8; TAG];
        sealed.extend_from_slice(&plain);
        counter_box.seal_in_place(counter, &mut sealed);
        assert_eq!(sealed, expected, "counter {counter}");
        let mut text = sealed[TAG..].to_vec();
        assert!(counter_box.open_in_place(counter, &sealed[..TAG], &mut text), "counter {counter}");
        assert_eq!(text, plain);
        let mut text = sealed[TAG..].to_vec();
        assert!(!counter_box.open_in_place(counter.wrapping_add(1), &sealed[..TAG], &mut text));
    }
}

#[test]
fn a_low_order_public_key_makes_no_box() {
    let p = seeded(5);
    let ours = SecretKey::from_bytes(random(&*p).unwrap());
    // The all-zero point, and one of order 8: X25519 with them is all zeros whatever the secret.
    let order_8 = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda,
        0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ];
    assert!(NaclBox::new(&p, &[0; 32], &ours).is_none());
    assert!(NaclBox::new(&p, &order_8, &ours).is_none());
}

#[test]
fn public_keys_match_crypto_box() {
    let p = seeded(6);
    let secret: [u8; 32] = random(&*p).unwrap();
    let theirs = crypto_box::SecretKey::from(secret).public_key();
    assert_eq!(&p.x25519_public(&secret), theirs.as_bytes());
}
