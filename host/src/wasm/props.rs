//! Properties (`proxy_get_property`): Envoy's attribute names with Envoy's typed binary encoding.
//!
//! Strings are raw bytes, integers 8 bytes little-endian, booleans one byte, timestamps and durations i64
//! nanoseconds, maps the serialized pair format. A path is a list of segments: `["request", "headers", "x-id"]`.
//! This is a pure function of the stream, so it is tested by tables.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, header};

use super::{plugin::PluginDef, stream::HttpStream, wire};
use crate::tls::TlsInfo;

/// The value of property `path`, encoded, or `None` if it does not exist (now).
pub fn get(path: &[&[u8]], stream: Option<&HttpStream>, plugin: &PluginDef) -> Option<Vec<u8>> {
    if let Some(s) = stream.filter(|s| !s.properties.is_empty()) {
        let joined = path.join(&0u8);
        if let Some((_, v)) = s.properties.iter().rev().find(|(k, _)| *k == joined) {
            return Some(v.clone());
        }
    }
    let text = |s: &str| Some(s.as_bytes().to_vec());
    match path {
        [b"plugin_name"] => text(&plugin.name),
        [b"plugin_root_id"] => text(&plugin.root_id),
        [b"plugin_vm_id"] => text(""),
        [b"node", b"id"] | [b"node_id"] => text(&node_id()),
        [b"node", b"cluster"] => text(""),
        [b"node", b"metadata"] => map(std::iter::empty()),
        _ => stream.and_then(|s| stream_property(path, s)),
    }
}

fn stream_property(path: &[&[u8]], s: &HttpStream) -> Option<Vec<u8>> {
    let text = |v: &str| Some(v.as_bytes().to_vec());
    let r = &s.request;
    let info = &s.info;
    match path {
        [b"request", b"path"] => text(r.uri.path_and_query().map_or("/", |p| p.as_str())),
        [b"request", b"url_path"] => text(r.uri.path()),
        [b"request", b"query"] => text(r.uri.query().unwrap_or("")),
        [b"request", b"host"] => header(&r.headers, header::HOST.as_str()),
        [b"request", b"scheme"] => text(r.uri.scheme_str().unwrap_or("http")),
        [b"request", b"method"] => text(r.method.as_str()),
        [b"request", b"referer"] => header(&r.headers, "referer"),
        [b"request", b"useragent"] => header(&r.headers, "user-agent"),
        [b"request", b"id"] => header(&r.headers, "x-request-id"),
        [b"request", b"protocol"] => text(protocol(r.version)),
        [b"request", b"time"] => Some(nanos(
            info.start.duration_since(SystemTime::UNIX_EPOCH).ok()?,
        )),
        [b"request", b"duration"] => Some(nanos(info.start.elapsed().unwrap_or_default())),
        [b"request", b"size"] | [b"request", b"total_size"] => Some(int(s.request_bytes as i64)),
        [b"request", b"headers"] => map(pairs(&r.headers)),
        [b"request", b"headers", name] => header(&r.headers, std::str::from_utf8(name).ok()?),
        [b"response", rest @ ..] => response_property(rest, s),
        [b"source", b"address"] => text(&info.source.to_string()),
        [b"source", b"port"] => Some(int(info.source.port() as i64)),
        [b"destination", b"address"] => text(&info.destination?.to_string()),
        [b"destination", b"port"] => Some(int(info.destination?.port() as i64)),
        [b"connection", b"id"] | [b"connection_id"] => {
            Some(info.connection_id.to_le_bytes().to_vec())
        }
        [b"connection", rest @ ..] => connection_property(rest, info.tls.as_deref()),
        [b"source", b"principal"] => text(info.tls.as_deref()?.peer_spiffe_id()?),
        [b"destination", b"principal"] => text(info.tls.as_deref()?.local_uri_sans.first()?),
        [b"upstream", b"address"] => text(&info.upstream?.to_string()),
        [b"upstream", b"port"] => Some(int(info.upstream?.port() as i64)),
        [b"upstream", b"request_attempt_count"] => Some(int(s.attempts as i64)),
        [b"route_name"] | [b"xds", b"route_name"] => text(&info.route),
        [b"cluster_name"] | [b"xds", b"cluster_name"] => text(info.cluster.as_deref()?),
        [b"listener_name"] | [b"xds", b"listener_name"] => text(&info.listener),
        _ => None,
    }
}

