//! Errors on the request path, classified by where they came from and whether a retry could help, and mapped to the
//! response a user expects in one place ([`ProxyError::status`]).

use std::{net::SocketAddr, sync::Arc};

use http::StatusCode;

/// Which side of the proxy an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client or its request.
    Downstream,
    /// An upstream endpoint or the path to it.
    Upstream,
    /// The proxy's own configuration.
    Config,
}

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No virtual host or route matched.
    #[error(
        "no route matched this request; check the route table with GET /config_dump on the admin port"
    )]
    NoRoute,
    /// The route names a cluster that is missing from the snapshot (cannot happen with a validated config).
    #[error("cluster `{0}` is not configured")]
    UnknownCluster(Arc<str>),
    /// The cluster has no endpoints.
    #[error("no healthy upstream in cluster `{0}`")]
    NoHealthyUpstream(Arc<str>),
    /// The cluster's `max_requests` is reached.
    #[error("upstream overflow: cluster `{0}` already has max_requests in flight")]
    Overflow(Arc<str>),
    /// TCP connect failed (refused, unreachable).
    #[error("upstream connect error: {addr}: {source}")]
    Connect {
        /// Endpoint.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TCP connect took longer than the cluster's `connect_timeout`.
    #[error("upstream connect timeout: {0}")]
    ConnectTimeout(SocketAddr),
    /// The HTTP handshake with the endpoint failed (e.g. HTTP/2 spoken to an HTTP/1-only server).
    #[error("upstream protocol error with {addr}: {source}")]
    Handshake {
        /// Endpoint.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The TLS handshake with the endpoint failed (certificate not trusted, wrong identity, no common protocol).
    #[error(
        "upstream TLS error with {addr}: {source}; check that both sides have certificates from the mesh CA and that the destination runs as an expected identity"
    )]
    Tls {
        /// Endpoint.
        addr: SocketAddr,
        /// rustls' error.
        source: std::io::Error,
    },
    /// The route's `timeout` ran out before the response headers arrived.
    #[error("upstream request timeout")]
    Timeout,
    /// The upstream closed or reset the stream before sending response headers.
    #[error("upstream disconnect or reset before response headers: {0}")]
    Reset(hyper::Error),
    /// The listener was removed by a config change while this connection was open.
    #[error("listener `{0}` was removed by a config change")]
    ListenerGone(Arc<str>),
}

impl ProxyError {
    /// The status code a client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UnknownCluster(_)
            | ProxyError::NoHealthyUpstream(_)
            | ProxyError::Overflow(_)
            | ProxyError::Connect { .. }
            | ProxyError::ConnectTimeout(_)
            | ProxyError::Handshake { .. }
            | ProxyError::Tls { .. }
            | ProxyError::Reset(_)
            | ProxyError::ListenerGone(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Where the error came from.
    pub fn source_kind(&self) -> ErrorSource {
        match self {
            ProxyError::NoRoute => ErrorSource::Downstream,
            ProxyError::UnknownCluster(_) | ProxyError::ListenerGone(_) => ErrorSource::Config,
            _ => ErrorSource::Upstream,
        }
    }

    /// Whether sending the same request again (elsewhere) could succeed. Retries themselves arrive with the retry
    /// policy filter; the host classifies errors now so that policy has the facts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::ConnectTimeout(_)
                | ProxyError::Tls { .. }
                | ProxyError::Overflow(_)
                | ProxyError::Reset(_)
                | ProxyError::NoHealthyUpstream(_)
        )
    }

    /// Envoy-style response flag, for logs and stats.
    pub fn flag(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "NR",
            ProxyError::UnknownCluster(_) => "NC",
            ProxyError::NoHealthyUpstream(_) => "UH",
            ProxyError::Overflow(_) => "UO",
            ProxyError::Connect { .. }
            | ProxyError::ConnectTimeout(_)
            | ProxyError::Handshake { .. }
            | ProxyError::Tls { .. } => "UF",
            ProxyError::Timeout => "UT",
            ProxyError::Reset(_) => "UC",
            ProxyError::ListenerGone(_) => "LR",
        }
    }

    /// Why the proxy answered itself, in Envoy's response-code-details words (the `response.code_details` property).
    pub fn code_details(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "route_not_found",
            ProxyError::UnknownCluster(_) => "cluster_not_found",
            ProxyError::NoHealthyUpstream(_) => "no_healthy_upstream",
            ProxyError::Overflow(_) => "overflow",
            ProxyError::Connect { .. } | ProxyError::ConnectTimeout(_) => {
                "upstream_reset_before_response_started{connection_failure}"
            }
            ProxyError::Handshake { .. } => {
                "upstream_reset_before_response_started{protocol_error}"
            }
            ProxyError::Tls { .. } => {
                "upstream_reset_before_response_started{connection_failure,TLS_error}"
            }
            ProxyError::Timeout => "response_timeout",
            ProxyError::Reset(e) if refused_stream(e) => {
                "upstream_reset_before_response_started{remote_refused_stream_reset}"
            }
            ProxyError::Reset(_) => "upstream_reset_before_response_started{remote_reset}",
            ProxyError::ListenerGone(_) => "listener_removed",
        }
    }

    /// Why the upstream connection failed, for `%UPSTREAM_TRANSPORT_FAILURE_REASON%`; `None` for other errors.
    pub fn transport_failure(&self) -> Option<String> {
        match self {
            ProxyError::Connect { source, .. } => Some(format!("connect: {source}")),
            ProxyError::ConnectTimeout(_) => Some("connect: timed out".into()),
            ProxyError::Tls { source, .. } => Some(format!("TLS: {source}")),
            ProxyError::Handshake { .. } => Some("HTTP handshake failed".into()),
            _ => None,
        }
    }
}

