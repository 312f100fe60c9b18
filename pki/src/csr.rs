//! What a certificate signing request asks for, read before signing it so that the CA can tell a request for the
//! wrong identity (refused as permission denied) from one that is not a CSR at all (an invalid argument).

use rcgen::{CertificateSigningRequestParams, SanType};

use crate::PkiError;

/// The subject alternative names `csr_pem` asks for, as text (`spiffe://...` URIs, DNS names, IPs, emails), after
/// checking that it parses and that its signature verifies with its own key.
pub fn csr_requested_names(csr_pem: &str) -> Result<Vec<String>, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Csr(format!("{e}; send a PEM PKCS#10 request signed by its key")))?;
    Ok(csr
        .params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            SanType::URI(u) => u.as_str().to_owned(),
            SanType::DnsName(d) => d.as_str().to_owned(),
            SanType::Rfc822Name(e) => e.as_str().to_owned(),
            SanType::IpAddress(ip) => ip.to_string(),
            other => format!("{other:?}"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyAndCsr, SpiffeId};

    #[test]
    fn names_of_a_csr_and_refusal_of_garbage() {
        let id = SpiffeId::new("td", "default", "reviews");
        let req = KeyAndCsr::generate(&id).expect("csr");
        assert_eq!(
            csr_requested_names(&req.csr_pem).expect("names"),
            vec![id.to_string()]
        );
        for bad in [
            "",
            "garbage",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            let err = csr_requested_names(bad).expect_err(bad);
            assert!(err.to_string().contains("PKCS#10"), "{err}");
        }
    }
}
