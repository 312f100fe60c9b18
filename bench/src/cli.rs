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

Target meshwork-mtls-pair is two meshwork processes as two workloads' sidecars: the load generator \
talks plain HTTP to a client sidecar (SPIFFE ID .../sa/productpage), which forwards over pooled mutual \
TLS to a server sidecar (.../sa/reviews, STRICT mTLS, the five policy filters on its route, authz \
allowing productpage), which forwards to the upstream. Both sidecars run on the proxy CPU. The report \
states the pair's added p99 next to the goal (<= 200 us at 1,000 req/s) and the client sidecar's \
connection reuse ratio. `meshwork-bench handshakes` measures full mTLS handshakes per CPU-second.

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

const XDS_ABOUT: &str = "\
The control plane under load: --clients simulated Delta ADS clients (the first --sidecars of \
them as workloads' sidecars, the others proxyless) on a mesh of --services services written as \
Istio YAML (ServiceEntry + 2 WorkloadEntries, a DestinationRule with subsets v1/v2 and a 90/10 \
VirtualService each).

For each --modes entry it starts the control plane in a process of its own (pinned to the first \
CPU; the clients run on the others), connects the clients, waits until each holds a complete \
config, then makes --edits edits of one VirtualService's weights and times each until every \
client has received the changed route configuration. `polling` counts from the file write (the \
file source polls every 200 ms and waits 100 ms for writes to settle); `push` has the control \
plane load the directory and call MeshViews::set_mesh at once and counts from that call, which \
is the push latency alone.

Reported: initial sync time, change-to-client latency p50/p99/max for all clients, proxyless \
clients and sidecars, the control plane's CPU time (initial sync, each change, idle) and RSS, \
and the bytes and responses the clients received. Markdown on stdout and in --out.

Build with --release.";

const HANDSHAKES_ABOUT: &str = "\
Full TLS handshakes per second per core of a meshwork server sidecar.

Starts the harness's upstream and one meshwork server sidecar (one worker, pinned to the first CPU) with a STRICT \
mutual-TLS listener for spiffe://cluster.local/ns/default/sa/reviews routing to the upstream. --clients threads on \
the other CPUs each open one connection at a time: TCP connect, a full TLS 1.3 handshake (X25519, ECDSA P-256, the \
client presenting spiffe://cluster.local/ns/default/sa/productpage, no session resumption), one HTTP/1.1 GET with \
`Connection: close`, the whole 1 KiB response, close. Completed connections per second and the sidecar's CPU time \
(utime + stime from /proc/PID/stat) over the measured window give handshakes per CPU-second.

The same loop against a second sidecar with a plaintext listener (same route) gives the CPU cost of a connection \
without TLS; the difference is the handshake's own cost. Each round runs both phases; the report gives the median \
over rounds next to rustls' published server figure (8,326 full TLS 1.3 handshakes/s on one core, ECDSA P-256 + \
X25519, server authentication only, in memory).

Build with --release.";

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
    /// Other benchmarks, and internal subcommands (hidden).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Benchmark options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The control-plane benchmark, and the hidden subcommands the harness runs by re-executing itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The control plane under 1,000 simulated Delta xDS clients: initial sync, edit-to-all-clients latency, CPU
    /// and memory.
    #[command(long_about = XDS_ABOUT)]
    Xds(XdsArgs),
    /// Full mutual-TLS handshakes per second per core of one meshwork server sidecar: new connections without
    /// session resumption, each with one request, against the sidecar's CPU time.
    #[command(long_about = HANDSHAKES_ABOUT)]
    Handshakes(HandshakeArgs),
    /// Serve 200 + 1024-byte bodies over HTTP/1.1 on ADDR (the benchmark upstream).
    #[command(hide = true)]
    Upstream {
        /// Address to listen on.
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Run the control plane on DIR for `xds` (commands on stdin, events on stdout).
    #[command(hide = true)]
    XdsServer {
        /// The directory of Istio YAML.
        #[arg(long)]
        dir: PathBuf,
        /// Polling interval of the file source, ms.
        #[arg(long)]
        poll_ms: u64,
        /// Settle time of the file source, ms.
        #[arg(long)]
        settle_ms: u64,
    },
}

/// Options of `meshwork-bench xds`.
#[derive(Debug, Clone, clap::Args)]
pub struct XdsArgs {
    /// Simulated Delta ADS clients, each on its own connection.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,

