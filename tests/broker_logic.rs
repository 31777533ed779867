//! The broker as a pure state machine: frames and a stepped clock in, frames out.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ezarch::broker::{Broker, BrokerConfig, Generation, Output};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn frames(parts: &[&str]) -> Vec<Bytes> {
    parts.iter().map(|p| b(p)).collect()
}

fn request(client: &str, req: &str, service: &str, body: &[&str]) -> Vec<Bytes> {
    let mut m = frames(&["inpipe", client, "", "\x02", req, service]);
    m.extend(frames(body));
    m
}

fn heartbeat(worker: &str, service: &str) -> Vec<Bytes> {
    frames(&["wpipe", worker, "", "\x01", "\x01", service])
}

fn reply(worker: &str, client: &str, req: &str, body: &[&str]) -> Vec<Bytes> {
    let mut m = frames(&["wpipe", worker, "", "\x01", "\x02", client, "", req]);
    m.extend(frames(body));
    m
}

fn outputs(broker: &mut Broker) -> Vec<Output> {
    std::iter::from_fn(|| broker.poll_output()).collect()
}

fn to_workers(outs: &[Output]) -> Vec<Vec<Bytes>> {
    outs.iter().filter_map(|o| if let Output::ToWorker(m) = o { Some(m.clone()) } else { None }).collect()
}

fn to_clients(outs: &[Output]) -> Vec<Vec<Bytes>> {
    outs.iter().filter_map(|o| if let Output::ToClient(m) = o { Some(m.clone()) } else { None }).collect()
}

fn ready_broker(now: Instant) -> Broker {
    let mut broker = Broker::new(BrokerConfig { identity: b("me"), ..BrokerConfig::default() }, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    broker
}

#[test]
fn request_dispatch_reply_round_trip_with_multi_frame_bodies() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("echo-1", "echo"));
    let outs = outputs(&mut broker);
    assert_eq!(outs, vec![Output::Broadcast(frames(&["\x01", "echo", "echo-1"]))]);

    broker.handle_client(now, request("c1", "r1", "echo", &["/echo", "a", "b"]));
    let outs = outputs(&mut broker);
    assert_eq!(to_workers(&outs), vec![frames(&["wpipe", "echo-1", "", "c1", "r1", "/echo", "a", "b"])]);
    assert!(outs.contains(&Output::Broadcast(frames(&["\x02", "echo-1"]))));
    assert_eq!(broker.registry().tasks(b"echo-1"), 1, "our own dispatch counts at once");

    broker.handle_worker(now, reply("echo-1", "c1", "r1", &["OK", "a", "b"]));
    let outs = outputs(&mut broker);
    assert_eq!(to_clients(&outs), vec![frames(&["inpipe", "c1", "", "r1", "OK", "a", "b"])]);
    assert!(outs.contains(&Output::Broadcast(frames(&["\x03", "echo-1"]))));
    assert_eq!(broker.registry().tasks(b"echo-1"), 0);
}

#[test]
fn least_tasks_with_ties_spread_round_robin() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    for w in ["w1", "w2", "w3"] {
        broker.handle_worker(now, heartbeat(w, "svc"));
    }
    outputs(&mut broker);
    let mut picked = Vec::new();
    for i in 0..6 {
        broker.handle_client(now, request("c", &format!("r{i}"), "svc", &[]));
        picked.push(to_workers(&outputs(&mut broker))[0][1].clone());
    }
    for w in ["w1", "w2", "w3"] {
        assert_eq!(picked.iter().filter(|p| &p[..] == w.as_bytes()).count(), 2, "{picked:?}");
    }
    // w2 finishes twice: it now has the fewest tasks and gets the next request.
    broker.handle_worker(now, reply("w2", "c", "r1", &[]));
    broker.handle_worker(now, reply("w2", "c", "r4", &[]));
    outputs(&mut broker);
    broker.handle_client(now, request("c", "r9", "svc", &[]));
    assert_eq!(to_workers(&outputs(&mut broker))[0][1], b("w2"));
}

