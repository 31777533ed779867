//! A CURVE HELLO flood from one address beside a normal CURVE client, in one run: does the
//! flood slow anyone but the flooder?
//!
//! `ezarch up` runs with CURVE (an allowlist of the client's and the worker's keys) and one
//! `ezarch worker echo`. The normal client (the Rust `Client`, CURVE, from 127.0.0.1) sends one
//! 32-byte request at a time. The flood comes from 127.0.0.2: `EZARCH_FLOOD_THREADS` (default
//! 32) threads each connect, send a greeting and a valid HELLO (which costs the node a key
//! exchange and a key generation before anything is authenticated), wait for the WELCOME (or
//! the node's close), and start again, as fast as the node lets them.
//!
//! Each round measures the client alone, then with the flood, `MEASURE` each; over `ROUNDS`
//! rounds it reports the medians of the client's p50 and p99, their ratio with and without the
//! flood, how many HELLOs the node answered per second, and the node's CPU.
//!
//! Run: `cargo bench --bench hello_flood` (about 30 s). `EZARCH_BENCH_BASELINE=/path/to/ezarch`
//! runs another build too, in the same run (before/after).

#[path = "../tests/interop/mod.rs"]
mod interop;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezarch::client::{Client, ClientOptions};
use ezarch::config::PORT_SETTINGS;
use ezarch::zmtp::curve::{Curve, KeyPair};
use ezarch::zmtp::{z85, Config, Session, SocketType};
use interop::node::Usage;
use interop::{wait_listening, Logged};

const ROUNDS: usize = 7;
const MEASURE: Duration = Duration::from_secs(3);
/// The flood's source address (the client's is 127.0.0.1).
const FLOOD_FROM: [u8; 4] = [127, 0, 0, 2];

