//! End-to-end request/reply: `ezarch up` with echo workers against NATS request/reply
//! (`nats-server` from Debian on 127.0.0.1, echo responders in a queue group), same load shape,
//! interleaved in one run. For 1, 100 and 1000 requests in flight: req/s, p50 and p99.
//!
//! - ezarch: `ezarch up` + `WORKERS` x `ezarch worker echo` processes; the load generator is a
//!   DEALER on an ezarch reactor speaking generation 1 (`["", 0x02, REQ_ID, "echo", "/echo", P]`).
//! - NATS: `nats-server` + `WORKERS` responder processes (this bench re-executed as
//!   `EZARCH_NATS_RESPONDER=host:port`); the load generator publishes `echo` with a reply inbox.
//!   Both NATS sides speak the text protocol over a plain TcpStream (no client library).
//!
//! - ezarch with `/metrics` scraped every second (`EZARCH_BENCH_SYSTEMS` containing `scrape`):
//!   the same node and load, plus a thread that GETs `/metrics` from MONITOR_PORT once a second
//!   (as Prometheus would), to measure what monitoring costs.
//!
//! Run: `cargo bench --bench request_reply` (needs `nats-server` on PATH; `.ci/run` and
//! benches/README.md say how to install it). `EZARCH_BENCH_RUNS` sets the runs (default 3).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/interop/mod.rs"]
mod interop;

use bytes::Bytes;
use ezarch::config::PORT_SETTINGS;
use ezarch::reactor::Reactor;
use ezarch::socket::{SocketOptions, SocketType};

const WORKERS: usize = 2;
const PAYLOAD: usize = 64;
const IN_FLIGHT: &[usize] = &[1, 100, 1000];
const MEASURE: Duration = Duration::from_millis(2500);
const WARMUP: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Default)]
struct Figures {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU of the server process(es) per request (not the workers or responders).
    cpu_us: f64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Drives `send(seq)` / `poll() -> completed seqs` with `window` in flight; returns figures,
/// with the CPU that processes `server` used per request meanwhile.
fn drive(
    window: usize,
    server: &[u32],
    mut send: impl FnMut(u64),
    mut poll: impl FnMut(&mut Vec<u64>),
) -> Figures {
    let mut sent_at: Vec<Instant> = vec![Instant::now(); window.max(1) * 4];
    let slot = |seq: u64| seq as usize % (window.max(1) * 4);
    let mut next = 0u64;
    for _ in 0..window {
        sent_at[slot(next)] = Instant::now();
        send(next);
        next += 1;
    }
    let start = Instant::now();
    let (mut done, mut latencies, mut measuring_since) = (0u64, Vec::new(), None);
    let mut used_before = interop::node::Usage::default();
    let mut completed = Vec::new();
    loop {
        completed.clear();
        poll(&mut completed);
        let now = Instant::now();
        for &seq in &completed {
            if measuring_since.is_some() {
                done += 1;
                latencies.push((now - sent_at[slot(seq)]).as_secs_f64() * 1e6);
            }
            sent_at[slot(next)] = Instant::now();
            send(next);
            next += 1;
        }
        match measuring_since {
            None if now - start >= WARMUP => {
                measuring_since = Some(now);
                used_before = interop::node::Usage::of(server);
            }
            Some(since) if now - since >= MEASURE => {
                latencies.sort_by(f64::total_cmp);
                let pick =
                    |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
                return Figures {
                    rps: done as f64 / (now - since).as_secs_f64(),
                    p50_us: pick(0.5),
                    p99_us: pick(0.99),
                    cpu_us: interop::node::Usage::of(server).per(used_before, done.max(1) as f64).0,
                };
            }
            _ => {}
        }
    }
}

// ---- ezarch ----

/// GETs `/metrics` from `port` once a second until `stop`; returns how many answers were 200.
fn scrape_every_second(port: u16, stop: &std::sync::atomic::AtomicBool) -> usize {
    let mut scraped = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n");
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            scraped += usize::from(response.starts_with(b"HTTP/1.1 200"));
        }
        while started.elapsed() < Duration::from_secs(1) && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    scraped
}

/// How the ezarch node runs.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `ezarch up`: pipes and broker on one reactor in one process.
    Up,
    /// `ezarch up` with `/metrics` scraped once a second.
    Scraped,
    /// The three pipes and the broker as four processes (four reactors), as the original
    /// deploys them: what the node would gain from more than one reactor.
    Split,
}

