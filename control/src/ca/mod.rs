//! The mesh CA: the control plane signs the proxies' workload certificates (X.509 SVIDs).
//!
//! - [`Ca`]: the signing authority, the trust bundle, the bootstrap-token key and the lifetime policy, loaded by
//!   [`Ca::load`] from [`CaOptions`] ([`store`] keeps the files: Istio's `ca-cert.pem`, `ca-key.pem`,
//!   `cert-chain.pem`, `root-cert.pem`, and `token-key`);
//! - [`token`]: bootstrap tokens (`mw1....`) binding a SPIFFE ID and an expiry; [`auth`]: which identity a caller
//!   may have; [`ttl`]: how long certificates live; [`bundle`]: the roots workloads trust;
//! - [`service`]: `istio.v1.auth.IstioCertificateService/CreateCertificate` in Istio's wire format;
//! - [`tls`] and [`listener`]: the TLS port serving it beside ADS (istiod's 15012), with a server certificate the
//!   CA issues itself and renews.
//!
//! See docs/security.md for the operator's view.

pub mod auth;
pub mod bundle;
mod duration;
mod error;
pub mod listener;
mod options;
pub mod service;
pub mod store;
pub mod tls;
pub mod token;
mod ttl;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use meshwork_pki::{
    Authority, CertificateDer, KeyAndCsr, certs_from_pem, csr_requested_names, inspect,
};
use rustls::server::danger::ClientCertVerifier;

pub use auth::{Credential, Refusal};
pub use bundle::TrustBundle;
pub use duration::parse_duration;
pub use error::CaError;
pub use meshwork_pki::{PkiError, SpiffeId};
pub use options::{
    CaFiles, CaOptions, DEFAULT_ADDRESS, DEFAULT_TRUST_DOMAIN, ROOT_VALIDITY, default_ca_dir,
};
pub use token::{TokenError, TokenKey};
pub use ttl::TtlPolicy;

/// A certificate the CA issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The chain, leaf first, root last (PEM).
    pub chain: Vec<String>,
    /// The leaf's serial number (hex).
    pub serial: String,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// The mesh CA.
pub struct Ca {
    authority: Authority,
    trust_domain: String,
    bundle: TrustBundle,
    token_key: TokenKey,
    ttl: TtlPolicy,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("roots", &self.bundle.roots().len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads (or generates and persists) the signing CA, the trust bundle and the token key per `options`, then
    /// checks that a certificate it signs verifies against the bundle.
    pub fn load(options: &CaOptions) -> Result<Ca, CaError> {
        options.ttl.validate().map_err(CaError::Options)?;
        SpiffeId::new(&options.trust_domain, "ns", "sa")
            .to_string()
            .parse::<SpiffeId>()
            .map_err(|e| {
                CaError::Options(format!("--trust-domain `{}`: {e}", options.trust_domain))
            })?;
        let (authority, origin) = store::load_authority(options)?;
        let mut extra = Vec::new();
        for path in &options.trust_bundle {
            let text = std::fs::read_to_string(path).map_err(|source| CaError::Read {
                path: path.clone(),
                source,
            })?;
            extra.push((path.display().to_string(), text));
        }
        let bundle =
            TrustBundle::new(authority.root_pem(), &extra).map_err(|reason| CaError::Invalid {
                what: "--trust-bundle".into(),
                reason,
            })?;
        let token_key = store::load_token_key(options.dir.as_deref())?;
        let client_verifier = tls::client_verifier(bundle.roots())?;
        let ca = Ca {
            authority,
            trust_domain: options.trust_domain.clone(),
            bundle,
            token_key,
            ttl: options.ttl,
            client_verifier,
        };
        ca.self_check()?;
        let left = ca
            .authority
            .not_after()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left < ca.ttl.default {
            tracing::warn!(expires_in = ?left, "the signing CA expires within one workload certificate lifetime; certificates are cut to its expiry, replace it");
        }
        tracing::info!(origin, trust_domain = %ca.trust_domain, roots = ca.bundle.roots().len(), "mesh CA ready");
        Ok(ca)
    }

    /// Signs a throw-away SVID and verifies it as a client certificate against the trust bundle: catches a key that
    /// does not belong to its certificate and a chain that does not lead to a trusted root.
    fn self_check(&self) -> Result<(), CaError> {
        let id = SpiffeId::new(&self.trust_domain, "meshwork-system", "ca-self-check");
        let request = KeyAndCsr::generate(&id).map_err(|e| CaError::Setup(e.to_string()))?;
        let chain = self
            .authority
            .sign_csr(&request.csr_pem, &id, Duration::from_secs(60))
            .map_err(|e| CaError::SelfCheck(e.to_string()))?;
        let der = certs_from_pem(chain.concat().as_bytes())
            .map_err(|e| CaError::SelfCheck(e.to_string()))?;
        self.client_verifier
            .verify_client_cert(&der[0], &der[1..], rustls::pki_types::UnixTime::now())
            .map(drop)
            .map_err(|e| CaError::SelfCheck(e.to_string()))
    }

    /// The trust domain whose identities this CA signs.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Every trusted root (PEM, concatenated, deduplicated, the signing root first): what proxies verify peers
    /// with, served as the SDS secret `ROOTCA`.
    pub fn trust_bundle_pem(&self) -> String {
        self.bundle.pem()
    }

    /// The trusted roots (DER), the signing root first.
    pub fn trust_bundle(&self) -> &[CertificateDer<'static>] {
        self.bundle.roots()
    }

    /// The root the signing CA chains to (PEM).
    pub fn root_pem(&self) -> &str {
        self.authority.root_pem()
    }

    /// The signing CA.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The lifetimes granted.
    pub fn ttl(&self) -> TtlPolicy {
        self.ttl
    }

    /// The verifier of client certificates against the trust bundle (what the TLS port uses).
    pub fn client_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.client_verifier.clone()
    }

