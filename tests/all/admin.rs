//! The admin API: readiness, the live config as JSON, counters, and methods.

use meshwork_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_config_dump_stats() {
    let up = named_upstream("x").await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "app"), &cluster("app", &[up], "")));
    assert_eq!(tp.admin_get("/ready").await, (200, "LIVE\n".into()));
    let (status, dump) = tp.admin_get("/config_dump").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["bound_listeners"]["main"], tp.addr.to_string());
    assert_eq!(json["config"]["clusters"][0]["name"], "app");
    assert_eq!(
        json["config"]["clusters"][0]["connect_timeout"], "5s",
        "defaults are filled in"
    );
    assert_eq!(
        json["config"]["listeners"][0]["virtual_hosts"][0]["routes"][0]["timeout"],
        "15s"
    );
    get(tp.addr, "/").await;
    assert_eq!(tp.stat("downstream_rq_total").await, 1);
    assert_eq!(tp.stat("config_version").await, 1);
    assert_eq!(tp.admin_get("/nope").await.0, 404);
    assert_eq!(
        tp.admin_get("/quitquitquit").await.0,
        405,
        "GET must not stop the proxy"
    );
    assert_eq!(tp.admin_get("/ready").await.0, 200);
    tp.shutdown().await;
}
