//! Typed configuration from flags, the environment and the `env` file, in that precedence, over
//! built-in defaults. The names are the original EZ Arch's. Touches no sockets.
//!
//! The `env` file is shell syntax: `export NAME="VALUE"` (or `NAME=VALUE`) lines, `#` comment
//! lines, and a `# comment` after a value. Every number has a documented range, checked at start.

use std::fmt;
use std::time::Duration;

use hashbrown::HashMap;

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP port, 1-65535.
    Port,
    /// A host name or address.
    Host,
    /// A log level, in Rust's or Python's words (see `parse_log_level`).
    LogLevel,
    /// A whole number in `min..=max`, in `unit`.
    Number {
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
        /// What the number counts (`ms`, `MiB`, ...), for messages and `ezarch settings`.
        unit: &'static str,
    },
    /// Free text, empty when unset (a key or a path; checked where it is used).
    Text,
    /// A secret: like `Text`, but never printed.
    Secret,
}

/// One setting: its name, default, meaning and range.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The name, as flags, the environment and the env file spell it.
    pub name: &'static str,
    /// The value when nothing sets it.
    pub default: &'static str,
    /// What it does, in one line.
    pub about: &'static str,
    /// What values it takes.
    pub kind: Kind,
}

const fn number(min: u64, max: u64, unit: &'static str) -> Kind {
    Kind::Number { min, max, unit }
}

const fn setting(name: &'static str, default: &'static str, kind: Kind, about: &'static str) -> Setting {
    Setting { name, default, about, kind }
}

