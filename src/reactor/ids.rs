//! Typed keys into the reactor's tables, so that a connection's key cannot be passed where a
//! socket's, a listener's or a connector's is meant.

/// A socket created on a reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub(super) usize);

/// A TCP connection (accepted or connected) in the reactor's I/O table; also its mio token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ConnId(pub(super) usize);

/// A listening TCP socket in the reactor's I/O table; also its mio token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ListenerId(pub(super) usize);

/// A connect that keeps reconnecting to one endpoint until its socket closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ConnectorId(pub(super) usize);
