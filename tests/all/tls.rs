//! Mutual TLS with SPIFFE identities through the real proxy, checked with real clients: `curl` and `openssl s_client`
//! against STRICT and PERMISSIVE listeners (plaintext, no certificate, unknown CA, wrong trust domain, expired
//! certificate, valid identity visible to the authz filter), and proxy-to-proxy mTLS that accepts only the identity
//! the destination runs as. Skipped (with a message) when `curl` or `openssl` is missing.

use std::{net::SocketAddr, process::Command};

use meshwork_tests::{
    pki::{Issued, TestPki, path},
    *,
};
use serde_json::json;

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const RATINGS: &str = "spiffe://cluster.local/ns/default/sa/ratings";

#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so in the test output"
)]
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: `{tool}` is not on PATH");
    }
    ok
}

/// Exit code, stdout and stderr of a command run off the async workers.
async fn run(
    program: &'static str,
    args: Vec<String>,
    stdin: &'static str,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(program)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `curl` to `url`, with a client certificate when given; returns exit code and `BODY\nSTATUS HTTP_VERSION`.
async fn curl(url: String, client: Option<&Issued>, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = [
        "-sS",
        "--max-time",
        "10",
        "-k",
        "-w",
        "\n%{http_code} %{http_version}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(c) = client {
        args.extend([
            "--cert".into(),
            path(&c.chain),
            "--key".into(),
            path(&c.key),
        ]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url);
    let (code, out, err) = run("curl", args, "").await;
    (code, format!("{out}{err}"))
}

/// A proxy whose listener `main` has `tls` (a YAML flow map) and `plugins`, routing to an upstream answering `ok`.
async fn tls_proxy(pki: &TestPki, server: &Issued, tls: &str, plugins: &[String]) -> TestProxy {
    // Answers `ok`, echoing the x-forwarded-client-cert it received (the identity its sidecar vouches for).
    let up = upstream(|req| async move {
        let mut resp = http::Response::new(full("ok"));
        if let Some(v) = req.headers().get("x-forwarded-client-cert") {
            resp.headers_mut().insert("x-seen-xfcc", v.clone());
        }
        resp
    })
    .await;
    let mut options = vec![format!("tls: {tls}")];
    if !plugins.is_empty() {
        options.push(filters(plugins));
    }
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let yaml = format!(
        "{}secrets:\n  - {{ name: default, certificate_chain: {}, private_key: {}, trusted_ca: {} }}\n",
        proxy_yaml_with(&options, &route("/", "app"), &cluster("app", &[up], "")),
        path(&server.chain),
        path(&server.key),
        path(&pki.root()),
    );
    TestProxy::start(&yaml)
}

fn allow_only_productpage() -> String {
    policy(
        "authz",
        "authz",
        json!({"policies": [{"name": "only-productpage", "action": "ALLOW", "rules": [
            {"from": [{"source": {"principals": ["cluster.local/ns/default/sa/productpage"]}}]}]}]}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_listener_against_curl_and_openssl() {
    if !have("curl") || !have("openssl") {
        return;
    }
    register_builtins();
    let pki = TestPki::new("strict", "cluster.local");
    let server = pki.issue("reviews", REVIEWS);
    let productpage = pki.issue("productpage", PRODUCTPAGE);
    let ratings = pki.issue("ratings", RATINGS);
    let expired = pki.issue_expired("expired", PRODUCTPAGE);
    let foreign = TestPki::new("foreign", "cluster.local");
    let unknown_ca = foreign.issue("unknown-ca", PRODUCTPAGE);
    let wrong_td = pki.issue(
        "wrong-td",
        "spiffe://evil.example/ns/default/sa/productpage",
    );

    let mut p = tls_proxy(
        &pki,
        &server,
        "{ mode: strict, certificate: default, trusted_ca: default, trust_domains: [cluster.local] }",
        &[allow_only_productpage()],
    )
    .await;
    let https = format!("https://127.0.0.1:{}/", p.addr.port());

    // A valid identity: served, over HTTP/1.1 and over HTTP/2 chosen by ALPN.
    assert_eq!(
        curl(https.clone(), Some(&productpage), &["--http1.1"]).await,
        (0, "ok\n200 1.1".into())
    );
    assert_eq!(
        curl(https.clone(), Some(&productpage), &["--http2"]).await,
        (0, "ok\n200 2".into())
    );
    // Another valid identity: the TLS layer accepts it and the authz filter sees who it is.
    let (code, out) = curl(https.clone(), Some(&ratings), &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("403 2"), "{out}");

    // Refused at the TLS layer: curl fails before any HTTP status.
    let refused: [(&str, Option<&Issued>, String); 5] = [
        ("no client certificate", None, https.clone()),
        ("unknown CA", Some(&unknown_ca), https.clone()),
        ("wrong trust domain", Some(&wrong_td), https.clone()),
        ("expired certificate", Some(&expired), https.clone()),
        (
            "plaintext",
            Some(&productpage),
            format!("http://127.0.0.1:{}/", p.addr.port()),
        ),
    ];
    for (what, cert, url) in refused {
        let (code, out) = curl(url, cert, &[]).await;
        assert_ne!(code, 0, "{what}: curl succeeded: {out}");
        assert!(
            !out.contains("\n200") && !out.contains("\n403"),
            "{what}: {out}"
        );
    }
    assert!(p.stat("downstream_cx_tls_refused").await >= 5);

    // openssl s_client: the proxy's chain verifies to the mesh root, TLS 1.3 with h2 by ALPN.
    let connect = format!("127.0.0.1:{}", p.addr.port());
    let args = |cert: Option<&Issued>| {
        // `timeout` bounds a hung handshake; `-ign_eof` waits for the server's answer after stdin ends.
        let mut a = vec![
            "10".to_string(),
            "openssl".into(),
            "s_client".into(),
            "-ign_eof".into(),
            "-connect".into(),
            connect.clone(),
            "-CAfile".into(),
            path(&pki.root()),
            "-alpn".into(),
            "h2,http/1.1".into(),
        ];
        if let Some(c) = cert {
            a.extend(["-cert".into(), path(&c.chain), "-key".into(), path(&c.key)]);
        }
        a
    };
    let (_, out, err) = run(
        "timeout",
        args(Some(&productpage)),
        "GET / HTTP/1.0\r\n\r\n",
    )
    .await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}{err}");
    assert!(
        out.contains("TLSv1.3") && out.contains("ALPN protocol: h2"),
        "{out}{err}"
    );
    assert!(out.contains("subject=O = cluster.local"), "{out}");
    // Without a certificate the server ends the handshake with TLS 1.3's `certificate_required` alert.
    let (_, out, err) = run("timeout", args(None), "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        err.contains("certificate required") || out.contains("certificate required"),
        "{out}{err}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_listener_serves_tls_and_plaintext_on_one_port() {
    if !have("curl") {
        return;
    }
    register_builtins();
    let pki = TestPki::new("permissive", "cluster.local");
    let server = pki.issue("reviews", REVIEWS);
    let productpage = pki.issue("productpage", PRODUCTPAGE);
    let mut p = tls_proxy(
        &pki,
        &server,
        "{ mode: permissive, certificate: default, trusted_ca: default }",
        &[allow_only_productpage()],
    )
    .await;
    let port = p.addr.port();
    // mTLS carries the identity the policy allows; plaintext reaches the filter without one.
    assert_eq!(
        curl(
            format!("https://127.0.0.1:{port}/"),
            Some(&productpage),
            &[]
        )
        .await,
        (0, "ok\n200 2".into())
    );
    let (code, out) = curl(format!("http://127.0.0.1:{port}/"), None, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("403 1.1"), "{out}");
    let (code, out) = curl(
        format!("http://127.0.0.1:{port}/"),
        None,
        &["--http2-prior-knowledge"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("403 2"), "{out}");
    p.shutdown().await;
}

/// A client-side proxy whose clusters reach `server` over mTLS as productpage, expecting `expected` as the server's
/// identity, with `protocol`.
async fn client_proxy(
    pki: &TestPki,
    me: &Issued,
    server: SocketAddr,
    clusters: &[(&str, &str, &str)],
) -> TestProxy {
    let mut routes = String::new();
    let mut list = String::new();
    for (name, expected, protocol) in clusters {
        routes.push_str(&route(&format!("/{name}"), name));
        list.push_str(&cluster(
            name,
            &[server],
            &format!(
                "    protocol: {protocol}\n    tls: {{ certificate: mesh, trusted_ca: mesh, subject_alt_names: [\"{expected}\"] }}\n"
            ),
        ));
    }
    let yaml = format!(
        "{}secrets:\n  - {{ name: mesh, certificate_chain: {}, private_key: {}, trusted_ca: {} }}\n",
        proxy_yaml(&routes, &list),
        path(&me.chain),
        path(&me.key),
        path(&pki.root()),
    );
    TestProxy::start(&yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_to_sidecar_mtls_accepts_only_the_destination_identity() {
    register_builtins();
    let pki = TestPki::new("pair", "cluster.local");
    let server_cert = pki.issue("reviews", REVIEWS);
    let productpage = pki.issue("productpage", PRODUCTPAGE);
    let mut server = tls_proxy(
        &pki,
        &server_cert,
        "{ mode: strict, certificate: default, trusted_ca: default, trust_domains: [cluster.local] }",
        &[allow_only_productpage()],
    )
    .await;
    let mut client = client_proxy(
        &pki,
        &productpage,
        server.addr,
        &[
            ("h1", REVIEWS, "http1"),
            ("h2", REVIEWS, "http2"),
            ("impostor", RATINGS, "http1"),
        ],
    )
    .await;

    // The identity travels end to end: the server's authz filter allows productpage.
    for path in ["/h1", "/h2"] {
        assert_eq!(
            get(client.addr, path).await,
            (200, "ok".to_string()),
            "{path}"
        );
    }
    // The application behind the server sidecar learns who called, and cannot be lied to by the caller.
    let req = http::Request::get("/h1")
        .header("host", "reviews")
        .header(
            "x-forwarded-client-cert",
            "URI=spiffe://cluster.local/ns/default/sa/admin",
        )
        .body(empty())
        .unwrap();
    let resp = send(client.addr, req).await.unwrap();
    let seen = resp.headers()["x-seen-xfcc"].to_str().unwrap().to_string();
    assert!(seen.starts_with(&format!("By={REVIEWS};Hash=")), "{seen}");
    assert!(seen.ends_with(&format!(";URI={PRODUCTPAGE}")), "{seen}");

    // The server is reviews, not the ratings the `impostor` cluster expects: refused by the client, 503 with why.
    let (status, body) = get(client.addr, "/impostor").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("TLS handshake failed") && body.contains(RATINGS),
        "{body}"
    );

    // Connections are pooled: 100 more requests open no new TLS connection per request.
    let before = client.stat("upstream_cx_tls_total").await;
    for i in 0..100 {
        let path = if i % 2 == 0 { "/h1" } else { "/h2" };
        assert_eq!(get(client.addr, path).await.0, 200);
    }
    let opened = client.stat("upstream_cx_tls_total").await - before;
    assert!(opened <= 4, "{opened} new TLS connections for 100 requests");
    assert!(server.stat("downstream_cx_tls_total").await >= 2);
    client.shutdown().await;
    server.shutdown().await;
}