    /// A bootstrap token granting `id` for `ttl` (for `meshwork up` and `meshwork control token`).
    pub fn mint_token(&self, id: &SpiffeId, ttl: Duration) -> String {
        self.token_key.mint(id, SystemTime::now() + ttl)
    }

    /// Who a caller is (see [`auth::authenticate`]).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        peer_chain: Option<&[CertificateDer<'_>]>,
    ) -> Result<(SpiffeId, Credential), Refusal> {
        auth::authenticate(
            &self.trust_domain,
            &self.token_key,
            authorization,
            peer_chain,
            SystemTime::now(),
        )
    }

    /// Signs `csr_pem` for `id`, which the caller proved, for `requested_secs` within the lifetime policy. The CSR
    /// must ask for no identity or for `id` exactly.
    pub fn sign(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        requested_secs: i64,
    ) -> Result<Issued, Refusal> {
        let ttl = self
            .ttl
            .grant(requested_secs)
            .map_err(Refusal::InvalidArgument)?;
        let names =
            csr_requested_names(csr_pem).map_err(|e| Refusal::InvalidArgument(e.to_string()))?;
        let wanted = id.to_string();
        if let Some(other) = names.iter().find(|n| **n != wanted) {
            return Err(Refusal::PermissionDenied(format!(
                "the CSR asks for `{other}` but the credentials grant `{wanted}`; make the CSR for `{wanted}` only"
            )));
        }
        let chain = self
            .authority
            .sign_csr(csr_pem, id, ttl)
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let leaf = certs_from_pem(chain[0].as_bytes())
            .ok()
            .and_then(|der| inspect(&der[0]).ok())
            .ok_or_else(|| Refusal::Internal("the issued certificate does not parse".into()))?;
        Ok(Issued {
            chain,
            serial: leaf.serial,
            not_after: leaf.not_after,
        })
    }
}

/// A bootstrap token for `id` valid for `ttl`, signed with the token key in `dir` (created if missing): what
/// `meshwork control token` prints for a standalone proxy of the control plane using the same `--ca-dir`.
pub fn mint_token_in(dir: &Path, id: &SpiffeId, ttl: Duration) -> Result<String, CaError> {
    Ok(store::load_token_key(Some(dir))?.mint(id, SystemTime::now() + ttl))
}
