//! The `ezarch` command line: parses flags, sets up logging, and runs the chosen command.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ezarch::pipe::{Forwarder, PipeMode};
use ezarch::reactor::Reactor;
use ezarch::socket::SocketOptions;

/// EZ Arch service broker: pipes, broker, client and worker in one static binary.
#[derive(Debug, Parser)]
#[command(name = "ezarch", version, about)]
struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    log_level: log::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one pipe: a stateless forwarder from a ROUTER to a DEALER or a PUB.
    Pipe {
        #[arg(long, value_enum, default_value = "router-dealer")]
        mode: Mode,
        /// Endpoint the ROUTER binds, e.g. tcp://127.0.0.1:9000.
        #[arg(long)]
        front: String,
        /// Endpoint the DEALER or PUB binds, e.g. tcp://127.0.0.1:9001.
        #[arg(long)]
        back: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    RouterDealer,
    RouterPub,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level);
    let result = match cli.command {
        Command::Pipe { mode, front, back } => run_pipe(mode, &front, &back),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ezarch: {e}");
            ExitCode::FAILURE
        }
    }
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

fn run_pipe(mode: Mode, front: &str, back: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mode = match mode {
        Mode::RouterDealer => PipeMode::RouterDealer,
        Mode::RouterPub => PipeMode::RouterPub,
    };
    let mut reactor = Reactor::new()?;
    let mut forwarder = Forwarder::new(&mut reactor, mode, &SocketOptions::default())?;
    reactor.bind(forwarder.front, front)?;
    reactor.bind(forwarder.back, back)?;
    loop {
        reactor.poll(None)?;
        forwarder.pump(&mut reactor);
    }
}