    /// How many of the clients are sidecars (node id of a workload, listener addresses in the node metadata);
    /// the others are proxyless clients. A sidecar's view is its own, so this is the expensive kind.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub sidecars: u32,

    /// Services in the mesh (each: ServiceEntry, 2 WorkloadEntries, DestinationRule, VirtualService).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub services: u32,

    /// Edits per mode, one after another.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub edits: u32,

    /// Modes to run, each with a fresh control plane and clients (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "polling,push"
    )]
    pub modes: Vec<crate::xds::report::Mode>,

    /// Longest wait, in seconds, for the initial sync or for one edit to reach every client.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Where to write the markdown report.
    #[arg(long, value_name = "PATH", default_value_os_t = default_xds_report_path())]
    pub out: PathBuf,
}

/// Options of `meshwork-bench handshakes`.
#[derive(Debug, Clone, clap::Args)]
pub struct HandshakeArgs {
    /// Measured seconds of each phase, after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,

    /// Warm-up seconds before each phase; their connections are not counted.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,

    /// Rounds of both phases (mTLS, then plaintext); the report gives the median and the range.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,

    /// Client threads opening connections, one connection at a time each, on the load generator's CPUs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,

    /// Path of the meshwork binary (default: target/release/meshwork, built if missing).
    #[arg(long, value_name = "PATH")]
    pub meshwork: Option<PathBuf>,

    /// Short run for CI smoke tests: --duration 3 --warmup 1 --rounds 1.
    #[arg(long, conflicts_with_all = ["duration", "warmup", "rounds"])]
    pub quick: bool,

    /// Where to write the markdown report.
    #[arg(long, value_name = "PATH", default_value_os_t = default_report_path().with_file_name("handshakes-report.md"))]
    pub out: PathBuf,
}

impl HandshakeArgs {
    /// Measured seconds per phase, after `--quick`.
    pub fn effective_duration(&self) -> u64 {
        if self.quick { 3 } else { self.duration }
    }

    /// Warm-up seconds per phase, after `--quick`.
    pub fn effective_warmup(&self) -> u64 {
        if self.quick { 1 } else { self.warmup }
    }

    /// Rounds, after `--quick`.
    pub fn effective_rounds(&self) -> usize {
        if self.quick { 1 } else { self.rounds as usize }
    }
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
    /// policy filters (authz, fault, router, retry, circuit-breaker) on its route;
    /// `meshwork-mtls-pair` is a client sidecar and a server sidecar (the five filters)
    /// joined by mutual TLS; `nginx-mtls-pair` is two nginx processes joined the same way,
    /// without filters. None of these is in the default list.
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
    /// Two meshwork processes, a client sidecar and a server sidecar (STRICT mTLS, the
    /// five policy filters), joined by mutual TLS with SPIFFE identities.
    MeshworkMtlsPair,
    /// nginx as a reverse proxy.
    Nginx,
    /// Two nginx processes in the mTLS pair's topology (mutual TLS 1.3 between them, no filters): the pair's
    /// reference on the same machine.
    NginxMtlsPair,
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
        matches!(
            self,
            Target::Meshwork | Target::MeshworkPolicies | Target::MeshworkMtlsPair
        )
    }

    /// The name in the report's tables and notes.
    pub fn label(self) -> &'static str {
        match self {
            Target::MeshworkPolicies => "meshwork + 5 policy filters",
            Target::MeshworkMtlsPair => "meshwork mTLS pair + 5 policy filters",
            Target::NginxMtlsPair => "nginx mTLS pair (no filters)",
            other => other.name(),
        }
    }

    /// The name on the command line (`--targets`) and in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Meshwork => "meshwork",
            Target::MeshworkPolicies => "meshwork-policies",
            Target::MeshworkMtlsPair => "meshwork-mtls-pair",
            Target::Nginx => "nginx",
            Target::NginxMtlsPair => "nginx-mtls-pair",
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

impl XdsArgs {
    /// `--clients`.
    pub fn clients(&self) -> usize {
        self.clients as usize
    }

    /// `--sidecars`, at most `--clients`.
    pub fn sidecars(&self) -> usize {
        self.sidecars.min(self.clients) as usize
    }

    /// `--services`.
    pub fn services(&self) -> usize {
        self.services as usize
    }

