//! The node's doors: which kind of peer a listener is for. Every listening socket of a node is
//! one door, and the security model is written per door (README, "Security model"): what a
//! CURVE key must be allowed to complete a handshake there (`security`), what it may do once in
//! (`pipe::Gate`), and which connection slots it takes (`reactor::Admission`).

use std::fmt;

/// A kind of listener, by who connects to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    /// Clients' requests: `IN_PIPE_PORT_A`.
    Clients,
    /// Workers: `WORKER_PIPE_PORT_A` (generation 1) and `GEN2_WORKER_PORT` (generation 2).
    Workers,
    /// Brokers: `IN_PIPE_PORT_B`, `BROKER_PIPE_PORT_A`, `BROKER_BROADCAST_PORT`,
    /// `WORKER_PIPE_PORT_B`.
    Brokers,
}

impl Door {
    /// Every door, in a fixed order (an index for per-door tables).
    pub const ALL: [Door; 3] = [Door::Clients, Door::Workers, Door::Brokers];

    /// This door's place in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// One word for labels and JSON: `clients`, `workers`, `brokers`.
    pub fn label(self) -> &'static str {
        match self {
            Door::Clients => "clients",
            Door::Workers => "workers",
            Door::Brokers => "brokers",
        }
    }

    /// The `CURVE_PERMISSIONS` rule a key needs to come in here: `call`, `serve` or `broker`.
    pub fn rule(self) -> &'static str {
        match self {
            Door::Clients => "call",
            Door::Workers => "serve",
            Door::Brokers => "broker",
        }
    }
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Door::Clients => "client door",
            Door::Workers => "worker door",
            Door::Brokers => "broker door",
        })
    }
}
