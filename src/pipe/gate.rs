//! Per-key permissions at a client or worker door (CURVE with `CURVE_PERMISSIONS`), after the
//! handshake let the key in:
//! - a client's request outside the services its key may call is answered `EZ_ERR FORBIDDEN`
//!   by the gate itself;
//! - a worker's heartbeat for a service outside those its key may serve is dropped, so the
//!   worker never joins it;
//! - a worker identity belongs to the key that registered it while that worker is live
//!   (`Owners`): another key's heartbeat or reply under it is dropped, and a dispatch is
//!   delivered only to a connection holding the owner's key.
//!
//! Each refusal is counted (`GateStats`) and logged at most once per `LOG_INTERVAL`. The rules
//! come from `security::Permissions`; a key the file does not name may call and serve nothing.
//! The same gate guards the worker pipe and the generation-2 port, so they share one table of
//! owners.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::owners::{Claim, Owners};
use crate::broker::{printable, wire};
use crate::door::Door;
use crate::logging::Throttled;
use crate::reactor::{Reactor, SocketId};
use crate::security::Permissions;
use crate::socket::Message;

/// What the gate decided for one message.
pub enum Verdict {
    /// Let through, unchanged.
    Pass(Message),
    /// Refused; for a client, the answer to send back on the front socket.
    Refuse(Option<Message>),
}

/// What a gate refused, by reason; all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Client requests answered FORBIDDEN, or worker heartbeats for a service the key may not
    /// serve.
    pub forbidden: u64,
    /// Heartbeats and replies under a worker identity another key owns (or, for a heartbeat,
    /// with the table of owners full).
    pub identity_taken: u64,
    /// Dispatches dropped: the connection holding that identity does not have its owner's key.
    pub dispatch_dropped: u64,
}

/// The permission check of one door.
#[derive(Debug)]
pub struct Gate {
    /// Whose messages it checks (clients or workers).
    pub door: Door,
    /// The rules of `CURVE_PERMISSIONS`.
    pub permissions: Arc<Permissions>,
    /// Worker identities and their keys (the worker door).
    owners: Owners,
    /// What it refused.
    pub stats: GateStats,
    log: Throttled,
}

impl Gate {
    /// A gate for `door` with `permissions`; worker claims last `lifetime` past each heartbeat.
    pub fn new(door: Door, permissions: Arc<Permissions>, lifetime: Duration) -> Self {
        let owners = Owners::new(lifetime);
        Self { door, permissions, owners, stats: GateStats::default(), log: Throttled::default() }
    }

    /// Checks `message`, read from `front` (first frame: the sender's identity), against the
    /// sender's key.
    pub fn check(&mut self, reactor: &Reactor, front: SocketId, message: Message, now: Instant) -> Verdict {
        let Some(key) = reactor.peer_curve_key(front, &message[0]) else {
            // Every TCP peer of a CURVE listener has a key: this one is gone, or in memory.
            return Verdict::Pass(message);
        };
        match self.door {
            Door::Clients if message.len() >= 5 && message[2] == wire::CLIENT => {
                if self.permissions.may_call(&key, &message[4]) {
                    return Verdict::Pass(message);
                }
                self.refuse_request(&key, message, now)
            }
            Door::Workers
                if message.len() == 5 && message[2] == wire::WORKER && message[3] == wire::HEARTBEAT =>
            {
                self.check_heartbeat(&key, message, now)
            }
            Door::Workers if message.len() >= 4 && message[2] == wire::WORKER => {
                // A reply or an ACK: only from the identity's owner.
                if self.owners.may_speak(&message[0], &key, now) {
                    return Verdict::Pass(message);
                }
                self.stats.identity_taken += 1;
                self.note(now, || {
                    format!("reply dropped: worker {} is another key's", printable(&message[0]))
                });
                Verdict::Refuse(None)
            }
            _ => Verdict::Pass(message), // malformed ones are the broker's to count
        }
    }

    /// Whether a message sent out on `front` may go: at the worker door, a dispatch `[WORKER,
    /// ...]` goes only to a connection holding that identity's owner's key (counted and logged
    /// when not); at the client door, everything goes.
    pub fn check_dispatch(
        &mut self,
        reactor: &Reactor,
        front: SocketId,
        message: &Message,
        now: Instant,
    ) -> bool {
        if self.door != Door::Workers {
            return true;
        }
        let Some(identity) = message.first() else { return false };
        let holder = reactor.peer_curve_key(front, identity);
        if holder.is_some_and(|key| self.owners.may_receive(identity, &key)) {
            return true;
        }
        if holder.is_none() {
            return true; // nobody holds it: the socket drops it as unroutable
        }
        self.stats.dispatch_dropped += 1;
        self.note(now, || {
            format!("dispatch dropped: worker {} is not its owner's connection", printable(identity))
        });
        false
    }

    fn check_heartbeat(&mut self, key: &[u8; 32], message: Message, now: Instant) -> Verdict {
        let (identity, service) = (&message[0], &message[4]);
        if !self.permissions.may_serve(key, service) {
            self.stats.forbidden += 1;
            let who = z85(key);
            self.note(now, || {
                format!("heartbeat dropped: worker key {who} may not serve {}", printable(service))
            });
            return Verdict::Refuse(None);
        }
        match self.owners.claim(identity, key, now) {
            Claim::Granted => Verdict::Pass(message),
            Claim::Taken | Claim::Full => {
                self.stats.identity_taken += 1;
                let who = z85(key);
                self.note(now, || {
                    format!(
                        "heartbeat dropped: worker identity {} belongs to another key than {who}",
                        printable(identity)
                    )
                });
                Verdict::Refuse(None)
            }
        }
    }

    fn refuse_request(&mut self, key: &[u8; 32], message: Message, now: Instant) -> Verdict {
        self.stats.forbidden += 1;
        let who = z85(key);
        self.note(now, || format!("FORBIDDEN: client key {who} may not call {}", printable(&message[4])));
        let answer = vec![
            message[0].clone(),
            Bytes::new(),
            message[3].clone(),
            Bytes::from_static(wire::EZ_ERR),
            Bytes::from_static(wire::FORBIDDEN),
        ];
        Verdict::Refuse(Some(answer))
    }

    /// Logs a refusal at INFO, at most once per `LOG_INTERVAL` (with how many since).
    fn note(&mut self, now: Instant, line: impl FnOnce() -> String) {
        if let Some(count) = self.log.note(now) {
            let more = if count > 1 {
                format!(" ({} more refusals since the last such line)", count - 1)
            } else {
                String::new()
            };
            log::info!("{} at the {}{more}", line(), self.door);
        }
    }
}

fn z85(key: &[u8; 32]) -> String {
    zmtp::z85::encode(key).unwrap_or_default()
}
