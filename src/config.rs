//! Typed configuration from flags, the environment and the `env` file, in that precedence, over
//! built-in defaults. The names are the original EZ Arch's. Touches no sockets.
//!
//! The `env` file is shell syntax: `export NAME="VALUE"` (or `NAME=VALUE`) lines, `#` comments.

use std::fmt;
use std::time::Duration;

use hashbrown::HashMap;

/// Every setting: name, default, what it is.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("IN_PIPE_HOST", "127.0.0.1", "where brokers find the in pipe"),
    ("IN_PIPE_PORT_A", "9000", "in pipe ROUTER: clients connect here"),
    ("IN_PIPE_PORT_B", "9001", "in pipe DEALER: brokers connect here"),
    ("BROKER_PIPE_HOST", "127.0.0.1", "where brokers find the broker pipe"),
    ("BROKER_PIPE_PORT_A", "9002", "broker pipe ROUTER: brokers' state DEALERs connect here"),
    ("BROKER_BROADCAST_PORT", "9003", "broker pipe PUB: brokers' SUBs connect here"),
    ("WORKER_PIPE_HOST", "127.0.0.1", "where brokers find the worker pipe"),
    ("WORKER_PIPE_PORT_A", "9004", "worker pipe ROUTER: workers connect here"),
    ("WORKER_PIPE_PORT_B", "9005", "worker pipe DEALER: brokers connect here"),
    ("LOG_LEVEL", "INFO", "error, warn, info, debug or trace"),
    ("POLL_INTERVAL_MS", "3000", "worker heartbeat interval"),
    ("WORKER_LIFETIME_S", "9", "a worker with no heartbeat for this long is dropped"),
    ("TASK_TIMEOUT_MS", "30000", "an engaged task with no reply is released after this"),
    ("NO_SERVICE_MS", "1000", "a request with no live worker waits this long, then NO_SERVICE"),
    ("BIND_ADDRESS", "127.0.0.1", "the address pipe listeners bind (--bind)"),
];

/// The six port settings, one per pipe socket.
pub const PORT_SETTINGS: [&str; 6] = [
    "IN_PIPE_PORT_A",
    "IN_PIPE_PORT_B",
    "BROKER_PIPE_PORT_A",
    "BROKER_BROADCAST_PORT",
    "WORKER_PIPE_PORT_A",
    "WORKER_PIPE_PORT_B",
];

/// Where a value came from, for the startup log and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    EnvFile,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::EnvFile => "env file",
            Source::Default => "default",
        })
    }
}

/// A setting that could not be used; the message names it. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Resolved settings with their sources.
#[derive(Debug, Clone)]
pub struct Config {
    values: HashMap<&'static str, (String, Source)>,
}

impl Config {
    /// Resolves every setting: `flags` (NAME=VALUE pairs) > `environment` > `env_file` text >
    /// default. Unknown names in flags are refused; unknown names elsewhere are ignored.
    pub fn resolve(
        flags: &[(String, String)],
        environment: impl Fn(&str) -> Option<String>,
        env_file: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let file = env_file.map(parse_env_file).transpose()?.unwrap_or_default();
        for (name, _) in flags {
            if !SETTINGS.iter().any(|(n, _, _)| n == name) {
                return Err(ConfigError(format!("unknown setting {name} (see `ezarch settings`)")));
            }
        }
        let mut values = HashMap::new();
        for &(name, default, _) in SETTINGS {
            let flag = flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| (v.clone(), Source::Flag));
            let value = flag
                .or_else(|| environment(name).map(|v| (v, Source::Environment)))
                .or_else(|| file.get(name).map(|v| (v.clone(), Source::EnvFile)))
                .unwrap_or_else(|| (default.to_string(), Source::Default));
            values.insert(name, value);
        }
        let config = Self { values };
        config.validate()?;
        Ok(config)
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |(v, _)| v.as_str())
    }

    pub fn port(&self, name: &str) -> u16 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn millis(&self, name: &str) -> Duration {
        Duration::from_millis(self.get(name).parse().unwrap_or(0))
    }

    pub fn seconds(&self, name: &str) -> Duration {
        Duration::from_secs(self.get(name).parse().unwrap_or(0))
    }

    pub fn log_level(&self) -> log::LevelFilter {
        self.get("LOG_LEVEL").parse().unwrap_or(log::LevelFilter::Info)
    }

    /// `tcp://HOST:PORT` for a pipe's port, with the given host setting.
    pub fn endpoint(&self, host: &str, port: &str) -> String {
        let host = self.get(host);
        if host.contains(':') {
            format!("tcp://[{host}]:{}", self.port(port))
        } else {
            format!("tcp://{host}:{}", self.port(port))
        }
    }

    /// `tcp://BIND_ADDRESS:PORT`, for the pipes' listeners.
    pub fn bind_endpoint(&self, port: &str) -> String {
        self.endpoint("BIND_ADDRESS", port)
    }

    /// One line: every setting that is not at its default, with its source.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = SETTINGS
            .iter()
            .map(|(name, _, _)| {
                let (value, source) = &self.values[name];
                format!("{name}={value} ({source})")
            })
            .collect();
        parts.sort();
        parts.join(", ")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for &(name, _, _) in SETTINGS {
            let (value, source) = &self.values[name];
            let (ok, expected) = match name {
                n if n.contains("PORT") => {
                    (value.parse::<u16>().is_ok_and(|p| p > 0), "expected a port number 1-65535")
                }
                n if n.ends_with("_MS") || n.ends_with("_S") => {
                    (value.parse::<u64>().is_ok_and(|v| v > 0), "expected a positive whole number")
                }
                "LOG_LEVEL" => {
                    (value.parse::<log::LevelFilter>().is_ok(), "expected error, warn, info, debug or trace")
                }
                _ => (
                    !value.is_empty() && !value.contains(char::is_whitespace),
                    "expected a host name or address",
                ),
            };
            if !ok {
                return Err(ConfigError(format!("invalid {name}={value:?} (from {source}): {expected}")));
            }
        }
        Ok(())
    }
}

/// Parses `export NAME="VALUE"` / `NAME=VALUE` lines; `#` starts a comment line.
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        let Some((name, value)) = line.split_once('=') else {
            return Err(ConfigError(format!(
                "env file line {}: expected NAME=VALUE, got {line:?}",
                number + 1
            )));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(name.trim().to_string(), value.to_string());
    }
    Ok(out)
}
