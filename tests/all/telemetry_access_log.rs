//! Access logs end to end: a proxy with a JSON file log and a text file log, requests of every outcome (200, no route,
//! connect refused, a plugin's local reply, a shadow plugin's verdict, a client gone mid-body), each line's fields
//! read back from the files; `x-request-id` generated, passed upstream and kept when given; and a log to a FIFO nobody
//! reads, which drops (and counts) lines while every request still succeeds.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use meshwork_tests::*;
use serde_json::{Value, json};

const TEXT_FORMAT: &str = "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% \
%REQ(X-REQUEST-ID)% %REQ(USER-AGENT):5% [%FILTER_DECISIONS%] %START_TIME(%Y-%m-%dT%H:%M:%S%z)%";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "meshwork-e2e-access-log-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An upstream that echoes the `x-request-id` it received; `/slow` sends one chunk and then never ends.
async fn echo_upstream() -> std::net::SocketAddr {
    upstream(|req: Request<Incoming>| async move {
        let id = req
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        if req.uri().path() == "/slow" {
            let first = futures_util::stream::once(async {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(
                    b"start",
                )))
            });
            let stream = futures_util::StreamExt::chain(first, futures_util::stream::pending());
            return Response::new(StreamBody::new(stream).boxed());
        }
        Response::new(full(id))
    })
    .await
}

