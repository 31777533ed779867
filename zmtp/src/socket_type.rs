//! ZeroMQ socket types as they appear in the READY `Socket-Type` property, and which pairs may talk.

use core::fmt;

/// Every socket type RFC 23/28/29/30 name, so a peer of any type can be identified and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// PAIR: one peer, messages both ways.
    Pair,
    /// PUB: sends each message to the subscribers of its topic.
    Pub,
    /// SUB: subscribes to topics and receives what publishers send on them.
    Sub,
    /// REQ: sends a request, then receives its reply.
    Req,
    /// REP: receives a request, then sends its reply.
    Rep,
    /// DEALER: sends and receives freely.
    Dealer,
    /// ROUTER: addresses each peer by its identity.
    Router,
    /// PULL: receives from PUSH peers.
    Pull,
    /// PUSH: sends to PULL peers.
    Push,
    /// XPUB: PUB that also hands the subscriptions it receives to the application.
    XPub,
    /// XSUB: SUB whose subscriptions the application sends itself.
    XSub,
}

impl SocketType {
    /// The exact `Socket-Type` value. RFC 23: the value is upper case; libzmq compares it
    /// case-sensitively, so we send and accept only this spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pair => "PAIR",
            Self::Pub => "PUB",
            Self::Sub => "SUB",
            Self::Req => "REQ",
            Self::Rep => "REP",
            Self::Dealer => "DEALER",
            Self::Router => "ROUTER",
            Self::Pull => "PULL",
            Self::Push => "PUSH",
            Self::XPub => "XPUB",
            Self::XSub => "XSUB",
        }
    }

    /// Parses a `Socket-Type` value (case-sensitive, as libzmq does).
    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        Some(match value {
            b"PAIR" => Self::Pair,
            b"PUB" => Self::Pub,
            b"SUB" => Self::Sub,
            b"REQ" => Self::Req,
            b"REP" => Self::Rep,
            b"DEALER" => Self::Dealer,
            b"ROUTER" => Self::Router,
            b"PULL" => Self::Pull,
            b"PUSH" => Self::Push,
            b"XPUB" => Self::XPub,
            b"XSUB" => Self::XSub,
            _ => return None,
        })
    }

    /// RFC 23 §"The Socket-Type Property": the pairs of types that may be connected.
    pub fn is_compatible_with(self, peer: SocketType) -> bool {
        use SocketType::*;
        match self {
            Pair => peer == Pair,
            Req => matches!(peer, Rep | Router),
            Rep => matches!(peer, Req | Dealer),
            Dealer => matches!(peer, Rep | Dealer | Router),
            Router => matches!(peer, Req | Dealer | Router),
            Pub | XPub => matches!(peer, Sub | XSub),
            Sub | XSub => matches!(peer, Pub | XPub),
            Push => peer == Pull,
            Pull => peer == Push,
        }
    }

    /// Whether READY from this type carries an `Identity` property. libzmq sends it for the
    /// types that route by identity (REQ, DEALER, ROUTER) and we match its bytes exactly.
    pub fn sends_identity(self) -> bool {
        matches!(self, Self::Req | Self::Dealer | Self::Router)
    }

    /// Whether this type receives subscriptions (as commands or as `\x01`/`\x00` messages).
    pub fn is_publisher(self) -> bool {
        matches!(self, Self::Pub | Self::XPub)
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
