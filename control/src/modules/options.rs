//! How the control plane gets modules: where it caches them, where registry credentials come from, and which
//! registries may be plain HTTP.

use std::path::PathBuf;

/// Module settings of a control plane.
#[derive(Clone, Debug, Default)]
pub struct ModuleOptions {
    /// The module cache (`None`: a new directory under the temporary directory, for tests and embedding).
    pub cache: Option<PathBuf>,
    /// Registry access.
    pub registry: RegistryOptions,
}

/// Where credentials come from and which registries may be plain HTTP.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// A Docker `config.json` with credentials for any plugin without a pull secret (`None`: the user's own,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, if present).
    pub docker_config: Option<PathBuf>,
    /// Pull secrets: `DIR/NAMESPACE/NAME.json`, each a Docker `config.json`. With the Kubernetes source these
    /// files, when given, are used instead of the cluster's Secrets.
    pub pull_secrets: Option<PathBuf>,
    /// Registries (`HOST` or `HOST:PORT`) reachable over plain HTTP besides loopback.
    pub insecure: Vec<String>,
}

/// The default cache of `meshwork control`: `$XDG_CACHE_HOME/meshwork/control-modules`, else
/// `~/.cache/meshwork/control-modules`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("meshwork").join("control-modules"))
}
