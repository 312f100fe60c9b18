//! `meshwork-bench`: measures added latency (open loop, coordinated-omission
//! corrected), single-core maximum throughput and peak RSS of meshwork, nginx and
//! HAProxy in front of the same hyper upstream, and prints a markdown report.
//! Target `meshwork-mtls-pair` is two sidecars joined by mutual TLS; `meshwork-bench
//! handshakes` measures full mTLS handshakes per CPU-second of one sidecar.
//! `meshwork-bench xds` measures the control plane under 1,000 simulated xDS clients.
//!
//! Run it with `cargo run --release -p meshwork-bench -- --help`; see README.md.

#![allow(
    clippy::print_stdout,
    reason = "a CLI whose output is the report: the markdown goes to stdout"
)]
#![allow(
    clippy::print_stderr,
    reason = "progress and diagnostics go to stderr so stdout stays the report"
)]

/// Prints a progress line to stderr.
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[meshwork-bench] {}", format_args!($($arg)*))
    };
}
pub(crate) use progress;

/// The allocator of the `meshwork` binary, so that the control-plane process of `meshwork-bench xds` allocates as
/// `meshwork control` does (it changes that benchmark's CPU figures by a third; see README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod handshakes;
mod loadgen;
mod mtls;
mod probe;
mod process;
mod report;
mod run;
mod stats;
mod sys;
mod targets;
mod upstream;
mod xds;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Upstream { addr }) => upstream::serve(addr).map(|()| run::Verdict::Clean),
        Some(Command::Xds(args)) => xds::run(&args),
        Some(Command::Handshakes(args)) => handshakes::run(&args),
        Some(Command::XdsServer {
            dir,
            poll_ms,
            settle_ms,
        }) => xds::server::serve(
            dir,
            std::time::Duration::from_millis(poll_ms),
            std::time::Duration::from_millis(settle_ms),
        )
        .map(|()| run::Verdict::Clean),
        None => run::run(&cli.run),
    };
    match result {
        Ok(run::Verdict::Clean) => ExitCode::SUCCESS,
        Ok(run::Verdict::Problems) => ExitCode::from(2),
        Err(e) => {
            progress!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
