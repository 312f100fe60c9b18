//! The authz policy filter (`filters/authz`, `builtin://authz`): Istio's PeerAuthentication and AuthorizationPolicy.
//! Harness tables (config + request + peer identity → continue or 403 with the marker header; bad configs refused)
//! and the whole proxy with a real upstream: DENY on a path, ALLOW on methods, STRICT and PERMISSIVE mTLS, AUDIT.

use http::{Request, StatusCode};
use meshwork_host::wasm::harness::{Decision, Harness, LocalReply};
use meshwork_tests::*;
use serde_json::{Value, json};

const AUTHZ_WASM: &str = env!("FILTER_AUTHZ_WASM");

const PRODUCTPAGE: &[u8] = b"spiffe://cluster.local/ns/default/sa/productpage";
const RATINGS: &[u8] = b"spiffe://cluster.local/ns/default/sa/ratings";

/// The example of docs/policies/authz.md: productpage may `GET /api/*` with `x-token: a`.
fn allow_productpage() -> Value {
    json!({"policies": [{"name": "allow-productpage", "action": "ALLOW", "rules": [{
        "from": [{"source": {"principals": ["cluster.local/ns/default/sa/productpage"]}}],
        "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}],
        "when": [{"key": "request.headers[x-token]", "values": ["a"]}]}]}]})
}

fn deny_admin_allow_reads() -> Value {
    json!({"policies": [
        {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
        {"name": "allow-reads", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}]}]})
}

fn mtls_mode(mode: &str) -> Value {
    json!({"peerAuthentication": {"mtls": {"mode": mode}}})
}

/// One harness case: the request and the peer, and the expected marker (`None`: the request goes on).
#[derive(Clone)]
struct Case {
    what: &'static str,
    config: Value,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// The peer's certificate URI SAN, on an mTLS connection.
    peer: Option<&'static [u8]>,
    /// Other properties to set.
    props: &'static [(&'static str, &'static [u8])],
    want: Option<&'static str>,
}

fn run(case: &Case) -> Decision {
    let h = Harness::load(AUTHZ_WASM, case.config.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", case.what));
    let mut req = h.request(case.method, case.path, case.headers).unwrap();
    if let Some(san) = case.peer {
        req.set_property("connection.mtls", &[1]);
        req.set_property("connection.uri_san_peer_certificate", san);
    }
    for (path, value) in case.props {
        req.set_property(path, value);
    }
    req.request_headers(true).unwrap()
}

fn marker(reply: &LocalReply) -> Option<&str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k == "x-meshwork-authz")
        .map(|(_, v)| v.as_str())
}

