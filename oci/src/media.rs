//! The media types of manifests, indexes, configs and layers this crate reads and writes.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The `Accept` list of manifest requests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// OCI image config (format B).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzipped tar layer, OCI (format B).
pub const OCI_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A gzipped tar layer, Docker (format B).
pub const DOCKER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The file format B layers hold.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The manifest annotation of solo's "compat" variant (format B).
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";

/// Solo's config (format A).
pub const SOLO_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// Solo's raw wasm layer (format A).
pub const SOLO_WASM: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// The CNCF TAG-Runtime config (format C).
pub const CNCF_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF raw wasm layer (format C).
pub const CNCF_WASM: &str = "application/wasm";

/// wasm-to-oci's config (format D).
pub const WASM_TO_OCI_CONFIG: &str = "application/vnd.wasm.config.v1+json";
/// wasm-to-oci's raw wasm layer (format D).
pub const WASM_TO_OCI_WASM: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// The layer annotation naming the file a layer came from.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The annotation docker buildx puts on attestation entries of an image index.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// The WebAssembly binary magic.
pub const WASM_MAGIC: &[u8; 4] = b"\0asm";
