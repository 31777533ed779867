//! A Rust worker for an EZ Arch service: a DEALER connected to the worker pipe that heartbeats
//! `["", 0x01, 0x01, SERVICE]` every interval and answers each request with what the handler
//! returns.
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

use crate::reactor::{self, Reactor, SocketId};
use crate::socket::{SocketOptions, SocketType};

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Heartbeat interval (POLL_INTERVAL_MS; the original: 3000 ms).
    pub interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self { interval: Duration::from_millis(3000) }
    }
}

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
        let socket_options = SocketOptions { identity: Bytes::from(identity), ..SocketOptions::default() };
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
                let one = Bytes::from_static(b"\x01");
                let heartbeat = vec![Bytes::new(), one.clone(), one, self.service.clone()];
                let _ = self.reactor.send(self.dealer, heartbeat);
                next_heartbeat = crate::time::after(now, self.options.interval);
            }
            self.reactor
                .poll(Some(next_heartbeat.saturating_duration_since(now).min(Duration::from_millis(200))))?;
            while let Some(request) = self.reactor.recv(self.dealer) {
                // ["", CLIENT_ID, REQ_ID, BODY...]
                if request.len() < 3 || !request[0].is_empty() {
                    log::debug!("dropping a malformed request of {} frames", request.len());
                    continue;
                }
                let reply = handler(&request[3..]);
                let mut out = vec![
                    Bytes::new(),
                    Bytes::from_static(b"\x01"),
                    Bytes::from_static(b"\x02"),
                    request[1].clone(),
                    Bytes::new(),
                    request[2].clone(),
                ];
                out.extend(reply);
                let _ = self.reactor.send(self.dealer, out);
                self.served += 1;
            }
        }
        Ok(())
    }
}

/// The demo worker of the original test worker: `/echo` returns the body, `/req_count` how many
/// requests this worker served, anything else `["ERR", "<path> not found"]`.
pub fn demo_handler(served: &mut u64, body: &[Bytes]) -> Vec<Bytes> {
    *served += 1;
    let path = body.first().cloned().unwrap_or_default();
    match &path[..] {
        b"/echo" => std::iter::once(Bytes::from_static(b"OK")).chain(body[1..].iter().cloned()).collect(),
        b"/req_count" => vec![Bytes::from_static(b"OK"), Bytes::from(served.to_string())],
        _ => {
            let mut message = path.to_vec();
            message.extend_from_slice(b" not found");
            vec![Bytes::from_static(b"ERR"), Bytes::from(message)]
        }
    }
}
