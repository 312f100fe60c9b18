//! A whole mesh in the test process, wired as `meshwork up` wires it: a temporary directory of Istio YAML, the real
//! control plane ([`ControlPlane`]) serving it with fast polling, a hyper app per workload on loopback, and a real
//! sidecar per workload ([`meshwork_host::xds::start`]) configured over ADS.
//!
//! Workloads are named `APP-VERSION` (`reviews-v2`): each becomes a WorkloadEntry `APP-VERSION` (namespace
//! `default`) with labels `app: APP, version: VERSION`, and each distinct `APP` a ServiceEntry
//! `APP.default.svc.cluster.local` on port 9080 selecting it. Every app answers `200` with its workload name as the
//! body (and in `x-served-by`), so a response says which workload served it. Routing (VirtualService,
//! DestinationRule) is the test's: [`TestMesh::write`] replaces a file of the directory atomically, and
//! [`subsets`] and [`split`] write the usual documents.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::Response;
use meshwork_control::{
    ca::{CaOptions, TtlPolicy},
    run::{ControlPlane, Options},
    source::Polling,
    translate::{Sidecar, Sidecars},
};
use meshwork_host::tls::{agent::AgentOptions, ca::MeshCa};
use meshwork_pki::{SpiffeId, api::CaEndpoint};

use crate::{TestProxy, full, upstream};

/// The port every service of a test mesh listens on.
pub const SERVICE_PORT: u16 = 9080;

/// How fast the control plane notices file edits in tests.
pub const POLLING: Polling = Polling {
    interval: Duration::from_millis(20),
    settle: Duration::from_millis(20),
};

