//! Hot swap: changing a plugin's config or code under load applies to new requests, in-flight requests finish on the
//! old version, no request fails, and old VMs are freed once their requests are done.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response};
use meshwork_tests::*;
use serde_json::json;

/// The probe's bytes with a custom section appended: the same behaviour, a different module (new sha256).
fn variant_of_probe(dir: &std::path::Path, n: u8) -> String {
    let mut bytes = std::fs::read(PROBE_WASM).unwrap();
    let payload = [b"v".as_slice(), &[n]].concat();
    bytes.extend([0, (payload.len() + 5) as u8, 4]);
    bytes.extend_from_slice(b"swap");
    bytes.extend_from_slice(&payload);
    let path = dir.join(format!("probe-{n}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn config(url: &str, tag: &str, up: std::net::SocketAddr) -> String {
    let plugin = format!(
        "{{ name: swap, url: \"{url}\", pluginConfig: {} }}",
        json!({"tag": tag})
    );
    proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_and_code_swaps_under_load_fail_no_request() {
    let slow = upstream(|_req: Request<hyper::body::Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Response::new(full("ok"))
    })
    .await;
    let dir = std::env::temp_dir().join(format!("meshwork-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tp = TestProxy::start(&config(PROBE_WASM, "v0", slow));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let tags = Arc::new(Mutex::new(BTreeSet::new()));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (stop, failures, done, tags, addr) = (
            stop.clone(),
            failures.clone(),
            done.clone(),
            tags.clone(),
            tp.addr,
        );
        clients.push(tokio::spawn(async move {
            let mut conn = h1_conn(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get("/")
                    .header("host", "svc")
                    .body(empty())
                    .unwrap();
                match send_on(&mut conn, req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let tag = resp
                            .headers()
                            .get("x-probe")
                            .map(|v| v.to_str().unwrap().to_string());
                        let _ = body_string(resp).await;
                        tags.lock().unwrap().insert(tag.unwrap_or_default());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        let body = body_string(resp).await;
                        failures.lock().unwrap().push(format!("{status}: {body}"));
                    }
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    // Alternate config-only and code changes while the clients run.
    for n in 1..=6u8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let url = if n % 2 == 0 {
            variant_of_probe(&dir, n)
        } else {
            PROBE_WASM.to_string()
        };
        tp.apply(&config(&url, &format!("v{n}"), slow));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {failures:?}",
        failures.len()
    );
    let tags = tags.lock().unwrap().clone();
    assert!(
        tags.contains("v0") && tags.contains("v6"),
        "served every version in turn: {tags:?}"
    );
    assert!(done.load(Ordering::Relaxed) > 50, "there was load");
    // Once nothing runs on them, old versions' VMs are gone: one VM per worker remains.
    eventually(Duration::from_secs(5), "old VMs freed", || async {
        tp.stat("wasm.swap.vms_active").await == 2
    })
    .await;
    tp.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_new_version_is_rejected_and_the_old_one_keeps_serving() {
    let up = named_upstream("ok").await;
    let mut tp = TestProxy::start(&config(PROBE_WASM, "good", up));
    let bad = proxy_yaml_with(
        &[&filters(&[probe(
            "swap",
            json!({"fail_in": "on_configure"}),
            "",
        )])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let err = meshwork_host::config::parse(&bad, "mesh.yaml").expect_err("the canary refuses it");
    assert!(
        err.to_string()
            .contains("plugin `swap`: on_configure failed"),
        "{err}"
    );
    let resp = send(
        tp.addr,
        Request::get("/")
            .header("host", "svc")
            .body(empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.headers()["x-probe"], "good");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_module_file_is_picked_up_by_the_watcher() {
    let up = named_upstream("ok").await;
    let dir = std::env::temp_dir().join(format!("meshwork-rebuild-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The config names the module by a path relative to itself.
    std::fs::copy(PROBE_WASM, dir.join("filter.wasm")).unwrap();
    let plugin = format!(
        "{{ name: rebuilt, url: filter.wasm, pluginConfig: {}, vmConfig: {{ env: [{{ name: GREETING, value: hi }}] }} }}",
        json!({"env": ["GREETING"]})
    );
    let yaml = proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let path = dir.join("proxy.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let options = meshwork_host::RunOptions {
        watch: Some(path.clone()),
        watch_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let cfg = meshwork_host::config::load(&path).unwrap();
    let mut tp = TestProxy::start_config(cfg, options);
    let greeting = |addr| async move {
        let resp = send(
            addr,
            Request::get("/")
                .header("host", "svc")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
        resp.headers()
            .get("x-env-greeting")
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(greeting(tp.addr).await.as_deref(), Some("hi"));
    // "Rebuild" the filter: the wasm32-unknown-unknown build of the probe has no WASI environment.
    std::fs::copy(PROBE_WASM_UNKNOWN, dir.join("filter.wasm")).unwrap();
    let addr = tp.addr;
    // Compiling the new module can take seconds on a busy 2-core machine.
    eventually(Duration::from_secs(30), "new module live", || async move {
        greeting(addr).await.as_deref() == Some("<unset>")
    })
    .await;
    tp.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
