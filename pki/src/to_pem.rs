//! Writing PEM: certificates back into the text form files, trust bundles and the CA API carry.

/// One `CERTIFICATE` PEM block (LF line endings) for a DER certificate.
pub fn cert_to_pem(der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), lf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, certs_from_pem};

    #[test]
    fn round_trips_what_the_authority_writes() {
        let ca = Authority::generate_root("td", std::time::Duration::from_secs(60)).expect("ca");
        let der = certs_from_pem(ca.cert_pem().as_bytes()).expect("pem");
        assert_eq!(cert_to_pem(&der[0]), ca.cert_pem());
    }
}
