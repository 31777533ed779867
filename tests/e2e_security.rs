//! `ezarch up` with CURVE from its settings, against pyzmq (libzmq) CURVE clients and workers:
//! allowlisted peers are served, strangers and NULL peers refused while others carry on, no
//! request body crosses the wire in clear, SIGHUP revokes a key without dropping the rest, and
//! an open bind without CURVE refuses to start.

mod interop;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ezarch::zmtp::curve::KeyPair;
use ezarch::zmtp::z85;
use interop::keys::{z, CurveNode as Node};
use interop::node::{Settings, LOG_WAIT};
use interop::{spawn_script, wait};

/// A TCP relay from a free port to `to` that records every byte either way.
fn recording_relay(to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let record = recorded.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(to.trim_start_matches("tcp://")) else { continue };
            for (mut from, mut into) in
                [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
            {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 65536];
                    while let Ok(n @ 1..) = from.read(&mut chunk) {
                        record.lock().unwrap().extend_from_slice(&chunk[..n]);
                        if into.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (endpoint, recorded)
}

#[test]
fn allowlisted_pyzmq_peers_are_served_over_curve_and_nothing_travels_in_clear() {
    let (client, worker, stranger) = (
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
    );
    let node_keys = Node::new(&[&client, &worker]);
    let s = node_keys.settings();
    let node = s.start(&["up"]);
    node.wait_log("listeners: CURVE, public key", 1, LOG_WAIT);
    node.wait_log("2 client key(s) allowed", 1, LOG_WAIT);
    let mut w = node_keys.peer("ez_worker", &s.endpoint("WORKER_PIPE_PORT_A"), &worker, &["svc", "20"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let (relayed, recorded) = recording_relay(s.endpoint("IN_PIPE_PORT_A"));
    let mut c = node_keys.peer("ez_client", &relayed, &client, &["svc", "20"]);
    let mut refused = node_keys.peer("refused", &s.endpoint("IN_PIPE_PORT_A"), &stranger, &[]);
    let mut plain = spawn_script("curve.py", &["refused", &s.endpoint("IN_PIPE_PORT_A"), "", "", ""]);
    wait(&mut [&mut c, &mut refused, &mut plain], Duration::from_secs(60));
    c.ok_line();
    refused.ok_line();
    plain.ok_line();
    let wire = recorded.lock().unwrap().clone();
    assert!(wire.len() > 20 * 60, "the relay saw only {} bytes", wire.len());
    assert!(!wire.windows(9).any(|w| w == b"TOPSECRET"), "a request body crossed the wire in clear");
    assert!(!wire.windows(3).any(|w| w == b"svc"), "a service name crossed the wire in clear");
    // `ezarch call` with the node's key and an allowed key of its own.
    let out = node_keys.ezarch_as(&s, &client, &["call", "svc", "/echo", "over-curve"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\nover-curve\n");
    let out = node_keys.ezarch_as(&s, &client, &["stats", "--json"]);
    let (ok, stats) = (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned());
    let refused_count: u64 = stats
        .split("\"curve_refused\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ok && refused_count >= 1, "the refusal is counted: {stats}");
    let (_, log) = node.stop();
    let refused = z(stranger.public());
    assert!(
        log.contains(&format!("client key {refused} is not allowed")),
        "the refused key is logged: {log}"
    );
    w.kill();
}

#[test]
fn sighup_revokes_a_key_and_keeps_the_others() {
    let (kept, revoked, worker) = (
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
    );
    let node_keys = Node::new(&[&kept, &revoked, &worker]);
    let s = node_keys.settings();
    let node = s.start(&["up"]);
    let mut w = node_keys.peer("ez_worker", &s.endpoint("WORKER_PIPE_PORT_A"), &worker, &["svc", "40"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let flag = node_keys.dir.join("revoked");
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut doomed =
        node_keys.peer("ez_client_until_closed", &in_ep, &revoked, &["svc", flag.to_str().unwrap()]);
    let mut before = node_keys.peer("ez_client", &in_ep, &kept, &["svc", "5"]);
    wait(&mut [&mut before], Duration::from_secs(30));
    before.ok_line();
    // The doomed client must hold an established connection before its key is revoked.
    doomed.wait_line("answered", Duration::from_secs(30));
    node_keys.allow(&[&kept, &worker]);
    node.wait_handles(1, Duration::from_secs(10));
    node.signal("HUP");
    node.wait_log("SIGHUP: 2 client key(s) allowed now; 1 connection(s) of revoked keys closed", 1, LOG_WAIT);
    std::fs::write(&flag, b"").unwrap();
    let mut after = node_keys.peer("ez_client", &in_ep, &kept, &["svc", "5"]);
    wait(&mut [&mut doomed, &mut after], Duration::from_secs(60));
    doomed.ok_line();
    after.ok_line();
    w.kill();
}

#[test]
fn an_open_bind_without_curve_refuses_to_start_unless_insecure() {
    let s = Settings::new(&["BIND_ADDRESS=0.0.0.0"]);
    let out = s.ezarch(&["up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BIND_ADDRESS 0.0.0.0 is not loopback and CURVE is off"), "{err}");
    // CURVE without an allowlist lets any key in: the same refusal, for that reason.
    let keys = ezarch::sodium::generate_keys().unwrap();
    let out = s.ezarch(&["up"]).env("CURVE_SECRET_KEY", z(&keys.secret_bytes())).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CURVE_CLIENT_KEYS is unset: any key may connect"), "{err}");
    // A client told the node's key but given no key of its own would fall back to NULL.
    let out = s.ezarch(&["call", "svc"]).env("CURVE_SERVER_KEY", z(keys.public())).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CURVE_SERVER_KEY needs"), "{out:?}");
    let node = s.start(&["up", "--insecure"]);
    node.wait_log(
        "CURVE is off: anyone who reaches it can serve or call any service (--insecure)",
        1,
        LOG_WAIT,
    );
    let keygen = s.ezarch(&["keygen"]).output().unwrap();
    let text = String::from_utf8_lossy(&keygen.stdout);
    let value = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split('"').nth(1).unwrap_or_default().to_string()
    };
    let (public, secret) = (value("CURVE_PUBLIC_KEY="), value("CURVE_SECRET_KEY="));
    let provider = ezarch::sodium::provider().unwrap();
    let pair = KeyPair::from_secret(&*provider, z85::decode_key(&secret).unwrap());
    assert_eq!(z(pair.public()), public, "keygen's public key belongs to its secret key");
}

#[test]
fn permissions_limit_what_each_key_may_call_and_serve() {
    let (caller, other_caller, worker, rogue) = (
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
        ezarch::sodium::generate_keys().unwrap(),
    );
    let node_keys = Node::new(&[&caller, &other_caller, &worker, &rogue]);
    let rules = format!(
        "{} call svc ez.stats\n{} call elsewhere\n{} serve svc\n{} serve nothing-here\n",
        z(caller.public()),
        z(other_caller.public()),
        z(worker.public()),
        z(rogue.public())
    );
    let rules_file = node_keys.dir.join("rules");
    std::fs::write(&rules_file, rules).unwrap();
    let s = node_keys.settings();
    let node = s.start(&["up", "--set", &format!("CURVE_PERMISSIONS={}", rules_file.display())]);
    let wk = s.endpoint("WORKER_PIPE_PORT_A");
    // The rogue heartbeats for svc, which it may not serve: it never joins.
    let mut rogue_worker = node_keys.peer("ez_worker", &wk, &rogue, &["svc", "20"]);
    let mut good_worker = node_keys.peer("ez_worker", &wk, &worker, &["svc", "20"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut allowed = node_keys.peer("ez_client", &in_ep, &caller, &["svc", "10"]);
    let mut forbidden = node_keys.peer("ez_forbidden", &in_ep, &other_caller, &["svc"]);
    wait(&mut [&mut allowed, &mut forbidden], Duration::from_secs(60));
    allowed.ok_line();
    forbidden.ok_line();
    let out = node_keys.ezarch_as(&s, &caller, &["stats", "--json"]);
    let stats = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stats.contains("\"forbidden\":{\"requests\":1,"), "{stats}");
    assert!(!stats.contains("\"heartbeats\":0}"), "the rogue's heartbeats were counted: {stats}");
    let (_, log) = node.stop();
    assert_eq!(log.matches("joined service svc").count(), 1, "only the permitted worker joined: {log}");
    rogue_worker.kill();
    good_worker.kill();
}

/// `ezarch broker` as a CURVE client: the three pipes are libzmq CURVE servers (zmq.proxy in
/// pyzmq), the broker reaches them with `CURVE_SERVER_KEY` and a key of its own, and a pyzmq
/// CURVE worker and client are served through it. A second broker on the same pipes holding
/// the wrong server key never completes a handshake, says so in its log, and is routed nothing.
#[test]
fn ezarch_broker_is_a_curve_client_of_libzmq_pipes() {
    let [pipes, broker, worker, client, stranger] = [(); 5].map(|_| ezarch::sodium::generate_keys().unwrap());
    let server_key = format!("CURVE_SERVER_KEY={}", z(pipes.public()));
    let broker_secret = format!("CURVE_SECRET_KEY={}", z(&broker.secret_bytes()));
    let s = Settings::new(&[&server_key, &broker_secret]);
    let e = |name: &str| s.endpoint(name);
    let (in_a, worker_a, secret) = (e("IN_PIPE_PORT_A"), e("WORKER_PIPE_PORT_A"), z(&pipes.secret_bytes()));
    let mut pipe_process = spawn_script(
        "curve.py",
        &[
            "curve_pipes",
            &in_a,
            &e("IN_PIPE_PORT_B"),
            &worker_a,
            &e("WORKER_PIPE_PORT_B"),
            &e("BROKER_PIPE_PORT_A"),
            &e("BROKER_BROADCAST_PORT"),
            &secret,
            "90",
        ],
    );
    let peer = |role: &str, endpoint: &str, keys: &KeyPair, rest: &[&str]| {
        let (server, public, secret) = (z(pipes.public()), z(keys.public()), z(&keys.secret_bytes()));
        let mut args = vec![role, endpoint, &server, &public, &secret];
        args.extend_from_slice(rest);
        spawn_script("curve.py", &args)
    };
    let wrong_key = format!("CURVE_SERVER_KEY={}", z(stranger.public()));
    let wrong_broker = interop::Logged::spawn(&mut s.ezarch(&["broker", "--set", &wrong_key]));
    let good_broker = s.start(&["broker"]);
    good_broker.wait_log("connections: CURVE to the pipes", 1, LOG_WAIT);
    // The pipes close on a HELLO they cannot open; the broker tells the operator why.
    wrong_broker.wait_log("check that CURVE_SERVER_KEY is that server's public key", 1, LOG_WAIT);
    let mut w = peer("ez_worker", &worker_a, &worker, &["svc", "60"]);
    good_broker.wait_log("joined service svc", 1, LOG_WAIT);
    let mut c = peer("ez_client", &in_a, &client, &["svc", "20"]);
    wait(&mut [&mut c], Duration::from_secs(60));
    c.ok_line();
    let (_, wrong_log) = wrong_broker.stop();
    assert!(!wrong_log.contains("joined service svc"), "the wrong server key was served: {wrong_log}");
    good_broker.stop();
    w.kill();
    pipe_process.kill();
}

#[test]
fn the_monitor_stays_on_loopback_unless_monitor_bind_address_says_otherwise() {
    let s = Settings::new(&["BIND_ADDRESS=0.0.0.0"]);
    let node = s.start(&["up", "--insecure"]);
    node.wait_log("monitor http://127.0.0.1:", 1, LOG_WAIT);
    let (_, log) = node.stop();
    assert!(!log.contains("/metrics and /healthz have no authentication"), "{log}");
    let s = Settings::new(&["BIND_ADDRESS=0.0.0.0", "MONITOR_BIND_ADDRESS=0.0.0.0"]);
    let node = s.start(&["up", "--insecure"]);
    node.wait_log("monitor http://0.0.0.0:", 1, LOG_WAIT);
    node.wait_log(
        "MONITOR_BIND_ADDRESS 0.0.0.0 is not loopback: /metrics and /healthz have no authentication",
        1,
        LOG_WAIT,
    );
}