#[test]
fn other_brokers_engagements_count_and_our_own_echoes_do_not_count_twice() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_state(now, frames(&["other", "\x01", "svc", "w1"]));
    broker.handle_state(now, frames(&["other", "\x02", "w1"]));
    assert_eq!(broker.registry().tasks(b"w1"), 1);
    broker.handle_client(now, request("c", "r", "svc", &[]));
    outputs(&mut broker);
    assert_eq!(broker.registry().tasks(b"w1"), 2);
    broker.handle_state(now, frames(&["me", "\x02", "w1"])); // our own ENGAGED, echoed back
    assert_eq!(broker.registry().tasks(b"w1"), 2);
    for _ in 0..5 {
        broker.handle_state(now, frames(&["other", "\x03", "w1"])); // stray UNENGAGEDs
    }
    assert_eq!(broker.registry().tasks(b"w1"), 0, "never below zero");
}

#[test]
fn no_service_is_answered_in_bounded_time_but_not_during_the_startup_grace() {
    let start = Instant::now();
    let config = BrokerConfig {
        no_service_wait: Duration::from_millis(500),
        startup_grace: Duration::from_secs(3),
        ..BrokerConfig::default()
    };
    let mut broker = Broker::new(config, start);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), start);
    broker.handle_client(start, request("c", "r1", "late", &[]));
    assert_eq!(broker.poll_timeout(), Some(start + Duration::from_secs(3)));
    // A worker heartbeats within the grace: the held request goes to it.
    broker.handle_worker(start + Duration::from_secs(2), heartbeat("late-1", "late"));
    assert_eq!(to_workers(&outputs(&mut broker)).len(), 1);

    // After the grace: a request for a service nobody serves waits no_service_wait, then NO_SERVICE.
    let later = start + Duration::from_secs(10);
    broker.handle_client(later, request("c", "r2", "nobody", &[]));
    broker.handle_timeout(later + Duration::from_millis(499));
    assert!(to_clients(&outputs(&mut broker)).is_empty());
    broker.handle_timeout(later + Duration::from_millis(500));
    assert_eq!(
        to_clients(&outputs(&mut broker)),
        vec![frames(&["inpipe", "c", "", "r2", "EZ_ERR", "NO_SERVICE"])]
    );
    assert_eq!(broker.stats.no_service, 1);
}

#[test]
fn expired_workers_get_no_work_and_lost_tasks_are_released() {
    let start = Instant::now();
    let config = BrokerConfig {
        worker_lifetime: Duration::from_secs(9),
        task_timeout: Duration::from_secs(5),
        ..BrokerConfig::default()
    };
    let mut broker = Broker::new(config, start);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), start);
    broker.handle_worker(start, heartbeat("dead", "svc"));
    broker.handle_worker(start, heartbeat("alive", "svc"));
    broker.handle_client(start, request("c", "r1", "svc", &[]));
    broker.handle_client(start, request("c", "r2", "svc", &[]));
    outputs(&mut broker);
    broker.handle_timeout(start + Duration::from_secs(5));
    assert_eq!(broker.registry().tasks(b"alive"), 0, "a task with no reply is released");
    assert_eq!(broker.stats.tasks_timed_out, 2);
    // Only "alive" keeps heartbeating.
    let t = start + Duration::from_secs(6);
    broker.handle_worker(t, heartbeat("alive", "svc"));
    broker.handle_timeout(start + Duration::from_secs(9));
    assert_eq!(broker.stats.workers_expired, 1);
    assert_eq!(broker.registry().live_workers(b"svc", start + Duration::from_secs(9)), 1);
    outputs(&mut broker);
    for i in 0..5 {
        broker.handle_client(start + Duration::from_secs(10), request("c", &format!("x{i}"), "svc", &[]));
    }
    let sent = to_workers(&outputs(&mut broker));
    assert_eq!(sent.len(), 5);
    assert!(sent.iter().all(|m| &m[1][..] == b"alive"));
}