#[test]
fn harness_decisions() {
    const PORT_9080: &[u8] = &9080i64.to_le_bytes();
    let base = Case {
        what: "productpage may GET /api/* with the token",
        config: allow_productpage(),
        method: "GET",
        path: "/api/v1?x=1",
        headers: &[("host", "reviews"), ("x-token", "a")],
        peer: Some(PRODUCTPAGE),
        props: &[],
        want: None,
    };
    let no_allow = Some("denied: no ALLOW policy matched");
    let cases = [
        base.clone(),
        Case {
            what: "another principal",
            peer: Some(RATINGS),
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "a SAN without mTLS is no principal",
            props: &[("connection.uri_san_peer_certificate", PRODUCTPAGE)],
            peer: None,
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "another method",
            method: "POST",
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "another path",
            path: "/admin",
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "a dot-segment path is normalized",
            path: "/api/../admin",
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "without the token",
            headers: &[("host", "reviews")],
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "a DENY on a path",
            config: deny_admin_allow_reads(),
            path: "/admin/users",
            want: Some("denied by deny-admin"),
            ..base.clone()
        },
        Case {
            what: "DENY sees through ..",
            config: deny_admin_allow_reads(),
            path: "/public/%2e%2e/admin",
            want: Some("denied by deny-admin"),
            ..base.clone()
        },
        Case {
            what: "an ALLOW on methods",
            config: deny_admin_allow_reads(),
            method: "HEAD",
            path: "/x",
            ..base.clone()
        },
        Case {
            what: "a method no ALLOW names",
            config: deny_admin_allow_reads(),
            method: "DELETE",
            path: "/x",
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "STRICT with mTLS",
            config: mtls_mode("STRICT"),
            ..base.clone()
        },
        Case {
            what: "STRICT without mTLS",
            config: mtls_mode("STRICT"),
            peer: None,
            want: Some("denied by peerAuthentication: mTLS is required"),
            ..base.clone()
        },
        Case {
            what: "PERMISSIVE without mTLS",
            config: mtls_mode("PERMISSIVE"),
            peer: None,
            ..base.clone()
        },
        Case {
            what: "ipBlocks match source.address",
            config: json!({"policies": [{"name": "lan", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8", "2001:db8::/32"]}}]}]}]}),
            props: &[("source.address", b"[2001:db8::7]:5555")],
            ..base.clone()
        },
        Case {
            what: "ipBlocks, another address",
            config: json!({"policies": [{"name": "lan", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}]}),
            props: &[("source.address", b"192.168.1.1:5555")],
            want: no_allow,
            ..base.clone()
        },
        Case {
            what: "ports match destination.port",
            config: json!({"policies": [{"name": "p", "action": "DENY", "rules": [{"to": [{"operation": {"ports": ["9080"]}}]}]}]}),
            props: &[("destination.port", PORT_9080)],
            want: Some("denied by p"),
            ..base.clone()
        },
        Case {
            what: "hosts without regard to case",
            config: json!({"policies": [{"name": "h", "action": "DENY", "rules": [{"to": [{"operation": {"hosts": ["REVIEWS"]}}]}]}]}),
            want: Some("denied by h"),
            ..base.clone()
        },
        Case {
            what: "namespaces from the principal",
            config: json!({"policies": [{"name": "ns", "action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["default"]}}]}]}]}),
            peer: Some(b"spiffe://cluster.local/ns/prod/sa/productpage"),
            want: Some("denied by ns"),
            ..base.clone()
        },
        Case {
            what: "AUDIT changes nothing",
            config: json!({"policies": [{"name": "watch", "action": "AUDIT", "rules": [{}]}]}),
            ..base.clone()
        },
    ];
    for case in &cases {
        match (run(case), case.want) {
            (Decision::Continue, None) => {}
            (Decision::LocalReply(r), Some(want)) => {
                assert_eq!(r.status, 403, "{}", case.what);
                assert_eq!(marker(&r), Some(want), "{}", case.what);
                let body = String::from_utf8_lossy(&r.body);
                assert!(
                    body.starts_with("RBAC: access denied"),
                    "{}: {body}",
                    case.what
                );
                let mtls = want.contains("mTLS");
                assert_eq!(
                    body.contains("mTLS is required"),
                    mtls,
                    "{}: {body}",
                    case.what
                );
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.what),
        }
    }
}

#[test]
fn grpc_clients_get_permission_denied() {
    let h = Harness::load(AUTHZ_WASM, deny_admin_allow_reads()).unwrap();
    let mut req = h
        .request(
            "POST",
            "/pkg.Svc/Method",
            &[("content-type", "application/grpc")],
        )
        .unwrap();
    match req.request_headers(false).unwrap() {
        Decision::LocalReply(r) => {
            assert_eq!(
                (r.status, r.grpc_status),
                (200, Some(7)),
                "PERMISSION_DENIED"
            );
            assert_eq!(marker(&r), Some("denied: no ALLOW policy matched"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_configs_refuse_to_start_naming_the_field() {
    let cases: [(Value, &[&str]); 7] = [
        (
            json!({"policies": [{"name": "p", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]}]}]}),
            &[
                "invalid pluginConfig at `policies[0].rules[0].from[0].source.ipBlocks[0]`: `10.0.0.0/33` is not an IP \
               address or a CIDR block",
            ],
        ),
        (
            json!({"policies": [{"name": "p", "action": "REJECT"}]}),
            &["invalid pluginConfig at `policies[0].action`: unknown action `REJECT`"],
        ),
        (
            json!({"policies": [{"name": "p", "action": "CUSTOM"}]}),
            &[
                "invalid pluginConfig at `policies[0].action`: CUSTOM (an external authorization provider) is not \
               supported",
            ],
        ),
        (
            json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"method": ["GET"]}}]}]}]}),
            &[
                "invalid pluginConfig at `policies[0].rules[0].to[0].operation.method` (line 1, column ",
                "unknown field `method`",
            ],
        ),
        (
            json!({"peerAuthentication": {"mtls": {"mode": "STRICT"}}, "selector": {}}),
            &[
                "invalid pluginConfig at `selector` (line 1, column ",
                "unknown field `selector`",
            ],
        ),
        (
            json!({"policies": [{"name": "p", "rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]}]}),
            &[
                "invalid pluginConfig at `policies[0].rules[0].when[0].key`: `request.auth.claims[iss]` comes from request \
               authentication (JWT)",
            ],
        ),
        (
            json!({"peerAuthentication": {"mtls": {"mode": "strict"}}}),
            &["invalid pluginConfig at `peerAuthentication.mtls.mode`: unknown mode `strict`"],
        ),
    ];
    for (config, wants) in cases {
        let err = Harness::load(AUTHZ_WASM, config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} loaded"));
        let text = err.to_string();
        assert!(text.contains("on_configure failed"), "{config}:\n{text}");
        for want in wants {
            assert!(text.contains(want), "{config}:\n{text}\nwant: {want}");
        }
    }
}

/// A proxy with one route to an upstream that answers `METHOD PATH`, with `plugins` on the listener. Metrics are
/// process-wide by plugin name, so each test names its plugin apart.
async fn proxy_with(plugins: &[String]) -> TestProxy {
    let up = upstream(|req| async move {
        http::Response::new(full(format!("{} {}", req.method(), req.uri())))
    })
    .await;
    TestProxy::start(&proxy_yaml_with(
        &[&filters(plugins)],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ))
}

/// Status, the marker header and the body of `METHOD path` through the proxy, over HTTP/1.1 or HTTP/2.
async fn call(
    p: &TestProxy,
    method: &str,
    path: &str,
    h2: bool,
) -> (StatusCode, Option<String>, String) {
    // HTTP/2 carries the host in the URI (`:authority`), HTTP/1.1 in the Host header.
    let builder = if h2 {
        Request::builder().uri(format!("http://reviews{path}"))
    } else {
        Request::builder().uri(path).header("host", "reviews")
    };
    let req = builder.method(method).body(empty()).unwrap();
    let resp = if h2 {
        h2_conn(p.addr).await.send_request(req).await.unwrap()
    } else {
        send(p.addr, req).await.unwrap()
    };
    let status = resp.status();
    let marker = resp
        .headers()
        .get("x-meshwork-authz")
        .map(|v| v.to_str().unwrap().to_string());
    (status, marker, body_string(resp).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_on_a_path_and_allow_on_methods_end_to_end() {
    let mut p = proxy_with(&[policy("authz-paths", "authz", deny_admin_allow_reads())]).await;
    let denied_by = |name: &str| Some(format!("denied by {name}"));
    let no_allow = Some("denied: no ALLOW policy matched".to_string());
    let cases: &[(&str, &str, bool, StatusCode, Option<String>, &str)] = &[
        ("GET", "/api/v1", false, StatusCode::OK, None, "GET /api/v1"),
        ("GET", "/api/v1", true, StatusCode::OK, None, "GET /api/v1"),
        ("HEAD", "/api/v1", false, StatusCode::OK, None, ""),
        (
            "GET",
            "/admin",
            false,
            StatusCode::FORBIDDEN,
            denied_by("deny-admin"),
            "RBAC: access denied",
        ),
        (
            "GET",
            "/admin/users?page=2",
            true,
            StatusCode::FORBIDDEN,
            denied_by("deny-admin"),
            "RBAC: access denied",
        ),
        (
            "GET",
            "/api/../admin/users",
            false,
            StatusCode::FORBIDDEN,
            denied_by("deny-admin"),
            "RBAC: access denied",
        ),
        (
            "POST",
            "/api/v1",
            false,
            StatusCode::FORBIDDEN,
            no_allow.clone(),
            "RBAC: access denied",
        ),
        (
            "DELETE",
            "/admin",
            true,
            StatusCode::FORBIDDEN,
            denied_by("deny-admin"),
            "RBAC: access denied",
        ),
    ];
    for (method, path, h2, status, marker, body) in cases {
        let got = call(&p, method, path, *h2).await;
        assert_eq!(
            got,
            (*status, marker.clone(), body.to_string()),
            "{method} {path} h2={h2}"
        );
    }
    assert_eq!(p.stat("wasm.authz-paths.authz_allowed").await, 3);
    assert_eq!(p.stat("wasm.authz-paths.authz_denied").await, 5);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mtls_is_refused_on_plain_text_and_permissive_passes() {
    let mut strict = proxy_with(&[policy("authz", "authz", mtls_mode("STRICT"))]).await;
    for h2 in [false, true] {
        let (status, marker, body) = call(&strict, "GET", "/api/v1", h2).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            marker.as_deref(),
            Some("denied by peerAuthentication: mTLS is required")
        );
        assert_eq!(
            body,
            "RBAC: access denied: mTLS is required (peerAuthentication mode STRICT)"
        );
    }
    strict.shutdown().await;

    let mut permissive = proxy_with(&[policy("authz", "authz", mtls_mode("PERMISSIVE"))]).await;
    for h2 in [false, true] {
        let got = call(&permissive, "GET", "/api/v1", h2).await;
        assert_eq!(got, (StatusCode::OK, None, "GET /api/v1".to_string()));
    }
    permissive.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_marks_and_counts_without_changing_the_decision() {
    let authz = policy(
        "authz-audit",
        "authz",
        json!({"policies": [
            {"name": "audit-admin", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
            {"name": "audit-all", "action": "AUDIT", "rules": [{}]},
            {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]}),
    );
    // The probe echoes the property the audit sets, so a later filter (or an access log) can read it.
    let reader = probe(
        "probe",
        json!({"response_properties": [{"path": "meshwork.authz.audit", "type": "string"}]}),
        "",
    );
    let mut p = proxy_with(&[authz, reader]).await;
    let resp = send(
        p.addr,
        Request::get("/api/v1")
            .header("host", "reviews")
            .body(empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-prop-meshwork-authz-audit"], "audit-all");
    let (status, marker, _) = call(&p, "GET", "/admin", false).await;
    assert_eq!(
        (status, marker.as_deref()),
        (StatusCode::FORBIDDEN, Some("denied by deny-admin"))
    );
    assert_eq!(
        p.stat("wasm.authz-audit.authz_audit").await,
        2,
        "both requests were audited"
    );
    assert_eq!(p.stat("wasm.authz-audit.authz_allowed").await, 1);
    assert_eq!(p.stat("wasm.authz-audit.authz_denied").await, 1);
    p.shutdown().await;
}
