//! The control-plane process of `meshwork-bench xds` (the hidden `xds-server` subcommand): the real
//! [`ControlPlane`] — file source and ADS server on their `meshwork-xds` thread, as `meshwork control` runs them — in
//! a process of its own, so that its CPU time and memory are its own and not the clients'.
//!
//! It talks to the harness in lines. On stdout: `ready ADDR` once serving; `polled VERSION T` each time the file
//! source applied a new version (T: `CLOCK_MONOTONIC` ns when it reported it, after the views were rebuilt);
//! `applied T0 T1 LOAD` after each `apply`. On stdin: `apply` loads the directory as the file source does (parsing
//! only the files that changed) and hands the mesh to `MeshViews::set_mesh` directly (T0 and T1 are taken around
//! that call, LOAD is the load's duration in ns), bypassing the file source's polling; end of input stops the
//! control plane.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use meshwork_control::run::{ControlPlane, Options};
use meshwork_control::source::{self, Polling};

use crate::sys;

/// Serves `dir` with the file source polling every `poll` (settling `settle`) until stdin closes.
pub fn serve(dir: PathBuf, poll: Duration, settle: Duration) -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options {
        dir: dir.clone(),
        xds_address: "127.0.0.1:0".parse()?,
        sidecars: Default::default(),
        polling: Polling {
            interval: poll,
            settle,
        },
        // The simulated fleet has no certificate agents: a plaintext mesh, as before the CA.
        ca: Default::default(),
        modules: Default::default(),
    })?;
    say(&format!("ready {}", cp.xds_address()))?;
    let mut status = cp.status_changes();
    std::thread::Builder::new()
        .name("status".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
                return;
            };
            rt.block_on(async move {
                while status.changed().await.is_ok() {
                    let version = status.borrow_and_update().version;
                    if say(&format!("polled {version} {}", sys::monotonic_ns())).is_err() {
                        return;
                    }
                }
            });
        })
        .context("starting the status thread")?;
    // What the file source does on a change: a loader that parses only the files that changed since its last load.
    let mut loader = source::DirLoader::default();
    let fail =
        |errors: Vec<String>| anyhow::anyhow!("the mesh does not load: {}", errors.join("; "));
    loader.load(&dir).map_err(fail)?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "apply" => {
                let started = sys::monotonic_ns();
                let (mesh, _) = loader.load(&dir).map_err(|errors| {
                    anyhow::anyhow!("the mesh does not load: {}", errors.join("; "))
                })?;
                let t0 = sys::monotonic_ns();
                cp.views().set_mesh(mesh);
                let t1 = sys::monotonic_ns();
                say(&format!("applied {t0} {t1} {}", t0.saturating_sub(started)))?;
            }
            other => anyhow::bail!("unknown command {other:?}"),
        }
    }
    cp.stop();
    Ok(())
}

fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
