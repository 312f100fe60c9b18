//! A certificate authority that signs workload certificates (SVIDs), and the key and CSR a proxy makes to ask for one.
//!
//! An SVID carries exactly one URI SAN, the SPIFFE ID the CA decided the caller may have, whatever the CSR asked for:
//! a CSR that asks for a different identity is refused rather than silently rewritten, so a misconfigured proxy finds
//! out at once.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::{PkiError, SpiffeId, certs_from_pem, inspect};

/// How far back a new certificate's validity starts, for peers whose clocks run a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// A CA: its certificate, its key, and the certificates above it up to the root.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// Issuers above this CA, nearest first, ending with the root (empty for a root).
    parents: Vec<String>,
    not_after: SystemTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_after", &self.not_after)
            .field("parents", &self.parents.len())
            .finish_non_exhaustive()
    }
}

/// A fresh private key and a CSR for it, made where the key will be used.
#[derive(Clone)]
pub struct KeyAndCsr {
    /// The private key (PKCS#8 PEM). Never sent anywhere.
    pub key_pem: String,
    /// The certificate signing request (PEM), asking for `id` as its URI SAN.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCsr").finish_non_exhaustive()
    }
}

impl KeyAndCsr {
    /// An ECDSA P-256 key and a CSR asking for `id`.
    pub fn generate(id: &SpiffeId) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&id.trust_domain, None);
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        let csr = params.serialize_request(&key)?;
        Ok(KeyAndCsr {
            key_pem: key.serialize_pem(),
            csr_pem: csr.pem()?,
        })
    }
}

