//! TLS of the CA port: the server certificate the CA issues to itself (for `localhost`, `meshwork-control`,
//! `127.0.0.1` and `--ca-hostname` names) and renews at half its lifetime, and the client-certificate check against
//! the trust bundle — optional, so that a proxy without a certificate can still present a bootstrap token.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use meshwork_pki::{CertificateDer, certs_from_pem, inspect, key_from_pem};
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};
use tokio::sync::watch;

use super::{Ca, CaError};

/// The shortest wait between two renewals, so that a CA about to expire does not spin.
const MIN_RENEW_DELAY: Duration = Duration::from_millis(100);
/// How long to wait before retrying after the CA could not issue a usable certificate.
const RETRY_DELAY: Duration = Duration::from_secs(60);

/// rustls' ring provider (no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier accepting client certificates that chain to one of `roots`, and clients without one.
pub fn client_verifier(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<dyn ClientCertVerifier>, CaError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|e| CaError::Invalid {
            what: "trust bundle".into(),
            reason: e.to_string(),
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| CaError::Setup(format!("client certificate verifier: {e}")))
}

/// The names the TLS port's certificate carries: the fixed ones, the listening IP when it is a specific one, and
/// `extra`, without duplicates.
pub fn server_names(address: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "meshwork-control", "127.0.0.1"]
        .map(String::from)
        .to_vec();
    if !address.ip().is_unspecified() {
        names.push(address.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The TLS port's certificate, swapped in place when renewed (new handshakes get the new one).
#[derive(Debug)]
pub struct ServerCert {
    names: Vec<String>,
    ttl: Duration,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Issues the first certificate for `names`, valid for `ttl`.
    pub fn issue(
        ca: &Ca,
        names: Vec<String>,
        ttl: Duration,
    ) -> Result<(ServerCert, SystemTime), CaError> {
        let (key, not_after) = issue(ca, &names, ttl)?;
        Ok((
            ServerCert {
                names,
                ttl,
                current: RwLock::new(key),
            },
            not_after,
        ))
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Renews the certificate at half its remaining lifetime until `stop` turns true.
    pub async fn keep_renewed(
        self: Arc<Self>,
        ca: Arc<Ca>,
        first_not_after: SystemTime,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut delay = renew_delay(SystemTime::now(), first_not_after);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = match issue(&ca, &self.names, self.ttl) {
                Ok((key, not_after)) => {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
                    tracing::debug!(expires_in = ?not_after.duration_since(SystemTime::now()).unwrap_or_default(), "renewed the CA port's certificate");
                    renew_delay(SystemTime::now(), not_after)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot renew the CA port's certificate; retrying in a minute");
                    RETRY_DELAY
                }
            };
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A server certificate and key for `names` from `ca`, and its expiry.
fn issue(
    ca: &Ca,
    names: &[String],
    ttl: Duration,
) -> Result<(Arc<CertifiedKey>, SystemTime), CaError> {
    let setup = |e: String| CaError::Setup(format!("the CA port's certificate: {e}"));
    let (chain, key) = ca
        .authority()
        .issue_server(ca.trust_domain(), names, ttl)
        .map_err(|e| setup(e.to_string()))?;
    let der = certs_from_pem(chain.concat().as_bytes()).map_err(|e| setup(e.to_string()))?;
    let not_after = inspect(&der[0])
        .map_err(|e| setup(e.to_string()))?
        .not_after;
    if not_after <= SystemTime::now() {
        return Err(setup("the signing CA has expired; replace it".into()));
    }
    let key = key_from_pem(key.as_bytes()).map_err(|e| setup(e.to_string()))?;
    let certified =
        CertifiedKey::from_der(der, key, &provider()).map_err(|e| setup(e.to_string()))?;
    Ok((Arc::new(certified), not_after))
}

/// How long to wait before renewing a certificate expiring at `not_after`: half the time left, at least
/// [`MIN_RENEW_DELAY`].
fn renew_delay(now: SystemTime, not_after: SystemTime) -> Duration {
    (not_after.duration_since(now).unwrap_or_default() / 2).max(MIN_RENEW_DELAY)
}

/// The TLS server configuration of the CA port: TLS 1.2 and 1.3, ALPN `h2` (gRPC), the renewing certificate,
/// optional client certificates verified against the trust bundle.
pub fn server_config(ca: &Ca, cert: Arc<ServerCert>) -> Result<Arc<ServerConfig>, CaError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Setup(e.to_string()))?
        .with_client_cert_verifier(ca.client_verifier())
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaOptions;

    #[test]
    fn server_names_table() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let base = ["localhost", "meshwork-control", "127.0.0.1"];
        let cases: Vec<(SocketAddr, Vec<&str>, Vec<&str>)> = vec![
            (a("127.0.0.1:15012"), vec![], base.to_vec()),
            (
                a("0.0.0.0:15012"),
                vec!["istiod.example"],
                vec![
                    "localhost",
                    "meshwork-control",
                    "127.0.0.1",
                    "istiod.example",
                ],
            ),
            (
                a("10.0.0.5:0"),
                vec!["localhost"],
                vec!["localhost", "meshwork-control", "127.0.0.1", "10.0.0.5"],
            ),
            (
                a("[::1]:15012"),
                vec![],
                vec!["localhost", "meshwork-control", "127.0.0.1", "::1"],
            ),
        ];
        for (address, extra, want) in cases {
            let extra: Vec<String> = extra.into_iter().map(String::from).collect();
            assert_eq!(server_names(address, &extra), want, "{address}");
        }
    }

    #[test]
    fn renew_delay_table() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        let cases = [
            (s(24 * 3600), s(12 * 3600)),
            (s(1), Duration::from_millis(500)),
            (Duration::from_millis(10), MIN_RENEW_DELAY),
            (Duration::ZERO, MIN_RENEW_DELAY),
        ];
        for (left, want) in cases {
            assert_eq!(renew_delay(t0, t0 + left), want, "{left:?}");
        }
        assert_eq!(renew_delay(t0 + s(5), t0), MIN_RENEW_DELAY);
    }

    #[tokio::test]
    async fn the_server_certificate_is_renewed_before_it_expires() {
        let ca = Arc::new(Ca::load(&CaOptions::default()).unwrap());
        let names = vec!["localhost".to_owned()];
        let (cert, not_after) = ServerCert::issue(&ca, names, Duration::from_secs(1)).unwrap();
        let cert = Arc::new(cert);
        let first = cert.current();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(cert.clone().keep_renewed(ca.clone(), not_after, stop_rx));
        tokio::time::sleep(Duration::from_millis(700)).await;
        let second = cert.current();
        assert_ne!(
            first.cert[0], second.cert[0],
            "renewed after half the lifetime"
        );
        let info = inspect(&second.cert[0]).unwrap();
        assert_eq!(info.dns_sans, ["localhost"]);
        assert_eq!(
            second.cert.last(),
            ca.trust_bundle().first(),
            "the chain ends with the root"
        );
        stop.send_replace(true);
        task.await.unwrap();
    }
}