fn z(key: &[u8; 32]) -> String {
    z85::encode(key).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CURVE node and its echo worker.
struct Node {
    up: Logged,
    _worker: Logged,
    in_port: u16,
    server: KeyPair,
    client: KeyPair,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Node {
    fn start(binary: &str) -> Self {
        let (server, client, worker) = (
            ezarch::sodium::generate_keys().unwrap(),
            ezarch::sodium::generate_keys().unwrap(),
            ezarch::sodium::generate_keys().unwrap(),
        );
        let dir = std::env::temp_dir().join(format!("ezarch-hello-flood-{}", ezarch::random::next_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let allowlist = dir.join("clients");
        std::fs::write(&allowlist, format!("{}\n{}\n", z(client.public()), z(worker.public()))).unwrap();
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let mut flags = vec!["--env".to_string(), "/dev/null".into(), "--log-level".into(), "warning".into()];
        for (name, port) in PORT_SETTINGS.iter().zip(&ports) {
            flags.extend(["--set".to_string(), format!("{name}={port}")]);
        }
        let ezarch = |args: &[&str], secret: &KeyPair| {
            let mut command = Command::new(binary);
            command
                .args(&flags)
                .args(args)
                .env("GEN2_WORKER_PORT", "0")
                .env("MONITOR_PORT", "0")
                .env("CURVE_SECRET_KEY", z(&secret.secret_bytes()));
            if args[0] == "up" {
                command.env("CURVE_CLIENT_KEYS", &allowlist);
            } else {
                command.env("CURVE_SERVER_KEY", z(server.public()));
            }
            Logged::spawn(&mut command)
        };
        let up = ezarch(&["up"], &server);
        wait_listening(&format!("tcp://127.0.0.1:{}", ports[0]), Duration::from_secs(10));
        let worker = ezarch(&["worker", "echo"], &worker);
        // `up` logs at WARNING here: wait for the worker through a call instead.
        let node = Self { up, _worker: worker, in_port: ports[0], server, client, _dir: tempdir::Dir(dir) };
        let mut client = node.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.call(b"echo", &[Bytes::from_static(b"/echo")]).map_or(true, |r| &r[0][..] != b"OK") {
            assert!(Instant::now() < deadline, "the echo worker never answered");
        }
        node
    }

    fn client(&self) -> Client {
        let provider = ezarch::sodium::provider().unwrap();
        let curve = Curve::Client { keys: self.client.clone(), server: *self.server.public(), provider };
        let options = ClientOptions { timeout: Duration::from_secs(5), attempts: 1, curve: Some(curve) };
        Client::connect(&format!("tcp://127.0.0.1:{}", self.in_port), options).unwrap()
    }
}

/// A CURVE client's greeting and HELLO for `server`, as one write.
fn greeting_and_hello(server: &KeyPair) -> Vec<u8> {
    let mut config = Config::new(SocketType::Dealer);
    let provider = ezarch::sodium::provider().unwrap();
    config.curve = Some(Curve::Client {
        keys: ezarch::sodium::generate_keys().unwrap(),
        server: *server.public(),
        provider,
    });
    let mut session = Session::new(config, Instant::now());
    session.encoder().chunks().flatten().copied().collect()
}

/// One flood thread: connect from `FLOOD_FROM`, send `hello`, read the greeting and WELCOME (or
/// the end of the stream), close; again until `stop`. Counts HELLOs sent and WELCOMEs read.
fn flood(
    to: SocketAddr,
    hello: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    welcomed: Arc<AtomicU64>,
) {
    // The node's greeting (64 bytes) and WELCOME command (2 + 168 bytes).
    const ANSWER: usize = 64 + 2 + 168;
    while !stop.load(Ordering::Relaxed) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // Closed with a reset: no TIME_WAIT, so the flood never runs out of ports.
        let _ = socket.set_linger(Some(Duration::ZERO));
        if socket.bind(&SocketAddr::from((FLOOD_FROM, 0)).into()).is_err()
            || socket.connect(&to.into()).is_err()
        {
            thread::sleep(Duration::from_millis(1)); // refused: try again, without spinning
            continue;
        }
        let mut stream: TcpStream = socket.into();
        if stream.write_all(&hello).is_err() {
            continue;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut got = 0;
        let mut buf = [0u8; 512];
        while got < ANSWER {
            match stream.read(&mut buf) {
                Ok(n @ 1..) => got += n,
                _ => break,
            }
        }
        if got >= ANSWER {
            welcomed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The client's round-trip times over `time`, in µs, sorted.
fn latencies(client: &mut Client, time: Duration) -> Vec<f64> {
    let body = [Bytes::from_static(b"/echo"), Bytes::from(vec![b'x'; 32])];
    let mut times = Vec::new();
    let end = Instant::now() + time;
    while Instant::now() < end {
        let start = Instant::now();
        let reply = client.call(b"echo", &body).expect("the normal client went unanswered");
        assert_eq!(&reply[0][..], b"OK");
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One contender's medians: (p50, p99) alone, (p50, p99) flooded, HELLOs answered and sent per
/// second, node CPU % alone and flooded.
fn measure(binary: &str, threads: usize) -> [f64; 8] {
    let node = Node::start(binary);
    let mut client = node.client();
    let hello = Arc::new(greeting_and_hello(&node.server));
    let to: SocketAddr = ([127, 0, 0, 1], node.in_port).into();
    let mut rows = Vec::new();
    let pid = [node.up.pid()];
    for _ in 0..ROUNDS {
        let (cpu_quiet, quiet_started) = (Usage::of(&pid), Instant::now());
        let quiet = latencies(&mut client, MEASURE);
        let quiet_cpu =
            (Usage::of(&pid).cpu_s - cpu_quiet.cpu_s) / quiet_started.elapsed().as_secs_f64() * 100.0;
        let (stop, sent, welcomed) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let flooders: Vec<_> = (0..threads)
            .map(|_| {
                let (hello, stop, sent, welcomed) =
                    (hello.clone(), stop.clone(), Arc::clone(&sent), Arc::clone(&welcomed));
                thread::spawn(move || flood(to, hello, stop, sent, welcomed))
            })
            .collect();
        thread::sleep(Duration::from_millis(300)); // the flood under way before measuring
        let (cpu_before, welcomed_before, started) =
            (Usage::of(&pid), welcomed.load(Ordering::Relaxed), Instant::now());
        let flooded = latencies(&mut client, MEASURE);
        let seconds = started.elapsed().as_secs_f64();
        let cpu = (Usage::of(&pid).cpu_s - cpu_before.cpu_s) / seconds * 100.0;
        let rate = (welcomed.load(Ordering::Relaxed) - welcomed_before) as f64 / seconds;
        stop.store(true, Ordering::Relaxed);
        for f in flooders {
            let _ = f.join();
        }
        let row = [
            percentile(&quiet, 0.5),
            percentile(&quiet, 0.99),
            percentile(&flooded, 0.5),
            percentile(&flooded, 0.99),
            rate,
            sent.load(Ordering::Relaxed) as f64 / (seconds + 0.3),
            quiet_cpu,
            cpu,
        ];
        eprintln!(
            "  round: alone p50 {:.0} p99 {:.0} µs; flooded p50 {:.0} p99 {:.0} µs; {:.0} HELLOs answered/s of {:.0} sent; node CPU {:.0}% alone, {:.0}% flooded",
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
        );
        rows.push(row);
    }
    drop(node);
    std::array::from_fn(|i| median(rows.iter().map(|r| r[i]).collect()))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` asks benches without a harness for their list
    }
    let threads = std::env::var("EZARCH_FLOOD_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(32);
    let mut contenders = vec![("ezarch".to_string(), env!("CARGO_BIN_EXE_ezarch").to_string())];
    if let Ok(baseline) = std::env::var("EZARCH_BENCH_BASELINE") {
        contenders.insert(0, ("baseline".to_string(), baseline));
    }
    println!("HELLO flood from one address ({threads} threads), beside one CURVE client; medians of {ROUNDS} rounds of {MEASURE:?}");
    println!(
        "| contender | alone p50 µs | alone p99 µs | flooded p50 µs | flooded p99 µs | p99 flooded / alone | \
         HELLOs answered/s | HELLOs sent/s | node CPU % alone | node CPU % flooded |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, binary) in contenders {
        eprintln!("{name}: {binary}");
        let [p50, p99, fp50, fp99, rate, sent, cpu, fcpu] = measure(&binary, threads);
        let ratio = fp99 / p99;
        println!(
            "| {name} | {p50:.0} | {p99:.0} | {fp50:.0} | {fp99:.0} | {ratio:.2}x | {rate:.0} | {sent:.0} | {cpu:.0} | {fcpu:.0} |"
        );
    }
}
