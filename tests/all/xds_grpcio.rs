//! A standard proxyless gRPC client — Python `grpcio` from PyPI, whose xDS client is gRPC C-core's — resolving
//! `xds:///echo.default.svc.cluster.local:50051` through `meshwork-control` and splitting its calls between two tonic
//! backends as the VirtualService says (80/20), then following an edit of the file (20/80) on the same channel.
//!
//! The client is tests/grpcio/client.py, run with the interpreter of `MESHWORK_GRPCIO_PYTHON` (default: the venv
//! `target/grpcio-venv` that .ci/run creates). Each backend counts the calls it receives; every call is an
//! independent weighted pick, so a count out of `CALLS` is binomial and the tolerance is over 5 standard deviations.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use meshwork_control::{
    run::{ControlPlane, Options},
    source::Polling,
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    net::TcpListener,
    process::{Child, ChildStdin, ChildStdout, Command},
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, transport::Server};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_server::{Health, HealthServer},
};

/// The service the client calls, as its target names it.
const TARGET: &str = "xds:///echo.default.svc.cluster.local:50051";
/// Calls per measured phase.
const CALLS: u64 = 1000;
/// Allowed distance from the expected count: binomial σ = √(1000·0.8·0.2) ≈ 12.6, so 70 is 5.5 σ.
const TOLERANCE: u64 = 70;
/// Calls per probe while waiting for an edit to reach the client.
const PROBE: u64 = 100;
/// Upper bound for the client to answer a command, and for an edit to reach it.
const WITHIN: Duration = Duration::from_secs(20);
/// Where .ci/run installs grpcio, relative to the workspace.
const DEFAULT_VENV_PYTHON: &str = "target/grpcio-venv/bin/python";

/// A `grpc.health.v1.Health` that answers `SERVING` to every `Check` and counts them.
#[derive(Clone, Default)]
struct CountingHealth(Arc<AtomicU64>);

#[tonic::async_trait]
impl Health for CountingHealth {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("this backend only counts Check"))
    }
}

impl CountingHealth {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves a counting health service on a free loopback port; returns its port and the counter.
async fn backend() -> (u16, CountingHealth) {
    let health = CountingHealth::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = HealthServer::new(health.clone());
    tokio::spawn(async move {
        let served = Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
        if let Err(e) = served {
            panic!("gRPC backend failed: {e}");
        }
    });
    (port, health)
}

/// The mesh: service `echo` (gRPC on 50051) with workloads `echo-v1` and `echo-v2` at the backends' ports, subsets
/// by version.
fn mesh_yaml(v1_port: u16, v2_port: u16) -> String {
    let workload = |version: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{ name: echo-{version} }}
spec:
  address: 127.0.0.1
  ports: {{ grpc: {port} }}
  labels: {{ app: echo, version: {version} }}
"
        )
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: echo }}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{ number: 50051, name: grpc, protocol: GRPC }}]
  workloadSelector: {{ labels: {{ app: echo }} }}
---
{}---
{}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: echo }}
spec:
  host: echo.default.svc.cluster.local
  subsets:
    - {{ name: v1, labels: {{ version: v1 }} }}
    - {{ name: v2, labels: {{ version: v2 }} }}
",
        workload("v1", v1_port),
        workload("v2", v2_port)
    )
}

/// The VirtualService whose route `route` sends `v1`% of echo's calls to subset v1 and the rest to v2. (The control
/// plane notices an edit by modification time and length: tests name the route differently so that the length
/// changes too, whatever the file system's timestamp resolution.)
fn split_yaml(route: &str, v1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: echo }}
spec:
  hosts: [echo.default.svc.cluster.local]
  http:
    - name: {route}
      route:
        - {{ destination: {{ host: echo.default.svc.cluster.local, subset: v1 }}, weight: {v1} }}
        - {{ destination: {{ host: echo.default.svc.cluster.local, subset: v2 }}, weight: {} }}
",
        100 - v1
    )
}

/// A gRPC xDS bootstrap (gRFC A27) naming the control plane at `xds` and a node that is no workload.
fn bootstrap(xds: std::net::SocketAddr) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": xds.to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": "grpc-client", "cluster": "meshwork-tests", "locality": {"zone": "local"}},
    })
    .to_string()
}

/// The interpreter with grpcio: `MESHWORK_GRPCIO_PYTHON`, else the venv .ci/run creates.
fn python() -> PathBuf {
    let path = std::env::var_os("MESHWORK_GRPCIO_PYTHON").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_VENV_PYTHON)
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with grpcio at {}: run .ci/run, or `python3 -m venv target/grpcio-venv && \
         target/grpcio-venv/bin/pip install 'grpcio==1.85.*' 'grpcio-health-checking==1.85.*'` in the workspace, \
         or point MESHWORK_GRPCIO_PYTHON at an interpreter that has both",
        path.display()
    );
    path
}

