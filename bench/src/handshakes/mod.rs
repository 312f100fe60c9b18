//! `meshwork-bench handshakes`: full mutual-TLS handshakes per second per core of one
//! meshwork server sidecar.
//!
//! Two sidecars of the same binary, one worker each, pinned to the proxy CPU: one with a
//! STRICT mTLS listener (the `reviews` identity, as in the mTLS pair), one with a
//! plaintext listener, both routing to the harness's upstream. Each round measures both:
//! client threads on the other CPUs open connections as fast as they can
//! ([`client`]), and over the measured window the completed connections and the
//! sidecar's CPU time give connections per second and per CPU-second. The plaintext
//! sidecar's cost per connection, subtracted from the mTLS one's, leaves the
//! handshake's own cost ([`report`]). Before the sidecars start, rustls alone is
//! measured in memory on the proxy CPU ([`inmemory`]): the same library and machine
//! without the sidecar, to hold the sidecar's figure against.

pub mod client;
pub mod inmemory;
pub mod report;

use std::fs;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls::ClientConfig;

use crate::cli::HandshakeArgs;
use crate::process::{self, Proc, TempDir};
use crate::run::{self, Layout, Verdict};
use crate::targets::mesh_pki::{self, MeshFiles};
use crate::targets::meshwork::{self, Sidecar, cluster_entry};
use crate::targets::pair::strict_listener_tls;
use crate::{mtls, probe, sys};
use client::{Load, Tls};
use report::{Round, Window};

/// A server sidecar's config: a listener on `listen` (STRICT mTLS with `mesh`'s server
/// identity, or plaintext without `mesh`) routing everything to `upstream`.
pub fn server_config(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    mesh: Option<&MeshFiles>,
) -> String {
    let mut sidecar = Sidecar::new(listen, admin, cluster_entry("upstream", upstream, None));
    if let Some(mesh) = mesh {
        sidecar.listener_tls = Some(strict_listener_tls());
        sidecar.secrets = mesh.secret_entry(&mesh.server);
    }
    sidecar.yaml()
}

/// A started server sidecar.
struct Server {
    /// `mtls` or `plaintext`, for progress lines.
    label: &'static str,
    addr: SocketAddr,
    admin: SocketAddr,
    proc: Proc,
}

impl Server {
    /// Writes the config into `dir`, starts the sidecar pinned to `cpus` and waits for it.
    fn start(
        label: &'static str,
        bin: &std::path::Path,
        dir: &std::path::Path,
        upstream: SocketAddr,
        mesh: Option<&MeshFiles>,
        cpus: Option<&[usize]>,
    ) -> anyhow::Result<Self> {
        let port = || -> std::io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], process::free_port()?)))
        };
        let (addr, admin) = (port()?, port()?);
        let conf = dir.join(format!("{label}.yaml"));
        fs::write(&conf, server_config(addr, admin, upstream, mesh))
            .with_context(|| format!("writing {}", conf.display()))?;
        let name = format!("{label}-sidecar");
        let mut proc = meshwork::spawn(bin, &name, &conf, dir, admin, cpus)?;
        proc.wait_for_port(addr, process::READY_TIMEOUT)?;
        Ok(Self {
            label,
            addr,
            admin,
            proc,
        })
    }

    /// TLS handshakes the sidecar has counted (`downstream_cx_tls_total`).
    fn tls_handshakes(&self) -> anyhow::Result<u64> {
        let page = probe::fetch(self.admin, "/stats")?;
        mtls::stat(&page.body, "downstream_cx_tls_total")
            .context("no downstream_cx_tls_total in /stats")
    }
}

/// Counts at one instant of a phase.
struct Snapshot {
    at: Instant,
    completed: u64,
    cpu_seconds: f64,
    server_tls: Option<u64>,
}

/// Phase timing and load.
#[derive(Debug, Clone, Copy)]
struct Phase {
    clients: usize,
    warmup: Duration,
    duration: Duration,
}

