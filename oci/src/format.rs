//! The four ways WASM modules are published as OCI artifacts ([`Format`]) and how a manifest is recognised as one of
//! them: which layer holds the module.

use std::fmt;

use crate::{manifest::Descriptor, manifest::Manifest, media};

/// The artifact format a module was pulled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Istio's "compat" image (format B): an OCI manifest whose last layer is a tar+gzip holding `plugin.wasm`.
    IstioOci,
    /// The same as a Docker schema 2 image (`docker build` of `FROM scratch` + `COPY plugin.wasm`).
    IstioDocker,
    /// Solo's WASM artifact (format A): a raw `application/vnd.module.wasm.content.layer.v1+wasm` layer.
    SoloWasm,
    /// The CNCF TAG-Runtime layout (format C): config `application/vnd.wasm.config.v0+json`, one `application/wasm`
    /// layer.
    Cncf,
    /// wasm-to-oci (format D): one `application/vnd.wasm.content.layer.v1+wasm` layer.
    WasmToOci,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::IstioOci => "istio-oci",
            Format::IstioDocker => "istio-docker",
            Format::SoloWasm => "solo-wasm",
            Format::Cncf => "cncf",
            Format::WasmToOci => "wasm-to-oci",
        })
    }
}

/// The format `push` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PushFormat {
    /// Istio's compat image (the default; readable by Istio and Envoy Gateway): an OCI manifest, config
    /// `application/vnd.oci.image.config.v1+json`, one `application/vnd.oci.image.layer.v1.tar+gzip` layer holding
    /// `plugin.wasm`.
    #[default]
    Istio,
    /// The CNCF layout: config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer.
    Cncf,
}

/// The supported layouts, for error messages.
const SUPPORTED: &str = "read are: a last layer tar+gzip holding plugin.wasm (Istio), one \
     application/vnd.module.wasm.content.layer.v1+wasm layer (solo), one application/wasm layer with config \
     application/vnd.wasm.config.v0+json (CNCF), one application/vnd.wasm.content.layer.v1+wasm layer (wasm-to-oci)";

/// Recognises the format of an image manifest (not an index) and picks the layer holding the module.
pub(crate) fn classify(manifest: &Manifest) -> Result<(Format, &Descriptor), String> {
    let layers = &manifest.layers;
    let last = layers.last().ok_or("the manifest has no layers")?;
    let config_type = manifest.config.as_ref().map(|c| c.media_type.as_str());
    let of_type = |t: &str| {
        layers
            .iter()
            .filter(|l| l.media_type == t)
            .collect::<Vec<_>>()
    };
    if manifest.media_type.as_deref() == Some(media::DOCKER_MANIFEST) {
        return match last.media_type.as_str() {
            media::DOCKER_TAR_GZIP | media::OCI_TAR_GZIP => Ok((Format::IstioDocker, last)),
            other => Err(format!(
                "a Docker image whose last layer is {other}, not {}",
                media::DOCKER_TAR_GZIP
            )),
        };
    }
    let cncf = of_type(media::CNCF_WASM);
    if config_type == Some(media::CNCF_CONFIG) || !cncf.is_empty() {
        return match (layers.len(), cncf.first()) {
            (1, Some(layer)) => Ok((Format::Cncf, layer)),
            (n, _) => Err(format!(
                "a CNCF WASM artifact has exactly one {} layer; this one has {n} layer(s) of types {}",
                media::CNCF_WASM,
                types(manifest)
            )),
        };
    }
    for (media_type, format) in [
        (media::SOLO_WASM, Format::SoloWasm),
        (media::WASM_TO_OCI_WASM, Format::WasmToOci),
    ] {
        match of_type(media_type).as_slice() {
            [] => {}
            [layer] => return Ok((format, layer)),
            many => {
                return Err(format!(
                    "{} layers of type {media_type}: which one is the module is ambiguous",
                    many.len()
                ));
            }
        }
    }
    match last.media_type.as_str() {
        media::OCI_TAR_GZIP | media::DOCKER_TAR_GZIP => Ok((Format::IstioOci, last)),
        _ => Err(format!(
            "no WASM module in layers of types {}; the layouts {SUPPORTED}",
            types(manifest)
        )),
    }
}

