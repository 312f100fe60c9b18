//! Filters from a real OCI registry (Debian's docker-registry on loopback) through the whole mesh: the control plane
//! pulls the module a WasmPlugin names, every sidecar fetches it from the control plane and runs it; a new tag
//! reaches every sidecar under load without a failed request; a bad tag leaves the previous module serving; a
//! restarted control plane serves cached modules with the registry gone.

use std::time::{Duration, Instant};

use meshwork_oci::{Auth, Client, ClientOptions, NoProgress, PushFormat, testing::Registry};
use meshwork_tests::{
    load::Load,
    mesh::{MeshWorkload, TestMesh},
    *,
};

const PRODUCTPAGE: &str = "productpage-v1";
const REVIEWS: &str = "reviews-v1";

/// A WasmPlugin on every workload: the probe filter from `url`, adding `x-probe: on` to responses.
fn plugin(url: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {{ name: probe, namespace: default }}
spec:
  url: {url}
  pluginConfig:
    add_response_headers: {{ x-probe: \"on\" }}
"
    )
}

/// `wasm` with a custom section appended: other bytes (another digest), the same behaviour.
fn another_build(wasm: &[u8], label: &str) -> Vec<u8> {
    let name = b"meshwork-build";
    let mut payload = vec![u8::try_from(name.len()).unwrap()];
    payload.extend_from_slice(name);
    payload.extend_from_slice(label.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(u8::try_from(payload.len()).unwrap());
    out.extend_from_slice(&payload);
    out
}

/// Pushes `wasm` as `repo:tag`; returns the module's SHA-256.
async fn push(registry: &Registry, repo_tag: &str, wasm: &[u8], format: PushFormat) -> String {
    let client = Client::new(ClientOptions::default()).unwrap();
    let pushed = client
        .push(
            &registry.reference(repo_tag),
            wasm,
            format,
            &Auth::Anonymous,
            &NoProgress,
        )
        .await
        .unwrap();
    pushed.wasm_sha256
}

/// The module SHA-256s of the probe plugins `w`'s sidecar runs, on any listener (from `/config_dump`).
async fn running(w: &MeshWorkload) -> Vec<String> {
    let dump = w.sidecar.config_dump().await;
    let mut shas = Vec::new();
    collect_shas(&dump, &mut shas);
    shas.sort();
    shas.dedup();
    shas
}

fn collect_shas(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(s) = m.get("sha256").and_then(|s| s.as_str())
                && m.get("name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| n.contains("probe"))
            {
                out.push(s.to_string());
            }
            m.values().for_each(|v| collect_shas(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_shas(v, out)),
        _ => {}
    }
}

/// `GET /` with `Host: reviews` through `from`'s sidecar: status and the `x-probe` header.
async fn call_reviews(from: &MeshWorkload) -> (u16, Option<String>) {
    let req = http::Request::get("/")
        .header("host", "reviews")
        .body(empty())
        .unwrap();
    let resp = send(from.sidecar.addr, req).await.unwrap();
    let probe = resp
        .headers()
        .get("x-probe")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    (resp.status().as_u16(), probe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the figures of the run go to the test output for the record"
)]
async fn a_new_tag_reaches_every_sidecar_under_load_without_a_failed_request() {
    let registry = Registry::start();
    let probe = std::fs::read(env!("PROBE_WASM")).unwrap();
    let v1 = push(&registry, "filters/probe:1", &probe, PushFormat::Istio).await;
    let v2_wasm = another_build(&probe, "2");
    let v2 = push(&registry, "filters/probe:2", &v2_wasm, PushFormat::Cncf).await;
    let url = |tag: &str| format!("oci://{}/filters/probe:{tag}", registry.address());

    let mesh = TestMesh::start(&[PRODUCTPAGE, REVIEWS], &plugin(&url("1"))).await;
    let (productpage, reviews) = (mesh.workload(PRODUCTPAGE), mesh.workload(REVIEWS));
    assert_eq!(call_reviews(productpage).await, (200, Some("on".into())));
    for w in [productpage, reviews] {
        assert_eq!(running(w).await, std::slice::from_ref(&v1));
    }

    // 250 requests a second while the tag moves.
    let load = Load::start(
        productpage.sidecar.addr,
        "reviews",
        5,
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bumped = mesh.write("routing.yaml", &plugin(&url("2")));
    for w in [productpage, reviews] {
        eventually(Duration::from_secs(20), "every sidecar runs v2", || async {
            running(w).await == std::slice::from_ref(&v2)
        })
        .await;
    }
    let took = bumped.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    report.assert_no_failures();
    eprintln!(
        "tag bump reached both sidecars in {took:?}; load: {}",
        report.describe()
    );
    assert_eq!(call_reviews(productpage).await, (200, Some("on".into())));

    // A tag that does not exist: v2 keeps serving, and the control plane says why.
    mesh.write("routing.yaml", &plugin(&url("3")));
    eventually(
        Duration::from_secs(10),
        "the control plane reports the missing tag",
        || async {
            mesh.control().modules().status().iter().any(|m| {
                m.url.ends_with(":3") && m.error.as_ref().is_some_and(|e| e.reason == "not_found")
            })
        },
    )
    .await;
    assert_eq!(running(reviews).await, std::slice::from_ref(&v2));
    assert_eq!(call_reviews(productpage).await, (200, Some("on".into())));
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the figures of the run go to the test output for the record"
)]
async fn cached_modules_outlive_the_registry_and_a_missing_module_fails_closed() {
    let mut registry = Registry::start();
    let probe = std::fs::read(env!("PROBE_WASM")).unwrap();
    let v1 = push(&registry, "filters/probe:1", &probe, PushFormat::Istio).await;
    let url = format!("oci://{}/filters/probe:1", registry.address());
    let mut mesh = TestMesh::start(&[PRODUCTPAGE, REVIEWS], &plugin(&url)).await;
    assert_eq!(
        call_reviews(mesh.workload(PRODUCTPAGE)).await,
        (200, Some("on".into()))
    );

    // The registry goes away; a restarted control plane serves the module from its cache.
    registry.stop();
    mesh.stop_control_plane().await;
    let started = Instant::now();
    mesh.restart_control_plane();
    assert!(mesh.control().modules().status()[0].serving.is_some());
    assert_eq!(mesh.control().modules().stats().pulls, 0);
    eprintln!(
        "control plane restarted with the registry down in {:?}",
        started.elapsed()
    );
    assert_eq!(running(mesh.workload(REVIEWS)).await, [v1]);

    // A new plugin whose module cannot be had (the registry is back, without that repository): FAIL_CLOSE (the
    // default) denies, naming why. (Not with the registry still down: its port may belong to another test by now.)
    registry.restart();
    let missing = format!(
        "{}---\n{}",
        plugin(&url),
        plugin(&format!("oci://{}/filters/absent:1", registry.address()))
            .replace("name: probe", "name: absent")
    );
    mesh.write("routing.yaml", &missing);
    let control = mesh.control();
    eventually(
        Duration::from_secs(30),
        "the control plane reports the missing module",
        || async {
            control.modules().status().iter().any(|m| {
                m.plugin == "default.absent"
                    && m.error.as_ref().is_some_and(|e| e.reason == "not_found")
            })
        },
    )
    .await;
    let productpage = mesh.workload(PRODUCTPAGE);
    eventually(
        Duration::from_secs(30),
        "requests are denied by the missing module",
        || async { call_reviews(productpage).await.0 == 403 },
    )
    .await;
    mesh.shutdown().await;
}
