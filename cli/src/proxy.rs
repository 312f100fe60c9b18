//! `meshwork proxy`: run the data plane until SIGTERM/SIGINT or `POST /quitquitquit`, then drain. The config comes
//! from a YAML file (`--config`, watched for edits) or from a control plane over xDS (`--xds`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;

/// Arguments of `meshwork proxy`.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["config", "xds"]))]
pub struct Args {
    /// The YAML config file (see docs/config.md). It is watched: valid edits apply live, invalid ones are reported and
    /// the running config stays.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Take the config from a control plane instead of a file: its xDS address, HOST:PORT or http://HOST:PORT (e.g.
    /// `meshwork control`'s 127.0.0.1:15010). The proxy starts with no listeners, answers /ready with 503 until the
    /// first complete config has been applied, and keeps serving its last config while the control plane is away.
    #[arg(long, value_name = "ADDR", requires = "node")]
    xds: Option<String>,
    /// With --xds: the node id shown to the control plane; for a sidecar, NAME.NAMESPACE of its WorkloadEntry.
    #[arg(long, value_name = "ID", conflicts_with = "config")]
    node: Option<String>,
    /// With --xds: where the sidecar's outbound listener should listen (node metadata OUTBOUND_ADDRESS).
    #[arg(long, value_name = "IP:PORT", conflicts_with = "config")]
    outbound_address: Option<SocketAddr>,
    /// With --xds: where the sidecar's inbound listener should listen, the address other sidecars reach this workload
    /// at (node metadata INBOUND_ADDRESS).
    #[arg(long, value_name = "IP:PORT", conflicts_with = "config")]
    inbound_address: Option<SocketAddr>,
    /// With --xds: the admin API's address [default: 127.0.0.1:19000]. With --config it is the file's
    /// admin.address.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "config")]
    admin_address: Option<SocketAddr>,
    /// With --xds: how long a graceful drain waits for requests in flight, e.g. 30s [default: 10s]. With --config it
    /// is the file's drain_timeout.
    #[arg(long, value_name = "DURATION", conflicts_with = "config", value_parser = meshwork_host::config::duration::parse)]
    drain_timeout: Option<Duration>,
    /// With --xds: where WASM modules the control plane serves are cached, so that a restart needs neither the
    /// registry nor the control plane for modules already fetched [default: $XDG_CACHE_HOME/meshwork/modules, else
    /// ~/.cache/meshwork/modules].
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    module_cache: Option<std::path::PathBuf>,
    /// Worker threads (default: the config's `workers`, else one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// With --config: do not watch the config file for changes.
    #[arg(long, conflicts_with = "xds")]
    no_watch: bool,
    /// Also start a small demo upstream (an HTTP server that describes each request it gets) on this address, e.g.
    /// 127.0.0.1:18080 for examples/static-proxy.yaml.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:18080")]
    demo_upstream: Option<SocketAddr>,
    /// The mesh identity (certificate agent).
    #[command(flatten)]
    agent: crate::agent::AgentArgs,
}

/// Runs the proxy until it is told to stop.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args
        .config
        .as_deref()
        .map(meshwork_host::config::load)
        .transpose()?;
    if let Some(addr) = args.demo_upstream {
        crate::demo::spawn(addr)
            .with_context(|| format!("starting the demo upstream on {addr}"))?;
        tracing::info!(%addr, "demo upstream listening");
    }
    let agent = args.agent.options()?;
    let running = match (config, args.xds) {
        (Some(config), _) => {
            let options = meshwork_host::RunOptions {
                workers: args.workers,
                watch: (!args.no_watch).then(|| args.config.clone()).flatten(),
                watch_interval: None,
                agent,
            };
            meshwork_host::start(config, options)?
        }
        (None, Some(server)) => meshwork_host::xds::start(meshwork_host::xds::XdsOptions {
            server,
            node: args.node.unwrap_or_default(),
            outbound_address: args.outbound_address,
            inbound_address: args.inbound_address,
            admin_address: args
                .admin_address
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 19000))),
            workers: args.workers,
            drain_timeout: args.drain_timeout.unwrap_or(Duration::from_secs(10)),
            agent,
            module_cache: args.module_cache,
        })?,
        (None, None) => anyhow::bail!("give --config FILE or --xds ADDR"),
    };
    for (name, addr) in running.proxy.listener_addrs() {
        tracing::info!(listener = %name, %addr, "ready");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::select! {
            r = crate::signal::terminated() => r?,
            () = running.proxy.drain_requested() => tracing::info!("drain requested on the admin API"),
        }
        running.shutdown().await;
        anyhow::Ok(())
    })
}
