//! What one access log line is made of: a borrowed view of a finished request ([`Entry`]), and what the WASM plugins
//! decided about it ([`Decision`]). Formats read only this, so they are pure functions with table tests.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::{HeaderName, HeaderValue};

/// What a plugin did to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// What it did.
    pub verdict: Verdict,
}

/// A plugin's verdict: enforced, or (shadow mode) what it would have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It answered the request itself with this status.
    LocalReply(u16),
    /// Shadow mode: it would have answered with this status.
    ShadowLocalReply(u16),
    /// Shadow mode: it would have paused the stream.
    ShadowPause,
    /// Shadow mode: it would have changed headers or body.
    ShadowMutation,
}

impl Verdict {
    /// The verdict's name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::LocalReply(_) => "local_reply",
            Verdict::ShadowLocalReply(_) => "shadow_local_reply",
            Verdict::ShadowPause => "shadow_pause",
            Verdict::ShadowMutation => "shadow_mutation",
        }
    }

    /// The reply status, for the verdicts that have one.
    pub fn status(self) -> Option<u16> {
        match self {
            Verdict::LocalReply(s) | Verdict::ShadowLocalReply(s) => Some(s),
            Verdict::ShadowPause | Verdict::ShadowMutation => None,
        }
    }
}

/// Appends `d` unless the same decision is already there (a shadow plugin may change a stream in several phases).
pub fn push_decision(list: &mut Vec<Decision>, d: Decision) {
    if !list.contains(&d) {
        list.push(d);
    }
}

/// One finished request, as the access log formats see it.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// When the request headers arrived.
    pub start_time: SystemTime,
    /// From the request headers to the end of the response.
    pub duration: Duration,
    /// From the request headers to the upstream's response headers, when an upstream answered.
    pub upstream_time: Option<Duration>,
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with the query.
    pub path: &'a str,
    /// `:authority` / `Host`.
    pub authority: Option<&'a str>,
    /// `:scheme` as the client used it.
    pub scheme: &'a str,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub protocol: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// The status sent downstream (0: none was sent).
    pub response_code: u16,
    /// Envoy's response flags.
    pub flags: Option<&'a str>,
    /// Envoy's response code details.
    pub details: Option<&'a str>,
    /// Why the connection was closed, when the proxy closed it.
    pub termination: Option<&'a str>,
    /// Why the upstream connection failed.
    pub transport_failure: Option<&'a str>,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// The upstream endpoint.
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster.
    pub cluster: Option<&'a str>,
    /// The matched route.
    pub route: Option<&'a str>,
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the connection arrived on.
    pub local: Option<SocketAddr>,
    /// The client certificate's first URI SAN.
    pub peer_uri_san: Option<&'a str>,
    /// Our certificate's first URI SAN.
    pub local_uri_san: Option<&'a str>,
    /// The TLS server name the client asked for.
    pub sni: Option<&'a str>,
    /// The caller's principal.
    pub source_principal: Option<&'a str>,
    /// The callee's principal.
    pub destination_principal: Option<&'a str>,
    /// The gRPC status.
    pub grpc_status: Option<u32>,
    /// The trace id (hex) of the span this proxy recorded for the request, when tracing sampled it.
    pub trace: Option<&'a str>,
    /// The request headers the formats need, captured when the request arrived.
    pub request_headers: &'a [(HeaderName, HeaderValue)],
    /// The response headers the formats need, captured when the response headers left.
    pub response_headers: &'a [(HeaderName, HeaderValue)],
    /// What the plugins decided.
    pub decisions: &'a [Decision],
}

impl<'a> Entry<'a> {
    /// The first value of captured request header `name`.
    pub fn request_header(&self, name: &HeaderName) -> Option<&'a str> {
        find(self.request_headers, name)
    }

    /// The first value of captured response header `name`.
    pub fn response_header(&self, name: &HeaderName) -> Option<&'a str> {
        find(self.response_headers, name)
    }

    /// The trace id: the recorded span's, else the incoming W3C `traceparent`'s, else B3's `x-b3-traceid`.
    pub fn trace_id(&self) -> Option<&'a str> {
        self.trace.or_else(|| {
            self.request_header(&super::format::TRACEPARENT)
                .and_then(traceparent_trace_id)
                .or_else(|| self.request_header(&super::format::X_B3_TRACEID))
        })
    }
}

fn find<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &HeaderName) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.to_str().ok())
}

/// The trace id of a `traceparent` header (`VERSION-TRACEID-PARENTID-FLAGS`), when it is well formed and not zero.
fn traceparent_trace_id(v: &str) -> Option<&str> {
    let mut parts = v.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            ("00-4bf92f35-00f067aa0ba902b7-01", None),
            ("garbage", None),
        ];
        for (v, want) in cases {
            assert_eq!(traceparent_trace_id(v), *want, "{v}");
        }
    }

    #[test]
    fn decisions_are_kept_once() {
        let d = |v| Decision {
            plugin: "p".into(),
            verdict: v,
        };
        let mut list = Vec::new();
        push_decision(&mut list, d(Verdict::ShadowMutation));
        push_decision(&mut list, d(Verdict::ShadowMutation));
        push_decision(&mut list, d(Verdict::ShadowLocalReply(403)));
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].verdict.status(), Some(403));
        assert_eq!(list[0].verdict.name(), "shadow_mutation");
    }
}
