//! A Rust worker for an EZ Arch service: a DEALER connected to the worker pipe that heartbeats
//! `["", 0x01, 0x01, SERVICE]` every interval and answers each request with what the handler
//! returns. When told to stop it stops heartbeating, answers every request it has received and
//! any that arrive until the link is quiet, delivers the replies, and only then closes: what it
//! held is not lost, and what the broker sends after that is sent again elsewhere.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use bytes::Bytes;
//! use ezarch::worker::{Worker, WorkerOptions};
//!
//! let stop = AtomicBool::new(false);
//! let mut worker = Worker::connect("tcp://127.0.0.1:9004", b"echo", WorkerOptions::default())?;
//! worker.run(&stop, |body| {
//!     let mut reply = vec![Bytes::from_static(b"OK")];
//!     reply.extend(body.iter().skip(1).cloned());
//!     reply
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::wire;
use crate::reactor::{self, Reactor, SocketId};
use crate::socket::{SocketOptions, SocketType};

/// How long a stopping worker keeps answering requests that still arrive.
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// How long a stopping worker waits for its replies to be written.
const FLUSH_TIME: Duration = Duration::from_secs(2);

/// How a `Worker` heartbeats, and CURVE.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Heartbeat interval (POLL_INTERVAL_MS; the original: 3000 ms).
    pub interval: Duration,
    /// CURVE to the node (`Curve::Client` with its public key); `None`: NULL.
    pub curve: Option<zmtp::curve::Curve>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self { interval: Duration::from_millis(3000), curve: None }
    }
}

/// A worker for one service: one DEALER on its own reactor, connected to the worker pipe.
pub struct Worker {
    reactor: Reactor,
    dealer: SocketId,
    service: Bytes,
    options: WorkerOptions,
    /// Requests answered so far.
    pub served: u64,
}

impl Worker {
    /// Connects to the worker pipe's ROUTER with identity `SERVICE-<8 random bytes>`.
    pub fn connect(endpoint: &str, service: &[u8], options: WorkerOptions) -> Result<Self, reactor::Error> {
        let mut identity = service.to_vec();
        identity.push(b'-');
        identity.extend(crate::random::bytes(8));
        let mut reactor = Reactor::new()?;
        let curve = options.curve.clone();
        let socket_options =
            SocketOptions { identity: Bytes::from(identity), curve, ..SocketOptions::default() };
        let dealer = reactor.socket(SocketType::Dealer, socket_options)?;
        reactor.connect(dealer, endpoint)?;
        Ok(Self { reactor, dealer, service: Bytes::copy_from_slice(service), options, served: 0 })
    }

    /// Serves until `stop` is set. `handler` gets the request body and returns the reply frames.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut handler: impl FnMut(&[Bytes]) -> Vec<Bytes>,
    ) -> std::io::Result<()> {
        let mut next_heartbeat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_heartbeat {
                let heartbeat = vec![
                    Bytes::new(),
                    Bytes::from_static(wire::WORKER),
                    Bytes::from_static(wire::HEARTBEAT),
                    self.service.clone(),
                ];
                let _ = self.reactor.send(self.dealer, heartbeat);
                next_heartbeat = crate::time::after(now, self.options.interval);
            }
            self.reactor
                .poll(Some(next_heartbeat.saturating_duration_since(now).min(Duration::from_millis(200))))?;
            self.serve_received(&mut handler);
        }
        self.drain(&mut handler)
    }

    /// Stopping: answers what was received and what arrives until a turn brings nothing new
    /// (at most `DRAIN_TIME`), then delivers the replies (at most `FLUSH_TIME`).
    fn drain(&mut self, handler: &mut impl FnMut(&[Bytes]) -> Vec<Bytes>) -> std::io::Result<()> {
        let drain_end = crate::time::after(Instant::now(), DRAIN_TIME);
        loop {
            self.reactor.poll(Some(Duration::ZERO))?;
            if self.serve_received(handler) == 0 || Instant::now() >= drain_end {
                break;
            }
        }
        let flushed = self.reactor.run_until(FLUSH_TIME, |r| !r.has_pending_output())?;
        log::info!("worker stopped after {} requests; replies delivered: {flushed}", self.served);
        Ok(())
    }

    /// Answers every request received so far; returns how many.
    fn serve_received(&mut self, handler: &mut impl FnMut(&[Bytes]) -> Vec<Bytes>) -> usize {
        let mut served = 0;
        while let Some(request) = self.reactor.recv(self.dealer) {
            // ["", CLIENT_ID, REQ_ID, BODY...]
            if request.len() < 3 || !request[0].is_empty() {
                log::debug!("dropping a malformed request of {} frames", request.len());
                continue;
            }
            let reply = handler(&request[3..]);
            let mut out = vec![
                Bytes::new(),
                Bytes::from_static(wire::WORKER),
                Bytes::from_static(wire::REPLY),
                request[1].clone(),
                Bytes::new(),
                request[2].clone(),
            ];
            out.extend(reply);
            let _ = self.reactor.send(self.dealer, out);
            self.served += 1;
            served += 1;
        }
        served
    }
}

/// The demo worker of the original test worker: `/echo` returns the body, `/req_count` how many
/// requests this worker served, anything else `["ERR", "<path> not found"]`.
pub fn demo_handler(served: &mut u64, body: &[Bytes]) -> Vec<Bytes> {
    *served += 1;
    let path = body.first().cloned().unwrap_or_default();
    match &path[..] {
        b"/echo" => std::iter::once(Bytes::from_static(wire::OK)).chain(body[1..].iter().cloned()).collect(),
        b"/req_count" => vec![Bytes::from_static(wire::OK), Bytes::from(served.to_string())],
        _ => {
            let mut message = path.to_vec();
            message.extend_from_slice(b" not found");
            vec![Bytes::from_static(wire::ERR), Bytes::from(message)]
        }
    }
}
