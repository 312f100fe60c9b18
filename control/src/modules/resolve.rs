//! Resolving one plugin's `oci://` module: what is wanted ([`Wanted`], from the WasmPlugin), the registry operations
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
    /// `oci://REGISTRY/REPO[:TAG][@sha256:HEX]`.
    pub url: String,
    /// The manifest digest it must have (`sha256:HEX`): WasmPlugin `sha256`, or the URL's own digest.
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
    /// What `plugin` wants, if its module is an `oci://` URL.
    pub fn of(plugin: &Plugin) -> Option<Wanted> {
        // Without a scheme the URL is an OCI reference, as in Istio.
        let rest = match plugin.url.strip_prefix("oci://") {
            Some(rest) => rest,
            None if !plugin.url.contains("://") && !plugin.url.is_empty() => &plugin.url,
            None => return None,
        };
        let url_digest = rest.split_once('@').map(|(_, d)| d.to_string());
        let pin = match plugin.sha256.as_deref() {
            Some(s) if s.starts_with("sha256:") => Some(s.to_ascii_lowercase()),
            Some(s) => Some(format!("sha256:{}", s.to_ascii_lowercase())),
            None => url_digest,
        };
        let tag = rest.split('@').next().unwrap_or_default();
        let latest =
            !tag.rsplit('/').next().unwrap_or_default().contains(':') || tag.ends_with(":latest");
        let always = match plugin.pull.policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => false,
            PullPolicy::Unspecified => latest && pin.is_none(),
        };
        Some(Wanted {
            url: plugin.url.clone(),
            always: always && pin.is_none(),
            pin,
            namespace: plugin.namespace.clone(),
            secret: plugin.pull.secret.clone(),
            key: plugin.pull.verification_key.clone(),
        })
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
    let fingerprint = wanted
        .key
        .as_deref()
        .map(|k| registry.fingerprint(k))
        .transpose()?;
    let acceptable = |r: &Resolved| {
        wanted.pin.as_ref().is_none_or(|p| *p == r.manifest_digest)
            && fingerprint.as_ref().is_none_or(|f| r.signed_by.contains(f))
    };
    let cached = store.recall(&wanted.url).filter(|r| acceptable(r));
    if !wanted.always
        && let Some(r) = cached
    {
        return Ok((r, false));
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
    let store2 = store.clone();
    let wasm = pulled.wasm;
    let hex = tokio::task::spawn_blocking(move || store2.put(&wasm))
        .await
        .map_err(|e| PullError::new("cache", format!("the cache write failed: {e}")))?
        .map_err(|e| cache_error(store, &e))?;
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

fn cache_error(store: &ModuleStore, e: &std::io::Error) -> PullError {
    PullError::new(
        "cache",
        format!(
            "cannot write the module cache {}: {e}; check --module-cache and free space",
            store.dir().display()
        ),
    )
}
