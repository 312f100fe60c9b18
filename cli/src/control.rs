//! `meshwork control DIR` / `meshwork control --kube`: the control plane alone — serves the Istio resources of a
//! directory of YAML, or of a Kubernetes cluster (with its Services, EndpointSlices and Pods), over xDS (ADS, SotW and
//! Delta) to sidecars started with `meshwork proxy --xds` and to any other xDS client, applying changes as they
//! happen; and is the mesh CA, signing workload certificates on its TLS port (`--ca-address`).
//!
//! `meshwork control token --identity spiffe://...` prints a bootstrap token for a standalone proxy.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use meshwork_control::{
    ca::{self, CaFiles, CaOptions, SpiffeId, TtlPolicy, parse_duration},
    kube,
    modules::{ModuleOptions, RegistryOptions, options::default_cache_dir},
    run::{ControlPlane, Options},
    source::Polling,
};

/// Arguments of `meshwork control`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory of Istio YAML (ServiceEntry, WorkloadEntry, VirtualService, DestinationRule, PeerAuthentication,
    /// AuthorizationPolicy, WasmPlugin). Watched: valid edits are pushed to every client, invalid ones are reported
    /// and the last good configuration keeps being served.
    #[arg(required_unless_present = "kube", conflicts_with = "kube")]
    dir: Option<PathBuf>,
    /// Read the same kinds from Kubernetes instead of a directory, with Services, EndpointSlices and Pods as the
    /// service registry. Connects with KUBECONFIG (or ~/.kube/config), else the Pod's service account.
    #[arg(long)]
    kube: bool,
    /// With --kube: watch only this namespace (default: all namespaces).
    #[arg(long, conflicts_with = "dir")]
    namespace: Option<String>,
    /// Where to serve xDS. Sidecars connect with `meshwork proxy --xds ADDR --node NAME.NAMESPACE`.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Where to serve the admin API: /status (what `meshwork control status` shows), /metrics (Prometheus), /ready.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    #[command(flatten)]
    ca: CaArgs,
    #[command(flatten)]
    modules: ModuleArgs,
}

/// Subcommands of `meshwork control`.
#[derive(clap::Subcommand)]
enum Command {
    /// Print a bootstrap token with which a proxy obtains its first certificate for one identity (pass it as
    /// `authorization: Bearer TOKEN`). Signed with the token key of the CA directory: use the control plane's
    /// --ca-dir.
    Token(TokenArgs),
    /// Show what a running control plane serves: the mesh version, rejected configuration, xDS streams, and each
    /// plugin module — the digest it serves and why a module asked for is not served. Reads --admin-address.
    Status(crate::control_status::StatusArgs),
}

/// Arguments of `meshwork control token`.
#[derive(clap::Args)]
struct TokenArgs {
    /// The identity the token grants: spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT.
    #[arg(long, value_parser = parse_identity)]
    identity: SpiffeId,
    /// How long the token is valid (e.g. 10m, 1h, 7d). Whoever holds it can get certificates for its identity
    /// until then.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
    /// The control plane's CA directory, holding `token-key` (default: $XDG_STATE_HOME/meshwork/ca, else
    /// ~/.local/state/meshwork/ca).
    #[arg(long)]
    ca_dir: Option<PathBuf>,
}

/// The mesh CA's flags (`meshwork control`).
#[derive(clap::Args)]
pub struct CaArgs {
    /// Where the mesh CA serves certificates (Istio's CreateCertificate) and ADS over TLS; port 0 picks a free one.
    #[arg(long, default_value = ca::DEFAULT_ADDRESS)]
    ca_address: SocketAddr,
    /// Where the generated root CA (Istio's ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem) and the token key
    /// are kept, created on first start and reused after (default: $XDG_STATE_HOME/meshwork/ca, else
    /// ~/.local/state/meshwork/ca).
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Sign with this CA certificate (PEM; a root or an intermediate) instead of a generated root. Needs --ca-key.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The private key of --ca-cert (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// For an intermediate --ca-cert: the certificates above it up to the root (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_chain: Option<PathBuf>,
    /// Extra roots to trust besides the signing CA's (PEM, one or more roots; repeatable), to rotate roots.
    #[arg(long, value_name = "FILE")]
    trust_bundle: Vec<PathBuf>,
    /// The mesh's trust domain: the CA signs identities of it only.
    #[arg(long, default_value = ca::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Another name (DNS or IP) for the CA port's certificate, besides localhost, meshwork-control and 127.0.0.1
    /// (repeatable).
    #[arg(long, value_name = "NAME")]
    ca_hostname: Vec<String>,
    /// Lifetime of a workload certificate when the request asks for none (e.g. 24h, 1h, 6s).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    workload_cert_ttl: Duration,
    /// The longest lifetime a request is granted; longer requests get this.
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    max_workload_cert_ttl: Duration,
    /// Istio's auto mTLS: sidecars talk mutual TLS to each other with certificates from this CA, and inbound
    /// listeners follow PeerAuthentication (PERMISSIVE when none applies). `--mtls false` keeps the mesh plaintext,
    /// for sidecars started without --identity.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    mtls: bool,
}

impl CaArgs {
    /// The CA's options from the flags.
    pub fn options(self) -> anyhow::Result<CaOptions> {
        let files = self.ca_cert.zip(self.ca_key).map(|(cert, key)| CaFiles {
            cert,
            key,
            chain: self.ca_chain,
        });
        Ok(CaOptions {
            address: self.ca_address,
            dir: Some(ca_dir(self.ca_dir)?),
            files,
            trust_bundle: self.trust_bundle,
            trust_domain: self.trust_domain,
            hostnames: self.ca_hostname,
            ttl: TtlPolicy {
                default: self.workload_cert_ttl,
                max: self.max_workload_cert_ttl,
            },
            auto_mtls: self.mtls,
            ..CaOptions::default()
        })
    }
}

/// Where the control plane pulls and keeps WASM modules (`meshwork control`, `meshwork up`).
#[derive(clap::Args)]
pub struct ModuleArgs {
    /// Where modules of `oci://` WasmPlugins are cached, by digest; a restart serves the cached ones without the
    /// registry (except imagePullPolicy Always) [default: $XDG_CACHE_HOME/meshwork/control-modules, else
    /// ~/.cache/meshwork/control-modules].
    #[arg(long, value_name = "DIR")]
    module_cache: Option<PathBuf>,
    /// A Docker config.json with registry credentials, for WasmPlugins without imagePullSecret [default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json, if present].
    #[arg(long, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// Pull secrets: WasmPlugin imagePullSecret NAME in namespace NS is the Docker config.json DIR/NS/NAME.json.
    /// With --kube, imagePullSecret names the Secret NAME in namespace NS (type kubernetes.io/dockerconfigjson or
    /// kubernetes.io/dockercfg); given with --kube, these files win and the cluster's Secrets are not read.
    #[arg(long, value_name = "DIR")]
    pull_secrets: Option<PathBuf>,
    /// A registry (HOST or HOST:PORT) to reach over plain HTTP; loopback registries always may be. Repeat for more.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
}

impl ModuleArgs {
    /// The module options from the flags.
    pub fn options(self) -> ModuleOptions {
        ModuleOptions {
            cache: self.module_cache.or_else(default_cache_dir),
            registry: RegistryOptions {
                docker_config: self.registry_config,
                pull_secrets: self.pull_secrets,
                insecure: self.insecure_registries,
            },
        }
    }
}

/// `dir`, else the default CA directory.
fn ca_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    dir.or_else(ca::default_ca_dir).ok_or_else(|| {
        anyhow::anyhow!("no CA directory: give --ca-dir (neither XDG_STATE_HOME nor HOME is set)")
    })
}

