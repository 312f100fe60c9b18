//! The whole mesh end to end, as `meshwork up` runs it: the real control plane serving a directory of Istio YAML,
//! a real sidecar per workload configured over ADS, hyper apps behind them, and real clients. Requests pass the
//! caller's outbound listener and the callee's inbound listener; routing edits, broken edits, a control-plane restart
//! and policy changes all happen under steady traffic that must not see a single failed request.

use std::time::{Duration, Instant};

use http::Request;
use meshwork_control::source::Polling;
use meshwork_tests::{
    load::{Load, first_from, last_all_from},
    mesh::{FAIL_FIRST, REQUEST_KEY, TestMesh, documents, split, subsets},
    *,
};
use serde_json::json;

/// Upper bound for anything to happen.
const WITHIN: Duration = Duration::from_secs(10);
/// Upper bound for sidecars to reconnect to a restarted control plane (their backoff grows while it is away).
const RECONNECT_WITHIN: Duration = Duration::from_secs(20);
/// Upper bound, generous against a loaded machine, for an edit to reach traffic (it takes well under a second).
const LIVE_WITHIN: Duration = Duration::from_secs(5);
/// Concurrent clients of the load.
const CLIENTS: usize = 4;
/// Each client's pace: at most 250 requests a second, 1,000 for the load.
const PACE: Duration = Duration::from_millis(4);
/// Answers in a row from one destination that show a change has settled.
const SETTLED: usize = 300;

const CLIENT: &str = "client-v1";
const REVIEWS_V1: &str = "reviews-v1";
const REVIEWS_V2: &str = "reviews-v2";

/// The reviews DestinationRule with subsets `v1` and `v2`, and a VirtualService sending `v1`/`v2` percent of the
/// traffic to each.
fn reviews_split(v1: u32, v2: u32) -> String {
    documents(&[
        subsets("reviews", &[("v1", "v1"), ("v2", "v2")]),
        split("reviews", &[("v1", v1), ("v2", v2)]),
    ])
}

/// A client, reviews v1 and v2, all of reviews' traffic to v1; and load through the client's sidecar to reviews,
/// running until 100 answers in a row came from v1.
async fn mesh_under_load() -> (TestMesh, Load) {
    let mesh = TestMesh::start(&[CLIENT, REVIEWS_V1, REVIEWS_V2], &reviews_split(100, 0)).await;
    let load = Load::start(mesh.outbound(CLIENT), "reviews", CLIENTS, PACE);
    load.until(WITHIN, "100 answers in a row from v1", |o| {
        last_all_from(o, 100, REVIEWS_V1)
    })
    .await;
    (mesh, load)
}

