//! A broker's sockets on a node, and the wiring between them and the `Broker` state machine:
//! what its sockets read goes in, what it emits goes out, and peer events become broker events.
//!
//! A broker in a process of its own (`ezarch broker`) connects its in-ROUTER to the in pipe
//! only while it is attached to the worker pipe and to the broadcast, and disconnects it when
//! either goes away (a partition, a restart): so the in pipe never hands it requests it could not
//! dispatch or learn workers for. In `ezarch up` everything is in memory and always attached.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::{Broker, BrokerConfig, Output};
use crate::config::Config;
use crate::pipe::{Gate, Verdict};
use crate::reactor::{Error, PeerEvent, Reactor, SocketId};
use crate::socket::{SocketOptions, SocketType};
use zmtp::curve::Curve;

/// A connect that has not completed its handshake in this long is abandoned and retried: after
/// a partition heals, a connect begun during it would otherwise wait for TCP's own SYN backoff.
const REMOTE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Options for the broker's sockets: they heartbeat the pipes as the pipes heartbeat them, so a
/// link cut off is noticed on this side too within `silence` (zero: heartbeats off); with
/// `curve`, they connect with CURVE.
fn options(silence: Duration, curve: &Option<Curve>) -> SocketOptions {
    let heartbeat = crate::pipe::broker_facing_options(silence).heartbeat;
    let handshake_timeout = REMOTE_HANDSHAKE_TIMEOUT;
    SocketOptions { handshake_timeout, heartbeat, curve: curve.clone(), ..SocketOptions::default() }
}

/// A broker with its sockets.
pub struct BrokerNode {
    /// The state machine these sockets feed.
    pub broker: Broker,
    /// Where generation-2 workers connect straight to this broker (`ezarch up` only).
    pub gen2_router: Option<SocketId>,
    /// The in-ROUTER; `None` while a remote broker holds back (see the module doc).
    pub in_router: Option<SocketId>,
    /// Where a remote broker's in-ROUTER connects; `None` in `ezarch up`.
    in_endpoint: Option<String>,
    /// The worker-ROUTER, attached to the worker pipe's DEALER.
    pub worker_router: SocketId,
    /// The state DEALER: broadcasts go out through the broker pipe's ROUTER.
    pub state_dealer: SocketId,
    /// The broadcast SUB: every broker's state messages, from the broker pipe's PUB.
    pub state_sub: SocketId,
    worker_attached: bool,
    broadcast_attached: bool,
    /// BROKER_SILENCE_MS, for the sockets this broker creates later (its in-ROUTER).
    silence: Duration,
    /// CURVE for its connections to the pipes (a broker in its own process).
    curve: Option<Curve>,
    /// Management requests (`ez.*`) for the node to answer (it sees more than the broker).
    pub management: Vec<crate::socket::Message>,
}

impl BrokerNode {
    /// A broker and its sockets on `reactor`, not connected yet; settings from `config`.
    pub fn new(reactor: &mut Reactor, config: &Config, curve: Option<Curve>) -> Result<Self, Error> {
        let identity = Bytes::from(format!("broker-{:08x}", crate::random::next_u64() as u32));
        let broker_config = BrokerConfig {
            identity: identity.clone(),
            worker_lifetime: config.seconds("WORKER_LIFETIME_S"),
            task_timeout: config.millis("TASK_TIMEOUT_MS"),
            no_service_wait: config.millis("NO_SERVICE_MS"),
            startup_grace: config.millis("POLL_INTERVAL_MS") + Duration::from_millis(500),
            ..BrokerConfig::default()
        };
        let silence = config.millis("BROKER_SILENCE_MS");
        let worker_router = reactor.socket(SocketType::Router, options(silence, &curve))?;
        let state_dealer =
            reactor.socket(SocketType::Dealer, SocketOptions { identity, ..options(silence, &curve) })?;
        let state_sub = reactor.socket(SocketType::Sub, options(silence, &curve))?;
        reactor.subscribe(state_sub, b"")?;
        Ok(Self {
            broker: Broker::new(broker_config, Instant::now()),
            gen2_router: None,
            in_router: None,
            in_endpoint: None,
            worker_router,
            state_dealer,
            state_sub,
            worker_attached: false,
            broadcast_attached: false,
            silence,
            curve,
            management: Vec::new(),
        })
    }

