//! meshwork itself: locate (or build) the binary, write a one-listener config with
//! one worker, start `meshwork proxy --config FILE`, wait for the admin `/ready`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Running, serving, write_config};
use crate::cli::workspace_root;
use crate::probe;
use crate::process::{self, Proc};

/// The release binary in the workspace's target dir (honouring `CARGO_TARGET_DIR`).
fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("release").join("meshwork")
}

/// The binary to benchmark: `explicit`, else the default path, building it with
/// `cargo build --release -p meshwork-cli` if it does not exist yet.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(format!("--meshwork {} does not exist", path.display()))
        };
    }
    let bin = default_binary();
    if bin.is_file() {
        return Ok(bin);
    }
    crate::progress!(
        "{} does not exist; running `cargo build --release -p meshwork-cli`",
        bin.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "meshwork-cli"])
        .current_dir(workspace_root())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("running cargo build failed: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release -p meshwork-cli` failed ({status})"
        ));
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} missing even after building", bin.display()))
    }
}

/// First line of `meshwork --version`.
pub fn version(bin: &Path) -> String {
    process::output_of(Command::new(bin).arg("--version"))
        .ok()
        .and_then(|out| out.lines().next().map(str::trim).map(str::to_owned))
        .filter(|line| !line.is_empty())
        .map_or_else(
            || format!("meshwork ({}, version unknown)", bin.display()),
            |v| format!("{v} ({})", bin.display()),
        )
}

/// The meshwork config: one worker, one listener on `listen` routing everything to
/// the `upstream` cluster, admin server on `admin`.
pub fn config(listen: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"# Written by meshwork-bench.
workers: 1
admin: {{ address: {admin} }}
listeners:
  - name: bench
    address: {listen}
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {{ prefix: / }}
            cluster: upstream
clusters:
  - name: upstream
    endpoints: ["{upstream}"]
"#
    )
}

/// Writes the config, starts `meshwork proxy --config FILE`, waits for `/ready` = 200
/// on the admin port and for the listener to accept connections.
pub fn start(bin: &Path, upstream: SocketAddr, cpus: Option<&[usize]>) -> anyhow::Result<Running> {
    let admin = SocketAddr::from(([127, 0, 0, 1], process::free_port()?));
    let (dir, addr, conf) = write_config("meshwork", "meshwork.yaml", |addr, _| {
        config(addr, admin, upstream)
    })?;
    let mut cmd = Command::new(bin);
    cmd.arg("proxy").arg("--config").arg(&conf);
    if std::env::var_os("RUST_LOG").is_none() {
        // Like nginx's `access_log off`: no per-request logging in the measured path.
        cmd.env("RUST_LOG", "warn");
    }
    let mut proc = Proc::spawn("meshwork", cmd, &dir.path().join("output.log"), cpus)?;
    let ready = probe::wait_for_200(admin, "/ready", process::READY_TIMEOUT, || {
        proc.check_alive()
    });
    if let Err(e) = ready {
        // If it died, the error already carries its output; if it hangs, add it here.
        return Err(match proc.check_alive() {
            Ok(()) => e.context(format!(
                "meshwork not ready; last output:\n{}",
                proc.log_tail(2048)
            )),
            Err(_) => e,
        });
    }
    serving(addr, proc, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_the_documented_shape() {
        let conf = config(
            SocketAddr::from(([127, 0, 0, 1], 18080)),
            SocketAddr::from(([127, 0, 0, 1], 18082)),
            SocketAddr::from(([127, 0, 0, 1], 18081)),
        );
        let want = r#"# Written by meshwork-bench.
workers: 1
admin: { address: 127.0.0.1:18082 }
listeners:
  - name: bench
    address: 127.0.0.1:18080
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: { prefix: / }
            cluster: upstream
clusters:
  - name: upstream
    endpoints: ["127.0.0.1:18081"]
"#;
        assert_eq!(conf, want);
    }
}
