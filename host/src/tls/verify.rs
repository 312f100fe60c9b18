//! Certificate verification with SPIFFE identities.
//!
//! Both sides first verify the chain against the current trust bundle of a secret (webpki: signatures, validity,
//! key usage), then check the identity: a server accepts client certificates from its allowed trust domains only; a
//! client accepts a server only if its certificate carries one of the SPIFFE IDs the destination service runs as
//! (Istio's `subjectAltNames`), not merely any certificate of the mesh.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::{
        ParsedCertificate,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use super::{provider, secrets::SecretCell};

/// Why a peer's identity was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentityRefused(pub String);

fn refuse(msg: String) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        IdentityRefused(msg),
    ))))
}

fn not_yet(cell: &SecretCell) -> Error {
    Error::General(format!(
        "trust bundle `{}` has not been delivered yet (SDS or the static config)",
        cell.name()
    ))
}

/// The URI SANs of a DER certificate.
fn uri_sans(cert: &CertificateDer<'_>) -> Result<Vec<String>, Error> {
    meshwork_pki::inspect(cert)
        .map(|i| i.uri_sans)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// A handshake signature checked with the provider's algorithms (both verifiers sign the same way).
fn signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let algs = &provider().signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }
}

/// Whether a peer with `sans` belongs to one of `domains` (empty: any). Pure, for the table test.
pub fn check_trust_domain(sans: &[String], domains: &[String]) -> Result<(), String> {
    if domains.is_empty() {
        return Ok(());
    }
    let ids: Vec<meshwork_pki::SpiffeId> = sans.iter().filter_map(|s| s.parse().ok()).collect();
    if ids.iter().any(|id| domains.contains(&id.trust_domain)) {
        return Ok(());
    }
    Err(match ids.first() {
        Some(id) => format!(
            "peer identity {id} is from trust domain `{}`, this listener accepts only {}",
            id.trust_domain,
            domains.join(", ")
        ),
        None => format!(
            "the peer certificate has no SPIFFE ID (URI SANs: {sans:?}); this listener accepts only trust domains {}",
            domains.join(", ")
        ),
    })
}

/// Whether a server with `sans` is one the client expects. Pure, for the table test.
pub fn check_expected_san(sans: &[String], expected: &[String]) -> Result<(), String> {
    if sans.iter().any(|s| expected.contains(s)) {
        return Ok(());
    }
    Err(format!(
        "the endpoint is {} but the destination runs as {}",
        sans.first()
            .map_or("a certificate without URI SAN", String::as_str),
        expected.join(" or ")
    ))
}

/// Verifies client certificates on a listener.
#[derive(Debug)]
pub struct PeerVerifier {
    trust: Arc<SecretCell>,
    trust_domains: Vec<String>,
}

impl PeerVerifier {
    /// Requires clients to present a certificate chaining to `trust`'s bundle, from `trust_domains` (empty: any).
    pub fn new(trust: Arc<SecretCell>, trust_domains: Vec<String>) -> Self {
        PeerVerifier {
            trust,
            trust_domains,
        }
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let trust = self.trust.trust().ok_or_else(|| not_yet(&self.trust))?;
        trust
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        check_trust_domain(&uri_sans(end_entity)?, &self.trust_domains).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies an endpoint's certificate on an upstream connection.
#[derive(Debug)]
pub struct EndpointVerifier {
    trust: Arc<SecretCell>,
    expected: Vec<String>,
}

impl EndpointVerifier {
    /// Requires a certificate chaining to `trust`'s bundle with one of the URI SANs `expected`; with none expected,
    /// one valid for the server name instead.
    pub fn new(trust: Arc<SecretCell>, expected: Vec<String>) -> Self {
        EndpointVerifier { trust, expected }
    }
}

impl ServerCertVerifier for EndpointVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let trust = self.trust.trust().ok_or_else(|| not_yet(&self.trust))?;
        if self.expected.is_empty() {
            return trust.server_verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            );
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.roots,
            intermediates,
            now,
            provider().signature_verification_algorithms.all,
        )?;
        check_expected_san(&uri_sans(end_entity)?, &self.expected).map_err(refuse)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn trust_domain_table() {
        let pp = "spiffe://cluster.local/ns/default/sa/productpage";
        let cases: &[(&[&str], &[&str], Result<(), &str>)] = &[
            (&[pp], &[], Ok(())),
            (&[pp], &["cluster.local"], Ok(())),
            (&[pp], &["other.td", "cluster.local"], Ok(())),
            (&[pp], &["other.td"], Err("trust domain `cluster.local`")),
            (&[], &["cluster.local"], Err("no SPIFFE ID")),
            (&["https://x"], &["cluster.local"], Err("no SPIFFE ID")),
            (&[], &[], Ok(())),
        ];
        for (sans, domains, want) in cases {
            let got = check_trust_domain(&v(sans), &v(domains));
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{sans:?} {domains:?}: {e}"),
                (got, want) => panic!("{sans:?} {domains:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn expected_san_table() {
        let reviews = "spiffe://cluster.local/ns/default/sa/reviews";
        let ratings = "spiffe://cluster.local/ns/default/sa/ratings";
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&[reviews], &[reviews], true),
            (&[reviews], &[ratings, reviews], true),
            (&[ratings], &[reviews], false),
            (&[], &[reviews], false),
            (&["spiffe://other/ns/default/sa/reviews"], &[reviews], false),
        ];
        for (sans, expected, ok) in cases {
            let got = check_expected_san(&v(sans), &v(expected));
            assert_eq!(got.is_ok(), *ok, "{sans:?} {expected:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("the destination runs as"), "{e}");
            }
        }
    }
}