fn config(
    up: std::net::SocketAddr,
    down: std::net::SocketAddr,
    json_log: &Path,
    text_log: &Path,
) -> String {
    let deny = policy(
        "authz",
        "authz",
        json!({"policies": [{"name": "deny", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/denied"]}}]}]}]}),
    );
    let shadow = probe(
        "shadow-deny",
        json!({"local_response": {"status": 403}}),
        "mode: shadow",
    );
    let routes = format!(
        "{}{}{}          - match: {{ prefix: \"/denied\" }}\n            cluster: up\n            filters: [{deny}]\n\
         \x20         - match: {{ prefix: \"/shadowed\" }}\n            cluster: up\n            filters: [{shadow}]\n",
        route("/ok", "up"),
        route("/slow", "up"),
        route("/refused", "down"),
    );
    let telemetry = format!(
        "telemetry: {{ access_log: [{{ path: \"{}\", format: json }}, {{ path: \"{}\", text_format: \"{TEXT_FORMAT}\" }}] }}",
        json_log.display(),
        text_log.display()
    );
    proxy_yaml_with(
        &[&telemetry],
        &routes,
        &(cluster("up", &[up], "") + &cluster("down", &[down], "")),
    )
}

async fn request(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    get_host(addr, "svc.local", path, headers).await
}

/// The file's lines once it has `n` of them.
async fn lines(path: &Path, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    eventually(
        Duration::from_secs(10),
        &format!("{n} lines in {}", path.display()),
        || {
            got = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            let enough = got.len() >= n;
            async move { enough }
        },
    )
    .await;
    got
}

fn by_path<'a>(entries: &'a [Value], path: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no line for {path} in {entries:#?}"))
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
        && s.chars()
            .filter(|c| *c != '-')
            .all(|c| c.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_logged_as_json_and_text() {
    let dir = temp_dir("outcomes");
    let (json_log, text_log) = (dir.join("access.json"), dir.join("access.log"));
    let up = echo_upstream().await;
    let down = closed_port().await;
    let mut tp = TestProxy::start(&config(up, down, &json_log, &text_log));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let (status, generated) = request(
        tp.addr,
        "/ok?x=1",
        &[
            ("user-agent", "curl/8.0"),
            ("x-forwarded-for", "192.0.2.1"),
            ("traceparent", traceparent),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        is_uuid_v4(&generated),
        "upstream saw x-request-id {generated:?}"
    );
    let (status, kept) = request(tp.addr, "/ok/given", &[("x-request-id", "given-id-1")]).await;
    assert_eq!((status, kept.as_str()), (200, "given-id-1"));
    assert_eq!(request(tp.addr, "/nothing", &[]).await.0, 404);
    assert_eq!(request(tp.addr, "/refused", &[]).await.0, 503);
    assert_eq!(request(tp.addr, "/denied", &[]).await.0, 403);
    assert_eq!(request(tp.addr, "/shadowed", &[]).await.0, 200);
    // A client that reads the head and the first chunk of a body that never ends, then goes away.
    {
        let mut conn = h1_conn(tp.addr).await;
        let req = Request::get("/slow")
            .header("host", "svc.local")
            .body(empty())
            .unwrap();
        let mut resp = send_on(&mut conn, req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let chunk = resp.body_mut().frame().await.unwrap().unwrap();
        assert_eq!(chunk.data_ref().unwrap().as_ref(), b"start");
    }

    let entries: Vec<Value> = lines(&json_log, 7)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(entries.len(), 7);

    let ok = by_path(&entries, "/ok?x=1");
    assert_eq!(ok["request_id"], generated.as_str());
    for (key, want) in [
        ("method", json!("GET")),
        ("protocol", json!("HTTP/1.1")),
        ("response_code", json!(200)),
        ("response_flags", json!("-")),
        ("response_code_details", json!("via_upstream")),
        ("bytes_received", json!(0)),
        ("bytes_sent", json!(36)),
        ("upstream_cluster", json!("up")),
        ("upstream_host", json!(up.to_string())),
        ("route_name", json!("all/0")),
        ("authority", json!("svc.local")),
        ("user_agent", json!("curl/8.0")),
        ("x_forwarded_for", json!("192.0.2.1")),
        ("trace_id", json!("4bf92f3577b34da6a3ce929d0e0e4736")),
        ("downstream_local_address", json!(tp.addr.to_string())),
        ("filter_decisions", json!([])),
        ("upstream_transport_failure_reason", Value::Null),
    ] {
        assert_eq!(ok[key], want, "{key} in {ok:#}");
    }
    assert!(ok["duration"].as_u64().is_some(), "{ok:#}");
    assert!(ok["upstream_service_time"].as_str().is_some(), "{ok:#}");
    let start = ok["start_time"].as_str().unwrap();
    assert!(
        start.len() == 24 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );
    assert!(
        ok["downstream_remote_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{ok:#}"
    );

    assert_eq!(by_path(&entries, "/ok/given")["request_id"], "given-id-1");

    let nr = by_path(&entries, "/nothing");
    assert_eq!(
        (
            &nr["response_code"],
            &nr["response_flags"],
            &nr["response_code_details"]
        ),
        (&json!(404), &json!("NR"), &json!("route_not_found"))
    );
    assert_eq!(nr["upstream_cluster"], Value::Null);

    let uf = by_path(&entries, "/refused");
    assert_eq!(
        (&uf["response_code"], &uf["response_flags"]),
        (&json!(503), &json!("UF"))
    );
    assert_eq!(uf["upstream_cluster"], "down");
    assert_eq!(
        uf["response_code_details"],
        "upstream_reset_before_response_started{connection_failure}"
    );
    assert!(
        uf["upstream_transport_failure_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("connect:")),
        "{uf:#}"
    );

    let denied = by_path(&entries, "/denied");
    assert_eq!(denied["response_code"], 403);
    assert_eq!(
        denied["filter_decisions"],
        json!([{"plugin": "authz", "verdict": "local_reply", "status": 403}])
    );
    assert_eq!(denied["upstream_host"], Value::Null);

    let shadowed = by_path(&entries, "/shadowed");
    assert_eq!(shadowed["response_code"], 200);
    assert_eq!(
        shadowed["filter_decisions"],
        json!([{"plugin": "shadow-deny", "verdict": "shadow_local_reply", "status": 403}])
    );

    let dc = by_path(&entries, "/slow");
    assert_eq!(
        (&dc["response_code"], &dc["response_flags"]),
        (&json!(200), &json!("DC"))
    );
    assert_eq!(dc["bytes_sent"], 5);

    // The text log: the same requests in the user's format.
    let text = lines(&text_log, 7).await;
    let line = |path: &str| {
        text.iter()
            .find(|l| l.starts_with(&format!("GET {path} ")))
            .unwrap_or_else(|| panic!("no text line for {path} in {text:#?}"))
            .clone()
    };
    let ok = line("/ok?x=1");
    let prefix = format!("GET /ok?x=1 200 - {generated} curl/ [] ");
    assert!(ok.starts_with(&prefix), "{ok}");
    assert!(ok.ends_with("+0000"), "{ok}");
    for (path, part) in [
        ("/ok/given", " 200 - given-id-1 - [] "),
        ("/nothing", " 404 NR "),
        ("/refused", " 503 UF "),
        ("/denied", " 403 - "),
        ("/denied", " [authz:local_reply:403] "),
        ("/shadowed", " 200 - "),
        ("/shadowed", " [shadow-deny:shadow_local_reply:403] "),
        ("/slow", " 200 DC "),
    ] {
        let l = line(path);
        assert!(l.contains(part), "{part:?} not in {l}");
    }

    assert_eq!(tp.stat("access_log_dropped").await, 0);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_nobody_reads_never_blocks_requests() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("access.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A reader that never reads (read-write, so opening does not wait for a writer): once the pipe is full, every
    // write would block.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let up = named_upstream("ok").await;
    // Eight logs to the same path share one writer and one queue: eight lines per request.
    let logs: Vec<String> = (0..8)
        .map(|_| format!("{{ path: \"{}\", format: json }}", fifo.display()))
        .collect();
    let telemetry = format!("telemetry: {{ access_log: [{}] }}", logs.join(", "));
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&telemetry],
        &route("/", "up"),
        &cluster("up", &[up], ""),
    ));
    let requests = 1200;
    let mut slowest = Duration::ZERO;
    for _ in 0..requests / 50 {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                let addr = tp.addr;
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (status, body) = get(addr, "/").await;
                    (status, body, t.elapsed())
                })
            })
            .collect();
        for h in batch {
            let (status, body, took) = h.await.unwrap();
            assert_eq!((status, body.as_str()), (200, "ok"));
            slowest = slowest.max(took);
        }
    }
    let dropped = tp.stat("access_log_dropped").await;
    // The queue holds 4,096 lines, the pipe plus the writer's buffer 128 KiB (about 200 lines of 700 bytes): of 9,600
    // lines, about 5,300 cannot have gone anywhere.
    assert!(dropped > 3000, "dropped {dropped}");
    let (_, prom) = tp.admin_get("/stats/prometheus").await;
    assert!(
        prom.contains(&format!("meshwork_access_log_dropped_total {dropped}")),
        "{prom}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "slowest request {slowest:?}"
    );
    tp.shutdown().await;
}
