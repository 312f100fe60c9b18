//! Signatures in the registry, stored as `cosign sign --key` stores them: the signature manifest is tagged
//! `sha256-HEX.sig` (see [`crate::sign::signature_tag`]) in the signed repository, its layers are simple-signing
//! payloads annotated with their signatures, and a new signature is appended to the layers already there.

use crate::sign::{
    self, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignError, SigningKey, VerifyingKey,
};
use crate::{Artifact, Auth, Blob, Client, OciError, Reference, media};

/// The result of [`Client::sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signed manifest's digest.
    pub manifest_digest: String,
    /// Where the signature is: `registry/repository:sha256-HEX.sig`.
    pub signature: Reference,
    /// The signature manifest's digest.
    pub signature_digest: String,
    /// False when the manifest already carried this key's signature (nothing was pushed).
    pub added: bool,
}

/// The result of [`Client::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The verified manifest digest.
    pub manifest_digest: String,
    /// The index, in the keys given, of the key that verified.
    pub key_index: usize,
    /// That key's fingerprint ("sha256:HEX" of its SubjectPublicKeyInfo).
    pub key_fingerprint: String,
    /// The repository the signed payload names (another one when the image was copied after signing).
    pub docker_reference: String,
}

impl Client {
    /// Signs the manifest `r` resolves to with `key` and pushes the signature under its `.sig` tag, next to the
    /// signatures already there (cosign's layout, so `cosign verify --key` accepts it). Signing again with the same
    /// key adds nothing.
    pub async fn sign(
        &self,
        r: &Reference,
        key: &SigningKey,
        auth: &Auth,
    ) -> Result<Signed, OciError> {
        let manifest_digest = self.resolve(r, auth).await?;
        let signature = r.with_tag(&sign::signature_tag(&manifest_digest));
        let payload = sign::payload(
            &format!("{}/{}", r.registry, r.repository),
            &manifest_digest,
        );
        let existing = self.pull_artifact(&signature, auth).await?;
        let layer = signature_layer(payload.clone(), sign::sign_payload(key, &payload)?);
        let (signature_digest, added) = match with_signature(existing, layer, &key.verifying_key())
        {
            Some(artifact) => (self.push_artifact(&signature, &artifact, auth).await?, true),
            None => (self.resolve(&signature, auth).await?, false),
        };
        tracing::info!(reference = %r, %manifest_digest, %signature_digest, added, "signed");
        Ok(Signed {
            manifest_digest,
            signature,
            signature_digest,
            added,
        })
    }

    /// Checks that a signature stored under `manifest_digest`'s `.sig` tag in `r`'s repository verifies with one of
    /// `keys` and vouches for that digest. Errors: reason "unsigned" when there is no signature, "bad_signature" when
    /// none verifies or the verified payload names another manifest, "credentials" when `keys` is empty.
    pub async fn verify(
        &self,
        r: &Reference,
        manifest_digest: &str,
        keys: &[VerifyingKey],
        auth: &Auth,
    ) -> Result<Verified, OciError> {
        if keys.is_empty() {
            return Err(SignError::NoKeys.into());
        }
        let signature = r.with_tag(&sign::signature_tag(manifest_digest));
        let artifact = self.pull_artifact(&signature, auth).await?;
        let unsigned = || OciError::Unsigned {
            reference: r.to_string(),
            digest: manifest_digest.to_string(),
        };
        match check(
            artifact.as_ref().ok_or_else(unsigned)?,
            manifest_digest,
            keys,
        ) {
            Outcome::Verified(verified) => Ok(verified),
            Outcome::Unsigned => Err(unsigned()),
            Outcome::Bad(e) => Err(OciError::BadSignature {
                reference: r.with_digest(manifest_digest).to_string(),
                detail: e.to_string(),
            }),
        }
    }
}

/// One signature layer: the payload, annotated with its base64 signature.
fn signature_layer(payload: Vec<u8>, signature_b64: String) -> Blob {
    Blob::new(SIMPLE_SIGNING_MEDIA_TYPE, payload)
        .with_annotation(SIGNATURE_ANNOTATION, signature_b64)
}

/// The signature manifest with `layer` appended to `existing` (a new one when there is none), or None when `existing`
/// already holds a signature by `key` over the same payload.
fn with_signature(existing: Option<Artifact>, layer: Blob, key: &VerifyingKey) -> Option<Artifact> {
    let signed_already = |l: &Blob| {
        let signature = l
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .map_or("", String::as_str);
        l.data == layer.data
            && sign::verify_payload(std::slice::from_ref(key), &l.data, signature).is_ok()
    };
    let mut artifact = existing.unwrap_or_else(|| Artifact {
        media_type: media::OCI_MANIFEST.to_string(),
        config: Blob::new(media::OCI_CONFIG, Vec::new()),
        layers: Vec::new(),
        annotations: Default::default(),
    });
    if artifact.layers.iter().any(signed_already) {
        return None;
    }
    artifact.layers.push(layer);
    artifact.config.data = image_config(&artifact.layers);
    Some(artifact)
}

/// The image config cosign's signature images carry: empty but for one `diff_id` (the layer digest: layers are not
/// compressed) and one history entry per layer.
fn image_config(layers: &[Blob]) -> Vec<u8> {
    let zero = "0001-01-01T00:00:00Z";
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| crate::digest::sha256_digest(&l.data))
        .collect();
    let history: Vec<_> = layers
        .iter()
        .map(|_| serde_json::json!({ "created": zero }))
        .collect();
    let config = serde_json::json!({
        "architecture": "", "created": zero, "history": history, "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids }, "config": {},
    });
    config.to_string().into_bytes()
}

/// What the signature layers of a `.sig` manifest say about `digest`.
#[derive(Debug)]
enum Outcome {
    Verified(Verified),
    Unsigned,
    Bad(SignError),
}

/// Accepts the first signature layer that verifies with one of `keys` and names `digest`. When none does, the error
/// of a verified signature over another payload (more telling) wins over a signature no key verifies.
fn check(artifact: &Artifact, digest: &str, keys: &[VerifyingKey]) -> Outcome {
    let (mut verified_elsewhere, mut unverified) = (None, None);
    let layers = artifact
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE);
    for layer in layers {
        let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        match sign::verify_payload(keys, &layer.data, signature) {
            Err(e) => unverified = Some(e),
            Ok(index) => match sign::check_payload(&layer.data, digest) {
                Err(e) => verified_elsewhere = Some(e),
                Ok(docker_reference) => {
                    return Outcome::Verified(Verified {
                        manifest_digest: digest.to_string(),
                        key_index: index,
                        key_fingerprint: keys[index].fingerprint(),
                        docker_reference,
                    });
                }
            },
        }
    }
    verified_elsewhere
        .or(unverified)
        .map_or(Outcome::Unsigned, Outcome::Bad)
}

#[cfg(test)]
mod tests;