/// Waits until the load gets answers from `to` after `since`, then `SETTLED` of them in a row; returns how long
/// after `since` the first came. Panics if answers from the old destination keep coming after the first new one
/// beyond the requests that were in flight then (one per client).
async fn switch_time(load: &Load, since: Instant, to: &str, within: Duration) -> Duration {
    let what = format!("an answer from {to}");
    load.until(within, &what, |o| first_from(o, since, to).is_some())
        .await;
    let what = format!("{SETTLED} answers in a row from {to}");
    load.until(WITHIN, &what, |o| last_all_from(o, SETTLED, to))
        .await;
    load.with(|o| {
        let first = first_from(o, since, to).unwrap();
        let stragglers = o
            .iter()
            .filter(|x| x.at > first && !x.is_ok_from(to))
            .count();
        assert!(
            stragglers < CLIENTS,
            "{stragglers} answers from the old routing after the first from {to}"
        );
        first - since
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_passes_the_callers_outbound_and_the_callees_inbound() {
    const N: u64 = 20;
    let mesh = TestMesh::start(&[CLIENT, REVIEWS_V1], "").await;
    let client = mesh.workload(CLIENT);
    let reviews = mesh.workload(REVIEWS_V1);

    // The client's sidecar knows reviews-v1 by its sidecar's inbound listener, not by the app's address.
    let dump = client.sidecar.config_dump().await;
    let clusters = dump["config"]["clusters"].as_array().unwrap();
    let cluster = clusters
        .iter()
        .find(|c| c["name"] == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap_or_else(|| panic!("no reviews cluster in {dump:#}"));
    assert_eq!(cluster["endpoints"], json!([reviews.inbound.to_string()]));

    let stat = async |w: &mesh::MeshWorkload| w.sidecar.stat("downstream_rq_total").await;
    let before = (stat(client).await, stat(reviews).await, reviews.served());
    for _ in 0..N {
        let resp = send(
            client.sidecar.addr,
            Request::get("/")
                .header("host", "reviews")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-served-by"], REVIEWS_V1);
        assert_eq!(body_string(resp).await, REVIEWS_V1);
    }
    let after = (stat(client).await, stat(reviews).await, reviews.served());
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (N, N, N),
        "requests through the client's sidecar, reviews-v1's sidecar and reviews-v1's app"
    );
    assert_eq!(client.served(), 0, "the client's own app is not involved");
    assert_eq!(client.sidecar.stat("upstream_rq_total").await, N);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the measured figures, shown with --nocapture"
)]
async fn a_weight_change_under_load_fails_no_request() {
    let (mesh, load) = mesh_under_load().await;
    // A subset `next` (reviews-v2 too) that did not exist: a new cluster and its endpoints arrive with the route.
    let next = documents(&[
        subsets("reviews", &[("v1", "v1"), ("v2", "v2"), ("next", "v2")]),
        split("reviews", &[("next", 100)]),
    ]);
    let steps = [
        ("100/0→0/100", reviews_split(0, 100), REVIEWS_V2),
        ("0/100→100/0", reviews_split(100, 0), REVIEWS_V1),
        ("v1→new subset", next, REVIEWS_V2),
        ("new subset removed→v1", reviews_split(100, 0), REVIEWS_V1),
    ];
    let mut took = Vec::new();
    for (what, routing, to) in steps {
        let written = mesh.write("routing.yaml", &routing);
        took.push(format!(
            "{what} {:?}",
            switch_time(&load, written, to, LIVE_WITHIN).await
        ));
    }
    let report = load.stop().await;
    println!(
        "mesh routing changes under load ({CLIENTS} clients): {}; edit to first answer from the new destination: {}",
        report.describe(),
        took.join(", ")
    );
    report.assert_no_failures();
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the measured figures, shown with --nocapture"
)]
async fn an_edit_reaches_traffic_well_within_a_second_at_meshwork_ups_polling() {
    // `meshwork up` polls with the defaults: every 200 ms, reading a change once it has been still for 100 ms.
    let mesh = TestMesh::start_with(
        &[CLIENT, REVIEWS_V1, REVIEWS_V2],
        &reviews_split(100, 0),
        Polling::default(),
    )
    .await;
    let load = Load::start(mesh.outbound(CLIENT), "reviews", CLIENTS, PACE);
    let mut took = Vec::new();
    for (v1, v2, to) in [
        (0, 100, REVIEWS_V2),
        (100, 0, REVIEWS_V1),
        (0, 100, REVIEWS_V2),
    ] {
        let written = mesh.write("routing.yaml", &reviews_split(v1, v2));
        took.push(switch_time(&load, written, to, LIVE_WITHIN).await);
    }
    let report = load.stop().await;
    println!(
        "mesh edit to first answer from the new subset at the default polling: {took:?}; {}",
        report.describe()
    );
    report.assert_no_failures();
    mesh.shutdown().await;
}

/// The line of `needle` (1-based) in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the measured figures, shown with --nocapture"
)]
async fn a_broken_edit_is_rejected_while_traffic_keeps_its_routing() {
    let (mesh, load) = mesh_under_load().await;
    let mut status = mesh.control().status_changes();
    let version = mesh.control().status().version;
    let broken_since = Instant::now();

    // Weights that add up to 90, then a misspelt field: each rejected naming file, line and field.
    let ninety = reviews_split(50, 40);
    let misspelt = reviews_split(0, 100).replace("weight: 100", "wieght: 100");
    let file = mesh.dir.join("routing.yaml").display().to_string();
    let cases = [
        (
            &ninety,
            format!(
                "{file}:{}: field `spec.http[0].route`: the weights of the 2 destinations add up to 90; \
                 make them add up to 100",
                line_of(&ninety, "route:")
            ),
        ),
        (
            &misspelt,
            format!(
                "{file}:{}: field `spec.http[0].route[1].wieght`: unknown field `wieght`: \
                 did you mean `weight`? Fix the name, or remove the field",
                line_of(&misspelt, "wieght")
            ),
        ),
    ];
    for (text, want) in cases {
        mesh.write("routing.yaml", text);
        tokio::time::timeout(WITHIN, status.wait_for(|s| s.rejected.contains(&want)))
            .await
            .unwrap_or_else(|_| panic!("not rejected: {want}; {:?}", mesh.control().status()))
            .unwrap();
        assert_eq!(mesh.control().status().rejected, [want]);
        // Traffic goes on, routed as before.
        let since = Instant::now();
        load.until(WITHIN, "200 more answers", |o| {
            o.iter().filter(|x| x.at > since).count() >= 200
        })
        .await;
    }
    assert_eq!(mesh.control().status().version, version, "nothing applied");
    load.with(|o| {
        let from = o.iter().position(|x| x.at > broken_since).unwrap();
        assert!(
            o[from..].iter().all(|x| x.is_ok_from(REVIEWS_V1)),
            "every answer while the directory was broken came from v1"
        );
    });

    // The fix applies.
    let written = mesh.write("routing.yaml", &reviews_split(0, 100));
    let took = switch_time(&load, written, REVIEWS_V2, LIVE_WITHIN).await;
    assert!(mesh.control().status().rejected.is_empty());
    assert_eq!(mesh.control().status().version, version + 1);
    let report = load.stop().await;
    println!(
        "mesh broken edits under load: {}; the fix took {took:?} to reach traffic",
        report.describe()
    );
    report.assert_no_failures();
    mesh.shutdown().await;
}