/// Every setting: name, default, range, what it is.
pub const SETTINGS: &[Setting] = &[
    setting("IN_PIPE_HOST", "127.0.0.1", Kind::Host, "where brokers find the in pipe"),
    setting("IN_PIPE_PORT_A", "9000", Kind::Port, "in pipe ROUTER: clients connect here"),
    setting("IN_PIPE_PORT_B", "9001", Kind::Port, "in pipe DEALER: brokers connect here"),
    setting("BROKER_PIPE_HOST", "127.0.0.1", Kind::Host, "where brokers find the broker pipe"),
    setting(
        "BROKER_PIPE_PORT_A",
        "9002",
        Kind::Port,
        "broker pipe ROUTER: brokers' state DEALERs connect here",
    ),
    setting("BROKER_BROADCAST_PORT", "9003", Kind::Port, "broker pipe PUB: brokers' SUBs connect here"),
    setting("WORKER_PIPE_HOST", "127.0.0.1", Kind::Host, "where brokers find the worker pipe"),
    setting("WORKER_PIPE_PORT_A", "9004", Kind::Port, "worker pipe ROUTER: workers connect here"),
    setting("WORKER_PIPE_PORT_B", "9005", Kind::Port, "worker pipe DEALER: brokers connect here"),
    setting("LOG_LEVEL", "INFO", Kind::LogLevel, "trace, debug, info, warning, error or critical"),
    setting("POLL_INTERVAL_MS", "3000", number(10, 3_600_000, "ms"), "worker heartbeat interval"),
    setting(
        "WORKER_LIFETIME_S",
        "9",
        number(1, 86_400, "s"),
        "a worker with no heartbeat for this long is dropped",
    ),
    setting(
        "TASK_TIMEOUT_MS",
        "30000",
        number(1, 86_400_000, "ms"),
        "a dispatched request with no reply after this is answered EZ_ERR TIMEOUT",
    ),
    setting(
        "NO_SERVICE_MS",
        "1000",
        number(1, 3_600_000, "ms"),
        "a request with no live worker waits this long, then NO_SERVICE",
    ),
    setting(
        "GEN2_WORKER_PORT",
        "9006",
        number(0, 65_535, "(a port; 0 = off)"),
        "generation-2 workers (pyez) connect here, straight to ezarch up's broker",
    ),
    setting(
        "MONITOR_PORT",
        "9010",
        number(0, 65_535, "(a port; 0 = off)"),
        "HTTP /metrics and /healthz on MONITOR_BIND_ADDRESS (ezarch up; broker and pipe only when set)",
    ),
    setting(
        "MONITOR_BIND_ADDRESS",
        "127.0.0.1",
        Kind::Host,
        "the address the monitor binds; /metrics has no authentication, so loopback unless set",
    ),
    setting(
        "BROKER_SILENCE_MS",
        "2000",
        number(0, 600_000, "ms (0 = off)"),
        "a broker silent this long is dropped by the pipes (ZMTP heartbeats; a cut-off host sends no FIN)",
    ),
    setting("BIND_ADDRESS", "127.0.0.1", Kind::Host, "the address pipe listeners bind (--bind)"),
    setting(
        "SHUTDOWN_GRACE_MS",
        "5000",
        number(0, 600_000, "ms"),
        "on SIGTERM, how long requests in flight may still get their replies before EZ_ERR SHUTTING_DOWN",
    ),
    setting(
        "CURVE_SECRET_KEY",
        "",
        Kind::Secret,
        "this process's CURVE secret key (Z85, 40 characters): every listener speaks CURVE (ezarch keygen)",
    ),
    setting(
        "CURVE_SECRET_KEY_FILE",
        "",
        Kind::Text,
        "a file holding CURVE_SECRET_KEY instead, so it stays out of process lists",
    ),
    setting(
        "CURVE_CLIENT_KEYS",
        "",
        Kind::Text,
        "a file of allowed client public keys (Z85, one per line, '# ' comments); reloaded on SIGHUP",
    ),
    setting(
        "CURVE_PERMISSIONS",
        "",
        Kind::Text,
        "a file of per-key rules: 'KEY call SERVICE...' and 'KEY serve SERVICE...' ('*' = all); others may do neither",
    ),
    setting(
        "CURVE_SERVER_KEY",
        "",
        Kind::Text,
        "the node's CURVE public key: call, worker and broker connect with CURVE",
    ),
    setting(
        "MAX_CONNECTIONS",
        "10000",
        number(1, 1_000_000, "connections"),
        "TCP connections one process holds; more are accepted and closed at once",
    ),
    setting(
        "MAX_CONNECTIONS_PER_ADDRESS",
        "1024",
        number(1, 1_000_000, "connections"),
        "connections one source address (an IPv6 /64) may hold; beyond it its oldest still in their handshake close, then new ones are refused",
    ),
    setting(
        "INBOUND_BUDGET_MB",
        "256",
        number(1, 1_048_576, "MiB"),
        "bytes held in partial messages and queues, all connections together; reading pauses beyond it",
    ),
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
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Environment,
    /// The `env` file.
    EnvFile,
    /// The built-in default.
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
            if !SETTINGS.iter().any(|s| s.name == name) {
                return Err(ConfigError(format!("unknown setting {name} (see `ezarch settings`)")));
            }
        }
        let mut values = HashMap::new();
        for s in SETTINGS {
            let name = s.name;
            let flag = flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| (v.clone(), Source::Flag));
            let value = flag
                .or_else(|| environment(name).map(|v| (v, Source::Environment)))
                .or_else(|| file.get(name).map(|v| (v.clone(), Source::EnvFile)))
                .unwrap_or_else(|| (s.default.to_string(), Source::Default));
            values.insert(name, value);
        }
        let config = Self { values };
        config.validate()?;
        Ok(config)
    }

    /// The value of `name`; empty for an unknown name.
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |(v, _)| v.as_str())
    }

    /// The value as it may be printed: a secret that is set shows as `(set)`.
    pub fn shown(&self, name: &str) -> &str {
        let secret = SETTINGS.iter().any(|s| s.name == name && s.kind == Kind::Secret);
        match self.get(name) {
            value if secret && !value.is_empty() => "(set)",
            value => value,
        }
    }

    /// Where the value of `name` came from.
    pub fn source(&self, name: &str) -> Source {
        self.values.get(name).map_or(Source::Default, |(_, source)| *source)
    }

    /// The value of `name` as a port; 0 when it is not one.
    pub fn port(&self, name: &str) -> u16 {
        self.get(name).parse().unwrap_or(0)
    }

    /// A `Kind::Number` setting, already checked against its range.
    pub fn number(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// A `Kind::Number` setting in milliseconds, as a `Duration`.
    pub fn millis(&self, name: &str) -> Duration {
        Duration::from_millis(self.number(name))
    }

    /// A `Kind::Number` setting in seconds, as a `Duration`.
    pub fn seconds(&self, name: &str) -> Duration {
        Duration::from_secs(self.number(name))
    }

    /// `LOG_LEVEL` as a `log` filter (info if it does not parse).
    pub fn log_level(&self) -> log::LevelFilter {
        parse_log_level(self.get("LOG_LEVEL")).unwrap_or(log::LevelFilter::Info)
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

    /// `tcp://MONITOR_BIND_ADDRESS:MONITOR_PORT`, for the HTTP monitor.
    pub fn monitor_endpoint(&self) -> String {
        self.endpoint("MONITOR_BIND_ADDRESS", "MONITOR_PORT")
    }

    /// One line: every setting, with its source.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = SETTINGS
            .iter()
            .map(|s| {
                let source = &self.values[s.name].1;
                format!("{}={} ({source})", s.name, self.shown(s.name))
            })
            .collect();
        parts.sort();
        parts.join(", ")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for s in SETTINGS {
            let (value, source) = &self.values[s.name];
            if let Err(expected) = check(s.kind, value) {
                let (name, value) = (s.name, self.shown(s.name));
                return Err(ConfigError(format!("invalid {name}={value:?} (from {source}): {expected}")));
            }
        }
        Ok(())
    }
}

