//! https registries: trusted through `ClientOptions::extra_roots` (HTTP/2 by ALPN), refused with a TLS error
//! naming the cause without it, and an insecure-listed https registry with an untrusted certificate is not silently
//! downgraded to plain http.

use meshwork_oci::{Auth, NoProgress, OciError, PushFormat, testing::Registry};

use crate::support::{client_with, forwarder, round_trip};

#[tokio::test]
async fn https_registry_with_an_extra_root() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let registry = Registry::start_https(
        &certified.cert.pem(),
        &certified.signing_key.serialize_pem(),
    );
    let r = registry.reference("filters/tls:1");
    let root = certified.cert.der().clone();
    let trusting = client_with(|o| {
        o.insecure.clear();
        o.extra_roots = vec![root];
    });
    round_trip(&trusting, &r, &Auth::Anonymous, PushFormat::Istio, "tls").await;

    let untrusting = client_with(|o| o.insecure.clear());
    let err = untrusting
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("untrusted");
    assert!(matches!(err, OciError::Tls { .. }), "{err:?}");
    assert_eq!(err.reason(), "tls");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Listed as insecure: an https answer with an untrusted certificate is a TLS error, not a reason for plain http.
    let front = forwarder(registry.address()).await;
    let listed = client_with(|o| o.insecure = vec!["127.0.0.2".into()]);
    let via_front = format!("{front}/filters/tls:1").parse().expect("reference");
    let err = listed
        .pull(&via_front, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("untrusted, listed");
    assert_eq!(err.reason(), "tls", "{err}");
}
