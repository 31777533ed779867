//! Fair connection slots on `ezarch up` with its default limits: one address opens 10,000
//! connections (as many as MAX_CONNECTIONS) to the client and worker doors, half of them
//! handshaken (NULL) and idle, half silent, while a pyzmq client and workers on other loopback
//! addresses are served, each request within 1 s, throughout; a client and a worker that
//! arrive after the flood, with it still open, are served too. The flooding address never holds more than
//! `MAX_CONNECTIONS_PER_ADDRESS`; its oldest connections still in their handshake make room for
//! its newer ones; every refusal is counted (read from `/metrics`, whose slots are its own: the
//! flood holds all of 127.0.0.1's ZMTP slots, so `ezarch stats` from there is refused too).

mod interop;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ezarch::reactor::DEFAULT_PER_ADDRESS;
use ezarch::zmtp::{Config, Session, SocketType};
use interop::node::{sample, Settings, LOG_WAIT};
use interop::wait;

const FLOOD: usize = 10_000;

/// The two tests fill the node's slots and race the 10 s handshake timeout: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A DEALER's NULL greeting and READY, as one write.
fn null_handshake() -> Vec<u8> {
    let mut session = Session::new(Config::new(SocketType::Dealer), Instant::now());
    session.encoder().chunks().flatten().copied().collect()
}

/// Lets this process hold the flood's sockets.
fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct through a valid pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= wanted,
            "this test needs {wanted} open files; the hard limit is {}",
            limit.rlim_max
        );
        limit.rlim_cur = limit.rlim_cur.max(wanted);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Opens `FLOOD` connections from 127.0.0.1, alternating between `targets`; every other pair
/// sends a handshake and then nothing more, the rest send nothing at all. Returns them all,
/// open (the node closed many of them).
fn flood(targets: [SocketAddr; 2], progress: Arc<AtomicUsize>) -> Vec<TcpStream> {
    let handshake = null_handshake();
    let mut held = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        if let Ok(mut stream) = TcpStream::connect_timeout(&targets[i % 2], Duration::from_secs(5)) {
            if i % 4 < 2 {
                let _ = stream.write_all(&handshake); // refused ones are closed already
            }
            held.push(stream);
        }
        progress.store(i + 1, Ordering::Relaxed);
    }
    held
}

/// `endpoint` connected to from `source` (libzmq's `tcp://SOURCE:0;HOST:PORT`).
fn from(source: &str, endpoint: &str) -> String {
    format!("tcp://{source}:0;{}", endpoint.trim_start_matches("tcp://"))
}

fn addr(endpoint: &str) -> SocketAddr {
    endpoint.trim_start_matches("tcp://").parse().unwrap()
}

