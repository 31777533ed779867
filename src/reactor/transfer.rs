//! Moving queued messages to their transports: in-process peers get them in their inbound
//! queues, TCP peers get them encoded (up to the write budget) and written.

use super::ids::{ConnId, SocketId};
use super::{Reactor, Transport};
use crate::socket::{PeerKey, PRESSURE_RESERVE};

impl Reactor {
    /// Moves what sockets queued to their transports now: in-process peers get it in their
    /// inbound queues, TCP peers get it encoded and written. `poll` does this on its own; call it
    /// between polls to let in-process hops run without waiting for the next turn. Returns how
    /// many messages reached in-process peers. It looks only at the sockets sent on through this
    /// API since the last pump (`touched`); `poll` looks at every socket, so whatever else has
    /// something to move meanwhile still goes out before the reactor waits.
    pub fn transfer(&mut self) -> usize {
        let touched = self.take_touched();
        let inproc = touched.iter().map(|&socket| self.pump_socket(socket)).sum();
        self.reuse_touched(touched);
        inproc
    }

    /// Lists socket `socket` for the next `transfer`.
    pub(super) fn touch(&mut self, socket: SocketId) {
        if let Some(entry) = self.sockets.get_mut(socket.0) {
            if !entry.touched {
                entry.touched = true;
                self.touched.push(socket);
            }
        }
    }

    /// Takes the list of touched sockets, unmarking them.
    fn take_touched(&mut self) -> Vec<SocketId> {
        let touched = std::mem::take(&mut self.touched);
        for &socket in &touched {
            if let Some(entry) = self.sockets.get_mut(socket.0) {
                entry.touched = false;
            }
        }
        touched
    }

    /// Gives a taken list's allocation back, keeping any socket touched meanwhile.
    fn reuse_touched(&mut self, mut touched: Vec<SocketId>) {
        touched.clear();
        touched.append(&mut self.touched);
        self.touched = touched;
    }

    /// Pumps the listed sockets, or every socket when something other than a send may have
    /// queued messages; returns how many reached in-process peers.
    pub(super) fn pump(&mut self) -> usize {
        match std::mem::take(&mut self.pump_everything) {
            true => self.pump_all(),
            false => self.transfer(),
        }
    }

    /// Pumps every socket with queued messages; returns how many reached in-process peers.
    fn pump_all(&mut self) -> usize {
        let touched = self.take_touched();
        self.reuse_touched(touched);
        // Walks socket keys by index: pumping may mark peers of later sockets dirty (in-process
        // delivery), and those are picked up in the same pass.
        (0..self.sockets.capacity()).map(|socket| self.pump_socket(SocketId(socket))).sum()
    }

    /// Pumps the peers of `socket` that have queued messages.
    fn pump_socket(&mut self, socket: SocketId) -> usize {
        let Some(entry) = self.sockets.get_mut(socket.0) else { return 0 };
        if !entry.socket.peers().has_dirty() {
            return 0;
        }
        // `self.dirty` is only scratch space, left empty after every use.
        let mut dirty = std::mem::take(&mut self.dirty);
        entry.socket.peers_mut().take_dirty(&mut dirty);
        let inproc = dirty.iter().map(|&peer| self.pump_peer(socket, peer)).sum();
        dirty.clear();
        self.dirty = dirty;
        inproc
    }

    /// Returns how many messages reached an in-process peer.
    pub(super) fn pump_peer(&mut self, socket: SocketId, peer: PeerKey) -> usize {
        let Some(entry) = self.sockets.get(socket.0) else { return 0 };
        match entry.transports.get(&peer).copied() {
            Some(Transport::Tcp(key)) => {
                self.flush_conn(key);
                0
            }
            Some(Transport::Inproc { socket: other, peer: theirs }) => {
                self.pump_inproc(socket, peer, other, theirs)
            }
            _ => 0,
        }
    }

    /// Moves the messages queued for an in-process peer straight into the other socket's inbound queue; returns how
    /// many moved.
    pub(super) fn pump_inproc(
        &mut self,
        socket: SocketId,
        peer: PeerKey,
        other: SocketId,
        theirs: PeerKey,
    ) -> usize {
        let mut moved = 0;
        let Some((ours, other)) = self.sockets.get2_mut(socket.0, other.0) else { return 0 };
        while !other.socket.peers().inbound_full(theirs) {
            let Some(message) = ours.socket.peers_mut().pop_outbound(peer) else { return moved };
            other.socket.deliver(theirs, message);
            moved += 1;
        }
        moved
    }

    /// Moves queued messages into the connection's encoder (up to its write budget; under
    /// memory pressure, up to the pressure reserve) and writes. A connection that leaves
    /// messages queued is noted as possibly stalled (see `stall`).
    pub(super) fn flush_conn(&mut self, key: ConnId) {
        self.write_conn(key);
        let Some(conn) = self.io.conn(key) else { return };
        let queued = conn
            .peer
            .zip(self.sockets.get(conn.socket.0))
            .is_some_and(|(peer, entry)| entry.socket.peers().outbound_len(peer) > 0);
        if queued {
            self.note_stall(key);
        }
        self.account(key);
    }

    fn write_conn(&mut self, key: ConnId) {
        loop {
            let Some(conn) = self.io.conn_mut(key) else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket.0) else { return };
            if let Some(peer) = conn.peer {
                let budget = match self.pressure {
                    true => entry.options.write_budget.min(PRESSURE_RESERVE),
                    false => entry.options.write_budget,
                };
                let peers = entry.socket.peers_mut();
                while conn.pending_output() < budget {
                    let Some(message) = peers.pop_outbound(peer) else { break };
                    if conn.session.send(&message).is_err() {
                        peers.unpop_outbound(peer, message);
                        break;
                    }
                }
            }
            let more_queued = conn.peer.is_some_and(|p| entry.socket.peers().outbound_len(p) > 0);
            let flushed = conn.flush();
            self.stats.bytes_written += std::mem::take(&mut conn.written);
            match flushed {
                Ok(true) if more_queued => continue,
                Ok(_) => return,
                Err(reason) => return self.close_conn(key, reason),
            }
        }
    }

    pub(super) fn flush_pending(&mut self) {
        for key in std::mem::take(&mut self.to_flush) {
            self.flush_conn(key);
        }
    }
}
