//! `Client::pull`: the manifest (through an image index if there is one), its format, the one layer holding the
//! module, and the module itself (extracted from the tar.gz for Istio's format), every digest verified.

use tracing::debug;

use crate::{
    Auth, Client, Format, OciError, Progress, Reference, blob,
    digest::sha256_hex,
    fetch::{self, Fetched},
    format::classify,
    index,
    manifest::Manifest,
    media,
    session::{Action, Session},
    targz::{self, ExtractError},
};

/// A pulled module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The digest of the manifest the reference resolves to ("sha256:HEX"): for an image index, the index's digest
    /// (what the tag points at and what `resolve` returns), not the chosen entry's.
    pub manifest_digest: String,
    /// The module's bytes.
    pub wasm: Vec<u8>,
    /// The lower-case hex sha256 of `wasm` (no `sha256:` prefix).
    pub wasm_sha256: String,
    /// The format it was published in.
    pub format: Format,
}

impl Client {
    /// Pulls the module in any of the formats of [`Format`], verifying every digest.
    pub async fn pull(
        &self,
        r: &Reference,
        auth: &Auth,
        progress: &dyn Progress,
    ) -> Result<Pulled, OciError> {
        self.bounded(r, "pull", self.pull_now(r, auth, progress))
            .await
    }

    async fn pull_now(
        &self,
        r: &Reference,
        auth: &Auth,
        progress: &dyn Progress,
    ) -> Result<Pulled, OciError> {
        let limit = self.inner.options.max_bytes;
        let bad = |detail: String| OciError::BadFormat {
            reference: r.to_string(),
            detail,
        };
        let mut s = Session::open(&self.inner, r, auth, Action::Pull).await?;
        let top = fetch::manifest(&mut s, r, r.manifest_ref(), r.digest.as_deref(), limit)
            .await?
            .ok_or_else(|| fetch::not_found(r))?;
        let mut manifest = parse(&top).map_err(bad)?;
        if manifest.is_index() {
            let (entry, why) = index::select(&manifest.manifests).map_err(bad)?;
            debug!(reference = %r, entry = %entry.digest, platform = ?entry.platform, "image index: chose an entry because {why}");
            if entry.size > limit {
                let what = format!("manifest {} of {r}", entry.digest);
                return Err(OciError::TooLarge {
                    what,
                    size: entry.size,
                    limit,
                });
            }
            let child = fetch::manifest(&mut s, r, &entry.digest, Some(&entry.digest), limit)
                .await?
                .ok_or_else(|| {
                    bad(format!(
                        "the image index names {}, which the registry does not have",
                        entry.digest
                    ))
                })?;
            manifest = parse(&child).map_err(bad)?;
            if manifest.is_index() {
                return Err(bad("an image index inside an image index".into()));
            }
        }
        let (format, layer) = classify(&manifest).map_err(bad)?;
        debug!(reference = %r, %format, layer = %layer.digest, size = layer.size, "pulling the module's layer");
        let data = blob::get(&mut s, layer, "layer", limit, progress).await?;
        let wasm = match format {
            Format::IstioOci | Format::IstioDocker => {
                targz::extract_plugin(&data, limit).map_err(|e| match e {
                    ExtractError::TooLarge(size) => OciError::TooLarge {
                        what: format!("{} in {r}", media::PLUGIN_FILE),
                        size,
                        limit,
                    },
                    ExtractError::Bad(detail) => bad(detail),
                })?
            }
            _ => data,
        };
        if !wasm.starts_with(media::WASM_MAGIC) {
            return Err(bad(format!(
                "the {format} artifact's module is not WebAssembly (it does not start with \\0asm)"
            )));
        }
        Ok(Pulled {
            manifest_digest: top.digest,
            wasm_sha256: sha256_hex(&wasm),
            wasm,
            format,
        })
    }
}

fn parse(fetched: &Fetched) -> Result<Manifest, String> {
    Manifest::parse(&fetched.bytes, fetched.content_type.as_deref())
}
