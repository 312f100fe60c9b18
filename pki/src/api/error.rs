//! What can go wrong asking the CA for a certificate: each error says what to check, and whether trying again
//! later can help ([`CaClientError::retryable`]).

use std::error::Error as StdError;

use rustls::{AlertDescription, CertificateError};
use tonic::Code;

/// Why [`request_certificate`](super::request_certificate) or [`fetch_module`](super::fetch_module) failed.
#[derive(Debug, thiserror::Error)]
pub enum CaClientError {
    /// The address is not an `https://HOST:PORT` URL.
    #[error(
        "the CA address `{address}` is not usable: {reason}; check --ca-address (https://HOST:PORT)"
    )]
    Address {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The roots to verify the CA with do not parse.
    #[error("the CA roots are not usable: {0}; check the root file (the mesh's trust bundle, PEM)")]
    Roots(String),
    /// The token or the client certificate and key do not parse.
    #[error(
        "the credentials are not usable: {0}; check the token, or the certificate and key files"
    )]
    Credentials(String),
    /// No connection could be made.
    #[error(
        "cannot reach the CA at {address}: {reason}; check --ca-address and that the control plane is running"
    )]
    Unreachable {
        /// The CA's address.
        address: String,
        /// The connection error.
        reason: String,
    },
    /// The TLS handshake failed (either side refused the other's certificate).
    #[error("TLS with the CA at {address} failed: {reason}; {hint}")]
    Tls {
        /// The CA's address.
        address: String,
        /// The TLS error.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
    /// The CA did not accept the caller's token or certificate for the identity asked.
    #[error(
        "the CA at {address} refused the credentials ({code:?}): {message}; check the token (mint one with \
         `meshwork control token --identity spiffe://...`) or that the certificate is valid and for this identity"
    )]
    Denied {
        /// The CA's address.
        address: String,
        /// `Unauthenticated` or `PermissionDenied`.
        code: Code,
        /// The CA's explanation.
        message: String,
    },
    /// The CA found the request itself wrong (the CSR, the lifetime).
    #[error(
        "the CA rejected the request: {message}; the CSR must be PEM PKCS#10 asking for the caller's own SPIFFE ID"
    )]
    Rejected {
        /// The CA's explanation.
        message: String,
    },
    /// The server does not serve the CA API.
    #[error(
        "{address} does not serve {}: is it the CA's TLS port (--ca-address, 15012 by default)?",
        super::SERVICE
    )]
    NotCa {
        /// The address called.
        address: String,
    },
    /// The CA is overloaded, shutting down, or the call timed out.
    #[error("the CA at {address} is unavailable ({code:?}): {message}; try again later")]
    Unavailable {
        /// The CA's address.
        address: String,
        /// The gRPC code.
        code: Code,
        /// The explanation.
        message: String,
    },
    /// Any other gRPC failure.
    #[error("the CA at {address} failed ({code:?}): {message}")]
    Failed {
        /// The CA's address.
        address: String,
        /// The gRPC code.
        code: Code,
        /// The explanation.
        message: String,
    },
    /// The control plane has no module with that digest.
    #[error(
        "the control plane at {address} has no module with SHA-256 {sha256}; it serves only the modules of the \
         WasmPlugins it resolved (see its log for pull errors)"
    )]
    NoModule {
        /// The control plane's address.
        address: String,
        /// The digest asked for.
        sha256: String,
    },
    /// The CA answered with something that is not a usable certificate chain.
    #[error("the CA's answer is not usable: {0}")]
    BadResponse(String),
}

impl CaClientError {
    /// Whether the same call may succeed later unchanged (the CA was unreachable or unavailable). Every other error
    /// needs a change of configuration or credentials first.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CaClientError::Unreachable { .. } | CaClientError::Unavailable { .. }
        )
    }

    /// A failed connection: TLS refusals apart, the CA is unreachable.
    pub(crate) fn from_transport(address: &str, err: &(dyn StdError + 'static)) -> Self {
        if let Some(tls) = tls_failure(address, err) {
            return tls;
        }
        CaClientError::Unreachable {
            address: address.to_owned(),
            reason: chain_text(err),
        }
    }

    /// A failed call, by its gRPC code (a TLS alert from the server shows up here, after the handshake).
    pub(crate) fn from_status(address: &str, status: &tonic::Status) -> Self {
        if let Some(tls) = status.source().and_then(|e| tls_failure(address, e)) {
            return tls;
        }
        let address = address.to_owned();
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => CaClientError::Denied {
                address,
                code: status.code(),
                message,
            },
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                CaClientError::Rejected { message }
            }
            Code::Unimplemented => CaClientError::NotCa { address },
            code @ (Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled) => CaClientError::Unavailable {
                address,
                code,
                message,
            },
            code => CaClientError::Failed {
                address,
                code,
                message,
            },
        }
    }
}

