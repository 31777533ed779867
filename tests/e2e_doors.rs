//! The security model door by door (README, "Security model"), tried with real pyzmq (libzmq)
//! CURVE peers against `ezarch up` with `CURVE_PERMISSIONS`, as an attacker holding one
//! admitted key would: a call-only key that takes a worker's identity and announces it on the
//! broker pipe gets nothing, and every broker-side port refuses it; only a `broker` key gets in
//! there, and `ezarch broker` with one serves beside the node's own broker; a worker key cannot
//! take another worker's identity, forge a reply for another worker's request, or use another
//! generation-2 worker's token; a generation-2 worker outside its `serve` list gets no work.

mod interop;

use std::time::Duration;

use ezarch::zmtp::curve::KeyPair;
use interop::keys::{z, CurveNode};
use interop::node::LOG_WAIT;
use interop::wait;

/// The counter at `path` (object keys) in an `ez.stats` answer.
fn stat(stats: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().fold(stats, |v, key| &v[*key]).as_u64().unwrap_or_else(|| panic!("{path:?} in {stats}"))
}

#[test]
fn a_call_only_key_gets_nothing_at_any_door_it_was_not_given() {
    let [client, worker, rogue, broker] = [(); 4].map(|_| ezarch::sodium::generate_keys().unwrap());
    let (keys, rules) = CurveNode::with_rules(&[
        (&client, "call psec ez.stats"),
        (&worker, "serve psec"),
        (&rogue, "call psec"),
        (&broker, "broker"),
    ]);
    let s = keys.settings();
    let node = s.start(&["up", "--set", &rules]);
    let e = |name: &str| s.endpoint(name);
    let mut good =
        keys.peer("named_worker", &e("WORKER_PIPE_PORT_A"), &worker, &["psec-real", "psec", "0", "20"]);
    node.wait_log("joined service psec", 1, LOG_WAIT);
    // The rogue holds a key admitted to call psec, and tries every other door for 6 s while a
    // client's 40 requests are served.
    let (w_a, b_a, i_b, bc, w_b) = (
        e("WORKER_PIPE_PORT_A"),
        e("BROKER_PIPE_PORT_A"),
        e("IN_PIPE_PORT_B"),
        e("BROKER_BROADCAST_PORT"),
        e("WORKER_PIPE_PORT_B"),
    );
    let mut attacker =
        keys.peer_with(&rogue, "rogue", &[&w_a, &b_a, &i_b, &bc, &w_b, "psec-real", "psec", "6"]);
    let mut c = keys.peer("ez_client", &e("IN_PIPE_PORT_A"), &client, &["psec", "40"]);
    wait(&mut [&mut attacker, &mut c], Duration::from_secs(60));
    attacker.ok_line();
    c.ok_line();
    // The same four broker-side ports let a broker's key in.
    let mut probe = keys.peer_with(&broker, "door_probe", &[&i_b, &b_a, &bc, &w_b]);
    wait(&mut [&mut probe], Duration::from_secs(30));
    probe.ok_line();
    let stats = keys.stats(&s, &client);
    assert!(stat(&stats, &["refusals", "curve_wrong_door", "workers"]) >= 1, "{stats}");
    assert!(stat(&stats, &["refusals", "curve_wrong_door", "brokers"]) >= 4, "{stats}");
    assert_eq!(stat(&stats, &["errors", "no_service"]), 0, "{stats}");
    let (_, log) = node.stop();
    let rogue_key = z(rogue.public());
    assert!(
        log.contains(&format!(
            "CURVE key {rogue_key} refused at the broker door: CURVE_PERMISSIONS gives it no 'broker' rule"
        )),
        "{log}"
    );
    good.kill();
}

