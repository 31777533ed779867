//! ROUTER -> DEALER forwarding: `ezarch pipe` against libzmq's own forwarder (`zmq.proxy` in a
//! pyzmq process, which runs libzmq's C loop), both driven by the same load generator in one run,
//! next to a direct echo that shows the load generator is not the bottleneck.
//!
//! A fourth contender, **raw TCP relay** (`support/tcp_relay.rs`, this bench's binary re-run as
//! `--tcp-relay`), copies bytes between the two sides without reading them: the limit.
//!
//! Topology: client DEALER -> forwarder ROUTER (front) -> forwarder DEALER (back) -> echo DEALER,
//! and back the same way. The client and the echo share this process's reactor; each contender
//! is its own process. For 16 B, 256 B, 64 KiB and 1 MiB: forwarded msg/s and MiB/s with a window
//! of messages in flight, and round-trip p50/p99 with one in flight. Runs each contender
//! `EZARCH_BENCH_RUNS` times (default 3), interleaved, and reports medians and ratios.
//!
//! With `EZARCH_BENCH_CURVE=1` every hop speaks CURVE (RFC 26): `ezarch pipe` with
//! `CURVE_SECRET_KEY`, libzmq's proxy with `curve_server` on both sockets, the load generator
//! as CURVE clients; sizes 16 B, 1 KiB and 1 MiB.
//!
//! Run: `cargo bench --bench forwarder` (needs python3 with pyzmq).

#[path = "../tests/interop/mod.rs"]
mod interop;
#[path = "support/tcp_relay.rs"]
mod tcp_relay;

use interop::node::Usage;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezarch::reactor::{Reactor, SocketId};
use ezarch::socket::{SocketOptions, SocketType};

const PLAIN_SIZES: &[(usize, &str, usize)] =
    &[(16, "16 B", 1000), (256, "256 B", 1000), (64 << 10, "64 KiB", 64), (1 << 20, "1 MiB", 8)];
const CURVE_SIZES: &[(usize, &str, usize)] =
    &[(16, "16 B", 1000), (1 << 10, "1 KiB", 1000), (1 << 20, "1 MiB", 8)];

/// The forwarders' CURVE key pair, when `EZARCH_BENCH_CURVE` is set.
fn curve_keys() -> Option<&'static ezarch::zmtp::curve::KeyPair> {
    static KEYS: std::sync::OnceLock<Option<ezarch::zmtp::curve::KeyPair>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        std::env::var("EZARCH_BENCH_CURVE").is_ok().then(|| ezarch::sodium::generate_keys().unwrap())
    })
    .as_ref()
}

fn sizes() -> &'static [(usize, &'static str, usize)] {
    if curve_keys().is_some() {
        CURVE_SIZES
    } else {
        PLAIN_SIZES
    }
}

fn z85_secret() -> String {
    curve_keys()
        .map(|k| ezarch::zmtp::z85::encode(&*k.secret_bytes()).unwrap_or_default())
        .unwrap_or_default()
}
const THROUGHPUT_TIME: Duration = Duration::from_millis(2000);
const LATENCY_SAMPLES: usize = 3000;

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Direct,
    Relay,
    Ezarch,
    Libzmq,
    /// `ezarch pipe` of another build (`EZARCH_BENCH_BASELINE`), for before/after in one run.
    Baseline,
}

