//! Socket semantics as plain structs, no network: routing, round-robin, fair queueing,
//! high-water marks, counted subscriptions, and the trie under 100,000 topics and 64 KiB topics.
//! Plus the reactor's in-process transport and the reconnect backoff.

use std::time::Duration;

use bytes::Bytes;
use ezarch::reactor::backoff::Backoff;
use ezarch::reactor::{PeerEvent, Reactor};
use ezarch::socket::{
    Attach, Dealer, Inbound, PeerKey, Publisher, Router, SendError, SocketOptions, SocketType, Trie,
    MAX_SUBSCRIPTION_COST_PER_PEER, MAX_SUBSCRIPTION_COST_PER_SOCKET,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn attached(attach: Attach) -> PeerKey {
    match attach {
        Attach::Attached(key) => key,
        other => panic!("{other:?}"),
    }
}

#[test]
fn router_prepends_identities_routes_by_them_and_drops_unroutable() {
    let mut router = Router::new(&SocketOptions::default());
    let alice = attached(router.attach(b("alice")));
    let anon = attached(router.attach(Bytes::new()));
    let anon_id = router.peers.get(anon).unwrap().identity.clone();
    assert_eq!(anon_id.len(), 5);
    assert_eq!(anon_id[0], 0);
    router.deliver(alice, vec![b("hi")]);
    assert_eq!(router.peers.pop_inbound().unwrap().1, vec![b("alice"), b("hi")]);
    router.send(vec![b("alice"), b("back")]).unwrap();
    assert_eq!(router.peers.pop_outbound(alice), Some(vec![b("back")]));
    router.send(vec![b("nobody"), b("x")]).unwrap();
    assert_eq!(router.stats.dropped_unroutable, 1);
}

#[test]
fn router_accepts_identities_with_a_leading_zero_byte() {
    let mut router = Router::new(&SocketOptions::default());
    let id = Bytes::from_static(b"\x00\x01\x02\x03\x04\x05\x06\x07");
    let key = attached(router.attach(id.clone()));
    assert_eq!(router.peer(&id), Some(key));
}

#[test]
fn router_mandatory_refuses_unroutable_and_full() {
    let options = SocketOptions { router_mandatory: true, send_hwm: 2, ..SocketOptions::default() };
    let mut router = Router::new(&options);
    router.attach(b("peer"));
    assert!(matches!(router.send(vec![b("nobody"), b("x")]), Err(SendError::Unroutable(_))));
    router.send(vec![b("peer"), b("1")]).unwrap();
    router.send(vec![b("peer"), b("2")]).unwrap();
    assert!(matches!(router.send(vec![b("peer"), b("3")]), Err(SendError::WouldBlock(_))));
}

#[test]
fn router_duplicate_identity_policy() {
    let mut keep_first = Router::new(&SocketOptions::default());
    let first = attached(keep_first.attach(b("twin")));
    assert_eq!(keep_first.attach(b("twin")), Attach::Ignored);
    assert_eq!(keep_first.peer(b"twin"), Some(first));

    let mut handover = Router::new(&SocketOptions { router_handover: true, ..SocketOptions::default() });
    let old = attached(handover.attach(b("twin")));
    let Attach::TookOver { key, evicted } = handover.attach(b("twin")) else { panic!() };
    assert_eq!(evicted, old);
    assert_eq!(handover.peer(b"twin"), Some(key));
}

#[test]
fn router_fair_queues_whole_messages_across_peers() {
    let mut router = Router::new(&SocketOptions::default());
    let peers: Vec<PeerKey> = ["a", "b", "c"].iter().map(|id| attached(router.attach(b(id)))).collect();
    for round in 0..3 {
        for &peer in &peers {
            router.deliver(peer, vec![b(&format!("m{round}")), b("tail")]);
        }
    }
    let order: Vec<(Bytes, Bytes)> = std::iter::from_fn(|| router.peers.pop_inbound())
        .map(|(_, m, _)| (m[0].clone(), m[1].clone()))
        .collect();
    let expected: Vec<(Bytes, Bytes)> =
        (0..3).flat_map(|r| ["a", "b", "c"].map(|id| (b(id), b(&format!("m{r}"))))).collect();
    assert_eq!(order, expected);
}

#[test]
fn inbound_hwm_pauses_and_resumes_reading() {
    let options = SocketOptions { recv_hwm: 2, ..SocketOptions::default() };
    let mut router = Router::new(&options);
    let peer = attached(router.attach(b("p")));
    assert_eq!(router.deliver(peer, vec![b("1")]), Inbound::More);
    assert_eq!(router.deliver(peer, vec![b("2")]), Inbound::Full);
    let (_, _, resumed) = router.peers.pop_inbound().unwrap();
    assert!(resumed, "dropping below the HWM must resume reading");
}

#[test]
fn dealer_round_robins_over_peers_with_room_and_queues_without_peers() {
    let mut dealer = Dealer::new(&SocketOptions { send_hwm: 2, ..SocketOptions::default() });
    dealer.send(vec![b("early")]).unwrap();
    let a = dealer.attach(Bytes::new());
    assert_eq!(
        dealer.peers.pop_outbound(a),
        Some(vec![b("early")]),
        "waiting message goes to the first peer"
    );
    let b_ = dealer.attach(Bytes::new());
    for i in 0..4 {
        dealer.send(vec![b(&i.to_string())]).unwrap();
    }
    assert!(matches!(dealer.send(vec![b("full")]), Err(SendError::WouldBlock(_))));
    assert_eq!(dealer.peers.outbound_len(a), 2);
    assert_eq!(dealer.peers.outbound_len(b_), 2);
    assert_eq!(dealer.peers.pop_outbound(a), Some(vec![b("0")]));
    assert_eq!(dealer.peers.pop_outbound(b_), Some(vec![b("1")]));
}

#[test]
fn binding_dealer_discards_a_departed_peers_queue_and_connecting_one_keeps_it() {
    let mut dealer = Dealer::new(&SocketOptions::default());
    let bound_peer = dealer.attach(Bytes::new());
    dealer.send(vec![b("lost")]).unwrap();
    dealer.detach(bound_peer, false);
    assert!(dealer.peers.get(bound_peer).is_none());

    let persistent = dealer.attach_persistent();
    dealer.send(vec![b("kept")]).unwrap();
    dealer.detach(persistent, true);
    assert_eq!(dealer.peers.pop_outbound(persistent), Some(vec![b("kept")]));
}

#[test]
fn a_rerouting_dealer_sends_a_departed_peers_unsent_messages_to_the_others() {
    let mut dealer = Dealer::new(&SocketOptions { dealer_reroute: true, ..SocketOptions::default() });
    let (a, b_) = (dealer.attach(Bytes::new()), dealer.attach(Bytes::new()));
    for i in 0..4 {
        dealer.send(vec![Bytes::from(format!("m{i}"))]).unwrap(); // a gets m0, m2; b m1, m3
    }
    dealer.detach(a, false);
    let at_b: Vec<_> = std::iter::from_fn(|| dealer.peers.pop_outbound(b_)).collect();
    assert_eq!(at_b, vec![vec![b("m1")], vec![b("m3")], vec![b("m0")], vec![b("m2")]]);
    // With no peer left, they wait for the next one.
    dealer.send(vec![b("m4")]).unwrap();
    dealer.detach(b_, false);
    let next = dealer.attach(Bytes::new());
    assert_eq!(dealer.peers.pop_outbound(next), Some(vec![b("m4")]));
}

#[test]
fn publisher_matches_prefixes_counts_subscriptions_and_drops_at_hwm() {
    let mut publisher = Publisher::new(&SocketOptions { send_hwm: 1, ..SocketOptions::default() });
    let a = publisher.peers.insert(Bytes::new(), true);
    let all = publisher.peers.insert(Bytes::new(), true);
    publisher.subscribe(a, b"A");
    publisher.subscribe(a, b"A");
    publisher.subscribe(all, b"");
    publisher.cancel(a, b"A");
    publisher.send(vec![b("AB"), b("part")]);
    publisher.send(vec![b("BA")]);
    assert_eq!(publisher.peers.pop_outbound(a), Some(vec![b("AB"), b("part")]));
    assert_eq!(publisher.peers.pop_outbound(a), None);
    assert_eq!(publisher.peers.pop_outbound(all), Some(vec![b("AB"), b("part")]));
    assert_eq!(publisher.stats.dropped_hwm, 1, "BA hit the full pipe of the subscribe-all peer");
    publisher.cancel(a, b"A");
    publisher.send(vec![b("A")]);
    assert_eq!(publisher.peers.pop_outbound(a), None, "two cancels end two subscriptions");
}

#[test]
fn a_hundred_thousand_subscriptions_and_a_64_kib_topic_come_and_go_without_recursion() {
    let mut trie: Trie<u32> = Trie::new();
    let long_topic = vec![b'x'; 64 << 10];
    assert!(trie.add(&long_topic, 1));
    for i in 0..100_000u32 {
        trie.add(format!("topic/{i}").as_bytes(), 2);
    }
    let mut out = Vec::new();
    let mut message = long_topic.clone();
    message.extend_from_slice(b"more");
    trie.matches(&message, &mut out);
    assert_eq!(out, vec![1]);
    trie.matches(b"topic/99999/x", &mut out);
    assert_eq!(out, vec![2]);
    assert!(trie.node_count() > 100_000);
    for i in 0..100_000u32 {
        assert!(trie.remove(format!("topic/{i}").as_bytes(), 2));
    }
    assert!(trie.remove(&long_topic, 1));
    assert_eq!(trie.node_count(), 1, "every node was freed");
    drop(trie); // dropping a deep trie must not recurse either
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_maximum_and_resets() {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let delays: Vec<Duration> = (0..8).map(|i| backoff.next_delay(i * 7919)).collect();
    let bases = [100u64, 200, 400, 800, 1600, 2000, 2000, 2000];
    for (delay, base) in delays.iter().zip(bases) {
        let base = Duration::from_millis(base);
        assert!(
            *delay >= base && *delay <= (base + base / 2).min(Duration::from_secs(2)),
            "{delay:?} vs {base:?}"
        );
    }
    backoff.reset();
    assert!(backoff.next_delay(0) < Duration::from_millis(150));
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
fn one_peer_cannot_hold_more_than_a_mebibyte_of_subscriptions() {
    let mut publisher = Publisher::new(&SocketOptions::default());
    let peer = publisher.peers.insert(Bytes::new(), true);
    let topic = |i: u8| {
        let mut topic = vec![i; 64 << 10];
        topic[0] = i;
        topic
    };
    for i in 0..20u8 {
        publisher.subscribe(peer, &topic(i));
    }
    // Each 64 KiB topic costs 2 x 64 KiB + overhead: 7 fit in the 1 MiB allowance.
    assert_eq!(publisher.subscription_count(), 7);
    assert_eq!(publisher.stats.subscriptions_refused, 13);
    publisher.subscribe(peer, &topic(0)); // a repeat is only a count
    publisher.cancel(peer, &topic(1));
    publisher.subscribe(peer, &topic(19));
    assert_eq!(publisher.subscription_count(), 7, "a cancel frees room for another topic");
    assert!(publisher.subscription_cost() <= MAX_SUBSCRIPTION_COST_PER_PEER);
    publisher.detach(peer);
    assert_eq!((publisher.subscription_count(), publisher.subscription_cost()), (0, 0));
}

#[test]
fn all_peers_of_a_socket_together_are_bounded_too() {
    let mut publisher = Publisher::new(&SocketOptions::default());
    let peers: Vec<PeerKey> = (0..40).map(|_| publisher.peers.insert(Bytes::new(), true)).collect();
    for (n, &peer) in peers.iter().enumerate() {
        for i in 0..7u32 {
            let mut topic = vec![b'x'; 64 << 10];
            topic[..8].copy_from_slice(&((n as u32) << 8 | i).to_be_bytes().repeat(2));
            publisher.subscribe(peer, &topic);
        }
    }
    assert!(publisher.subscription_cost() <= MAX_SUBSCRIPTION_COST_PER_SOCKET);
    assert!(publisher.subscription_count() < 40 * 7, "{}", publisher.subscription_count());
    assert!(publisher.stats.subscriptions_refused > 0);
}

#[test]
fn queues_are_bounded_in_bytes_as_well_as_messages() {
    let options = SocketOptions { queue_bytes: 1 << 20, ..SocketOptions::default() };
    let big = Bytes::from(vec![0u8; 400 << 10]);
    let mut router = Router::new(&options);
    let peer = attached(router.attach(b("p")));
    assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::More);
    assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::More);
    assert_eq!(router.deliver(peer, vec![big.clone()]), Inbound::Full, "1.2 MiB queued: stop reading");
    let (_, _, resumed) = router.peers.pop_inbound().unwrap();
    assert!(resumed, "back under the byte budget: resume reading");

    let mut dealer = Dealer::new(&options);
    for _ in 0..3 {
        dealer.send(vec![big.clone()]).unwrap(); // no peer yet: waits, within 1 MiB
    }
    assert!(matches!(dealer.send(vec![big.clone()]), Err(SendError::WouldBlock(_))));
    let key = dealer.attach(Bytes::new());
    assert_eq!(dealer.peers.outbound_len(key), 3);
    assert!(
        matches!(dealer.send(vec![big]), Err(SendError::WouldBlock(_))),
        "the peer's queue is full in bytes"
    );
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
