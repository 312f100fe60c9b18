//! The proxy as an xDS client (`meshwork proxy --xds`) of a fake Delta ADS control plane, with real upstreams on
//! loopback: routing as the resources say, readiness after the first complete config, live weighted splits, a NACKed
//! redirect that leaves the old routes serving, an ECDS WASM plugin switched on and off per route, a plugin config
//! that does not apply, and reconnecting with `initial_resource_versions` while traffic goes on.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteConfiguration, route::Action,
};
use meshwork_host::xds::{
    convert::{LISTENER, ROUTE},
    testing as fx,
};
use meshwork_tests::{xds::FakeAds, *};

/// Upper bound for anything to happen.
const WITHIN: Duration = Duration::from_secs(10);

/// Clusters `a` (STATIC, at `a`) and `b` (EDS, at `b`), and listener `main` on a free port, whose routes come from
/// route config `main`; the route config itself is left to the test.
fn serve_clusters_and_listener(
    fake: &FakeAds,
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    plugins: &[(&str, bool)],
) {
    fake.set("a", fx::static_cluster("a", &[&a.to_string()]));
    fake.set("b", fx::eds_cluster("b"));
    fake.set("b", fx::cla("b", &[&b.to_string()]));
    fake.set("main", fx::listener("main", "127.0.0.1:0", "main", plugins));
}

fn routes(list: Vec<Route>) -> RouteConfiguration {
    fx::route_config("main", vec![fx::vhost("all", list)])
}

/// Waits until `GET path` on `addr` answers `want` (status, body).
async fn until_answer(addr: std::net::SocketAddr, path: &str, want: (u16, &str)) {
    let what = format!("GET {path} → {want:?}");
    eventually(WITHIN, &what, || async {
        let (status, body) = get(addr, path).await;
        (status, body.as_str()) == want
    })
    .await;
}

