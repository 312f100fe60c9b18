//! The HTTP client under every registry call: hyper (HTTP/1.1 and HTTP/2 by ALPN) over rustls with ring, trusting the
//! system roots and the caller's extra roots, resolving names with a resolver that never dials link-local or
//! cloud-metadata addresses.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

use crate::{OciError, guard::blocked_ip};

/// The hyper client of a [`crate::Client`].
pub(crate) type Http = Client<HttpsConnector<HttpConnector<SafeResolver>>, Full<Bytes>>;

/// Builds the client: system roots (`rustls-native-certs`) plus `extra_roots`.
pub(crate) fn http_client(extra_roots: &[CertificateDer<'static>]) -> Result<Http, OciError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        added,
        ignored,
        extra = extra_roots.len(),
        "registry client trust roots"
    );
    for root in extra_roots {
        roots.add(root.clone()).map_err(|e| {
            OciError::Options(format!("an extra root is not a usable CA certificate: {e}"))
        })?;
    }
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| OciError::Options(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut tcp = HttpConnector::new_with_resolver(SafeResolver);
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// A resolver that drops link-local and cloud-metadata addresses (a registry name or token realm resolving only to
/// those is refused).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SafeResolver;

impl tower_service::Service<Name> for SafeResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !blocked_ip(a.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{host} resolves only to link-local or cloud-metadata addresses, which are never dialled"
                    ),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}
