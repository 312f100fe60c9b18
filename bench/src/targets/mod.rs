//! The things being measured: locating (and optionally installing or building)
//! each proxy, writing its config, starting it pinned and waiting until it serves.

pub mod haproxy;
pub mod meshwork;
pub mod nginx;
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
    /// nginx binary and its build options (`nginx -V`).
    Nginx(PathBuf, String),
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
        proc: Some(proc),
        dir: Some(dir),
    })
}

/// A started target.
#[derive(Debug)]
pub struct Running {
    /// Where the load generator sends requests.
    pub addr: SocketAddr,
    /// The proxy process (`None` for direct).
    pub proc: Option<Proc>,
    /// Config and logs; removed after the process is stopped.
    pub dir: Option<TempDir>,
}

impl Running {
    /// Stops the proxy (SIGTERM, then SIGKILL after 5 s) and removes its temp dir.
    pub fn stop(self) -> anyhow::Result<()> {
        if let Some(proc) = self.proc {
            proc.stop()?;
        }
        drop(self.dir);
        Ok(())
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
        Target::Nginx => {
            let bin = find_or_install("nginx", "nginx-light", args.install)?;
            let build = process::output_of(Command::new(&bin).arg("-V")).unwrap_or_default();
            Ok(Prepared::Nginx(bin, build))
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
            Prepared::Nginx(_, build) => nginx::version(build),
            Prepared::Haproxy(bin) => haproxy::version(bin),
        }
    }

    /// Starts the target in front of `upstream`, pinned to `cpus` when given, and waits
    /// until it is ready.
    pub fn start(&self, upstream: SocketAddr, cpus: Option<&[usize]>) -> anyhow::Result<Running> {
        match self {
            Prepared::Direct => Ok(Running {
                addr: upstream,
                proc: None,
                dir: None,
            }),
            Prepared::Meshwork(bin, route) => meshwork::start(bin, *route, upstream, cpus),
            Prepared::Nginx(bin, build) => nginx::start(bin, build, upstream, cpus),
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
