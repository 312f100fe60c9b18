//! The certificate agent's CA: the mesh CA's `CreateCertificate` (Istio's API) over TLS, authenticated by a bootstrap
//! token the first time and by the certificate held for renewals (falling back to the token if that is refused,
//! e.g. after the certificate lapsed while the proxy could not reach the CA).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use meshwork_pki::api::{CaAuth, CaEndpoint, fetch_module, request_certificate};

use super::agent::{CertificateSource, Current, Fetching, Signing};

/// The mesh CA, as a [`CertificateSource`].
#[derive(Clone, Debug)]
pub struct MeshCa {
    endpoint: CaEndpoint,
    token: Option<String>,
    held: Arc<Mutex<Option<Current>>>,
}

impl MeshCa {
    /// The CA at `endpoint`; `token` authenticates the first request.
    pub fn new(endpoint: CaEndpoint, token: Option<String>) -> Self {
        MeshCa {
            endpoint,
            token,
            held: Arc::default(),
        }
    }
}

impl CertificateSource for MeshCa {
    fn held(&self, current: &Current) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(current.clone());
    }

    /// With the certificate held (the token if there is none yet, or if the certificate is refused).
    fn fetch_module(&self, sha256: String, max_bytes: usize) -> Fetching {
        let endpoint = self.endpoint.clone();
        let token = self.token.clone();
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Box::pin(async move {
            let by_cert = held.map(|c| CaAuth::Certificate {
                chain_pem: c.chain_pem,
                key_pem: c.key_pem,
            });
            let by_token = token.map(CaAuth::Token);
            let mut last = None;
            for auth in [by_cert, by_token].into_iter().flatten() {
                match fetch_module(&endpoint, &auth, &sha256, max_bytes).await {
                    Ok(bytes) => return Ok(bytes),
                    Err(e) if e.retryable() => return Err((e.to_string(), true)),
                    Err(e) => last = Some(e.to_string()),
                }
            }
            Err((
                last.unwrap_or_else(|| {
                    "no credentials for the control plane: give the proxy a bootstrap token (--ca-token-file)".into()
                }),
                false,
            ))
        })
    }

    fn sign(&self, csr_pem: String, ttl: Duration, current: Option<Current>) -> Signing {
        let endpoint = self.endpoint.clone();
        let token = self.token.clone();
        Box::pin(async move {
            if let Some(c) = current {
                let auth = CaAuth::Certificate {
                    chain_pem: c.chain_pem,
                    key_pem: c.key_pem,
                };
                match request_certificate(&endpoint, &auth, &csr_pem, ttl).await {
                    Ok(chain) => return Ok(chain),
                    Err(e) if token.is_none() || e.retryable() => return Err(e.to_string()),
                    Err(e) => {
                        tracing::warn!(error = %e, "renewal with the current certificate refused; trying the bootstrap token");
                    }
                }
            }
            let Some(token) = token else {
                return Err(
                    "no bootstrap token to authenticate to the CA: give one with --ca-token-file (mint it with `meshwork control token --identity ...`)"
                        .into(),
                );
            };
            request_certificate(&endpoint, &CaAuth::Token(token), &csr_pem, ttl)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
