//! An EZ Arch node on one reactor: any of the three pipes and a broker, wired to each other in
//! memory when they share the process (`ezarch up`) or over TCP (`ezarch broker`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::{Broker, BrokerConfig, Output};
use crate::config::Config;
use crate::pipe::{Forwarder, PipeMode};
use crate::reactor::{fd_limit, Error, Limits, PeerEvent, Reactor, SocketId};
use crate::socket::{SocketOptions, SocketType};

/// The longest the loop sleeps with nothing due, so a stop signal that lands just before
/// `epoll_wait` is still seen soon. Idle, the node wakes this often and no more.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// How long a stopping node keeps writing what is queued, after its last answers.
pub const FLUSH_TIME: Duration = Duration::from_secs(2);
/// How long requests in flight may still get their replies when a node stops, unless
/// `SHUTDOWN_GRACE_MS` says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A broker with its four sockets.
pub struct BrokerNode {
    pub broker: Broker,
    /// Where generation-2 workers connect straight to this broker (`ezarch up` only).
    pub gen2_router: Option<SocketId>,
    pub in_router: SocketId,
    pub worker_router: SocketId,
    pub state_dealer: SocketId,
    pub state_sub: SocketId,
}

impl BrokerNode {
    /// A pipe attached to one of the broker's sockets (at start, and again after a reconnect).
    fn on_attached(&mut self, socket: SocketId, identity: Bytes, now: Instant) {
        let pipe = if socket == self.in_router {
            self.broker.set_in_pipe(identity);
            "the in pipe"
        } else if socket == self.worker_router {
            self.broker.set_worker_pipe(identity, now);
            "the worker pipe"
        } else if socket == self.state_dealer {
            "the broker pipe"
        } else if socket == self.state_sub {
            "the broadcast"
        } else {
            return;
        };
        log::info!("broker attached to {pipe}");
    }
}

pub struct Node {
    pub reactor: Reactor,
    /// The pipes this node runs (three for `up`, one for `pipe`, none for `broker`).
    pub forwarders: Vec<Forwarder>,
    pub broker: Option<BrokerNode>,
    /// The worker pipe's ROUTER when it shares the process with the broker (`ezarch up`): a
    /// worker's connection closing there tells the broker at once.
    pub worker_front: Option<SocketId>,
    /// Every endpoint bound, for the startup log.
    pub bound: Vec<String>,
    /// On stop, how long requests in flight may still get their replies.
    pub shutdown_grace: Duration,
}

impl Node {
    /// `ezarch up`: three pipes on their ports plus one broker wired to them in memory.
    pub fn up(config: &Config) -> Result<Self, Error> {
        let mut node = Self::empty(limits(config))?;
        let [in_pipe, worker_pipe, broker_pipe] = [
            (PipeMode::RouterDealer, "IN_PIPE_PORT_A", "IN_PIPE_PORT_B"),
            (PipeMode::RouterDealer, "WORKER_PIPE_PORT_A", "WORKER_PIPE_PORT_B"),
            (PipeMode::RouterPub, "BROKER_PIPE_PORT_A", "BROKER_BROADCAST_PORT"),
        ]
        .map(|(mode, front, back)| {
            let endpoints = (config.bind_endpoint(front), config.bind_endpoint(back));
            node.add_pipe(mode, (front, &endpoints.0), (back, &endpoints.1))
        });
        let (in_pipe, worker_pipe, broker_pipe) = (in_pipe?, worker_pipe?, broker_pipe?);
        let broker = node.add_broker(config)?;
        let r = &mut node.reactor;
        r.connect_inproc(broker.in_router, in_pipe.1)?;
        r.connect_inproc(broker.worker_router, worker_pipe.1)?;
        r.connect_inproc(broker.state_dealer, broker_pipe.0)?;
        r.connect_inproc(broker.state_sub, broker_pipe.1)?;
        let mut broker = broker;
        if config.port("GEN2_WORKER_PORT") > 0 {
            let router = node.reactor.socket(SocketType::Router, SocketOptions::default())?;
            let addr = node.reactor.bind(router, &config.bind_endpoint("GEN2_WORKER_PORT"))?;
            node.bound.push(format!("GEN2_WORKER_PORT=tcp://{addr}"));
            broker.gen2_router = Some(router);
        }
        node.broker = Some(broker);
        node.worker_front = Some(worker_pipe.0);
        node.set_reply_affinity(worker_pipe.0);
        Ok(node)
    }

