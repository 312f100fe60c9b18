//! The errors of certificate handling. Each says what was wrong and what to do about it.

/// A PEM, certificate, key, CSR or identity problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Text that should have held PEM blocks did not.
    #[error("{what}: {reason}; expected PEM (`-----BEGIN {label}-----`)")]
    Pem {
        /// What was being read (`certificate chain`, `private key`).
        what: &'static str,
        /// The PEM label expected.
        label: &'static str,
        /// Why it could not be read.
        reason: String,
    },
    /// A certificate that is not valid DER X.509.
    #[error("cannot parse the certificate: {0}")]
    Certificate(String),
    /// A SPIFFE ID that is not of the form meshwork uses.
    #[error(
        "`{id}` is not a workload SPIFFE ID: {reason}; expected spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT"
    )]
    Identity {
        /// The text given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A certificate signing request that cannot be used.
    #[error("certificate signing request refused: {0}")]
    Csr(String),
    /// Generating or signing failed inside the crypto library.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}
