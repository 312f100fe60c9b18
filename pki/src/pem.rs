//! Reading PEM: certificate chains and private keys, as files and SDS secrets hold them.

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::PkiError;

/// Every `CERTIFICATE` block in `pem`, in order (leaf first for a chain). At least one is required.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bad = |reason: String| PkiError::Pem {
        what: "certificate chain",
        label: "CERTIFICATE",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, SEC1 EC or PKCS#1 RSA).
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| PkiError::Pem {
        what: "private key",
        label: "PRIVATE KEY",
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no private key found".into(),
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, SpiffeId};

    #[test]
    fn reads_chains_and_keys_and_says_what_is_missing() {
        let ca = Authority::generate_root("td", std::time::Duration::from_secs(3600)).expect("ca");
        let (chain, key) = ca
            .issue(
                &SpiffeId::new("td", "ns", "sa"),
                std::time::Duration::from_secs(60),
            )
            .expect("leaf");
        let joined = chain.concat();
        assert_eq!(certs_from_pem(joined.as_bytes()).expect("chain").len(), 2);
        assert!(key_from_pem(key.as_bytes()).is_ok());
        let cases: &[(&[u8], bool, &str)] = &[
            (b"", true, "no certificate found"),
            (key.as_bytes(), true, "no certificate found"),
            (joined.as_bytes(), false, "no private key found"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                true,
                "certificate chain",
            ),
        ];
        for (text, cert, want) in cases {
            let err = if *cert {
                certs_from_pem(text).expect_err(want).to_string()
            } else {
                key_from_pem(text).expect_err(want).to_string()
            };
            assert!(err.contains(want), "{err}");
            assert!(err.contains("expected PEM"), "{err}");
        }
    }
}