#[test]
fn malformed_input_of_any_shape_is_counted_and_dropped() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    let bad_client = [
        frames(&[]),
        frames(&["inpipe"]),
        frames(&["inpipe", "c", "", "\x02", "r"]),
        frames(&["inpipe", "c", "x", "\x02", "r", "svc"]),
        frames(&["inpipe", "c", "", "\x07", "r", "svc"]),
    ];
    let bad_worker = [
        frames(&["wpipe", "w"]),
        frames(&["wpipe", "w", "", "\x01", "\x01"]),
        frames(&["wpipe", "w", "", "\x02", "\x01", "svc"]),
        frames(&["wpipe", "w", "", "\x01", "\x09", "svc"]),
        frames(&["wpipe", "w", "", "\x01", "\x02", "c", "not-empty", "r"]),
    ];
    let bad_state = [frames(&["x"]), frames(&["x", "\x07", "w"]), frames(&["x", "\x01", "svc"])];
    for m in bad_client {
        broker.handle_client(now, m);
    }
    for m in bad_worker {
        broker.handle_worker(now, m);
    }
    for m in bad_state {
        broker.handle_state(now, m);
    }
    assert_eq!(broker.stats.malformed, 13);
    assert!(outputs(&mut broker).is_empty());
    broker.handle_worker(now, heartbeat("w", "svc"));
    broker.handle_client(now, request("c", "r", "svc", &["still serving"]));
    assert_eq!(to_workers(&outputs(&mut broker)).len(), 1);
}

#[test]
fn a_reply_is_taken_only_from_the_worker_holding_its_request_and_never_routed_otherwise() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_worker(now, heartbeat("w2", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &["/x"]));
    let holder = to_workers(&outputs(&mut broker))[0][1].clone();
    let other = if holder == "w1" { "w2" } else { "w1" };
    // Another worker answers it, and some worker answers a request nobody here took: dropped.
    broker.handle_worker(now, reply(other, "c", "r1", &["OK", "forged"]));
    broker.handle_worker(now, reply(other, "c9", "r9", &["OK", "x"]));
    assert!(to_clients(&outputs(&mut broker)).is_empty(), "a stray reply is never routed");
    let st = broker.stats;
    assert_eq!(
        (st.replies_refused, st.replies_unknown, st.late_replies),
        (1, 1, 0),
        "the wrong worker, no such request"
    );
    assert_eq!(broker.registry().tasks(&holder), 1, "a stray reply releases nothing");
    // The worker that holds it answers: that is the one answer.
    broker.handle_worker(now, reply(std::str::from_utf8(&holder).unwrap(), "c", "r1", &["OK", "real"]));
    assert_eq!(to_clients(&outputs(&mut broker)), vec![frames(&["inpipe", "c", "", "r1", "OK", "real"])]);
    assert_eq!(broker.registry().tasks(&holder), 0);
}

#[test]
fn held_requests_are_bounded_in_bytes_too() {
    let now = Instant::now();
    let config = BrokerConfig { identity: b("me"), max_waiting_bytes: 10_000, ..BrokerConfig::default() };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    let body = "x".repeat(4_000);
    for req in ["r1", "r2", "r3"] {
        broker.handle_client(now, request("c1", req, "later", &[&body]));
    }
    // Two 4 KB requests are held; the third would pass 10,000 bytes: BUSY at once.
    let answered = to_clients(&outputs(&mut broker));
    assert_eq!(answered, vec![frames(&["inpipe", "c1", "", "r3", "EZ_ERR", "BUSY"])]);
    broker.handle_worker(now, heartbeat("w1", "later"));
    assert_eq!(to_workers(&outputs(&mut broker)).len(), 2, "the held two go to the worker");
}

#[test]
fn the_registry_holds_at_most_max_workers() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    for i in 0..=ezarch::broker::MAX_WORKERS {
        broker.handle_worker(now, heartbeat(&format!("w{i}"), "svc"));
    }
    assert_eq!(broker.registry().live_workers(b"svc", now), ezarch::broker::MAX_WORKERS);
    assert_eq!(broker.stats.workers_refused, 1);
    // Known workers keep heartbeating.
    broker.handle_worker(now, heartbeat("w0", "svc"));
    assert_eq!(broker.stats.workers_refused, 1);
}

fn ez_err(client: &str, req: &str, reason: &str) -> Vec<Bytes> {
    frames(&["inpipe", client, "", req, "EZ_ERR", reason])
}