#[test]
fn ten_thousand_connections_from_one_address_leave_others_served_within_a_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raise_open_file_limit(FLOOD as u64 + 2_000);
    let s = Settings::new(&[]);
    let node = s.start(&["up"]);
    let (in_a, worker_a) = (s.endpoint("IN_PIPE_PORT_A"), s.endpoint("WORKER_PIPE_PORT_A"));
    let flag = std::env::temp_dir().join(format!("ezarch-flood-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let mut worker = s.py("worker", &[&from("127.0.0.3", &worker_a), "svc", "500", "0", "90"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    let flag_path = flag.to_str().unwrap();
    let mut client = s.py("steady_client", &[&from("127.0.0.2", &in_a), "svc", flag_path, "1000"]);
    client.wait_line("READY", Duration::from_secs(30));

    let progress = Arc::new(AtomicUsize::new(0));
    let flooder = {
        let (targets, progress) = ([addr(&in_a), addr(&worker_a)], progress.clone());
        std::thread::spawn(move || flood(targets, progress))
    };
    // A worker that arrives in the middle of the flood joins and is served too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < FLOOD / 3 {
        assert!(Instant::now() < deadline, "the flood stalled at {}", progress.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut late_worker = s.py("worker", &[&from("127.0.0.4", &worker_a), "svc", "500", "0", "90"]);
    let held = flooder.join().unwrap();
    node.wait_log("joined service svc", 2, LOG_WAIT);

    // With the flood held open, from /metrics: the flooding address has at most its share, and
    // the rest of the flood was turned away, counted by reason.
    let metrics = s.metrics();
    let open = sample(&metrics, "ezarch_connections");
    assert!(open <= (DEFAULT_PER_ADDRESS + 10) as f64, "{open} connections open:\n{metrics}");
    let refused = |reason: &str| {
        sample(&metrics, &format!("ezarch_refusals_total{{reason=\"{reason}\",door=\"any\"}}"))
    };
    let turned_away = refused("connections_per_address") + refused("handshakes_evicted");
    assert!(turned_away >= (FLOOD / 2) as f64, "{turned_away} turned away:\n{metrics}");
    // Newcomers from other addresses, with the flood still open: a worker of another service
    // joins, and a new client's requests to it are each answered within 1 s (one attempt).
    let mut newcomer = s.py("worker", &[&from("127.0.0.6", &worker_a), "late", "500", "0", "90"]);
    node.wait_log("joined service late", 1, LOG_WAIT);
    let mut late_client = s.py("client", &[&from("127.0.0.5", &in_a), "late", "10", "2", "1", "1000"]);
    wait(&mut [&mut late_client], Duration::from_secs(60));
    late_client.ok_line();
    std::fs::write(&flag, b"").unwrap();
    wait(&mut [&mut client], Duration::from_secs(60));
    let line = client.ok_line();
    newcomer.kill();
    drop(held);
    late_worker.kill();
    worker.kill();
    let (_, log) = node.stop();
    assert!(log.contains("connection(s) still in their handshake to make room"), "{log}");
    eprintln!("{line}; {turned_away} flood connections turned away; {open} open at the peak");
}

/// A connection to `target` from `source` that sends nothing.
fn silent_from(source: [u8; 4], target: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&target.into()).unwrap();
    socket.into()
}

#[test]
fn silent_connections_from_many_addresses_make_room_and_workers_keep_their_reserve() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 200 slots: 20 reserved for clients, 20 for workers, 2 for brokers, 158 shared.
    let s = Settings::new(&["MAX_CONNECTIONS=200"]);
    let node = s.start(&["up"]);
    let (in_a, worker_a) = (s.endpoint("IN_PIPE_PORT_A"), s.endpoint("WORKER_PIPE_PORT_A"));
    // Silent connections from 230 addresses, one each, more than every slot: the client door's
    // share and the pool hold 178 of them, each newer one closing the oldest.
    let evicted =
        |metrics: &str| sample(metrics, "ezarch_refusals_total{reason=\"handshakes_evicted\",door=\"any\"}");
    let silent: Vec<TcpStream> = (1..=230).map(|i| silent_from([127, 0, 1, i], addr(&in_a))).collect();
    // The node writes its greeting as it accepts: once each has its first byte (or its end),
    // every one was accepted, and the evictions are done.
    for mut stream in &silent {
        use std::io::Read;
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let accepted = match stream.read(&mut [0u8; 1]) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(accepted, "a silent connection was never accepted");
    }
    let metrics = s.metrics();
    let crowd_evicted = evicted(&metrics);
    assert!(crowd_evicted >= 52.0, "{metrics}");
    assert_eq!(sample(&metrics, "ezarch_connections"), 178.0, "{metrics}");
    // A worker still has its reserved slots: it joins without closing anyone.
    let mut worker = s.py("worker", &[&from("127.0.3.1", &worker_a), "svc", "500", "0", "20"]);
    node.wait_log("joined service svc", 1, LOG_WAIT);
    assert_eq!(evicted(&s.metrics()), crowd_evicted, "the worker took a silent connection's slot");
    // A client takes the oldest silent connection's slot.
    let mut client = s.py("client", &[&from("127.0.2.1", &in_a), "svc", "10", "2", "1", "5000"]);
    wait(&mut [&mut client], Duration::from_secs(30));
    client.ok_line();
    let metrics = s.metrics();
    assert!(sample(&metrics, "ezarch_connections") <= 200.0, "{metrics}");
    let after = evicted(&metrics);
    assert!(after > crowd_evicted, "the client got in without evicting a silent connection:\n{metrics}");
    drop(silent);
    worker.kill();
    node.stop();
}
