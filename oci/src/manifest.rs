//! The JSON of manifests and image indexes (OCI and Docker schema 2), as far as this crate reads and writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::media;

/// A content descriptor: a blob or a manifest by media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// "sha256:HEX".
    pub digest: String,
    /// The size in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an image index entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Platform {
    /// "amd64", "wasm", ...
    #[serde(default)]
    pub architecture: String,
    /// "linux", "wasip1", ...
    #[serde(default)]
    pub os: String,
}

/// A manifest or an image index (the fields of both; `layers` or `manifests` is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob (manifests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    /// The layers (manifests only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Descriptor>,
    /// The entries (indexes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses a manifest or index; `content_type` (the response's, if any) stands in for a missing `mediaType`.
    pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
        let mut manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
        if manifest.schema_version != 2 {
            return Err(format!(
                "manifest schemaVersion {} is not supported (only 2)",
                manifest.schema_version
            ));
        }
        if manifest.media_type.is_none() {
            manifest.media_type =
                content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        }
        Ok(manifest)
    }

    /// Whether this is an image index (OCI) or a manifest list (Docker).
    pub(crate) fn is_index(&self) -> bool {
        match self.media_type.as_deref() {
            Some(media::OCI_INDEX | media::DOCKER_LIST) => true,
            Some(media::OCI_MANIFEST | media::DOCKER_MANIFEST) => false,
            _ => self.config.is_none() && !self.manifests.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_manifests_and_indexes() {
        let manifest =
            br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:1","size":2},
            "layers":[{"mediaType":"b","digest":"sha256:3","size":4,"annotations":{"k":"v"}}]}"#;
        // (body, Content-Type, Ok((mediaType, is an index)) or Err(part of the message))
        type Case<'a> = (
            &'a [u8],
            Option<&'a str>,
            Result<(Option<&'a str>, bool), &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (manifest, None, Ok((None, false))),
            (manifest, Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"), Ok((Some(media::OCI_MANIFEST), false))),
            (br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#, None, Ok((Some(media::OCI_INDEX), true))),
            (br#"{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:1","size":1}]}"#, None, Ok((None, true))),
            (br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#, None, Ok((Some(media::DOCKER_LIST), true))),
            (br#"{"schemaVersion":1,"name":"x"}"#, None, Err("schemaVersion 1 is not supported")),
            (b"<html>", None, Err("not valid JSON")),
            (br#"{"schemaVersion":2,"layers":[{"mediaType":"b"}]}"#, None, Err("not valid JSON")),
        ];
        for (bytes, content_type, want) in cases {
            let text = String::from_utf8_lossy(bytes);
            match (Manifest::parse(bytes, content_type), want) {
                (Ok(m), Ok((media_type, index))) => {
                    assert_eq!(m.media_type.as_deref(), media_type, "{text}");
                    assert_eq!(m.is_index(), index, "{text}");
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
