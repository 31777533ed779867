//! What one scrape of the monitoring endpoint costs the node's reactor: rendering `/metrics`
//! (and `ez.stats`' JSON) from a snapshot with 1, 100 and 1,024 services (every service's
//! counters and a full latency histogram), and parsing the HTTP request head. Together with
//! the node's request rate this says what scraping once a second takes from it.
//!
//! Run: `cargo bench --bench monitor`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use ezarch::broker::{BrokerStats, ServiceCounters};
use ezarch::monitor::{http, metrics};
use ezarch::node::snapshot::{BrokerSnapshot, PipeSnapshot, ServiceSnapshot, Snapshot};

fn snapshot(services: usize) -> Snapshot {
    let mut counters = ServiceCounters { requests: 123_456, replies: 123_000, ..ServiceCounters::default() };
    for i in 0..1000u64 {
        counters.latency.observe(Duration::from_micros(i * 37 % 20_000));
    }
    let services = (0..services)
        .map(|i| ServiceSnapshot {
            name: Bytes::from(format!("service-{i}")),
            live_workers: 4,
            in_flight: 10,
            waiting: 0,
            counters,
        })
        .collect();
    Snapshot {
        version: "0.1.0",
        uptime: Duration::from_secs(3600),
        draining: false,
        broker: Some(BrokerSnapshot {
            stats: BrokerStats { requests: 1 << 30, replies: 1 << 30, ..BrokerStats::default() },
            attached: true,
            workers: 40,
            requests_waiting: 0,
            requests_in_flight: 1000,
            services,
            other: counters,
            services_untracked: 0,
        }),
        pipes: ["in", "worker", "broker"]
            .map(|name| PipeSnapshot { name, stats: ezarch::pipe::PipeStats::default() })
            .to_vec(),
        reactor: Default::default(),
        connections: 1000,
        max_connections: 10_000,
        memory_used: 1 << 20,
        memory_budget: 256 << 20,
        messages: Default::default(),
        monitor: (Default::default(), 1),
        refusals: Default::default(),
        handshaking: 0,
    }
}

fn bench(c: &mut Criterion) {
    for services in [1, 100, 1024] {
        let snap = snapshot(services);
        let bytes = metrics::render(&snap).len();
        c.bench_function(&format!("render /metrics, {services} services ({bytes} B)"), |b| {
            b.iter(|| metrics::render(std::hint::black_box(&snap)))
        });
    }
    let snap = snapshot(100);
    c.bench_function("ez.stats JSON", |b| b.iter(|| std::hint::black_box(&snap).stats_json()));
    c.bench_function("ez.services JSON, 100 services", |b| {
        b.iter(|| std::hint::black_box(&snap).services_json())
    });
    let head = b"GET /metrics HTTP/1.1\r\nHost: node:9010\r\nUser-Agent: Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    c.bench_function("parse a Prometheus scrape request", |b| {
        b.iter(|| http::parse(std::hint::black_box(head), false))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
