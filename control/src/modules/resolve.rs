//! Resolving one plugin's `oci://` (or `http(s)://`) module: what is wanted ([`Wanted`], from the WasmPlugin), the registry operations
//! it takes ([`Registry`], implemented over `meshwork-oci` in [`super::oci`] and by fakes in tests), and the steps
//! ([`resolve`]): the cache when the pull policy allows it, else the registry — the manifest digest checked against
//! the pin, the signature against the verification key — then the module into the cache.

use std::{future::Future, pin::Pin, sync::Arc};

use super::store::{ModuleStore, Resolved};
use crate::mesh::{Plugin, PullPolicy};

/// A boxed future the registry returns.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, PullError>> + Send + 'a>>;

/// What a plugin asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `oci://REGISTRY/REPO[:TAG][@sha256:HEX]`, or an `http(s)://` URL of the module itself.
    pub url: String,
    /// Whether `url` is a plain `http(s)://` URL (the module itself) rather than an OCI reference.
    pub http: bool,
    /// What it must have: for OCI the manifest digest (`sha256:HEX`: WasmPlugin `sha256`, or the URL's own digest);
    /// for `http(s)://` the module's SHA-256 (HEX), as in Istio.
    pub pin: Option<String>,
    /// Whether the registry is asked again when the plugin changes (`Always`), or a cached resolution stands.
    pub always: bool,
    /// The plugin's namespace (where its pull secret is).
    pub namespace: String,
    /// The pull secret's name.
    pub secret: Option<String>,
    /// The PEM key a signature must verify with.
    pub key: Option<String>,
}

impl Wanted {
    /// What `plugin` wants, if its module is an `oci://` (or scheme-less) reference or an `http(s)://` URL.
    pub fn of(plugin: &Plugin) -> Option<Wanted> {
        let url = plugin.url.as_str();
        let http = url.starts_with("http://") || url.starts_with("https://");
        // Without a scheme the URL is an OCI reference, as in Istio.
        let rest = match url.strip_prefix("oci://") {
            Some(rest) => rest,
            None if http => url,
            None if !url.contains("://") && !url.is_empty() => url,
            None => return None,
        };
        let sha = plugin.sha256.as_deref().map(|s| s.to_ascii_lowercase());
        let pin = match sha {
            Some(s) if http => Some(s.trim_start_matches("sha256:").to_string()),
            Some(s) if s.starts_with("sha256:") => Some(s),
            Some(s) => Some(format!("sha256:{s}")),
            None if http => None,
            None => rest.split_once('@').map(|(_, d)| d.to_string()),
        };
        let tag = rest.split('@').next().unwrap_or_default();
        let latest = !http
            && (!tag.rsplit('/').next().unwrap_or_default().contains(':')
                || tag.ends_with(":latest"));
        let always = match plugin.pull.policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => false,
            PullPolicy::Unspecified => latest,
        };
        Some(Wanted {
            url: plugin.url.clone(),
            http,
            always: always && pin.is_none(),
            pin,
            namespace: plugin.namespace.clone(),
            secret: plugin.pull.secret.clone(),
            key: plugin.pull.verification_key.clone(),
        })
    }

    /// Whether `r`, a resolution of this URL, has what the pin and the key ask for (`fingerprint`: the key's).
    pub fn accepts(&self, r: &Resolved, fingerprint: Option<&String>) -> bool {
        let pinned = match &self.pin {
            None => true,
            Some(p) if self.http => *p == r.wasm_sha256,
            Some(p) => *p == r.manifest_digest,
        };
        pinned && fingerprint.is_none_or(|f| r.signed_by.contains(f))
    }
}

/// Why a module could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    /// A short label for metrics and status (`unreachable`, `not_found`, `digest_mismatch`, `bad_signature`, ...).
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
}

impl PullError {
    /// An error with `reason` and `message`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        PullError {
            reason,
            message: message.into(),
        }
    }
}

/// A module as pulled.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// `sha256:HEX` of the manifest.
    pub manifest_digest: String,
    /// The module.
    pub wasm: Vec<u8>,
    /// The artifact format's short name.
    pub format: String,
}

/// The registry operations resolution needs.
pub trait Registry: Send + Sync {
    /// The manifest digest `wanted.url` points at now.
    fn digest<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, String>;
    /// Pulls the module.
    fn pull<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, Pulled>;
    /// Downloads the module at an `http(s)://` URL.
    fn download<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, Vec<u8>>;
    /// Checks that the manifest `digest` carries a signature verifying with `wanted.key`; returns the key's
    /// fingerprint.
    fn verify<'a>(&'a self, wanted: &'a Wanted, digest: &'a str) -> Pending<'a, String>;
    /// The fingerprint of a PEM key, or why it is not a key.
    fn fingerprint(&self, key_pem: &str) -> Result<String, PullError>;
}

