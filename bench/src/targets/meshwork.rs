//! meshwork itself: locate (or build) the binary, write a one-listener config with
//! one worker (a bare route, or the same route with the five policy filters), start
//! `meshwork proxy --config FILE`, wait for the admin `/ready`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::policies;
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

/// What the benchmark route carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Nothing: the bare proxy hop (target `meshwork`).
    Bare,
    /// The five built-in policy filters, with the subset clusters the router splits
    /// between (target `meshwork-policies`).
    Policies,
}

impl Route {
    /// Name of the temp dir and of the process in progress lines.
    fn label(self) -> &'static str {
        match self {
            Route::Bare => "meshwork",
            Route::Policies => "meshwork-policies",
        }
    }

    /// What the environment section adds to the version: the route's filters in the
    /// order they run.
    pub fn describe(self) -> String {
        match self {
            Route::Bare => String::new(),
            Route::Policies => format!(
                ", route filters (builtin://, in chain order): {}",
                policies::chain_order(&policies::POLICIES).join(" → ")
            ),
        }
    }
}

/// One meshwork process's config: one worker, one listener routing everything (`/`)
/// to the cluster `upstream`, the admin API on its own port.
#[derive(Debug, Clone)]
pub struct Sidecar {
    /// The listener's address.
    pub listen: SocketAddr,
    /// The admin API's address.
    pub admin: SocketAddr,
    /// The listener's `tls:` value (a YAML flow mapping), when it serves TLS.
    pub listener_tls: Option<String>,
    /// The route's `filters:` block ([`policies::route_filters`]), or empty.
    pub route_filters: String,
    /// The entries under `clusters:` ([`cluster_entry`]), `upstream` first.
    pub clusters: String,
    /// The entries under `secrets:`, or empty for none.
    pub secrets: String,
}

impl Sidecar {
    /// A plaintext listener on `listen` with a bare route, these `clusters`, no secrets.
    pub fn new(listen: SocketAddr, admin: SocketAddr, clusters: String) -> Self {
        Self {
            listen,
            admin,
            listener_tls: None,
            route_filters: String::new(),
            clusters,
            secrets: String::new(),
        }
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        let tls = self
            .listener_tls
            .as_deref()
            .map_or_else(String::new, |tls| format!("    tls: {tls}\n"));
        let secrets = if self.secrets.is_empty() {
            String::new()
        } else {
            format!("secrets:\n{}", self.secrets)
        };
        format!(
            r#"# Written by meshwork-bench.
workers: 1
admin: {{ address: {admin} }}
listeners:
  - name: bench
    address: {listen}
{tls}    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {{ prefix: / }}
            cluster: upstream
{filters}clusters:
{clusters}{secrets}"#,
            admin = self.admin,
            listen = self.listen,
            filters = self.route_filters,
            clusters = self.clusters,
        )
    }
}

/// One entry under `clusters:`: `name` (YAML text, quoted when needed) with the one
/// endpoint `endpoint`, and the cluster's `tls:` flow mapping when it speaks TLS.
pub fn cluster_entry(name: &str, endpoint: SocketAddr, tls: Option<&str>) -> String {
    let tls = tls.map_or_else(String::new, |tls| format!("    tls: {tls}\n"));
    format!("  - name: {name}\n    endpoints: [\"{endpoint}\"]\n{tls}")
}

/// The meshwork config of targets `meshwork` and `meshwork-policies`: listener on
/// `listen`, admin server on `admin`, everything to `upstream`. With
/// [`Route::Policies`] the route carries the policy filters and two more clusters point
/// at `upstream`.
pub fn config(listen: SocketAddr, admin: SocketAddr, upstream: SocketAddr, route: Route) -> String {
    let mut clusters = cluster_entry("upstream", upstream, None);
    let mut route_filters = String::new();
    if route == Route::Policies {
        route_filters = policies::route_filters(&policies::POLICIES);
        clusters.push_str(&policies::subset_clusters(upstream));
    }
    Sidecar {
        route_filters,
        ..Sidecar::new(listen, admin, clusters)
    }
    .yaml()
}

