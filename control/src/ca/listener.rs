//! The TLS port: accepts connections, completes TLS handshakes concurrently (a slow or silent client delays no one)
//! and serves gRPC on the established streams — `CreateCertificate` and ADS, as istiod does on 15012. The client
//! certificate, if any, reaches the handlers through tonic's `peer_certs`.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::ServerConfig;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    body::Body,
    codegen::{Service, http},
};

use crate::modules::Modules;

use super::{
    Ca, CaError, CaOptions,
    service::WithCa,
    tls::{ServerCert, server_config, server_names},
};

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Established connections waiting for the gRPC server to take them.
const READY_QUEUE: usize = 64;
/// The pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a refused connection is drained before it is dropped (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);

/// The CA and its TLS port, ready to serve: loaded and with a server certificate before any thread or socket
/// exists, so that configuration errors stop the start.
pub struct SecurePort {
    ca: Arc<Ca>,
    address: SocketAddr,
    cert: Arc<ServerCert>,
    cert_not_after: SystemTime,
    config: Arc<ServerConfig>,
    modules: Option<Arc<Modules>>,
}

impl SecurePort {
    /// Loads the CA per `options` and issues the port's certificate.
    pub fn new(options: &CaOptions) -> Result<SecurePort, CaError> {
        let ca = Arc::new(Ca::load(options)?);
        let names = server_names(options.address, &options.hostnames);
        let (cert, cert_not_after) = ServerCert::issue(&ca, names, options.server_cert_ttl)?;
        let cert = Arc::new(cert);
        let config = server_config(&ca, cert.clone())?;
        Ok(SecurePort {
            ca,
            address: options.address,
            cert,
            cert_not_after,
            config,
            modules: None,
        })
    }

    /// Serves the modules `modules` resolved too (see [`crate::modules::serve`]).
    pub fn with_modules(mut self, modules: Arc<Modules>) -> Self {
        self.modules = Some(modules);
        self
    }

    /// The CA.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The address to listen on (as configured; port 0 picks one when bound).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves `CreateCertificate` and `other` (ADS) on `listener` and keeps the server certificate renewed, until
    /// `stop` turns true; then stops accepting and returns once the open connections are closed (ADS streams end
    /// on the same signal).
    pub async fn serve<S>(
        self,
        listener: TcpListener,
        other: S,
        stop: watch::Receiver<bool>,
    ) -> Result<(), tonic::transport::Error>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let renewal =
            self.cert
                .clone()
                .keep_renewed(self.ca.clone(), self.cert_not_after, stop.clone());
        tokio::spawn(renewal);
        let (ready, incoming) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept(
            listener,
            TlsAcceptor::from(self.config),
            ready,
            stop.clone(),
        ));
        let mut stop = stop;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // Streams end on the same signal as on the plaintext port, so that shutdown completes.
        let ads = crate::ads::ServerConfig::default();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(ads.keepalive_interval))
            .http2_keepalive_timeout(Some(ads.keepalive_timeout))
            .serve_with_incoming_shutdown(
                WithCa::new(self.ca, self.modules, other),
                ReceiverStream::new(incoming),
                shutdown,
            )
            .await
    }
}

/// Accepts TCP connections and hands each, once its handshake completes, to `ready`.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "the CA port cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible())
                .await
            {
                Ok(Ok(tls)) => drop(ready.send(Ok(tls)).await),
                Ok(Err((e, tcp))) => {
                    handshake_failed(peer, &e);
                    linger(tcp).await;
                }
                Err(_) => tracing::debug!(%peer, "TLS handshake on the CA port timed out"),
            }
        });
    }
}

/// Closes a refused connection so that the client reads the TLS alert saying why: with TLS 1.3 the client has
/// finished its handshake and sent its first request when the server refuses its certificate, and closing a socket
/// with unread data resets it, which discards the alert on the client's side. So: send FIN after the alert, read
/// and discard what the client sends until it closes (or [`LINGER`] passes), then drop.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Logs a failed handshake: a refused client certificate at warn (an operator needs to see it), anything else
/// (port scans, plaintext clients) at debug.
fn handshake_failed(peer: SocketAddr, error: &std::io::Error) {
    let refused_certificate = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if refused_certificate {
        tracing::warn!(%peer, error = %error, "refused a client certificate on the CA port");
    } else {
        tracing::debug!(%peer, error = %error, "TLS handshake on the CA port failed");
    }
}
