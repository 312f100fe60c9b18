//! The request as the policies see it, derived from what the host reports (headers and properties) by pure code:
//! the principal only under mTLS and without `spiffe://`, its namespace and service account, the original client
//! address from `x-forwarded-for`, the normalized path, the lower-case host.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use crate::path;

/// What the host reports about a request, as read from it.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    /// The request headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// `connection.mtls`.
    pub mtls: Option<bool>,
    /// `connection.uri_san_peer_certificate`: the peer certificate's URI SAN.
    pub peer_uri_san: Option<String>,
    /// `source.address` (`IP:PORT`).
    pub source_address: Option<String>,
    /// `destination.address` (`IP:PORT`).
    pub destination_address: Option<String>,
    /// `destination.port`.
    pub destination_port: Option<i64>,
}

/// The attributes policies match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Whether the connection is mutual TLS.
    pub mtls: bool,
    /// The peer's identity, `TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT`; only on mTLS connections.
    pub principal: Option<String>,
    /// The peer's IP.
    pub source_ip: Option<IpAddr>,
    /// The original client's IP: the last `x-forwarded-for` hop, else the peer's.
    pub remote_ip: Option<IpAddr>,
    /// The local IP the request arrived on.
    pub destination_ip: Option<IpAddr>,
    /// The local port the request arrived on.
    pub destination_port: Option<u16>,
    /// `:authority`, lower case.
    pub host: Option<String>,
    /// `:method`.
    pub method: Option<String>,
    /// `:path` without its query, normalized.
    pub path: Option<String>,
    /// The request headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The attributes of what the host reported.
    pub fn from_raw(raw: Raw) -> Request {
        let mtls = raw.mtls == Some(true);
        let principal = raw
            .peer_uri_san
            .filter(|san| mtls && !san.is_empty())
            .map(|san| {
                san.strip_prefix("spiffe://")
                    .map(str::to_string)
                    .unwrap_or(san)
            });
        let headers: Vec<(String, String)> = raw
            .headers
            .into_iter()
            .map(|(mut k, v)| {
                // The host's names are lower case already (as Envoy's); this keeps other hosts right.
                k.make_ascii_lowercase();
                (k, v)
            })
            .collect();
        let first = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let source_ip = raw.source_address.as_deref().and_then(parse_ip);
        let forwarded = header_join(&headers, "x-forwarded-for");
        let remote_ip = forwarded
            .and_then(|xff| xff.rsplit(',').next().and_then(|hop| parse_ip(hop.trim())))
            .or(source_ip);
        Request {
            mtls,
            principal,
            source_ip,
            remote_ip,
            destination_ip: raw.destination_address.as_deref().and_then(parse_ip),
            destination_port: raw.destination_port.and_then(|p| u16::try_from(p).ok()),
            host: first(":authority").map(|h| h.to_ascii_lowercase()),
            method: first(":method"),
            path: first(":path").map(|p| path::normalize(&p)),
            headers,
        }
    }

    /// The namespace of the principal (the segment after `ns`).
    pub fn namespace(&self) -> Option<&str> {
        principal_parts(self.principal.as_deref()?).map(|(ns, _)| ns)
    }

    /// `NAMESPACE/SERVICE_ACCOUNT` of the principal.
    pub fn service_account(&self) -> Option<String> {
        let (ns, sa) = principal_parts(self.principal.as_deref()?)?;
        Some(format!("{ns}/{}", sa?))
    }

    /// The values of header `name` (lower case) to match: each element of its comma-separated values, trimmed, and,
    /// when there are several, all of them joined with `,` as Envoy compares them. None when the header is missing.
    pub fn header_values(&self, name: &str) -> Vec<Cow<'_, str>> {
        let mut out: Vec<Cow<'_, str>> = self
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(|e| Cow::Borrowed(e.trim())))
            .collect();
        if out.len() > 1
            && let Some(joined) = header_join(&self.headers, name)
        {
            out.push(Cow::Owned(joined));
        }
        out
    }
}

/// Every value of header `name` joined with `,`, or `None` if it is missing.
fn header_join(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// An IP from `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
}

/// The namespace and, if present, the service account of a principal: the segments after `ns` and after `sa`, in a
/// `TRUST_DOMAIN/ns/NAMESPACE/.../sa/ACCOUNT` identity.
fn principal_parts(principal: &str) -> Option<(&str, Option<&str>)> {
    let segments: Vec<&str> = principal.split('/').collect();
    let ns_at = segments
        .iter()
        .skip(1)
        .position(|s| *s == "ns")
        .map(|i| i + 1)?;
    let ns = segments.get(ns_at + 1).filter(|s| !s.is_empty())?;
    let sa = segments[ns_at + 2..]
        .iter()
        .position(|s| *s == "sa")
        .and_then(|i| segments.get(ns_at + 2 + i + 1))
        .filter(|s| !s.is_empty())
        .copied();
    Some((ns, sa))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]
mod tests {
    use super::*;

    fn raw(headers: &[(&str, &str)]) -> Raw {
        Raw {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Raw::default()
        }
    }