/// Upper bound for a sidecar to become ready: its first complete config and, with mTLS, its certificate from the CA
/// and the trust bundle; generous because the e2e suite starts many meshes at once on a 2-core machine.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Waits until `sidecar` (of workload `name`) answers `/ready` with `200`; past [`READY_WITHIN`], fails with what it
/// still waits for: its last `/ready` answer and its xDS client's report from `/config_dump`.
async fn wait_ready(name: &str, sidecar: &TestProxy) {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let (status, body) = sidecar.admin_get("/ready").await;
        if status == 200 {
            return;
        }
        if Instant::now() >= deadline {
            let dump = sidecar.config_dump().await;
            panic!(
                "the sidecar of {name} is not ready after {READY_WITHIN:?}: /ready says {status} {body:?}; its xDS \
                 client: {:#}",
                dump["xds"]
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Request header: the app answers `503` the first N times it sees the request's `x-request-key`.
pub const FAIL_FIRST: &str = "x-fail-first";
/// Request header naming a logical request across retries, for [`FAIL_FIRST`].
pub const REQUEST_KEY: &str = "x-request-key";

/// One workload: its app and its sidecar.
pub struct MeshWorkload {
    /// The sidecar; its `addr` is the outbound listener (where the app sends requests, `Host` naming the service).
    pub sidecar: TestProxy,
    /// The sidecar's inbound listener (where other sidecars send this workload's traffic).
    pub inbound: SocketAddr,
    /// Where the app listens.
    pub app: SocketAddr,
    served: Arc<AtomicU64>,
}

impl MeshWorkload {
    /// Requests the app has answered.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

/// A running mesh.
pub struct TestMesh {
    /// The directory of YAML the control plane serves.
    pub dir: PathBuf,
    /// Where the control plane serves xDS (the same across [`TestMesh::restart_control_plane`]).
    pub xds: SocketAddr,
    /// The workloads by name (`reviews-v1`).
    pub workloads: BTreeMap<String, MeshWorkload>,
    control: Option<ControlPlane>,
    sidecars: Sidecars,
    options: MeshOptions,
    /// The CA's state (root and token key), kept across control-plane restarts.
    ca_dir: PathBuf,
    /// Where the CA serves (the same across restarts: the sidecars' agents dial it).
    ca_address: SocketAddr,
}

/// How a test mesh runs.
#[derive(Clone, Copy, Debug)]
pub struct MeshOptions {
    /// How the control plane watches the directory.
    pub polling: Polling,
    /// The lifetime of workload certificates (renewed at half of it).
    pub cert_ttl: Duration,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            polling: POLLING,
            cert_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl TestMesh {
    /// Starts apps, the control plane serving them plus `routing` (as `routing.yaml`, if not empty) polling every
    /// 20 ms ([`POLLING`]), and a sidecar per workload; returns once every sidecar is ready.
    pub async fn start(workloads: &[&str], routing: &str) -> TestMesh {
        Self::start_with(workloads, routing, POLLING).await
    }

    /// [`TestMesh::start`] with the control plane polling the directory as `polling` says.
    pub async fn start_with(workloads: &[&str], routing: &str, polling: Polling) -> TestMesh {
        let options = MeshOptions {
            polling,
            ..MeshOptions::default()
        };
        Self::start_opts(workloads, routing, options).await
    }

    /// [`TestMesh::start`] with `options`.
    pub async fn start_opts(workloads: &[&str], routing: &str, options: MeshOptions) -> TestMesh {
        crate::init_tracing();
        crate::register_builtins();
        let dir = temp_dir();
        let mut apps = Vec::new();
        for name in workloads {
            let served = Arc::new(AtomicU64::new(0));
            apps.push((*name, app(name, served.clone()).await, served));
        }
        let addrs: Vec<(SocketAddr, SocketAddr)> = free_ports(2 * apps.len())
            .chunks(2)
            .map(|p| (p[0], p[1]))
            .collect();
        let sidecars: Sidecars = apps
            .iter()
            .zip(&addrs)
            .map(|((name, ..), (outbound, inbound))| {
                let s = Sidecar {
                    outbound: *outbound,
                    inbound: *inbound,
                };
                (id(name), s)
            })
            .collect();
        std::fs::write(dir.join("services.yaml"), services_yaml(workloads)).unwrap();
        let entries: Vec<(&str, SocketAddr)> = apps.iter().map(|(n, a, _)| (*n, *a)).collect();
        std::fs::write(dir.join("workloads.yaml"), workloads_yaml(&entries)).unwrap();
        if !routing.is_empty() {
            std::fs::write(dir.join("routing.yaml"), routing).unwrap();
        }
        let ca_dir = dir.with_extension("ca");
        let control = start_control_plane(
            &dir,
            "127.0.0.1:0".parse().unwrap(),
            &sidecars,
            options,
            ca_options(&ca_dir, "127.0.0.1:0".parse().unwrap(), options),
        );
        let xds = control.xds_address();
        let mut started = BTreeMap::new();
        for ((name, app, served), s) in apps.into_iter().zip(&sidecars) {
            let cache = dir.with_extension("proxy-modules");
            let sidecar = start_sidecar(xds, s.0, s.1, agent(&control, name), cache);
            started.insert(
                name.to_string(),
                MeshWorkload {
                    sidecar,
                    inbound: s.1.inbound,
                    app,
                    served,
                },
            );
        }
        for (name, w) in &started {
            wait_ready(name, &w.sidecar).await;
        }
        TestMesh {
            dir,
            xds,
            workloads: started,
            ca_address: control.ca_address(),
            control: Some(control),
            sidecars,
            options,
            ca_dir,
        }
    }

    /// Workload `name`.
    pub fn workload(&self, name: &str) -> &MeshWorkload {
        self.workloads
            .get(name)
            .unwrap_or_else(|| panic!("no workload {name}"))
    }

    /// The outbound listener of `name`'s sidecar.
    pub fn outbound(&self, name: &str) -> SocketAddr {
        self.workload(name).sidecar.addr
    }

    /// The running control plane.
    pub fn control(&self) -> &ControlPlane {
        self.control.as_ref().expect("the control plane is stopped")
    }

    /// Replaces `file` of the directory with `text` (written aside and renamed over, so the control plane never
    /// reads half a file); returns when it was written.
    pub fn write(&self, file: &str, text: &str) -> Instant {
        let aside = self.dir.join(format!("{file}.partial"));
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, self.dir.join(file)).unwrap();
        Instant::now()
    }

    /// Stops the control plane (the sidecars keep serving their last config).
    pub async fn stop_control_plane(&mut self) {
        let control = self.control.take().expect("already stopped");
        tokio::task::spawn_blocking(move || control.stop())
            .await
            .unwrap();
    }

    /// Starts a new control plane on the same xDS address, serving the directory as it is now.
    pub fn restart_control_plane(&mut self) {
        assert!(self.control.is_none(), "stop it first");
        self.control = Some(start_control_plane(
            &self.dir,
            self.xds,
            &self.sidecars,
            self.options,
            ca_options(&self.ca_dir, self.ca_address, self.options),
        ));
    }

    /// Drains every sidecar, stops the control plane and removes the directory.
    pub async fn shutdown(mut self) {
        for w in self.workloads.values_mut() {
            w.sidecar.shutdown().await;
        }
        if self.control.is_some() {
            self.stop_control_plane().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.ca_dir);
        let _ = std::fs::remove_dir_all(self.dir.with_extension("modules"));
        let _ = std::fs::remove_dir_all(self.dir.with_extension("proxy-modules"));
    }
}

/// The mesh CA's options: its state in `dir`, serving on `address`, certificates of `options.cert_ttl`.
fn ca_options(dir: &Path, address: SocketAddr, options: MeshOptions) -> CaOptions {
    CaOptions {
        address,
        dir: Some(dir.to_path_buf()),
        ttl: TtlPolicy {
            default: options.cert_ttl,
            max: options.cert_ttl.max(Duration::from_secs(24 * 3600)),
        },
        auto_mtls: true,
        ..CaOptions::default()
    }
}

/// The certificate agent of workload `name`'s sidecar, as `meshwork up` makes it: identity
/// `spiffe://cluster.local/ns/default/sa/APP`, a bootstrap token minted by the control plane, the CA over TLS.
fn agent(control: &ControlPlane, name: &str) -> AgentOptions {
    let (app, _) = app_and_version(name);
    let ca = control.ca();
    let identity = SpiffeId::new(ca.trust_domain(), "default", app);
    let token = ca.mint_token(&identity, Duration::from_secs(3600));
    let endpoint = CaEndpoint {
        address: format!("https://{}", control.ca_address()),
        roots_pem: ca.trust_bundle_pem(),
        server_name: None,
    };
    AgentOptions {
        identity,
        ttl: Duration::ZERO,
        source: Arc::new(MeshCa::new(endpoint, Some(token))),
    }
}

/// The workload id (and sidecar node id) of `name`.
pub fn id(name: &str) -> String {
    format!("{name}.default")
}

/// `APP` and `VERSION` of a workload name `APP-VERSION`.
pub fn app_and_version(name: &str) -> (&str, &str) {
    name.rsplit_once('-')
        .unwrap_or_else(|| panic!("workload {name} is not named APP-VERSION"))
}

/// A DestinationRule for `app` with subsets `(NAME, VERSION)`, each selecting the workloads of that version.
pub fn subsets(app: &str, subsets: &[(&str, &str)]) -> String {
    let subsets: String = subsets
        .iter()
        .map(|(name, v)| format!("    - {{ name: {name}, labels: {{ version: {v} }} }}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{ name: {app} }}\nspec:\n  \
         host: {app}.default.svc.cluster.local\n  subsets:\n{subsets}"
    )
}

/// A VirtualService for `app` sending its traffic to subsets by weight, e.g. `[("v1", 100), ("v2", 0)]`.
pub fn split(app: &str, weights: &[(&str, u32)]) -> String {
    let route: String = weights
        .iter()
        .map(|(v, w)| {
            format!("        - {{ destination: {{ host: {app}, subset: {v} }}, weight: {w} }}\n")
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: {app} }}\nspec:\n  \
         hosts: [{app}]\n  http:\n    - name: split\n      route:\n{route}"
    )
}

/// Joins YAML documents.
pub fn documents(docs: &[String]) -> String {
    docs.join("---\n")
}

fn services_yaml(workloads: &[&str]) -> String {
    let mut apps: Vec<&str> = workloads.iter().map(|w| app_and_version(w).0).collect();
    apps.sort_unstable();
    apps.dedup();
    let docs: Vec<String> = apps
        .iter()
        .map(|app| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{ name: {app} }}\nspec:\n  \
                 hosts: [{app}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  \
                 ports: [{{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}]\n  \
                 workloadSelector: {{ labels: {{ app: {app} }} }}\n"
            )
        })
        .collect();
    documents(&docs)
}

fn workloads_yaml(workloads: &[(&str, SocketAddr)]) -> String {
    let docs: Vec<String> = workloads
        .iter()
        .map(|(name, addr)| {
            let (app, version) = app_and_version(name);
            format!(
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{ name: {name} }}\nspec:\n  \
                 address: {}\n  ports: {{ http: {} }}\n  labels: {{ app: {app}, version: {version} }}\n  \
                 serviceAccount: {app}\n",
                addr.ip(),
                addr.port()
            )
        })
        .collect();
    documents(&docs)
}

/// A fresh directory for one mesh.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("meshwork-mesh-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` distinct loopback addresses free right now (bound together, then released).
fn free_ports(n: usize) -> Vec<SocketAddr> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn start_control_plane(
    dir: &Path,
    xds: SocketAddr,
    sidecars: &Sidecars,
    options: MeshOptions,
    ca: CaOptions,
) -> ControlPlane {
    ControlPlane::start(Options {
        dir: dir.to_path_buf(),
        xds_address: xds,
        sidecars: sidecars.clone(),
        polling: options.polling,
        ca,
        // Kept beside the directory, so that a restarted control plane finds the modules it pulled.
        modules: meshwork_control::modules::ModuleOptions {
            cache: Some(dir.with_extension("modules")),
            ..Default::default()
        },
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn start_sidecar(
    xds: SocketAddr,
    node: &str,
    at: &Sidecar,
    agent: AgentOptions,
    module_cache: PathBuf,
) -> TestProxy {
    TestProxy::start_xds_with(meshwork_host::xds::XdsOptions {
        server: xds.to_string(),
        node: node.to_string(),
        outbound_address: Some(at.outbound),
        inbound_address: Some(at.inbound),
        admin_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: Some(1),
        drain_timeout: Duration::from_secs(1),
        agent: Some(agent),
        module_cache: Some(module_cache),
    })
    .with_addr(at.outbound)
}

/// The app of workload `name`: answers `200` with its name, counting requests; honours [`FAIL_FIRST`].
async fn app(name: &str, served: Arc<AtomicU64>) -> SocketAddr {
    let name: Arc<str> = name.into();
    let failed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    upstream(move |req| {
        let (name, served, failed) = (name.clone(), served.clone(), failed.clone());
        async move {
            served.fetch_add(1, Ordering::SeqCst);
            let header = |h: &str| req.headers().get(h).and_then(|v| v.to_str().ok());
            let fail_first: u32 = header(FAIL_FIRST).and_then(|v| v.parse().ok()).unwrap_or(0);
            let key = header(REQUEST_KEY).unwrap_or_default().to_string();
            let fail = fail_first > 0 && {
                let mut seen = failed.lock().unwrap_or_else(PoisonError::into_inner);
                let n = seen.entry(key).or_default();
                *n += 1;
                *n <= fail_first
            };
            Response::builder()
                .status(if fail { 503 } else { 200 })
                .header("x-served-by", &*name)
                .body(full(name.to_string()))
                .unwrap()
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_yaml_loads_as_a_mesh() {
        let dir = temp_dir();
        let workloads = ["client-v1", "reviews-v1", "reviews-v2"];
        std::fs::write(dir.join("services.yaml"), services_yaml(&workloads)).unwrap();
        let at: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        let entries: Vec<(&str, SocketAddr)> = workloads.iter().map(|w| (*w, at)).collect();
        std::fs::write(dir.join("workloads.yaml"), workloads_yaml(&entries)).unwrap();
        let routing = documents(&[
            subsets("reviews", &[("v1", "v1"), ("v2", "v2")]),
            split("reviews", &[("v1", 100), ("v2", 0)]),
        ]);
        std::fs::write(dir.join("routing.yaml"), routing).unwrap();
        let (mesh, count) =
            meshwork_control::source::load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(count, 7);
        assert_eq!(mesh.services.len(), 2);
        assert_eq!(mesh.workloads.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
