//! Per-key permissions at a pipe's front door (CURVE only): which services each client key may
//! call, and which each worker key may serve. A client's request outside its services is
//! answered `EZ_ERR FORBIDDEN` by the pipe itself; a worker's heartbeat for a service outside
//! its own is dropped, so the worker never joins it. Both are counted.
//!
//! The rules come from the `CURVE_PERMISSIONS` file (`security::Permissions`); a key the file
//! does not name may call and serve nothing.

use std::sync::Arc;

use bytes::Bytes;

use crate::broker::wire;
use crate::reactor::{Reactor, SocketId};
use crate::security::Permissions;
use crate::socket::Message;

/// Which side of the node a pipe's front door faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The in pipe: clients' requests `[CLIENT, "", 0x02, REQ_ID, SERVICE, ...]`.
    Clients,
    /// The worker pipe: workers' heartbeats `[WORKER, "", 0x01, 0x01, SERVICE]`.
    Workers,
}

/// What the gate decided for one message.
pub enum Verdict {
    /// Let through, unchanged.
    Pass(Message),
    /// Refused; for a client, the answer to send back on the front socket.
    Refuse(Option<Message>),
}

/// The permission check of one pipe.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Whose messages it checks.
    pub door: Door,
    /// The rules of `CURVE_PERMISSIONS`.
    pub permissions: Arc<Permissions>,
    /// Requests answered FORBIDDEN, or heartbeats dropped.
    pub refused: u64,
}

impl Gate {
    /// Checks `message`, read from `front`, against the sender's key.
    pub fn check(&mut self, reactor: &Reactor, front: SocketId, message: Message) -> Verdict {
        let key = reactor.peer_curve_key(front, &message[0]);
        let (service, allowed) = match self.door {
            Door::Clients if message.len() >= 5 && message[2] == wire::CLIENT => {
                (&message[4], key.is_some_and(|k| self.permissions.may_call(&k, &message[4])))
            }
            Door::Workers
                if message.len() == 5 && message[2] == wire::WORKER && message[3] == wire::HEARTBEAT =>
            {
                (&message[4], key.is_some_and(|k| self.permissions.may_serve(&k, &message[4])))
            }
            _ => return Verdict::Pass(message), // malformed ones are the broker's to count
        };
        if allowed {
            return Verdict::Pass(message);
        }
        self.refused += 1;
        let who = key.and_then(|k| zmtp::z85::encode(&k)).unwrap_or_else(|| "(no CURVE key)".into());
        let service = crate::broker::printable(service);
        match self.door {
            Door::Clients => {
                log::debug!("FORBIDDEN: client key {who} may not call {service}");
                let answer = vec![
                    message[0].clone(),
                    Bytes::new(),
                    message[3].clone(),
                    Bytes::from_static(wire::EZ_ERR),
                    Bytes::from_static(wire::FORBIDDEN),
                ];
                Verdict::Refuse(Some(answer))
            }
            Door::Workers => {
                log::debug!("heartbeat dropped: worker key {who} may not serve {service}");
                Verdict::Refuse(None)
            }
        }
    }
}