fn parse_identity(text: &str) -> Result<SpiffeId, String> {
    text.parse()
        .map_err(|e: meshwork_control::ca::PkiError| e.to_string())
}

/// Starts the control plane on the chosen source.
fn start(args: Args) -> anyhow::Result<ControlPlane> {
    if args.kube {
        let options = kube::Options {
            namespace: args.namespace,
            ..kube::Options::new()
        };
        return Ok(ControlPlane::start_kube(
            args.xds_address,
            &args.ca.options()?,
            args.modules.options(),
            options,
        )?);
    }
    let dir = args
        .dir
        .ok_or_else(|| anyhow::anyhow!("give a directory of Istio YAML, or --kube"))?;
    Ok(ControlPlane::start(Options {
        dir,
        xds_address: args.xds_address,
        sidecars: Default::default(),
        polling: Polling::default(),
        ca: args.ca.options()?,
        modules: args.modules.options(),
    })?)
}

/// Prints a bootstrap token.
fn token(args: TokenArgs) -> anyhow::Result<()> {
    let dir = ca_dir(args.ca_dir)?;
    let token = ca::mint_token_in(&dir, &args.identity, args.ttl)?;
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        println!("{token}");
    }
    Ok(())
}

/// Serves the control plane's admin API (`/status`, `/metrics`, `/ready`) on `address` from `rt`, until the returned
/// sender says stop.
pub fn serve_admin(
    rt: &tokio::runtime::Runtime,
    control: &ControlPlane,
    address: SocketAddr,
) -> anyhow::Result<tokio::sync::watch::Sender<bool>> {
    let admin = rt.block_on(tokio::net::TcpListener::bind(address)).map_err(|e| {
        anyhow::anyhow!("cannot serve the control plane's admin API on {address}: {e}; choose another with --admin-address")
    })?;
    let reported = meshwork_control::admin::Reported {
        status: control.status_changes(),
        stats: control.stats().clone(),
        modules: control.modules().clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    rt.spawn(meshwork_control::admin::serve(reported, admin, stopped));
    tracing::info!(admin = %address, "serving the control plane's admin API: /status (meshwork control status), /metrics");
    Ok(stop)
}

/// Serves until SIGINT/SIGTERM (or prints a token for `meshwork control token`).
pub fn run(mut args: Args) -> anyhow::Result<()> {
    match args.command.take() {
        Some(Command::Token(token_args)) => return token(token_args),
        Some(Command::Status(status_args)) => return crate::control_status::run(status_args),
        None => {}
    }
    let admin_address = args.admin_address;
    let control = start(args)?;
    tracing::info!(xds = %control.xds_address(), "serving xDS; sidecars: meshwork proxy --xds {} --node NAME.NAMESPACE", control.xds_address());
    tracing::info!(ca = %control.ca_address(), "serving the mesh CA and ADS over TLS; proxies trust its roots and present a token from `meshwork control token`");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut status = control.status_changes();
    let stop_admin = serve_admin(&rt, &control, admin_address)?;
    rt.block_on(async move {
        let terminated = crate::signal::terminated();
        tokio::pin!(terminated);
        loop {
            tokio::select! {
                r = &mut terminated => { r?; break }
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let s = status.borrow_and_update().clone();
                    let stats = control.stats().snapshot();
                    tracing::info!(
                        version = s.version,
                        resources = s.resources,
                        rejected = s.rejected.len(),
                        streams = stats.connected_streams,
                        "control plane status"
                    );
                }
            }
        }
        stop_admin.send_replace(true);
        control.stop();
        anyhow::Ok(())
    })
}
