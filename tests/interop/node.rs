//! Helpers for tests that run `ezarch` processes: free ports and fast timers shared by every
//! process of a test, starting `up`, `broker` and pyzmq peers, and reading /proc.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use ezarch::config::PORT_SETTINGS;

use super::{spawn_script, wait_listening, Logged, Peer};

/// How long a test waits for a node to log what it expects.
pub const LOG_WAIT: Duration = Duration::from_secs(20);

/// Every port a node binds: the six pipe ports, the generation-2 workers' port and the
/// monitoring endpoint's.
const PORTS: [&str; 8] = [
    PORT_SETTINGS[0],
    PORT_SETTINGS[1],
    PORT_SETTINGS[2],
    PORT_SETTINGS[3],
    PORT_SETTINGS[4],
    PORT_SETTINGS[5],
    "GEN2_WORKER_PORT",
    "MONITOR_PORT",
];

/// Settings shared by every process of one test: free ports and fast timers.
pub struct Settings {
    flags: Vec<String>,
    ports: Vec<u16>,
}

impl Settings {
    pub fn new(extra: &[&str]) -> Self {
        let listeners: Vec<TcpListener> =
            PORTS.iter().map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        let mut flags = vec!["--env".to_string(), "/dev/null".to_string()];
        for (name, port) in PORTS.iter().zip(&ports) {
            flags.extend(["--set".to_string(), format!("{name}={port}")]);
        }
        // NO_SERVICE_MS is long so a request that races a worker's first heartbeat is held, not
        // refused, on a loaded machine; the NO_SERVICE tests set their own.
        for setting in ["POLL_INTERVAL_MS=500", "WORKER_LIFETIME_S=2", "NO_SERVICE_MS=3000", "LOG_LEVEL=info"]
            .iter()
            .chain(extra)
        {
            flags.extend(["--set".to_string(), setting.to_string()]);
        }
        Self { flags, ports }
    }

    pub fn endpoint(&self, name: &str) -> String {
        let i = PORTS.iter().position(|p| *p == name).unwrap();
        format!("tcp://127.0.0.1:{}", self.ports[i])
    }

    /// `ezarch ARGS` with these settings. The monitoring port is `up`'s: a `broker` or `pipe`
    /// beside it gets MONITOR_PORT=0 (the last `--set` wins).
    pub fn ezarch(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ezarch"));
        command.args(&self.flags);
        if matches!(args.first(), Some(&"broker" | &"pipe")) {
            // Before the subcommand: `--set` given after it replaces the earlier ones.
            command.args(["--set", "MONITOR_PORT=0"]);
        }
        command.args(args);
        command
    }

    /// `ezarch ARGS` run inside network namespace `netns` (`ip netns exec`).
    pub fn ezarch_in(&self, netns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_ezarch")]).args(&self.flags);
        command.args(["--set", "MONITOR_PORT=0"]).args(args);
        command
    }

    /// Starts `ezarch ARGS` in the background; for `up`, waits until the in pipe accepts.
    pub fn start(&self, args: &[&str]) -> Logged {
        let process = Logged::spawn(&mut self.ezarch(args));
        if args.first() == Some(&"up") {
            wait_listening(&self.endpoint("IN_PIPE_PORT_A"), Duration::from_secs(10));
        }
        process
    }

    pub fn py(&self, role: &str, args: &[&str]) -> Peer {
        let mut all = vec![role];
        all.extend_from_slice(args);
        spawn_script("ez.py", &all)
    }

    /// The node's `/metrics` text, by a plain HTTP/1.0 GET (the monitor has slots of its own).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let addr = self.endpoint("MONITOR_PORT").replace("tcp://", "");
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        text
    }

    /// Starts a pyzmq worker for `service` that serves for `seconds`.
    pub fn worker(&self, service: &str, delay_ms: &str, seconds: &str) -> Peer {
        self.py("worker", &[&self.endpoint("WORKER_PIPE_PORT_A"), service, "500", delay_ms, seconds])
    }
}

pub fn served(peer: &Peer) -> usize {
    peer.ok_line().rsplit(' ').next().unwrap().parse().unwrap()
}

/// Seconds of CPU (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    Usage::of(&[pid]).cpu_s
}

/// What processes have used so far, from /proc: CPU seconds (user + system, all threads) and
/// minor page faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub faults: f64,
}

impl Usage {
    /// What processes `pids` have used together.
    pub fn of(pids: &[u32]) -> Self {
        #[allow(unsafe_code)]
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        pids.iter().fold(Self::default(), |sum, pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            // Fields after the command name (which may hold spaces) start at field 3, state:
            // minflt is field 10, utime and stime 14 and 15.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            let number = |i: usize| fields[i].parse::<u64>().unwrap() as f64;
            Self { cpu_s: sum.cpu_s + (number(11) + number(12)) / per_second, faults: sum.faults + number(7) }
        })
    }

    /// CPU µs and page faults per one of `count` things done since `start`.
    pub fn per(self, start: Usage, count: f64) -> (f64, f64) {
        ((self.cpu_s - start.cpu_s) * 1e6 / count, (self.faults - start.faults) / count)
    }
}

/// The value of the sample `name` (with its labels, as written: `x_total{reason="a"}`) in
/// Prometheus text.
pub fn sample(metrics: &str, name: &str) -> f64 {
    let line = metrics.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}
