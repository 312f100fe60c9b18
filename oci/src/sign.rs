//! cosign-compatible key-pair signatures over manifest digests.
//!
//! A signature vouches for one manifest digest. It is stored the way `cosign sign --key` stores it (the "legacy" tag
//! scheme every registry supports, including Distribution 2.8 which has no referrers API): an OCI manifest tagged
//! `sha256-HEX.sig` in the signed image's repository, one layer per signature. Each layer's blob is the "simple
//! signing" JSON [`payload`] naming the repository and digest; its annotation [`SIGNATURE_ANNOTATION`] holds the
//! base64 ASN.1 DER ECDSA P-256/SHA-256 signature over that blob. So `cosign verify --key cosign.pub` accepts what
//! meshwork signs, and meshwork accepts what cosign signs with an unencrypted P-256 key.
//!
//! Why not the `sigstore` crate: key-pair verification is this one ECDSA check over a fixed JSON document, while
//! `sigstore` brings its own registry client stack (oci-client, reqwest), TUF, Fulcio and Rekor clients and, by
//! default, OpenSSL; meshwork already has ring (the mesh CA) and its own registry client. Keyless (Fulcio
//! certificates, Rekor transparency log) and the Sigstore bundle referrer format are out of scope; cosign's own
//! encrypted key files (scrypt + secretbox) are refused with advice rather than decrypted.

mod der;
mod keys;
mod payload;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub use keys::{SigningKey, VerifyingKey};
pub use payload::{SIMPLE_SIGNING_MEDIA_TYPE, check_payload, payload};

/// The layer annotation holding the base64 signature over the layer's payload blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// What went wrong reading a key, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key file could not be used.
    #[error("cannot read the {what}: {reason}")]
    Key {
        /// "private key" or "public key".
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A password-protected key (cosign's own format, or encrypted PKCS#8).
    #[error(
        "the private key is encrypted (`{label}`), which meshwork does not decrypt: use an unencrypted ECDSA P-256 \
         key (`openssl ecparam -name prime256v1 -genkey -noout -out signing.key`) and give cosign an encrypted copy \
         with `cosign import-key-pair --key signing.key`"
    )]
    EncryptedKey {
        /// The PEM label found.
        label: String,
    },
    /// The system random number generator failed (key generation or signing).
    #[error("the system random number generator failed; cannot generate a key or sign")]
    Random,
    /// Verification was asked for with an empty key list.
    #[error(
        "no public keys to verify with: configure the signer's public key (a `cosign.pub` PEM)"
    )]
    NoKeys,
    /// The signature annotation is not base64.
    #[error(
        "the signature is not base64 ({0}): `{SIGNATURE_ANNOTATION}` must hold a base64 ASN.1 signature"
    )]
    Encoding(String),
    /// No key verifies the signature over the payload.
    #[error(
        "the signature verifies with none of the {keys} trusted public key(s): it was made with another key or the \
         payload was altered; sign with a trusted key or trust the signer's public key"
    )]
    NoKeyVerifies {
        /// How many keys were tried.
        keys: usize,
    },
    /// The signed payload is not a cosign image-signature document.
    #[error("the signed payload is not a cosign simple-signing document: {0}")]
    Payload(String),
    /// A valid signature for a different manifest (copied from another image or tag).
    #[error(
        "the signature is for {signed}, not {expected}: it belongs to another manifest; sign {expected} itself"
    )]
    OtherDigest {
        /// The digest the payload names.
        signed: String,
        /// The digest being verified.
        expected: String,
    },
}

impl SignError {
    /// A metric label (one of `OciError::reason`'s): "credentials" for unusable keys, "bad_signature" for
    /// signatures that do not verify.
    pub fn reason(&self) -> &'static str {
        match self {
            SignError::Key { .. }
            | SignError::EncryptedKey { .. }
            | SignError::Random
            | SignError::NoKeys => "credentials",
            SignError::Encoding(_)
            | SignError::NoKeyVerifies { .. }
            | SignError::Payload(_)
            | SignError::OtherDigest { .. } => "bad_signature",
        }
    }
}

/// The tag cosign stores signatures of `manifest_digest` under: "sha256:HEX" → "sha256-HEX.sig".
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The base64 (standard alphabet, padded) ASN.1 DER signature of `payload`, as cosign writes it.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> Result<String, SignError> {
    Ok(STANDARD.encode(key.sign(payload)?))
}

