//! The EZ Arch pipes: stateless forwarders between two sockets of one reactor.
//!
//! - ROUTER -> DEALER (in pipe, worker pipe): whatever the ROUTER reads (identity frame first)
//!   goes out unchanged on the DEALER, round-robin over attached brokers; whatever the DEALER
//!   reads goes out on the ROUTER, routed by its first frame.
//! - ROUTER -> PUB (broker pipe): whatever the ROUTER reads is published unchanged.
//!
//! Messages move as `Bytes` views; nothing is copied. When the DEALER has no room the message
//! waits here and the ROUTER is not read, so backpressure reaches the sender through TCP.
//!
//! The worker pipe adds reply affinity (`affinity`): a worker's reply goes to the broker that
//! dispatched its request, whichever brokers are attached by then.

mod affinity;
mod gate;
mod owners;

pub use self::affinity::Affinity;
pub use self::gate::{Gate, GateStats, Verdict};
pub use self::owners::{Claim, Owners, MAX_OWNERS};

use std::time::Instant;

use crate::reactor::{Error, Reactor, SocketId};
use crate::socket::{Message, PeerKey, SendError, SocketOptions, SocketType};

/// Which forwarder to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeMode {
    /// Front ROUTER, back DEALER: the in and worker pipes.
    RouterDealer,
    /// Front ROUTER, back PUB: the broker pipe.
    RouterPub,
}

/// Options for a socket that brokers attach to: ZMTP heartbeats that close a broker silent for
/// `silence` (a host cut off sends no FIN), and a DEALER that hands a departed broker's unsent
/// messages to the others. `silence` zero: heartbeats off.
pub fn broker_facing_options(silence: std::time::Duration) -> SocketOptions {
    let heartbeat = match silence.is_zero() {
        true => zmtp::Heartbeat::default(),
        false => zmtp::Heartbeat {
            interval: Some(silence / 4),
            timeout: Some(silence - silence / 4),
            ttl: Some(silence),
        },
    };
    SocketOptions { heartbeat, dealer_reroute: true, ..SocketOptions::default() }
}

/// Counters for one pipe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Messages the front ROUTER read and the back socket took.
    pub forwarded_in: u64,
    /// Messages the back DEALER read and the front ROUTER took.
    pub forwarded_out: u64,
    /// Messages the far side refused (e.g. a reply for a client that is gone).
    pub dropped: u64,
}

/// One pipe: a front ROUTER, a back DEALER or PUB, and what moves between them.
#[derive(Debug)]
pub struct Forwarder {
    /// The ROUTER that clients, workers or brokers' state DEALERs connect to.
    pub front: SocketId,
    /// The DEALER or PUB that brokers connect to.
    pub back: SocketId,
    mode: PipeMode,
    /// A front message the back socket could not take yet, and the peer it must go to.
    stalled: Option<(Option<PeerKey>, Message)>,
    /// Reply affinity (the worker pipe).
    affinity: Option<Affinity>,
    /// Per-key permissions at the front door (CURVE with `CURVE_PERMISSIONS`).
    pub gate: Option<Gate>,
    /// Its counters.
    pub stats: PipeStats,
}

impl Forwarder {
    /// Creates the two sockets (front ROUTER; back DEALER or PUB) on `reactor`, unbound.
    pub fn new(reactor: &mut Reactor, mode: PipeMode, options: &SocketOptions) -> Result<Self, Error> {
        Self::with_options(reactor, mode, options, options)
    }

    /// Like `new`, with options of its own for each socket.
    pub fn with_options(
        reactor: &mut Reactor,
        mode: PipeMode,
        front_options: &SocketOptions,
        back_options: &SocketOptions,
    ) -> Result<Self, Error> {
        let front = reactor.socket(SocketType::Router, front_options.clone())?;
        let back_type = match mode {
            PipeMode::RouterDealer => SocketType::Dealer,
            PipeMode::RouterPub => SocketType::Pub,
        };
        let back = reactor.socket(back_type, back_options.clone())?;
        Ok(Self { front, back, mode, stalled: None, affinity: None, gate: None, stats: PipeStats::default() })
    }

    /// Sends each worker reply to the broker that dispatched its request (the worker pipe).
    pub fn set_reply_affinity(&mut self) {
        self.affinity.get_or_insert_with(Affinity::default);
    }

    /// The reply-affinity table, when this pipe has one.
    pub fn affinity(&self) -> Option<&Affinity> {
        self.affinity.as_ref()
    }

    /// Forwards everything that can move now, both ways; returns how many messages moved.
    pub fn pump(&mut self, reactor: &mut Reactor, now: Instant) -> u64 {
        if self.stalled.is_none() && !reactor.has_inbound(self.front) && !reactor.has_inbound(self.back) {
            return 0; // the common case in `ezarch up`, where the node asks every pipe every pass
        }
        let before = self.stats.forwarded_in + self.stats.forwarded_out;
        self.pump_front_to_back(reactor, now);
        if self.mode == PipeMode::RouterDealer {
            // Every dispatch is remembered, even with one broker attached: another may attach
            // before the reply comes, and the reply must not go to it.
            while let Some((from, message)) = reactor.recv_from(self.back) {
                if let Some(affinity) = &mut self.affinity {
                    affinity.note_dispatch(from, &message);
                }
                if self.gate.as_mut().is_some_and(|g| !g.check_dispatch(reactor, self.front, &message, now)) {
                    self.stats.dropped += 1;
                    continue;
                }
                match reactor.send(self.front, message) {
                    Ok(()) => self.stats.forwarded_out += 1,
                    Err(_) => self.stats.dropped += 1,
                }
            }
        }
        self.stats.forwarded_in + self.stats.forwarded_out - before
    }

    fn pump_front_to_back(&mut self, reactor: &mut Reactor, now: Instant) {
        loop {
            let next = self.stalled.take().or_else(|| {
                let message = reactor.recv(self.front)?;
                let to = self.affinity.as_mut().filter(|a| !a.is_empty()).and_then(|a| a.reply_to(&message));
                Some((to, message))
            });
            let Some((to, message)) = next else { return };
            let message = match &mut self.gate {
                None => message,
                Some(gate) => match gate.check(reactor, self.front, message, now) {
                    Verdict::Pass(message) => message,
                    Verdict::Refuse(answer) => {
                        if let Some(answer) = answer {
                            let _ = reactor.send(self.front, answer);
                        }
                        continue;
                    }
                },
            };
            let sent = match to {
                Some(peer) => match reactor.send_to(self.back, peer, message) {
                    // That broker is gone: any broker will do.
                    Err(SendError::Unroutable(message)) => reactor.send(self.back, message),
                    other => other,
                },
                None => reactor.send(self.back, message),
            };
            match sent {
                Ok(()) => self.stats.forwarded_in += 1,
                Err(SendError::WouldBlock(message)) => {
                    self.stalled = Some((to, message));
                    return;
                }
                Err(_) => self.stats.dropped += 1,
            }
        }
    }
}