fn types(manifest: &Manifest) -> String {
    let types: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    format!("[{}]", types.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(media_type: Option<&str>, config: &str, layers: &[&str]) -> Manifest {
        let descriptor = |(i, t): (usize, &&str)| Descriptor {
            media_type: t.to_string(),
            digest: format!("sha256:{i}"),
            size: 1,
            annotations: Default::default(),
            platform: None,
        };
        Manifest {
            schema_version: 2,
            media_type: media_type.map(String::from),
            config: Some(descriptor((99, &config))),
            layers: layers.iter().enumerate().map(descriptor).collect(),
            manifests: vec![],
            annotations: Default::default(),
        }
    }

    #[test]
    fn classifies_every_format() {
        use media::*;
        let oci = Some(OCI_MANIFEST);
        let cases: Vec<(Manifest, Result<(Format, &str), &str>)> = vec![
            (
                manifest(oci, OCI_CONFIG, &[OCI_TAR_GZIP]),
                Ok((Format::IstioOci, "sha256:0")),
            ),
            (
                manifest(None, OCI_CONFIG, &[OCI_TAR_GZIP, OCI_TAR_GZIP]),
                Ok((Format::IstioOci, "sha256:1")),
            ),
            (
                manifest(oci, OCI_CONFIG, &[DOCKER_TAR_GZIP]),
                Ok((Format::IstioOci, "sha256:0")),
            ),
            (
                manifest(Some(DOCKER_MANIFEST), OCI_CONFIG, &[DOCKER_TAR_GZIP]),
                Ok((Format::IstioDocker, "sha256:0")),
            ),
            (
                manifest(
                    Some(DOCKER_MANIFEST),
                    OCI_CONFIG,
                    &[DOCKER_TAR_GZIP, DOCKER_TAR_GZIP],
                ),
                Ok((Format::IstioDocker, "sha256:1")),
            ),
            (
                manifest(Some(DOCKER_MANIFEST), OCI_CONFIG, &[DOCKER_TAR_GZIP, "x"]),
                Err("a Docker image whose last layer is x"),
            ),
            (
                manifest(None, SOLO_CONFIG, &[SOLO_CONFIG, SOLO_WASM]),
                Ok((Format::SoloWasm, "sha256:1")),
            ),
            (
                manifest(oci, SOLO_CONFIG, &[SOLO_WASM]),
                Ok((Format::SoloWasm, "sha256:0")),
            ),
            (
                manifest(oci, SOLO_CONFIG, &[SOLO_WASM, SOLO_WASM]),
                Err("2 layers of type application/vnd.module.wasm.content.layer.v1+wasm"),
            ),
            (
                manifest(oci, CNCF_CONFIG, &[CNCF_WASM]),
                Ok((Format::Cncf, "sha256:0")),
            ),
            (
                manifest(oci, "application/vnd.oci.empty.v1+json", &[CNCF_WASM]),
                Ok((Format::Cncf, "sha256:0")),
            ),
            (
                manifest(oci, CNCF_CONFIG, &[CNCF_WASM, CNCF_WASM]),
                Err("exactly one application/wasm layer; this one has 2"),
            ),
            (
                manifest(oci, CNCF_CONFIG, &[CNCF_WASM, "text/plain"]),
                Err("this one has 2 layer(s) of types [application/wasm, text/plain]"),
            ),
            (
                manifest(oci, CNCF_CONFIG, &["text/plain"]),
                Err("exactly one application/wasm layer"),
            ),
            (
                manifest(oci, WASM_TO_OCI_CONFIG, &[WASM_TO_OCI_WASM]),
                Ok((Format::WasmToOci, "sha256:0")),
            ),
            (
                manifest(
                    oci,
                    WASM_TO_OCI_CONFIG,
                    &[WASM_TO_OCI_WASM, WASM_TO_OCI_WASM],
                ),
                Err("ambiguous"),
            ),
            (manifest(oci, OCI_CONFIG, &[]), Err("no layers")),
            (
                manifest(oci, OCI_CONFIG, &["application/vnd.oci.image.layer.v1.tar"]),
                Err("no WASM module in layers of types [application/vnd.oci.image.layer.v1.tar]"),
            ),
        ];
        for (m, want) in cases {
            let got = classify(&m).map(|(f, l)| (f, l.digest.clone()));
            match (got, want) {
                (Ok((f, d)), Ok((wf, wd))) => assert_eq!((f, d.as_str()), (wf, wd), "{m:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("{m:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn short_names() {
        let names: Vec<String> = [
            Format::IstioOci,
            Format::IstioDocker,
            Format::SoloWasm,
            Format::Cncf,
            Format::WasmToOci,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "istio-oci",
                "istio-docker",
                "solo-wasm",
                "cncf",
                "wasm-to-oci"
            ]
        );
        assert_eq!(PushFormat::default(), PushFormat::Istio);
    }
}
