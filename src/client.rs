//! A Rust client for EZ Arch services: one DEALER on its own reactor, connected to the in pipe.
//!
//! ```no_run
//! use bytes::Bytes;
//! use ezarch::client::{Client, ClientOptions};
//!
//! let mut client = Client::connect("tcp://127.0.0.1:9000", ClientOptions::default())?;
//! let reply = client.call(b"echo", &[Bytes::from_static(b"/echo"), Bytes::from_static(b"hi")])?;
//! assert_eq!(&reply[0][..], b"OK");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Requests are `["", 0x02, REQ_ID, SERVICE, BODY...]`; every attempt reuses the same REQ_ID, as
//! the original client does, and a late reply to an earlier request is logged and ignored.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::wire;
use crate::reactor::{self, Reactor, SocketId};
use crate::socket::{SocketOptions, SocketType};

/// How a `Client` calls: the reply timeout, the attempts, and CURVE.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long one attempt waits for its reply (the original: 5000 ms).
    pub timeout: Duration,
    /// Attempts per call, all with the same request id (the original: 2).
    pub attempts: u32,
    /// CURVE to the node (`Curve::Client` with its public key); `None`: NULL.
    pub curve: Option<zmtp::curve::Curve>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_millis(5000), attempts: 2, curve: None }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No reply within `attempts` x `timeout`.
    Timeout {
        /// Attempts made.
        attempts: u32,
        /// How long each attempt waited.
        timeout: Duration,
    },
    /// Polling the reactor failed.
    Io(std::io::Error),
    /// The stop flag was set (Ctrl-C) before a reply came.
    Interrupted,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout { attempts, timeout } => {
                write!(f, "no reply after {attempts} attempt(s) of {timeout:?}")
            }
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for CallError {}

/// A client of EZ Arch services: one DEALER on its own reactor, connected to the in pipe.
pub struct Client {
    reactor: Reactor,
    dealer: SocketId,
    options: ClientOptions,
    stop: Option<&'static AtomicBool>,
}

/// How long a waiting call sleeps at most between looks at its stop flag (a signal that lands
/// just before the wait would otherwise be seen only at the reply or the timeout).
const STOP_CHECK: Duration = Duration::from_millis(100);

impl Client {
    /// Connects (and keeps reconnecting) to the in pipe's ROUTER at `endpoint`.
    pub fn connect(endpoint: &str, options: ClientOptions) -> Result<Self, reactor::Error> {
        let mut reactor = Reactor::new()?;
        let socket_options = SocketOptions { curve: options.curve.clone(), ..SocketOptions::default() };
        let dealer = reactor.socket(SocketType::Dealer, socket_options)?;
        reactor.connect(dealer, endpoint)?;
        Ok(Self { reactor, dealer, options, stop: None })
    }

    /// A call gives up with `CallError::Interrupted` as soon as `stop` is set (`signals::install`).
    pub fn stop_on(mut self, stop: &'static AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Calls `service` with `body`; returns the reply frames after the request id
    /// (e.g. `["OK", ...]`, or `["EZ_ERR", "NO_SERVICE"]`).
    pub fn call(&mut self, service: &[u8], body: &[Bytes]) -> Result<Vec<Bytes>, CallError> {
        let req_id = Bytes::from(crate::random::uuid());
        let mut request = vec![Bytes::new(), Bytes::from_static(wire::CLIENT), req_id.clone()];
        request.push(Bytes::copy_from_slice(service));
        request.extend_from_slice(body);
        for attempt in 1..=self.options.attempts {
            if self.reactor.send(self.dealer, request.clone()).is_err() {
                log::debug!("attempt {attempt}: request could not be queued");
            }
            if let Some(reply) = self.wait_for(&req_id)? {
                return Ok(reply);
            }
            log::debug!("attempt {attempt} of {} timed out", self.options.attempts);
        }
        Err(CallError::Timeout { attempts: self.options.attempts, timeout: self.options.timeout })
    }

    fn wait_for(&mut self, req_id: &Bytes) -> Result<Option<Vec<Bytes>>, CallError> {
        let deadline = crate::time::after(Instant::now(), self.options.timeout);
        loop {
            while let Some(mut message) = self.reactor.recv(self.dealer) {
                // ["", REQ_ID, REPLY...]
                if message.len() >= 2 && message[0].is_empty() && message[1] == *req_id {
                    return Ok(Some(message.split_off(2)));
                }
                log::debug!("ignoring a reply for another (expired) request");
            }
            if self.stop.is_some_and(|stop| stop.load(Ordering::Relaxed)) {
                return Err(CallError::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.reactor.poll(Some((deadline - now).min(STOP_CHECK))).map_err(CallError::Io)?;
        }
    }
}