/// Resolves `wanted`; `current` is what the plugin is served now (an `Always` plugin whose tag still points at it
/// is not pulled again).
pub async fn resolve(
    registry: &dyn Registry,
    store: &Arc<ModuleStore>,
    wanted: &Wanted,
    current: Option<&Resolved>,
) -> Result<(Resolved, bool), PullError> {
    if wanted.http && wanted.key.is_some() {
        return Err(PullError::new(
            "unsigned",
            format!(
                "{}: verificationKey needs an oci:// module (signatures are stored beside OCI artifacts); push it with `meshwork filter push` and sign it",
                wanted.url
            ),
        ));
    }
    let fingerprint = wanted
        .key
        .as_deref()
        .map(|k| registry.fingerprint(k))
        .transpose()?;
    let acceptable = |r: &Resolved| wanted.accepts(r, fingerprint.as_ref());
    let cached = store.recall(&wanted.url).filter(|r| acceptable(r));
    if !wanted.always
        && let Some(r) = cached
    {
        return Ok((r, false));
    }
    if wanted.http {
        return download(registry, store, wanted).await;
    }
    if wanted.always {
        let digest = registry.digest(wanted).await?;
        let same = current
            .into_iter()
            .chain(cached.as_ref())
            .find(|r| r.url == wanted.url && r.manifest_digest == digest && acceptable(r));
        if let Some(r) = same
            && store.contains(&r.wasm_sha256)
        {
            return Ok((r.clone(), false));
        }
    }
    let pulled = registry.pull(wanted).await?;
    if let Some(pin) = &wanted.pin
        && *pin != pulled.manifest_digest
    {
        return Err(PullError::new(
            "digest_mismatch",
            format!(
                "{} has manifest digest {}, but the WasmPlugin pins {pin}; fix `sha256` (or the URL's @digest), or push the module it names",
                wanted.url, pulled.manifest_digest
            ),
        ));
    }
    let signed_by = match &fingerprint {
        Some(_) => vec![registry.verify(wanted, &pulled.manifest_digest).await?],
        None => Vec::new(),
    };
    let hex = store_module(store, pulled.wasm).await?;
    let resolved = Resolved {
        url: wanted.url.clone(),
        manifest_digest: pulled.manifest_digest,
        wasm_sha256: hex,
        format: pulled.format,
        signed_by,
    };
    store
        .remember(&resolved)
        .map_err(|e| cache_error(store, &e))?;
    Ok((resolved, true))
}

/// Downloads an `http(s)://` module, checks it against the pin and the wasm magic, and caches it.
async fn download(
    registry: &dyn Registry,
    store: &Arc<ModuleStore>,
    wanted: &Wanted,
) -> Result<(Resolved, bool), PullError> {
    let wasm = registry.download(wanted).await?;
    if !wasm.starts_with(b"\0asm") {
        return Err(PullError::new(
            "bad_format",
            format!(
                "{} is not a WebAssembly module (no \\0asm header)",
                wanted.url
            ),
        ));
    }
    let hex = {
        use sha2::Digest;
        meshwork_pki::api::hex(&sha2::Sha256::digest(&wasm))
    };
    if let Some(pin) = wanted.pin.as_ref().filter(|p| **p != hex) {
        return Err(PullError::new(
            "digest_mismatch",
            format!(
                "{} has SHA-256 {hex}, but the WasmPlugin pins {pin}; fix `sha256` or the URL",
                wanted.url
            ),
        ));
    }
    store_module(store, wasm).await?;
    let resolved = Resolved {
        url: wanted.url.clone(),
        manifest_digest: String::new(),
        wasm_sha256: hex,
        format: "http".into(),
        signed_by: Vec::new(),
    };
    store
        .remember(&resolved)
        .map_err(|e| cache_error(store, &e))?;
    Ok((resolved, true))
}

/// Puts `wasm` into the cache off the runtime; returns its SHA-256.
async fn store_module(store: &Arc<ModuleStore>, wasm: Vec<u8>) -> Result<String, PullError> {
    let store2 = store.clone();
    tokio::task::spawn_blocking(move || store2.put(&wasm))
        .await
        .map_err(|e| PullError::new("cache", format!("the cache write failed: {e}")))?
        .map_err(|e| cache_error(store, &e))
}

fn cache_error(store: &ModuleStore, e: &std::io::Error) -> PullError {
    PullError::new(
        "cache",
        format!(
            "cannot write the module cache {}: {e}; check --module-cache and free space",
            store.dir().display()
        ),
    )
}
