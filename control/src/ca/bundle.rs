//! The trust bundle: every root a workload certificate may chain to. It holds the signing CA's root plus extra roots
//! (`--trust-bundle`), so that a mesh can move to a new root while certificates from the old one are still in use:
//! proxies trust both, the CA signs with the new one, and the old root leaves the bundle once nothing uses it.

use meshwork_pki::{CertificateDer, cert_to_pem, certs_from_pem, inspect};

/// Roots in order (the signing CA's root first), without duplicates.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    roots: Vec<CertificateDer<'static>>,
}

impl TrustBundle {
    /// The bundle of `signing_root_pem` and the roots in each `(source, pem)` of `extra` (a source names a file in
    /// errors). Every extra certificate must be a CA.
    pub fn new(signing_root_pem: &str, extra: &[(String, String)]) -> Result<TrustBundle, String> {
        let mut bundle = TrustBundle { roots: Vec::new() };
        let signing = certs_from_pem(signing_root_pem.as_bytes())
            .map_err(|e| format!("the signing root: {e}"))?;
        bundle.add(signing);
        for (source, pem) in extra {
            let certs = certs_from_pem(pem.as_bytes()).map_err(|e| format!("{source}: {e}"))?;
            for cert in &certs {
                let info = inspect(cert).map_err(|e| format!("{source}: {e}"))?;
                if !info.is_ca {
                    return Err(format!(
                        "{source}: `{}` is not a CA certificate; a trust bundle holds only roots",
                        info.subject
                    ));
                }
            }
            bundle.add(certs);
        }
        Ok(bundle)
    }

    fn add(&mut self, certs: Vec<CertificateDer<'static>>) {
        for cert in certs {
            if !self.roots.contains(&cert) {
                self.roots.push(cert);
            }
        }
    }

    /// The roots (DER), the signing CA's root first.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// Every root as PEM, concatenated.
    pub fn pem(&self) -> String {
        self.roots.iter().map(|der| cert_to_pem(der)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_pki::{Authority, SpiffeId};
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn roots_are_deduplicated_in_order_and_round_trip_as_pem() {
        let new = Authority::generate_root("td", HOUR).expect("new");
        let old = Authority::generate_root("td", HOUR).expect("old");
        let other = Authority::generate_root("td", HOUR).expect("other");
        let extra = vec![
            (
                "old.pem".to_owned(),
                format!("{}{}", old.cert_pem(), new.cert_pem()),
            ),
            (
                "more.pem".to_owned(),
                format!("{}{}", other.cert_pem(), old.cert_pem()),
            ),
        ];
        let bundle = TrustBundle::new(new.cert_pem(), &extra).expect("bundle");
        assert_eq!(bundle.roots().len(), 3);
        let want = format!("{}{}{}", new.cert_pem(), old.cert_pem(), other.cert_pem());
        assert_eq!(bundle.pem(), want);
        assert_eq!(
            certs_from_pem(bundle.pem().as_bytes()).expect("pem"),
            bundle.roots()
        );
    }

    #[test]
    fn only_ca_certificates_join() {
        let ca = Authority::generate_root("td", HOUR).expect("ca");
        let (leaf, _) = ca
            .issue(&SpiffeId::new("td", "a", "b"), HOUR)
            .expect("leaf");
        let cases = [
            (leaf[0].clone(), "leaf.pem: `O=td` is not a CA certificate"),
            (
                "junk".to_owned(),
                "junk.pem: certificate chain: no certificate found",
            ),
        ];
        for (pem, want) in cases {
            let source = if pem == "junk" {
                "junk.pem"
            } else {
                "leaf.pem"
            };
            let err = TrustBundle::new(ca.cert_pem(), &[(source.to_owned(), pem)]).expect_err(want);
            assert!(err.contains(want), "{err}");
        }
    }
}
