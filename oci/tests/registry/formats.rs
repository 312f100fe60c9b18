//! The formats `push` does not write, pushed as raw artifacts: solo's (A) and wasm-to-oci's (D); a 3-layer CNCF
//! artifact; the artifact API itself.

use std::collections::BTreeMap;

use meshwork_oci::{
    Artifact, Auth, Blob, Format, NoProgress, PushFormat, media, testing::Registry,
};

use crate::support::{client, module};

fn blob(media_type: &str, data: &[u8], title: Option<&str>) -> Blob {
    let blob = Blob::new(media_type, data.to_vec());
    match title {
        Some(title) => blob.with_annotation(media::TITLE_ANNOTATION, title),
        None => blob,
    }
}

#[tokio::test]
async fn pulls_solo_and_wasm_to_oci_artifacts() {
    let registry = Registry::start();
    let client = client();
    let wasm = module("artifact", 500);
    let solo_config = br#"{"type":"envoy_proxy","abiVersions":["v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f"],"config":{"rootIds":["x"]}}"#;
    let cases = [
        (
            "solo",
            Artifact {
                media_type: media::OCI_MANIFEST.into(),
                config: blob(media::SOLO_CONFIG, solo_config, None),
                layers: vec![
                    blob(media::SOLO_CONFIG, solo_config, Some("runtime-config.json")),
                    blob(media::SOLO_WASM, &wasm, Some("filter.wasm")),
                ],
                annotations: BTreeMap::from([(
                    "module.wasm.runtime/type".to_string(),
                    "envoy_proxy".to_string(),
                )]),
            },
            Format::SoloWasm,
        ),
        (
            "wasm-to-oci",
            Artifact {
                media_type: media::OCI_MANIFEST.into(),
                config: blob(media::WASM_TO_OCI_CONFIG, b"{}", None),
                layers: vec![blob(media::WASM_TO_OCI_WASM, &wasm, None)],
                annotations: BTreeMap::new(),
            },
            Format::WasmToOci,
        ),
    ];
    for (tag, artifact, format) in cases {
        let r = registry.reference(&format!("filters/raw:{tag}"));
        let digest = client
            .push_artifact(&r, &artifact, &Auth::Anonymous)
            .await
            .expect("push artifact");
        let pulled = client
            .pull(&r, &Auth::Anonymous, &NoProgress)
            .await
            .expect("pull");
        assert_eq!(
            (
                pulled.format,
                pulled.wasm.as_slice(),
                pulled.manifest_digest.as_str()
            ),
            (format, wasm.as_slice(), digest.as_str())
        );
        let back = client
            .pull_artifact(&r, &Auth::Anonymous)
            .await
            .expect("pull artifact")
            .expect("exists");
        assert_eq!(back, artifact, "{tag}: the artifact comes back as pushed");
        let pinned = r.with_digest(&digest);
        assert_eq!(
            client
                .push_artifact(&pinned, &artifact, &Auth::Anonymous)
                .await
                .expect("pinned push"),
            digest
        );
    }
}

#[tokio::test]
async fn refuses_what_is_not_a_single_module() {
    let registry = Registry::start();
    let client = client();
    let wasm = module("two", 10);
    let cases = [
        (
            "two-layers",
            Artifact {
                media_type: media::OCI_MANIFEST.into(),
                config: blob(media::CNCF_CONFIG, b"{}", None),
                layers: vec![
                    blob(media::CNCF_WASM, &wasm, None),
                    blob(media::CNCF_WASM, &module("b", 1), None),
                ],
                annotations: BTreeMap::new(),
            },
            "exactly one application/wasm layer; this one has 2",
        ),
        (
            "not-wasm",
            Artifact {
                media_type: media::OCI_MANIFEST.into(),
                config: blob(media::CNCF_CONFIG, b"{}", None),
                layers: vec![blob(media::CNCF_WASM, b"#!/bin/sh\necho hi\n", None)],
                annotations: BTreeMap::new(),
            },
            "the cncf artifact's module is not WebAssembly",
        ),
        (
            "tarball",
            Artifact {
                media_type: media::OCI_MANIFEST.into(),
                config: blob(media::OCI_CONFIG, b"{}", None),
                layers: vec![blob("application/vnd.oci.image.layer.v1.tar", b"", None)],
                annotations: BTreeMap::new(),
            },
            "no WASM module in layers of types [application/vnd.oci.image.layer.v1.tar]",
        ),
    ];
    for (tag, artifact, want) in cases {
        let r = registry.reference(&format!("filters/bad:{tag}"));
        client
            .push_artifact(&r, &artifact, &Auth::Anonymous)
            .await
            .expect("push artifact");
        let err = client
            .pull(&r, &Auth::Anonymous, &NoProgress)
            .await
            .expect_err(tag);
        assert_eq!(err.reason(), "bad_format", "{err}");
        assert!(err.to_string().contains(want), "{tag}: {err}");
    }
    let err = client
        .push(
            &registry.reference("filters/bad:text"),
            b"not wasm",
            meshwork_oci::PushFormat::Cncf,
            &Auth::Anonymous,
            &NoProgress,
        )
        .await
        .expect_err("push refuses non-wasm");
    assert!(
        err.to_string().contains("not a WebAssembly module"),
        "{err}"
    );
}

#[tokio::test]
async fn pulls_a_docker_schema2_image() {
    let registry = Registry::start();
    let client = client();
    let wasm = module("docker", 700);
    let oci = registry.reference("filters/docker:oci");
    client
        .push(
            &oci,
            &wasm,
            PushFormat::Istio,
            &Auth::Anonymous,
            &NoProgress,
        )
        .await
        .expect("push");
    let mut image = client
        .pull_artifact(&oci, &Auth::Anonymous)
        .await
        .expect("pull artifact")
        .expect("exists");
    // What `docker build` of `FROM scratch` + `COPY plugin.wasm ./` pushes: the same tar.gz under Docker's types.
    image.media_type = media::DOCKER_MANIFEST.into();
    image.config.media_type = "application/vnd.docker.container.image.v1+json".into();
    image.layers[0].media_type = media::DOCKER_TAR_GZIP.into();
    image.annotations.clear();
    let docker = registry.reference("filters/docker:docker");
    let digest = client
        .push_artifact(&docker, &image, &Auth::Anonymous)
        .await
        .expect("push docker image");
    let pulled = client
        .pull(&docker, &Auth::Anonymous, &NoProgress)
        .await
        .expect("pull");
    assert_eq!(
        (pulled.format, pulled.wasm, pulled.manifest_digest),
        (Format::IstioDocker, wasm, digest)
    );
}