/// Starts `meshwork proxy --config CONF` (output to `DIR/LABEL.log`), pinned to `cpus`
/// when given, and waits for `/ready` = 200 on `admin`.
pub fn spawn(
    bin: &Path,
    label: &str,
    conf: &Path,
    dir: &Path,
    admin: SocketAddr,
    cpus: Option<&[usize]>,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("proxy").arg("--config").arg(conf);
    if std::env::var_os("RUST_LOG").is_none() {
        // Like nginx's `access_log off`: no per-request logging in the measured path.
        cmd.env("RUST_LOG", "warn");
    }
    let mut proc = Proc::spawn(label, cmd, &dir.join(format!("{label}.log")), cpus)?;
    let ready = probe::wait_for_200(admin, "/ready", process::READY_TIMEOUT, || {
        proc.check_alive()
    });
    if let Err(e) = ready {
        // If it died, the error already carries its output; if it hangs, add it here.
        return Err(match proc.check_alive() {
            Ok(()) => e.context(format!(
                "{label} not ready; last output:\n{}",
                proc.log_tail(2048)
            )),
            Err(_) => e,
        });
    }
    Ok(proc)
}

/// Writes the config, starts `meshwork proxy --config FILE`, waits for `/ready` = 200
/// on the admin port and for the listener to accept connections.
pub fn start(
    bin: &Path,
    route: Route,
    upstream: SocketAddr,
    cpus: Option<&[usize]>,
) -> anyhow::Result<Running> {
    let admin = SocketAddr::from(([127, 0, 0, 1], process::free_port()?));
    let (dir, addr, conf) = write_config(route.label(), "meshwork.yaml", |addr, _| {
        config(addr, admin, upstream, route)
    })?;
    let proc = spawn(bin, route.label(), &conf, dir.path(), admin, cpus)?;
    serving(addr, proc, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"# Written by meshwork-bench.
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
"#;

    const CLUSTER: &str = r#"clusters:
  - name: upstream
    endpoints: ["127.0.0.1:18081"]
"#;

    #[test]
    fn sidecar_with_tls_and_secrets() {
        let a = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let sidecar = Sidecar {
            listener_tls: Some("{ mode: strict, certificate: mesh }".into()),
            secrets: "  - { name: mesh }\n".into(),
            ..Sidecar::new(
                a(18080),
                a(18082),
                cluster_entry("upstream", a(18081), Some("{ trusted_ca: mesh }")),
            )
        };
        let want = HEAD.replace(
            "    virtual_hosts:",
            "    tls: { mode: strict, certificate: mesh }\n    virtual_hosts:",
        ) + "clusters:\n  - name: upstream\n    endpoints: [\"127.0.0.1:18081\"]\n    \
             tls: { trusted_ca: mesh }\nsecrets:\n  - { name: mesh }\n";
        assert_eq!(sidecar.yaml(), want);
    }

    #[test]
    fn config_is_the_documented_shape() {
        let bare = format!("{HEAD}{CLUSTER}");
        let policies = format!(
            r#"{HEAD}            filters:
              - name: authz
                url: builtin://authz
                phase: AUTHZ
                pluginConfig: {{ policies: [{{ name: allow-get, action: ALLOW, rules: [{{ to: [{{ operation: {{ methods: [GET] }} }}] }}] }}] }}
              - name: fault
                url: builtin://fault
                priority: 40
                pluginConfig: {{ abort: {{ httpStatus: 503, percentage: {{ value: 0.0 }} }}, match: [{{ headers: {{ x-fault: {{ exact: "on" }} }} }}] }}
              - name: router
                url: builtin://router
                priority: 30
                pluginConfig: {{ http: [{{ route: [{{ destination: {{ host: upstream, subset: v1 }}, weight: 90 }}, {{ destination: {{ host: upstream, subset: v2 }}, weight: 10 }}] }}] }}
              - name: retry
                url: builtin://retry
                priority: 20
                pluginConfig: {{ attempts: 2, retryOn: "5xx", perTryTimeout: 2s }}
              - name: circuit-breaker
                url: builtin://circuit-breaker
                priority: 10
                pluginConfig: {{ connectionPool: {{ http: {{ http2MaxRequests: 10000, http1MaxPendingRequests: 1000 }} }}, outlierDetection: {{ consecutive5xxErrors: 5 }} }}
{CLUSTER}  - name: "outbound|80|v1|upstream"
    endpoints: ["127.0.0.1:18081"]
  - name: "outbound|80|v2|upstream"
    endpoints: ["127.0.0.1:18081"]
"#
        );
        for (route, want) in [(Route::Bare, bare), (Route::Policies, policies)] {
            let conf = config(
                SocketAddr::from(([127, 0, 0, 1], 18080)),
                SocketAddr::from(([127, 0, 0, 1], 18082)),
                SocketAddr::from(([127, 0, 0, 1], 18081)),
                route,
            );
            assert_eq!(conf, want, "{route:?}");
        }
    }
}
