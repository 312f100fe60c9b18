//! The mesh's security settings the views are built with: the trust domain and the CA's trust bundle.

use crate::{
    ads::Resources,
    translate::{
        Mtls,
        tls::{DEFAULT_TRUST_DOMAIN, ROOT_CA, root_ca},
    },
};

/// The mesh's identity settings, from its certificate authority.
///
/// With a trust bundle, sidecars talk mutual TLS to each other: inbound listeners take TLS as each workload's
/// PeerAuthentication says, clusters to the mesh's workloads verify their SPIFFE IDs, and the bundle is served over
/// SDS as the secret `ROOTCA`. Without one nothing is TLS (every client gets plain text, as before the CA existed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Security {
    /// The SPIFFE trust domain of the mesh's identities (`spiffe://TRUST_DOMAIN/ns/NS/sa/SA`).
    pub trust_domain: String,
    /// The PEM roots peers' certificates must chain to (several while a root rotates); `None`: no mutual TLS.
    pub trust_bundle_pem: Option<String>,
}

impl Default for Security {
    /// Trust domain `cluster.local`, no trust bundle (no mutual TLS).
    fn default() -> Self {
        Security {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            trust_bundle_pem: None,
        }
    }
}

impl Security {
    /// What the translation needs: `None` (plain text) without a trust bundle.
    pub fn mtls(&self) -> Option<Mtls> {
        self.trust_bundle_pem.as_ref().map(|_| Mtls {
            trust_domain: self.trust_domain.clone(),
        })
    }

    /// The secrets every view serves: `ROOTCA` when there is a trust bundle.
    pub(super) fn secrets(&self) -> Resources {
        let mut secrets = Resources::new();
        if let Some(pem) = &self.trust_bundle_pem {
            secrets.insert(ROOT_CA, &root_ca(pem));
        }
        secrets
    }
}
