//! `Client::push`: a module as Istio's compat image (format B, the default) or in the CNCF layout (format C). Both
//! are built from the module alone, nothing time-varying: the CNCF config's `created` is the Unix epoch, the tar.gz
//! has mtime 0, so pushing the same module twice gives the same manifest digest.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    Artifact, Auth, Blob, Client, OciError, Progress, PushFormat, Reference,
    artifact::push_with,
    digest::{sha256_digest, sha256_hex},
    media,
    session::{Action, Session},
    targz,
};

/// The `created` time of pushed CNCF configs: fixed, so digests are reproducible.
const CREATED: &str = "1970-01-01T00:00:00Z";

/// A pushed module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest digest ("sha256:HEX"): what to pin.
    pub manifest_digest: String,
    /// The lower-case hex sha256 of the module.
    pub wasm_sha256: String,
}

impl Client {
    /// Pushes a module under the reference's tag in `format`.
    pub async fn push(
        &self,
        r: &Reference,
        wasm: &[u8],
        format: PushFormat,
        auth: &Auth,
        progress: &dyn Progress,
    ) -> Result<Pushed, OciError> {
        if !wasm.starts_with(media::WASM_MAGIC) {
            return Err(OciError::BadFormat {
                reference: r.to_string(),
                detail: "refusing to push: the file is not a WebAssembly module (it does not start with \\0asm)".into(),
            });
        }
        let artifact = match format {
            PushFormat::Istio => istio_artifact(wasm),
            PushFormat::Cncf => cncf_artifact(wasm),
        };
        self.bounded(r, "push", async {
            let mut s = Session::open(&self.inner, r, auth, Action::Push).await?;
            let manifest_digest = push_with(&mut s, r, &artifact, progress).await?;
            Ok(Pushed {
                manifest_digest,
                wasm_sha256: sha256_hex(wasm),
            })
        })
        .await
    }
}

/// Format B: an OCI image config and one tar+gzip layer holding `plugin.wasm`, annotated as solo's compat variant.
pub(crate) fn istio_artifact(wasm: &[u8]) -> Artifact {
    #[derive(Serialize)]
    struct RootFs {
        r#type: &'static str,
        diff_ids: Vec<String>,
    }
    #[derive(Serialize)]
    struct Config {
        architecture: &'static str,
        os: &'static str,
        rootfs: RootFs,
    }
    let (tgz, diff_id) = targz::pack_plugin(wasm);
    let config = Config {
        architecture: "wasm",
        os: "wasip1",
        rootfs: RootFs {
            r#type: "layers",
            diff_ids: vec![diff_id],
        },
    };
    Artifact {
        media_type: media::OCI_MANIFEST.into(),
        config: Blob::new(media::OCI_CONFIG, json(&config)),
        layers: vec![Blob::new(media::OCI_TAR_GZIP, tgz)],
        annotations: BTreeMap::from([(
            media::VARIANT_ANNOTATION.to_string(),
            "compat".to_string(),
        )]),
    }
}

/// Format C: the v0 WASM config and one `application/wasm` layer titled `plugin.wasm`.
pub(crate) fn cncf_artifact(wasm: &[u8]) -> Artifact {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        created: &'static str,
        architecture: &'static str,
        os: &'static str,
        layer_digests: Vec<String>,
    }
    let config = Config {
        created: CREATED,
        architecture: "wasm",
        os: "wasip1",
        layer_digests: vec![sha256_digest(wasm)],
    };
    Artifact {
        media_type: media::OCI_MANIFEST.into(),
        config: Blob::new(media::CNCF_CONFIG, json(&config)),
        layers: vec![
            Blob::new(media::CNCF_WASM, wasm.to_vec())
                .with_annotation(media::TITLE_ANNOTATION, media::PLUGIN_FILE),
        ],
        annotations: BTreeMap::new(),
    }
}

/// Static strings and string lists always serialize.
fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{format::classify, manifest::Manifest};

    #[test]
    fn pushed_formats_are_reproducible_and_readable() {
        let wasm = b"\0asm\x01\0\0\0";
        let cases = [
            (istio_artifact(wasm), crate::Format::IstioOci),
            (cncf_artifact(wasm), crate::Format::Cncf),
        ];
        for (artifact, format) in cases {
            let bytes = artifact.manifest_bytes();
            let again = match format {
                crate::Format::IstioOci => istio_artifact(wasm),
                _ => cncf_artifact(wasm),
            };
            assert_eq!(
                bytes,
                again.manifest_bytes(),
                "{format}: the same module gives the same manifest"
            );
            let manifest = Manifest::parse(&bytes, None).expect("parses");
            let (got, layer) = classify(&manifest).expect("classifies");
            assert_eq!(got, format);
            assert_eq!(layer.digest, sha256_digest(&artifact.layers[0].data));
        }
        let config = String::from_utf8(cncf_artifact(wasm).config.data).expect("utf-8");
        assert_eq!(
            config,
            format!(
                r#"{{"created":"1970-01-01T00:00:00Z","architecture":"wasm","os":"wasip1","layerDigests":["{}"]}}"#,
                sha256_digest(wasm)
            )
        );
        let istio = istio_artifact(wasm);
        assert_eq!(
            istio
                .annotations
                .get(media::VARIANT_ANNOTATION)
                .map(String::as_str),
            Some("compat")
        );
        let config = String::from_utf8(istio.config.data).expect("utf-8");
        assert!(config.starts_with(r#"{"architecture":"wasm","os":"wasip1","rootfs":{"type":"layers","diff_ids":["sha256:"#), "{config}");
    }
}
