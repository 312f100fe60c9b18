//! Command-line interface (clap derive).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

const LONG_ABOUT: &str = "\
Side-by-side benchmark of meshwork against nginx and HAProxy.

All targets forward to the same hyper upstream (1 KiB responses, HTTP/1.1 keep-alive) \
that this harness starts itself. For each target, one after another, it measures:

  * added latency p50/p99/p99.9: target latency minus the direct (no proxy) latency, \
at a fixed request rate (--rate over --connections keep-alive connections). The load \
generator is open-loop and corrects coordinated omission: request k is due at \
start + k/rate and its latency counts from that intended time, even when the connection \
was still busy and had to send it late.
  * max requests/s with the proxy pinned to one CPU: closed loop over \
--throughput-connections connections, for --duration seconds.
  * peak RSS (VmHWM) of the proxy process, in MiB.

With --rounds N, both phases run N times per target, the targets in a rotated order \
each round; latency histograms are pooled over rounds (and added latency is computed \
from the pooled percentiles), req/s is the median over rounds, and rounds in which the \
load generator's own schedule lag p99 exceeded --max-lag-us are flagged as noisy.

Target meshwork-policies is the same meshwork binary with the five built-in policy filters \
(authz, fault, router, retry, circuit-breaker) chained on its route, configured so that none \
of them changes the answer: the cost of a realistic mesh route next to the bare hop.

CPU layout: proxy on the first allowed CPU; load generator and upstream on the others. \
With a single CPU nothing is pinned (and the report says so).

Output: a markdown table (ratios to nginx, else meshwork) on stdout, also written to \
--out. Progress goes to stderr. Exit status: 0 when every available target was measured \
without errors, 2 when a target failed or had request errors, 1 when the harness itself \
failed.

Build the harness with --release (a debug load generator is the bottleneck). An existing \
meshwork binary is used as is: rebuild it (cargo build --release -p meshwork-cli) after \
changing meshwork. nginx and HAProxy that are missing are skipped unless --install is given.

Results on a shared 2-vCPU VM are indicative only: neighbours, frequency scaling and \
the load generator sharing a core with the upstream all add noise. Compare targets \
within one run, not across runs or machines, and use --rounds 5 or more for a comparison.";

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "meshwork-bench",
    version,
    about = "Latency/throughput/RSS benchmark: direct vs meshwork vs nginx vs HAProxy",
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Internal subcommands (hidden).
    #[command(subcommand)]
    pub command: Option<Internal>,
    /// Benchmark options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Hidden subcommands the harness runs by re-executing itself.
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// Serve 200 + 1024-byte bodies over HTTP/1.1 on ADDR (the benchmark upstream).
    #[command(hide = true)]
    Upstream {
        /// Address to listen on.
        #[arg(long)]
        addr: SocketAddr,
    },
}

/// Options of a benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Fixed request rate (requests/s, all connections together) for the latency phase.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,

    /// Keep-alive connections for the latency phase; connection i sends requests
    /// i, i+N, i+2N, ... of the global schedule.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Measured seconds of each phase (latency and throughput), after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,

    /// Warm-up seconds before each phase; their results are discarded.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,

    /// Rounds of both phases per target. All targets are started once; each round runs
    /// them one after another, in an order rotated by one target per round. Latency
    /// histograms are pooled over rounds, req/s is the median. Use 5 or more for a
    /// comparison on a shared machine (--quick does not change it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,

    /// A round whose load-generator schedule lag p99 (µs) is above this is flagged as
    /// noisy in the report (it is still counted).
    #[arg(long, value_name = "US", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_lag_us: u64,

    /// Connections for the closed-loop max-throughput phase.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub throughput_connections: u32,

    /// Targets to measure, in order (comma-separated). `direct` is needed to compute
    /// added latency. `meshwork-policies` is the meshwork binary with the five built-in
    /// policy filters (authz, fault, router, retry, circuit-breaker) on its route; it is
    /// not in the default list.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,meshwork,nginx,haproxy"
    )]
    pub targets: Vec<Target>,

    /// Install missing nginx (`nginx-light`) / HAProxy (`haproxy`) with apt-get
    /// (needs root). Without it, missing proxies are skipped.
    #[arg(long)]
    pub install: bool,

    /// Path of the meshwork binary. Default: target/release/meshwork in the workspace,
    /// built with `cargo build --release -p meshwork-cli` if it does not exist.
    #[arg(long, value_name = "PATH")]
    pub meshwork: Option<PathBuf>,

    /// Short run for CI smoke tests: --duration 3 --warmup 1.
    #[arg(long, conflicts_with_all = ["duration", "warmup"])]
    pub quick: bool,

    /// Where to write the markdown report.
    #[arg(long, value_name = "PATH", default_value_os_t = default_report_path())]
    pub out: PathBuf,
}

impl RunArgs {
    /// Measured seconds, after `--quick`.
    pub fn effective_duration(&self) -> u64 {
        if self.quick { 3 } else { self.duration }
    }

    /// Warm-up seconds, after `--quick`.
    pub fn effective_warmup(&self) -> u64 {
        if self.quick { 1 } else { self.warmup }
    }
}