/// A proxy serving `/a` → a and `/b` → b, ready.
async fn ready_proxy(
    fake: &FakeAds,
    plugins: &[(&str, bool)],
) -> (TestProxy, std::net::SocketAddr) {
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    serve_clusters_and_listener(fake, a, b, plugins);
    fake.set(
        "main",
        routes(vec![fx::to_cluster("/a", "a"), fx::to_cluster("/b", "b")]),
    );
    let tp = TestProxy::start_xds(&fake.uri(), "sidecar.default");
    let addr = tp.listener("main").await;
    until_answer(addr, "/b", (200, "b")).await;
    (tp, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_per_xds_and_ready_after_the_first_complete_config() {
    let fake = FakeAds::start().await;
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    serve_clusters_and_listener(&fake, a, b, &[]);
    let mut tp = TestProxy::start_xds(&fake.uri(), "sidecar.default");
    let first = fake
        .wait_request("the node on the first request", |r| r.node.is_some())
        .await;
    let node = first.node.unwrap();
    assert_eq!(
        (node.id.as_str(), node.cluster.as_str()),
        ("sidecar.default", "meshwork")
    );
    // The listener arrived and asked for its routes: still not complete, so not ready.
    fake.wait_request("RDS main subscribed", |r| {
        r.type_url == ROUTE && r.resource_names_subscribe == ["main"]
    })
    .await;
    let (status, body) = tp.admin_get("/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "NOT READY: waiting for a complete config from the control plane\n"
        )
    );
    let dump = tp.config_dump().await;
    assert_eq!(
        dump["xds"]["waiting_for"][0], "route config main (listener main)",
        "{dump:#}"
    );
    assert_eq!(
        dump["config"]["listeners"],
        serde_json::json!([]),
        "nothing applied yet"
    );

    let version = fake.set(
        "main",
        routes(vec![fx::to_cluster("/a", "a"), fx::to_cluster("/b", "b")]),
    );
    eventually(WITHIN, "ready", || async {
        tp.admin_get("/ready").await.0 == 200
    })
    .await;
    let addr = tp.listener("main").await;
    assert_eq!(get(addr, "/a").await, (200, "a".into()));
    assert_eq!(
        get(addr, "/b").await,
        (200, "b".into()),
        "the EDS cluster's endpoint"
    );
    assert_eq!(get(addr, "/c").await.0, 404);
    let dump = tp.config_dump().await;
    assert_eq!(dump["xds"]["connection"], "connected");
    assert_eq!(dump["xds"]["versions"][ROUTE]["main"], version.as_str());
    assert_eq!(dump["config"]["clusters"][1]["endpoints"][0], b.to_string());
    assert!(fake.nacks().is_empty(), "{:?}", fake.nacks());
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_changes_live() {
    let fake = FakeAds::start().await;
    let (mut tp, addr) = ready_proxy(&fake, &[]).await;
    fake.set(
        "main",
        routes(vec![fx::weighted("/", &[("a", 100), ("b", 0)])]),
    );
    until_answer(addr, "/x", (200, "a")).await;
    fake.set(
        "main",
        routes(vec![fx::weighted("/", &[("a", 0), ("b", 100)])]),
    );
    until_answer(addr, "/x", (200, "b")).await;
    for _ in 0..20 {
        assert_eq!(
            get(addr, "/x").await,
            (200, "b".into()),
            "weight 0 takes no traffic"
        );
    }
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_nacked_and_the_old_routes_keep_serving() {
    let fake = FakeAds::start().await;
    let (mut tp, addr) = ready_proxy(&fake, &[]).await;
    let mut redirect = fx::to_cluster("/old", "a");
    redirect.action = Some(Action::Redirect(RedirectAction::default()));
    fake.set("main", routes(vec![fx::to_cluster("/a", "b"), redirect]));
    let nack = fake
        .wait_request("a NACK", |r| {
            r.type_url == ROUTE && r.error_detail.is_some()
        })
        .await;
    let detail = nack.error_detail.unwrap();
    assert_eq!(detail.code, 3, "INVALID_ARGUMENT");
    assert_eq!(
        detail.message,
        "route config main: virtual_hosts[0].routes[1]: redirect is not supported by meshwork"
    );
    assert_eq!(
        get(addr, "/a").await,
        (200, "a".into()),
        "the route config in force before"
    );
    assert_eq!(
        tp.config_dump().await["xds"]["last_nack"],
        detail.message.as_str()
    );
    fake.set("main", routes(vec![fx::to_cluster("/a", "b")]));
    until_answer(addr, "/a", (200, "b")).await;
    tp.shutdown().await;
}

/// ECDS resource `fault/teapot`: the fault filter as plugin `teapot`, aborting every request with `status`.
fn teapot(status: u16) -> envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig {
    let config =
        format!(r#"{{"abort": {{"httpStatus": {status}, "percentage": {{"value": 100}}}}}}"#);
    fx::wasm("fault/teapot", "teapot", "builtin://fault", &config, &[])
}

/// Routes to `a`: `path` with `fault/teapot` switched off (`disabled`) or on, and `/` as the listener has it.
fn switched(path: &str, disabled: bool) -> RouteConfiguration {
    routes(vec![
        fx::with_switch(fx::to_cluster(path, "a"), "fault/teapot", disabled),
        fx::to_cluster("/", "a"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecds_plugin_runs_where_routes_switch_it_on() {
    let fake = FakeAds::start().await;
    fake.set("fault/teapot", teapot(418));
    // Disabled on the listener: only routes that switch it on run it.
    let (mut tp, addr) = ready_proxy(&fake, &[("fault/teapot", true)]).await;
    fake.set("main", switched("/tea", false));
    until_answer(addr, "/tea", (418, "fault filter abort")).await;
    assert_eq!(get(addr, "/coffee").await, (200, "a".into()));
    let dump = tp.config_dump().await;
    let plugin = &dump["config"]["listeners"][0]["filters"][0];
    assert_eq!(
        (plugin["name"].as_str(), plugin["disabled"].as_bool()),
        (Some("teapot"), Some(true)),
        "{dump:#}"
    );

    // On for every route, and switched off on one.
    fake.set(
        "main",
        fx::listener("main", "127.0.0.1:0", "main", &[("fault/teapot", false)]),
    );
    fake.set("main", switched("/calm", true));
    until_answer(addr, "/calm", (200, "a")).await;
    until_answer(addr, "/coffee", (418, "fault filter abort")).await;

    // A config the plugin refuses does not apply: NACKed, and the plugin keeps its old config.
    fake.set("fault/teapot", teapot(999));
    let nack = fake
        .wait_request("a NACK of the plugin", |r| {
            r.error_detail
                .as_ref()
                .is_some_and(|e| e.message.contains("teapot"))
        })
        .await;
    let message = nack.error_detail.unwrap().message;
    let applying = "the config does not apply: listener main, field `filters[0]`: plugin `teapot`: on_configure failed";
    assert!(message.starts_with("plugin response n"), "{message}");
    assert!(message.contains(applying), "{message}");
    assert!(
        message.contains("`abort.httpStatus`: 999 is not within 200 to 599"),
        "{message}"
    );
    assert_eq!(
        get(addr, "/coffee").await,
        (418, "fault filter abort".into())
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_and_claims_what_it_holds() {
    let mut fake = FakeAds::start().await;
    let (mut tp, addr) = ready_proxy(&fake, &[]).await;
    let held = tp.config_dump().await["xds"]["versions"].clone();
    fake.stop().await;
    eventually(WITHIN, "the client notices", || async {
        tp.config_dump().await["xds"]["connection"] != "connected"
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            get(addr, "/a").await,
            (200, "a".into()),
            "served while the control plane is away"
        );
    }
    assert_eq!(tp.admin_get("/ready").await.0, 200, "still ready");

    fake.restart().await;
    let listeners = fake
        .wait_request("LDS with initial versions", |r| {
            r.type_url == LISTENER && !r.initial_resource_versions.is_empty()
        })
        .await;
    assert_eq!(listeners.resource_names_subscribe, ["*"]);
    assert_eq!(
        listeners.initial_resource_versions["main"],
        held[LISTENER]["main"].as_str().unwrap()
    );
    let rds = fake
        .wait_request("RDS on the new stream", |r| {
            r.type_url == ROUTE && r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(rds.resource_names_subscribe, ["main"]);
    assert_eq!(
        rds.initial_resource_versions["main"],
        held[ROUTE]["main"].as_str().unwrap()
    );
    fake.set("main", routes(vec![fx::to_cluster("/a", "b")]));
    until_answer(addr, "/a", (200, "b")).await;
    assert_eq!(tp.config_dump().await["xds"]["streams"], 2);
    tp.shutdown().await;
}
