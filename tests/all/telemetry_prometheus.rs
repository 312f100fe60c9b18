//! The proof with a real Prometheus: a mesh as `meshwork up` runs it (control plane, sidecars over ADS, apps), steady
//! traffic from one workload to another, and Debian's `prometheus` scraping every sidecar's `/stats/prometheus` each
//! second. The query dashboards use, the rate of `istio_requests_total` by source and destination workload, must show
//! the pair from both reporters; the sidecars' own output passes `promtool check metrics`.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::Request;
use meshwork_tests::{mesh::TestMesh, *};

const CLIENT: &str = "client-v1";
const REVIEWS: &str = "reviews-v1";

/// Long enough for Prometheus to start, scrape a few times and evaluate a rate on a loaded machine.
const WITHIN: Duration = Duration::from_secs(90);

/// A free loopback port (bound and released; Prometheus takes it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Prometheus running on `port`, scraping `targets` every second; killed on drop.
struct Prometheus {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn start(port: u16, targets: &[SocketAddr]) -> Prometheus {
        let dir =
            std::env::temp_dir().join(format!("meshwork-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sidecars\n    \
             metrics_path: /stats/prometheus\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "prometheus is needed (Debian package `prometheus`, installed by .ci/run): {e}"
                )
            });
        Prometheus { child, dir }
    }
}

/// `(source_workload, destination_workload, rate)` rows of an instant query's vector result.
fn rows(body: &str) -> Vec<(String, String, f64)> {
    let doc: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    doc["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| {
                    let m = &s["metric"];
                    Some((
                        m["source_workload"].as_str()?.to_string(),
                        m["destination_workload"].as_str()?.to_string(),
                        s["value"][1].as_str()?.parse().ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_call_rate_between_two_workloads() {
    let mesh = TestMesh::start(&[CLIENT, REVIEWS], "").await;
    let client = mesh.workload(CLIENT);
    let reviews = mesh.workload(REVIEWS);
    let targets = [client.sidecar.admin, reviews.sidecar.admin];

    // Steady traffic, about 50 requests a second, until the test is done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let outbound = client.sidecar.addr;
    let traffic = tokio::spawn({
        let (stop, sent) = (stop.clone(), sent.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get("/").header("host", "reviews").body(empty());
                if let Ok(resp) = send(outbound, req.expect("request")).await {
                    assert_eq!(resp.status(), 200);
                    body_string(resp).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    eventually(WITHIN, "traffic flows through the mesh", || {
        let sent = sent.clone();
        async move { sent.load(Ordering::Relaxed) > 10 }
    })
    .await;

    // What each sidecar serves is valid exposition, with the workloads the control plane gave it.
    for admin in targets {
        let (status, text) = get(admin, "/stats/prometheus").await;
        assert_eq!(status, 200);
        crate::telemetry_metrics::promtool_check(&text).await;
    }
    let (_, text) = get(client.sidecar.admin, "/stats/prometheus").await;
    assert!(
        text.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("reporter=\"source\"")
            && l.contains("source_workload=\"client-v1\"")
            && l.contains("destination_workload=\"reviews-v1\"")
            && l.contains("destination_service=\"reviews.default.svc.cluster.local\"")),
        "the client's sidecar labels the call with both workloads:\n{text}"
    );

    let port = free_port();
    let mut prometheus = Prometheus::start(port, &targets);
    let api: SocketAddr = ([127, 0, 0, 1], port).into();
    let query = |reporter: &str| {
        let q = format!(
            "sum by (source_workload, destination_workload) \
             (rate(istio_requests_total{{reporter=\"{reporter}\"}}[1m]))"
        );
        let encoded: String = q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("/api/v1/query?query={encoded}")
    };
    let started = Instant::now();
    let mut last = String::new();
    let mut seen = (false, false);
    while started.elapsed() < WITHIN && !(seen.0 && seen.1) {
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            panic!("prometheus exited: {status}");
        }
        if tokio::net::TcpStream::connect(api).await.is_err() {
            // Not listening yet.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        for (i, reporter) in ["source", "destination"].into_iter().enumerate() {
            let req = Request::get(query(reporter))
                .header("host", "prometheus")
                .body(empty());
            let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_secs(5), send(api, req.expect("request")))
                    .await
            else {
                continue;
            };
            if resp.status() != 200 {
                continue;
            }
            let body = body_string(resp).await;
            let found = rows(&body)
                .iter()
                .any(|(s, d, rate)| s == CLIENT && d == REVIEWS && *rate > 0.0);
            if i == 0 {
                seen.0 |= found;
            } else {
                seen.1 |= found;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic task");
    assert!(
        seen.0 && seen.1,
        "Prometheus shows a non-zero rate of client-v1 → reviews-v1 from both reporters (source: {}, destination: \
         {}); last answer: {last}",
        seen.0,
        seen.1
    );
    mesh.shutdown().await;
}
