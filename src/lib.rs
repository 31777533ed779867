//! ezarch: the EZ Arch request/reply service broker on a hand-rolled ZMTP 3.1 stack.
//!
//! The wire protocol lives in the sans-IO `zmtp` crate, re-exported here. The reactor, socket
//! semantics, pipes and broker are built on it in later modules.

#![forbid(unsafe_code)]

pub use zmtp;

pub mod reactor;
pub mod socket;