#[test]
fn a_retried_request_id_is_taken_once_and_answered_once() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &["/echo"]));
    broker.handle_client(now + Duration::from_secs(5), request("c", "r1", "svc", &["/echo"]));
    assert_eq!(to_workers(&outputs(&mut broker)).len(), 1, "the retry is not dispatched again");
    assert_eq!(broker.stats.duplicates, 1);
    broker.handle_worker(now, reply("w1", "c", "r1", &["OK"]));
    assert_eq!(to_clients(&outputs(&mut broker)), vec![frames(&["inpipe", "c", "", "r1", "OK"])]);
    assert_eq!(broker.requests().in_flight(), 0);
}

#[test]
fn no_reply_within_the_task_timeout_is_answered_timeout_and_a_late_reply_is_dropped() {
    let now = Instant::now();
    let config = BrokerConfig { task_timeout: Duration::from_secs(2), ..BrokerConfig::default() };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    outputs(&mut broker);
    assert_eq!(broker.poll_timeout().map(|t| t <= now + Duration::from_secs(2)), Some(true));
    broker.handle_timeout(now + Duration::from_millis(1999));
    assert!(to_clients(&outputs(&mut broker)).is_empty());
    // In-flight requests are checked every SWEEP: the answer comes at most that late.
    broker.handle_timeout(now + Duration::from_secs(2) + ezarch::broker::SWEEP);
    assert_eq!(to_clients(&outputs(&mut broker)), vec![ez_err("c", "r1", "TIMEOUT")]);
    broker.handle_worker(now + Duration::from_secs(3), reply("w1", "c", "r1", &["OK"]));
    assert!(to_clients(&outputs(&mut broker)).is_empty(), "one answer only");
    assert_eq!((broker.stats.timeouts, broker.stats.late_replies), (1, 1));
}

#[test]
fn a_lost_workers_requests_go_to_another_worker_once_then_worker_lost() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    for w in ["w1", "w2", "w3"] {
        broker.handle_worker(now, heartbeat(w, "svc"));
    }
    broker.handle_client(now, request("c", "r1", "svc", &["/echo", "x"]));
    let first = to_workers(&outputs(&mut broker))[0][1].clone();
    broker.worker_lost(now, &first, Generation::One);
    let again = to_workers(&outputs(&mut broker));
    assert_eq!(again.len(), 1, "redispatched at once");
    assert_ne!(again[0][1], first);
    assert_eq!(&again[0][3..], &frames(&["c", "r1", "/echo", "x"])[..], "same request id and body");
    assert_eq!(broker.stats.redispatched, 1);
    broker.worker_lost(now, &again[0][1], Generation::One);
    assert_eq!(to_clients(&outputs(&mut broker)), vec![ez_err("c", "r1", "WORKER_LOST")]);
    assert_eq!(broker.stats.worker_lost, 1);
    assert_eq!(broker.registry().live_workers(b"svc", now), 1);
}

