//! Certificates and trust bundles by name, shared by every worker of a proxy.
//!
//! Listeners and clusters hold a [`SecretCell`] per name they use, created empty when first named, so a config can
//! refer to a secret before SDS or the certificate agent delivers it. Writers (the static config, SDS, the agent) swap
//! a cell's value atomically; a handshake reads it once, lock-free. Values are parsed and checked before they are
//! installed, so a bad PEM never replaces a good certificate.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use arc_swap::ArcSwapOption;
use meshwork_pki::CertInfo;
use rustls::{
    RootCertStore,
    client::WebPkiServerVerifier,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};

use super::{TlsError, provider};

/// A certificate with its key, ready for rustls.
#[derive(Debug)]
pub struct CertEntry {
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// What the leaf says.
    pub info: CertInfo,
    /// The PEM it came from (to skip installing the same value twice).
    source: (Vec<u8>, Vec<u8>),
}

/// A trust bundle, with the verifiers built on it.
pub struct TrustEntry {
    /// The CAs.
    pub roots: Arc<RootCertStore>,
    /// Verifies client certificates (mandatory) against the CAs.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// Verifies server certificates, including the server name, against the CAs.
    pub server_verifier: Arc<WebPkiServerVerifier>,
    /// Subjects of the CAs, for `/config_dump`.
    pub subjects: Vec<String>,
    source: Vec<u8>,
}

impl std::fmt::Debug for TrustEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustEntry")
            .field("subjects", &self.subjects)
            .finish_non_exhaustive()
    }
}

/// One named secret: a certificate, a trust bundle, or both; either may be absent until delivered.
#[derive(Debug)]
pub struct SecretCell {
    name: Arc<str>,
    cert: ArcSwapOption<CertEntry>,
    trust: ArcSwapOption<TrustEntry>,
}

impl SecretCell {
    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current certificate.
    pub fn certificate(&self) -> Option<Arc<CertEntry>> {
        self.cert.load_full()
    }

    /// The current trust bundle.
    pub fn trust(&self) -> Option<Arc<TrustEntry>> {
        self.trust.load_full()
    }
}

/// All secrets of one proxy.
#[derive(Debug, Default)]
pub struct Secrets {
    cells: Mutex<HashMap<Arc<str>, Arc<SecretCell>>>,
}

impl Secrets {
    /// The cell for `name`, created empty if nobody named it before.
    pub fn cell(&self, name: &str) -> Arc<SecretCell> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cells.get(name) {
            return c.clone();
        }
        let cell = Arc::new(SecretCell {
            name: name.into(),
            cert: ArcSwapOption::empty(),
            trust: ArcSwapOption::empty(),
        });
        cells.insert(cell.name.clone(), cell.clone());
        cell
    }

    /// Installs a certificate prepared by [`prepare_certificate`]. Returns whether it differs from the current one.
    pub fn install_certificate(&self, name: &str, entry: CertEntry) -> bool {
        let cell = self.cell(name);
        if cell
            .cert
            .load()
            .as_ref()
            .is_some_and(|c| c.source == entry.source)
        {
            return false;
        }
        tracing::info!(
            secret = name,
            identity = entry.info.uri_sans.first().map_or("", String::as_str),
            serial = %entry.info.serial,
            expires_in_s = entry.info.not_after.duration_since(SystemTime::now()).map_or(0, |d| d.as_secs()),
            "certificate installed"
        );
        cell.cert.store(Some(Arc::new(entry)));
        true
    }

    /// Installs a trust bundle prepared by [`prepare_trust`]. Returns whether it differs from the current one.
    pub fn install_trust(&self, name: &str, entry: TrustEntry) -> bool {
        let cell = self.cell(name);
        if cell
            .trust
            .load()
            .as_ref()
            .is_some_and(|t| t.source == entry.source)
        {
            return false;
        }
        tracing::info!(
            secret = name,
            cas = entry.subjects.len(),
            "trust bundle installed"
        );
        cell.trust.store(Some(Arc::new(entry)));
        true
    }

    /// Parses and installs a certificate chain and key.
    pub fn set_certificate(
        &self,
        name: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<bool, TlsError> {
        Ok(self.install_certificate(name, prepare_certificate(name, chain_pem, key_pem)?))
    }

    /// Parses and installs a trust bundle.
    pub fn set_trusted_ca(&self, name: &str, pem: &[u8]) -> Result<bool, TlsError> {
        Ok(self.install_trust(name, prepare_trust(name, pem)?))
    }

    /// `(name, expiry)` of every secret holding a certificate, by name.
    pub fn expiries(&self) -> Vec<(Arc<str>, SystemTime)> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = cells
            .values()
            .filter_map(|c| Some((c.name.clone(), c.cert.load().as_ref()?.info.not_after)))
            .collect();
        out.sort();
        out
    }

    /// Every secret, without key material, for `/config_dump`.
    pub fn dump(&self) -> serde_json::Value {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<_> = cells.keys().cloned().collect();
        names.sort();
        let list: Vec<serde_json::Value> = names
            .iter()
            .map(|n| {
                let c = &cells[n];
                let unix = |t: SystemTime| {
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                };
                let cert = c.cert.load().as_ref().map(|e| {
                    serde_json::json!({
                        "uri_sans": e.info.uri_sans,
                        "dns_sans": e.info.dns_sans,
                        "subject": e.info.subject,
                        "serial": e.info.serial,
                        "not_after_unix": unix(e.info.not_after),
                        "chain_length": e.key.cert.len(),
                    })
                });
                let trust = c.trust.load().as_ref().map(|t| t.subjects.clone());
                serde_json::json!({ "name": &**n, "certificate": cert, "trusted_ca": trust })
            })
            .collect();
        serde_json::Value::Array(list)
    }
}

