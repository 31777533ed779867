//! CURVE (RFC 26) end to end: two sessions back to back, then ezarch against real pyzmq
//! (libzmq) CURVE peers as server and as client, with an allowlist.

mod interop;

use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::Reactor;
use ezarch::socket::{SocketOptions, SocketType};
use ezarch::zmtp::curve::{Authorizer, Curve, KeyPair};
use ezarch::zmtp::z85;
use interop::{bound, drive, echo, free_endpoint, receive_while_peer_runs, spawn_script};

fn z(key: &[u8; 32]) -> String {
    z85::encode(key).unwrap()
}

/// A ROUTER bound with CURVE, admitting only `allowed`.
fn curve_router(
    reactor: &mut Reactor,
    server: &KeyPair,
    allowed: [u8; 32],
) -> (ezarch::reactor::SocketId, String) {
    let authorizer = Authorizer::new(move |key| *key == allowed);
    let provider = ezarch::sodium::provider().unwrap();
    let curve = Some(Curve::Server { keys: server.clone(), authorizer, provider });
    bound(reactor, SocketType::Router, SocketOptions { curve, ..SocketOptions::default() })
}

#[test]
fn pyzmq_curve_clients_are_served_and_strangers_refused() {
    let (server, client) =
        (ezarch::sodium::generate_keys().unwrap(), ezarch::sodium::generate_keys().unwrap());
    let mut reactor = Reactor::new().unwrap();
    let (router, endpoint) = curve_router(&mut reactor, &server, *client.public());
    let secret = z(&client.secret_bytes());
    let (server_z, client_z) = (z(server.public()), z(client.public()));
    let mut good = spawn_script("curve.py", &["dealer_echo", &endpoint, &server_z, &client_z, &secret]);
    let stranger = ezarch::sodium::generate_keys().unwrap();
    let (stranger_z, stranger_secret) = (z(stranger.public()), z(&stranger.secret_bytes()));
    let mut unknown =
        spawn_script("curve.py", &["refused", &endpoint, &server_z, &stranger_z, &stranger_secret]);
    let mut plain = spawn_script("curve.py", &["refused", &endpoint, "", "", ""]);
    let wrong = z(ezarch::sodium::generate_keys().unwrap().public());
    let mut wrong_server = spawn_script("curve.py", &["refused", &endpoint, &wrong, &client_z, &secret]);
    drive(
        &mut reactor,
        &mut [&mut good, &mut unknown, &mut plain, &mut wrong_server],
        Duration::from_secs(60),
        |r| echo(r, router),
    );
    for peer in [&good, &unknown, &plain, &wrong_server] {
        peer.ok_line();
    }
}

#[test]
fn ezarch_as_a_curve_client_of_a_pyzmq_router() {
    let server = ezarch::sodium::generate_keys().unwrap();
    let endpoint = free_endpoint();
    let mut peer = spawn_script("curve.py", &["router_echo", &endpoint, &z(&server.secret_bytes()), "3"]);
    let mut reactor = Reactor::new().unwrap();
    let provider = ezarch::sodium::provider().unwrap();
    let curve = Some(Curve::Client {
        keys: ezarch::sodium::generate_keys().unwrap(),
        server: *server.public(),
        provider,
    });
    let dealer =
        reactor.socket(SocketType::Dealer, SocketOptions { curve, ..SocketOptions::default() }).unwrap();
    reactor.connect(dealer, &endpoint).unwrap();
    let sizes = [0usize, 300, 2 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        reactor.send(dealer, vec![Bytes::from(format!("m{i}")), Bytes::from(vec![i as u8; size])]).unwrap();
    }
    let got = receive_while_peer_runs(&mut reactor, dealer, &mut peer, sizes.len(), Duration::from_secs(10));
    peer.ok_line();
    let lens: Vec<usize> = got.iter().map(|m| m[1].len()).collect();
    assert_eq!(lens, sizes);
    assert!(got.iter().enumerate().all(|(i, m)| m[1].iter().all(|&b| b == i as u8)));
}
