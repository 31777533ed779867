//! ezarch: the EZ Arch request/reply service broker on a hand-rolled ZMTP 3.1 stack.
//!
//! The wire protocol lives in the sans-IO `zmtp` crate, re-exported here. On it:
//! - `socket`: ROUTER, DEALER, PUB and SUB semantics as plain structs (messages in, messages out);
//! - `reactor`: the single-threaded mio event loop that owns all I/O and timers;
//! - `pipe`: the EZ Arch forwarders (ROUTER -> DEALER, ROUTER -> PUB).

// Three audited exceptions, each call with a SAFETY line: `reactor::connection::read_into_spare`
// reads into uninitialized buffer capacity, `signals::install` registers the SIGINT/SIGTERM
// handlers, and `sodium` calls libsodium for CURVE's primitives; `reactor::fd_limit` reads and
// raises the open-file limit. Everything else is safe code, and the `zmtp` crate forbids unsafe
// outright (it takes its primitives from `sodium` through its `CryptoProvider`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use zmtp;

pub mod admin;
pub mod broker;
pub mod client;
pub mod config;
pub mod door;
pub mod logging;
pub mod monitor;
pub mod node;
pub mod pipe;
pub mod random;
pub mod reactor;
pub mod security;
pub mod signals;
pub mod socket;
pub mod sodium;
pub mod time;
pub mod worker;
