//! The EZ Arch pipes: stateless forwarders between two sockets of one reactor.
//!
//! - ROUTER -> DEALER (in pipe, worker pipe): whatever the ROUTER reads (identity frame first)
//!   goes out unchanged on the DEALER, round-robin over attached brokers; whatever the DEALER
//!   reads goes out on the ROUTER, routed by its first frame.
//! - ROUTER -> PUB (broker pipe): whatever the ROUTER reads is published unchanged.
//!
//! Messages move as `Bytes` views; nothing is copied. When the DEALER has no room the message
//! waits here and the ROUTER is not read, so backpressure reaches the sender through TCP.

use crate::reactor::{Error, Reactor, SocketId};
use crate::socket::{Message, SendError, SocketOptions, SocketType};

/// Which forwarder to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeMode {
    RouterDealer,
    RouterPub,
}

/// Counters for one pipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    pub forwarded_in: u64,
    pub forwarded_out: u64,
    /// Messages the far side refused (e.g. a reply for a client that is gone).
    pub dropped: u64,
}

#[derive(Debug)]
pub struct Forwarder {
    pub front: SocketId,
    pub back: SocketId,
    mode: PipeMode,
    /// A front message the back socket could not take yet.
    stalled: Option<Message>,
    pub stats: PipeStats,
}

impl Forwarder {
    /// Creates the two sockets (front ROUTER; back DEALER or PUB) on `reactor`, unbound.
    pub fn new(reactor: &mut Reactor, mode: PipeMode, options: &SocketOptions) -> Result<Self, Error> {
        let front = reactor.socket(SocketType::Router, options.clone())?;
        let back_type = match mode {
            PipeMode::RouterDealer => SocketType::Dealer,
            PipeMode::RouterPub => SocketType::Pub,
        };
        let back = reactor.socket(back_type, options.clone())?;
        Ok(Self { front, back, mode, stalled: None, stats: PipeStats::default() })
    }

    /// Forwards everything that can move now, both ways; returns how many messages moved.
    pub fn pump(&mut self, reactor: &mut Reactor) -> u64 {
        let before = self.stats.forwarded_in + self.stats.forwarded_out;
        self.pump_front_to_back(reactor);
        if self.mode == PipeMode::RouterDealer {
            while let Some(message) = reactor.recv(self.back) {
                match reactor.send(self.front, message) {
                    Ok(()) => self.stats.forwarded_out += 1,
                    Err(_) => self.stats.dropped += 1,
                }
            }
        }
        self.stats.forwarded_in + self.stats.forwarded_out - before
    }

    fn pump_front_to_back(&mut self, reactor: &mut Reactor) {
        loop {
            let Some(message) = self.stalled.take().or_else(|| reactor.recv(self.front)) else { return };
            match reactor.send(self.back, message) {
                Ok(()) => self.stats.forwarded_in += 1,
                Err(SendError::WouldBlock(message)) => {
                    self.stalled = Some(message);
                    return;
                }
                Err(_) => self.stats.dropped += 1,
            }
        }
    }
}
