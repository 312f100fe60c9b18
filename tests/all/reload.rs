//! Live configuration: snapshots swap atomically under load with zero failed requests, in-flight requests finish on
//! the config they started with, listeners come and go, and the watched file applies valid edits and rejects bad ones.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use http::Request;
use meshwork_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing() {
    let (blue, green) = (named_upstream("blue").await, named_upstream("green").await);
    let clusters = format!(
        "{}{}",
        cluster("blue", &[blue], ""),
        cluster("green", &[green], "")
    );
    let to = |c: &str| proxy_yaml(&route("/", c), &clusters);
    let mut tp = TestProxy::start(&to("blue"));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let seen_green = Arc::new(AtomicBool::new(false));
    let addr = tp.addr;
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (stop, ok, failed, seen_green) =
                (stop.clone(), ok.clone(), failed.clone(), seen_green.clone());
            tokio::spawn(async move {
                // Half the clients keep one connection, half open a new one per request.
                let mut conn = h1_conn(addr).await;
                while !stop.load(Ordering::Relaxed) {
                    let req = Request::get("/").header("host", "x").body(empty()).unwrap();
                    let resp = if i % 2 == 0 {
                        send_on(&mut conn, req).await
                    } else {
                        send(addr, req).await
                    };
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            if body_string(r).await == "green" {
                                seen_green.store(true, Ordering::Relaxed);
                            }
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            panic!("request failed during reloads: {other:?}");
                        }
                    }
                }
            })
        })
        .collect();
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        tp.apply(&to(if i % 2 == 0 { "green" } else { "blue" }));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during 40 reloads",
        ok + failed
    );
    assert!(
        ok > 200,
        "load was too light to prove anything: {ok} requests"
    );
    assert!(seen_green.load(Ordering::Relaxed), "reloads took effect");
    assert_eq!(tp.stat("config_reload_ok").await, 40);
    assert_eq!(tp.stat("config_version").await, 41);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_on_their_snapshot() {
    let gate = gated_upstream("old").await;
    let slow_old = gate.addr;
    let new = named_upstream("new").await;
    let clusters = format!(
        "{}{}",
        cluster("old", &[slow_old], ""),
        cluster("new", &[new], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "old"), &clusters));
    let addr = tp.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/").await });
    tp.wait_active("old", 1).await;
    tp.apply(&proxy_yaml(&route("/", "new"), &clusters));
    assert_eq!(
        get(tp.addr, "/").await,
        (200, "new".into()),
        "new requests use the new snapshot"
    );
    gate.open();
    assert_eq!(
        in_flight.await.unwrap(),
        (200, "old".into()),
        "the old request finished on its snapshot"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_added_and_removed_live() {
    let up = named_upstream("up").await;
    let base = proxy_yaml(&route("/", "app"), &cluster("app", &[up], ""));
    let mut tp = TestProxy::start(&base);
    let extra = base.replace(
        "clusters:\n",
        "  - name: second\n    address: 127.0.0.1:0\n    virtual_hosts: [{ name: v, domains: ['*'], routes: [{ match: { prefix: / }, direct_response: { status: 200, body: second } }] }]\nclusters:\n",
    );
    tp.apply(&extra);
    let second = tp
        .proxy()
        .listener_addr("second")
        .expect("second listener bound");
    assert_eq!(get(second, "/").await, (200, "second".into()));
    assert_eq!(
        get(tp.addr, "/").await,
        (200, "up".into()),
        "the first listener is untouched"
    );
    tp.apply(&base);
    assert!(tp.proxy().listener_addr("second").is_none());
    eventually(
        Duration::from_secs(5),
        "removed listener refuses connections",
        || async move { tokio::net::TcpStream::connect(second).await.is_err() },
    )
    .await;
    assert_eq!(get(tp.addr, "/").await, (200, "up".into()));
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_rejected_and_the_running_one_stays() {
    let up = named_upstream("up").await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "app"), &cluster("app", &[up], "")));
    let bad = proxy_yaml(&route("/", "missing"), &cluster("app", &[up], ""));
    let cfg: meshwork_host::Config = serde_yaml_free_parse(&bad);
    let err = tp.proxy().apply(cfg).expect_err("unknown cluster");
    assert!(
        err.to_string().contains("unknown cluster `missing`"),
        "{err}"
    );
    assert_eq!(get(tp.addr, "/").await, (200, "up".into()));
    assert_eq!(tp.stat("config_reload_rejected").await, 1);
    assert_eq!(tp.stat("config_version").await, 1);
    tp.shutdown().await;
}

/// Builds a `Config` that skips validation (to test that `apply` validates on its own), by parsing a valid config
/// and then pointing the route at a missing cluster.
fn serde_yaml_free_parse(yaml: &str) -> meshwork_host::Config {
    let valid = yaml.replace("cluster: missing", "cluster: app");
    let mut cfg = meshwork_host::config::parse(&valid, "t.yaml").unwrap();
    cfg.listeners[0].virtual_hosts[0].routes[0].cluster = Some("missing".into());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_file_applies_valid_edits_and_reports_bad_ones() {
    let dir = std::env::temp_dir().join(format!("meshwork-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.yaml");
    let direct = |body: &str| {
        proxy_yaml(
            &format!(
                "          - match: {{ prefix: / }}\n            direct_response: {{ status: 200, body: {body} }}\n"
            ),
            "  []\n",
        )
    };
    std::fs::write(&path, direct("one")).unwrap();
    let options = meshwork_host::RunOptions {
        watch: Some(path.clone()),
        watch_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let mut tp = TestProxy::start_with(&std::fs::read_to_string(&path).unwrap(), options);
    assert_eq!(get(tp.addr, "/").await.1, "one");
    std::fs::write(&path, direct("two")).unwrap();
    let addr = tp.addr;
    eventually(Duration::from_secs(5), "edit applied", || async move {
        get(addr, "/").await.1 == "two"
    })
    .await;
    // A broken edit: reported, counted, and the running config stays.
    std::fs::write(
        &path,
        direct("three").replace("direct_response", "direct_respons"),
    )
    .unwrap();
    let tp_ref = &tp;
    eventually(Duration::from_secs(5), "bad edit rejected", || async move {
        tp_ref.stat("config_reload_rejected").await == 1
    })
    .await;
    assert_eq!(get(tp.addr, "/").await.1, "two");
    // Fixing the file applies it.
    std::fs::write(&path, direct("four")).unwrap();
    eventually(
        Duration::from_secs(5),
        "fixed edit applied",
        || async move { get(addr, "/").await.1 == "four" },
    )
    .await;
    tp.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
