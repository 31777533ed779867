//! An EZ Arch node on one reactor: any of the three pipes and a broker, wired to each other in
//! memory when they share the process (`ezarch up`) or over TCP (`ezarch broker`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod broker_node;
mod inspect;
pub mod json;
pub mod snapshot;

pub use self::broker_node::BrokerNode;
use crate::broker::Generation;
use crate::config::Config;
use crate::door::Door;
use crate::monitor::Health;
use crate::pipe::{broker_facing_options, Forwarder, PipeMode};
use crate::reactor::{fd_limit, Error, Limits, PeerEvent, Reactor, SocketId};
use crate::security::Security;
use crate::socket::{SocketOptions, SocketType};

/// The longest the loop sleeps with nothing due, so a stop signal that lands just before
/// `epoll_wait` is still seen soon. Idle, the node wakes this often and no more.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// How long a stopping node keeps writing what is queued, after its last answers.
pub const FLUSH_TIME: Duration = Duration::from_secs(2);
/// How long requests in flight may still get their replies when a node stops, unless
/// `SHUTDOWN_GRACE_MS` says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An EZ Arch node: its reactor, its pipes and broker, and the loop that runs them.
pub struct Node {
    /// Owns every socket and connection of the node.
    pub reactor: Reactor,
    /// The pipes this node runs (three for `up`, one for `pipe`, none for `broker`).
    pub forwarders: Vec<Forwarder>,
    /// The broker, for `up` and `broker`; `None` for `pipe`.
    pub broker: Option<BrokerNode>,
    /// The worker pipe's ROUTER when it shares the process with the broker (`ezarch up`): a
    /// worker's connection closing there tells the broker at once.
    pub worker_front: Option<SocketId>,
    /// The worker pipe's forwarder (by index) when its gate also guards the generation-2 port.
    worker_gate: Option<usize>,
    /// The broker pipe's ROUTER and PUB when the broker shares the process (`ezarch up`): their
    /// peer counts say whether another broker is attached.
    broker_pipe: Option<(SocketId, SocketId)>,
    /// Every endpoint bound, for the startup log.
    pub bound: Vec<String>,
    /// On stop, how long requests in flight may still get their replies.
    pub shutdown_grace: Duration,
    /// How long a broker attached to one of our pipes may stay silent before it is dropped.
    pub broker_silence: Duration,
    /// WORKER_LIFETIME_S: how long a worker identity's claim lasts past its heartbeat.
    worker_lifetime: Duration,
    /// Each forwarder's name (`in`, `worker`, `broker`, `pipe`), for stats.
    pipe_names: Vec<&'static str>,
    started: Instant,
    /// Stopping: new requests are answered SHUTTING_DOWN and `/healthz` says 503.
    draining: bool,
    /// CURVE for listeners and connections, and the allowlist SIGHUP reloads.
    pub(crate) security: Security,
    /// Set by SIGHUP: reload the allowlist.
    reload: Option<&'static AtomicBool>,
}

impl Node {
    /// `ezarch up`: three pipes on their ports plus one broker wired to them in memory.
    pub fn up(config: &Config, security: &Security) -> Result<Self, Error> {
        let mut node = Self::empty(limits(config))?;
        node.security = security.clone();
        node.broker_silence = config.millis("BROKER_SILENCE_MS");
        node.worker_lifetime = config.seconds("WORKER_LIFETIME_S");
        let [in_pipe, worker_pipe, broker_pipe] = [
            ("in", PipeMode::RouterDealer, Door::Clients, "IN_PIPE_PORT_A", "IN_PIPE_PORT_B"),
            ("worker", PipeMode::RouterDealer, Door::Workers, "WORKER_PIPE_PORT_A", "WORKER_PIPE_PORT_B"),
            ("broker", PipeMode::RouterPub, Door::Brokers, "BROKER_PIPE_PORT_A", "BROKER_BROADCAST_PORT"),
        ]
        .map(|(name, mode, door, front, back)| {
            let endpoints = (config.bind_endpoint(front), config.bind_endpoint(back));
            node.add_pipe(name, mode, door, (front, &endpoints.0), (back, &endpoints.1))
        });
        let (in_pipe, worker_pipe, broker_pipe) = (in_pipe?, worker_pipe?, broker_pipe?);
        let mut broker = node.add_broker(config)?;
        broker.attach_in_memory(&mut node.reactor, in_pipe.1, worker_pipe.1, broker_pipe.0, broker_pipe.1)?;
        if config.port("GEN2_WORKER_PORT") > 0 {
            let curve = node.security.server(Door::Workers);
            let options = SocketOptions { curve, door: Some(Door::Workers), ..SocketOptions::default() };
            let router = node.reactor.socket(SocketType::Router, options)?;
            let endpoint = config.bind_endpoint("GEN2_WORKER_PORT");
            let addr = node
                .reactor
                .bind(router, &endpoint)
                .map_err(|e| e.named(format!("GEN2_WORKER_PORT {endpoint}")))?;
            node.bound.push(format!("GEN2_WORKER_PORT=tcp://{addr}"));
            broker.gen2_router = Some(router);
        }
        node.broker = Some(broker);
        node.worker_front = Some(worker_pipe.0);
        node.broker_pipe = Some(broker_pipe);
        node.set_reply_affinity(worker_pipe.0);
        node.set_gate(in_pipe.0, Door::Clients);
        node.set_gate(worker_pipe.0, Door::Workers);
        node.worker_gate = node.forwarders.iter().position(|f| f.front == worker_pipe.0 && f.gate.is_some());
        node.monitor_if(config, true)?;
        Ok(node)
    }