impl Contender {
    fn short(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Relay => "relay",
            Contender::Ezarch => "ezarch",
            Contender::Libzmq => "libzmq",
            Contender::Baseline => "before",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Contender::Direct => "direct echo (no forwarder)",
            Contender::Relay => "raw TCP relay",
            Contender::Ezarch => "ezarch pipe",
            Contender::Libzmq => "libzmq zmq.proxy",
            Contender::Baseline => "ezarch pipe (before)",
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Figures {
    msgs_per_sec: f64,
    /// CPU time of the forwarder process (all its threads) per round trip, while measuring
    /// msg/s.
    cpu_us: f64,
    /// Page faults of the forwarder process per round trip, meanwhile.
    faults: f64,
    p50_us: f64,
    p99_us: f64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the contender's forwarder process; returns it with its front and back endpoints.
fn start(contender: Contender) -> (Option<Child>, String, String) {
    let front = format!("tcp://127.0.0.1:{}", free_port());
    let back = format!("tcp://127.0.0.1:{}", free_port());
    let child = match contender {
        Contender::Direct => None,
        Contender::Relay => Some(
            Command::new(std::env::current_exe().expect("this bench's own path"))
                .args(["--tcp-relay", &front, &back])
                .stdin(Stdio::null())
                .spawn()
                .expect("start the TCP relay"),
        ),
        Contender::Ezarch | Contender::Baseline => Some(
            // EZARCH_BENCH_BIN: another build of ezarch instead of this one; EZARCH_BENCH_BASELINE:
            // a second build run beside it.
            Command::new(match contender {
                Contender::Baseline => std::env::var("EZARCH_BENCH_BASELINE").unwrap_or_default(),
                _ => std::env::var("EZARCH_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_ezarch").into()),
            })
            .args(["--log-level", "warn", "pipe", "--front", &front, "--back", &back])
            .env("CURVE_SECRET_KEY", z85_secret())
            .stdin(Stdio::null())
            .spawn()
            .expect("start ezarch pipe"),
        ),
        Contender::Libzmq => Some(
            Command::new(interop::python())
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/libzmq_proxy.py"))
                .args([&front, &back, &z85_secret()])
                .stdin(Stdio::null())
                .spawn()
                .expect("start python3 benches/libzmq_proxy.py (needs pyzmq)"),
        ),
    };
    if contender != Contender::Direct {
        // Both ends bound (the back one is bound last) before the load starts.
        interop::wait_listening(&front, Duration::from_secs(30));
        interop::wait_listening(&back, Duration::from_secs(30));
    }
    (child, front, back)
}

/// The load generator: a client DEALER and an echo peer on one reactor.
struct Load {
    reactor: Reactor,
    client: SocketId,
    echo: SocketId,
}

impl Load {
    fn new(contender: Contender, front: &str, back: &str) -> Self {
        let mut reactor = Reactor::new().unwrap();
        let provider = || ezarch::sodium::provider().unwrap();
        let curve = curve_keys().map(|keys| ezarch::zmtp::curve::Curve::Client {
            keys: ezarch::sodium::generate_keys().unwrap(),
            server: *keys.public(),
            provider: provider(),
        });
        let options =
            SocketOptions { send_hwm: 100_000, recv_hwm: 100_000, curve, ..SocketOptions::default() };
        let client = reactor.socket(SocketType::Dealer, options.clone()).unwrap();
        let echo = if contender == Contender::Direct {
            let server = curve_keys().map(|keys| ezarch::zmtp::curve::Curve::Server {
                keys: keys.clone(),
                authorizer: ezarch::zmtp::curve::Authorizer::any(),
                provider: provider(),
            });
            let echo =
                reactor.socket(SocketType::Router, SocketOptions { curve: server, ..options }).unwrap();
            let addr = reactor.bind(echo, "tcp://127.0.0.1:0").unwrap();
            reactor.connect(client, &format!("tcp://{addr}")).unwrap();
            echo
        } else {
            let echo = reactor.socket(SocketType::Dealer, options).unwrap();
            reactor.connect(echo, back).unwrap();
            reactor.connect(client, front).unwrap();
            echo
        };
        let mut load = Self { reactor, client, echo };
        let ready = load
            .reactor
            .run_until(Duration::from_secs(10), |r| r.peer_count(client) == 1 && r.peer_count(echo) == 1)
            .unwrap();
        assert!(ready, "load generator could not connect");
        load
    }

    /// One reactor turn; echoes what the echo peer got; returns the replies the client got.
    fn turn(&mut self) -> usize {
        self.reactor.poll(Some(Duration::from_millis(100))).unwrap();
        while let Some(message) = self.reactor.recv(self.echo) {
            let _ = self.reactor.send(self.echo, message);
        }
        let mut replies = 0;
        while self.reactor.recv(self.client).is_some() {
            replies += 1;
        }
        replies
    }

    /// Round trips per second with `window` in flight, and the CPU µs and page faults that
    /// process `cpu_of` spent per round trip meanwhile.
    fn throughput(&mut self, body: &Bytes, window: usize, cpu_of: Option<u32>) -> (f64, (f64, f64)) {
        for _ in 0..window {
            self.reactor.send(self.client, vec![body.clone()]).unwrap();
        }
        let warmup_end = Instant::now() + Duration::from_millis(300);
        let mut counted = 0usize;
        let mut start = None;
        let mut usage_start = Usage::default();
        loop {
            let replies = self.turn();
            for _ in 0..replies {
                let _ = self.reactor.send(self.client, vec![body.clone()]);
            }
            let now = Instant::now();
            match start {
                None if now >= warmup_end => {
                    start = Some(now);
                    usage_start = Usage::of(cpu_of.as_slice());
                }
                None => {}
                Some(s) => {
                    counted += replies;
                    if now - s >= THROUGHPUT_TIME {
                        let rate = counted as f64 / (now - s).as_secs_f64();
                        let used = Usage::of(cpu_of.as_slice()).per(usage_start, counted.max(1) as f64);
                        self.drain(window);
                        return (rate, used);
                    }
                }
            }
        }
    }

    /// Waits for the window's last replies so the next measurement starts clean.
    fn drain(&mut self, window: usize) {
        let mut outstanding = window;
        let deadline = Instant::now() + Duration::from_secs(10);
        while outstanding > 0 && Instant::now() < deadline {
            outstanding = outstanding.saturating_sub(self.turn());
        }
    }

    fn latency(&mut self, body: &Bytes) -> (f64, f64) {
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for i in 0..LATENCY_SAMPLES + 200 {
            let start = Instant::now();
            self.reactor.send(self.client, vec![body.clone()]).unwrap();
            loop {
                self.reactor.poll(Some(Duration::from_millis(100))).unwrap();
                while let Some(message) = self.reactor.recv(self.echo) {
                    let _ = self.reactor.send(self.echo, message);
                }
                if self.reactor.recv(self.client).is_some() {
                    break;
                }
            }
            if i >= 200 {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        samples.sort_by(f64::total_cmp);
        (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
    }
}

fn measure(contender: Contender) -> Vec<Figures> {
    let (mut child, front, back) = start(contender);
    let mut load = Load::new(contender, &front, &back);
    let only = std::env::var("EZARCH_BENCH_SIZES").unwrap_or_default();
    let figures = sizes()
        .iter()
        .map(|&(size, label, window)| {
            if !only.is_empty() && !only.split(',').any(|s| s == label.replace(' ', "")) {
                return Figures::default();
            }
            let body = Bytes::from(vec![0xA5u8; size]);
            let pid = child.as_ref().map(Child::id);
            let (msgs_per_sec, (cpu_us, faults)) = load.throughput(&body, window, pid);
            let (p50_us, p99_us) = load.latency(&body);
            Figures { msgs_per_sec, cpu_us, faults, p50_us, p99_us }
        })
        .collect();
    drop(load);
    if let Some(child) = child.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    figures
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, front, back] = &args[..] {
        if flag == "--tcp-relay" {
            if let Err(e) = tcp_relay::run(front, back) {
                eprintln!("tcp relay: {e}");
            }
            return;
        }
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let runs: usize = std::env::var("EZARCH_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let wanted = std::env::var("EZARCH_BENCH_CONTENDERS").unwrap_or_default();
    let mut all = vec![Contender::Direct, Contender::Relay, Contender::Ezarch, Contender::Libzmq];
    if std::env::var_os("EZARCH_BENCH_BASELINE").is_some() {
        all.push(Contender::Baseline);
    }
    let contenders: Vec<Contender> =
        all.into_iter().filter(|c| wanted.is_empty() || wanted.split(',').any(|w| w == c.short())).collect();
    let mut results: Vec<Vec<Vec<Figures>>> = vec![Vec::new(); contenders.len()];
    for run in 0..runs {
        for (i, &contender) in contenders.iter().enumerate() {
            eprintln!("run {}/{runs}: {}", run + 1, contender.name());
            results[i].push(measure(contender));
        }
    }
    println!("\nROUTER->DEALER forwarding, medians of {runs} runs (same load generator, one run)\n");
    println!("| size | contender | msg/s | MiB/s | CPU µs per round trip | page faults per round trip | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut table = vec![vec![Figures::default(); sizes().len()]; contenders.len()];
    for (c, &contender) in contenders.iter().enumerate() {
        for (s, &(size, label, _)) in sizes().iter().enumerate() {
            let pick = |f: fn(&Figures) -> f64| median(results[c].iter().map(|r| f(&r[s])).collect());
            let fig = Figures {
                msgs_per_sec: pick(|f| f.msgs_per_sec),
                cpu_us: pick(|f| f.cpu_us),
                faults: pick(|f| f.faults),
                p50_us: pick(|f| f.p50_us),
                p99_us: pick(|f| f.p99_us),
            };
            table[c][s] = fig;
            if fig.msgs_per_sec == 0.0 {
                continue; // a size EZARCH_BENCH_SIZES left out
            }
            let mib = fig.msgs_per_sec * size as f64 / (1 << 20) as f64;
            println!(
                "| {label} | {} | {:.0} | {mib:.1} | {:.2} | {:.2} | {:.1} | {:.1} |",
                contender.name(),
                fig.msgs_per_sec,
                fig.cpu_us,
                fig.faults,
                fig.p50_us,
                fig.p99_us
            );
        }
    }
    print_ratios(&contenders, &table);
}

/// Every forwarder against the raw relay (msg/s and p50) and ezarch against libzmq.
fn print_ratios(contenders: &[Contender], table: &[Vec<Figures>]) {
    let find = |wanted: Contender| contenders.iter().position(|&c| c == wanted);
    let (Some(relay), Some(ezarch), Some(libzmq)) =
        (find(Contender::Relay), find(Contender::Ezarch), find(Contender::Libzmq))
    else {
        return;
    };
    let baseline = find(Contender::Baseline);
    println!("\n| size | ezarch / relay msg/s | libzmq / relay | ezarch / libzmq | ezarch / before | CPU per round trip ezarch / libzmq | p50 ezarch / relay | p50 libzmq / relay |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (s, &(_, label, _)) in sizes().iter().enumerate() {
        let (r, e, l) = (table[relay][s], table[ezarch][s], table[libzmq][s]);
        let before = baseline
            .map_or("-".to_string(), |b| format!("{:.2}x", e.msgs_per_sec / table[b][s].msgs_per_sec));
        println!(
            "| {label} | {:.2} | {:.2} | {:.2}x | {before} | {:.2} | {:.2} | {:.2} |",
            e.msgs_per_sec / r.msgs_per_sec,
            l.msgs_per_sec / r.msgs_per_sec,
            e.msgs_per_sec / l.msgs_per_sec,
            e.cpu_us / l.cpu_us,
            e.p50_us / r.p50_us,
            l.p50_us / r.p50_us,
        );
    }
}