fn measure_ezarch(binary: &str, layout: Layout) -> Vec<Figures> {
    let scrape = layout == Layout::Scraped;
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let monitor_port = free_port();
    let mut flags = vec!["--env".to_string(), "/dev/null".to_string(), "--log-level".into(), "info".into()];
    for (name, port) in PORT_SETTINGS.iter().zip(&ports) {
        flags.extend(["--set".to_string(), format!("{name}={port}")]);
    }
    flags.extend(["--set".to_string(), "POLL_INTERVAL_MS=500".to_string()]);
    let ezarch = |args: &[&str]| {
        let mut command = Command::new(binary);
        // No generation-2 port (by environment: an older build given as a baseline ignores it).
        command
            .args(&flags)
            .args(args)
            .env("GEN2_WORKER_PORT", "0")
            // One monitoring port per node: the broker's (or up's), not the split pipes'.
            .env("MONITOR_PORT", if args[0] == "pipe" { "0".to_string() } else { monitor_port.to_string() });
        interop::Logged::spawn(&mut command)
    };
    let endpoint = |i: usize| format!("tcp://127.0.0.1:{}", ports[i]);
    let (up, _pipes) = if layout == Layout::Split {
        let pipe = |front: usize, back: usize, extra: &[&str]| {
            let (front, back) = (endpoint(front), endpoint(back));
            let mut args = vec!["pipe", "--front", front.as_str(), "--back", back.as_str()];
            args.extend_from_slice(extra);
            ezarch(&args)
        };
        let pipes =
            vec![pipe(0, 1, &[]), pipe(2, 3, &["--mode", "router-pub"]), pipe(4, 5, &["--reply-affinity"])];
        for port in &ports {
            wait_for_port(*port);
        }
        (ezarch(&["broker"]), pipes)
    } else {
        (ezarch(&["up"]), Vec::new())
    };
    let server: Vec<u32> = std::iter::once(&up).chain(&_pipes).map(interop::Logged::pid).collect();
    wait_for_port(ports[0]);
    let workers: Vec<interop::Logged> = (0..WORKERS).map(|_| ezarch(&["worker", "echo"])).collect();
    up.wait_log("joined service echo", WORKERS, Duration::from_secs(20));
    let mut reactor = Reactor::new().unwrap();
    let options = SocketOptions { send_hwm: 100_000, recv_hwm: 100_000, ..SocketOptions::default() };
    let client = reactor.socket(SocketType::Dealer, options).unwrap();
    reactor.connect(client, &format!("tcp://127.0.0.1:{}", ports[0])).unwrap();
    reactor.run_until(Duration::from_secs(5), |r| r.peer_count(client) == 1).unwrap();
    let payload = Bytes::from(vec![b'p'; PAYLOAD]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = scrape.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || scrape_every_second(monitor_port, &stop))
    });
    let figures = IN_FLIGHT
        .iter()
        .map(|&window| {
            let reactor = std::cell::RefCell::new(&mut reactor);
            drive(
                window,
                &server,
                |seq| {
                    let request = vec![
                        Bytes::new(),
                        Bytes::from_static(b"\x02"),
                        Bytes::copy_from_slice(&seq.to_be_bytes()),
                        Bytes::from_static(b"echo"),
                        Bytes::from_static(b"/echo"),
                        payload.clone(),
                    ];
                    let _ = reactor.borrow_mut().send(client, request);
                },
                |done| {
                    let mut r = reactor.borrow_mut();
                    r.poll(Some(Duration::from_millis(100))).unwrap();
                    while let Some(reply) = r.recv(client) {
                        if reply.len() == 4 && reply[1].len() == 8 && &reply[2][..] == b"OK" {
                            done.push(u64::from_be_bytes(reply[1][..8].try_into().unwrap()));
                        }
                    }
                },
            )
        })
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(scraped) = scraper.map(|t| t.join().unwrap_or(0)) {
        eprintln!("  /metrics scraped {scraped} times (200 OK)");
        assert!(scraped > 0, "the scraper never got /metrics");
    }
    drop((up, workers, _pipes));
    figures
}

// ---- NATS ----

/// A responder: subscribes to `echo` in queue group `workers` and answers every request.
fn nats_responder(addr: &str) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone().unwrap());
    let mut writer = std::io::BufWriter::with_capacity(1 << 16, stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // INFO
    writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB echo workers 1\r\n").unwrap();
    await_pong(&mut reader, &mut writer);
    println!("ready"); // the server has our SUB: the bench may start
    let mut payload = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return;
        }
        if line.starts_with("PING") {
            writer.write_all(b"PONG\r\n").unwrap();
        } else if let Some(rest) = line.strip_prefix("MSG ") {
            // MSG <subject> <sid> <reply-to> <len>
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let len: usize = parts[3].parse().unwrap();
            payload.resize(len + 2, 0);
            reader.read_exact(&mut payload).unwrap();
            write!(writer, "PUB {} {len}\r\n", parts[2]).unwrap();
            writer.write_all(&payload).unwrap();
        }
        if reader.buffer().is_empty() {
            writer.flush().unwrap();
        }
    }
}

/// Sends PING and reads up to the PONG: the server has processed everything sent before it.
fn await_pong(reader: &mut impl BufRead, writer: &mut impl Write) {
    writer.write_all(b"PING\r\n").unwrap();
    writer.flush().unwrap();
    let mut line = String::new();
    while !line.starts_with("PONG") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "nats-server closed the connection");
    }
}

