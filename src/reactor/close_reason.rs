//! Why a connection ended: a typed cause that code and tests match on, logged once and counted.

use std::fmt;
use std::io;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end.
    PeerClosed,
    /// A socket error other than "would block" (reset, broken peer, ...).
    Io(io::ErrorKind),
    /// The peer broke the protocol or a limit, or a handshake/heartbeat timer ran out.
    Protocol(zmtp::Error),
    /// Another peer took over this one's identity (ROUTER handover).
    Evicted,
    /// Our side closed it (socket closed, reactor shutting down).
    Local,
    /// It held the most while the node stayed over its memory budget.
    MemoryBudget,
    /// Its CURVE key is no longer allowed (the allowlist was reloaded without it).
    KeyRevoked,
    /// Still in its handshake, it was the oldest in the way of a new connection when every slot
    /// was taken (see `admission`).
    MadeRoom,
}

impl CloseReason {
    /// Whether this counts as a failed peer (bad input, a timeout, the memory budget or a revoked
    /// key) rather than a normal close.
    pub fn is_failure(&self) -> bool {
        matches!(self, CloseReason::Protocol(_) | CloseReason::MemoryBudget | CloseReason::KeyRevoked)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::Io(kind) => write!(f, "I/O error: {kind}"),
            CloseReason::Protocol(e) => write!(f, "protocol: {e}"),
            CloseReason::Evicted => f.write_str("identity taken over by a new peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::MemoryBudget => {
                f.write_str("held the most while the node was over its memory budget")
            }
            CloseReason::KeyRevoked => f.write_str("its CURVE key is no longer allowed"),
            CloseReason::MadeRoom => {
                f.write_str("still in its handshake when a new connection needed its slot")
            }
        }
    }
}
