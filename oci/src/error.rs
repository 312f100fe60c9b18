//! [`OciError`]: every way a registry operation fails, each message saying what to do about it, with a metric label
//! ([`OciError::reason`]) and whether trying again later can help ([`OciError::retryable`]).

use std::time::Duration;

/// An error of a reference, a registry operation or an artifact.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse.
    #[error("`{reference}`: {reason}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection to the registry (refused, no route, name not found, connection reset).
    #[error(
        "cannot reach {registry}: {detail}; check the address and that the registry is running"
    )]
    Unreachable {
        /// The registry ("host[:port]").
        registry: String,
        /// The transport error.
        detail: String,
    },
    /// The operation did not finish within `ClientOptions::timeout`.
    #[error(
        "{operation} on {registry} did not finish within {after:?}; the registry is slow or not answering, try again later"
    )]
    Timeout {
        /// The registry.
        registry: String,
        /// "pull", "push", "resolve", ...
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The registry (or its token service) refused the credentials given.
    #[error(
        "the registry refused the credentials for {repository}: check --username/--password or the docker config entry for {registry}"
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// The registry wants credentials and none were given.
    #[error(
        "{registry}/{repository} needs credentials: pass --username/--password or add an entry for {registry} to the docker config"
    )]
    CredentialsRequired {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// The credentials are valid but do not grant the operation (HTTP 403).
    #[error(
        "the credentials for {registry} are not allowed to {action} {repository}: ask the registry's owner for access"
    )]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// "pull" or "push".
        action: &'static str,
    },
    /// The tag or digest does not exist.
    #[error("{reference}: no such tag or digest in {repository}")]
    NotFound {
        /// The reference as displayed.
        reference: String,
        /// The repository.
        repository: String,
    },
    /// Content whose sha256 (or size) is not the one announced: do not use it.
    #[error(
        "{what}: expected {expected}, got {actual}; the registry or something on the way served other content than announced"
    )]
    DigestMismatch {
        /// What was checked ("the manifest of REF", "layer sha256:...").
        what: String,
        /// The expected digest or size.
        expected: String,
        /// The computed digest or size.
        actual: String,
    },
    /// A manifest, blob or extracted module over `ClientOptions::max_bytes`.
    #[error(
        "{what} is {size} bytes or more, over the limit of {limit} bytes; raise the limit if the module is really this large"
    )]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its announced size, or how much was read before giving up.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The artifact is not a WASM module in a format this crate reads.
    #[error("{reference}: {detail}")]
    BadFormat {
        /// The reference.
        reference: String,
        /// What is wrong and which formats are read.
        detail: String,
    },
    /// An https registry answered in plain HTTP.
    #[error(
        "{registry} is not https; pass --insecure {registry} if it is a plain-http registry you trust"
    )]
    Insecure {
        /// The registry.
        registry: String,
    },
    /// The TLS handshake with an https registry failed (certificate not trusted, name mismatch, ...).
    #[error(
        "TLS with {registry} failed: {detail}; if it uses a private CA, add that CA to the trusted roots"
    )]
    Tls {
        /// The registry.
        registry: String,
        /// The rustls error.
        detail: String,
    },
    /// The token realm a registry named is refused (not http(s), a metadata or link-local address, http for an https
    /// registry).
    #[error("{registry} asks for a token from `{realm}`, which is refused: {reason}")]
    BadRealm {
        /// The registry.
        registry: String,
        /// The realm URL.
        realm: String,
        /// Why it is refused.
        reason: String,
    },
    /// Any other answer of the registry (its error code and message included).
    #[error("{registry} answered {status} to {operation}: {detail}")]
    Registry {
        /// The registry.
        registry: String,
        /// What was asked ("GET manifest x:1").
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error codes and messages, or the body's start.
        detail: String,
    },
    /// `ClientOptions` that cannot be used (an extra root that is not a certificate).
    #[error("client options: {0}")]
    Options(String),
    /// Credentials that cannot be read (a docker config that does not parse, a credential helper that fails).
    #[error("credentials for {registry}: {detail}")]
    Credentials {
        /// The registry.
        registry: String,
        /// What went wrong and where.
        detail: String,
    },
    /// A signature exists but none verifies, or it signs another digest.
    #[error("{reference}: {detail}")]
    BadSignature {
        /// The reference.
        reference: String,
        /// Why no signature verifies.
        detail: String,
    },
    /// A signing or verification key that cannot be used (unreadable, encrypted, not ECDSA P-256, none given).
    #[error(transparent)]
    Sign(#[from] crate::SignError),
    /// No signature exists for the digest.
    #[error(
        "{reference} is not signed: no signature for {digest}; sign it with `meshwork filter sign`"
    )]
    Unsigned {
        /// The reference.
        reference: String,
        /// The manifest digest.
        digest: String,
    },
}