/// Whether `host` is a loopback address (or `localhost`).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `value` is a valid `kind`; otherwise what was expected.
fn check(kind: Kind, value: &str) -> Result<(), String> {
    let ok = match kind {
        Kind::Port => value.parse::<u16>().is_ok_and(|p| p > 0),
        Kind::Host => !value.is_empty() && !value.contains(char::is_whitespace),
        Kind::LogLevel => parse_log_level(value).is_some(),
        Kind::Number { min, max, .. } => value.parse::<u64>().is_ok_and(|v| (min..=max).contains(&v)),
        Kind::Text | Kind::Secret => !value.contains(['\n', '\r']),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Port => "expected a port number 1-65535".into(),
        Kind::Host => "expected a host name or address".into(),
        Kind::LogLevel => "expected trace, debug, info, warning (warn), error or critical".into(),
        Kind::Number { min, max, unit } => format!("expected a whole number of {unit} from {min} to {max}"),
        Kind::Text | Kind::Secret => "expected one line".into(),
    })
}

/// A log level in any case: Rust's names (`trace` ... `error`, `off`) and Python's, which the
/// original EZ Arch's env files use (`WARNING`, `CRITICAL` and `FATAL` map to warn and error).
pub fn parse_log_level(text: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match text.to_ascii_uppercase().as_str() {
        "TRACE" => Trace,
        "DEBUG" => Debug,
        "INFO" => Info,
        "WARN" | "WARNING" => Warn,
        "ERROR" | "CRITICAL" | "FATAL" => Error,
        "OFF" => Off,
        _ => return None,
    })
}

/// Parses `export NAME="VALUE"` / `NAME=VALUE` lines; `#` starts a comment line, and a `#` after
/// whitespace following the value starts a trailing comment, as in the shell.
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        let bad = |what: &str| ConfigError(format!("env file line {}: {what}, got {line:?}", number + 1));
        let Some((name, value)) = line.split_once('=') else { return Err(bad("expected NAME=VALUE")) };
        let value = parse_value(value).ok_or_else(|| bad("expected one value, then at most a # comment"))?;
        out.insert(name.trim().to_string(), value.to_string());
    }
    Ok(out)
}

/// One shell word: `"..."`, `'...'` or bare, then nothing but whitespace and a `# comment`.
fn parse_value(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let (value, rest) = match text.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let end = text[1..].find(quote)? + 1;
            (&text[1..end], &text[end + 1..])
        }
        _ => text.split_at(text.find(char::is_whitespace).unwrap_or(text.len())),
    };
    let comment = rest.trim_start();
    let separated = comment.len() < rest.len();
    (comment.is_empty() || (separated && comment.starts_with('#'))).then_some(value)
}

/// Reads the env file: `path` when given (it must exist), else `./env` when it exists. A file
/// that exists but cannot be read is an error naming it.
pub fn read_env_file(path: Option<&std::path::Path>) -> Result<Option<String>, ConfigError> {
    let (path, required) = match path {
        Some(path) => (path, true),
        None => (std::path::Path::new("env"), false),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!("env file {}: {e}", path.display()))),
    }
}