    /// Wires the broker to pipes on the same reactor: `in_back` (the in pipe's DEALER),
    /// `worker_back`, and the broker pipe's `state_front` ROUTER and `broadcast` PUB.
    pub fn attach_in_memory(
        &mut self,
        reactor: &mut Reactor,
        in_back: SocketId,
        worker_back: SocketId,
        state_front: SocketId,
        broadcast: SocketId,
    ) -> Result<(), Error> {
        let in_router = reactor.socket(SocketType::Router, options(self.silence, &self.curve))?;
        self.in_router = Some(in_router);
        reactor.connect_inproc(in_router, in_back)?;
        reactor.connect_inproc(self.worker_router, worker_back)?;
        reactor.connect_inproc(self.state_dealer, state_front)?;
        reactor.connect_inproc(self.state_sub, broadcast)?;
        Ok(())
    }

    /// Connects to the pipes by address (`*_HOST` and the ports); the in pipe once the worker
    /// pipe and the broadcast are attached.
    pub fn connect_remote(&mut self, reactor: &mut Reactor, config: &Config) -> Result<(), Error> {
        self.in_endpoint = Some(config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_B"));
        reactor.connect(self.worker_router, &config.endpoint("WORKER_PIPE_HOST", "WORKER_PIPE_PORT_B"))?;
        reactor.connect(self.state_dealer, &config.endpoint("BROKER_PIPE_HOST", "BROKER_PIPE_PORT_A"))?;
        reactor.connect(self.state_sub, &config.endpoint("BROKER_PIPE_HOST", "BROKER_BROADCAST_PORT"))?;
        Ok(())
    }

    /// A peer of one of the broker's sockets arrived or left.
    pub fn on_peer_event(&mut self, reactor: &mut Reactor, event: PeerEvent, now: Instant) {
        match event {
            PeerEvent::Connected { socket, identity } => self.on_attached(socket, identity, now),
            PeerEvent::Disconnected { socket, .. } => self.on_detached(socket),
        }
        self.gate_in_pipe(reactor);
    }

    fn on_attached(&mut self, socket: SocketId, identity: Bytes, now: Instant) {
        let pipe = if Some(socket) == self.in_router {
            self.broker.set_in_pipe(identity);
            "the in pipe"
        } else if socket == self.worker_router {
            self.worker_attached = true;
            self.broker.set_worker_pipe(identity, now);
            "the worker pipe"
        } else if socket == self.state_dealer {
            "the broker pipe"
        } else if socket == self.state_sub {
            self.broadcast_attached = true;
            "the broadcast"
        } else {
            return;
        };
        log::info!("broker attached to {pipe}");
    }

    fn on_detached(&mut self, socket: SocketId) {
        if Some(socket) == self.in_router {
            self.broker.in_pipe_lost();
        } else if socket == self.worker_router {
            self.worker_attached = false;
            self.broker.worker_pipe_lost();
        } else if socket == self.state_sub {
            self.broadcast_attached = false;
        }
    }

    /// Whether the broker can take requests: the in pipe, the worker pipe and the broadcast are
    /// all attached (for `/healthz`).
    pub fn attached(&self) -> bool {
        let in_pipe = self.in_router.is_some() && self.broker.in_pipe_known();
        in_pipe && self.worker_attached && self.broadcast_attached
    }

    /// Answers a management request: `reply` frames after `[IN_PIPE, CLIENT, "", REQ_ID]`.
    pub fn answer_management(
        &self,
        reactor: &mut Reactor,
        request: &crate::socket::Message,
        reply: Vec<Bytes>,
    ) {
        let Some(router) = self.in_router else { return };
        let mut answer = vec![request[0].clone(), request[1].clone(), Bytes::new(), request[4].clone()];
        answer.extend(reply);
        if let Err(e) = reactor.send(router, answer) {
            log::debug!("management answer dropped: {}", crate::socket::describe(&e));
        }
    }

    /// A remote broker connects to the in pipe only while it can serve what comes from there.
    fn gate_in_pipe(&mut self, reactor: &mut Reactor) {
        let Some(endpoint) = self.in_endpoint.clone() else { return };
        let ready = self.worker_attached && self.broadcast_attached;
        match (ready, self.in_router) {
            (true, None) => match connect_router(reactor, &endpoint, options(self.silence, &self.curve)) {
                Ok(router) => {
                    log::info!("broker ready: taking requests from the in pipe");
                    self.in_router = Some(router);
                }
                Err(e) => log::warn!("cannot connect to the in pipe at {endpoint}: {e}"),
            },
            (false, Some(router)) => {
                log::warn!("broker not ready (worker pipe or broadcast away): no requests until it is");
                reactor.close(router);
                self.in_router = None;
                self.broker.in_pipe_lost();
            }
            _ => {}
        }
    }

    /// Feeds the broker what its sockets read and sends what it emits; returns messages moved.
    /// `gate` (the worker door's, with `CURVE_PERMISSIONS`) checks the generation-2 workers'
    /// messages and the dispatches to them as it checks the worker pipe's.
    pub fn drive(&mut self, reactor: &mut Reactor, now: Instant, mut gate: Option<&mut Gate>) -> u64 {
        let mut moved = 0;
        if let Some(sub) = waiting(reactor, Some(self.state_sub)) {
            while let Some(m) = reactor.recv(sub) {
                self.broker.handle_state(now, m);
                moved += 1;
            }
        }
        if let Some(router) = waiting(reactor, Some(self.worker_router)) {
            while let Some(m) = reactor.recv(router) {
                self.broker.handle_worker(now, m);
                moved += 1;
            }
        }
        if let Some(router) = waiting(reactor, self.gen2_router) {
            while let Some(m) = reactor.recv(router) {
                moved += 1;
                let m = match gate.as_deref_mut() {
                    None => m,
                    Some(g) => match g.check(reactor, router, m, now) {
                        Verdict::Pass(m) => m,
                        Verdict::Refuse(_) => continue,
                    },
                };
                self.broker.handle_gen2_worker(now, m);
            }
        }
        if let Some(router) = waiting(reactor, self.in_router) {
            while let Some(m) = reactor.recv(router) {
                self.broker.handle_client(now, m);
                moved += 1;
            }
        }
        while let Some(output) = self.broker.poll_output() {
            let (socket, message) = match output {
                Output::ToClient(m) => (self.in_router, m),
                Output::ToWorker(m) => (Some(self.worker_router), m),
                Output::Broadcast(m) => (Some(self.state_dealer), m),
                Output::ToGen2Worker(m) => {
                    let router = self.gen2_router;
                    let refused = router
                        .zip(gate.as_deref_mut())
                        .is_some_and(|(r, g)| !g.check_dispatch(reactor, r, &m, now));
                    (router.filter(|_| !refused), m)
                }
                Output::Management(m) => {
                    self.management.push(m);
                    continue;
                }
            };
            let sent = socket.map(|s| reactor.send(s, message));
            if let Some(Err(e)) = sent {
                log::debug!("broker output dropped: {}", crate::socket::describe(&e));
            }
            moved += 1;
        }
        moved
    }
}

/// `socket` if a message waits there: most passes find most sockets empty, and `has_inbound` is
/// the cheaper way to learn it.
fn waiting(reactor: &Reactor, socket: Option<SocketId>) -> Option<SocketId> {
    socket.filter(|&s| reactor.has_inbound(s))
}

/// A ROUTER connected (and reconnecting) to `endpoint`.
fn connect_router(reactor: &mut Reactor, endpoint: &str, options: SocketOptions) -> Result<SocketId, Error> {
    let router = reactor.socket(SocketType::Router, options)?;
    if let Err(e) = reactor.connect(router, endpoint) {
        reactor.close(router);
        return Err(e);
    }
    Ok(router)
}