impl Authority {
    /// A new self-signed root CA for `trust_domain`, valid for `validity`.
    pub fn generate_root(trust_domain: &str, validity: Duration) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let params = ca_params(trust_domain, "meshwork root CA", validity, None);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            not_after: SystemTime::now() + validity,
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            parents: Vec::new(),
        })
    }

    /// A new intermediate CA under this one (it may sign workload certificates but no further CAs).
    pub fn generate_intermediate(
        &self,
        trust_domain: &str,
        validity: Duration,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let params = ca_params(
            trust_domain,
            "meshwork intermediate CA",
            validity,
            Some(BasicConstraints::Constrained(0)),
        );
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut parents = vec![self.cert_pem.clone()];
        parents.extend(self.parents.iter().cloned());
        Ok(Authority {
            not_after: SystemTime::now() + validity,
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            parents,
        })
    }

    /// A CA from its certificate and key (PEM), with `parents_pem` holding the certificates above it up to the root
    /// (empty for a root).
    pub fn from_pem(cert_pem: &str, key_pem: &str, parents_pem: &str) -> Result<Self, PkiError> {
        let certs = certs_from_pem(cert_pem.as_bytes())?;
        let info = inspect(&certs[0])?;
        if !info.is_ca {
            return Err(PkiError::Certificate(format!(
                "`{}` is not a CA certificate (no basicConstraints CA:TRUE); give the CA's own certificate",
                info.subject
            )));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem {
            what: "CA private key",
            label: "PRIVATE KEY",
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_der(&certs[0], key)?;
        let parents = if parents_pem.trim().is_empty() {
            Vec::new()
        } else {
            certs_from_pem(parents_pem.as_bytes())?
                .iter()
                .map(|c| der_to_pem(c))
                .collect()
        };
        Ok(Authority {
            issuer,
            cert_pem: der_to_pem(&certs[0]),
            parents,
            not_after: info.not_after,
        })
    }

    /// This CA's certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// This CA's private key (PKCS#8 PEM), for persisting a generated CA.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// This CA's certificate followed by those above it, ending with the root.
    pub fn chain_pem(&self) -> Vec<String> {
        let mut chain = vec![self.cert_pem.clone()];
        chain.extend(self.parents.iter().cloned());
        chain
    }

    /// The root at the top of this CA's chain (this CA itself for a root).
    pub fn root_pem(&self) -> &str {
        self.parents.last().unwrap_or(&self.cert_pem)
    }

    /// When this CA's own certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Signs `csr_pem` into an SVID for `id`, valid for `ttl` (capped at this CA's own expiry). Returns the chain, leaf
    /// first, ending with the root. The CSR's signature must verify and it may ask for no identity or for `id` only.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        ttl: Duration,
    ) -> Result<Vec<String>, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::Csr(format!("{e}; send a PEM PKCS#10 request signed by its key"))
        })?;
        let wanted = id.to_string();
        for san in &csr.params.subject_alt_names {
            match san {
                SanType::URI(u) if u.as_str() == wanted => {}
                SanType::URI(u) => {
                    return Err(PkiError::Csr(format!(
                        "it asks for `{}` but the caller may only have `{wanted}`",
                        u.as_str()
                    )));
                }
                other => {
                    return Err(PkiError::Csr(format!(
                        "it asks for {other:?}; workload certificates carry only the SPIFFE ID `{wanted}`"
                    )));
                }
            }
        }
        let now = SystemTime::now();
        let params = leaf_params(id, now - BACKDATE, self.cap(now + ttl))?;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(self.with_chain(cert.pem()))
    }

    /// An SVID for `id` with a key made here, valid for `ttl`: `(chain, key_pem)`. For tests and for the control
    /// plane's own identity; proxies use [`KeyAndCsr`] so their keys stay local.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<(Vec<String>, String), PkiError> {
        let now = SystemTime::now();
        self.issue_between(id, now - BACKDATE, self.cap(now + ttl))
    }

    /// An SVID for `id` valid from `not_before` to `not_after` exactly (tests use this for expired certificates).
    pub fn issue_between(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<(Vec<String>, String), PkiError> {
        let key = KeyPair::generate()?;
        let cert = leaf_params(id, not_before, not_after)?.signed_by(&key, &self.issuer)?;
        Ok((self.with_chain(cert.pem()), key.serialize_pem()))
    }

    /// A server certificate for `names` (DNS names or IP addresses), e.g. the control plane's own TLS port.
    pub fn issue_server(
        &self,
        trust_domain: &str,
        names: &[String],
        ttl: Duration,
    ) -> Result<(Vec<String>, String), PkiError> {
        let key = KeyPair::generate()?;
        let now = SystemTime::now();
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name(trust_domain, names.first().map(String::as_str));
        params.not_before = OffsetDateTime::from(now - BACKDATE);
        params.not_after = OffsetDateTime::from(self.cap(now + ttl));
        params.serial_number = Some(serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((self.with_chain(cert.pem()), key.serialize_pem()))
    }

    fn cap(&self, t: SystemTime) -> SystemTime {
        t.min(self.not_after)
    }

    fn with_chain(&self, leaf: String) -> Vec<String> {
        let mut chain = vec![leaf];
        chain.extend(self.chain_pem());
        chain
    }
}

fn leaf_params(
    id: &SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&id.trust_domain, None);
    params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
    params.not_before = OffsetDateTime::from(not_before);
    params.not_after = OffsetDateTime::from(not_after);
    params.serial_number = Some(serial());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn ca_params(
    trust_domain: &str,
    cn: &str,
    validity: Duration,
    constraints: Option<BasicConstraints>,
) -> CertificateParams {
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(trust_domain, Some(cn));
    params.is_ca = IsCa::Ca(constraints.unwrap_or(BasicConstraints::Unconstrained));
    params.not_before = OffsetDateTime::from(now - BACKDATE);
    params.not_after = OffsetDateTime::from(now + validity);
    params.serial_number = Some(serial());
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = constraints.is_some();
    params
}

fn name(trust_domain: &str, cn: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

/// A unique, positive 128-bit serial: wall-clock nanoseconds, a process counter and randomness.
fn serial() -> SerialNumber {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    let mixed = COUNTER.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32);
    bytes[8..].copy_from_slice(&mixed.to_be_bytes());
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn der_to_pem(der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), lf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn signs_a_csr_for_the_callers_identity_only() {
        let ca = Authority::generate_root("td", HOUR).expect("ca");
        let me = SpiffeId::new("td", "default", "reviews");
        let req = KeyAndCsr::generate(&me).expect("csr");
        let chain = ca.sign_csr(&req.csr_pem, &me, HOUR).expect("signed");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca.cert_pem());
        let leaf = inspect(&certs_from_pem(chain[0].as_bytes()).expect("pem")[0]).expect("leaf");
        assert_eq!(leaf.uri_sans, vec![me.to_string()]);

        let other = SpiffeId::new("td", "default", "productpage");
        let err = ca
            .sign_csr(&req.csr_pem, &other, HOUR)
            .expect_err("mismatch");
        assert!(err.to_string().contains("may only have"), "{err}");
        let err = ca.sign_csr("garbage", &me, HOUR).expect_err("garbage");
        assert!(err.to_string().contains("PKCS#10"), "{err}");
    }

    #[test]
    fn lifetimes_are_capped_by_the_ca() {
        let ca = Authority::generate_root("td", Duration::from_secs(120)).expect("ca");
        let id = SpiffeId::new("td", "a", "b");
        let (chain, _) = ca.issue(&id, HOUR * 24).expect("leaf");
        let leaf = inspect(&certs_from_pem(chain[0].as_bytes()).expect("pem")[0]).expect("leaf");
        let cap = SystemTime::now() + Duration::from_secs(121);
        assert!(leaf.not_after <= cap);
    }

    #[test]
    fn intermediates_chain_to_the_root_and_survive_a_pem_round_trip() {
        let root = Authority::generate_root("td", HOUR).expect("root");
        let mid = root.generate_intermediate("td", HOUR).expect("mid");
        assert_eq!(mid.root_pem(), root.cert_pem());
        let again =
            Authority::from_pem(mid.cert_pem(), &mid.key_pem(), root.cert_pem()).expect("load");
        let (chain, _) = again
            .issue(&SpiffeId::new("td", "a", "b"), HOUR)
            .expect("leaf");
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[1], mid.cert_pem());
        assert_eq!(chain[2], root.cert_pem());
        let err = Authority::from_pem(&chain[0], &mid.key_pem(), "").expect_err("leaf is no CA");
        assert!(err.to_string().contains("not a CA"), "{err}");
    }
}
