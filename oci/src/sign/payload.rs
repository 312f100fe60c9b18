//! cosign's "simple signing" payload: the JSON document a signature covers, naming the repository and the manifest
//! digest it vouches for.

use serde::{Deserialize, Serialize};

use super::SignError;

/// The media type of the signature layer that holds the payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The `critical.type` of a cosign image signature.
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The document, fields in cosign's order so a payload built here is byte for byte cosign's.
#[derive(Serialize, Deserialize)]
struct SimpleSigning {
    critical: Critical,
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The payload cosign signs for `manifest_digest` ("sha256:HEX") in `docker_reference` ("registry/repository"):
/// `{"critical":{"identity":{"docker-reference":..},"image":{"docker-manifest-digest":..},"type":"cosign container
/// image signature"},"optional":null}`.
pub fn payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    let doc = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_string(),
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_string(),
            },
            kind: SIGNATURE_TYPE.to_string(),
        },
        optional: None,
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Checks a (verified) payload vouches for `expected_digest`, and returns the repository it names. Like cosign, the
/// repository is not compared: a signed manifest copied to another repository stays signed; its digest may not change.
pub fn check_payload(payload: &[u8], expected_digest: &str) -> Result<String, SignError> {
    let doc: SimpleSigning =
        serde_json::from_slice(payload).map_err(|e| SignError::Payload(e.to_string()))?;
    if doc.critical.kind != SIGNATURE_TYPE {
        return Err(SignError::Payload(format!(
            "`critical.type` is `{}`, not `{SIGNATURE_TYPE}`",
            doc.critical.kind
        )));
    }
    let signed = doc.critical.image.docker_manifest_digest;
    if signed != expected_digest {
        return Err(SignError::OtherDigest {
            signed,
            expected: expected_digest.to_string(),
        });
    }
    Ok(doc.critical.identity.docker_reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2286ea7d3b9f56e0a3e5c8b7a3c3cbbd1e5f0a2e5c1f7c2d0d7a6f0d5b9e8c71";

    #[test]
    fn payload_is_cosigns_json() {
        let want = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/filters/hello\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\
             \"optional\":null}}"
        );
        assert_eq!(
            String::from_utf8(payload("127.0.0.1:5000/filters/hello", DIGEST)).expect("utf8"),
            want
        );
    }

    #[test]
    fn check_accepts_only_this_digest_and_type() {
        let other = DIGEST.replace("2286", "9999");
        let with_optional = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"r\"}},\"image\":{{\"docker-manifest-digest\":\
             \"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{\"creator\":\"x\"}}}}"
        );
        let other_type = String::from_utf8(payload("r", DIGEST))
            .expect("utf8")
            .replace("cosign container", "atomic");
        let cases: Vec<(Vec<u8>, Result<&str, &str>)> = vec![
            (payload("reg/a", DIGEST), Ok("reg/a")),
            (with_optional.into_bytes(), Ok("r")),
            (
                payload("reg/a", &other),
                Err("the signature is for sha256:9999"),
            ),
            (
                other_type.into_bytes(),
                Err("`critical.type` is `atomic image signature`"),
            ),
            (
                b"{}".to_vec(),
                Err("not a cosign simple-signing document: missing field `critical`"),
            ),
            (
                b"\xff".to_vec(),
                Err("not a cosign simple-signing document"),
            ),
        ];
        for (doc, want) in cases {
            match (check_payload(&doc, DIGEST), want) {
                (Ok(repo), Ok(want)) => assert_eq!(repo, want),
                (Err(err), Err(want)) => assert!(err.to_string().contains(want), "{err}"),
                (got, want) => panic!("{got:?} != {want:?}"),
            }
        }
    }
}
