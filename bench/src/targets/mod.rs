//! The things being measured: locating (and optionally installing or building)
//! each proxy, writing its config, starting it pinned and waiting until it serves.

pub mod haproxy;
pub mod mesh_pki;
pub mod meshwork;
pub mod nginx;
pub mod nginx_pair;
pub mod pair;
pub mod policies;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cli::{RunArgs, Target};
use crate::process::{self, Proc, TempDir};

/// A target that is ready to be started.
#[derive(Debug)]
pub enum Prepared {
    /// No proxy: the load generator talks to the upstream.
    Direct,
    /// meshwork binary and what its route carries.
    Meshwork(PathBuf, meshwork::Route),
    /// meshwork binary, run twice as a client and a server sidecar joined by mTLS.
    MtlsPair(PathBuf),
    /// nginx binary and its build options (`nginx -V`).
    Nginx(PathBuf, String),
    /// The same, run twice as the two ends of an mTLS pair.
    NginxPair(PathBuf, String),
    /// haproxy binary.
    Haproxy(PathBuf),
}

/// A fresh temp dir for target `name` with its config written to `conf_name` (text from `conf`, given the address
/// the proxy must listen on and the dir), and that address: a free loopback port.
fn write_config(
    name: &str,
    conf_name: &str,
    conf: impl FnOnce(SocketAddr, &Path) -> String,
) -> anyhow::Result<(TempDir, SocketAddr, PathBuf)> {
    let dir = TempDir::new(name)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], process::free_port()?));
    let path = dir.path().join(conf_name);
    fs::write(&path, conf(addr, dir.path()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((dir, addr, path))
}

/// Waits until the started proxy accepts on `addr`, then hands it to the run.
fn serving(addr: SocketAddr, mut proc: Proc, dir: TempDir) -> anyhow::Result<Running> {
    proc.wait_for_port(addr, process::READY_TIMEOUT)?;
    Ok(Running {
        addr,
        procs: vec![proc],
        dir: Some(dir),
        mtls_client_admin: None,
    })
}

/// A started target.
#[derive(Debug)]
pub struct Running {
    /// Where the load generator sends requests.
    pub addr: SocketAddr,
    /// The proxy processes: none for direct, two for the mTLS pair (the client
    /// sidecar, which the load generator talks to, first).
    pub procs: Vec<Proc>,
    /// Config and logs; removed after the processes are stopped.
    pub dir: Option<TempDir>,
    /// The admin API of a sidecar whose upstream connections are mutual TLS (the mTLS
    /// pair's client sidecar): its `/stats` give the connection reuse ratio.
    pub mtls_client_admin: Option<SocketAddr>,
}

impl Running {
    /// Stops the proxies (SIGTERM, then SIGKILL after 5 s each) and removes the temp dir.
    pub fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        for proc in self.procs {
            if let Err(e) = proc.stop() {
                first_error.get_or_insert(e);
            }
        }
        drop(self.dir);
        first_error.map_or(Ok(()), Err)
    }
}

/// Locates what `target` needs; `Err` is a human-readable reason to skip it.
pub fn prepare(target: Target, args: &RunArgs) -> Result<Prepared, String> {
    match target {
        Target::Direct => Ok(Prepared::Direct),
        Target::Meshwork => meshwork::locate(args.meshwork.as_deref())
            .map(|bin| Prepared::Meshwork(bin, meshwork::Route::Bare)),
        Target::MeshworkPolicies => meshwork::locate(args.meshwork.as_deref())
            .map(|bin| Prepared::Meshwork(bin, meshwork::Route::Policies)),
        Target::MeshworkMtlsPair => {
            meshwork::locate(args.meshwork.as_deref()).map(Prepared::MtlsPair)
        }
        Target::Nginx | Target::NginxMtlsPair => {
            let bin = find_or_install("nginx", "nginx-light", args.install)?;
            let build = process::output_of(Command::new(&bin).arg("-V")).unwrap_or_default();
            Ok(match target {
                Target::Nginx => Prepared::Nginx(bin, build),
                _ => Prepared::NginxPair(bin, build),
            })
        }
        Target::Haproxy => {
            find_or_install("haproxy", "haproxy", args.install).map(Prepared::Haproxy)
        }
    }
}

impl Prepared {
    /// Version string for the environment section.
    pub fn version(&self) -> String {
        match self {
            Prepared::Direct => "hyper upstream (in this harness)".to_owned(),
            Prepared::Meshwork(bin, route) => {
                format!("{}{}", meshwork::version(bin), route.describe())
            }
            Prepared::MtlsPair(bin) => format!(
                "{}, two processes: client sidecar ({}) → mutual TLS → server sidecar ({}, \
                 STRICT, route filters in chain order: {}), both on the proxy CPU",
                meshwork::version(bin),
                mesh_pki::spiffe_id(mesh_pki::CLIENT_SA),
                mesh_pki::spiffe_id(mesh_pki::SERVER_SA),
                policies::chain_order(&policies::server_sidecar_policies()).join(" → ")
            ),
            Prepared::Nginx(_, build) => nginx::version(build),
            Prepared::NginxPair(_, build) => format!(
                "{}, two processes: client nginx ({}, not verifying the server's URI SAN) → mutual TLS 1.3 → \
                 server nginx (client certificate required), no filters, both on the proxy CPU",
                nginx::version(build),
                mesh_pki::spiffe_id(mesh_pki::CLIENT_SA),
            ),
            Prepared::Haproxy(bin) => haproxy::version(bin),
        }
    }

    /// Starts the target in front of `upstream`, pinned to `cpus` when given, and waits
    /// until it is ready.
    pub fn start(&self, upstream: SocketAddr, cpus: Option<&[usize]>) -> anyhow::Result<Running> {
        match self {
            Prepared::Direct => Ok(Running {
                addr: upstream,
                procs: Vec::new(),
                dir: None,
                mtls_client_admin: None,
            }),
            Prepared::Meshwork(bin, route) => meshwork::start(bin, *route, upstream, cpus),
            Prepared::MtlsPair(bin) => pair::start(bin, upstream, cpus),
            Prepared::Nginx(bin, build) => nginx::start(bin, build, upstream, cpus),
            Prepared::NginxPair(bin, build) => nginx_pair::start(bin, build, upstream, cpus),
            Prepared::Haproxy(bin) => haproxy::start(bin, upstream, cpus),
        }
    }
}

/// Finds `exe`; with `install`, apt-installs `package` when it is missing.
fn find_or_install(exe: &str, package: &str, install: bool) -> Result<PathBuf, String> {
    if let Some(bin) = process::find_executable(exe) {
        return Ok(bin);
    }
    if !install {
        return Err(format!(
            "`{exe}` not found in PATH or /usr/sbin (pass --install to apt-get install {package})"
        ));
    }
    crate::progress!("{exe} not found; installing the `{package}` package with apt-get");
    apt_install(package).map_err(|e| format!("installing {package} failed: {e:#}"))?;
    process::find_executable(exe)
        .ok_or_else(|| format!("`{exe}` still not found after installing {package}"))
}

/// `apt-get install -y PACKAGE`, running `apt-get update` and retrying once if it fails.
fn apt_install(package: &str) -> anyhow::Result<()> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::io::stderr())
            .status()
    };
    if install()?.success() {
        return Ok(());
    }
    crate::progress!("apt-get install failed; running apt-get update and retrying");
    let updated = Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::io::stderr())
        .status()?;
    if !updated.success() {
        bail!("apt-get update failed ({updated})");
    }
    let status = install()?;
    if !status.success() {
        bail!("apt-get install -y {package} failed ({status})");
    }
    Ok(())
}