impl OciError {
    /// Whether trying again later can succeed: unreachable, timeout, a 5xx or 429 answer.
    pub fn retryable(&self) -> bool {
        match self {
            OciError::Unreachable { .. } | OciError::Timeout { .. } => true,
            OciError::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A short label for metrics and status fields.
    pub fn reason(&self) -> &'static str {
        match self {
            OciError::BadReference { .. } => "bad_reference",
            OciError::Unreachable { .. } => "unreachable",
            OciError::Timeout { .. } => "timeout",
            OciError::Unauthorized { .. }
            | OciError::CredentialsRequired { .. }
            | OciError::Denied { .. } => "unauthorized",
            OciError::NotFound { .. } => "not_found",
            OciError::DigestMismatch { .. } => "digest_mismatch",
            OciError::TooLarge { .. } => "too_large",
            OciError::BadFormat { .. } => "bad_format",
            OciError::Insecure { .. } => "insecure",
            OciError::Tls { .. } => "tls",
            OciError::BadRealm { .. } | OciError::Registry { .. } => "registry",
            OciError::Options(_) => "options",
            OciError::Credentials { .. } => "credentials",
            OciError::BadSignature { .. } => "bad_signature",
            OciError::Unsigned { .. } => "unsigned",
            OciError::Sign(e) => e.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_reasons() {
        let registry = |status| OciError::Registry {
            registry: "r".into(),
            operation: "GET".into(),
            status,
            detail: String::new(),
        };
        let cases: Vec<(OciError, bool, &str)> = vec![
            (
                OciError::Unreachable {
                    registry: "r".into(),
                    detail: "refused".into(),
                },
                true,
                "unreachable",
            ),
            (
                OciError::Timeout {
                    registry: "r".into(),
                    operation: "pull",
                    after: Duration::from_secs(1),
                },
                true,
                "timeout",
            ),
            (registry(503), true, "registry"),
            (registry(429), true, "registry"),
            (registry(400), false, "registry"),
            (
                OciError::Unauthorized {
                    registry: "r".into(),
                    repository: "x".into(),
                },
                false,
                "unauthorized",
            ),
            (
                OciError::Insecure {
                    registry: "r".into(),
                },
                false,
                "insecure",
            ),
            (
                OciError::NotFound {
                    reference: "r/x:1".into(),
                    repository: "x".into(),
                },
                false,
                "not_found",
            ),
        ];
        for (error, retryable, reason) in cases {
            assert_eq!(error.retryable(), retryable, "{error}");
            assert_eq!(error.reason(), reason, "{error}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = OciError::Insecure {
            registry: "reg.example:5000".into(),
        };
        assert_eq!(
            e.to_string(),
            "reg.example:5000 is not https; pass --insecure reg.example:5000 if it is a plain-http registry you trust"
        );
        let e = OciError::Unauthorized {
            registry: "ghcr.io".into(),
            repository: "a/b".into(),
        };
        assert!(
            e.to_string()
                .contains("check --username/--password or the docker config entry for ghcr.io")
        );
        let e = OciError::NotFound {
            reference: "ghcr.io/a/b:v9".into(),
            repository: "a/b".into(),
        };
        assert_eq!(
            e.to_string(),
            "ghcr.io/a/b:v9: no such tag or digest in a/b"
        );
    }
}
