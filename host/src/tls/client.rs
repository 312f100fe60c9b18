//! The upstream side: TLS (usually mutual) from a cluster to its endpoints, offering the pool's protocol by ALPN and
//! accepting only the identities the destination runs as.

use std::{hash::Hash, net::SocketAddr, sync::Arc};

use rustls::{
    ClientConfig, SignatureScheme,
    client::ResolvesClientCert,
    pki_types::{DnsName, ServerName},
    sign::CertifiedKey,
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{
    TlsInfo, provider,
    secrets::{SecretCell, Secrets},
    verify::EndpointVerifier,
};
use crate::{config::tls::ClusterTls, upstream::Proto};

/// A cluster's TLS: one rustls config per protocol (they differ only in ALPN), shared by every worker so that
/// session resumption works across them.
#[derive(Debug)]
pub struct ClientTls {
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    sni: Option<DnsName<'static>>,
    cert: Option<Arc<SecretCell>>,
    key: u64,
}

/// Presents a cluster's client certificate from its secret at each handshake.
#[derive(Debug)]
struct CellCert(Arc<SecretCell>);

impl ResolvesClientCert for CellCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.certificate().map(|c| c.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientTls {
    /// Builds a cluster's TLS from `def`, reading its secrets from `secrets` at each handshake. The error names the
    /// field at fault.
    pub fn build(def: &ClusterTls, secrets: &Secrets) -> Result<Self, (&'static str, String)> {
        let sni = match &def.sni {
            Some(s) => Some(
                DnsName::try_from(s.clone())
                    .map_err(|_| ("sni", format!("`{s}` is not a valid DNS name for SNI")))?,
            ),
            None if def.subject_alt_names.is_empty() => {
                return Err((
                    "subject_alt_names",
                    "give the identities the endpoints run as (subject_alt_names), or an `sni` their certificates are valid for".into(),
                ));
            }
            None => None,
        };
        let verifier = Arc::new(EndpointVerifier::new(
            secrets.cell(&def.trusted_ca),
            def.subject_alt_names.clone(),
        ));
        let cert = def.certificate.as_deref().map(|c| secrets.cell(c));
        let config = |alpn: &[u8]| -> Result<Arc<ClientConfig>, (&'static str, String)> {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .map_err(|e| ("tls", e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone());
            let mut config = match &cert {
                Some(c) => builder.with_client_cert_resolver(Arc::new(CellCert(c.clone()))),
                None => builder.with_no_client_auth(),
            };
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(ClientTls {
            h1: config(b"http/1.1")?,
            h2: config(b"h2")?,
            sni,
            cert,
            key: hash_of(def),
        })
    }

    /// Identifies the settings (not the certificates): pools of clusters with equal TLS settings are shared.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Runs the handshake on a connected `tcp` to `addr`, offering `proto` by ALPN.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        proto: Proto,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = TlsConnector::from(match proto {
            Proto::H1 => self.h1.clone(),
            Proto::H2 => self.h2.clone(),
        });
        // Without SNI the server name is the address, which rustls does not send.
        let name = match &self.sni {
            Some(n) => ServerName::DnsName(n.clone()),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        connector.connect(name, tcp).await
    }

    /// What a handshake made by [`ClientTls::connect`] established (parses the peer certificate: for logs and
    /// diagnostics, not for every connection).
    pub fn describe(&self, tls: &TlsStream<TcpStream>) -> TlsInfo {
        let local = self.cert.as_ref().and_then(|c| c.certificate());
        TlsInfo::from_connection(
            tls.get_ref().1,
            self.sni.as_ref().map(|n| n.as_ref()),
            local.as_deref(),
        )
    }
}

fn hash_of(def: &ClusterTls) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    def.hash(&mut h);
    h.finish()
}