    /// `ezarch pipe`: one forwarder, its ROUTER bound at `front`, its DEALER or PUB at `back`.
    /// With `reply_affinity` (a worker pipe), replies go to the broker that dispatched them.
    pub fn pipe(
        mode: PipeMode,
        front: &str,
        back: &str,
        limits: Limits,
        reply_affinity: bool,
    ) -> Result<Self, Error> {
        let mut node = Self::empty(limits)?;
        let (front, _) = node.add_pipe(mode, ("front", front), ("back", back))?;
        if reply_affinity {
            node.set_reply_affinity(front);
        }
        Ok(node)
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
            bound: Vec::new(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        })
    }

    /// Binds a forwarder's two sockets (`(label, endpoint)` each); returns their ids.
    fn add_pipe(
        &mut self,
        mode: PipeMode,
        front: (&str, &str),
        back: (&str, &str),
    ) -> Result<(SocketId, SocketId), Error> {
        let forwarder = Forwarder::new(&mut self.reactor, mode, &SocketOptions::default())?;
        for (socket, (label, endpoint)) in [(forwarder.front, front), (forwarder.back, back)] {
            let addr = self.reactor.bind(socket, endpoint)?;
            self.bound.push(format!("{label}=tcp://{addr}"));
        }
        let ids = (forwarder.front, forwarder.back);
        self.forwarders.push(forwarder);
        Ok(ids)
    }

    /// `ezarch broker`: a broker that connects to the three pipes by address.
    pub fn broker(config: &Config) -> Result<Self, Error> {
        let mut node = Self::empty(limits(config))?;
        let broker = node.add_broker(config)?;
        let r = &mut node.reactor;
        r.connect(broker.in_router, &config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_B"))?;
        r.connect(broker.worker_router, &config.endpoint("WORKER_PIPE_HOST", "WORKER_PIPE_PORT_B"))?;
        r.connect(broker.state_dealer, &config.endpoint("BROKER_PIPE_HOST", "BROKER_PIPE_PORT_A"))?;
        r.connect(broker.state_sub, &config.endpoint("BROKER_PIPE_HOST", "BROKER_BROADCAST_PORT"))?;
        node.broker = Some(broker);
        Ok(node)
    }

    fn add_broker(&mut self, config: &Config) -> Result<BrokerNode, Error> {
        self.shutdown_grace = config.millis("SHUTDOWN_GRACE_MS");
        let identity = Bytes::from(format!("broker-{:08x}", crate::random::next_u64() as u32));
        let broker_config = BrokerConfig {
            identity: identity.clone(),
            worker_lifetime: config.seconds("WORKER_LIFETIME_S"),
            task_timeout: config.millis("TASK_TIMEOUT_MS"),
            no_service_wait: config.millis("NO_SERVICE_MS"),
            startup_grace: config.millis("POLL_INTERVAL_MS") + Duration::from_millis(500),
            ..BrokerConfig::default()
        };
        let r = &mut self.reactor;
        let in_router = r.socket(SocketType::Router, SocketOptions::default())?;
        let worker_router = r.socket(SocketType::Router, SocketOptions::default())?;
        let state_options = SocketOptions { identity, ..SocketOptions::default() };
        let state_dealer = r.socket(SocketType::Dealer, state_options)?;
        let state_sub = r.socket(SocketType::Sub, SocketOptions::default())?;
        r.subscribe(state_sub, b"")?;
        let broker = Broker::new(broker_config, Instant::now());
        Ok(BrokerNode { broker, gen2_router: None, in_router, worker_router, state_dealer, state_sub })
    }

    /// Runs until `stop` is set, then keeps delivering queued messages for up to the grace.
    /// The loop sleeps until I/O or the broker's next deadline, and handles a due deadline in
    /// the same turn, so idle and low-rate CPU stay near zero.
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let sleep = self
                .broker_deadline()
                .map_or(MAX_SLEEP, |at| at.saturating_duration_since(Instant::now()).min(MAX_SLEEP));
            self.reactor.poll(Some(sleep))?;
            self.handle_broker_timeout(Instant::now());
            self.turn();
        }
        self.stop()
    }

    /// Stops: no new connections, new requests answered SHUTTING_DOWN, requests in flight given
    /// up to the grace for their replies, the rest answered SHUTTING_DOWN, everything written.
    fn stop(&mut self) -> io::Result<()> {
        log::info!("stopping: no new connections or requests; in flight get up to {:?}", self.shutdown_grace);
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
        while let Some(event) = self.reactor.poll_peer_event() {
            let Some(b) = &mut self.broker else { continue };
            match event {
                PeerEvent::Connected { socket, identity } => b.on_attached(socket, identity, now),
                PeerEvent::Disconnected { socket, identity, .. }
                    if Some(socket) == self.worker_front || Some(socket) == b.gen2_router =>
                {
                    b.broker.worker_lost(now, &identity)
                }
                PeerEvent::Disconnected { .. } => {}
            }
        }
        for _ in 0..64 {
            let mut moved = 0;
            for forwarder in &mut self.forwarders {
                moved += forwarder.pump(&mut self.reactor);
            }
            if let Some(b) = &mut self.broker {
                moved += drive_broker(&mut self.reactor, b, now);
            }
            moved += self.reactor.transfer() as u64;
            if moved == 0 {
                break;
            }
        }
    }
}

