//! SPIFFE identities and X.509 for meshwork's zero-trust transport.
//!
//! - [`SpiffeId`]: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`, the identity every workload proves.
//! - [`KeyAndCsr`]: what a proxy makes locally before asking the mesh CA for a certificate (the private key never
//!   leaves the proxy).
//! - [`Authority`]: a certificate authority (root or intermediate) that signs CSRs into short-lived SVIDs; the control
//!   plane's CA and the tests use it.
//! - [`inspect`] and the PEM helpers: what a certificate says (URI SANs, subject, validity), for filters and logs.
//! - [`api`]: the CA's gRPC API in Istio's wire format (`IstioCertificateService/CreateCertificate`) and
//!   [`api::request_certificate`], the client a proxy gets and renews its certificate with.
//!
//! Keys are ECDSA P-256 and all crypto is `ring` (through rcgen and rustls); there is no OpenSSL in meshwork's code.

pub mod api;
mod authority;
mod csr;
mod error;
mod identity;
mod inspect;
mod pem;
mod to_pem;

pub use authority::{Authority, KeyAndCsr};
pub use csr::csr_requested_names;
pub use error::PkiError;
pub use identity::SpiffeId;
pub use inspect::{CertInfo, inspect};
pub use pem::{certs_from_pem, key_from_pem};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use to_pem::cert_to_pem;
