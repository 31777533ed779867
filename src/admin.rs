//! The operator's commands on the management services (`ez.*`, answered by the broker itself):
//! `ezarch services` and `ezarch stats` print a table for people or the JSON for scripts,
//! `ezarch ping` prints round-trip times to the node.

use std::fmt::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::wire;
use crate::client::{CallError, Client};
use crate::node::json::{self, Value};

/// Why an operator command failed.
#[derive(Debug)]
pub enum AdminError {
    /// The call got no answer: it timed out, failed on I/O or was interrupted.
    Call(CallError),
    /// The node answered something other than `["OK", JSON]`.
    Unexpected(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Call(e) => write!(f, "{e}"),
            AdminError::Unexpected(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// Asks management service `service` (`ez.services`, `ez.stats`) for its JSON.
pub fn query(client: &mut Client, service: &str) -> Result<String, AdminError> {
    let reply = client.call(service.as_bytes(), &[]).map_err(AdminError::Call)?;
    match &reply[..] {
        [ok, body] if ok == wire::OK => Ok(String::from_utf8_lossy(body).into_owned()),
        other => Err(AdminError::Unexpected(describe(other))),
    }
}

fn describe(frames: &[Bytes]) -> String {
    let texts: Vec<String> = frames.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    format!("{texts:?}")
}

/// `ez.services` JSON as a table: one line per service.
pub fn services_table(text: &str) -> Result<String, AdminError> {
    let value = json::parse(text).ok_or_else(|| AdminError::Unexpected("not JSON".into()))?;
    let Some(Value::Array(services)) = value.get("services") else {
        return Err(AdminError::Unexpected("no services list".into()));
    };
    let columns = ["name", "live_workers", "in_flight", "waiting", "requests", "replies", "errors"];
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|c| c.to_string()).collect()];
    for service in services {
        let mut row: Vec<String> =
            columns[..6].iter().map(|c| service.get(c).map_or_else(|| "-".into(), Value::cell)).collect();
        let errors = match service.get("errors") {
            Some(Value::Object(reasons)) => reasons
                .iter()
                .filter(|(_, n)| *n != Value::Number(0.0))
                .map(|(reason, n)| format!("{reason}={}", n.cell()))
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        row.push(if errors.is_empty() { "-".into() } else { errors });
        rows.push(row);
    }
    if services.is_empty() {
        return Ok("no services: no worker has joined this node's broker\n".into());
    }
    Ok(align(&rows))
}

/// `ez.stats` JSON as `name value` lines, nested names joined with dots.
pub fn stats_table(text: &str) -> Result<String, AdminError> {
    let value = json::parse(text).ok_or_else(|| AdminError::Unexpected("not JSON".into()))?;
    let mut rows = Vec::new();
    flatten("", &value, &mut rows);
    Ok(align(&rows))
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&name, member, rows);
            }
        }
        Value::Array(items) => {
            for item in items {
                let name =
                    item.get("name").map_or_else(|| prefix.to_string(), |n| format!("{prefix}.{}", n.cell()));
                match item {
                    Value::Object(members) => {
                        for (key, member) in members.iter().filter(|(k, _)| k != "name") {
                            flatten(&format!("{name}.{key}"), member, rows);
                        }
                    }
                    other => flatten(&name, other, rows),
                }
            }
        }
        other => rows.push(vec![prefix.to_string(), other.cell()]),
    }
}

/// Rows as columns padded to their widest cell.
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// Round-trip times of `count` `ez.ping` requests, `interval` apart; stops early on an error.
pub fn ping(
    client: &mut Client,
    count: u32,
    interval: Duration,
    mut each: impl FnMut(u32, Duration),
) -> Result<Vec<Duration>, AdminError> {
    let mut times = Vec::new();
    for i in 1..=count {
        let start = Instant::now();
        let reply = client.call(b"ez.ping", &[]).map_err(AdminError::Call)?;
        if reply.first().is_none_or(|status| status != wire::OK) {
            return Err(AdminError::Unexpected(describe(&reply)));
        }
        let rtt = start.elapsed();
        each(i, rtt);
        times.push(rtt);
        if i < count {
            std::thread::sleep(interval);
        }
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_answer_becomes_a_table() {
        let text = r#"{"services":[{"name":"echo","live_workers":2,"in_flight":0,"waiting":0,"requests":5,"replies":4,"errors":{"no_service":0,"timeout":1}}]}"#;
        let table = services_table(text).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("name  live_workers"), "{table}");
        assert!(lines[1].starts_with("echo  2 "), "{table}");
        assert!(lines[1].ends_with("timeout=1"), "{table}");
    }

    #[test]
    fn stats_flatten_to_dotted_names() {
        let text = r#"{"requests":3,"connections":{"open":2},"pipes":[{"name":"in","forwarded_in":7}]}"#;
        let table = stats_table(text).unwrap();
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows, [["requests", "3"], ["connections.open", "2"], ["pipes.in.forwarded_in", "7"]]);
    }
}