/// A [`CaClientError::Tls`] if a rustls error (or tonic's "HTTP/2 was not negotiated") is in `err`'s chain.
fn tls_failure(address: &str, err: &(dyn StdError + 'static)) -> Option<CaClientError> {
    let text = chain_text(err);
    let hint = match find_rustls(err) {
        Some(e) => tls_hint(e),
        None if text.contains("HTTP/2 was not negotiated") => {
            "the server did not negotiate HTTP/2 over TLS: is this the CA's TLS port (--ca-address)?"
        }
        None => return None,
    };
    Some(CaClientError::Tls {
        address: address.to_owned(),
        reason: text,
        hint,
    })
}

/// What to check for a rustls error.
fn tls_hint(err: &rustls::Error) -> &'static str {
    use CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "the CA's certificate is not valid for the server name; use localhost, meshwork-control, 127.0.0.1 or \
             a name given to the control plane with --ca-hostname"
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet,
        ) => "the CA's certificate is outside its validity; check the clocks of both machines",
        rustls::Error::InvalidCertificate(_) => {
            "the CA's certificate does not verify against the root file; check that it holds the mesh's trust bundle"
        }
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::DecryptError
            | AlertDescription::CertificateRevoked,
        ) => {
            "the CA refused the client certificate (expired, or not from the mesh's trust bundle); ask with a \
             bootstrap token instead"
        }
        rustls::Error::InvalidMessage(_) => {
            "the server does not speak TLS: is this the CA's TLS port (--ca-address) and not the plaintext xDS port?"
        }
        _ => {
            "check the root file, the server name, and that this is the CA's TLS port (--ca-address)"
        }
    }
}

/// The first rustls error in `err`'s chain, looking inside `io::Error`s (tokio-rustls wraps it in one).
fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if inner.is_some() {
            return inner;
        }
        next = e.source();
    }
    None
}

/// Every message of `err`'s chain joined by `: `, skipping repeats (wrappers often repeat their source).
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error wrapping another, as tonic's transport and connect errors do.
    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn StdError + Send + Sync>);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    fn io_tls(e: rustls::Error) -> Box<dyn StdError + Send + Sync> {
        Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn connection_failures_are_classified() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let cases: Vec<(Wrap, bool, &str)> = vec![
            (
                Wrap("transport error", Box::new(refused)),
                true,
                "cannot reach the CA at A: transport error: connection refused; check --ca-address",
            ),
            (
                Wrap(
                    "transport error",
                    io_tls(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer,
                    )),
                ),
                false,
                "does not verify against the root file",
            ),
            (
                Wrap(
                    "transport error",
                    io_tls(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName,
                    )),
                ),
                false,
                "--ca-hostname",
            ),
            (
                Wrap(
                    "transport error",
                    Box::new(Wrap(
                        "h2",
                        io_tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
                    )),
                ),
                false,
                "refused the client certificate",
            ),
            (
                Wrap(
                    "transport error",
                    io_tls(rustls::Error::InvalidMessage(
                        rustls::InvalidMessage::InvalidContentType,
                    )),
                ),
                false,
                "plaintext xDS port",
            ),
            (
                Wrap(
                    "transport error",
                    Box::new(Wrap("HTTP/2 was not negotiated.", "x".into())),
                ),
                false,
                "did not negotiate HTTP/2",
            ),
        ];
        for (err, retryable, want) in cases {
            let got = CaClientError::from_transport("A", &err);
            assert_eq!(got.retryable(), retryable, "{got}");
            assert!(got.to_string().contains(want), "{got}");
        }
    }

    #[test]
    fn grpc_codes_are_classified() {
        let cases = [
            (
                Code::Unauthenticated,
                false,
                "refused the credentials (Unauthenticated): m; check the token",
            ),
            (
                Code::PermissionDenied,
                false,
                "refused the credentials (PermissionDenied)",
            ),
            (Code::InvalidArgument, false, "rejected the request: m"),
            (
                Code::Unimplemented,
                false,
                "does not serve istio.v1.auth.IstioCertificateService",
            ),
            (
                Code::Unavailable,
                true,
                "unavailable (Unavailable): m; try again later",
            ),
            (
                Code::DeadlineExceeded,
                true,
                "unavailable (DeadlineExceeded)",
            ),
            (Code::Internal, false, "failed (Internal): m"),
        ];
        for (code, retryable, want) in cases {
            let got = CaClientError::from_status("A", &tonic::Status::new(code, "m"));
            assert_eq!(got.retryable(), retryable, "{got}");
            assert!(got.to_string().contains(want), "{got}");
        }
    }
}
