//! The `ezarch` command line: parses flags into a `Config`, sets up logging, runs the command.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use ezarch::admin;
use ezarch::client::{Client, ClientOptions};
use ezarch::config::{is_loopback, read_env_file, Config, ConfigError, Kind, SETTINGS};
use ezarch::door::Door;
use ezarch::node::Node;
use ezarch::pipe::PipeMode;
use ezarch::security::Security;
use ezarch::worker::{demo_handler, Worker, WorkerOptions};
use ezarch::zmtp;

/// EZ Arch service broker: pipes, broker, client and worker in one static binary.
///
/// Settings come from flags (`--set NAME=VALUE`, `--bind`, `--log-level`), then the environment,
/// then the env file (`--env FILE`, or ./env when present), then defaults. `ezarch settings`
/// lists them with where each value came from.
#[derive(Debug, Parser)]
#[command(name = "ezarch", version, about)]
struct Cli {
    /// The env file (shell `export NAME="VALUE"` lines). Default: ./env if it exists.
    #[arg(long, global = true)]
    env: Option<PathBuf>,
    /// Log level (LOG_LEVEL): trace, debug, info, warning, error or critical (any case).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Any setting, as NAME=VALUE; repeatable.
    #[arg(long = "set", global = true, value_parser = parse_assignment)]
    set: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

/// Where listeners bind, for the commands that listen.
#[derive(Debug, clap::Args)]
struct Bind {
    /// Address the listeners bind (BIND_ADDRESS). Default 127.0.0.1.
    #[arg(long)]
    bind: Option<String>,
    /// Allow binding a non-loopback address without CURVE (no authentication, no encryption).
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole node in one process: in, worker and broker pipes plus one broker.
    Up {
        #[command(flatten)]
        bind: Bind,
    },
    /// One pipe: a stateless forwarder from a ROUTER to a DEALER or a PUB.
    Pipe {
        #[command(flatten)]
        bind: Bind,
        /// router-dealer (the in and worker pipes) or router-pub (the broker pipe).
        #[arg(long, value_enum, default_value = "router-dealer")]
        mode: Mode,
        /// Endpoint the ROUTER binds, e.g. tcp://127.0.0.1:9000.
        #[arg(long)]
        front: String,
        /// Endpoint the DEALER or PUB binds, e.g. tcp://127.0.0.1:9001.
        #[arg(long)]
        back: String,
        /// A worker pipe: each worker reply goes to the broker that dispatched its request.
        #[arg(long)]
        reply_affinity: bool,
        /// Who connects to the ROUTER (the CURVE_PERMISSIONS rule a key needs there): clients,
        /// workers or brokers. Required for router-dealer with CURVE_PERMISSIONS; otherwise the
        /// default is brokers for router-pub, workers with --reply-affinity, else clients. The
        /// DEALER or PUB is always a broker door.
        #[arg(long, value_enum)]
        front_door: Option<FrontDoor>,
    },
    /// A broker that attaches to the three pipes by address (*_HOST and the ports).
    Broker {
        #[command(flatten)]
        bind: Bind,
    },
    /// One request through the in pipe; prints the reply frames, one per line.
    Call {
        /// The service to call, e.g. echo.
        service: String,
        /// Body frames, e.g. /echo hello; `-` reads one frame from stdin (binary, up to 16 MiB).
        frames: Vec<String>,
        #[command(flatten)]
        call: CallFlags,
        /// Print each reply frame as hex instead of text.
        #[arg(long)]
        hex: bool,
    },
    /// A demo worker: /echo, /req_count, anything else ERR.
    Worker {
        /// The service this worker serves, e.g. echo.
        service: String,
        /// Milliseconds of simulated work per request.
        #[arg(long, default_value_t = 0)]
        delay: u64,
    },
    /// Lists every setting with its value and where it came from.
    Settings,
    /// Prints a new CURVE key pair (Z85): CURVE_PUBLIC_KEY and CURVE_SECRET_KEY lines.
    Keygen,
    /// Lists the services the node's broker knows: live workers, in flight, served (ez.services).
    Services {
        /// Print the node's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        call: CallFlags,
    },
    /// Prints the node's counters: requests, answers by reason, connections, bytes (ez.stats).
    Stats {
        /// Print the node's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        call: CallFlags,
    },
    /// Round-trip times to the node (ez.ping through the in pipe and the broker).
    Ping {
        /// How many pings.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        #[command(flatten)]
        call: CallFlags,
    },
}

/// How a request waits for its answer.
#[derive(Debug, Clone, Copy, clap::Args)]
struct CallFlags {
    /// Milliseconds one attempt waits (at least 1).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Attempts, all with the same request id (at least 1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
}

impl CallFlags {
    fn options(self, security: &Security) -> ClientOptions {
        let timeout = Duration::from_millis(self.timeout);
        ClientOptions { timeout, attempts: self.attempts, curve: security.client() }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FrontDoor {
    Clients,
    Workers,
    Brokers,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    RouterDealer,
    RouterPub,
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ezarch: {e}");
            return ExitCode::from(2);
        }
    };
    ezarch::logging::init(config.log_level());
    let security = match Security::from_config(&config) {
        Ok(security) => security,
        Err(e) => {
            eprintln!("ezarch: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) =
        check_binds(&cli.command, &config, &security).and_then(|()| check_pipe_door(&cli.command, &security))
    {
        eprintln!("ezarch: {e}");
        return ExitCode::from(2);
    }
    match run(cli.command, &config, &security) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ezarch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every `--set` in the order given, before and after the subcommand: clap keeps only the
/// subcommand's occurrences of a global flag, and `ezarch --set A=1 up --set B=2` means both.
/// Clap has checked every value already (`parsed`); this reads the raw arguments up to `--`.
fn all_set_flags(parsed: &[(String, String)]) -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).take_while(|a| a != "--").collect();
    let mut values = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let value = match arg.strip_prefix("--set") {
            Some("") => iter.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        values.extend(value.and_then(|v| parse_assignment(v).ok()));
    }
    if values.len() < parsed.len() {
        return parsed.to_vec(); // arguments that were not UTF-8: clap's view is all there is
    }
    values
}

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let env_text = read_env_file(cli.env.as_deref())?;
    let mut flags = all_set_flags(&cli.set);
    let bind = match &cli.command {
        Command::Up { bind } | Command::Pipe { bind, .. } | Command::Broker { bind } => bind.bind.as_ref(),
        _ => None,
    };
    if let Some(bind) = bind {
        flags.push(("BIND_ADDRESS".into(), bind.clone()));
    }
    if let Some(level) = &cli.log_level {
        flags.push(("LOG_LEVEL".into(), level.clone()));
    }
    Config::resolve(&flags, |name| std::env::var(name).ok(), env_text.as_deref())
}

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A reload flag nothing sets (commands that do not listen).
static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// No open binds by accident: a listener on a non-loopback address without CURVE refuses to
/// start unless `--insecure` says so, and then every start says it.
fn check_binds(command: &Command, config: &Config, security: &Security) -> Result<(), String> {
    let (bind, hosts): (&Bind, Vec<(String, String)>) = match command {
        Command::Up { bind } | Command::Broker { bind } => {
            (bind, vec![("BIND_ADDRESS".into(), config.get("BIND_ADDRESS").to_string())])
        }
        Command::Pipe { bind, front, back, .. } => {
            let host = |endpoint: &str| {
                let address = endpoint.trim_start_matches("tcp://");
                address.rsplit_once(':').map_or(address, |(host, _)| host).to_string()
            };
            (bind, vec![("--front".into(), host(front)), ("--back".into(), host(back))])
        }
        _ => return Ok(()),
    };
    if matches!(command, Command::Broker { .. }) {
        // A broker binds nothing on BIND_ADDRESS; its monitor (MONITOR_BIND_ADDRESS) warns itself.
        return Ok(());
    }
    for (setting, host) in hosts {
        if is_loopback(&host) || security.is_on() && security.has_allowlist() {
            continue;
        }
        let why = match security.is_on() {
            false => "CURVE is off: anyone who reaches it can serve or call any service",
            true => "CURVE_CLIENT_KEYS is unset: any key may connect (the node's key is public)",
        };
        if !bind.insecure {
            return Err(format!(
                "{setting} {host} is not loopback and {why}. Set CURVE_SECRET_KEY and CURVE_CLIENT_KEYS \
                 (README: Running across hosts), or pass --insecure"
            ));
        }
        log::warn!("{setting} {host} is not loopback and {why} (--insecure)");
    }
    Ok(())
}

/// A router-dealer pipe under CURVE_PERMISSIONS must say whose door its ROUTER is: an in pipe
/// and a worker pipe need different rules, and a guess could lock out every worker (or client).
fn check_pipe_door(command: &Command, security: &Security) -> Result<(), String> {
    match command {
        Command::Pipe { mode: Mode::RouterDealer, front_door: None, .. }
            if security.permissions().is_some() =>
        {
            Err("with CURVE_PERMISSIONS, say who connects to the pipe's ROUTER: --front-door clients (an \
                 in pipe) or --front-door workers (a worker pipe)"
                .into())
        }
        _ => Ok(()),
    }
}

fn run(command: Command, config: &Config, security: &Security) -> AnyResult<ExitCode> {
    let stop = ezarch::signals::install();
    let listens = matches!(command, Command::Up { .. } | Command::Broker { .. } | Command::Pipe { .. });
    // SIGHUP reloads a node's allowlist; for a client or worker it keeps its usual meaning.
    let reload = if listens { ezarch::signals::install_reload() } else { &NEVER };
    match command {
        Command::Up { .. } => {
            let mut node = Node::up(config, security)?;
            node.reload_on(reload);
            log_start("up", config, &node, security);
            node.run(stop)?;
        }
        Command::Broker { .. } => {
            let mut node = Node::broker(config, security)?;
            node.reload_on(reload);
            log_start("broker", config, &node, security);
            node.run(stop)?;
        }
        Command::Pipe { mode, front, back, reply_affinity, front_door, .. } => {
            let door = match (front_door, mode, reply_affinity) {
                (Some(FrontDoor::Clients), ..) => Door::Clients,
                (Some(FrontDoor::Workers), ..) => Door::Workers,
                (Some(FrontDoor::Brokers), ..) | (None, Mode::RouterPub, _) => Door::Brokers,
                (None, Mode::RouterDealer, true) => Door::Workers,
                (None, Mode::RouterDealer, false) => Door::Clients,
            };
            let mode = match mode {
                Mode::RouterDealer => PipeMode::RouterDealer,
                Mode::RouterPub => PipeMode::RouterPub,
            };
            let mut node = Node::pipe(mode, (&front, door), &back, config, reply_affinity, security)?;
            node.reload_on(reload);
            log_start("pipe", config, &node, security);
            node.run(stop)?;
        }
        Command::Call { service, frames, call: flags, hex } => {
            return call(config, &service, &frames, flags.options(security), hex, stop)
        }
        Command::Keygen => {
            let keys = ezarch::sodium::generate_keys()?;
            let z85 = |key: &[u8; 32]| zmtp::z85::encode(key).unwrap_or_default();
            println!("CURVE_PUBLIC_KEY=\"{}\"", z85(keys.public()));
            println!("CURVE_SECRET_KEY=\"{}\"", z85(&keys.secret_bytes()));
        }
        Command::Services { json, call } => {
            let text = admin::query(&mut client(config, call.options(security), stop)?, "ez.services")?;
            print!("{}", if json { text + "\n" } else { admin::services_table(&text)? });
        }
        Command::Stats { json, call } => {
            let text = admin::query(&mut client(config, call.options(security), stop)?, "ez.stats")?;
            print!("{}", if json { text + "\n" } else { admin::stats_table(&text)? });
        }
        Command::Ping { count, call } => {
            let mut client = client(config, call.options(security), stop)?;
            let endpoint = config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_A");
            let times = admin::ping(&mut client, count, Duration::from_millis(200), |i, rtt| {
                println!("ez.ping {i} via {endpoint}: {:.3} ms", rtt.as_secs_f64() * 1e3)
            })?;
            let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
            let (min, max) = ms.iter().fold((f64::MAX, 0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
            let avg = ms.iter().sum::<f64>() / ms.len() as f64;
            println!("{count} answered: min {min:.3} ms, avg {avg:.3} ms, max {max:.3} ms");
        }
        Command::Worker { service, delay } => {
            let endpoint = config.endpoint("WORKER_PIPE_HOST", "WORKER_PIPE_PORT_A");
            let options =
                WorkerOptions { interval: config.millis("POLL_INTERVAL_MS"), curve: security.client() };
            let mut worker = Worker::connect(&endpoint, service.as_bytes(), options)?;
            log::info!("worker for {service:?} on {endpoint}");
            let mut served = 0;
            worker.run(stop, |body| {
                std::thread::sleep(Duration::from_millis(delay));
                demo_handler(&mut served, body)
            })?;
        }
        Command::Settings => {
            for s in SETTINGS {
                let range = match s.kind {
                    Kind::Number { min, max, unit } => format!(" ({min}-{max} {unit})"),
                    Kind::Port => " (1-65535)".to_string(),
                    _ => String::new(),
                };
                let (name, value, source) = (s.name, config.shown(s.name), config.source(s.name));
                println!("{name}={value:?}  # from {source}: {}{range}", s.about);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line at INFO that fits on a screen: what runs and where clients, workers and operators
/// connect. The rest (every endpoint, every setting with its source) at DEBUG.
fn log_start(role: &str, config: &Config, node: &Node, security: &Security) {
    let version = env!("CARGO_PKG_VERSION");
    let find = |name: &str| node.bound.iter().find_map(|b| b.strip_prefix(name)?.strip_prefix('='));
    let mut parts = Vec::new();
    for (label, name) in [
        ("clients", "IN_PIPE_PORT_A"),
        ("workers", "WORKER_PIPE_PORT_A"),
        ("pyez workers", "GEN2_WORKER_PORT"),
    ] {
        parts.extend(find(name).map(|endpoint| format!("{label} {endpoint}")));
    }
    if role == "pipe" {
        parts.extend(node.bound.iter().filter(|b| !b.starts_with("MONITOR_PORT")).cloned());
    }
    if role == "broker" {
        let pipe = |host: &str, port: &str| config.endpoint(host, port);
        parts.push(format!(
            "attaching to in pipe {}, worker pipe {}, broker pipe {}",
            pipe("IN_PIPE_HOST", "IN_PIPE_PORT_B"),
            pipe("WORKER_PIPE_HOST", "WORKER_PIPE_PORT_B"),
            pipe("BROKER_PIPE_HOST", "BROKER_PIPE_PORT_A")
        ));
    }
    parts.extend(find("MONITOR_PORT").map(|endpoint| format!("monitor {endpoint}/metrics")));
    let changed = SETTINGS.iter().filter(|s| config.get(s.name) != s.default).count();
    log::info!(
        "ezarch {version} {role}: {}; {changed} setting(s) changed from the defaults",
        parts.join(", ")
    );
    let mechanism = match role {
        "broker" if security.client().is_some() => "connections: CURVE to the pipes".to_string(),
        "broker" => "connections: NULL".to_string(),
        _ => format!("listeners: {}", security.describe()),
    };
    log::info!("{mechanism}");
    log::debug!("bound: {}", node.bound.join(" "));
    log::debug!("settings: {}", config.summary());
}

/// A client of the node's in pipe (`IN_PIPE_HOST`, `IN_PIPE_PORT_A`) that Ctrl-C interrupts.
fn client(
    config: &Config,
    options: ClientOptions,
    stop: &'static std::sync::atomic::AtomicBool,
) -> AnyResult<Client> {
    let endpoint = config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_A");
    let client =
        Client::connect(&endpoint, options).map_err(|e| format!("IN_PIPE_PORT_A {endpoint}: {e}"))?;
    Ok(client.stop_on(stop))
}

/// The body frames of `ezarch call`: each argument as it is, `-` as all of stdin.
fn body_frames(frames: &[String]) -> AnyResult<Vec<Bytes>> {
    let mut stdin_used = false;
    let mut body = Vec::with_capacity(frames.len());
    for frame in frames {
        if frame == "-" {
            if std::mem::replace(&mut stdin_used, true) {
                return Err("only one frame can be read from stdin (`-`)".into());
            }
            let mut bytes = Vec::new();
            let limit = zmtp::Limits::default().max_frame_size;
            let stdin = std::io::stdin().lock();
            stdin
                .take(limit as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading stdin: {e}"))?;
            if bytes.len() > limit {
                return Err(format!(
                    "stdin holds more than {} MiB, the largest frame a node takes",
                    limit >> 20
                )
                .into());
            }
            body.push(Bytes::from(bytes));
        } else {
            body.push(Bytes::from(frame.clone()));
        }
    }
    Ok(body)
}

/// `ezarch call`: exit 0 on a reply, 1 on an `EZ_ERR` reply or a timeout.
fn call(
    config: &Config,
    service: &str,
    frames: &[String],
    options: ClientOptions,
    hex: bool,
    stop: &'static std::sync::atomic::AtomicBool,
) -> AnyResult<ExitCode> {
    let body = body_frames(frames)?;
    let mut client = client(config, options, stop)?;
    let reply = match client.call(service.as_bytes(), &body) {
        Ok(reply) => reply,
        Err(ezarch::client::CallError::Interrupted) => return Ok(ExitCode::from(130)),
        Err(e) => {
            eprintln!("ezarch call: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for frame in &reply {
        if hex {
            println!("{}", frame.iter().map(|b| format!("{b:02x}")).collect::<String>());
        } else {
            println!("{}", String::from_utf8_lossy(frame));
        }
    }
    let failed = reply.first().is_some_and(|f| &f[..] == ezarch::broker::wire::EZ_ERR);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
