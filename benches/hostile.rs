//! Hostile load against `ezarch up`: what crowds of peers, patient peers and heavy but legal
//! peers make the node hold, side by side with the node's normal load in the same run.
//!
//! Scenarios (each on a fresh `ezarch up` with one `ezarch worker echo`):
//! - `idle`: 10,000 connections complete their handshake and stay idle; RSS per connection.
//! - `partial`: 100 peers each send 15 MiB of a 16 MiB frame and never finish it; peak RSS
//!   against the memory budget (INBOUND_BUDGET_MB).
//! - `pings`: 2,000,000 PINGs with a 6,553 s TTL on one connection, over 3 s; RSS before, after
//!   half of them and after all (flat means the second half added nothing).
//! - `idle_cpu`: CPU seconds over 10 s with one worker heartbeating and nothing else.
//! - `no_service`: CPU seconds over 5 s of 30 NO_SERVICE requests a second.
//!
//! During `idle`, `partial` and `pings` a normal client keeps 10 requests of 32 bytes in flight
//! through the node to the echo worker; its req/s and p50 are reported next to the same client
//! alone on the same node, as a ratio.
//!
//! Run: `cargo bench --bench hostile` (about 2 minutes); `EZARCH_BENCH_SCENARIOS=idle,pings`
//! picks scenarios.

#[path = "../tests/interop/mod.rs"]
mod interop;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezarch::config::PORT_SETTINGS;
use ezarch::reactor::Reactor;
use ezarch::socket::{SocketOptions, SocketType};
use interop::{wait_listening, Logged};

const IDLE_CONNECTIONS: usize = 10_000;
const PARTIAL_PEERS: usize = 100;
const PARTIAL_SENT: usize = 15 << 20;
const PINGS: usize = 2_000_000;
const NORMAL_WINDOW: usize = 10;
const NORMAL_TIME: Duration = Duration::from_secs(3);

/// A running `ezarch up` with one echo worker on free ports.
struct Node {
    up: Logged,
    _worker: Logged,
    ports: Vec<u16>,
}

impl Node {
    fn start() -> Self {
        let listeners: Vec<TcpListener> = (0..6).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(listeners);
        let mut flags =
            vec!["--env".to_string(), "/dev/null".to_string(), "--log-level".into(), "info".into()];
        for (name, port) in PORT_SETTINGS.iter().zip(&ports) {
            flags.extend(["--set".to_string(), format!("{name}={port}")]);
        }
        // Room for the idle crowd besides the node's own connections; the budget stays default.
        flags.extend(["--set".to_string(), format!("MAX_CONNECTIONS={}", IDLE_CONNECTIONS + 1000)]);
        let ezarch = |args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_ezarch"));
            // No generation-2 port (by environment: an older build given as a baseline ignores it).
            command.args(&flags).args(args).env("GEN2_WORKER_PORT", "0").env("MONITOR_PORT", "0");
            // The idle crowd comes from one address: its share must hold it.
            command.env("MAX_CONNECTIONS_PER_ADDRESS", (IDLE_CONNECTIONS + 1000).to_string());
            Logged::spawn(&mut command)
        };
        let up = ezarch(&["up"]);
        wait_listening(&format!("tcp://127.0.0.1:{}", ports[0]), Duration::from_secs(10));
        let worker = ezarch(&["worker", "echo"]);
        up.wait_log("joined service echo", 1, Duration::from_secs(20));
        Self { up, _worker: worker, ports }
    }

    fn in_pipe(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.up.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn cpu_seconds(&self) -> f64 {
        interop::node::cpu_seconds(self.up.pid())
    }
}

/// Greeting and READY of a raw DEALER.
fn hello() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    bytes.extend_from_slice(b"NULL");
    bytes.resize(64, 0);
    let mut ready = vec![5u8];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&6u32.to_be_bytes());
    ready.extend_from_slice(b"DEALER");
    bytes.extend_from_slice(&[0x04, ready.len() as u8]);
    bytes.extend_from_slice(&ready);
    bytes
}

/// A raw DEALER that has sent its greeting and READY and read the node's.
fn handshaken(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&hello()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut greeting = [0u8; 64];
    stream.read_exact(&mut greeting).unwrap();
    stream
}

/// Normal traffic: a DEALER keeping `NORMAL_WINDOW` echo requests in flight through the node.
struct NormalLoad {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(f64, f64)>,
}

impl NormalLoad {
    fn start(endpoint: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || normal_client(&endpoint, &flag));
        Self { stop, thread }
    }

    /// Stops the client; returns its req/s and p50 in microseconds.
    fn finish(self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }

    /// The client alone for `NORMAL_TIME`.
    fn alone(endpoint: String) -> (f64, f64) {
        let load = Self::start(endpoint);
        thread::sleep(NORMAL_TIME); // the measurement window
        load.finish()
    }
}

