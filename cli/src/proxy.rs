//! `meshwork proxy`: run the data plane from a config file until SIGTERM/SIGINT or `POST /quitquitquit`, then drain.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;

/// Arguments of `meshwork proxy`.
#[derive(clap::Args)]
pub struct Args {
    /// The YAML config file (see docs/config.md). It is watched: valid edits apply live, invalid ones are reported and
    /// the running config stays.
    #[arg(long, short)]
    config: PathBuf,
    /// Worker threads (default: the config's `workers`, else one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Do not watch the config file for changes.
    #[arg(long)]
    no_watch: bool,
    /// Also start a small demo upstream (an HTTP server that describes each request it gets) on this address, e.g.
    /// 127.0.0.1:18080 for examples/static-proxy.yaml.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:18080")]
    demo_upstream: Option<SocketAddr>,
}

/// Runs the proxy until it is told to stop.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = meshwork_host::config::load(&args.config)?;
    if let Some(addr) = args.demo_upstream {
        crate::demo::spawn(addr)
            .with_context(|| format!("starting the demo upstream on {addr}"))?;
        tracing::info!(%addr, "demo upstream listening");
    }
    let options = meshwork_host::RunOptions {
        workers: args.workers,
        watch: (!args.no_watch).then(|| args.config.clone()),
        watch_interval: None,
    };
    let running = meshwork_host::start(config, options)?;
    for (name, addr) in running.proxy.listener_addrs() {
        tracing::info!(listener = %name, %addr, "ready");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            r = tokio::signal::ctrl_c() => { r?; tracing::info!("SIGINT received") }
            () = running.proxy.drain_requested() => tracing::info!("drain requested on the admin API"),
        }
        running.shutdown().await;
        anyhow::Ok(())
    })
}
