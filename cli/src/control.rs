//! `meshwork control DIR` / `meshwork control --kube`: the control plane alone — serves the Istio resources of a
//! directory of YAML, or of a Kubernetes cluster (with its Services, EndpointSlices and Pods), over xDS (ADS, SotW and
//! Delta) to sidecars started with `meshwork proxy --xds` and to any other xDS client, applying changes as they
//! happen.

use std::{net::SocketAddr, path::PathBuf};

use meshwork_control::{
    kube,
    run::{ControlPlane, Options},
    source::Polling,
};

/// Arguments of `meshwork control`.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Starts the control plane on the chosen source.
fn start(args: Args) -> anyhow::Result<ControlPlane> {
    if args.kube {
        let options = kube::Options {
            namespace: args.namespace,
            ..kube::Options::new()
        };
        return Ok(ControlPlane::start_kube(args.xds_address, options)?);
    }
    let dir = args
        .dir
        .ok_or_else(|| anyhow::anyhow!("give a directory of Istio YAML, or --kube"))?;
    Ok(ControlPlane::start(Options {
        dir,
        xds_address: args.xds_address,
        sidecars: Default::default(),
        polling: Polling::default(),
    })?)
}

/// Serves until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let control = start(args)?;
    tracing::info!(xds = %control.xds_address(), "serving xDS; sidecars: meshwork proxy --xds {} --node NAME.NAMESPACE", control.xds_address());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut status = control.status_changes();
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
        control.stop();
        anyhow::Ok(())
    })
}