    /// `ezarch pipe`: one forwarder, its ROUTER bound at `front` as `front_door` (its DEALER or
    /// PUB at `back` is a broker door). With `reply_affinity` (a worker pipe), replies go to the
    /// broker that dispatched them.
    pub fn pipe(
        mode: PipeMode,
        (front, front_door): (&str, Door),
        back: &str,
        config: &Config,
        reply_affinity: bool,
        security: &Security,
    ) -> Result<Self, Error> {
        let mut node = Self::empty(limits(config))?;
        node.security = security.clone();
        node.broker_silence = config.millis("BROKER_SILENCE_MS");
        node.worker_lifetime = config.seconds("WORKER_LIFETIME_S");
        let (front, _) = node.add_pipe("pipe", mode, front_door, ("front", front), ("back", back))?;
        if reply_affinity {
            node.set_reply_affinity(front);
        }
        if front_door != Door::Brokers {
            node.set_gate(front, front_door);
        }
        node.monitor_if(config, false)?;
        Ok(node)
    }

    /// The pipe whose ROUTER is `front` checks each sender's permissions, when there are any.
    fn set_gate(&mut self, front: SocketId, door: Door) {
        let Some(permissions) = self.security.permissions() else { return };
        let lifetime = self.worker_lifetime;
        if let Some(forwarder) = self.forwarders.iter_mut().find(|f| f.front == front) {
            forwarder.gate = Some(crate::pipe::Gate::new(door, permissions, lifetime));
        }
    }

    /// The pipe whose ROUTER is `front` sends each reply to the broker that dispatched it.
    fn set_reply_affinity(&mut self, front: SocketId) {
        if let Some(forwarder) = self.forwarders.iter_mut().find(|f| f.front == front) {
            forwarder.set_reply_affinity();
        }
    }

