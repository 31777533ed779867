//! Moving queued messages to their transports (entry point: `transfer`): in-process peers get
//! them in their inbound queues; TCP peers' connections take them with `flush_conn` (see
//! `lifecycle`).

use super::ids::SocketId;
use super::{Reactor, Transport};
use crate::socket::PeerKey;

impl Reactor {
    /// Moves what sockets queued to their transports now: in-process peers get it in their
    /// inbound queues, TCP peers get it encoded and written. `poll` does this on its own, before
    /// it waits and after it reads; call it between polls to let in-process hops run without
    /// waiting for the next turn. Returns how many messages reached in-process peers.
    ///
    /// It pumps the sockets sent on since the last transfer (`touch`), or every socket when
    /// something other than a send may have queued messages (a peer attached or left:
    /// `pump_everything`).
    pub fn transfer(&mut self) -> usize {
        let touched = self.take_touched();
        let moved = match std::mem::take(&mut self.pump_everything) {
            // Walks socket keys by index: pumping may mark peers of later sockets dirty
            // (in-process delivery), and those are picked up in the same pass.
            true => (0..self.sockets.capacity()).map(|socket| self.pump_socket(SocketId(socket))).sum(),
            false => touched.iter().map(|&socket| self.pump_socket(socket)).sum(),
        };
        self.reuse_touched(touched);
        moved
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
    fn pump_peer(&mut self, socket: SocketId, peer: PeerKey) -> usize {
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
    fn pump_inproc(&mut self, socket: SocketId, peer: PeerKey, other: SocketId, theirs: PeerKey) -> usize {
        let mut moved = 0;
        let Some((ours, other)) = self.sockets.get2_mut(socket.0, other.0) else { return 0 };
        while !other.socket.peers().inbound_full(theirs) {
            let Some(message) = ours.socket.peers_mut().pop_outbound(peer) else { return moved };
            other.socket.deliver(theirs, message);
            moved += 1;
        }
        moved
    }
}
