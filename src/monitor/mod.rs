//! The HTTP monitoring endpoint (`MONITOR_PORT`), served on the node's own reactor (plain
//! streams, `reactor::plain`), one response per connection:
//! - `GET /metrics`: Prometheus text (`metrics`);
//! - `GET /healthz`: 200 `ok` while the node takes requests, 503 `draining` while it stops or
//!   `detached` while its broker is not attached to every pipe;
//! - any other path 404, another method 405, a malformed request 400, an oversized one 431.
//!
//! `HEAD` is answered like `GET` without the body.

pub mod http;
pub mod metrics;

use self::http::Parsed;
use crate::node::snapshot::Snapshot;

/// What `/healthz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Listening, and the broker (if any) is attached: 200.
    Serving,
    /// Stopping: 503.
    Draining,
    /// The broker is not attached to every pipe: 503.
    Detached,
}

/// The response to `parsed`, or `None` while the request head is incomplete.
pub fn respond(parsed: &Parsed, health: Health, snapshot: impl FnOnce() -> Snapshot) -> Option<Vec<u8>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (method, path) = match parsed {
        Parsed::Partial => return None,
        Parsed::Malformed => return Some(http::response(400, TEXT, b"bad request\n", false)),
        Parsed::TooLarge => return Some(http::response(431, TEXT, b"request too large\n", false)),
        Parsed::Request { method, path } => (method.as_str(), path.as_str()),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Some(http::response(405, TEXT, b"only GET and HEAD\n", false));
    }
    Some(match path {
        "/metrics" => {
            http::response(200, metrics::CONTENT_TYPE, metrics::render(&snapshot()).as_bytes(), head_only)
        }
        "/healthz" => match health {
            Health::Serving => http::response(200, TEXT, b"ok\n", head_only),
            Health::Draining => http::response(503, TEXT, b"draining\n", head_only),
            Health::Detached => http::response(503, TEXT, b"detached\n", head_only),
        },
        _ => http::response(404, TEXT, b"not found: try /metrics or /healthz\n", head_only),
    })
}
