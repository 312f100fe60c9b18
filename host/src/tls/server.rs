//! The downstream side: Istio's PeerAuthentication modes on one port.
//!
//! - STRICT: the first byte must open a TLS handshake (0x16); anything else is refused before HTTP is read, with a
//!   log line naming the client and the listener. The client must then present a certificate the listener trusts.
//! - PERMISSIVE: TLS and plaintext share the port; the first byte decides (a TLS record never starts like an HTTP
//!   request). TLS clients are held to the same rules as under STRICT.
//! - DISABLE: plaintext only.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{
    TlsInfo, provider,
    secrets::{SecretCell, Secrets},
    verify::PeerVerifier,
};
use crate::config::tls::ListenerTls;
pub use crate::config::tls::TlsMode;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// A listener's TLS.
#[derive(Debug)]
pub struct ServerTls {
    /// The mode.
    pub mode: TlsMode,
    config: Arc<ServerConfig>,
    cert: Arc<SecretCell>,
    warned: LogEvery,
}

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Detected {
    /// Serve it as plaintext HTTP.
    Plain,
    /// Run the TLS handshake.
    Tls,
}

/// Serves a listener's certificate from its secret at each handshake.
#[derive(Debug)]
struct CellCert(Arc<SecretCell>);

impl ResolvesServerCert for CellCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let cert = self.0.certificate();
        if cert.is_none() {
            tracing::warn!(
                secret = self.0.name(),
                "TLS handshake refused: the listener's certificate has not been delivered yet"
            );
        }
        cert.map(|c| c.key.clone())
    }
}

impl ServerTls {
    /// Builds the listener's TLS from `def`, reading its secrets from `secrets` at each handshake.
    pub fn build(def: &ListenerTls, secrets: &Secrets) -> Result<Self, String> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| e.to_string())?;
        let builder = match &def.trusted_ca {
            Some(ca) => builder.with_client_cert_verifier(Arc::new(PeerVerifier::new(
                secrets.cell(ca),
                def.trust_domains.clone(),
            ))),
            None => builder.with_no_client_auth(),
        };
        let cert = secrets.cell(&def.certificate);
        let mut config = builder.with_cert_resolver(Arc::new(CellCert(cert.clone())));
        config.alpn_protocols = def.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        // Session tickets let a returning client skip the full handshake (and its signatures).
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
        Ok(ServerTls {
            mode: def.mode,
            config: Arc::new(config),
            cert,
            warned: LogEvery::default(),
        })
    }

    /// Decides by the first byte whether `stream` is TLS, refusing plaintext under STRICT. `None`: the client sent
    /// nothing within `timeout` or was refused (logged).
    pub async fn detect(
        &self,
        stream: &TcpStream,
        timeout: Option<Duration>,
        listener: &str,
    ) -> Option<Detected> {
        if self.mode == TlsMode::Disable {
            return Some(Detected::Plain);
        }
        let mut first = [0u8; 1];
        let peeked = match timeout {
            Some(t) => tokio::time::timeout(t, stream.peek(&mut first))
                .await
                .ok()?,
            None => stream.peek(&mut first).await,
        };
        let detected = match peeked {
            Ok(1) if first[0] == TLS_HANDSHAKE => Detected::Tls,
            Ok(1) => Detected::Plain,
            _ => return None,
        };
        if detected == Detected::Plain && self.mode == TlsMode::Strict {
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string());
            self.warned.log(|| {
                tracing::warn!(
                    listener,
                    client = %peer,
                    "plaintext connection refused: this listener requires mutual TLS (PeerAuthentication STRICT); the client must connect through its sidecar or present a mesh certificate"
                )
            });
            return None;
        }
        Some(detected)
    }

    /// Runs the handshake on `io` within `timeout`.
    pub async fn handshake<I>(
        &self,
        io: I,
        timeout: Option<Duration>,
        listener: &str,
        client: std::net::SocketAddr,
    ) -> Option<(TlsStream<I>, TlsInfo)>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let accepting = TlsAcceptor::from(self.config.clone()).accept(io);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, accepting)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "handshake timed out",
                    ))
                }),
            None => accepting.await,
        };
        match result {
            Ok(tls) => {
                let (_, conn) = tls.get_ref();
                let local = self.cert.certificate();
                let info = TlsInfo::from_connection(conn, conn.server_name(), local.as_deref());
                Some((tls, info))
            }
            Err(e) => {
                self.warned.log(|| {
                    tracing::warn!(listener, client = %client, error = %e, "TLS handshake failed; the connection is closed")
                });
                None
            }
        }
    }
}

/// Logs at most once per interval at the caller's level, and at debug otherwise: a port scan or a misconfigured
/// client must not flood the log, but the first refusal must be seen.
#[derive(Debug, Default)]
struct LogEvery {
    last: AtomicU64,
}

impl LogEvery {
    const INTERVAL_S: u64 = 10;

    fn log(&self, warn: impl FnOnce()) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now >= last + Self::INTERVAL_S)
            && self
                .last
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn();
        } else {
            tracing::debug!(
                "TLS refusal (repeated; logged at most every {}s)",
                Self::INTERVAL_S
            );
        }
    }
}