/// `connection.*` beyond the id: what the downstream TLS handshake established, with Envoy's attribute names.
fn connection_property(path: &[&[u8]], tls: Option<&TlsInfo>) -> Option<Vec<u8>> {
    let text = |v: &str| Some(v.as_bytes().to_vec());
    let first = |v: &[String]| v.first().and_then(|s| text(s));
    match path {
        [b"mtls"] => Some(vec![u8::from(tls.is_some_and(|t| t.mtls))]),
        [b"tls_version"] => text(tls?.version),
        [b"requested_server_name"] => text(tls?.sni.as_deref()?),
        [b"uri_san_peer_certificate"] => first(&tls?.peer_uri_sans),
        [b"uri_san_local_certificate"] => first(&tls?.local_uri_sans),
        [b"dns_san_peer_certificate"] => first(&tls?.peer_dns_sans),
        [b"subject_peer_certificate"] => text(tls?.peer_subject.as_deref()?),
        [b"subject_local_certificate"] => text(tls?.local_subject.as_deref()?),
        _ => None,
    }
}

fn response_property(path: &[&[u8]], s: &HttpStream) -> Option<Vec<u8>> {
    let resp = s.response.as_ref();
    match path {
        [b"code"] => Some(int(resp?.status.as_u16() as i64)),
        [b"code_details"] => Some(s.code_details.unwrap_or("via_upstream").as_bytes().to_vec()),
        [b"flags"] => Some(int(0)),
        [b"headers"] => map(pairs(&resp?.headers)),
        [b"headers", name] => header(&resp?.headers, std::str::from_utf8(name).ok()?),
        [b"trailers"] => map(pairs(s.response_trailers.as_ref()?)),
        [b"trailers", name] => header(
            s.response_trailers.as_ref()?,
            std::str::from_utf8(name).ok()?,
        ),
        [b"grpc_status"] => {
            let from = |m: &HeaderMap| m.get("grpc-status")?.to_str().ok()?.parse::<i64>().ok();
            let code = s
                .response_trailers
                .as_ref()
                .and_then(from)
                .or_else(|| from(&resp?.headers))?;
            Some(int(code))
        }
        [b"size"] | [b"total_size"] => Some(int(s.response_bytes as i64)),
        _ => None,
    }
}

fn header(m: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut values = m.get_all(name).iter();
    let first = values.next()?;
    let mut out = first.as_bytes().to_vec();
    for v in values {
        out.push(b',');
        out.extend_from_slice(v.as_bytes());
    }
    Some(out)
}

fn pairs(m: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    let list: Vec<(&[u8], &[u8])> = m
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
        .collect();
    list.into_iter()
}

