//! Signatures stored in the real registry the way cosign stores them (`sha256-HEX.sig` tags): sign then verify,
//! another key, no signature, a signature copied from another manifest, over plain and token auth.

use meshwork_oci::{
    Auth, Client, OciError, PushFormat, Reference, SigningKey, VerifyingKey, media, sign,
    testing::Registry,
};

use crate::support::{client, round_trip};

/// Pushes a module to `r` and signs it with `key`; returns the manifest digest.
async fn pushed_and_signed(
    client: &Client,
    r: &Reference,
    key: &SigningKey,
    auth: &Auth,
) -> String {
    let pushed = round_trip(
        client,
        r,
        auth,
        PushFormat::Istio,
        r.tag.as_deref().unwrap_or("x"),
    )
    .await;
    let signed = client.sign(r, key, auth).await.expect("sign");
    assert_eq!(signed.manifest_digest, pushed.manifest_digest);
    assert_eq!(
        signed.signature.tag,
        Some(sign::signature_tag(&pushed.manifest_digest))
    );
    assert!(signed.added);
    pushed.manifest_digest
}

#[tokio::test]
async fn sign_then_verify_and_the_ways_verification_fails() {
    let registry = Registry::start();
    let client = client();
    let auth = Auth::Anonymous;
    let key = SigningKey::generate().expect("key");
    let trusted = [key.verifying_key()];
    let r = registry.reference("filters/signed:v1");
    let digest = pushed_and_signed(&client, &r, &key, &auth).await;

    let verified = client
        .verify(&r, &digest, &trusted, &auth)
        .await
        .expect("verifies");
    assert_eq!(
        (verified.key_index, verified.manifest_digest.as_str()),
        (0, digest.as_str())
    );
    assert_eq!(
        verified.docker_reference,
        format!("{}/filters/signed", registry.address())
    );
    assert_eq!(verified.key_fingerprint, trusted[0].fingerprint());

    let stranger = SigningKey::generate().expect("key").verifying_key();
    let err = client
        .verify(&r, &digest, &[stranger], &auth)
        .await
        .expect_err("another key");
    assert!(matches!(err, OciError::BadSignature { .. }), "{err:?}");
    assert_eq!(err.reason(), "bad_signature");
    assert!(
        err.to_string()
            .contains("verifies with none of the 1 trusted public key(s)"),
        "{err}"
    );

    let err = client
        .verify(&r, &digest, &[], &auth)
        .await
        .expect_err("no keys");
    assert_eq!(err.reason(), "credentials");

    let unsigned = registry.reference("filters/unsigned:v1");
    let pushed = round_trip(&client, &unsigned, &auth, PushFormat::Cncf, "unsigned").await;
    let err = client
        .verify(&unsigned, &pushed.manifest_digest, &trusted, &auth)
        .await
        .expect_err("unsigned");
    assert!(matches!(err, OciError::Unsigned { .. }), "{err:?}");
    assert_eq!(err.reason(), "unsigned");

    // The valid signature of v1, copied to the `.sig` tag of another manifest: it verifies, but vouches for v1.
    let copied = client
        .pull_artifact(&r.with_tag(&sign::signature_tag(&digest)), &auth)
        .await
        .expect("pull the signature")
        .expect("a signature manifest");
    assert_eq!(copied.layers[0].media_type, sign::SIMPLE_SIGNING_MEDIA_TYPE);
    assert_eq!(copied.config.media_type, media::OCI_CONFIG);
    let target = unsigned.with_tag(&sign::signature_tag(&pushed.manifest_digest));
    client
        .push_artifact(&target, &copied, &auth)
        .await
        .expect("push the copy");
    let err = client
        .verify(&unsigned, &pushed.manifest_digest, &trusted, &auth)
        .await
        .expect_err("a signature of another manifest");
    assert_eq!(err.reason(), "bad_signature");
    assert!(
        err.to_string()
            .contains(&format!("the signature is for {digest}")),
        "{err}"
    );
}

#[tokio::test]
async fn signatures_accumulate_per_key_through_the_token_service() {
    let registry = Registry::start_with_token("ann", "pw");
    let client = client();
    let auth = Auth::Basic {
        username: "ann".into(),
        password: "pw".into(),
    };
    let (first, second) = (
        SigningKey::generate().expect("key"),
        SigningKey::generate().expect("key"),
    );
    let r = registry.reference("filters/cosigned:v1");
    let digest = pushed_and_signed(&client, &r, &first, &auth).await;
    let again = client.sign(&r, &first, &auth).await.expect("sign again");
    assert!(!again.added, "the same key signs once");
    let both = client
        .sign(&r, &second, &auth)
        .await
        .expect("second signer");
    assert!(both.added);
    assert_ne!(both.signature_digest, again.signature_digest);
    let layers = client
        .pull_artifact(&both.signature, &auth)
        .await
        .expect("pull")
        .expect("signature manifest")
        .layers;
    assert_eq!(layers.len(), 2);

    let only_second: [VerifyingKey; 1] = [second.verifying_key()];
    let verified = client
        .verify(&r, &digest, &only_second, &auth)
        .await
        .expect("second key");
    assert_eq!(verified.key_fingerprint, only_second[0].fingerprint());
    let pinned = registry.reference(&format!("filters/cosigned@{digest}"));
    let verified = client
        .verify(&pinned, &digest, &[first.verifying_key()], &auth)
        .await
        .expect("by digest");
    assert_eq!(verified.key_index, 0);
    let err = client
        .verify(&r, &digest, &[first.verifying_key()], &Auth::Anonymous)
        .await
        .expect_err("anonymous");
    assert_eq!(err.reason(), "unauthorized");
    let issued = registry.token_server().expect("token server").issued();
    assert!(issued >= 2, "push and pull tokens: {issued}");
}
