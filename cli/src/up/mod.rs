//! `meshwork up DIR`: a whole local mesh in one process — the control plane serving DIR, one sidecar per workload
//! (each a full proxy with outbound, inbound and admin listeners on 127.0.0.1), and optionally a demo app per
//! workload. Edits to DIR apply to every sidecar within a second.

mod plan;
mod ready;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use meshwork_control::{
    run::{ControlPlane, Options},
    source::{self, Polling},
    translate::{Sidecar, Sidecars},
};
use serde::Serialize;

/// Annotation on a WorkloadEntry naming the services its demo app calls (comma-separated host names).
pub const DEMO_CALLS: &str = "demo.meshwork.io/calls";

/// Arguments of `meshwork up`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of Istio YAML: ServiceEntry + WorkloadEntry (the services and where they run), VirtualService,
    /// DestinationRule, PeerAuthentication, AuthorizationPolicy, WasmPlugin. Watched: edits apply live.
    dir: PathBuf,
    /// Where the control plane serves xDS.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// First port of the sidecars' blocks: workload i (in name order) gets admin BASE+10i, outbound +1, inbound +6.
    #[arg(long, default_value_t = 15100)]
    port_base: u16,
    /// Also start a small demo app at every workload's address; it answers with its name and calls the services
    /// listed in its `demo.meshwork.io/calls` annotation through its sidecar.
    #[arg(long)]
    demo_upstreams: bool,
    /// Write the sidecars' addresses as JSON to this file once they are ready.
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// Worker threads per sidecar.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The mesh CA: every sidecar gets a certificate for its workload's identity from it and renews it at half its
    /// lifetime (--workload-cert-ttl sets the lifetime, e.g. 1m to watch rotations).
    #[command(flatten)]
    ca: crate::control::CaArgs,
    #[command(flatten)]
    modules: crate::control::ModuleArgs,
    /// Where the control plane serves its admin API: /status (`meshwork control status --admin ADDR`), /metrics.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

/// The certificate agent of `workload`'s sidecar.
fn identity(
    control: &ControlPlane,
    mesh: &meshwork_control::mesh::Mesh,
    workload: &str,
) -> anyhow::Result<meshwork_host::tls::agent::AgentOptions> {
    let w = mesh
        .workloads
        .get(workload)
        .with_context(|| format!("workload {workload} is not in the mesh"))?;
    Ok(crate::agent::for_workload(
        control,
        &w.namespace,
        &w.service_account,
        Duration::ZERO,
    ))
}

#[derive(Serialize)]
struct StatusFile<'a> {
    xds: SocketAddr,
    sidecars: &'a [plan::Planned],
}