fn map<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    wire::write_map(pairs, &mut out);
    Some(out)
}

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn nanos(d: Duration) -> Vec<u8> {
    int(d.as_nanos() as i64)
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The node id: `MESHWORK_NODE_ID`, else the host name.
fn node_id() -> String {
    std::env::var("MESHWORK_NODE_ID")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Method, StatusCode, Uri};

    use super::*;
    use crate::wasm::stream::{RequestHead, ResponseHead, StreamInfo};

    fn stream() -> HttpStream {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("svc.local"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("user-agent", HeaderValue::from_static("curl/8"));
        let mut s = HttpStream::new(
            RequestHead {
                method: Method::POST,
                uri: Uri::from_static("/api/v1?x=1"),
                version: http::Version::HTTP_2,
                headers,
            },
            StreamInfo {
                source: "10.0.0.7:5555".parse().expect("addr"),
                destination: Some("10.0.0.1:80".parse().expect("addr")),
                connection_id: 42,
                listener: "inbound".into(),
                route: "api".into(),
                cluster: Some("backend".into()),
                start: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
                upstream: None,
                tls: None,
            },
        );
        s.response = Some(ResponseHead {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
        });
        s
    }

    #[test]
    fn stream_properties_table() {
        let s = stream();
        let str_ = |v: &str| Some(v.as_bytes().to_vec());
        let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("request.path", str_("/api/v1?x=1")),
            ("request.url_path", str_("/api/v1")),
            ("request.query", str_("x=1")),
            ("request.host", str_("svc.local")),
            ("request.method", str_("POST")),
            ("request.protocol", str_("HTTP/2")),
            ("request.useragent", str_("curl/8")),
            ("request.id", None),
            (
                "request.time",
                Some(1_000_000_000i64.to_le_bytes().to_vec()),
            ),
            ("request.headers.x-multi", str_("a,b")),
            ("response.code", Some(404i64.to_le_bytes().to_vec())),
            ("response.trailers", None),
            ("source.address", str_("10.0.0.7:5555")),
            ("source.port", Some(5555i64.to_le_bytes().to_vec())),
            ("destination.port", Some(80i64.to_le_bytes().to_vec())),
            ("connection.id", Some(42u64.to_le_bytes().to_vec())),
            ("connection.mtls", Some(vec![0])),
            ("connection.uri_san_peer_certificate", None),
            ("upstream.address", None),
            (
                "upstream.request_attempt_count",
                Some(1i64.to_le_bytes().to_vec()),
            ),
            ("route_name", str_("api")),
            ("cluster_name", str_("backend")),
            ("xds.cluster_name", str_("backend")),
            ("nothing.here", None),
        ];
        for (path, want) in cases {
            let segs: Vec<&[u8]> = path.splitn(3, '.').map(str::as_bytes).collect();
            assert_eq!(stream_property(&segs, &s), want, "{path}");
        }
    }

    #[test]
    fn tls_properties_table() {
        let mut s = stream();
        s.info.tls = Some(std::sync::Arc::new(TlsInfo {
            mtls: true,
            peer_uri_sans: vec!["spiffe://td/ns/default/sa/productpage".into()],
            peer_subject: Some("O=td".into()),
            local_uri_sans: vec!["spiffe://td/ns/default/sa/reviews".into()],
            local_subject: Some("O=td".into()),
            sni: Some("outbound_.9080_._.reviews.default.svc.cluster.local".into()),
            version: "TLSv1.3",
            ..TlsInfo::default()
        }));
        let str_ = |v: &str| Some(v.as_bytes().to_vec());
        let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("connection.mtls", Some(vec![1])),
            ("connection.tls_version", str_("TLSv1.3")),
            (
                "connection.uri_san_peer_certificate",
                str_("spiffe://td/ns/default/sa/productpage"),
            ),
            (
                "connection.uri_san_local_certificate",
                str_("spiffe://td/ns/default/sa/reviews"),
            ),
            ("connection.dns_san_peer_certificate", None),
            ("connection.subject_peer_certificate", str_("O=td")),
            (
                "connection.requested_server_name",
                str_("outbound_.9080_._.reviews.default.svc.cluster.local"),
            ),
            (
                "source.principal",
                str_("spiffe://td/ns/default/sa/productpage"),
            ),
            (
                "destination.principal",
                str_("spiffe://td/ns/default/sa/reviews"),
            ),
        ];
        for (path, want) in cases {
            let segs: Vec<&[u8]> = path.splitn(3, '.').map(str::as_bytes).collect();
            assert_eq!(stream_property(&segs, &s), want, "{path}");
        }
        // Plaintext: no mTLS, no identity.
        let plain = stream();
        assert_eq!(
            stream_property(&[b"connection", b"mtls"], &plain),
            Some(vec![0])
        );
        assert_eq!(stream_property(&[b"source", b"principal"], &plain), None);
    }

    #[test]
    fn header_map_property_is_a_serialized_map() {
        let s = stream();
        let bytes = stream_property(&[b"request", b"headers"], &s).expect("present");
        let pairs = wire::read_map(&bytes).expect("valid map");
        assert!(pairs.contains(&(b"user-agent".as_slice(), b"curl/8".as_slice())));
        assert_eq!(pairs.iter().filter(|(k, _)| *k == b"x-multi").count(), 2);
    }
}
