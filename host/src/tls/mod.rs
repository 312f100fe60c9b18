//! TLS and mutual TLS with SPIFFE identities (rustls, ring): certificates and trust bundles by name
//! ([`secrets`]), the downstream side with Istio's STRICT / PERMISSIVE / DISABLE modes ([`server`]), the upstream side
//! verifying the peer's SPIFFE ID ([`client`]), and the verifiers both use ([`verify`]).
//!
//! Certificates rotate without touching listeners, clusters or connections: handshakes read the current certificate
//! and trust bundle of a secret at the moment they run, so a renewal applies to the next connection while open ones
//! keep theirs.

pub mod agent;
pub mod ca;
pub mod client;
pub mod secrets;
pub mod server;
pub mod verify;

use std::sync::Arc;

pub use client::ClientTls;
pub use secrets::Secrets;
pub use server::ServerTls;

/// The crypto all of meshwork's TLS uses: rustls' ring provider (X25519, P-256, AES-GCM, ChaCha20-Poly1305).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// What a TLS handshake established, for filters (the `connection.*` properties), logs and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The peer presented a certificate that verified (mutual TLS).
    pub mtls: bool,
    /// The peer certificate's URI SANs (its SPIFFE ID first).
    pub peer_uri_sans: Vec<String>,
    /// The peer certificate's DNS SANs.
    pub peer_dns_sans: Vec<String>,
    /// The peer certificate's subject.
    pub peer_subject: Option<String>,
    /// The peer certificate's serial number (hex).
    pub peer_serial: Option<String>,
    /// Our certificate's URI SANs.
    pub local_uri_sans: Vec<String>,
    /// Our certificate's subject.
    pub local_subject: Option<String>,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// The `x-forwarded-client-cert` value for requests on this connection, made once per handshake.
    pub xfcc: Option<http::HeaderValue>,
}

impl TlsInfo {
    /// The peer's SPIFFE ID, if it presented one.
    pub fn peer_spiffe_id(&self) -> Option<&str> {
        self.peer_uri_sans
            .iter()
            .find(|u| u.starts_with("spiffe://"))
            .map(String::as_str)
    }

    /// Facts from a finished handshake. `local` is the certificate this side presented.
    pub(crate) fn from_connection(
        conn: &rustls::CommonState,
        sni: Option<&str>,
        local: Option<&secrets::CertEntry>,
    ) -> Self {
        let mut info = TlsInfo {
            sni: sni.map(Into::into),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "TLSv1.3",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            ..TlsInfo::default()
        };
        if let Some(local) = local {
            info.local_uri_sans = local.info.uri_sans.clone();
            info.local_subject = Some(local.info.subject.clone());
        }
        if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first())
            && let Ok(peer) = meshwork_pki::inspect(leaf)
        {
            info.mtls = true;
            info.peer_uri_sans = peer.uri_sans;
            info.peer_dns_sans = peer.dns_sans;
            info.peer_subject = Some(peer.subject);
            info.peer_serial = Some(peer.serial);
            info.xfcc = xfcc(&info, leaf);
        }
        info
    }
}

/// `By=LOCAL;Hash=SHA256;URI=PEER` (Envoy's field order), or `None` if a field would not make a valid header.
fn xfcc(info: &TlsInfo, peer_der: &[u8]) -> Option<http::HeaderValue> {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(peer_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut v = String::new();
    if let Some(by) = info.local_uri_sans.first() {
        v.push_str(&format!("By={by};"));
    }
    v.push_str(&format!("Hash={hash}"));
    if let Some(uri) = info.peer_uri_sans.first() {
        v.push_str(&format!(";URI={uri}"));
    }
    http::HeaderValue::from_str(&v).ok()
}

/// A TLS problem, saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A secret's PEM could not be used.
    #[error("secret `{name}`: {source}")]
    Secret {
        /// The secret.
        name: String,
        /// What was wrong.
        source: meshwork_pki::PkiError,
    },
    /// The key does not fit rustls (unsupported algorithm) or does not match the certificate.
    #[error(
        "secret `{name}`: the private key cannot be used ({reason}); use an ECDSA P-256/P-384, Ed25519 or RSA key that belongs to the certificate"
    )]
    Key {
        /// The secret.
        name: String,
        /// rustls' reason.
        reason: String,
    },
    /// A trust bundle with no usable CA.
    #[error("secret `{name}`: no usable CA certificate in the trust bundle ({reason})")]
    Trust {
        /// The secret.
        name: String,
        /// Why.
        reason: String,
    },
    /// A file named by a static-config secret could not be read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}
