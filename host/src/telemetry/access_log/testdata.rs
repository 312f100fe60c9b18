//! A sample finished request for the formats' table tests.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};

use super::entry::{Decision, Entry, Verdict};

fn pairs(list: &[(&'static str, &'static str)]) -> &'static [(HeaderName, HeaderValue)] {
    let v: Vec<_> = list
        .iter()
        .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
        .collect();
    Vec::leak(v)
}

/// A GET that the upstream answered with 200 in 7 ms.
pub fn sample() -> Entry<'static> {
    Entry {
        start_time: UNIX_EPOCH + Duration::new(1_709_211_845, 123_456_789),
        duration: Duration::from_micros(7_900),
        upstream_time: Some(Duration::from_micros(5_100)),
        method: "GET",
        path: "/a?b=1",
        authority: Some("svc.local"),
        scheme: "http",
        protocol: "HTTP/1.1",
        request_id: "0c2b4d84-7f3a-4b8e-9a1d-2f6e5c4b3a21",
        response_code: 200,
        flags: None,
        details: Some("via_upstream"),
        termination: None,
        transport_failure: None,
        bytes_received: 12,
        bytes_sent: 345,
        upstream_host: Some("10.0.0.3:80".parse().expect("addr")),
        cluster: Some("backend"),
        route: Some("r1"),
        remote: "10.0.0.1:5555".parse().expect("addr"),
        local: Some("10.0.0.2:8080".parse().expect("addr")),
        peer_uri_san: None,
        local_uri_san: None,
        sni: None,
        source_principal: Some("spiffe://cluster.local/ns/default/sa/client"),
        destination_principal: Some("spiffe://cluster.local/ns/default/sa/svc"),
        grpc_status: None,
        trace: None,
        request_headers: pairs(&[
            ("user-agent", "curl/8.0 \"quoted\""),
            ("x-forwarded-for", "192.0.2.1"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]),
        response_headers: pairs(&[("content-type", "text/plain")]),
        decisions: &[],
    }
}

/// An enforced local reply and a shadow verdict.
pub fn decisions() -> Vec<Decision> {
    vec![
        Decision {
            plugin: "authz".into(),
            verdict: Verdict::LocalReply(403),
        },
        Decision {
            plugin: "probe".into(),
            verdict: Verdict::ShadowMutation,
        },
    ]
}
