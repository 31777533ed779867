//! The event loop's turn (entry point: `poll`): write what sockets queued, wait for readiness or
//! the next deadline, read every ready connection, fire due timers, and write again.

use std::io;
use std::time::{Duration, Instant};

use super::{plain, Reactor, Readiness};

/// How soon a turn comes again while handshake steps wait for their budget.
const HANDSHAKE_RETRY: Duration = Duration::from_millis(5);

impl Reactor {
    /// One turn: write, wait up to `timeout` (None: until something happens), read, fire timers,
    /// write again.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let delivered = self.transfer();
        self.flush_pending();
        self.update_pressure(Instant::now());
        let now = Instant::now();
        let mut wait = timeout;
        let deadlines =
            [self.timers.next(), self.next_stall_check(), self.next_eviction(), self.plain.next_deadline()];
        for next in deadlines.into_iter().flatten() {
            let until = next.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if !self.handshake_waiters.is_empty() {
            // Handshake steps wait for tokens that refill with time, not for readiness; those
            // that had a token and only lacked this turn's budget go on in the next turn.
            let retry = if self.admission.turn_full() { Duration::ZERO } else { HANDSHAKE_RETRY };
            wait = Some(wait.map_or(retry, |w| w.min(retry)));
        }
        let busy = delivered > 0
            || !self.to_resume.is_empty()
            || !self.to_continue.is_empty()
            || self.budget_has_room();
        if busy || self.sockets.iter().any(|(_, e)| e.socket.peers().has_dirty()) {
            // Dirty peers no pump saw (their socket was not listed): the next pump sees them.
            self.pump_everything = true;
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        let now = Instant::now();
        self.turn_started = now;
        self.admission.new_turn(now);
        self.resume_handshakes(now);
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.events.iter().map(|e| Readiness {
            key: e.token().0,
            readable: e.is_readable() || e.is_read_closed() || e.is_error(),
            writable: e.is_writable(),
            hung_up: e.is_read_closed() || e.is_error(),
        }));
        for &event in &ready {
            if event.key >= plain::TOKEN_BASE {
                self.plain.on_ready(self.poll.registry(), event.key, event.writable, now);
            } else {
                self.on_ready(event, now);
            }
        }
        ready.clear();
        self.ready = ready;
        for key in std::mem::take(&mut self.to_resume) {
            if let Some(conn) = self.io.conn_mut(key) {
                conn.read_paused = false;
                self.read_conn(key, now);
            }
        }
        for key in std::mem::take(&mut self.to_continue) {
            self.read_conn(key, now);
        }
        self.resume_budget_waiters(now);
        self.fire_timers(now);
        self.plain.expire(self.poll.registry(), now);
        self.check_stalls(now);
        self.evict_if_stuck(now);
        self.transfer();
        self.flush_pending();
        self.update_pressure(now);
        Ok(())
    }

    /// Polls until `done` says so or `timeout` passes; returns whether `done` said so.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> io::Result<bool> {
        let deadline = crate::time::after(Instant::now(), timeout);
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.poll(Some((deadline - now).min(Duration::from_millis(50))))?;
        }
    }
}