#[test]
fn after_a_redispatch_the_first_reply_is_the_answer_and_the_second_is_dropped() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_worker(now, heartbeat("w2", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    let first = to_workers(&outputs(&mut broker))[0][1].clone();
    broker.worker_lost(now, &first, Generation::One); // seen as lost, yet it still answers later
    let second = to_workers(&outputs(&mut broker))[0][1].clone();
    broker.handle_worker(now, reply(std::str::from_utf8(&second).unwrap(), "c", "r1", &["OK", "2"]));
    broker.handle_worker(now, reply(std::str::from_utf8(&first).unwrap(), "c", "r1", &["OK", "1"]));
    assert_eq!(to_clients(&outputs(&mut broker)), vec![frames(&["inpipe", "c", "", "r1", "OK", "2"])]);
    assert_eq!(broker.stats.late_replies, 1);
}

#[test]
fn a_lost_workers_request_with_no_other_worker_waits_then_no_service() {
    let now = Instant::now();
    let config = BrokerConfig {
        no_service_wait: Duration::from_millis(500),
        startup_grace: Duration::ZERO,
        ..BrokerConfig::default()
    };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    outputs(&mut broker);
    broker.worker_lost(now, b"w1", Generation::One);
    assert!(to_clients(&outputs(&mut broker)).is_empty(), "held for a worker first");
    // A worker that joins within NO_SERVICE_MS takes it...
    broker.handle_worker(now + Duration::from_millis(100), heartbeat("w2", "svc"));
    assert_eq!(to_workers(&outputs(&mut broker)).len(), 1);
    // ...and with none, the answer is NO_SERVICE (r1, lost a second time, is WORKER_LOST).
    broker.handle_client(now, request("c", "r2", "svc", &[]));
    outputs(&mut broker);
    broker.worker_lost(now, b"w2", Generation::One);
    broker.handle_timeout(now + Duration::from_millis(500));
    let answers = to_clients(&outputs(&mut broker));
    assert_eq!(answers, vec![ez_err("c", "r1", "WORKER_LOST"), ez_err("c", "r2", "NO_SERVICE")]);
}

#[test]
fn a_full_per_service_queue_answers_busy_at_once() {
    let now = Instant::now();
    let config = BrokerConfig { max_waiting_per_service: 2, ..BrokerConfig::default() };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    for req in ["r1", "r2", "r3"] {
        broker.handle_client(now, request("c", req, "svc", &[]));
    }
    broker.handle_client(now, request("c", "r4", "other", &[]));
    assert_eq!(to_clients(&outputs(&mut broker)), vec![ez_err("c", "r3", "BUSY")]);
    assert_eq!(broker.requests().waiting(b"svc"), (3, broker.requests().waiting(b"svc").1, 2));
}

#[test]
fn workers_that_stop_heartbeating_have_their_requests_sent_again() {
    // A broker in another process than the worker pipe learns of a dead worker by expiry only.
    let now = Instant::now();
    let config = BrokerConfig { worker_lifetime: Duration::from_secs(2), ..BrokerConfig::default() };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    broker.handle_worker(now, heartbeat("dead", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    outputs(&mut broker);
    broker.handle_worker(now + Duration::from_secs(1), heartbeat("alive", "svc"));
    let later = now + Duration::from_secs(2);
    broker.handle_worker(later, heartbeat("alive", "svc"));
    outputs(&mut broker);
    broker.handle_timeout(later);
    let again = to_workers(&outputs(&mut broker));
    assert_eq!(again.len(), 1);
    assert_eq!((&again[0][1], &again[0][4]), (&b("alive"), &b("r1")));
}

fn gen2_heartbeat(worker: &str, service: &str) -> Vec<Bytes> {
    frames(&[worker, "", "\x01", "\x01", service])
}

fn gen2_dispatches(outs: &[Output]) -> Vec<Vec<Bytes>> {
    outs.iter().filter_map(|o| if let Output::ToGen2Worker(m) = o { Some(m.clone()) } else { None }).collect()
}

#[test]
fn generation_2_workers_get_a_token_ack_and_reply_and_errors_become_service_err() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_gen2_worker(now, gen2_heartbeat("g1", "svc"));
    assert!(outputs(&mut broker).is_empty(), "generation-2 heartbeats are not broadcast");
    // Two clients use the same request id: each dispatch gets its own token.
    broker.handle_client(now, request("c1", "same", "svc", &["/echo", "a"]));
    broker.handle_client(now, request("c2", "same", "svc", &["/fail"]));
    let sent = gen2_dispatches(&outputs(&mut broker));
    assert_eq!(sent.len(), 2);
    assert_eq!((&sent[0][0], &sent[0][1], &sent[0][3..]), (&b("g1"), &b(""), &frames(&["/echo", "a"])[..]));
    assert_ne!(sent[0][2], sent[1][2], "tokens differ");
    assert_eq!(sent[0][2].len(), 16, "a token is 128 bits");
    let (t1, t2) = (sent[0][2].clone(), sent[1][2].clone());
    let gen2_reply = |token: &Bytes, status: &str, result: &str| {
        let mut m = frames(&["g1", "", "\x01", "\x02"]);
        m.extend([token.clone(), b(status), b(result)]);
        m
    };
    broker.handle_gen2_worker(now, vec![b("g1"), b(""), b("\x01"), b("\x03"), t1.clone()]); // ACK
    broker.handle_gen2_worker(now, gen2_reply(&t2, "ERR", "boom"));
    broker.handle_gen2_worker(now, gen2_reply(&t1, "OK", "a"));
    assert_eq!(
        to_clients(&outputs(&mut broker)),
        vec![
            frames(&["inpipe", "c2", "", "same", "SERVICE_ERR", "boom"]),
            frames(&["inpipe", "c1", "", "same", "OK", "a"])
        ]
    );
}

#[test]
fn a_generation_2_worker_lost_before_its_ack_is_resent_and_after_it_answered_worker_lost() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    for w in ["g1", "g2", "g3"] {
        broker.handle_gen2_worker(now, gen2_heartbeat(w, "svc"));
    }
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    let first = gen2_dispatches(&outputs(&mut broker))[0].clone();
    broker.worker_lost(now, &first[0], Generation::Two); // no ACK yet: sent again
    let second = gen2_dispatches(&outputs(&mut broker))[0].clone();
    assert_ne!(second[0], first[0]);
    broker.handle_gen2_worker(now, vec![second[0].clone(), b(""), b("\x01"), b("\x03"), second[2].clone()]);
    broker.worker_lost(now, &second[0], Generation::Two); // ACKed: the loss is the answer
    assert_eq!(to_clients(&outputs(&mut broker)), vec![ez_err("c", "r1", "WORKER_LOST")]);
}

#[test]
fn a_generation_2_dispatch_not_acked_within_a_second_is_sent_again() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_gen2_worker(now, gen2_heartbeat("g1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    assert_eq!(gen2_dispatches(&outputs(&mut broker)).len(), 1);
    broker.handle_timeout(now + Duration::from_millis(900));
    assert!(gen2_dispatches(&outputs(&mut broker)).is_empty());
    broker.handle_timeout(now + Duration::from_millis(1000) + ezarch::broker::SWEEP);
    assert_eq!(gen2_dispatches(&outputs(&mut broker)).len(), 1, "resent after the ACK wait");
    assert_eq!(ezarch::broker::ack_wait(2), Duration::from_secs(2));
    assert_eq!(ezarch::broker::ack_wait(9), Duration::from_secs(5));
}

#[test]
fn alone_the_broker_broadcasts_heartbeats_but_not_engagements() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.set_alone(true);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &[]));
    broker.handle_worker(now, reply("w1", "c", "r1", &["OK"]));
    let broadcasts: Vec<_> =
        outputs(&mut broker).into_iter().filter(|o| matches!(o, Output::Broadcast(_))).collect();
    assert_eq!(broadcasts, vec![Output::Broadcast(frames(&["\x01", "svc", "w1"]))]);
    broker.set_alone(false);
    broker.handle_client(now, request("c", "r2", "svc", &[]));
    assert!(outputs(&mut broker).contains(&Output::Broadcast(frames(&["\x02", "w1"]))));
}