#[test]
fn ezarch_broker_with_a_broker_key_attaches_and_serves_and_without_one_is_refused() {
    let [client, worker, broker, impostor] = [(); 4].map(|_| ezarch::sodium::generate_keys().unwrap());
    let (keys, rules) = CurveNode::with_rules(&[
        (&client, "call svc ez.stats"),
        (&worker, "serve svc"),
        (&broker, "broker"),
        (&impostor, "serve svc"),
    ]);
    let s = keys.settings();
    let node = s.start(&["up", "--set", &rules]);
    let as_broker = |k: &KeyPair| {
        let mut command = s.ezarch(&["broker"]);
        command
            .env("CURVE_SERVER_KEY", z(keys.server.public()))
            .env("CURVE_SECRET_KEY", z(&k.secret_bytes()))
            .args([
                "--set",
                "CURVE_SECRET_KEY_FILE=",
                "--set",
                "CURVE_CLIENT_KEYS=",
                "--set",
                "CURVE_PERMISSIONS=",
            ]);
        interop::Logged::spawn(&mut command)
    };
    let second = as_broker(&broker);
    let refused = as_broker(&impostor);
    second.wait_log("broker ready: taking requests from the in pipe", 1, LOG_WAIT);
    node.wait_log("another broker attached", 1, LOG_WAIT);
    refused.wait_log("the server does not let this key in at that port", 1, LOG_WAIT);
    let mut w = keys.peer("ez_worker", &s.endpoint("WORKER_PIPE_PORT_A"), &worker, &["svc", "30"]);
    second.wait_log("joined service svc", 1, LOG_WAIT);
    // The in pipe deals requests to both brokers: every one is answered.
    let mut c = keys.peer("ez_client", &s.endpoint("IN_PIPE_PORT_A"), &client, &["svc", "40"]);
    wait(&mut [&mut c], Duration::from_secs(60));
    c.ok_line();
    let (_, second_log) = second.stop();
    let (_, refused_log) = refused.stop();
    assert!(!refused_log.contains("joined service"), "a serve key attached as a broker: {refused_log}");
    assert!(second_log.contains("broker attached to the broadcast"), "{second_log}");
    let (_, log) = node.stop();
    assert!(log.contains(&format!("CURVE key {} refused at the broker door", z(impostor.public()))), "{log}");
    w.kill();
}

