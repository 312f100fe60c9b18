//! Why the CA did not start. Each error names the file or flag and says what to do.

use std::path::PathBuf;

/// A CA that cannot be loaded, generated or served.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}; check that the CA directory (--ca-dir) is writable")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file holds something unusable.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file (or flag) at fault.
        what: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The CA directory holds a certificate without its key or a key without its certificate.
    #[error(
        "{dir} has {present} but not {missing}: restore {missing}, or remove both to generate a new root (every \
         workload then needs new certificates)"
    )]
    Incomplete {
        /// The directory.
        dir: PathBuf,
        /// The file found.
        present: &'static str,
        /// The file missing.
        missing: &'static str,
    },
    /// Contradictory or out-of-range options.
    #[error("{0}")]
    Options(String),
    /// The CA's own check failed: what it signs does not verify against the trust bundle.
    #[error(
        "the CA's certificates do not verify against the trust bundle: {0}; check that the key (--ca-key) belongs \
         to the certificate (--ca-cert) and that the chain (--ca-chain) leads to the root"
    )]
    SelfCheck(String),
    /// Generating a key or certificate, or building the TLS configuration, failed.
    #[error("the CA cannot be set up: {0}")]
    Setup(String),
}
