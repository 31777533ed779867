//! Sockets through the reactor's public API: peers joined in memory behave as connected peers,
//! and every documented endpoint form carries messages over loopback TCP. The socket rules
//! themselves (routing, round-robin, fair queueing, high-water marks, subscriptions) are unit
//! tests beside their code in `src/socket/`.

use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::{PeerEvent, Reactor};
use ezarch::socket::{SocketOptions, SocketType};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn inproc_router_dealer_and_pub_sub_behave_as_peers() {
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { identity: b("broker-1"), ..SocketOptions::default() };
    let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    let router = reactor.socket(SocketType::Router, options).unwrap();
    reactor.send(dealer, vec![b("queued before the link")]).unwrap();
    reactor.connect_inproc(dealer, router).unwrap();
    let body = Bytes::from(vec![7u8; 1 << 20]);
    reactor.send(dealer, vec![b("big"), body.clone()]).unwrap();
    let mut got = Vec::new();
    reactor
        .run_until(Duration::from_secs(2), |r| {
            got.extend(std::iter::from_fn(|| r.recv(router)));
            got.len() == 2
        })
        .unwrap();
    assert_eq!(got[0][1], b("queued before the link"));
    assert_eq!(got[1][2].as_ptr(), body.as_ptr(), "in-process delivery copied the payload");
    let dealer_id = got[0][0].clone();
    reactor.send(router, vec![dealer_id, b("reply")]).unwrap();
    assert!(reactor.run_until(Duration::from_secs(2), |r| r.recv(dealer) == Some(vec![b("reply")])).unwrap());

    let publisher = reactor.socket(SocketType::Pub, SocketOptions::default()).unwrap();
    let subscriber = reactor.socket(SocketType::Sub, SocketOptions::default()).unwrap();
    reactor.subscribe(subscriber, b"news").unwrap();
    reactor.connect_inproc(subscriber, publisher).unwrap();
    reactor.send(publisher, vec![b("sports")]).unwrap();
    reactor.send(publisher, vec![b("news"), b("today")]).unwrap();
    let mut received = Vec::new();
    reactor
        .run_until(Duration::from_millis(300), |r| {
            received.extend(std::iter::from_fn(|| r.recv(subscriber)));
            false
        })
        .unwrap();
    assert_eq!(received, vec![vec![b("news"), b("today")]]);
    let events: Vec<PeerEvent> = std::iter::from_fn(|| reactor.poll_peer_event()).collect();
    assert_eq!(events.len(), 4);
}

#[test]
fn endpoints_in_every_documented_form_carry_messages() {
    use ezarch::reactor::endpoint::{resolve, EndpointError};
    let mut reactor = Reactor::new().unwrap();
    for (bind, host) in
        [("tcp://127.0.0.1:0", "127.0.0.1"), ("tcp://*:0", "localhost"), ("tcp://[::1]:0", "[::1]")]
    {
        let router = reactor.socket(SocketType::Router, SocketOptions::default()).unwrap();
        let port = reactor.bind(router, bind).unwrap().port();
        let dealer = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
        reactor.connect(dealer, &format!("tcp://{host}:{port}")).unwrap();
        reactor.send(dealer, vec![b(bind)]).unwrap();
        let mut got = None;
        reactor
            .run_until(Duration::from_secs(5), |r| {
                got = r.recv(router);
                got.is_some()
            })
            .unwrap();
        assert_eq!(got.map(|m| m[1].clone()), Some(b(bind)), "{bind} via {host}");
    }
    assert!(matches!(resolve("ipc:///tmp/x"), Err(EndpointError::UnsupportedTransport(_))));
    assert!(matches!(resolve("tcp://127.0.0.1"), Err(EndpointError::BadPort(_))));
    assert!(matches!(resolve("tcp://127.0.0.1:99999"), Err(EndpointError::BadPort(_))));
}