/// Checks a certificate chain and its key and makes them ready for rustls, without installing them.
pub fn prepare_certificate(
    name: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertEntry, TlsError> {
    let pki = |source| TlsError::Secret {
        name: name.into(),
        source,
    };
    let chain = meshwork_pki::certs_from_pem(chain_pem).map_err(pki)?;
    let info = meshwork_pki::inspect(&chain[0]).map_err(pki)?;
    let key = meshwork_pki::key_from_pem(key_pem).map_err(pki)?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Key {
        name: name.into(),
        reason: e.to_string(),
    })?;
    Ok(CertEntry {
        key: Arc::new(key),
        info,
        source: (chain_pem.to_vec(), key_pem.to_vec()),
    })
}

/// Checks a trust bundle and builds its verifiers, without installing it.
pub fn prepare_trust(name: &str, pem: &[u8]) -> Result<TrustEntry, TlsError> {
    let certs = meshwork_pki::certs_from_pem(pem).map_err(|source| TlsError::Secret {
        name: name.into(),
        source,
    })?;
    let trust_err = |reason: String| TlsError::Trust {
        name: name.into(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let mut subjects = Vec::new();
    for c in certs {
        let subject = meshwork_pki::inspect(&c).map_or_else(|e| e.to_string(), |i| i.subject);
        roots
            .add(c)
            .map_err(|e| trust_err(format!("{subject}: {e}")))?;
        subjects.push(subject);
    }
    let roots = Arc::new(roots);
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| trust_err(e.to_string()))?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| trust_err(e.to_string()))?;
    Ok(TrustEntry {
        roots,
        client_verifier,
        server_verifier,
        subjects,
        source: pem.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use meshwork_pki::{Authority, SpiffeId};

    use super::*;

    #[test]
    fn cells_exist_before_values_and_bad_values_never_replace_good_ones() {
        let secrets = Secrets::default();
        let cell = secrets.cell("default");
        assert!(cell.certificate().is_none());
        let ca = Authority::generate_root("td", Duration::from_secs(3600)).expect("ca");
        let (chain, key) = ca
            .issue(&SpiffeId::new("td", "ns", "a"), Duration::from_secs(600))
            .expect("leaf");
        let chain = chain.concat();
        assert!(
            secrets
                .set_certificate("default", chain.as_bytes(), key.as_bytes())
                .expect("good")
        );
        assert!(
            !secrets
                .set_certificate("default", chain.as_bytes(), key.as_bytes())
                .expect("same")
        );
        let installed = cell.certificate().expect("installed");
        assert_eq!(
            installed.info.uri_sans,
            vec!["spiffe://td/ns/ns/sa/a".to_string()]
        );

        let (_, other_key) = ca
            .issue(&SpiffeId::new("td", "ns", "b"), Duration::from_secs(600))
            .expect("leaf");
        let cases: &[(&[u8], &[u8], &str)] = &[
            (b"nope", key.as_bytes(), "no certificate found"),
            (chain.as_bytes(), b"nope", "no private key found"),
            (chain.as_bytes(), other_key.as_bytes(), "cannot be used"),
        ];
        for (c, k, want) in cases {
            let err = secrets
                .set_certificate("default", c, k)
                .expect_err(want)
                .to_string();
            assert!(
                err.contains(want) && err.contains("secret `default`"),
                "{err}"
            );
        }
        assert!(Arc::ptr_eq(&installed, &cell.certificate().expect("kept")));

        assert!(
            secrets
                .set_trusted_ca("ROOTCA", ca.cert_pem().as_bytes())
                .expect("bundle")
        );
        let err = secrets
            .set_trusted_ca("ROOTCA", b"")
            .expect_err("empty")
            .to_string();
        assert!(err.contains("no certificate found"), "{err}");
        assert_eq!(
            secrets.cell("ROOTCA").trust().expect("kept").subjects.len(),
            1
        );
        let dump = secrets.dump().to_string();
        assert!(
            dump.contains("spiffe://td/ns/ns/sa/a") && !dump.contains("PRIVATE"),
            "{dump}"
        );
    }
}