/// The reactor limits the settings ask for: `MAX_CONNECTIONS` and `INBOUND_BUDGET_MB`.
pub fn limits(config: &Config) -> Limits {
    let budget_mb = usize::try_from(config.number("INBOUND_BUDGET_MB")).unwrap_or(usize::MAX);
    Limits {
        max_connections: usize::try_from(config.number("MAX_CONNECTIONS")).unwrap_or(usize::MAX),
        memory_budget: budget_mb.saturating_mul(1 << 20),
        ..Limits::default()
    }
}

/// Feeds the broker what its sockets read and sends what it emits; returns messages moved.
fn drive_broker(reactor: &mut Reactor, b: &mut BrokerNode, now: Instant) -> u64 {
    let mut moved = 0;
    while let Some(m) = reactor.recv(b.state_sub) {
        b.broker.handle_state(now, m);
        moved += 1;
    }
    while let Some(m) = reactor.recv(b.worker_router) {
        b.broker.handle_worker(now, m);
        moved += 1;
    }
    while let Some(m) = b.gen2_router.and_then(|r| reactor.recv(r)) {
        b.broker.handle_gen2_worker(now, m);
        moved += 1;
    }
    while let Some(m) = reactor.recv(b.in_router) {
        b.broker.handle_client(now, m);
        moved += 1;
    }
    while let Some(output) = b.broker.poll_output() {
        let (socket, message) = match output {
            Output::ToClient(m) => (b.in_router, m),
            Output::ToWorker(m) => (b.worker_router, m),
            Output::Broadcast(m) => (b.state_dealer, m),
            Output::ToGen2Worker(m) => match b.gen2_router {
                Some(router) => (router, m),
                None => continue,
            },
        };
        if let Err(e) = reactor.send(socket, message) {
            log::debug!("broker output dropped: {}", crate::socket::describe(&e));
        }
        moved += 1;
    }
    moved
}
