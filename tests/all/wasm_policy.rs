//! Hostile and failing plugins: traps in every callback, infinite loops, memory bombs, bad pointers and huge lengths
//! in every hostcall, modules that cannot load. The proxy stays up, other routes keep serving, and each failure gets
//! its plugin's policy (FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD) or, in shadow mode, no effect at all.

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use meshwork_tests::*;
use serde_json::{Value, json};

async fn status_and_body(
    addr: std::net::SocketAddr,
    path: &str,
) -> (u16, http::HeaderMap, Result<String, String>) {
    exchange(
        addr,
        Request::get(path)
            .header("host", "svc")
            .body(empty())
            .unwrap(),
    )
    .await
    .expect("response headers")
}

/// Status, headers and body (or why the body broke); `Err` if not even the headers arrived.
async fn exchange(
    addr: std::net::SocketAddr,
    req: Request<Body>,
) -> Result<(u16, http::HeaderMap, Result<String, String>), String> {
    let resp = send(addr, req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .map_err(|e| e.to_string());
    Ok((parts.status.as_u16(), parts.headers, body))
}

/// Sends a GET, or a POST with a body when the callback under test only runs for bodies.
async fn call(
    addr: std::net::SocketAddr,
    cb: &str,
    path: &str,
) -> (u16, http::HeaderMap, Result<String, String>) {
    let req = match cb {
        "on_request_body" => Request::post(path)
            .header("host", "svc")
            .body(full("some data"))
            .unwrap(),
        _ => Request::get(path)
            .header("host", "svc")
            .body(empty())
            .unwrap(),
    };
    exchange(addr, req).await.expect("response headers")
}

/// Routes `/NAME` each with one plugin, plus `/` without plugins.
fn routes(plugins: &[(String, String)]) -> String {
    let mut out = String::new();
    for (path, plugin) in plugins {
        out.push_str(&format!(
            "          - match: {{ path: \"{path}\" }}\n            cluster: app\n            filters: [{plugin}]\n"
        ));
    }
    out.push_str(&route("/", "app"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_each_callback_fails_by_policy() {
    let up = named_upstream("upstream-body").await;
    let callbacks = [
        "on_context_create",
        "on_request_headers",
        "on_request_body",
        "on_response_headers",
        "on_log",
    ];
    let mut plugins = Vec::new();
    for cb in callbacks {
        for policy in ["FAIL_CLOSE", "FAIL_OPEN"] {
            let cfg = json!({"fail_in": cb, "fail_how": "trap"});
            plugins.push((
                format!("/{cb}/{policy}"),
                probe(
                    &format!("t-{cb}-{policy}"),
                    cfg,
                    &format!("failStrategy: {policy}"),
                ),
            ));
        }
    }
    let mut tp = TestProxy::start(&proxy_yaml(&routes(&plugins), &cluster("app", &[up], "")));
    for cb in callbacks {
        // Twice: the first request traps the VM, the second finds it down; both get the policy.
        for _ in 0..2 {
            let (status, _, body) = call(tp.addr, cb, &format!("/{cb}/FAIL_CLOSE")).await;
            let body = body.unwrap();
            if cb == "on_log" && status == 200 {
                // on_log runs after the response is sent; the trap takes the VM down for the next request on
                // that worker, which gets the policy like any other.
                assert_eq!(body, "upstream-body");
            } else {
                assert_eq!(status, 503, "{cb}: {body}");
                assert!(
                    body.contains(&format!("t-{cb}-FAIL_CLOSE")),
                    "the reply names the plugin: {body}"
                );
            }
            let (status, _, body) = call(tp.addr, cb, &format!("/{cb}/FAIL_OPEN")).await;
            assert_eq!(
                (status, body.unwrap().as_str()),
                (200, "upstream-body"),
                "{cb} fail-open skips the plugin"
            );
        }
        assert!(
            tp.stat(&format!("wasm.t-{cb}-FAIL_CLOSE.traps")).await >= 1,
            "{cb} trap counted"
        );
    }
    assert!(
        tp.stat("wasm.t-on_request_headers-FAIL_CLOSE.failed_closed")
            .await
            >= 2
    );
    assert!(
        tp.stat("wasm.t-on_request_headers-FAIL_OPEN.failed_open")
            .await
            >= 2
    );
    // Other routes never noticed.
    assert_eq!(status_and_body(tp.addr, "/other").await.0, 200);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_the_response_body_aborts_the_stream() {
    let up = named_upstream("upstream-body").await;
    let plugin = probe("rb", json!({"fail_in": "on_response_body"}), "");
    let mut tp = TestProxy::start(&proxy_yaml(
        &routes(&[("/rb".into(), plugin)]),
        &cluster("app", &[up], ""),
    ));
    let req = Request::get("/rb")
        .header("host", "svc")
        .body(empty())
        .unwrap();
    match exchange(tp.addr, req).await {
        // hyper may still hold the headers when the body fails; then the connection closes before them.
        Err(e) => assert!(e.contains("connection closed"), "{e}"),
        Ok((status, _, body)) => {
            assert_eq!(status, 200, "the headers were already on their way");
            assert!(
                body.is_err(),
                "the body is cut off, not silently truncated: {body:?}"
            );
        }
    }
    assert_eq!(status_and_body(tp.addr, "/").await.0, 200);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_and_memory_bombs_hit_their_limits() {
    let up = named_upstream("ok").await;
    let plugins = vec![
        (
            "/loop".to_string(),
            probe(
                "looper",
                json!({"fail_in": "on_request_headers", "fail_how": "loop"}),
                "limits: { maxCallbackTime: 20ms }",
            ),
        ),
        (
            "/bomb".to_string(),
            probe(
                "bomber",
                json!({"fail_in": "on_request_headers", "fail_how": "memory"}),
                "limits: { maxMemoryMb: 8 }",
            ),
        ),
    ];
    let mut tp = TestProxy::start(&proxy_yaml(&routes(&plugins), &cluster("app", &[up], "")));
    let started = std::time::Instant::now();
    let (status, _, body) = status_and_body(tp.addr, "/loop").await;
    assert_eq!(status, 503, "{body:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "interrupted, not waited out"
    );
    assert_eq!(tp.stat("wasm.looper.timeouts").await, 1);
    let (status, _, body) = status_and_body(tp.addr, "/bomb").await;
    assert_eq!(status, 503, "{body:?}");
    assert!(tp.stat("wasm.bomber.traps").await >= 1);
    // The worker that ran the loop serves the next requests at once.
    for _ in 0..4 {
        assert_eq!(status_and_body(tp.addr, "/").await.0, 200);
    }
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pointers_and_huge_lengths_in_every_hostcall_trap_only_that_vm() {
    let up = named_upstream("ok").await;
    let calls = [
        "proxy_log",
        "proxy_get_header_map_value",
        "proxy_add_header_map_value",
        "proxy_set_header_map_pairs",
        "proxy_get_buffer_bytes",
        "proxy_set_buffer_bytes",
        "proxy_get_property",
        "proxy_set_shared_data",
        "proxy_send_local_response",
        "proxy_http_call",
        "proxy_call_foreign_function",
    ];
    let mut plugins = Vec::new();
    for call in calls {
        for how in ["bad_pointer", "huge_length"] {
            let cfg = json!({"fail_in": "on_request_headers", "fail_how": how, "bad_call": call});
            plugins.push((
                format!("/{call}/{how}"),
                probe(&format!("{call}-{how}"), cfg, ""),
            ));
        }
    }
    let mut tp = TestProxy::start(&proxy_yaml(&routes(&plugins), &cluster("app", &[up], "")));
    for call in calls {
        for how in ["bad_pointer", "huge_length"] {
            let (status, headers, body) = status_and_body(tp.addr, &format!("/{call}/{how}")).await;
            if (call, how) == ("proxy_get_buffer_bytes", "huge_length") {
                // A start past the end is not a memory error: the buffer has nothing there.
                assert_eq!(status, 200, "{call} {how}: {body:?}");
                let got = headers
                    .get("x-bad-call-status")
                    .map(|v| v.to_str().unwrap().to_string());
                assert_eq!(got.as_deref(), Some("proxy_get_buffer_bytes=1"), "NotFound");
            } else {
                assert_eq!(status, 503, "{call} {how}: {body:?}");
                assert_eq!(
                    tp.stat(&format!("wasm.{call}-{how}.traps")).await,
                    1,
                    "{call} {how}"
                );
            }
        }
    }
    assert_eq!(
        status_and_body(tp.addr, "/").await.0,
        200,
        "the proxy is fine"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_reload_recreates_the_vm_after_backoff() {
    let up = named_upstream("ok").await;
    // Traps after every request (in on_log): the next request finds the VM down until the reload.
    let plugin = probe(
        "flaky",
        json!({"fail_in": "on_log"}),
        "failStrategy: FAIL_RELOAD, reload: { fallback: FAIL_CLOSE, backoff: 150ms, maxBackoff: 150ms }",
    );
    let yaml = proxy_yaml(
        &routes(&[("/f".into(), plugin)]),
        &cluster("app", &[up], ""),
    )
    .replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    assert_eq!(status_and_body(tp.addr, "/f").await.0, 200);
    let (status, _, body) = status_and_body(tp.addr, "/f").await;
    assert_eq!(status, 503, "VM down, fallback FAIL_CLOSE: {body:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_and_body(tp.addr, "/f").await.0,
        200,
        "re-created after the backoff"
    );
    assert!(tp.stat("wasm.flaky.reloads").await >= 1);
    assert!(
        tp.stat("wasm.flaky.vms_created").await >= 3,
        "canary, first VM, reloaded VM"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_plugins_record_but_change_nothing() {
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let seen = req.headers().get("x-added").is_some();
        http::Response::new(full(format!("saw-added={seen}")))
    })
    .await;
    let would_deny = probe(
        "shadow-deny",
        json!({"local_response": {"status": 403}, "add_request_headers": {"x-added": "1"}, "add_response_headers": {"x-shadow": "1"}}),
        "mode: shadow",
    );
    let crashes = probe(
        "shadow-crash",
        json!({"fail_in": "on_request_headers"}),
        "mode: shadow",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[would_deny, crashes])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ));
    for _ in 0..3 {
        let (status, headers, body) = status_and_body(tp.addr, "/x").await;
        assert_eq!((status, body.unwrap().as_str()), (200, "saw-added=false"));
        assert!(headers.get("x-shadow").is_none());
    }
    assert_eq!(tp.stat("wasm.shadow-deny.shadow_local_replies").await, 3);
    assert!(tp.stat("wasm.shadow-deny.shadow_mutations").await >= 3);
    assert!(tp.stat("wasm.shadow-crash.traps").await >= 1);
    tp.shutdown().await;
}

/// A minimal wasm module: memory, an `malloc` export, `extra_exports` (names of a no-op function) and, if given, an
/// import `env.<import>` of type () -> ().
fn tiny_module(import: Option<&str>, extra_exports: &[&str]) -> Vec<u8> {
    fn name(out: &mut Vec<u8>, s: &str) {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    fn section(out: &mut Vec<u8>, id: u8, body: Vec<u8>) {
        out.push(id);
        out.push(body.len() as u8);
        out.extend(body);
    }
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Types: 0 = () -> (), 1 = (i32) -> i32.
    section(&mut m, 1, vec![2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f]);
    let imported = u8::from(import.is_some());
    if let Some(i) = import {
        let mut b = vec![1];
        name(&mut b, "env");
        name(&mut b, i);
        b.extend([0, 0]);
        section(&mut m, 2, b);
    }
    // Functions: malloc (type 1), noop (type 0).
    section(&mut m, 3, vec![2, 1, 0]);
    section(&mut m, 5, vec![1, 0, 1]);
    let mut exports = vec![
        (String::from("memory"), 2u8, 0u8),
        ("malloc".into(), 0, imported),
    ];
    exports.extend(
        extra_exports
            .iter()
            .map(|e| (e.to_string(), 0, imported + 1)),
    );
    let mut b = vec![exports.len() as u8];
    for (n, kind, idx) in exports {
        name(&mut b, &n);
        b.extend([kind, idx]);
    }
    section(&mut m, 7, b);
    // Code: malloc returns 0; noop does nothing.
    section(&mut m, 10, vec![2, 4, 0, 0x41, 0, 0x0b, 2, 0, 0x0b]);
    m
}

#[test]
fn modules_that_cannot_run_are_rejected_with_the_cause() {
    let dir = std::env::temp_dir().join(format!("meshwork-bad-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, bytes: &[u8]| {
        let p = dir.join(file);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let unknown_import = write(
        "import.wasm",
        &tiny_module(Some("proxy_teleport"), &["proxy_abi_version_0_2_1"]),
    );
    let old_abi = write("old.wasm", &tiny_module(None, &["proxy_abi_version_0_1_0"]));
    let no_abi = write("none.wasm", &tiny_module(None, &[]));
    let garbage = write("garbage.wasm", b"this is not wasm");
    let plugin = |url: &str, extra: &str| format!("{{ name: p, url: \"{url}\"{extra} }}");
    let probe_with = |cfg: Value, extra: &str| probe("p", cfg, extra);
    let cases: Vec<(String, &str)> = vec![
        (plugin(&unknown_import, ""), "proxy_teleport"),
        (plugin(&old_abi, ""), "v0.1.0"),
        (plugin(&no_abi, ""), "no `proxy_abi_version_*`"),
        (plugin(&garbage, ""), "does not compile"),
        (plugin("/nonexistent/filter.wasm", ""), "cannot read"),
        (plugin("oci://registry/filter:1", ""), "unsupported url"),
        (plugin(PROBE_WASM, ", sha256: 00ff"), "sha256 mismatch"),
        (
            probe_with(json!({"fail_in": "on_configure", "fail_how": "reject"}), ""),
            "on_configure failed: the plugin returned false",
        ),
        (
            probe_with(json!({"fail_in": "on_configure", "fail_how": "trap"}), ""),
            "on_configure failed: wasm trap: wasm `unreachable` instruction executed; the plugin logged: panicked at",
        ),
        (
            probe_with(json!({"fail_in": "on_configure", "fail_how": "loop"}), ""),
            "CPU time limit",
        ),
        (
            probe_with(json!({"no_such_key": 1}), ""),
            "on_configure failed: the plugin returned false; the plugin logged:",
        ),
    ];
    for (entry, want) in cases {
        let yaml = proxy_yaml_with(
            &[&filters(std::slice::from_ref(&entry))],
            &route("/", "app"),
            &cluster("app", &["127.0.0.1:1".parse().unwrap()], ""),
        );
        let err = meshwork_host::config::parse(&yaml, "mesh.yaml")
            .expect_err(&entry)
            .to_string();
        assert!(
            err.contains("plugin `p`") && err.contains(want),
            "{entry}\n→ {err}"
        );
        assert!(err.starts_with("mesh.yaml:"), "file and line: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_while_a_request_waits_on_the_plugin_fails_that_request() {
    let up = named_upstream("ok").await;
    let auth = named_upstream("token").await;
    let plugins = vec![
        (
            "/callout".to_string(),
            probe(
                "callout-trap",
                json!({"callout": {"cluster": "auth", "path": "/"}, "fail_in": "on_http_call_response"}),
                "",
            ),
        ),
        (
            "/tick".to_string(),
            probe(
                "tick-trap",
                json!({"tick_ms": 10, "fail_in": "on_tick"}),
                "",
            ),
        ),
    ];
    let clusters = format!(
        "{}{}",
        cluster("app", &[up], ""),
        cluster("auth", &[auth], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&routes(&plugins), &clusters));
    // The request is paused on the callout when the VM traps in the callout's callback: it gets the policy (503),
    // not a hang.
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(5), status_and_body(tp.addr, "/callout"))
            .await
            .expect("no hang");
    assert_eq!(status, 503, "{body:?}");
    // A trap in a timer takes the VM down on its worker; requests then get the policy.
    let tp_ref = &tp;
    eventually(
        Duration::from_secs(5),
        "tick traps counted",
        || async move { tp_ref.stat("wasm.tick-trap.traps").await >= 2 },
    )
    .await;
    assert_eq!(status_and_body(tp.addr, "/tick").await.0, 503);
    assert_eq!(status_and_body(tp.addr, "/").await.0, 200);
    tp.shutdown().await;
}