#[test]
fn a_request_whose_worker_is_lost_while_stopping_is_answered_shutting_down_not_held() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c1", "r1", "svc", &["/x"]));
    outputs(&mut broker);
    broker.begin_shutdown();
    broker.worker_lost(now, b"w1", Generation::One);
    let outs = outputs(&mut broker);
    assert_eq!(to_clients(&outs), vec![ez_err("c1", "r1", "SHUTTING_DOWN")]);
    assert_eq!(broker.requests().in_flight(), 0);
    assert_eq!(broker.requests().waiting(b"svc").0, 0, "nothing left to wait past the drain");
}

#[test]
fn management_requests_go_to_the_node_and_are_counted_apart() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "ez.stats"));
    outputs(&mut broker);
    broker.handle_client(now, request("c1", "r1", "ez.stats", &[]));
    let outs = outputs(&mut broker);
    assert_eq!(outs, vec![Output::Management(request("c1", "r1", "ez.stats", &[]))]);
    assert!(to_workers(&outs).is_empty(), "an ez. request never reaches a worker");
    assert_eq!((broker.stats.management, broker.stats.requests), (1, 0));
}

#[test]
fn per_service_counters_follow_requests_replies_and_errors() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c1", "r1", "svc", &["/x"]));
    broker.handle_worker(now + Duration::from_millis(3), reply("w1", "c1", "r1", &["OK"]));
    broker.handle_client(now, request("c1", "r2", "nobody", &["/x"]));
    broker.handle_timeout(now + Duration::from_secs(60));
    let svc = broker.service_stats.get(b"svc").copied().unwrap();
    assert_eq!((svc.requests, svc.replies, svc.latency.count), (1, 1, 1));
    assert!((svc.latency.sum - 0.003).abs() < 1e-6, "{}", svc.latency.sum);
    let other = broker.service_stats.other();
    assert_eq!((other.requests, other.error(ezarch::broker::Reason::NoService)), (1, 1));
    assert!(broker.service_stats.get(b"nobody").is_none(), "a name no worker served gets no entry");
}