    #[test]
    fn the_principal_needs_mtls_and_loses_its_scheme() {
        let cases: &[(Option<bool>, Option<&str>, Option<&str>)] = &[
            (
                Some(true),
                Some("spiffe://cluster.local/ns/a/sa/b"),
                Some("cluster.local/ns/a/sa/b"),
            ),
            (
                Some(true),
                Some("cluster.local/ns/a/sa/b"),
                Some("cluster.local/ns/a/sa/b"),
            ),
            (Some(false), Some("spiffe://cluster.local/ns/a/sa/b"), None),
            (None, Some("spiffe://cluster.local/ns/a/sa/b"), None),
            (Some(true), None, None),
            (Some(true), Some(""), None),
        ];
        for (mtls, san, want) in cases {
            let r = Request::from_raw(Raw {
                mtls: *mtls,
                peer_uri_san: san.map(str::to_string),
                ..Raw::default()
            });
            assert_eq!(r.principal.as_deref(), *want, "{mtls:?} {san:?}");
            assert_eq!(r.mtls, *mtls == Some(true));
        }
    }

    #[test]
    fn namespace_and_service_account_come_from_the_principal() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "cluster.local/ns/default/sa/productpage",
                Some("default"),
                Some("default/productpage"),
            ),
            ("td/ns/shop/extra/sa/cart", Some("shop"), Some("shop/cart")),
            ("td/ns/shop", Some("shop"), None),
            ("td/ns/shop/sa/", Some("shop"), None),
            ("td/ns//sa/x", None, None),
            ("ns/default/sa/x", None, None),
            ("td/sa/x/ns/y", Some("y"), None),
            ("td/other", None, None),
        ];
        for (principal, ns, sa) in cases {
            let r = Request {
                principal: Some(principal.to_string()),
                ..Request::default()
            };
            assert_eq!(r.namespace(), *ns, "{principal}");
            assert_eq!(r.service_account().as_deref(), *sa, "{principal}");
        }
        assert_eq!(Request::default().namespace(), None);
    }

    #[test]
    fn addresses_ports_and_the_original_client() {
        let cases: &[(&str, Option<&str>, Option<&str>, Option<&str>)] = &[
            // source.address, x-forwarded-for, want source ip, want remote ip
            ("10.0.0.5:4000", None, Some("10.0.0.5"), Some("10.0.0.5")),
            (
                "[2001:db8::5]:4000",
                None,
                Some("2001:db8::5"),
                Some("2001:db8::5"),
            ),
            (
                "10.0.0.5:4000",
                Some("203.0.113.7"),
                Some("10.0.0.5"),
                Some("203.0.113.7"),
            ),
            (
                "10.0.0.5:4000",
                Some("1.1.1.1, 203.0.113.7"),
                Some("10.0.0.5"),
                Some("203.0.113.7"),
            ),
            (
                "10.0.0.5:4000",
                Some("1.1.1.1,2001:db8::9"),
                Some("10.0.0.5"),
                Some("2001:db8::9"),
            ),
            (
                "10.0.0.5:4000",
                Some("unknown"),
                Some("10.0.0.5"),
                Some("10.0.0.5"),
            ),
            ("garbage", None, None, None),
        ];
        for (source, xff, want_source, want_remote) in cases {
            let mut raw = raw(&xff
                .map(|x| vec![("X-Forwarded-For", x)])
                .unwrap_or_default());
            raw.source_address = Some(source.to_string());
            let r = Request::from_raw(raw);
            let ip = |s: &Option<&str>| s.map(|s| s.parse::<IpAddr>().unwrap());
            assert_eq!(r.source_ip, ip(want_source), "{source} {xff:?}");
            assert_eq!(r.remote_ip, ip(want_remote), "{source} {xff:?}");
        }
        let r = Request::from_raw(Raw {
            destination_address: Some("192.0.2.1:8080".into()),
            destination_port: Some(8080),
            ..Raw::default()
        });
        assert_eq!(r.destination_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.destination_port, Some(8080));
        for bad in [-1, 65536] {
            let r = Request::from_raw(Raw {
                destination_port: Some(bad),
                ..Raw::default()
            });
            assert_eq!(r.destination_port, None, "{bad}");
        }
    }

    #[test]
    fn pseudo_headers_and_header_lists() {
        let r = Request::from_raw(raw(&[
            (":authority", "Shop.Example.COM:8080"),
            (":method", "GET"),
            (":path", "/public/../admin?x=1"),
            ("X-Token", "a, b"),
            ("x-token", "c"),
            ("x-one", "solo"),
            ("x-empty", ""),
        ]));
        assert_eq!(r.host.as_deref(), Some("shop.example.com:8080"));
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/admin"));
        assert_eq!(r.header_values("x-token"), ["a", "b", "c", "a, b,c"]);
        assert_eq!(r.header_values("x-one"), ["solo"]);
        assert_eq!(r.header_values("x-empty"), [""]);
        assert!(r.header_values("x-missing").is_empty());
        let bare = Request::from_raw(Raw::default());
        assert_eq!((bare.host, bare.method, bare.path), (None, None, None));
    }
}