    /// `--edits`.
    pub fn edits(&self) -> usize {
        self.edits as usize
    }
}

/// `target/bench/xds-report.md` under the workspace root.
fn default_xds_report_path() -> PathBuf {
    default_report_path().with_file_name("xds-report.md")
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
            (
                Target::MeshworkMtlsPair,
                "meshwork-mtls-pair",
                "meshwork mTLS pair + 5 policy filters",
                true,
            ),
            (Target::Nginx, "nginx", "nginx", false),
            (
                Target::NginxMtlsPair,
                "nginx-mtls-pair",
                "nginx mTLS pair (no filters)",
                false,
            ),
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
    fn parses_handshakes() -> Result<(), clap::Error> {
        // (argv, duration, warmup, rounds, clients)
        let cases: &[(&[&str], u64, u64, usize, u32)] = &[
            (&["bench", "handshakes"], 10, 2, 3, 4),
            (&["bench", "handshakes", "--quick"], 3, 1, 1, 4),
            (
                &[
                    "bench",
                    "handshakes",
                    "--duration",
                    "20",
                    "--warmup",
                    "0",
                    "--rounds",
                    "5",
                    "--clients",
                    "8",
                ],
                20,
                0,
                5,
                8,
            ),
        ];
        for (argv, duration, warmup, rounds, clients) in cases {
            let cli = Cli::try_parse_from(*argv)?;
            let Some(Command::Handshakes(h)) = cli.command else {
                panic!("{argv:?}: not handshakes")
            };
            assert_eq!(
                (
                    h.effective_duration(),
                    h.effective_warmup(),
                    h.effective_rounds(),
                    h.clients
                ),
                (*duration, *warmup, *rounds, *clients),
                "{argv:?}"
            );
            assert!(h.out.ends_with("handshakes-report.md"));
        }
        for argv in [
            &["bench", "handshakes", "--clients", "0"][..],
            &["bench", "handshakes", "--quick", "--rounds", "2"],
            &["bench", "handshakes", "--rounds", "0"],
            &["bench", "handshakes", "--rate", "5"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
        let cli = Cli::try_parse_from(["bench", "--targets", "direct,meshwork-mtls-pair"])?;
        assert_eq!(cli.run.targets, [Target::Direct, Target::MeshworkMtlsPair]);
        Ok(())
    }

    #[test]
    fn parses_hidden_upstream() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["bench", "upstream", "--addr", "127.0.0.1:9"])?;
        assert!(matches!(cli.command, Some(Command::Upstream { .. })));
        Ok(())
    }

    #[test]
    fn parses_xds() -> Result<(), clap::Error> {
        use crate::xds::report::Mode;
        let cases: &[(&[&str], u32, u32, u32, u32, &[Mode])] = &[
            (
                &["bench", "xds"],
                1000,
                100,
                1000,
                5,
                &[Mode::Polling, Mode::Push],
            ),
            (
                &[
                    "bench",
                    "xds",
                    "--clients",
                    "10",
                    "--sidecars",
                    "0",
                    "--services",
                    "3",
                    "--edits",
                    "2",
                    "--modes",
                    "push",
                ],
                10,
                0,
                3,
                2,
                &[Mode::Push],
            ),
        ];
        for (argv, clients, sidecars, services, edits, modes) in cases {
            let cli = Cli::try_parse_from(*argv)?;
            let Some(Command::Xds(x)) = cli.command else {
                panic!("{argv:?}: not xds")
            };
            assert_eq!(
                (x.clients, x.sidecars, x.services, x.edits),
                (*clients, *sidecars, *services, *edits),
                "{argv:?}"
            );
            assert_eq!(x.modes, *modes, "{argv:?}");
            assert!(x.out.ends_with("xds-report.md"));
        }
        for argv in [
            &["bench", "xds", "--clients", "0"][..],
            &["bench", "xds", "--modes", "watch"],
            &["bench", "xds", "--rate", "5"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
        let cli = Cli::try_parse_from([
            "bench",
            "xds-server",
            "--dir",
            "/tmp/x",
            "--poll-ms",
            "200",
            "--settle-ms",
            "100",
        ])?;
        assert!(matches!(
            cli.command,
            Some(Command::XdsServer {
                poll_ms: 200,
                settle_ms: 100,
                ..
            })
        ));
        Ok(())
    }
}
