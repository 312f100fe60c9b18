//! TLS in the static-config file: named secrets (certificates and trust bundles) and the `tls` blocks of listeners
//! and clusters that refer to them by name. Under xDS the same names come from SDS (`default`, `ROOTCA`) and the
//! proxy's own certificate agent.

use serde::{Deserialize, Serialize};

/// A certificate with its key, or a trust bundle, read from PEM files. Give `certificate_chain` and `private_key`
/// together, or `trusted_ca`, or all three.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// The name listeners and clusters use.
    pub name: String,
    /// PEM file with the certificate chain, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    /// PEM file with the certificate's private key (PKCS#8, SEC1 or PKCS#1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// PEM file with the trusted CA certificates (several roots while a root is being rotated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
}

/// How a listener treats TLS, as Istio's PeerAuthentication modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// TLS only: a plaintext client is refused before any HTTP is read.
    #[default]
    #[serde(alias = "STRICT")]
    Strict,
    /// TLS and plaintext on the same port, told apart by the first byte.
    #[serde(alias = "PERMISSIVE")]
    Permissive,
    /// Plaintext only (the `tls` block is kept but unused).
    #[serde(alias = "DISABLE")]
    Disable,
}

/// TLS on a listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// `strict`, `permissive` or `disable`.
    #[serde(default)]
    pub mode: TlsMode,
    /// The secret holding this listener's certificate and key.
    pub certificate: String,
    /// The secret holding the CAs that client certificates must chain to. When set, every TLS client must present a
    /// valid certificate (mutual TLS); when absent, clients are not asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
    /// Accept client certificates only from these SPIFFE trust domains (empty: any the trusted CAs signed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// ALPN protocols offered, most preferred first.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
}

/// TLS from a cluster to its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// The secret holding the client certificate to present (mutual TLS); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The secret holding the CAs the endpoints' certificates must chain to.
    pub trusted_ca: String,
    /// The server name sent in the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept only endpoints whose certificate has one of these URI SANs (SPIFFE IDs). Empty: the certificate must
    /// be valid for `sni` as a DNS name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

fn default_alpn() -> Vec<String> {
    vec!["h2".into(), "http/1.1".into()]
}

impl ListenerTls {
    /// TLS with `certificate`, mutual when `trusted_ca` is given, every other setting at its default.
    pub fn new(mode: TlsMode, certificate: &str, trusted_ca: Option<&str>) -> Self {
        ListenerTls {
            mode,
            certificate: certificate.into(),
            trusted_ca: trusted_ca.map(Into::into),
            trust_domains: Vec::new(),
            alpn: default_alpn(),
        }
    }
}