/// The Python client, running; its stderr (gRPC's own logging) is kept for failure messages.
struct PyClient {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl PyClient {
    fn spawn(bootstrap: &Path) -> PyClient {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpcio/client.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(TARGET)
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            // Set GRPC_VERBOSITY=debug GRPC_TRACE=xds_client,xds_resolver to see the client's side of a failure.
            .env(
                "GRPC_VERBOSITY",
                std::env::var("GRPC_VERBOSITY").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        PyClient {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            stderr,
        }
    }

    /// Makes `n` calls on the client's one channel; panics unless all succeed.
    async fn calls(&mut self, n: u64) {
        self.stdin
            .write_all(format!("calls {n}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(WITHIN, self.stdout.next_line()).await;
        let reply: Value = match line {
            Ok(Ok(Some(line))) => serde_json::from_str(&line).unwrap(),
            other => panic!(
                "the grpcio client did not answer `calls {n}` ({other:?}); its stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        };
        assert_eq!(
            reply["ok"].as_u64(),
            Some(n),
            "calls through xDS failed: {reply}; client stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    /// Closes stdin and waits for a clean exit.
    async fn finish(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(WITHIN, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(
            status.success(),
            "client exited with {status}; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }
}

/// Calls each backend received during `phase`.
async fn counted<F: Future<Output = ()>>(backends: &[CountingHealth; 2], phase: F) -> [u64; 2] {
    let before = backends.each_ref().map(CountingHealth::count);
    phase.await;
    let after = backends.each_ref().map(CountingHealth::count);
    [after[0] - before[0], after[1] - before[1]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the measured splits are reported in the test output"
)]
async fn grpcio_client_follows_the_virtual_service_split_live() {
    let started = Instant::now();
    let (v1_port, v1) = backend().await;
    let (v2_port, v2) = backend().await;
    let backends = [v1, v2];
    let dir = std::env::temp_dir().join(format!("meshwork-grpcio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), mesh_yaml(v1_port, v2_port)).unwrap();
    std::fs::write(dir.join("routing.yaml"), split_yaml("canary", 80)).unwrap();
    let cp = ControlPlane::start(Options {
        dir: dir.clone(),
        xds_address: "127.0.0.1:0".parse().unwrap(),
        sidecars: Default::default(),
        polling: Polling {
            interval: Duration::from_millis(20),
            settle: Duration::from_millis(20),
        },
        ca: Default::default(),
        modules: Default::default(),
    })
    .unwrap();
    let bootstrap_path = std::env::temp_dir().join(format!(
        "meshwork-grpcio-bootstrap-{}.json",
        std::process::id()
    ));
    std::fs::write(&bootstrap_path, bootstrap(cp.xds_address())).unwrap();
    let mut client = PyClient::spawn(&bootstrap_path);

    // 80/20: the first call waits for LDS → RDS → CDS → EDS; every call is a weighted pick.
    let first = counted(&backends, client.calls(CALLS)).await;
    assert_eq!(first[0] + first[1], CALLS);
    assert!(
        first[0].abs_diff(CALLS * 8 / 10) <= TOLERANCE,
        "80/20 split: v1 {}, v2 {}",
        first[0],
        first[1]
    );

    // 20/80 on disk: the control plane pushes the new route on the open stream and the same channel follows. Probes
    // of PROBE calls until one shows the new split (v1 ≤ half: > 7 σ from either split's mean).
    std::fs::write(dir.join("routing.yaml"), split_yaml("canary-reversed", 20)).unwrap();
    let edited = Instant::now();
    let mut probes = 0;
    loop {
        let [a, _] = counted(&backends, client.calls(PROBE)).await;
        probes += 1;
        if a <= PROBE / 2 {
            break;
        }
        assert!(
            edited.elapsed() < WITHIN,
            "the edit never reached the client"
        );
    }
    let followed_after = edited.elapsed();
    let second = counted(&backends, client.calls(CALLS)).await;
    assert!(
        second[1].abs_diff(CALLS * 8 / 10) <= TOLERANCE,
        "20/80 split: v1 {}, v2 {}",
        second[0],
        second[1]
    );

    let nacks = cp.stats().snapshot().nacks_total();
    assert_eq!(nacks, 0, "grpcio NACKed: {}", client.stderr.lock().unwrap());
    assert_eq!(cp.status().version, 2);
    client.finish().await;
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&bootstrap_path);
    eprintln!(
        "grpcio over xDS, {CALLS} calls each: 80/20 → v1 {} v2 {}; 20/80 → v1 {} v2 {}; the edit reached the client \
         within {followed_after:?} ({probes} probes of {PROBE}); {:?} in all",
        first[0],
        first[1],
        second[0],
        second[1],
        started.elapsed()
    );
}
