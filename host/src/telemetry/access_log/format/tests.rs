use super::*;
use crate::telemetry::access_log::testdata::{decisions, sample};

fn render(format: &str, e: &Entry<'_>) -> String {
    let mut out = String::new();
    Format::compile(format).expect(format).render(e, &mut out);
    out
}

#[test]
fn commands_table() {
    let cases: &[(&str, &str)] = &[
        ("%START_TIME%", "2024-02-29T13:04:05.123Z"),
        (
            "%START_TIME(%Y-%m-%dT%H:%M:%S%z)%",
            "2024-02-29T13:04:05+0000",
        ),
        ("%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION%", "7 7 5"),
        (
            "%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(:SCHEME)%",
            "GET /a?b=1 svc.local http",
        ),
        ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/a?b=1"),
        ("%REQ(USER-AGENT):4%", "curl"),
        ("%REQ(X-NONE)%|%REQ(X-NONE?X-FORWARDED-FOR)%", "-|192.0.2.1"),
        ("%REQ(x-request-id):8%", "0c2b4d84"),
        (
            "%RESP(CONTENT-TYPE)% %RESP(X-NONE)% %RESP(:PATH)%",
            "text/plain - -",
        ),
        ("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "5"),
        (
            "%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%",
            "HTTP/1.1 200 - via_upstream",
        ),
        (
            "%CONNECTION_TERMINATION_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%",
            "- -",
        ),
        ("%BYTES_RECEIVED% %BYTES_SENT%", "12 345"),
        (
            "%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %ROUTE_NAME%",
            "10.0.0.3:80 backend - r1",
        ),
        (
            "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            "10.0.0.1:5555 10.0.0.1",
        ),
        (
            "%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
            "10.0.0.2:8080 10.0.0.2",
        ),
        (
            "%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_LOCAL_URI_SAN% %REQUESTED_SERVER_NAME%",
            "- - -",
        ),
        (
            "%TRACE_ID% %GRPC_STATUS_NUMBER%",
            "4bf92f3577b34da6a3ce929d0e0e4736 -",
        ),
        (
            "%SOURCE_PRINCIPAL%",
            "spiffe://cluster.local/ns/default/sa/client",
        ),
        (
            "%DESTINATION_PRINCIPAL%:%FILTER_DECISIONS%",
            "spiffe://cluster.local/ns/default/sa/svc:",
        ),
        ("100%% of %REQ(:METHOD)%\n", "100% of GET\n"),
        ("no commands", "no commands"),
        ("", ""),
    ];
    for (format, want) in cases {
        assert_eq!(render(format, &sample()), *want, "{format}");
    }
}

#[test]
fn flags_decisions_and_b3() {
    let ds = decisions();
    let b3 = [(
        X_B3_TRACEID,
        http::HeaderValue::from_static("80f198ee56343ba8"),
    )];
    let mut e = sample();
    e.flags = Some("UF");
    e.response_code = 503;
    e.decisions = &ds;
    e.request_headers = &b3;
    e.upstream_time = None;
    assert_eq!(
        render(
            "%RESPONSE_CODE% %RESPONSE_FLAGS% %FILTER_DECISIONS% %TRACE_ID% %RESPONSE_DURATION%",
            &e
        ),
        "503 UF authz:local_reply:403,probe:shadow_mutation 80f198ee56343ba8 -"
    );
    assert_eq!(render("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", &e), "-");
    e.trace = Some("0af7651916cd43dd8448eb211c80319c");
    assert_eq!(render("%TRACE_ID%", &e), "0af7651916cd43dd8448eb211c80319c");
}

#[test]
fn istio_text_format() {
    let line = render(ISTIO_TEXT, &sample());
    assert_eq!(
        line,
        "[2024-02-29T13:04:05.123Z] \"GET /a?b=1 HTTP/1.1\" 200 - via_upstream - \"-\" 12 345 7 5 \"192.0.2.1\" \
         \"curl/8.0 \"quoted\"\" \"0c2b4d84-7f3a-4b8e-9a1d-2f6e5c4b3a21\" \"svc.local\" \"10.0.0.3:80\" backend - \
         10.0.0.2:8080 10.0.0.1:5555 - r1\n"
    );
}

#[test]
fn bad_formats_table() {
    let cases: &[(&str, &str)] = &[
        ("%NOPE%", "unknown command `%NOPE%`"),
        ("%DURATION", "not closed"),
        ("%REQ%", "needs a header"),
        ("%REQ(:METHOD%", "no closing `)`"),
        ("%REQ(bad name)%", "not a header name"),
        ("%DURATION(x)%", "takes no argument"),
        ("%DURATION:x%", "expected a length"),
        ("50% off", "not followed by a command"),
        ("%START_TIME(%Q)%", "`%Q`"),
        ("%start_time%", "not followed by a command"),
    ];
    for (format, want) in cases {
        let e = Format::compile(format).expect_err(format);
        assert!(e.contains(want), "{format}: {e}");
    }
}

#[test]
fn headers_a_format_needs() {
    let f = Format::compile("%REQ(USER-AGENT)% %REQ(:PATH)% %REQ(X-A?X-B)% %TRACE_ID% %RESP(X-C)% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%")
        .expect("valid");
    let req: Vec<String> = f
        .commands()
        .flat_map(Command::request_headers)
        .map(|h| h.to_string())
        .collect();
    let resp: Vec<String> = f
        .commands()
        .flat_map(Command::response_headers)
        .map(|h| h.to_string())
        .collect();
    assert_eq!(
        req,
        ["user-agent", "x-a", "x-b", "traceparent", "x-b3-traceid"]
    );
    assert_eq!(resp, ["x-c", "x-envoy-upstream-service-time"]);
}

#[test]
fn truncation_keeps_characters_whole() {
    let mut out = String::from("x");
    text(&Value::Str("héllo".into()), Some(2), &mut out);
    assert_eq!(out, "xhé");
    let mut out = String::new();
    text(&Value::Num(12345), Some(3), &mut out);
    assert_eq!(out, "123");
}