/// Drives `server` for `phase.warmup + phase.duration` (with `tls`: mTLS connections)
/// and returns the measured window and the first failure, if any.
fn measure(
    server: &Server,
    tls: Option<Arc<ClientConfig>>,
    phase: Phase,
) -> anyhow::Result<(Window, Option<String>)> {
    let counting_tls = tls.is_some();
    let load = Load::start(server.addr, tls, phase.clients).context("starting client threads")?;
    let snapshot = |load: &Load| -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            completed: load
                .tally
                .completed
                .load(std::sync::atomic::Ordering::Relaxed),
            cpu_seconds: server.proc.cpu_seconds()?,
            server_tls: if counting_tls {
                Some(server.tls_handshakes()?)
            } else {
                None
            },
        })
    };
    thread::sleep(phase.warmup);
    let start = snapshot(&load);
    thread::sleep(phase.duration);
    let end = snapshot(&load);
    let tally = load.tally.clone();
    load.stop();
    let (start, end) = (start?, end?);
    let errors = tally.errors.load(std::sync::atomic::Ordering::Relaxed);
    let first_error = tally.first_error.lock().ok().and_then(|mut e| e.take());
    let window = Window {
        connections: end.completed - start.completed,
        errors,
        wall_seconds: (end.at - start.at).as_secs_f64(),
        cpu_seconds: (end.cpu_seconds - start.cpu_seconds).max(0.0),
        server_tls: end
            .server_tls
            .zip(start.server_tls)
            .map(|(e, s)| e.saturating_sub(s)),
    };
    Ok((window, first_error))
}

/// rustls' own handshake rates on this machine ([`inmemory`]), measured on a thread
/// pinned to the proxy CPU.
fn rustls_alone(
    mesh: &MeshFiles,
    tls: &Tls,
    cpus: Option<&[usize]>,
) -> anyhow::Result<inmemory::Rates> {
    progress!("rustls alone, in memory: server authentication only, then mutual TLS");
    let rates = thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(cpus) = cpus {
                    sys::pin_current_thread(cpus).context("pinning the in-memory handshakes")?;
                }
                inmemory::measure(mesh, tls)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the in-memory handshake thread panicked"))?
    })?;
    progress!(
        "rustls alone: {:.0} handshakes/s server authentication only, {:.0}/s mutual TLS",
        rates.server_auth,
        rates.mutual
    );
    Ok(rates)
}