fn measure_nats() -> Vec<Figures> {
    let port = free_port();
    let mut procs = Procs(vec![Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server must be installed (apt-get install nats-server)")]);
    wait_for_port(port);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..WORKERS {
        let me = std::env::current_exe().unwrap();
        let mut responder = Command::new(me)
            .env("EZARCH_NATS_RESPONDER", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(responder.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "a NATS responder did not subscribe");
        procs.0.push(responder);
    }
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone().unwrap());
    let writer = std::cell::RefCell::new(std::io::BufWriter::with_capacity(1 << 16, stream));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // INFO
    writer
        .borrow_mut()
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.bench.* 1\r\n")
        .unwrap();
    await_pong(&mut reader, &mut *writer.borrow_mut());
    let payload = vec![b'p'; PAYLOAD];
    let reader = std::cell::RefCell::new(reader);
    let server = [procs.0[0].id()];
    let figures = IN_FLIGHT
        .iter()
        .map(|&window| {
            drive(
                window,
                &server,
                |seq| {
                    let mut w = writer.borrow_mut();
                    write!(w, "PUB echo _INBOX.bench.{seq} {PAYLOAD}\r\n").unwrap();
                    w.write_all(&payload).unwrap();
                    w.write_all(b"\r\n").unwrap();
                },
                |done| {
                    writer.borrow_mut().flush().unwrap();
                    let mut r = reader.borrow_mut();
                    let mut line = String::new();
                    let mut body = vec![0u8; PAYLOAD + 2];
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if line.starts_with("PING") {
                            writer.borrow_mut().write_all(b"PONG\r\n").unwrap();
                        } else if let Some(rest) = line.strip_prefix("MSG _INBOX.bench.") {
                            let seq: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
                            r.read_exact(&mut body).unwrap();
                            done.push(seq);
                        }
                        if r.buffer().is_empty() {
                            return;
                        }
                    }
                },
            )
        })
        .collect();
    drop(procs);
    figures
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(addr) = std::env::var("EZARCH_NATS_RESPONDER") {
        return nats_responder(&addr);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("EZARCH_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    // EZARCH_BENCH_BASELINE: another ezarch build, measured in the same run ("before" figures).
    // EZARCH_BENCH_SYSTEMS=ezarch skips NATS.
    let baseline = std::env::var("EZARCH_BENCH_BASELINE").ok();
    let with_nats = std::env::var("EZARCH_BENCH_SYSTEMS").map_or(true, |s| s.contains("nats"));
    let mut systems: Vec<(&str, Vec<Vec<Figures>>)> = vec![("ezarch up", Vec::new())];
    if baseline.is_some() {
        systems.push(("ezarch up (baseline)", Vec::new()));
    }
    if std::env::var("EZARCH_BENCH_SYSTEMS").is_ok_and(|s| s.contains("scrape")) {
        systems.push(("ezarch up, /metrics every 1 s", Vec::new()));
    }
    if std::env::var("EZARCH_BENCH_SYSTEMS").is_ok_and(|s| s.contains("split")) {
        systems.push(("ezarch, 3 pipes + broker as 4 processes", Vec::new()));
    }
    if with_nats {
        systems.push(("NATS", Vec::new()));
    }
    for run in 0..runs {
        for (name, results) in systems.iter_mut() {
            eprintln!("run {}/{runs}: {name}", run + 1);
            results.push(match *name {
                "NATS" => measure_nats(),
                "ezarch up" => measure_ezarch(env!("CARGO_BIN_EXE_ezarch"), Layout::Up),
                "ezarch up, /metrics every 1 s" => {
                    measure_ezarch(env!("CARGO_BIN_EXE_ezarch"), Layout::Scraped)
                }
                "ezarch, 3 pipes + broker as 4 processes" => {
                    measure_ezarch(env!("CARGO_BIN_EXE_ezarch"), Layout::Split)
                }
                _ => measure_ezarch(baseline.as_deref().unwrap_or_default(), Layout::Up),
            });
        }
    }
    let summarize = |all: &Vec<Vec<Figures>>, i: usize| Figures {
        rps: median(all.iter().map(|r| r[i].rps).collect()),
        p50_us: median(all.iter().map(|r| r[i].p50_us).collect()),
        p99_us: median(all.iter().map(|r| r[i].p99_us).collect()),
        cpu_us: median(all.iter().map(|r| r[i].cpu_us).collect()),
    };
    println!("\nRequest/reply, {PAYLOAD} B payload, {WORKERS} echo workers, medians of {runs} runs\n");
    println!("| in flight | system | req/s | p50 µs | p99 µs | server CPU µs per request |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (i, window) in IN_FLIGHT.iter().enumerate() {
        for (name, all) in &systems {
            let f = summarize(all, i);
            println!(
                "| {window} | {name} | {:.0} | {:.1} | {:.1} | {:.2} |",
                f.rps, f.p50_us, f.p99_us, f.cpu_us
            );
        }
    }
    println!("\n| in flight | other system | ezarch / other req/s | ezarch p50 / other p50 |");
    println!("|---:|---|---:|---:|");
    for (i, window) in IN_FLIGHT.iter().enumerate() {
        let e = summarize(&systems[0].1, i);
        for (name, all) in &systems[1..] {
            let o = summarize(all, i);
            println!("| {window} | {name} | {:.2}x | {:.2} |", e.rps / o.rps, e.p50_us / o.p50_us);
        }
    }
}