/// Whether an upstream error is an HTTP/2 `REFUSED_STREAM` reset (the endpoint did not process the request, so it is
/// safe to retry).
fn refused_stream(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_stream_table() {
        /// An error caused by another, as hyper wraps h2's.
        #[derive(Debug)]
        struct Caused(h2::Error);
        impl std::fmt::Display for Caused {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "wrapped")
            }
        }
        impl std::error::Error for Caused {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let wrap = |r: h2::Reason| Caused(h2::Error::from(r));
        let cases: Vec<(Box<dyn std::error::Error>, bool)> = vec![
            (Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)), true),
            (Box::new(wrap(h2::Reason::REFUSED_STREAM)), true),
            (Box::new(wrap(h2::Reason::CANCEL)), false),
            (
                Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                false,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(refused_stream(e.as_ref()), want, "{e}");
        }
    }

    #[test]
    fn code_details_table() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let cases: Vec<(ProxyError, &str)> = vec![
            (ProxyError::NoRoute, "route_not_found"),
            (ProxyError::Timeout, "response_timeout"),
            (
                ProxyError::ConnectTimeout(addr),
                "upstream_reset_before_response_started{connection_failure}",
            ),
            (ProxyError::UnknownCluster("c".into()), "cluster_not_found"),
            (
                ProxyError::NoHealthyUpstream("c".into()),
                "no_healthy_upstream",
            ),
            (ProxyError::Overflow("c".into()), "overflow"),
        ];
        for (e, want) in cases {
            assert_eq!(e.code_details(), want, "{e}");
        }
    }

    #[test]
    fn status_and_class_table() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases: Vec<(ProxyError, u16, ErrorSource, bool, &str)> = vec![
            (
                ProxyError::NoRoute,
                404,
                ErrorSource::Downstream,
                false,
                "NR",
            ),
            (ProxyError::Timeout, 504, ErrorSource::Upstream, false, "UT"),
            (
                ProxyError::Connect {
                    addr,
                    source: refused(),
                },
                503,
                ErrorSource::Upstream,
                true,
                "UF",
            ),
            (
                ProxyError::ConnectTimeout(addr),
                503,
                ErrorSource::Upstream,
                true,
                "UF",
            ),
            (
                ProxyError::Overflow("c".into()),
                503,
                ErrorSource::Upstream,
                true,
                "UO",
            ),
            (
                ProxyError::NoHealthyUpstream("c".into()),
                503,
                ErrorSource::Upstream,
                true,
                "UH",
            ),
            (
                ProxyError::UnknownCluster("c".into()),
                503,
                ErrorSource::Config,
                false,
                "NC",
            ),
        ];
        for (e, status, src, retry, flag) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!(e.source_kind(), src, "{e}");
            assert_eq!(e.is_retryable(), retry, "{e}");
            assert_eq!(e.flag(), flag, "{e}");
        }
    }
}
