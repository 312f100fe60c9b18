//! `meshwork-bench xds`: the control plane under 1,000 simulated Delta ADS clients.
//!
//! For each mode ([`Mode::Polling`], [`Mode::Push`]): write a mesh of `--services` services as Istio YAML into a
//! temp dir, start the control plane on it in a process of its own ([`server`], pinned to the first CPU), connect
//! `--clients` Delta clients ([`fleet`], on the other CPUs; the first `--sidecars` of them as workloads' sidecars),
//! wait until every client holds a complete config, then make `--edits` edits of a VirtualService's weights one
//! after another and time each until every client has received the changed route configuration. See README.md.

mod control;
mod fleet;
mod held;
pub mod mesh;
mod procfs;
pub mod report;
pub mod server;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use self::control::ControlProc;
use self::fleet::{Expect, Fleet, Role};
use self::report::{Change, Mode, ModeResult, Setup, Summary, Sync, ns_to_ms};
use crate::cli::XdsArgs;
use crate::process::TempDir;
use crate::run::Verdict;
use crate::sys;

/// Quiet time after each change before CPU and traffic are read (ACKs and any trailing pushes land in it).
const AFTER_CHANGE: Duration = Duration::from_secs(1);
/// How long idle CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);

/// Runs every selected mode and prints (and writes) the report.
pub fn run(args: &XdsArgs) -> anyhow::Result<Verdict> {
    let allowed = sys::allowed_cpus().context("reading CPU affinity")?;
    let (cp_cpus, client_cpus, pinning) = match allowed.as_slice() {
        [first, rest @ ..] if !rest.is_empty() => (
            Some(vec![*first]),
            rest.to_vec(),
            format!(
                "Control plane (its own process) on CPU {first}; the clients on CPU {}.",
                rest.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        _ => (
            None,
            allowed.clone(),
            "NOT pinned: one CPU for the control plane and the clients.".into(),
        ),
    };
    if cp_cpus.is_some() {
        sys::pin_current_thread(&client_cpus).context("pinning the clients")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_cpus.len().max(1))
        .enable_all()
        .build()
        .context("starting the clients' runtime")?;
    let sidecars = args.sidecars();
    let mut results = Vec::new();
    let mut failures = (0, Vec::new());
    for mode in &args.modes {
        let (result, (failed, errors)) = run_mode(&rt, args, *mode, cp_cpus.as_deref())?;
        failures.0 += failed;
        failures.1.extend(errors);
        results.push(result);
    }
    let setup = Setup {
        services: args.services(),
        clients: args.clients(),
        sidecars,
        pinning,
        failures,
    };
    let text = report::render(&setup, &results);
    println!("{text}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    progress!("report written to {}", args.out.display());
    let complete = results
        .iter()
        .all(|r| r.sync.all.missing == 0 && r.changes.iter().all(|c| c.all.missing == 0));
    Ok(if complete && setup.failures.0 == 0 {
        Verdict::Clean
    } else {
        Verdict::Problems
    })
}

/// One mode: a fresh mesh, control plane and set of clients.
fn run_mode(
    rt: &tokio::runtime::Runtime,
    args: &XdsArgs,
    mode: Mode,
    cp_cpus: Option<&[usize]>,
) -> anyhow::Result<(ModeResult, (usize, Vec<String>))> {
    let timeout = Duration::from_secs(args.timeout);
    let dir = TempDir::new("xds-mesh")?;
    mesh::write(dir.path(), args.services()).context("writing the mesh")?;
    let defaults = meshwork_control::source::Polling::default();
    let (poll, settle) = match mode {
        Mode::Polling => (defaults.interval, defaults.settle),
        // The source never polls: the harness applies each edit itself.
        Mode::Push => (Duration::from_secs(24 * 3600), Duration::ZERO),
    };
    let log = args
        .out
        .with_file_name(format!("xds-control-{}.log", mode.name()));
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    progress!(
        "{}: starting the control plane on {} services",
        mode.name(),
        args.services()
    );
    let mut cp = ControlProc::start(dir.path(), poll, settle, cp_cpus, &log)?;
    let sidecars = args.sidecars();
    let fleet = Arc::new(Fleet::new(args.clients(), sidecars, args.edits()));

    progress!(
        "{}: connecting {} clients ({sidecars} sidecars)",
        mode.name(),
        args.clients()
    );
    let cpu0 = cp.cpu_ns()?;
    let clients_cpu0 = own_cpu_ns()?;
    let start = sys::monotonic_ns();
    let tasks: Vec<_> = fleet
        .roles()
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let node = fleet::node(*role, i, sidecars, args.services());
            rt.spawn(fleet::client(cp.addr, i, node, fleet.clone()))
        })
        .collect();
    wait_for(&fleet, timeout, |f| f.ready_times());
    let ready = fleet.ready_times();
    let (bytes, responses) = fleet.traffic();
    let sync = Sync {
        all: Summary::of(&ready, fleet.roles(), None, start),
        proxyless: Summary::of(&ready, fleet.roles(), Some(Role::Proxyless), start),
        sidecars: Summary::of(&ready, fleet.roles(), Some(Role::Sidecar), start),
        cpu_s: ns_to_ms(cp.cpu_ns()?.saturating_sub(cpu0)) / 1000.0,
        clients_cpu_s: ns_to_ms(own_cpu_ns()?.saturating_sub(clients_cpu0)) / 1000.0,
        rss_kib: cp.memory_kib()?.0,
        bytes,
        responses,
    };
    progress!(
        "{}: {} of {} clients ready in {:.1} s (control plane {:.1} s CPU)",
        mode.name(),
        sync.all.n,
        args.clients(),
        sync.all.max / 1000.0,
        sync.cpu_s
    );

    std::thread::sleep(AFTER_CHANGE);
    let idle0 = cp.cpu_ns()?;
    std::thread::sleep(IDLE_WINDOW);
    let idle_cpu_ms_per_s =
        ns_to_ms(cp.cpu_ns()?.saturating_sub(idle0)) / IDLE_WINDOW.as_secs_f64();

    let mut changes = Vec::new();
    for k in 1..=args.edits() {
        let change = edit(&mut cp, &fleet, dir.path(), args, mode, k, timeout)?;
        progress!(
            "{}: edit {k} ({}) reached all clients in {:.0} ms (p50 {:.0} ms)",
            mode.name(),
            change.service,
            change.all.max,
            change.all.p50
        );
        changes.push(change);
    }
    let memory_kib = cp.memory_kib()?;
    for task in tasks {
        task.abort();
    }
    cp.stop()?;
    let result = ModeResult {
        mode,
        sync,
        idle_cpu_ms_per_s,
        changes,
        memory_kib,
    };
    Ok((result, fleet.failures()))
}

/// Edit `k` (1-based): rewrites one service's weights and times its arrival at every client.
fn edit(
    cp: &mut ControlProc,
    fleet: &Fleet,
    dir: &std::path::Path,
    args: &XdsArgs,
    mode: Mode,
    k: usize,
    timeout: Duration,
) -> anyhow::Result<Change> {
    let service = mesh::edited_service(k, args.services());
    let weights = mesh::weights(k);
    fleet.expect(Expect {
        edit: k - 1,
        vhost: format!("{}:{}", mesh::host(service), mesh::PORT),
        weights,
    });
    let cpu_before = cp.cpu_ns()?;
    let clients_cpu_before = own_cpu_ns()?;
    let traffic_before = fleet.traffic();
    let written = sys::monotonic_ns();
    std::fs::write(
        mesh::file_of(dir, service),
        mesh::service_yaml(service, weights),
    )?;
    let (origin, rebuilt, load_ms) = match mode {
        Mode::Polling => {
            wait_for(fleet, timeout, |f| f.seen_times(k - 1));
            // Version 1 is the first load; edit k is version k + 1.
            let at = cp.polled(k as u64 + 1, timeout)?;
            (written, at, None)
        }
        Mode::Push => {
            let (start, end, load_ns) = cp.apply(timeout)?;
            wait_for(fleet, timeout, |f| f.seen_times(k - 1));
            (start, end, Some(ns_to_ms(load_ns)))
        }
    };
    std::thread::sleep(AFTER_CHANGE);
    let seen = fleet.seen_times(k - 1);
    let traffic = fleet.traffic();
    Ok(Change {
        edit: k,
        service: mesh::service_name(service),
        rebuilt_ms: ns_to_ms(rebuilt.saturating_sub(origin)),
        load_ms,
        all: Summary::of(&seen, fleet.roles(), None, origin),
        proxyless: Summary::of(&seen, fleet.roles(), Some(Role::Proxyless), origin),
        sidecars: Summary::of(&seen, fleet.roles(), Some(Role::Sidecar), origin),
        cpu_ms: ns_to_ms(cp.cpu_ns()?.saturating_sub(cpu_before)),
        clients_cpu_ms: ns_to_ms(own_cpu_ns()?.saturating_sub(clients_cpu_before)),
        bytes: traffic.0 - traffic_before.0,
        responses: traffic.1 - traffic_before.1,
    })
}

/// CPU time of this process (the clients), ns.
fn own_cpu_ns() -> anyhow::Result<u64> {
    procfs::cpu_ns(std::process::id())
}

/// Waits until every client that has not failed has a time in `times`, or `timeout`.
fn wait_for(fleet: &Fleet, timeout: Duration, times: impl Fn(&Fleet) -> Vec<Option<u64>>) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let have = times(fleet).iter().filter(|t| t.is_some()).count();
        if have + fleet.failures().0 >= fleet.roles().len() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    progress!("timed out after {timeout:?}");
}