fn normal_client(endpoint: &str, stop: &AtomicBool) -> (f64, f64) {
    let mut reactor = Reactor::new().unwrap();
    let client = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    reactor.connect(client, &format!("tcp://{endpoint}")).unwrap();
    let payload = Bytes::from(vec![b'p'; 32]);
    let mut sent_at = [Instant::now(); NORMAL_WINDOW];
    let request = |slot: usize| {
        vec![
            Bytes::new(),
            Bytes::from_static(b"\x02"),
            Bytes::copy_from_slice(&(slot as u64).to_be_bytes()),
            Bytes::from_static(b"echo"),
            Bytes::from_static(b"/echo"),
            payload.clone(),
        ]
    };
    for (slot, at) in sent_at.iter_mut().enumerate() {
        *at = Instant::now();
        let _ = reactor.send(client, request(slot));
    }
    let (start, mut latencies) = (Instant::now(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        reactor.poll(Some(Duration::from_millis(50))).unwrap();
        while let Some(reply) = reactor.recv(client) {
            let Some(slot) = reply.get(1).and_then(|id| id[..].try_into().ok()).map(u64::from_be_bytes)
            else {
                continue;
            };
            let slot = slot as usize % NORMAL_WINDOW;
            latencies.push(sent_at[slot].elapsed().as_secs_f64() * 1e6);
            sent_at[slot] = Instant::now();
            let _ = reactor.send(client, request(slot));
        }
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (rate, latencies.get(latencies.len() / 2).copied().unwrap_or(f64::NAN))
}

/// A scenario's name and what runs it.
type Scenario = (&'static str, fn(&Node));

/// Normal load alone before the scenario, during it, and alone again after it.
type Normal = [(f64, f64); 3];

/// One line of the results table.
fn report(scenario: &str, figure: &str, goal: &str, normal: Option<Normal>) {
    let normal = match normal {
        Some([(a, ap50), (d, dp50), (z, zp50)]) => format!(
            "{a:.0} / {d:.0} / {z:.0} req/s (during/before {:.2}x); p50 {ap50:.0} / {dp50:.0} / {zp50:.0} µs",
            d / a
        ),
        None => "-".to_string(),
    };
    println!("| {scenario} | {figure} | {goal} | {normal} |");
}

fn idle(node: &Node) {
    raise_fd_limit(IDLE_CONNECTIONS + 1000);
    let alone = NormalLoad::alone(node.in_pipe());
    let before = node.rss_kib();
    let load = NormalLoad::start(node.in_pipe());
    let crowd: Vec<TcpStream> = (0..IDLE_CONNECTIONS).map(|_| handshaken(&node.in_pipe())).collect();
    thread::sleep(NORMAL_TIME); // the measurement window, with the crowd connected
    let during = load.finish();
    let held = node.rss_kib().saturating_sub(before);
    drop(crowd);
    let per = held as f64 * 1024.0 / IDLE_CONNECTIONS as f64;
    let figure =
        format!("{IDLE_CONNECTIONS} handshaken idle connections: +{} MiB RSS, {per:.0} B each", held >> 10);
    report("idle", &figure, "<= 16 KiB each", Some([alone, during, NormalLoad::alone(node.in_pipe())]));
}

fn partial(node: &Node) {
    let alone = NormalLoad::alone(node.in_pipe());
    let before = node.rss_kib();
    let load = NormalLoad::start(node.in_pipe());
    let mut peers: Vec<(TcpStream, usize)> = (0..PARTIAL_PEERS)
        .map(|_| {
            let mut stream = handshaken(&node.in_pipe());
            let mut header = vec![0x02];
            header.extend_from_slice(&(16u64 << 20).to_be_bytes());
            stream.write_all(&header).unwrap();
            stream.set_nonblocking(true).unwrap();
            (stream, 0)
        })
        .collect();
    let chunk = vec![b'z'; 64 << 10];
    let (mut peak, mut last_progress, started) = (0u64, Instant::now(), Instant::now());
    // Write until every peer has sent its 15 MiB, or none can write any more for 2 s.
    while peers.iter().any(|(_, sent)| *sent < PARTIAL_SENT)
        && last_progress.elapsed() < Duration::from_secs(2)
    {
        for (stream, sent) in peers.iter_mut().filter(|(_, sent)| *sent < PARTIAL_SENT) {
            let n = (PARTIAL_SENT - *sent).min(chunk.len());
            match stream.write(&chunk[..n]) {
                Ok(n) => {
                    *sent += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("partial-frame peer: {e}"),
            }
        }
        peak = peak.max(node.rss_kib());
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    thread::sleep(NORMAL_TIME); // the measurement window, with the frames parked
    peak = peak.max(node.rss_kib());
    let during = load.finish();
    let sent: usize = peers.iter().map(|(_, sent)| sent).sum();
    drop(peers);
    let figure = format!(
        "{PARTIAL_PEERS} peers sent {} MiB of unfinished frames: peak +{} MiB RSS",
        sent >> 20,
        peak.saturating_sub(before) >> 10
    );
    report(
        "partial",
        &figure,
        "<= budget (256 MiB) + 100 x 32 KiB",
        Some([alone, during, NormalLoad::alone(node.in_pipe())]),
    );
}

fn pings(node: &Node) {
    let alone = NormalLoad::alone(node.in_pipe());
    let load = NormalLoad::start(node.in_pipe());
    let stream = handshaken(&node.in_pipe());
    let mut reader = stream.try_clone().unwrap();
    let pong_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = pong_bytes.clone();
    let drain = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            counted.fetch_add(n, Ordering::Relaxed);
        }
    });
    let mut ping = vec![0x04, 23, 4]; // command frame: name length, name, TTL, 16-byte context
    ping.extend_from_slice(b"PING");
    ping.extend_from_slice(&u16::MAX.to_be_bytes());
    ping.extend_from_slice(&[7u8; 16]);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 10_000).collect();
    let mut writer = stream;
    let before = node.rss_kib();
    let (mut peak, mut at_half) = (before, before);
    let started = Instant::now();
    // PINGS, spread over the normal load's measurement window (a sustained flood, not a burst
    // that is over before the normal client has sent a request).
    let mut sent = 0;
    while sent < PINGS {
        let due = started + NORMAL_TIME.mul_f64(sent as f64 / PINGS as f64);
        thread::sleep(due.saturating_duration_since(Instant::now())); // pacing, not a wait
        writer.write_all(&batch).unwrap();
        sent += 10_000;
        if sent % 200_000 == 0 {
            peak = peak.max(node.rss_kib());
        }
        if sent == PINGS / 2 {
            at_half = node.rss_kib();
        }
    }
    // Wait until the node answered them all (a PONG is 23 bytes), or answers stop coming.
    let (mut last, mut since) = (0, Instant::now());
    while pong_bytes.load(Ordering::Relaxed) < sent * 23 && since.elapsed() < Duration::from_secs(2) {
        let now = pong_bytes.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
        peak = peak.max(node.rss_kib());
        thread::sleep(Duration::from_millis(20)); // polling the counter
    }
    let secs = started.elapsed().as_secs_f64();
    let pongs = pong_bytes.load(Ordering::Relaxed) / 23;
    let during = load.finish();
    let after = node.rss_kib();
    writer.shutdown(std::net::Shutdown::Both).unwrap();
    let _ = drain.join();
    let figure = format!(
        "{sent} PINGs ({pongs} PONGs back) in {secs:.1} s on one connection: RSS {before} KiB before, \
         {at_half} KiB after {}, {after} KiB after all (peak {peak} KiB)",
        PINGS / 2
    );
    report("pings", &figure, "flat", Some([alone, during, NormalLoad::alone(node.in_pipe())]));
}

fn idle_cpu(node: &Node) {
    let before = node.cpu_seconds();
    thread::sleep(Duration::from_secs(10)); // the measurement window
    let used = node.cpu_seconds() - before;
    report("idle_cpu", &format!("{used:.2} s CPU over 10 s, one worker heartbeating"), "< 0.05 s", None);
}

fn no_service(node: &Node) {
    let mut reactor = Reactor::new().unwrap();
    let client = reactor.socket(SocketType::Dealer, SocketOptions::default()).unwrap();
    reactor.connect(client, &format!("tcp://{}", node.in_pipe())).unwrap();
    reactor.run_until(Duration::from_secs(10), |r| r.peer_count(client) == 1).unwrap();
    let before = node.cpu_seconds();
    let start = Instant::now();
    let (mut sent, mut answered) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(5) {
        if (start.elapsed().as_secs_f64() * 30.0) as u64 >= sent {
            let request = vec![
                Bytes::new(),
                Bytes::from_static(b"\x02"),
                Bytes::copy_from_slice(&sent.to_be_bytes()),
                Bytes::from_static(b"nobody"),
                Bytes::from_static(b"/echo"),
            ];
            let _ = reactor.send(client, request);
            sent += 1;
        }
        reactor.poll(Some(Duration::from_millis(5))).unwrap();
        while reactor.recv(client).is_some() {
            answered += 1;
        }
    }
    let used = node.cpu_seconds() - before;
    let figure =
        format!("{used:.2} s CPU over 5 s of 30 NO_SERVICE requests/s ({sent} sent, {answered} answered)");
    report("no_service", &figure, "< 0.25 s", None);
}

#[allow(unsafe_code)]
fn raise_fd_limit(wanted: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct through a pointer to a local.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max).max(limit.rlim_cur);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let wanted = std::env::var("EZARCH_BENCH_SCENARIOS").unwrap_or_default();
    let scenarios: [Scenario; 5] = [
        ("idle", idle),
        ("partial", partial),
        ("pings", pings),
        ("idle_cpu", idle_cpu),
        ("no_service", no_service),
    ];
    println!("\n| scenario | measured | goal | normal load: before / during / after |");
    println!("|---|---|---|---|");
    for (name, run) in scenarios {
        if wanted.is_empty() || wanted.split(',').any(|w| w == name) {
            eprintln!("scenario {name}");
            let node = Node::start();
            run(&node);
        }
    }
}
