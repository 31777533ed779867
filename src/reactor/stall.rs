//! Stalled connections: queues that wait get compacted.
//!
//! Decoded frames are views of the read buffer they arrived in, so a small message that waits
//! long keeps a whole 16-256 KiB buffer alive. Messages that pass through in a turn or two never
//! need copying, so nothing is copied on the hot path. A connection whose peer stops reading
//! (messages stay in its outbound queue) or whose application stops receiving (its inbound queue
//! is full) is noted; if it is still stalled `STALL_AGE` later, the messages waiting in its
//! queues are compacted (`socket::compact`), once each, and then on every check while it stays
//! stalled. The node wakes for these checks only while some connection is stalled.

use std::time::{Duration, Instant};

use super::ids::ConnId;
use super::Reactor;

/// How long a queue must have waited before its messages are compacted.
pub const STALL_AGE: Duration = Duration::from_millis(100);

impl Reactor {
    /// Notes that connection `key` left messages waiting (unwritten or unreceived).
    pub(super) fn note_stall(&mut self, key: ConnId) {
        let now = self.turn_started;
        let Some(conn) = self.io.conn_mut(key) else { return };
        if conn.stalled_since.is_none() {
            conn.stalled_since = Some(now);
            self.stalled.push(key);
        }
    }

    /// When the next stall check is due, if any connection is stalled.
    pub(super) fn next_stall_check(&self) -> Option<Instant> {
        (!self.stalled.is_empty()).then(|| self.last_stall_check + STALL_AGE)
    }

    /// Compacts the queues of connections stalled for `STALL_AGE`; forgets those that moved on.
    pub(super) fn check_stalls(&mut self, now: Instant) {
        if self.next_stall_check().is_none_or(|at| at > now) {
            return;
        }
        self.last_stall_check = now;
        let mut stalled = std::mem::take(&mut self.stalled);
        stalled.retain(|&key| {
            let Some(conn) = self.io.conn_mut(key) else { return false };
            let (Some(peer), Some(since)) = (conn.peer, conn.stalled_since) else {
                conn.stalled_since = None;
                return false;
            };
            let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return false };
            let peers = entry.socket.peers_mut();
            if !conn.read_paused && peers.outbound_len(peer) == 0 {
                conn.stalled_since = None;
                return false;
            }
            if now.saturating_duration_since(since) >= STALL_AGE {
                peers.compact_outbound(peer);
                peers.compact_inbound(peer);
                // Compacting can bring a queue full by bytes back under its limit with no
                // message taken, and so no resume from `recv`: resume reading here.
                if conn.read_paused && !peers.inbound_full(peer) {
                    self.to_resume.push(key);
                }
            }
            true
        });
        self.stalled = stalled;
    }
}
