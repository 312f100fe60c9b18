//! Table tests of the signature manifest's layout and of the verification decision.

use super::*;

const DIGEST: &str = "sha256:aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
const OTHER: &str = "sha256:bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22";

fn layer(key: &SigningKey, digest: &str) -> Blob {
    let payload = sign::payload("reg/filters/a", digest);
    signature_layer(
        payload.clone(),
        sign::sign_payload(key, &payload).expect("sign"),
    )
}

fn artifact(layers: Vec<Blob>) -> Artifact {
    Artifact {
        media_type: media::OCI_MANIFEST.into(),
        config: Blob::new(media::OCI_CONFIG, image_config(&layers)),
        layers,
        annotations: Default::default(),
    }
}

#[test]
fn signatures_append_once_per_key_like_cosign() {
    let (a, b) = (
        SigningKey::generate().expect("key"),
        SigningKey::generate().expect("key"),
    );
    let first =
        with_signature(None, layer(&a, DIGEST), &a.verifying_key()).expect("a new manifest");
    assert_eq!(
        (first.media_type.as_str(), first.config.media_type.as_str()),
        (media::OCI_MANIFEST, media::OCI_CONFIG)
    );
    assert_eq!(first.layers.len(), 1);
    assert_eq!(first.layers[0].media_type, SIMPLE_SIGNING_MEDIA_TYPE);
    let config: serde_json::Value =
        serde_json::from_slice(&first.config.data).expect("config json");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        crate::digest::sha256_digest(&first.layers[0].data)
    );
    assert_eq!(config["history"].as_array().map(Vec::len), Some(1));
    // Same key, same payload, a fresh (randomized) signature: nothing to add.
    assert!(with_signature(Some(first.clone()), layer(&a, DIGEST), &a.verifying_key()).is_none());
    let second = with_signature(Some(first.clone()), layer(&b, DIGEST), &b.verifying_key())
        .expect("appended");
    assert_eq!(second.layers[0], first.layers[0]);
    assert_eq!(second.layers.len(), 2);
    let config: serde_json::Value =
        serde_json::from_slice(&second.config.data).expect("config json");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
    let docker = Artifact {
        media_type: media::DOCKER_MANIFEST.into(),
        ..first
    };
    let kept =
        with_signature(Some(docker), layer(&b, DIGEST), &b.verifying_key()).expect("appended");
    assert_eq!(kept.media_type, media::DOCKER_MANIFEST);
}

#[test]
fn verification_takes_the_first_good_signature_and_explains_the_rest() {
    let (a, b) = (
        SigningKey::generate().expect("key"),
        SigningKey::generate().expect("key"),
    );
    let keys = [b.verifying_key(), a.verifying_key()];
    let unannotated = Blob::new(SIMPLE_SIGNING_MEDIA_TYPE, sign::payload("r", DIGEST));
    let foreign = Blob::new(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        b"{}".to_vec(),
    );
    let stranger = SigningKey::generate().expect("key");
    type Case = (&'static str, Vec<Blob>, Result<usize, &'static str>);
    let cases: Vec<Case> = vec![
        ("signed by the second key", vec![layer(&a, DIGEST)], Ok(1)),
        ("signed by the first key", vec![layer(&b, DIGEST)], Ok(0)),
        (
            "a bad layer before a good one",
            vec![layer(&stranger, DIGEST), layer(&a, DIGEST)],
            Ok(1),
        ),
        ("no layers", vec![], Err("unsigned")),
        (
            "layers that are not signatures",
            vec![unannotated, foreign],
            Err("unsigned"),
        ),
        (
            "another key",
            vec![layer(&stranger, DIGEST)],
            Err("verifies with none of the 2 trusted"),
        ),
        (
            "another digest",
            vec![layer(&a, OTHER)],
            Err("the signature is for sha256:bb22"),
        ),
        (
            "other digest beats other key",
            vec![layer(&a, OTHER), layer(&stranger, DIGEST)],
            Err("is for sha256:bb22"),
        ),
    ];
    for (name, layers, want) in cases {
        match (check(&artifact(layers), DIGEST, &keys), want) {
            (Outcome::Verified(v), Ok(index)) => {
                assert_eq!(
                    (v.key_index, v.key_fingerprint.as_str()),
                    (index, keys[index].fingerprint().as_str())
                );
                assert_eq!(
                    (v.manifest_digest.as_str(), v.docker_reference.as_str()),
                    (DIGEST, "reg/filters/a")
                );
            }
            (Outcome::Unsigned, Err("unsigned")) => {}
            (Outcome::Bad(e), Err(want)) => assert!(e.to_string().contains(want), "{name}: {e}"),
            (got, want) => panic!("{name}: {got:?} != {want:?}"),
        }
    }
}
