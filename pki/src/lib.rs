//! SPIFFE identities and X.509 for meshwork's zero-trust transport.
//!
//! - [`SpiffeId`]: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`, the identity every workload proves.
//! - [`KeyAndCsr`]: what a proxy makes locally before asking the mesh CA for a certificate (the private key never
//!   leaves the proxy).
//! - [`Authority`]: a certificate authority (root or intermediate) that signs CSRs into short-lived SVIDs; the control
//!   plane's CA and the tests use it.
//! - [`inspect`] and the PEM helpers: what a certificate says (URI SANs, subject, validity), for filters and logs.
//!
//! Keys are ECDSA P-256 and all crypto is `ring` (through rcgen and rustls); there is no OpenSSL in meshwork's code.

mod authority;
mod error;
mod identity;
mod inspect;
mod pem;

pub use authority::{Authority, KeyAndCsr};
pub use error::PkiError;
pub use identity::SpiffeId;
pub use inspect::{CertInfo, inspect};
pub use pem::{certs_from_pem, key_from_pem};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
