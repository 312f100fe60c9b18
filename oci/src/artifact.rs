//! [`Artifact`]: any manifest with a config and layers, pushed and pulled as is (signatures use it, and tests push
//! the formats `push` does not write with it). A pushed manifest is serialized from a struct, so the same artifact
//! always has the same digest.

use std::{collections::BTreeMap, fmt};

use bytes::Bytes;
use serde::Serialize;

use crate::{
    Auth, Client, NoProgress, OciError, Progress, Reference, blob,
    digest::sha256_digest,
    fetch,
    manifest::{Descriptor, Manifest},
    media,
    session::{Action, Session},
};

/// A manifest with its config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The manifest's media type (normally [`media::OCI_MANIFEST`]).
    pub media_type: String,
    /// The config blob.
    pub config: Blob,
    /// The layers, in order.
    pub layers: Vec<Blob>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A blob with its media type and descriptor annotations.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type.
    pub media_type: String,
    /// The content.
    pub data: Vec<u8>,
    /// The descriptor's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("media_type", &self.media_type)
            .field("size", &self.data.len())
            .field("digest", &sha256_digest(&self.data))
            .field("annotations", &self.annotations)
            .finish()
    }
}

impl Blob {
    /// A blob without annotations.
    pub fn new(media_type: impl Into<String>, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            data,
            annotations: BTreeMap::new(),
        }
    }

    /// The same blob with one more descriptor annotation (`org.opencontainers.image.title`, ...).
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Blob {
        self.annotations.insert(key.into(), value.into());
        self
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: sha256_digest(&self.data),
            size: self.data.len() as u64,
            annotations: self.annotations.clone(),
            platform: None,
        }
    }
}

/// The manifest as pushed (`layers` always present, even empty).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pushed<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

impl Artifact {
    /// The manifest's bytes.
    pub(crate) fn manifest_bytes(&self) -> Vec<u8> {
        let manifest = Pushed {
            schema_version: 2,
            media_type: &self.media_type,
            config: self.config.descriptor(),
            layers: self.layers.iter().map(Blob::descriptor).collect(),
            annotations: &self.annotations,
        };
        // Strings, numbers and maps of strings always serialize.
        serde_json::to_vec(&manifest).unwrap_or_default()
    }
}

impl Client {
    /// Pushes an artifact under the reference's tag (or its digest, which must then be the manifest's); returns the
    /// manifest digest.
    pub async fn push_artifact(
        &self,
        r: &Reference,
        artifact: &Artifact,
        auth: &Auth,
    ) -> Result<String, OciError> {
        self.bounded(r, "push", async {
            let mut s = Session::open(&self.inner, r, auth, Action::Push).await?;
            push_with(&mut s, r, artifact, &NoProgress).await
        })
        .await
    }

    /// Fetches the artifact a reference names, every blob verified; `None` when the tag or digest does not exist.
    pub async fn pull_artifact(
        &self,
        r: &Reference,
        auth: &Auth,
    ) -> Result<Option<Artifact>, OciError> {
        self.bounded(r, "pull", async {
            let limit = self.inner.options.max_bytes;
            let bad = |detail: String| OciError::BadFormat {
                reference: r.to_string(),
                detail,
            };
            let mut s = Session::open(&self.inner, r, auth, Action::Pull).await?;
            let Some(fetched) =
                fetch::manifest(&mut s, r, r.manifest_ref(), r.digest.as_deref(), limit).await?
            else {
                return Ok(None);
            };
            let manifest =
                Manifest::parse(&fetched.bytes, fetched.content_type.as_deref()).map_err(bad)?;
            if manifest.is_index() {
                return Err(bad("an image index, not an artifact manifest".into()));
            }
            let config = manifest
                .config
                .as_ref()
                .ok_or_else(|| bad("the manifest has no config".into()))?;
            let mut blobs = Vec::with_capacity(manifest.layers.len() + 1);
            for (descriptor, role) in std::iter::once((config, "config"))
                .chain(manifest.layers.iter().map(|l| (l, "layer")))
            {
                let data = blob::get(&mut s, descriptor, role, limit, &NoProgress).await?;
                blobs.push(Blob {
                    media_type: descriptor.media_type.clone(),
                    data,
                    annotations: descriptor.annotations.clone(),
                });
            }
            let config = blobs.remove(0);
            Ok(Some(Artifact {
                media_type: manifest
                    .media_type
                    .unwrap_or_else(|| media::OCI_MANIFEST.to_string()),
                config,
                layers: blobs,
                annotations: manifest.annotations,
            }))
        })
        .await
    }
}

/// Uploads the blobs the registry lacks, then the manifest; returns its digest.
pub(crate) async fn push_with(
    s: &mut Session<'_>,
    r: &Reference,
    artifact: &Artifact,
    progress: &dyn Progress,
) -> Result<String, OciError> {
    let body = artifact.manifest_bytes();
    let digest = sha256_digest(&body);
    if let Some(pinned) = r.digest.as_deref().filter(|pinned| *pinned != digest) {
        return Err(OciError::DigestMismatch {
            what: format!("the manifest to push as {r}"),
            expected: pinned.to_string(),
            actual: digest,
        });
    }
    let config = &artifact.config;
    blob::put(
        s,
        Bytes::from(config.data.clone()),
        &sha256_digest(&config.data),
        "config",
        progress,
    )
    .await?;
    for layer in &artifact.layers {
        blob::put(
            s,
            Bytes::from(layer.data.clone()),
            &sha256_digest(&layer.data),
            "layer",
            progress,
        )
        .await?;
    }
    let reference = r.tag.as_deref().unwrap_or(&digest);
    fetch::put_manifest(
        s,
        reference,
        &artifact.media_type,
        Bytes::from(body),
        &digest,
    )
    .await?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bytes_are_canonical() {
        let artifact = Artifact {
            media_type: media::OCI_MANIFEST.into(),
            config: Blob::new(media::WASM_TO_OCI_CONFIG, b"{}".to_vec()),
            layers: vec![
                Blob::new(media::WASM_TO_OCI_WASM, b"\0asm".to_vec())
                    .with_annotation(media::TITLE_ANNOTATION, "x.wasm"),
            ],
            annotations: BTreeMap::new(),
        };
        let text = String::from_utf8(artifact.manifest_bytes()).expect("utf-8");
        assert_eq!(
            text,
            format!(
                concat!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                    r#""config":{{"mediaType":"application/vnd.wasm.config.v1+json","digest":"{}","size":2}},"#,
                    r#""layers":[{{"mediaType":"application/vnd.wasm.content.layer.v1+wasm","digest":"{}","size":4,"#,
                    r#""annotations":{{"org.opencontainers.image.title":"x.wasm"}}}}]}}"#
                ),
                sha256_digest(b"{}"),
                sha256_digest(b"\0asm")
            )
        );
        let empty = Artifact {
            layers: vec![],
            ..artifact.clone()
        };
        assert!(String::from_utf8_lossy(&empty.manifest_bytes()).contains(r#""layers":[]"#));
        let debug = format!("{:?}", artifact.config);
        assert!(
            debug.contains("size: 2") && !debug.contains("[123"),
            "{debug}"
        );
    }
}
