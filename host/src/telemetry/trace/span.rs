//! A finished span: what the worker hands to the exporter (cheap clones out of the record, no formatting), and its
//! OTLP form, built on the exporter's thread.
//!
//! Name: `{authority}/*` as Istio's route decorators name spans (`reviews.default.svc.cluster.local:9080/*`), else
//! the route name, else the path. Attributes follow Envoy's tracer tags with OTel's `url.path` beside them:
//! `component=proxy`, `node_id`, `http.method`, `http.url`, `url.path`, `http.protocol`, `http.status_code`,
//! `response_flags`, `upstream_cluster`, `upstream_address`, `peer.address`, `request_size`, `response_size`,
//! `user_agent`, `guid:x-request-id`, `grpc.status_code`, then the custom tags. A 5xx (or no response at all) sets the
//! span status to ERROR.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderValue, Method, Uri, Version};

use super::{Active, proto};
use crate::telemetry::Record;

/// A span whose request finished.
#[derive(Debug)]
pub struct Finished {
    /// The span's identity and tracer.
    pub active: Active,
    start: SystemTime,
    elapsed: Duration,
    method: Method,
    uri: Uri,
    authority: Option<HeaderValue>,
    version: Version,
    status: u16,
    flags: Option<&'static str>,
    route: Option<Arc<str>>,
    cluster: Option<Arc<str>>,
    upstream: Option<SocketAddr>,
    peer: SocketAddr,
    request_bytes: u64,
    response_bytes: u64,
    grpc_status: Option<u32>,
}

impl Finished {
    /// Takes what the span needs out of `r`, which ran for `elapsed`.
    pub fn new(active: Active, r: &Record, elapsed: Duration) -> Self {
        let s = r.state.borrow();
        Finished {
            active,
            start: r.start_time,
            elapsed,
            method: r.method.clone(),
            uri: r.uri.clone(),
            authority: r.authority.clone(),
            version: r.version,
            status: s.status,
            flags: s.flags,
            route: s.route.clone(),
            cluster: s.cluster.clone(),
            upstream: s.upstream,
            peer: r.conn.peer,
            request_bytes: r.request_bytes.get(),
            response_bytes: r.response_bytes.get(),
            grpc_status: s.grpc_status,
        }
    }

    /// The OTLP span.
    pub fn to_proto(&self) -> proto::Span {
        use proto::KeyValue as Kv;
        let a = &self.active;
        let authority = self.authority.as_ref().and_then(|v| v.to_str().ok());
        let path = self.uri.path();
        let mut attrs = Vec::with_capacity(16 + a.tracer.custom_tags.len());
        attrs.push(Kv::string("component", "proxy"));
        if let Some(n) = &a.tracer.node_id {
            attrs.push(Kv::string("node_id", &**n));
        }
        attrs.push(Kv::string("http.method", self.method.as_str()));
        attrs.push(Kv::string(
            "http.url",
            format!(
                "http://{}{}",
                authority.unwrap_or(""),
                self.uri.path_and_query().map_or("/", |p| p.as_str())
            ),
        ));
        attrs.push(Kv::string("url.path", path));
        attrs.push(Kv::string("http.protocol", format!("{:?}", self.version)));
        attrs.push(Kv::int("http.status_code", i64::from(self.status)));
        attrs.push(Kv::string("response_flags", self.flags.unwrap_or("-")));
        attrs.push(Kv::string(
            "upstream_cluster",
            self.cluster.as_deref().unwrap_or("-"),
        ));
        if let Some(u) = self.upstream {
            attrs.push(Kv::string("upstream_address", u.to_string()));
        }
        attrs.push(Kv::string("peer.address", self.peer.ip().to_string()));
        attrs.push(Kv::int("request_size", clamp(self.request_bytes)));
        attrs.push(Kv::int("response_size", clamp(self.response_bytes)));
        if let Some(ua) = a.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
            attrs.push(Kv::string("user_agent", ua));
        }
        if let Some(id) = a.request_id.as_ref().and_then(|v| v.to_str().ok()) {
            attrs.push(Kv::string("guid:x-request-id", id));
        }
        if let Some(g) = self.grpc_status {
            attrs.push(Kv::int("grpc.status_code", i64::from(g)));
        }
        for (k, v) in a.tracer.custom_tags.iter() {
            attrs.push(Kv::string(k, v));
        }
        for ((k, _, _), v) in a.tracer.header_tags.iter().zip(a.header_tags.iter()) {
            if let Some(v) = v.as_ref().and_then(|v| v.to_str().ok()) {
                attrs.push(Kv::string(k, v));
            }
        }
        let start = nanos(self.start);
        proto::Span {
            trace_id: a.ctx.trace_id.to_vec(),
            span_id: a.ctx.span_id.to_vec(),
            trace_state: a
                .tracestate
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            parent_span_id: a.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: span_name(authority, self.route.as_deref(), path),
            kind: a.tracer.kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(self.elapsed.as_nanos() as u64),
            attributes: attrs,
            status: status(self.status, self.flags),
            flags: 1,
        }
    }
}

/// The span's name: `{authority}/*`, else the route name, else the path.
pub fn span_name(authority: Option<&str>, route: Option<&str>, path: &str) -> String {
    match (authority, route) {
        (Some(a), _) if !a.is_empty() => format!("{a}/*"),
        (_, Some(r)) if !r.is_empty() => r.to_string(),
        _ => path.to_string(),
    }
}

/// ERROR for a 5xx or a request that got no response; otherwise unset.
pub fn status(code: u16, flags: Option<&str>) -> Option<proto::Status> {
    (code >= 500 || code == 0).then(|| proto::Status {
        message: match flags {
            Some(f) => format!("{code} {f}"),
            None => code.to_string(),
        },
        code: proto::STATUS_ERROR,
    })
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        // (authority, route, path) -> name
        let cases: &[(Option<&str>, Option<&str>, &str, &str)] = &[
            (
                Some("reviews.default.svc.cluster.local:9080"),
                Some("r"),
                "/a",
                "reviews.default.svc.cluster.local:9080/*",
            ),
            (Some(""), Some("default"), "/a", "default"),
            (None, None, "/a/b", "/a/b"),
            (None, Some(""), "/", "/"),
        ];
        for (authority, route, path, want) in cases {
            assert_eq!(span_name(*authority, *route, path), *want);
        }
    }

    #[test]
    fn status_table() {
        // (code, flags) -> error message
        let cases: &[(u16, Option<&str>, Option<&str>)] = &[
            (200, None, None),
            (404, Some("NR"), None),
            (499, None, None),
            (500, None, Some("500")),
            (503, Some("UF"), Some("503 UF")),
            (0, Some("DC"), Some("0 DC")),
        ];
        for (code, flags, want) in cases {
            let got = status(*code, *flags);
            assert_eq!(got.as_ref().map(|s| s.message.as_str()), *want, "{code}");
            if let Some(s) = got {
                assert_eq!(s.code, proto::STATUS_ERROR);
            }
        }
    }
}