/// Runs the mesh until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (mesh, _) = source::load(&args.dir).map_err(|errors| {
        anyhow::anyhow!(
            "{} has errors (run `meshwork config validate {}` for details):\n{}",
            args.dir.display(),
            args.dir.display(),
            errors.join("\n")
        )
    })?;
    anyhow::ensure!(
        !mesh.workloads.is_empty(),
        "{} declares no WorkloadEntry, so there is no sidecar to start; add one per running instance",
        args.dir.display()
    );
    let plan = plan::plan(&mesh, args.port_base)?;
    if let Some(clash) = plan.iter().find(|p| {
        [p.admin, p.outbound, p.inbound]
            .iter()
            .any(|a| a.port() == args.xds_address.port())
    }) {
        anyhow::bail!(
            "the sidecar of {} would take port {}, which --xds-address uses; move one with --port-base or --xds-address",
            clash.workload,
            args.xds_address.port()
        );
    }
    let sidecars: Sidecars = plan
        .iter()
        .map(|p| {
            let s = Sidecar {
                outbound: p.outbound,
                inbound: p.inbound,
            };
            (p.workload.clone(), s)
        })
        .collect();
    let control = ControlPlane::start(Options {
        dir: args.dir.clone(),
        xds_address: args.xds_address,
        sidecars,
        polling: Polling::default(),
        ca: args.ca.options()?,
        modules: args.modules.options(),
    })?;
    if args.demo_upstreams {
        start_demo_apps(&mesh, &plan)?;
    }
    let mut running = Vec::with_capacity(plan.len());
    for p in &plan {
        let r = meshwork_host::xds::start(meshwork_host::xds::XdsOptions {
            server: control.xds_address().to_string(),
            node: p.workload.clone(),
            outbound_address: Some(p.outbound),
            inbound_address: Some(p.inbound),
            admin_address: p.admin,
            workers: Some(args.workers),
            drain_timeout: Duration::from_secs(5),
            agent: Some(identity(&control, &mesh, &p.workload)?),
            module_cache: None,
        })
        .with_context(|| format!("starting the sidecar of {}", p.workload))?;
        running.push(r);
    }
    let admins: Vec<SocketAddr> = plan.iter().map(|p| p.admin).collect();
    ready::wait_all(&admins, Duration::from_secs(30))?;
    #[expect(
        clippy::print_stdout,
        reason = "the CLI's own output: the table of sidecars"
    )]
    {
        println!(
            "meshwork up: control plane (xDS) on {}, mesh CA on {} (trust domain {}), status: meshwork control status --admin {}",
            control.xds_address(),
            control.ca_address(),
            control.ca().trust_domain(),
            args.admin_address
        );
        print!("{}", plan::table(&plan));
        let (host, outbound) = example_call(&mesh, &plan);
        println!(
            "Send requests through a sidecar's OUTBOUND port with the service as Host, e.g.\n  curl -H 'Host: {host}' http://{outbound}/"
        );
    }
    if let Some(path) = &args.status_file {
        let json = serde_json::to_string_pretty(&StatusFile {
            xds: control.xds_address(),
            sidecars: &plan,
        })?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop_admin = crate::control::serve_admin(&rt, &control, args.admin_address)?;
    rt.block_on(async move {
        crate::signal::terminated().await?;
        for r in running {
            r.shutdown().await;
        }
        stop_admin.send_replace(true);
        control.stop();
        anyhow::Ok(())
    })
}

/// A request to suggest: an entry application (one whose demo app calls others) through its own sidecar, so that
/// AuthorizationPolicies naming its callers let it through; else the first service through the first sidecar.
fn example_call<'a>(
    mesh: &'a meshwork_control::mesh::Mesh,
    plan: &[plan::Planned],
) -> (&'a str, SocketAddr) {
    let entry = plan.iter().find_map(|p| {
        let w = mesh.workloads.get(&p.workload)?;
        w.annotations.get(DEMO_CALLS)?;
        Some((w.labels.get("app")?.as_str(), p.outbound))
    });
    entry.unwrap_or((first_service(mesh).unwrap_or("SERVICE"), plan[0].outbound))
}

fn first_service(mesh: &meshwork_control::mesh::Mesh) -> Option<&str> {
    mesh.services
        .keys()
        .next()
        .map(|h| h.split('.').next().unwrap_or(h))
}

/// A demo app at every port of every workload.
fn start_demo_apps(
    mesh: &meshwork_control::mesh::Mesh,
    plan: &[plan::Planned],
) -> anyhow::Result<()> {
    for p in plan {
        let Some(w) = mesh.workloads.get(&p.workload) else {
            continue;
        };
        let calls: Vec<String> = w
            .annotations
            .get(DEMO_CALLS)
            .map(|c| {
                c.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for port in w.ports.values() {
            let addr: SocketAddr = format!("{}:{port}", w.address).parse().with_context(|| {
                format!("workload {}: address {} is not an IP", w.id, w.address)
            })?;
            let app = crate::demo::App {
                name: w.name.clone(),
                calls: calls.clone(),
                outbound: Some(p.outbound),
            };
            crate::demo::spawn_app(addr, app)
                .with_context(|| format!("starting the demo app of {} on {addr}", w.id))?;
        }
    }
    Ok(())
}
