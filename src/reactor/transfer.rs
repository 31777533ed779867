//! Moving queued messages to their transports: in-process peers get them in their inbound
//! queues, TCP peers get them encoded (up to the write budget) and written.

use super::{Io, Reactor, Transport};
use crate::socket::{PipeKey, PRESSURE_RESERVE};

impl Reactor {
    /// Moves what sockets queued to their transports now: in-process peers get it in their
    /// inbound queues, TCP peers get it encoded and written. `poll` does this on its own; call it
    /// between polls to let in-process hops run without waiting for the next turn. Returns how
    /// many messages reached in-process peers.
    pub fn transfer(&mut self) -> usize {
        self.pump_all()
    }

    pub(super) fn pump_all(&mut self) -> usize {
        let mut inproc = 0;
        let mut dirty = std::mem::take(&mut self.dirty);
        // Walks socket keys by index: pumping may mark pipes of later sockets dirty (in-process
        // delivery), and those are picked up in the same pass.
        for socket in 0..self.sockets.capacity() {
            let Some(entry) = self.sockets.get_mut(socket) else { continue };
            if !entry.socket.pipes().has_dirty() {
                continue;
            }
            dirty.clear();
            entry.socket.pipes_mut().take_dirty(&mut dirty);
            for &pipe in &dirty {
                inproc += self.pump_pipe(socket, pipe);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        inproc
    }

    /// Returns how many messages reached an in-process peer.
    pub(super) fn pump_pipe(&mut self, socket: usize, pipe: PipeKey) -> usize {
        let Some(entry) = self.sockets.get(socket) else { return 0 };
        match entry.transports.get(&pipe).copied() {
            Some(Transport::Tcp(key)) => {
                self.flush_conn(key);
                0
            }
            Some(Transport::Inproc { socket: other, pipe: theirs }) => {
                self.pump_inproc(socket, pipe, other, theirs)
            }
            _ => 0,
        }
    }

    /// Moves messages from our pipe straight into the other socket's inbound queue; returns how
    /// many moved.
    pub(super) fn pump_inproc(
        &mut self,
        socket: usize,
        pipe: PipeKey,
        other: usize,
        theirs: PipeKey,
    ) -> usize {
        let mut moved = 0;
        let Some((ours, peer)) = self.sockets.get2_mut(socket, other) else { return 0 };
        while !peer.socket.pipes().inbound_full(theirs) {
            let Some(message) = ours.socket.pipes_mut().pop_outbound(pipe) else { return moved };
            peer.socket.deliver(theirs, message);
            moved += 1;
        }
        moved
    }

    /// Moves queued messages into the connection's encoder (up to its write budget; under
    /// memory pressure, up to the pressure reserve) and writes. A connection that leaves
    /// messages queued is noted as possibly stalled (see `stall`).
    pub(super) fn flush_conn(&mut self, key: usize) {
        self.write_conn(key);
        let Some(Io::Conn(conn)) = self.io.get(key) else { return };
        let queued = conn
            .pipe
            .zip(self.sockets.get(conn.socket))
            .is_some_and(|(pipe, entry)| entry.socket.pipes().outbound_len(pipe) > 0);
        if queued {
            self.note_stall(key);
        }
        self.account(key);
    }

    fn write_conn(&mut self, key: usize) {
        loop {
            let Some(Io::Conn(conn)) = self.io.get_mut(key) else { return };
            let Some(entry) = self.sockets.get_mut(conn.socket) else { return };
            if let Some(pipe) = conn.pipe {
                let budget = match self.pressure {
                    true => entry.options.write_budget.min(PRESSURE_RESERVE),
                    false => entry.options.write_budget,
                };
                let pipes = entry.socket.pipes_mut();
                while conn.pending_output() < budget {
                    let Some(message) = pipes.pop_outbound(pipe) else { break };
                    if conn.session.send(&message).is_err() {
                        pipes.unpop_outbound(pipe, message);
                        break;
                    }
                }
            }
            let more_queued = conn.pipe.is_some_and(|p| entry.socket.pipes().outbound_len(p) > 0);
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
