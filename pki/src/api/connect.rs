//! The TLS connection to the CA, made here rather than by tonic so that every TLS error is seen: a TLS 1.3 server
//! refuses a client certificate only after the client's handshake has completed, with an alert on the first read,
//! which the HTTP/2 layer would report as a bare "connection closed". [`Recorded`] keeps that error for
//! [`CaClientError`](super::CaClientError) to explain.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

use super::CaClientError;

/// The first TLS error any connection of one call met (shared with the connections it made).
pub(super) type TlsFailure = Arc<Mutex<Option<rustls::Error>>>;

/// The client TLS configuration: the CA's roots, the client certificate if renewing, rustls with ring, ALPN `h2`.
pub(super) fn client_config(
    roots: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, CaClientError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root)
            .map_err(|e| CaClientError::Roots(e.to_string()))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CaClientError::Roots(e.to_string()))?
            .with_root_certificates(store);
    let mut config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            CaClientError::Credentials(format!("the client certificate and key: {e}"))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to the URI's host and port and completes the TLS handshake for `server_name`.
#[derive(Clone)]
pub(super) struct Connector {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub failure: TlsFailure,
}

impl tonic::codegen::Service<Uri> for Connector {
    type Response = TokioIo<Recorded<TlsStream<TcpStream>>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server_name, tcp)
                .await
                .inspect_err(|e| record(&this.failure, e))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(io::Error::other(
                    "HTTP/2 was not negotiated (ALPN h2): the server is not a gRPC server over TLS",
                ));
            }
            Ok(TokioIo::new(Recorded {
                inner: tls,
                failure: this.failure,
            }))
        })
    }
}

/// Keeps the first rustls error among `error`'s.
fn record(failure: &TlsFailure, error: &io::Error) {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return;
    };
    let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| tls.clone());
}

/// A stream that records the TLS errors its reads and writes meet.
pub(super) struct Recorded<T> {
    inner: T,
    failure: TlsFailure,
}

impl<T> Recorded<T> {
    fn seen<R>(&self, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &result {
            record(&self.failure, e);
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.seen(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.seen(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.seen(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.seen(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_tls_error_is_kept() {
        let failure = TlsFailure::default();
        let cases = [
            io::Error::new(io::ErrorKind::ConnectionReset, "reset"),
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateExpired),
            ),
            io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError),
        ];
        for e in &cases {
            record(&failure, e);
        }
        let kept = failure.lock().expect("lock").clone();
        assert_eq!(
            kept,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateExpired
            ))
        );
    }
}