/// Waits until every sidecar's xDS stream is up (`true`) or down.
async fn streams_up(mesh: &TestMesh, up: bool, within: Duration) {
    for (name, w) in &mesh.workloads {
        let what = format!("the xDS stream of {name}'s sidecar up: {up}");
        eventually(within, &what, || async {
            (w.sidecar.config_dump().await["xds"]["connection"] == "connected") == up
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the measured figures, shown with --nocapture"
)]
async fn sidecars_ride_out_a_control_plane_restart_and_take_its_new_routing() {
    let (mut mesh, load) = mesh_under_load().await;
    let stopping = Instant::now();
    mesh.stop_control_plane().await;
    streams_up(&mesh, false, WITHIN).await;
    let since = Instant::now();
    load.until(WITHIN, "300 answers while the control plane is away", |o| {
        o.iter().filter(|x| x.at > since).count() >= SETTLED
    })
    .await;
    assert!(load.with(|o| last_all_from(o, SETTLED, REVIEWS_V1)));

    // The directory changes while nobody serves it; the new control plane starts from it.
    mesh.write("routing.yaml", &reviews_split(0, 100));
    let away = stopping.elapsed();
    let restarted = Instant::now();
    mesh.restart_control_plane();
    let took = switch_time(&load, restarted, REVIEWS_V2, RECONNECT_WITHIN).await;
    streams_up(&mesh, true, WITHIN).await;
    for w in mesh.workloads.values() {
        assert_eq!(w.sidecar.config_dump().await["xds"]["streams"], 2);
    }
    let report = load.stop().await;
    println!(
        "mesh control-plane restart under load: {}; away {away:?}, restart to first answer from the new \
         routing {took:?}",
        report.describe()
    );
    report.assert_no_failures();
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_and_retry_policies_from_yaml_run_in_the_sidecar_and_change_under_load() {
    let routes = |tea_fault: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: reviews }}\nspec:\n  \
             hosts: [reviews]\n  http:\n    \
             - name: tea\n      match: [{{ uri: {{ prefix: /tea }} }}]\n{tea_fault}      \
             route: [{{ destination: {{ host: reviews }} }}]\n    \
             - name: flaky\n      match: [{{ uri: {{ prefix: /flaky }} }}]\n      \
             retries: {{ attempts: 2, retryOn: 5xx }}\n      route: [{{ destination: {{ host: reviews }} }}]\n    \
             - name: rest\n      retries: {{ attempts: 0 }}\n      route: [{{ destination: {{ host: reviews }} }}]\n"
        )
    };
    let teapot = "      fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }\n";
    let mesh = TestMesh::start(&[CLIENT, REVIEWS_V1], &routes(teapot)).await;
    let out = mesh.outbound(CLIENT);
    let reviews = mesh.workload(REVIEWS_V1);

    let served = reviews.served();
    assert_eq!(
        get_host(out, "reviews", "/tea", &[]).await,
        (418, "fault filter abort".into())
    );
    assert_eq!(reviews.served(), served, "aborted in the caller's sidecar");
    assert_eq!(
        get_host(out, "reviews", "/coffee", &[]).await,
        (200, REVIEWS_V1.into())
    );

    // The app fails the first attempt: retried on /flaky, not on the route that turns retries off.
    let fail_once = |key| [(FAIL_FIRST, "1"), (REQUEST_KEY, key)];
    let served = reviews.served();
    assert_eq!(
        get_host(out, "reviews", "/flaky", &fail_once("a")).await,
        (200, REVIEWS_V1.into())
    );
    assert_eq!(reviews.served() - served, 2, "one retry");
    assert_eq!(
        get_host(out, "reviews", "/other", &fail_once("b")).await.0,
        503
    );
    assert_eq!(reviews.served() - served, 3, "no retry");
    assert_eq!(
        mesh.workload(CLIENT)
            .sidecar
            .stat("upstream_rq_retry")
            .await,
        1
    );

    // Under load on another route of the same service, the fault goes (its plugin leaves the sidecar's chain) and
    // comes back: /tea follows, and no request of the load fails.
    let load = Load::start(out, "reviews", CLIENTS, PACE);
    load.until(WITHIN, "100 answers", |o| o.len() >= 100).await;
    for (fault, want) in [
        ("", (200, REVIEWS_V1)),
        (teapot, (418, "fault filter abort")),
    ] {
        mesh.write("routing.yaml", &routes(fault));
        let what = format!("/tea answered {want:?}");
        eventually(WITHIN, &what, || async {
            get_host(out, "reviews", "/tea", &[]).await == (want.0, want.1.into())
        })
        .await;
    }
    let since = Instant::now();
    load.until(WITHIN, "100 more answers", |o| {
        o.iter().filter(|x| x.at > since).count() >= 100
    })
    .await;
    load.stop().await.assert_no_failures();
    mesh.shutdown().await;
}
