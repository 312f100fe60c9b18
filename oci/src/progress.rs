//! [`Progress`]: what a caller is told while blobs move (a progress bar in the CLI, nothing in the control plane).

/// Told about every blob transferred: `begin` with its size, `advance` per chunk, `end` when done (also on failure).
pub trait Progress: Send + Sync {
    /// A blob of `total` bytes starts (`label`: its short digest and role).
    fn begin(&self, label: &str, total: u64);
    /// `bytes` more were transferred.
    fn advance(&self, bytes: u64);
    /// The blob is done.
    fn end(&self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _label: &str, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn end(&self) {}
}

/// The label of a blob: its role and the first 12 hex digits of its digest.
pub(crate) fn label(role: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("{role} {}", &hex[..hex.len().min(12)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels() {
        assert_eq!(
            super::label("layer", "sha256:0123456789abcdef"),
            "layer 0123456789ab"
        );
        assert_eq!(super::label("config", "sha256:01"), "config 01");
    }
}