/// The index in `keys` of the first key `signature_b64` verifies `payload` with. Checks the signature only: follow
/// with [`check_payload`] to check what was signed.
pub fn verify_payload(
    keys: &[VerifyingKey],
    payload: &[u8],
    signature_b64: &str,
) -> Result<usize, SignError> {
    if keys.is_empty() {
        return Err(SignError::NoKeys);
    }
    let signature = STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| SignError::Encoding(e.to_string()))?;
    keys.iter()
        .position(|key| key.verifies(payload, &signature))
        .ok_or(SignError::NoKeyVerifies { keys: keys.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
    const OTHER: &str = "sha256:bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22";

    #[test]
    fn tag_names_the_digest() {
        assert_eq!(
            signature_tag(DIGEST),
            format!("sha256-{}.sig", &DIGEST[7..])
        );
    }

    /// Sign, then verify the signature and the payload, as a verifier does.
    fn verify(
        keys: &[VerifyingKey],
        payload: &[u8],
        sig: &str,
        digest: &str,
    ) -> Result<(usize, String), SignError> {
        let index = verify_payload(keys, payload, sig)?;
        Ok((index, check_payload(payload, digest)?))
    }

    #[test]
    fn signatures_verify_only_with_the_key_payload_and_digest_signed() {
        let key = SigningKey::generate().expect("key");
        let stranger = SigningKey::generate().expect("key").verifying_key();
        let good = payload("reg/filters/a", DIGEST);
        let sig = sign_payload(&key, &good).expect("sign");
        let mut tampered = good.clone();
        tampered[20] ^= 1;
        let for_other = payload("reg/filters/a", OTHER);
        let sig_other = sign_payload(&key, &for_other).expect("sign");
        let both = [stranger.clone(), key.verifying_key()];
        type Case<'a> = (
            &'a str,
            &'a [VerifyingKey],
            &'a [u8],
            &'a str,
            Result<usize, &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            ("round trip", &both[1..], &good, &sig, Ok(0)),
            ("second trusted key", &both, &good, &sig, Ok(1)),
            (
                "wrong key",
                &both[..1],
                &good,
                &sig,
                Err("verifies with none of the 1 trusted"),
            ),
            (
                "no keys",
                &[],
                &good,
                &sig,
                Err("no public keys to verify with"),
            ),
            (
                "tampered payload",
                &both,
                &tampered,
                &sig,
                Err("verifies with none of the 2 trusted"),
            ),
            (
                "signed for another digest",
                &both,
                &for_other,
                &sig_other,
                Err("the signature is for sha256:bb22"),
            ),
            (
                "signature of another payload",
                &both,
                &good,
                &sig_other,
                Err("verifies with none"),
            ),
            (
                "not base64",
                &both,
                &good,
                "@@@",
                Err("the signature is not base64"),
            ),
            ("not DER", &both, &good, "AAAA", Err("verifies with none")),
        ];
        for (name, keys, payload, sig, want) in cases {
            match (verify(keys, payload, sig, DIGEST), want) {
                (Ok((index, repo)), Ok(want)) => {
                    assert_eq!((index, repo.as_str()), (want, "reg/filters/a"), "{name}");
                }
                (Err(err), Err(want)) => assert!(err.to_string().contains(want), "{name}: {err}"),
                (got, want) => panic!("{name}: {got:?} != {want:?}"),
            }
        }
    }

    #[test]
    fn reasons_are_metric_labels() {
        assert_eq!(
            SignError::NoKeyVerifies { keys: 1 }.reason(),
            "bad_signature"
        );
        assert_eq!(
            SignError::EncryptedKey { label: "x".into() }.reason(),
            "credentials"
        );
    }

    /// A signature made by cosign 2.x (`cosign sign --key` with the OpenSSL key of the keys tests, imported with
    /// `cosign import-key-pair`) would be the strongest interop check; cosign is not installable here, so this checks
    /// the equivalent: a signature from OpenSSL (`openssl dgst -sha256 -sign`), the same ASN.1 DER ECDSA cosign makes.
    #[test]
    fn verifies_openssl_signatures() {
        let key = VerifyingKey::from_pem(keys::tests::OPENSSL_PUB).expect("pub");
        let (payload, sig) = (OPENSSL_SIGNED.as_bytes(), OPENSSL_SIGNATURE);
        assert_eq!(
            verify_payload(std::slice::from_ref(&key), payload, sig).expect("verifies"),
            0
        );
        assert_eq!(
            check_payload(payload, DIGEST).expect("payload"),
            "127.0.0.1:5000/filters/hello"
        );
    }

    /// `payload("127.0.0.1:5000/filters/hello", DIGEST)` and its signature by `keys::tests::OPENSSL_PKCS8`.
    const OPENSSL_SIGNED: &str = r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/filters/hello"},"image":{"docker-manifest-digest":"sha256:aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11"},"type":"cosign container image signature"},"optional":null}"#;
    const OPENSSL_SIGNATURE: &str = "MEQCIEUjLwHJvOy0oBlyCnZv1M0+C8RikPnRd4j2684YVBlsAiBRYYd9J8iOWowWRT9rdBMBM2AIzFVH/AKirk9Nu0sR2g==";
}