    /// A node with no sockets yet, on a reactor with `limits` (the connection limit lowered to
    /// what the open-file limit allows, with a warning).
    fn empty(limits: Limits) -> Result<Self, Error> {
        let fitting = fd_limit::fit_connections(limits.max_connections)?;
        if fitting < limits.max_connections {
            log::warn!(
                "MAX_CONNECTIONS={} lowered to {fitting}: the open-file limit (ulimit -n) allows no more",
                limits.max_connections
            );
        }
        let reactor = Reactor::with_limits(Limits { max_connections: fitting, ..limits })?;
        Ok(Self {
            reactor,
            forwarders: Vec::new(),
            broker: None,
            worker_front: None,
            worker_gate: None,
            broker_pipe: None,
            bound: Vec::new(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            broker_silence: Duration::ZERO,
            worker_lifetime: Duration::from_secs(9),
            pipe_names: Vec::new(),
            started: Instant::now(),
            draining: false,
            security: Security::default(),
            reload: None,
        })
    }

    /// Binds a forwarder's two sockets (`(label, endpoint)` each), its front as `front_door`
    /// and its back as a broker door; returns their ids.
    fn add_pipe(
        &mut self,
        name: &'static str,
        mode: PipeMode,
        front_door: Door,
        front: (&str, &str),
        back: (&str, &str),
    ) -> Result<(SocketId, SocketId), Error> {
        let options = |door: Door| {
            let options = match door {
                Door::Brokers => broker_facing_options(self.broker_silence),
                _ => SocketOptions::default(),
            };
            SocketOptions { curve: self.security.server(door), door: Some(door), ..options }
        };
        let (front_options, back_options) = (options(front_door), options(Door::Brokers));
        let forwarder = Forwarder::with_options(&mut self.reactor, mode, &front_options, &back_options)?;
        for (socket, (label, endpoint)) in [(forwarder.front, front), (forwarder.back, back)] {
            let addr =
                self.reactor.bind(socket, endpoint).map_err(|e| e.named(format!("{label} {endpoint}")))?;
            self.bound.push(format!("{label}=tcp://{addr}"));
        }
        let ids = (forwarder.front, forwarder.back);
        self.forwarders.push(forwarder);
        self.pipe_names.push(name);
        Ok(ids)
    }

    /// `ezarch broker`: a broker that connects to the three pipes by address.
    pub fn broker(config: &Config, security: &Security) -> Result<Self, Error> {
        let mut node = Self::empty(limits(config))?;
        node.security = security.clone();
        let mut broker = node.add_broker(config)?;
        broker.connect_remote(&mut node.reactor, config)?;
        node.broker = Some(broker);
        node.monitor_if(config, false)?;
        Ok(node)
    }

    fn add_broker(&mut self, config: &Config) -> Result<BrokerNode, Error> {
        self.shutdown_grace = config.millis("SHUTDOWN_GRACE_MS");
        BrokerNode::new(&mut self.reactor, config, self.security.client())
    }

    /// Reloads the CURVE allowlist when `flag` is set (SIGHUP).
    pub fn reload_on(&mut self, flag: &'static AtomicBool) {
        self.reload = Some(flag);
    }

    /// SIGHUP: the allowlist is read again; connections of keys no longer in it are closed,
    /// the others carry on. A file that cannot be read leaves the old list in force.
    fn reload_if_asked(&mut self) {
        if !self.reload.is_some_and(|flag| flag.swap(false, Ordering::Relaxed)) {
            return;
        }
        match self.security.reload() {
            Ok(allowed) => {
                let security = &self.security;
                let closed = self.reactor.close_curve_peers(|key| security.allows(key));
                log::info!("SIGHUP: {allowed} client key(s) allowed now; {closed} connection(s) of revoked keys closed");
            }
            Err(e) => log::error!("SIGHUP: the allowlist was not reloaded, the old one stays: {e}"),
        }
    }

    /// Runs until `stop` is set, then keeps delivering queued messages for up to the grace.
    /// The loop sleeps until I/O or the broker's next deadline, and handles a due deadline in
    /// the same turn, so idle and low-rate CPU stay near zero.
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        self.turn(); // what wiring queued (in-memory attachments) before the first wait
        while !stop.load(Ordering::Relaxed) {
            let sleep = self
                .broker_deadline()
                .map_or(MAX_SLEEP, |at| at.saturating_duration_since(Instant::now()).min(MAX_SLEEP));
            self.reactor.poll(Some(sleep))?;
            self.handle_broker_timeout(Instant::now());
            self.reload_if_asked();
            self.turn();
        }
        self.stop()
    }

    /// Stops: no new connections, new requests answered SHUTTING_DOWN, requests in flight given
    /// up to the grace for their replies, the rest answered SHUTTING_DOWN, everything written.
    fn stop(&mut self) -> io::Result<()> {
        log::info!("stopping: no new connections or requests; in flight get up to {:?}", self.shutdown_grace);
        self.draining = true;
        self.reactor.stop_listening();
        if let Some(b) = &mut self.broker {
            b.broker.begin_shutdown();
        }
        let grace_end = crate::time::after(Instant::now(), self.shutdown_grace);
        while self.broker.as_ref().is_some_and(|b| b.broker.requests().in_flight() > 0)
            && Instant::now() < grace_end
        {
            self.reactor.poll(Some(Duration::from_millis(20)))?;
            self.handle_broker_timeout(Instant::now());
            self.turn();
        }
        if let Some(b) = &mut self.broker {
            b.broker.finish_shutdown();
        }
        self.turn();
        if let Some(b) = &self.broker {
            let st = b.broker.stats;
            log::info!(
                "broker stats: requests={} dispatched={} replies={} no_service={} busy={} timeouts={} worker_lost={} \
                 redispatched={} duplicates={} late_replies={} shutting_down={} malformed={} workers_expired={} \
                 workers_left={}",
                st.requests,
                st.dispatched,
                st.replies,
                st.no_service,
                st.busy,
                st.timeouts,
                st.worker_lost,
                st.redispatched,
                st.duplicates,
                st.late_replies,
                st.shutting_down,
                st.malformed,
                st.workers_expired,
                st.workers_left
            );
        }
        let flush_end = crate::time::after(Instant::now(), FLUSH_TIME);
        while Instant::now() < flush_end && self.reactor.has_pending_output() {
            self.reactor.poll(Some(Duration::from_millis(10)))?;
            self.turn();
        }
        Ok(())
    }

    fn broker_deadline(&self) -> Option<Instant> {
        self.broker.as_ref().and_then(|b| b.broker.poll_timeout())
    }

    /// Runs the broker's timers when their deadline has come.
    pub fn handle_broker_timeout(&mut self, now: Instant) {
        if let Some(b) = &mut self.broker {
            if b.broker.poll_timeout().is_some_and(|at| at <= now) {
                b.broker.handle_timeout(now);
            }
        }
    }