/// Runs the benchmark and writes the report.
pub fn run(args: &HandshakeArgs) -> anyhow::Result<Verdict> {
    let phase = Phase {
        clients: args.clients as usize,
        warmup: Duration::from_secs(args.effective_warmup()),
        duration: Duration::from_secs(args.effective_duration()),
    };
    let rounds = args.effective_rounds();
    let allowed = sys::allowed_cpus().context("reading CPU affinity")?;
    let layout = Layout::detect(&allowed);
    let bin = meshwork::locate(args.meshwork.as_deref()).map_err(anyhow::Error::msg)?;
    let pinning = match &layout {
        Some(l) => format!(
            "server sidecar on CPU {}; client threads and upstream on CPU {}",
            run::list(&l.proxy),
            run::list(&l.others)
        ),
        None => Layout::describe(None),
    };
    let mut env = run::machine(&allowed, &pinning);
    env.extend([
        (
            "server".into(),
            format!(
                "{}, one worker; STRICT mTLS listener as {} (ECDSA P-256 certificate from a \
                 meshwork-pki root), clients of trust domain {} only",
                meshwork::version(&bin),
                mesh_pki::spiffe_id(mesh_pki::SERVER_SA),
                mesh_pki::TRUST_DOMAIN
            ),
        ),
        (
            "client".into(),
            format!(
                "rustls with ring, TLS 1.3 only, X25519, ALPN http/1.1, client certificate {}, \
                 session resumption off (every handshake checked to be full); the server's \
                 identity is verified once per phase, not by the load threads",
                mesh_pki::spiffe_id(mesh_pki::CLIENT_SA)
            ),
        ),
    ]);
    run::announce(&mut env, "the client threads");
    let (proxy_cpus, others) = Layout::pin_harness(layout.as_ref())?;
    let (upstream_addr, upstream, _upstream_dir) = run::start_upstream(others)?;
    let dir = TempDir::new("handshakes")?;
    let mesh = MeshFiles::write(dir.path())?;
    let tls = Tls::new(&mesh)?;
    let rustls = rustls_alone(&mesh, &tls, proxy_cpus)?;
    let mtls_server = Server::start(
        "mtls",
        &bin,
        dir.path(),
        upstream_addr,
        Some(&mesh),
        proxy_cpus,
    )?;
    let plain_server = Server::start(
        "plaintext",
        &bin,
        dir.path(),
        upstream_addr,
        None,
        proxy_cpus,
    )?;
    client::check_server(mtls_server.addr, &tls, &mesh.server.id.to_string())?;
    client::connect_once(plain_server.addr, None)
        .map_err(|e| anyhow::anyhow!("plaintext pre-flight connection: {e}"))?;

    let mut measured = Vec::with_capacity(rounds);
    let mut first_errors = Vec::new();
    for n in 1..=rounds {
        let mut one = |server: &Server, tls: Option<Arc<ClientConfig>>| -> anyhow::Result<Window> {
            progress!(
                "round {n}/{rounds}, {}: {} client threads, {:?} + {:?}",
                server.label,
                phase.clients,
                phase.warmup,
                phase.duration
            );
            let (window, first_error) = measure(server, tls, phase)?;
            progress!(
                "round {n}/{rounds}, {}: {:.0} connections/s, {:.0} µs server CPU per connection, \
                 server busy {:.0} %, {} failed",
                server.label,
                window.per_second().unwrap_or(0.0),
                window.cpu_us_per_connection().unwrap_or(0.0),
                window.busy().unwrap_or(0.0) * 100.0,
                window.errors
            );
            first_errors.extend(first_error.map(|e| format!("{} phase: {e}", server.label)));
            Ok(window)
        };
        let mtls = one(&mtls_server, Some(tls.load.clone()))?;
        let plain = one(&plain_server, None)?;
        measured.push(Round { mtls, plain });
    }
    mtls_server.proc.stop()?;
    plain_server.proc.stop()?;
    upstream.stop()?;

    let settings = report::Settings {
        clients: phase.clients,
        warmup: phase.warmup.as_secs(),
        duration: phase.duration.as_secs(),
        pinning,
    };
    let text = report::render(&env, &settings, &measured, Some(&rustls), &first_errors);
    print!("{text}");
    if let Some(parent) = args.out.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    progress!("report written to {}", args.out.display());
    Ok(if first_errors.is_empty() {
        Verdict::Clean
    } else {
        Verdict::Problems
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use crate::targets::mesh_pki::{CLIENT_SA, Identity, SERVER_SA, spiffe_id};

    #[test]
    fn server_configs() {
        let a = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let identity = |sa: &str| Identity {
            id: spiffe_id(sa),
            chain: PathBuf::from(format!("/t/{sa}-cert.pem")),
            key: PathBuf::from(format!("/t/{sa}-key.pem")),
        };
        let mesh = MeshFiles {
            root: PathBuf::from("/t/root-cert.pem"),
            client: identity(CLIENT_SA),
            server: identity(SERVER_SA),
        };
        let plain = server_config(a(18090), a(18092), a(18081), None);
        let strict = server_config(a(18090), a(18092), a(18081), Some(&mesh));
        let want_plain = Sidecar::new(
            a(18090),
            a(18092),
            "  - name: upstream\n    endpoints: [\"127.0.0.1:18081\"]\n".into(),
        )
        .yaml();
        assert_eq!(plain, want_plain);
        assert!(
            !plain.contains("tls:") && !plain.contains("secrets:"),
            "{plain}"
        );
        let want_strict = want_plain
            .replace(
                "    virtual_hosts:",
                "    tls: { mode: strict, certificate: mesh, trusted_ca: mesh, trust_domains: [cluster.local] }\n    virtual_hosts:",
            )
            + "secrets:\n  - { name: mesh, certificate_chain: \"/t/reviews-cert.pem\", private_key: \"/t/reviews-key.pem\", trusted_ca: \"/t/root-cert.pem\" }\n";
        assert_eq!(strict, want_strict);
    }
}
