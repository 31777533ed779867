//! The `ezarch` command line: parses flags and runs the chosen command.

use clap::Parser;

/// EZ Arch service broker: pipes, broker, client and worker in one static binary.
#[derive(Debug, Parser)]
#[command(name = "ezarch", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!("ezarch {}: no command yet; see --help", env!("CARGO_PKG_VERSION"));
}
