//! Endpoint strings: `tcp://HOST:PORT`, `tcp://*:PORT`, `tcp://[::1]:PORT`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};

/// Why an endpoint string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// Only `tcp://` is supported.
    UnsupportedTransport(String),
    /// No `:PORT`, or a port that is not a number in 0..=65535.
    BadPort(String),
    /// The host did not resolve to any address.
    Unresolved(String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedTransport(e) => write!(f, "{e:?}: only tcp:// endpoints are supported"),
            Self::BadPort(e) => write!(f, "{e:?}: expected tcp://HOST:PORT with a port in 0..=65535"),
            Self::Unresolved(e) => write!(f, "{e:?}: host did not resolve"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// Resolves an endpoint to one socket address. `*` means every IPv4 interface (bind only).
/// Host names are resolved here, once, with the system resolver.
pub fn resolve(endpoint: &str) -> Result<SocketAddr, EndpointError> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .ok_or_else(|| EndpointError::UnsupportedTransport(endpoint.to_string()))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| EndpointError::BadPort(endpoint.to_string()))?;
    let port: u16 = port.parse().map_err(|_| EndpointError::BadPort(endpoint.to_string()))?;
    if host == "*" {
        return Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)));
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| EndpointError::Unresolved(endpoint.to_string()))
}
