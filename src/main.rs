//! The `ezarch` command line: parses flags into a `Config`, sets up logging, runs the command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use ezarch::client::{Client, ClientOptions};
use ezarch::config::{read_env_file, Config, ConfigError, Kind, SETTINGS};
use ezarch::node::Node;
use ezarch::pipe::PipeMode;
use ezarch::worker::{demo_handler, Worker, WorkerOptions};

/// EZ Arch service broker: pipes, broker, client and worker in one static binary.
///
/// Settings come from flags (`--set NAME=VALUE`, `--bind`, `--log-level`), then the environment,
/// then the env file (`--env FILE`, or ./env when present), then defaults. `ezarch settings`
/// lists them.
#[derive(Debug, Parser)]
#[command(name = "ezarch", version, about)]
struct Cli {
    /// The env file (shell `export NAME="VALUE"` lines). Default: ./env if it exists.
    #[arg(long, global = true)]
    env: Option<PathBuf>,
    /// Address the pipes' listeners bind (BIND_ADDRESS). Default 127.0.0.1.
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Log level (LOG_LEVEL): trace, debug, info, warning, error or critical (any case).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Any setting, as NAME=VALUE; repeatable.
    #[arg(long = "set", global = true, value_parser = parse_assignment)]
    set: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole node in one process: in, worker and broker pipes plus one broker.
    Up,
    /// One pipe: a stateless forwarder from a ROUTER to a DEALER or a PUB.
    Pipe {
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
    },
    /// A broker that attaches to the three pipes by address (*_HOST and the ports).
    Broker,
    /// One request through the in pipe; prints the reply frames, one per line.
    Call {
        service: String,
        frames: Vec<String>,
        /// Milliseconds one attempt waits.
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
        /// Attempts, all with the same request id.
        #[arg(long, default_value_t = 2)]
        attempts: u32,
    },
    /// A demo worker: /echo, /req_count, anything else ERR.
    Worker {
        service: String,
        /// Milliseconds of simulated work per request.
        #[arg(long, default_value_t = 0)]
        delay: u64,
    },
    /// Lists every setting with its value and where it came from.
    Settings,
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
    init_logging(config.log_level());
    match run(cli.command, &config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ezarch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let env_text = read_env_file(cli.env.as_deref())?;
    let mut flags = cli.set.clone();
    if let Some(bind) = &cli.bind {
        flags.push(("BIND_ADDRESS".into(), bind.clone()));
    }
    if let Some(level) = &cli.log_level {
        flags.push(("LOG_LEVEL".into(), level.clone()));
    }
    Config::resolve(&flags, |name| std::env::var(name).ok(), env_text.as_deref())
}

fn init_logging(level: log::LevelFilter) {
    let _ = fern::Dispatch::new()
        .format(|out, message, record| {
            out.finish(format_args!("{} {} {}", record.level(), record.target(), message))
        })
        .level(level)
        .chain(std::io::stderr())
        .apply();
}

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run(command: Command, config: &Config) -> AnyResult<ExitCode> {
    let stop = ezarch::signals::install();
    match command {
        Command::Up => {
            let mut node = Node::up(config)?;
            log::info!("ezarch up: {}; bound {}", config.summary(), node.bound.join(" "));
            node.run(stop)?;
        }
        Command::Broker => {
            let mut node = Node::broker(config)?;
            log::info!("ezarch broker: {}", config.summary());
            node.run(stop)?;
        }
        Command::Pipe { mode, front, back, reply_affinity } => {
            let mode = match mode {
                Mode::RouterDealer => PipeMode::RouterDealer,
                Mode::RouterPub => PipeMode::RouterPub,
            };
            let mut node = Node::pipe(mode, &front, &back, config, reply_affinity)?;
            log::info!("ezarch pipe: bound {}", node.bound.join(" "));
            node.run(stop)?;
        }
        Command::Call { service, frames, timeout, attempts } => {
            return call(config, &service, &frames, timeout, attempts, stop)
        }
        Command::Worker { service, delay } => {
            let endpoint = config.endpoint("WORKER_PIPE_HOST", "WORKER_PIPE_PORT_A");
            let options = WorkerOptions { interval: config.millis("POLL_INTERVAL_MS") };
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
                println!("{}={:?}  # {}{range}", s.name, config.get(s.name), s.about);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ezarch call`: exit 0 on a reply, 1 on an `EZ_ERR` reply or a timeout.
fn call(
    config: &Config,
    service: &str,
    frames: &[String],
    timeout: u64,
    attempts: u32,
    stop: &'static std::sync::atomic::AtomicBool,
) -> AnyResult<ExitCode> {
    let endpoint = config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_A");
    let options = ClientOptions { timeout: Duration::from_millis(timeout), attempts };
    let mut client = Client::connect(&endpoint, options)?.stop_on(stop);
    let body: Vec<Bytes> = frames.iter().map(|f| Bytes::from(f.clone())).collect();
    let reply = match client.call(service.as_bytes(), &body) {
        Ok(reply) => reply,
        Err(ezarch::client::CallError::Interrupted) => return Ok(ExitCode::from(130)),
        Err(e) => {
            eprintln!("ezarch call: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for frame in &reply {
        println!("{}", String::from_utf8_lossy(frame));
    }
    let failed = reply.first().is_some_and(|f| &f[..] == ezarch::broker::wire::EZ_ERR);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