/// Something the load generator can be pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The upstream itself, no proxy in between.
    Direct,
    /// The meshwork proxy.
    Meshwork,
    /// The same meshwork binary with the five built-in policy filters (authz, fault,
    /// router, retry, circuit-breaker) chained on its route.
    MeshworkPolicies,
    /// nginx as a reverse proxy.
    Nginx,
    /// HAProxy.
    Haproxy,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Target {
    /// Whether this target runs the meshwork binary (a failure to locate or build it
    /// is a failure, not a skip).
    pub fn is_meshwork(self) -> bool {
        matches!(self, Target::Meshwork | Target::MeshworkPolicies)
    }

    /// The name in the report's tables and notes.
    pub fn label(self) -> &'static str {
        match self {
            Target::MeshworkPolicies => "meshwork + 5 policy filters",
            other => other.name(),
        }
    }

    /// The name on the command line (`--targets`) and in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Meshwork => "meshwork",
            Target::MeshworkPolicies => "meshwork-policies",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
        }
    }
}

/// The workspace root (the parent of this crate), fixed at compile time.
pub fn workspace_root() -> PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .map_or_else(|| crate_dir.join(".."), ToOwned::to_owned)
}

/// `target/bench/report.md` under the workspace root.
fn default_report_path() -> PathBuf {
    workspace_root()
        .join("target")
        .join("bench")
        .join("report.md")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_options() -> Result<(), clap::Error> {
        let cases: &[(&[&str], u64, u64, &[Target])] = &[
            (
                &["bench"],
                10,
                2,
                &[
                    Target::Direct,
                    Target::Meshwork,
                    Target::Nginx,
                    Target::Haproxy,
                ],
            ),
            (
                &["bench", "--quick", "--targets", "direct,nginx"],
                3,
                1,
                &[Target::Direct, Target::Nginx],
            ),
            (
                &[
                    "bench",
                    "--targets",
                    "direct,nginx,meshwork,meshwork-policies",
                ],
                10,
                2,
                &[
                    Target::Direct,
                    Target::Nginx,
                    Target::Meshwork,
                    Target::MeshworkPolicies,
                ],
            ),
            (
                &["bench", "--quick", "--targets", "meshwork-policies"],
                3,
                1,
                &[Target::MeshworkPolicies],
            ),
            (
                &["bench", "--duration", "5", "--warmup", "0"],
                5,
                0,
                &[
                    Target::Direct,
                    Target::Meshwork,
                    Target::Nginx,
                    Target::Haproxy,
                ],
            ),
        ];
        for (argv, duration, warmup, targets) in cases {
            let cli = Cli::try_parse_from(*argv)?;
            assert!(cli.command.is_none());
            assert_eq!((cli.run.rounds, cli.run.max_lag_us), (1, 1000), "{argv:?}");
            assert_eq!(cli.run.effective_duration(), *duration, "{argv:?}");
            assert_eq!(cli.run.effective_warmup(), *warmup, "{argv:?}");
            assert_eq!(cli.run.targets, *targets, "{argv:?}");
        }
        Ok(())
    }

    #[test]
    fn parses_rounds() -> Result<(), clap::Error> {
        let cases: &[(&[&str], u32, u64, u64)] = &[
            (&["bench", "--rounds", "5"], 5, 1000, 10),
            (&["bench", "--quick", "--rounds", "3"], 3, 1000, 3),
            (
                &["bench", "--rounds", "2", "--max-lag-us", "250"],
                2,
                250,
                10,
            ),
        ];
        for &(argv, rounds, max_lag_us, duration) in cases {
            let cli = Cli::try_parse_from(argv)?;
            assert_eq!(cli.run.rounds, rounds, "{argv:?}");
            assert_eq!(cli.run.max_lag_us, max_lag_us, "{argv:?}");
            assert_eq!(cli.run.effective_duration(), duration, "{argv:?}");
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_options() {
        for argv in [
            &["bench", "--rate", "0"][..],
            &["bench", "--rounds", "0"],
            &["bench", "--max-lag-us", "0"],
            &["bench", "--quick", "--duration", "4"],
            &["bench", "--targets", "envoy"],
            &["bench", "--targets", "meshwork_policies"],
            &["bench", "--targets", "meshwork+policies"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn target_names_and_labels() {
        let cases = [
            (Target::Direct, "direct", "direct", false),
            (Target::Meshwork, "meshwork", "meshwork", true),
            (
                Target::MeshworkPolicies,
                "meshwork-policies",
                "meshwork + 5 policy filters",
                true,
            ),
            (Target::Nginx, "nginx", "nginx", false),
            (Target::Haproxy, "haproxy", "haproxy", false),
        ];
        assert_eq!(cases.len(), Target::value_variants().len());
        for (target, name, label, meshwork) in cases {
            let possible = target.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(possible.as_deref(), Some(name), "{target:?}");
            assert_eq!(target.to_string(), name, "{target:?}");
            assert_eq!(target.label(), label, "{target:?}");
            assert_eq!(target.is_meshwork(), meshwork, "{target:?}");
        }
    }

    #[test]
    fn parses_hidden_upstream() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["bench", "upstream", "--addr", "127.0.0.1:9"])?;
        assert!(matches!(cli.command, Some(Internal::Upstream { .. })));
        Ok(())
    }
}
