//! The filter test harness (`meshwork_host::wasm::harness`): a compiled filter in the real engine, driven phase by
//! phase with no proxy and no network; callouts answered and the clock moved by the test.

use std::time::Duration;

use meshwork_host::wasm::harness::{Decision, Harness, HarnessError};
use meshwork_tests::PROBE_WASM;
use serde_json::json;

#[test]
fn decisions_headers_and_local_replies() {
    let h = Harness::load(
        PROBE_WASM,
        json!({"deny": {"header": "x-evil", "status": 403, "body": "no"}, "add_request_headers": {"x-added": "1"},
               "remove_request_headers": ["x-secret"], "add_response_headers": {"x-resp": "r"}}),
    )
    .unwrap();
    let mut req = h
        .request("GET", "/p", &[("host", "svc"), ("x-secret", "s")])
        .unwrap();
    assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
    assert_eq!(req.request_header("x-added").as_deref(), Some("1"));
    assert_eq!(req.request_header("x-secret"), None);
    assert_eq!(req.request_header(":authority").as_deref(), Some("svc"));
    assert_eq!(
        req.response_headers(200, &[("content-type", "text/plain")], true)
            .unwrap(),
        Decision::Continue
    );
    assert_eq!(req.response_header("x-resp").as_deref(), Some("r"));
    drop(req);

    let mut evil = h.request("GET", "/", &[("x-evil", "1")]).unwrap();
    match evil.request_headers(true).unwrap() {
        Decision::LocalReply(r) => {
            assert_eq!((r.status, &r.body[..]), (403, &b"no"[..]));
            assert!(r.headers.contains(&("x-denied-by".into(), "probe".into())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn callouts_are_captured_and_answered_by_the_test() {
    let h = Harness::load(
        PROBE_WASM,
        json!({"callout": {"cluster": "auth", "path": "/check", "deny_status": 401}}),
    )
    .unwrap();
    let mut ok = h.request("GET", "/", &[]).unwrap();
    assert_eq!(ok.request_headers(true).unwrap(), Decision::Pause);
    let calls = h.callouts();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "auth");
    assert!(
        calls[0]
            .headers
            .contains(&(":path".into(), "/check".into())),
        "{:?}",
        calls[0].headers
    );
    h.respond(calls[0].token, Some((200, &[], b"token-7")))
        .unwrap();
    assert!(!ok.is_paused(false), "the answer resumed the request");
    assert_eq!(
        ok.request_header("x-callout-body").as_deref(),
        Some("token-7")
    );

    let mut denied = h.request("GET", "/", &[]).unwrap();
    assert_eq!(denied.request_headers(true).unwrap(), Decision::Pause);
    let token = h.callouts()[0].token;
    h.respond(token, None).unwrap();
    let reply = denied.local_reply().expect("a failed callout is denied");
    assert_eq!(reply.status, 401);
}

#[test]
fn the_clock_moves_only_when_the_test_moves_it() {
    let h = Harness::load(PROBE_WASM, json!({"tick_ms": 100})).unwrap();
    assert_eq!(h.advance(Duration::from_millis(350)).unwrap(), 3);
    assert_eq!(
        h.advance(Duration::from_millis(50)).unwrap(),
        1,
        "the 4th tick is due at 400 ms"
    );
    let mut req = h.request("GET", "/", &[]).unwrap();
    req.request_headers(true).unwrap();
    req.response_headers(200, &[], true).unwrap();
    assert_eq!(req.response_header("x-ticks").as_deref(), Some("4"));
}

#[test]
fn bodies_properties_and_traps() {
    let h = Harness::load(
        PROBE_WASM,
        json!({"rewrite_request_body": {"from": "cat", "to": "dog"},
               "properties": [{"path": "connection.mtls", "type": "bool"}, {"path": "connection.uri_san_peer_certificate", "type": "string"}]}),
    )
    .unwrap();
    let mut req = h.request("POST", "/", &[("content-length", "11")]).unwrap();
    req.set_property("connection.mtls", &[1]);
    req.set_property(
        "connection.uri_san_peer_certificate",
        b"spiffe://mesh/ns/a/sa/b",
    );
    assert_eq!(req.request_headers(false).unwrap(), Decision::Continue);
    assert_eq!(
        req.request_header("content-length"),
        None,
        "the rewrite drops the length"
    );
    assert_eq!(
        req.request_body(b"a cat ", false).unwrap(),
        Decision::Pause,
        "buffering"
    );
    assert_eq!(req.request_body(b"sat", true).unwrap(), Decision::Continue);
    assert_eq!(&req.forwarded_body(false)[..], b"a dog sat");
    req.response_headers(200, &[], true).unwrap();
    assert_eq!(
        req.response_header("x-prop-connection-mtls").as_deref(),
        Some("true")
    );
    assert_eq!(
        req.response_header("x-prop-connection-uri_san_peer_certificate")
            .as_deref(),
        Some("spiffe://mesh/ns/a/sa/b")
    );
    drop(req);

    let trapping = Harness::load(PROBE_WASM, json!({"fail_in": "on_request_headers"})).unwrap();
    let mut req = trapping.request("GET", "/", &[]).unwrap();
    match req.request_headers(true) {
        Err(HarnessError::Vm(e)) => assert!(
            e.to_string().contains("probe: trap in on_request_headers"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(trapping.failure().is_some());
}

/// A filter written with meshwork-sdk (tests/filters/sdk-demo).
const SDK_DEMO_WASM: &str = env!("SDK_DEMO_WASM");

#[test]
fn a_filter_written_with_the_sdk_reports_bad_config_and_uses_result_accessors() {
    // A bad pluginConfig: the SDK's error, with its position, is what the host reports.
    let err = Harness::load(SDK_DEMO_WASM, json!({"deny_header": "x-no", "stauts": 401}))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("on_configure failed: the plugin returned false; the plugin logged: invalid pluginConfig at `stauts` (line 1")
            && text.contains("unknown field `stauts`"),
        "{text}"
    );

    let h = Harness::load(SDK_DEMO_WASM, json!({"deny_header": "x-no", "status": 401})).unwrap();
    let mut denied = h.request("GET", "/", &[("x-no", "1")]).unwrap();
    match denied.request_headers(true).unwrap() {
        Decision::LocalReply(r) => assert_eq!(r.status, 401),
        other => panic!("{other:?}"),
    }
    let mut req = h.request("GET", "/", &[]).unwrap();
    req.set_property("connection.mtls", &[1]);
    assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
    assert!(
        req.request_header("x-sdk-plugin")
            .unwrap()
            .starts_with("harness-")
    );
    assert_eq!(
        req.request_header("x-sdk-mtls").as_deref(),
        Some("Some(true)")
    );
    assert_eq!(
        req.request_header("x-sdk-ext").as_deref(),
        Some("`meshwork.test.echo` is not supported by this host"),
        "a missing extension is an error the filter handles, not a trap"
    );
}

#[test]
fn declared_callbacks_are_the_only_ones_called() {
    let config = |declared: Option<&str>| {
        let mut c = json!({"add_request_headers": {"x-added": "1"}, "add_response_headers": {"x-resp": "r"},
                           "rewrite_request_body": {"from": "cat", "to": "dog"}});
        if let Some(d) = declared {
            c["callbacks"] = json!(d);
        }
        c
    };
    // (declaration, request header added, body rewritten, response header added)
    let cases = [
        (None, true, true, true),
        (Some("request_headers"), true, false, false),
        (Some("request_body, response_headers"), false, true, true),
        (Some("log done"), false, false, false),
        (Some(""), false, false, false),
    ];
    for (declared, request, body, response) in cases {
        let h = Harness::load(PROBE_WASM, config(declared)).unwrap();
        let mut req = h.request("POST", "/", &[]).unwrap();
        assert_eq!(req.request_headers(false).unwrap(), Decision::Continue);
        assert_eq!(
            req.request_header("x-added").is_some(),
            request,
            "{declared:?}"
        );
        assert_eq!(
            req.request_body(b"a cat", true).unwrap(),
            Decision::Continue
        );
        let want: &[u8] = if body { b"a dog" } else { b"a cat" };
        assert_eq!(&req.forwarded_body(false)[..], want, "{declared:?}");
        req.response_headers(200, &[], true).unwrap();
        assert_eq!(
            req.response_header("x-resp").is_some(),
            response,
            "{declared:?}"
        );
    }
}

#[test]
fn callbacks_are_declared_while_starting_and_by_name() {
    match Harness::load(PROBE_WASM, json!({"callbacks": "request_headers on_log"})) {
        Err(e) => assert!(
            e.to_string()
                .contains("meshwork.callbacks \"request_headers on_log\": BadArgument"),
            "{e}"
        ),
        Ok(_) => panic!("an unknown callback name is refused"),
    }
    // During a request the set cannot change: every stream of a VM sees the same callbacks.
    let h = Harness::load(
        PROBE_WASM,
        json!({"foreign": {"name": "meshwork.callbacks", "args": "request_headers"}}),
    )
    .unwrap();
    let mut req = h.request("GET", "/", &[]).unwrap();
    req.request_headers(true).unwrap();
    req.response_headers(200, &[], true).unwrap();
    assert_eq!(
        req.response_header("x-foreign").as_deref(),
        Some("err:BadArgument")
    );
}
