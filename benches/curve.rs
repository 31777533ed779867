//! CURVE MESSAGE cost: one frame sealed by one side of an established channel and opened by the
//! other, for 16 B, 1 KiB, 64 KiB and 1 MiB bodies, on ezarch's provider (libsodium) and on the
//! `rustcrypto` test provider. `benches/libsodium_box.c` times libsodium's own `crypto_box`
//! (what libzmq, and so pyzmq, calls per message) for the comparison in benches/README.md.
//!
//! Run: `cargo bench --bench curve`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zmtp::curve::handshake::{ClientHandshake, ServerHandshake, Step};
use zmtp::curve::{Authorizer, Channel, KeyPair, Provider};
use zmtp::Metadata;

/// Both ends of a channel on `p`, after a real handshake.
fn channels(p: &Provider) -> (Channel, Channel) {
    let (server_keys, client_keys) = (KeyPair::generate(&**p).unwrap(), KeyPair::generate(&**p).unwrap());
    let mut server = ServerHandshake::new(p, server_keys.clone(), Authorizer::any(), 1024);
    let ours = Metadata::default();
    let (mut client, hello) = ClientHandshake::start(p, client_keys, *server_keys.public(), 1024).unwrap();
    let step = |s: Result<Step, zmtp::Error>| s.expect("a handshake between two good peers");
    let Step::Send(welcome) = step(server.on_command(&hello, &ours)) else { panic!("no WELCOME") };
    let Step::Send(initiate) = step(client.on_command(&welcome, &ours)) else { panic!("no INITIATE") };
    let Step::Done { reply: Some(ready), established: server_side } =
        step(server.on_command(&initiate, &ours))
    else {
        panic!("no READY")
    };
    let Step::Done { established: client_side, .. } = step(client.on_command(&ready, &ours)) else {
        panic!("not done")
    };
    (client_side.channel, server_side.channel)
}

fn bench_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("curve_message");
    let providers: [(&str, Provider); 2] = [
        ("libsodium", ezarch::sodium::provider().expect("libsodium initialises")),
        ("rustcrypto", zmtp::curve::provider(zmtp::curve::rustcrypto::RustCrypto::seeded(1))),
    ];
    for ((name, p), (size, label)) in providers.iter().flat_map(|p| {
        [(16usize, "16B"), (1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")].map(|s| (p, s))
    }) {
        let (mut client, mut server) = channels(p);
        let body = vec![0xA5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new(format!("seal_and_open/{name}"), label), |b| {
            b.iter(|| {
                let frame = client.seal(0, &body);
                // Skip the frame header (2 bytes short, 9 long) to the command body.
                let header = if frame[0] & 0x02 == 0 { 2 } else { 9 };
                std::hint::black_box(server.open(&frame[header..]).expect("a good MESSAGE"));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_message);
criterion_main!(benches);
