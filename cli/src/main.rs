//! `meshwork`: the one user-facing binary. Subcommands: `up` (a whole local mesh from a directory of Istio YAML),
//! `proxy` (the data plane, from a file or from xDS), `control` (the control plane), `config` (check a directory of
//! Istio YAML), `filter` (create a filter crate, build one, run a request through one) and `top` (a live view of the
//! mesh's traffic from its sidecars' metrics).

mod admin_http;
mod agent;
mod builtin;
mod config_cmd;
mod control;
mod control_status;
mod demo;
mod filter;
mod filter_new;
mod filter_oci;
mod proxy;
mod signal;
mod top;
mod up;

use clap::{Parser, Subcommand};

/// mimalloc: per-thread free lists suit the worker-per-core model, and the proxy allocates a few small objects per
/// request (header maps, body frames); measured with the bench harness against the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// meshwork: a service-mesh sidecar whose traffic policies are sandboxed, hot-swappable WebAssembly filters.
#[derive(Parser)]
#[command(name = "meshwork", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info` for up, proxy and control, `warn` for the other commands).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole local mesh from a directory of Istio YAML: the control plane, a sidecar per workload, demo apps.
    Up(up::Args),
    /// Run the data-plane proxy, configured by a YAML file (watched for changes) or by a control plane over xDS.
    Proxy(proxy::Args),
    /// Run the control plane: serve Istio resources (a directory of YAML, or Kubernetes with --kube) over xDS.
    Control(control::Args),
    /// Check the Istio YAML the control plane reads: `meshwork config validate DIR`.
    Config(config_cmd::Args),
    /// Create a WASM filter crate, build one, run a request through one; push, pull, sign and verify filters in OCI
    /// registries.
    Filter(filter::Args),
    /// A live view of a running mesh from its sidecars' metrics: per service pair rps, error %, p50 and p99.
    Top(top::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Servers log what they do; one-shot commands print their result and log only problems.
    let level = match cli.command {
        Command::Up(_) | Command::Proxy(_) | Command::Control(_) => "info",
        Command::Config(_) | Command::Filter(_) | Command::Top(_) => "warn",
    };
    init_tracing(&cli.log_format, level);
    builtin::register();
    let result = match cli.command {
        Command::Proxy(args) => proxy::run(args),
        Command::Filter(args) => filter::run(args),
        Command::Up(args) => up::run(args),
        Command::Control(args) => control::run(args),
        Command::Top(args) => top::run(args),
        Command::Config(args) => return config_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "the CLI's own error output")]
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