#[test]
fn a_generation_2_ack_or_reply_with_another_workers_token_or_a_forged_one_is_dropped() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_gen2_worker(now, gen2_heartbeat("g1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &["/echo", "a"]));
    let token = gen2_dispatches(&outputs(&mut broker))[0][2].clone();
    broker.handle_gen2_worker(now, gen2_heartbeat("thief", "svc"));
    let ack = |worker: &str, token: &Bytes| vec![b(worker), b(""), b("\x01"), b("\x03"), token.clone()];
    let answer = |worker: &str, token: &Bytes| {
        let mut m = frames(&[worker, "", "\x01", "\x02"]);
        m.extend([token.clone(), b("OK"), b("stolen")]);
        m
    };
    // The thief knows g1's token (it could not, but say it guessed): still not its request.
    broker.handle_gen2_worker(now, ack("thief", &token));
    broker.handle_gen2_worker(now, answer("thief", &token));
    // A token nobody was given.
    let forged = Bytes::from_static(&[7; 16]);
    broker.handle_gen2_worker(now, ack("g1", &forged));
    broker.handle_gen2_worker(now, answer("g1", &forged));
    assert!(to_clients(&outputs(&mut broker)).is_empty());
    let st = broker.stats;
    assert_eq!((st.acks_refused, st.replies_refused), (1, 1), "the thief's ACK and reply");
    assert_eq!(st.replies_unknown, 2, "the forged token's ACK and reply");
    // Unacked, the request is still g1's to answer.
    let mut real = frames(&["g1", "", "\x01", "\x02"]);
    real.extend([token.clone(), b("OK"), b("a")]);
    broker.handle_gen2_worker(now, real.clone());
    assert_eq!(to_clients(&outputs(&mut broker)), vec![frames(&["inpipe", "c", "", "r1", "OK", "a"])]);
    // Its token is retired, not forgotten: a second reply under it is late, not forged.
    broker.handle_gen2_worker(now, real);
    assert_eq!((broker.stats.late_replies, broker.stats.replies_refused), (1, 1));
}

#[test]
fn a_reply_from_the_worker_a_request_was_sent_to_before_it_was_sent_again_is_its_answer() {
    let now = Instant::now();
    let config = BrokerConfig { worker_lifetime: Duration::from_secs(2), ..BrokerConfig::default() };
    let mut broker = Broker::new(config, now);
    broker.set_in_pipe(b("inpipe"));
    broker.set_worker_pipe(b("wpipe"), now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_client(now, request("c", "r1", "svc", &["/slow"]));
    outputs(&mut broker);
    // Busy, w1 misses its heartbeats: it expires and its request waits to be sent again.
    broker.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(broker.requests().waiting(b"svc").2, 1);
    broker.handle_worker(now + Duration::from_secs(3), reply("w1", "c", "r1", &["OK", "done"]));
    assert_eq!(to_clients(&outputs(&mut broker)), vec![frames(&["inpipe", "c", "", "r1", "OK", "done"])]);
    assert_eq!((broker.requests().waiting(b"svc").2, broker.stats.replies_refused), (0, 0));
}

#[test]
fn a_worker_is_lost_only_when_a_connection_of_its_own_generation_closes() {
    let now = Instant::now();
    let mut broker = ready_broker(now);
    broker.handle_worker(now, heartbeat("w1", "svc"));
    broker.handle_gen2_worker(now, gen2_heartbeat("g1", "svc"));
    // Someone connected to the other generation's socket under their names, then left.
    broker.worker_lost(now, b"w1", Generation::Two);
    broker.worker_lost(now, b"g1", Generation::One);
    assert_eq!(broker.registry().live_workers(b"svc", now), 2);
    assert_eq!(broker.stats.workers_left, 0);
    broker.worker_lost(now, b"w1", Generation::One);
    assert_eq!(broker.registry().live_workers(b"svc", now), 1);
}