    /// Moves everything that can move: pipe traffic, broker input and output.
    pub fn turn(&mut self) {
        let now = Instant::now();
        let mut events = false;
        while let Some(event) = self.reactor.poll_peer_event() {
            events = true;
            let Some(b) = &mut self.broker else { continue };
            match event {
                PeerEvent::Disconnected { socket, identity, .. } if Some(socket) == self.worker_front => {
                    b.broker.worker_lost(now, &identity, Generation::One)
                }
                PeerEvent::Disconnected { socket, identity, .. } if Some(socket) == b.gen2_router => {
                    b.broker.worker_lost(now, &identity, Generation::Two)
                }
                event => b.on_peer_event(&mut self.reactor, event, now),
            }
        }
        self.serve_monitor();
        if let (true, Some(b), Some((front, back))) = (events, &mut self.broker, self.broker_pipe) {
            // Our own state DEALER and SUB are one peer each: more means another broker.
            b.broker.set_alone(self.reactor.peer_count(front) <= 1 && self.reactor.peer_count(back) <= 1);
        }
        // In-process hops run as soon as they are queued: what a forwarder passes on reaches the
        // broker in the same pass, and what the broker dispatches reaches the worker pipe.
        for _ in 0..64 {
            let mut moved = 0;
            for forwarder in &mut self.forwarders {
                moved += forwarder.pump(&mut self.reactor, now);
            }
            moved += self.reactor.transfer() as u64;
            if let Some(b) = &mut self.broker {
                let gate = self.worker_gate.and_then(|i| self.forwarders.get_mut(i)?.gate.as_mut());
                moved += b.drive(&mut self.reactor, now, gate);
            }
            moved += self.answer_management();
            moved += self.reactor.transfer() as u64;
            if moved == 0 {
                break;
            }
        }
    }
}

impl Node {
    /// Binds the monitoring endpoint on `MONITOR_PORT` unless it is 0; unless `by_default`, only
    /// when the port was set (a broker or pipe beside `ezarch up` would collide on the default).
    fn monitor_if(&mut self, config: &Config, by_default: bool) -> Result<(), Error> {
        let set = by_default || config.source("MONITOR_PORT") != crate::config::Source::Default;
        if set && config.port("MONITOR_PORT") > 0 {
            self.listen_monitor(&config.monitor_endpoint())?;
            if !crate::config::is_loopback(config.get("MONITOR_BIND_ADDRESS")) {
                log::warn!(
                    "MONITOR_BIND_ADDRESS {} is not loopback: /metrics and /healthz have no \
                     authentication, and /metrics names every service and its counts to anyone who \
                     reaches it",
                    config.get("MONITOR_BIND_ADDRESS")
                );
            }
        }
        Ok(())
    }

    /// Binds the HTTP monitoring endpoint (`/metrics`, `/healthz`) at `endpoint`.
    pub fn listen_monitor(&mut self, endpoint: &str) -> Result<(), Error> {
        let addr =
            self.reactor.listen_plain(endpoint).map_err(|e| e.named(format!("MONITOR_PORT {endpoint}")))?;
        self.bound.push(format!("MONITOR_PORT=http://{addr}"));
        Ok(())
    }

    /// What `/healthz` says now.
    pub fn health(&self) -> Health {
        match &self.broker {
            _ if self.draining => Health::Draining,
            Some(b) if !b.attached() => Health::Detached,
            _ => Health::Serving,
        }
    }

    /// Answers every HTTP request that is complete (or hopeless).
    fn serve_monitor(&mut self) {
        while let Some(id) = self.reactor.next_plain_request() {
            let done = self.reactor.plain_input_done(id);
            let Some(input) = self.reactor.plain_input(id) else { continue };
            let parsed = crate::monitor::http::parse(input, done);
            if let Some(response) = crate::monitor::respond(&parsed, self.health(), || self.snapshot()) {
                self.reactor.plain_respond(id, response);
            }
        }
    }
}

/// The reactor limits the settings ask for: `MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_ADDRESS`
/// and `INBOUND_BUDGET_MB`.
pub fn limits(config: &Config) -> Limits {
    let budget_mb = usize::try_from(config.number("INBOUND_BUDGET_MB")).unwrap_or(usize::MAX);
    let number = |name: &str| usize::try_from(config.number(name)).unwrap_or(usize::MAX);
    Limits {
        max_connections: number("MAX_CONNECTIONS"),
        per_address: number("MAX_CONNECTIONS_PER_ADDRESS"),
        memory_budget: budget_mb.saturating_mul(1 << 20),
        ..Limits::default()
    }
}
