//! Header rules at the proxy boundary: hop-by-hop headers stay on their hop (RFC 9110 §7.6.1).

use http::{HeaderMap, HeaderName, HeaderValue, header};

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers and any header the `Connection` header names. `TE: trailers` is kept (gRPC needs it).
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive so a WebSocket handshake can pass through.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    let upgrade = keep_upgrade
        .then(|| headers.remove(header::UPGRADE))
        .flatten();
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    if let Some(te) = headers.get(header::TE) {
        if te.as_bytes().eq_ignore_ascii_case(b"trailers") {
            // keep: the only TE value allowed end to end
        } else {
            headers.remove(header::TE);
        }
    }
    if let Some(up) = upgrade {
        headers.insert(header::UPGRADE, up);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// `x-forwarded-client-cert`, Envoy's name for the client identity a proxy vouches for.
pub const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Envoy's `SANITIZE_SET`: a client's own `x-forwarded-client-cert` is never trusted; on a mutual-TLS connection the
/// proxy sets it to what the handshake proved (`By=` this proxy's identity, `Hash=` of the peer certificate, `URI=`
/// the peer's SPIFFE ID), so the application behind a sidecar knows who called it.
pub fn forward_client_cert(headers: &mut HeaderMap, tls: Option<&crate::tls::TlsInfo>) {
    match tls.and_then(|t| t.xfcc.clone()) {
        Some(v) => {
            headers.insert(XFCC, v);
        }
        None => {
            headers.remove(XFCC);
        }
    }
}

/// Whether a request asks to switch protocols (`Connection: upgrade` plus an `Upgrade` header).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn strip_table() {
        let cases: &[(&[(&str, &str)], bool, &[&str], &[&str])] = &[
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("x-a", "1"),
                ],
                false,
                &["x-a"],
                &["keep-alive", "connection"],
            ),
            (
                &[
                    ("connection", "x-secret, close"),
                    ("x-secret", "s"),
                    ("x-b", "2"),
                ],
                false,
                &["x-b"],
                &["x-secret"],
            ),
            (
                &[("te", "trailers"), ("transfer-encoding", "chunked")],
                false,
                &["te"],
                &["transfer-encoding"],
            ),
            (&[("te", "gzip")], false, &[], &["te"]),
            (
                &[("connection", "Upgrade"), ("upgrade", "websocket")],
                true,
                &["upgrade", "connection"],
                &[],
            ),
            (
                &[("connection", "Upgrade"), ("upgrade", "websocket")],
                false,
                &[],
                &["upgrade", "connection"],
            ),
            (
                &[
                    ("proxy-authorization", "basic x"),
                    ("authorization", "bearer y"),
                ],
                false,
                &["authorization"],
                &["proxy-authorization"],
            ),
        ];
        for (input, keep, present, absent) in cases {
            let mut h = map(input);
            strip_hop_by_hop(&mut h, *keep);
            for p in *present {
                assert!(h.contains_key(*p), "{input:?}: {p} should stay");
            }
            for a in *absent {
                assert!(!h.contains_key(*a), "{input:?}: {a} should go");
            }
        }
    }

    #[test]
    fn upgrade_detection_table() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "websocket"),
                ],
                true,
            ),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "upgrade")], false),
        ];
        for (input, want) in cases {
            assert_eq!(is_upgrade(&map(input)), *want, "{input:?}");
        }
    }

    #[test]
    fn forwarded_client_cert_is_sanitized_then_set() {
        let spoofed = || {
            let mut h = HeaderMap::new();
            h.insert(
                XFCC,
                HeaderValue::from_static("URI=spiffe://td/ns/x/sa/admin"),
            );
            h
        };
        let mtls = crate::tls::TlsInfo {
            xfcc: Some(HeaderValue::from_static("By=a;Hash=00;URI=b")),
            ..Default::default()
        };
        let server_only = crate::tls::TlsInfo::default();
        let cases: [(Option<&crate::tls::TlsInfo>, Option<&str>); 3] = [
            (None, None),
            (Some(&server_only), None),
            (Some(&mtls), Some("By=a;Hash=00;URI=b")),
        ];
        for (tls, want) in cases {
            let mut h = spoofed();
            forward_client_cert(&mut h, tls);
            assert_eq!(h.get(XFCC).map(|v| v.to_str().unwrap_or("?")), want);
        }
    }
}