#[test]
fn a_worker_key_cannot_take_another_workers_identity_or_forge_its_replies() {
    let [client, worker, other] = [(); 3].map(|_| ezarch::sodium::generate_keys().unwrap());
    let (keys, rules) = CurveNode::with_rules(&[
        (&client, "call svc ez.stats"),
        (&worker, "serve svc"),
        (&other, "serve svc decoy"),
    ]);
    let s = keys.settings();
    // Claims outlive the worker's connection by the lifetime: make it long.
    let node = s.start(&["up", "--set", &rules, "--set", "WORKER_LIFETIME_S=60"]);
    let wk = s.endpoint("WORKER_PIPE_PORT_A");
    let mut first = keys.peer("named_worker", &wk, &worker, &["w-real", "svc", "0", "2"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    wait(&mut [&mut first], Duration::from_secs(30));
    first.ok_line();
    node.wait_log("worker w-real left service svc", 1, LOG_WAIT);
    // Another key, allowed to serve svc itself, heartbeats as w-real: it never joins.
    let mut thief = keys.peer("identity_thief", &wk, &other, &["w-real", "svc", "6"]);
    node.wait_log("belongs to another key", 1, LOG_WAIT);
    // A slow honest worker holds the victim's request; the other key forges its reply.
    let mut slow = keys.peer("named_worker", &wk, &worker, &["w-slow", "svc", "1500", "20"]);
    node.wait_log("joined service svc", 2, LOG_WAIT);
    let mut forger = keys.peer("reply_forger", &wk, &other, &["decoy", "victim", "r1", "6"]);
    node.wait_log("joined service decoy", 1, LOG_WAIT);
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut victim = keys.peer("named_client", &in_ep, &client, &["victim", "r1", "svc", "real"]);
    wait(&mut [&mut victim, &mut thief, &mut forger], Duration::from_secs(60));
    victim.ok_line();
    thief.ok_line();
    forger.ok_line();
    let stats = keys.stats(&s, &client);
    assert!(stat(&stats, &["refusals", "identity_taken"]) >= 1, "{stats}");
    assert!(stat(&stats, &["refusals", "replies_refused"]) >= 1, "{stats}");
    node.stop();
    slow.kill();
}

#[test]
fn generation_2_workers_keep_to_their_serve_list_and_their_own_tokens() {
    let [client, victim, thief, outsider, good] = [(); 5].map(|_| ezarch::sodium::generate_keys().unwrap());
    let (keys, rules) = CurveNode::with_rules(&[
        (&client, "call svc plain ez.stats"),
        (&victim, "serve svc"),
        (&thief, "serve other"),
        (&outsider, "serve other"),
        (&good, "serve plain"),
    ]);
    let s = keys.settings();
    let node = s.start(&["up", "--set", &rules]);
    let g2 = s.endpoint("GEN2_WORKER_PORT");
    // A worker outside its serve list heartbeats for `plain`; an allowed one serves it.
    let mut outside = keys.peer("gen2_worker", &g2, &outsider, &["plain", "8"]);
    let mut allowed = keys.peer("gen2_worker", &g2, &good, &["plain", "8"]);
    node.wait_log("joined service plain", 1, LOG_WAIT);
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut plain = keys.peer("gen2_client", &in_ep, &client, &["plain", "gen2", "20"]);
    wait(&mut [&mut plain, &mut outside, &mut allowed], Duration::from_secs(60));
    plain.ok_line();
    assert_eq!(outside.ok_line(), "OK gen2_worker served 0", "a worker outside its serve list got work");
    assert_eq!(allowed.ok_line(), "OK gen2_worker served 20");
    // The thief replays the victim's token in an ACK and a reply: the victim's answer stands.
    let victim_keys = [z(victim.public()), z(&victim.secret_bytes())];
    let mut pair =
        keys.peer("gen2_token_thief", &g2, &thief, &[&victim_keys[0], &victim_keys[1], "svc", "other", "8"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let mut c = keys.peer("gen2_client", &in_ep, &client, &["svc", "from-victim", "3"]);
    wait(&mut [&mut c, &mut pair], Duration::from_secs(60));
    c.ok_line();
    // "OK gen2_token_thief stole N answered M": every request reached the victim and was stolen
    // (a slow machine may have a request sent again after the ACK wait: more of both).
    let counts: Vec<u32> = pair.ok_line().split(' ').filter_map(|w| w.parse().ok()).collect();
    assert!(counts.len() == 2 && counts.iter().all(|&n| n >= 3), "{}", pair.ok_line());
    let stats = keys.stats(&s, &client);
    assert!(stat(&stats, &["refusals", "forbidden_heartbeats"]) >= 1, "{stats}");
    assert!(stat(&stats, &["refusals", "acks_refused"]) >= 3, "{stats}");
    assert!(stat(&stats, &["refusals", "replies_refused"]) >= 3, "{stats}");
    node.stop();
}

#[test]
fn a_standalone_pipe_applies_the_same_doors() {
    let [broker, worker, client] = [(); 3].map(|_| ezarch::sodium::generate_keys().unwrap());
    let (keys, rules) =
        CurveNode::with_rules(&[(&broker, "broker"), (&worker, "serve svc"), (&client, "call svc")]);
    let s = keys.settings();
    let (front, back) = (interop::free_endpoint(), interop::free_endpoint());
    // A worker pipe: its ROUTER is a worker door, its DEALER a broker door.
    let guess = s.ezarch(&["pipe", "--front", &front, "--back", &back, "--set", &rules]).output().unwrap();
    assert_eq!(guess.status.code(), Some(2), "a router-dealer pipe with rules must name its door");
    assert!(String::from_utf8_lossy(&guess.stderr).contains("--front-door workers"), "{guess:?}");
    let pipe =
        s.start(&["pipe", "--front", &front, "--back", &back, "--front-door", "workers", "--set", &rules]);
    interop::wait_listening(&back, Duration::from_secs(10));
    let probe = |keys_of: &KeyPair, endpoint: &str, kind: &str, expect: &str| {
        keys.peer_with(keys_of, "handshake_probe", &[endpoint, kind, expect])
    };
    let mut probes = [
        probe(&worker, &front, "DEALER", "admitted"),
        probe(&client, &front, "DEALER", "refused"),
        probe(&broker, &back, "ROUTER", "admitted"),
        probe(&worker, &back, "ROUTER", "refused"),
    ];
    let mut all: Vec<&mut interop::Peer> = probes.iter_mut().collect();
    wait(&mut all, Duration::from_secs(30));
    for p in &probes {
        p.ok_line();
    }
    let (_, log) = pipe.stop();
    assert!(log.contains("refused at the worker door"), "{log}");
    assert!(log.contains("refused at the broker door"), "{log}");
}
