//! What a certificate says: its URI and DNS SANs, subject, issuer and validity. Filters see these through the
//! `connection.*_peer_certificate` properties; the proxy logs them and schedules renewals by `not_after`.

use std::time::{Duration, SystemTime};

use x509_parser::{extensions::GeneralName, prelude::FromDer};

use crate::PkiError;

/// The fields of one certificate that meshwork uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// URI subject alternative names (a SPIFFE ID for workload certificates).
    pub uri_sans: Vec<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// The subject distinguished name (`O=cluster.local, CN=...`).
    pub subject: String,
    /// The issuer distinguished name.
    pub issuer: String,
    /// The serial number in hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Whether this is a CA certificate.
    pub is_ca: bool,
}

/// Parses one DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    let mut uri_sans = Vec::new();
    let mut dns_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => uri_sans.push((*u).to_string()),
                GeneralName::DNSName(d) => dns_sans.push((*d).to_string()),
                _ => {}
            }
        }
    }
    let time = |t: &x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    Ok(CertInfo {
        uri_sans,
        dns_sans,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        is_ca: cert.is_ca(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, SpiffeId, certs_from_pem};

    #[test]
    fn a_workload_certificate_names_its_identity_and_lifetime() {
        let ca = Authority::generate_root("td", Duration::from_secs(3600)).expect("ca");
        let id = SpiffeId::new("td", "default", "productpage");
        let (chain, _) = ca.issue(&id, Duration::from_secs(600)).expect("leaf");
        let certs = certs_from_pem(chain.concat().as_bytes()).expect("pem");
        let leaf = inspect(&certs[0]).expect("leaf");
        assert_eq!(leaf.uri_sans, vec![id.to_string()]);
        assert!(leaf.dns_sans.is_empty());
        assert!(!leaf.is_ca);
        assert!(leaf.subject.contains("O=td"), "{}", leaf.subject);
        let life = leaf
            .not_after
            .duration_since(SystemTime::now())
            .expect("in the future");
        assert!(life <= Duration::from_secs(600) && life > Duration::from_secs(590));
        let root = inspect(&certs[1]).expect("root");
        assert!(root.is_ca);
        assert_eq!(root.subject, leaf.issuer);
        assert!(inspect(b"not a certificate").is_err());
    }
}
