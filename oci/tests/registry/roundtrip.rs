//! Push and pull round trips: both push formats, plain and with Basic auth, by tag and by digest.

use meshwork_oci::{Auth, Format, NoProgress, OciError, PushFormat, testing::Registry};

use crate::support::{Recorder, client, module, round_trip};

#[tokio::test]
async fn push_then_pull_in_both_formats() {
    let registry = Registry::start();
    let client = client();
    let wasm = module("roundtrip", 3000);
    for (format, tag, pulled_as) in [
        (PushFormat::Istio, "istio", Format::IstioOci),
        (PushFormat::Cncf, "cncf", Format::Cncf),
    ] {
        let r = registry.reference(&format!("filters/hello:{tag}"));
        let pushing = Recorder::default();
        let pushed = client
            .push(&r, &wasm, format, &Auth::Anonymous, &pushing)
            .await
            .expect("push");
        assert_eq!(
            pushing
                .events()
                .iter()
                .filter(|e| e.starts_with("begin"))
                .count(),
            2,
            "config and layer"
        );
        let again = client
            .push(&r, &wasm, format, &Auth::Anonymous, &NoProgress)
            .await
            .expect("push again");
        assert_eq!(
            again, pushed,
            "{format:?}: pushing the same module twice gives the same digest"
        );

        let pulling = Recorder::default();
        let pulled = client
            .pull(&r, &Auth::Anonymous, &pulling)
            .await
            .expect("pull");
        assert_eq!(pulled.wasm, wasm);
        assert_eq!(pulled.format, pulled_as);
        assert_eq!(pulled.manifest_digest, pushed.manifest_digest);
        assert_eq!(pulled.wasm_sha256, pushed.wasm_sha256);
        let events = pulling.events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].starts_with("begin layer "), "{events:?}");
        let layer_size: u64 = events[0]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("size");
        assert_eq!(
            pulling.bytes(),
            layer_size,
            "advanced by every byte of the layer"
        );

        let resolved = client.resolve(&r, &Auth::Anonymous).await.expect("resolve");
        assert_eq!(resolved, pushed.manifest_digest);
        let pinned = registry.reference(&format!("filters/hello@{resolved}"));
        let by_digest = client
            .pull(&pinned, &Auth::Anonymous, &NoProgress)
            .await
            .expect("pull by digest");
        assert_eq!(
            (by_digest.wasm, by_digest.manifest_digest),
            (wasm.clone(), resolved.clone())
        );
        assert_eq!(
            client
                .resolve(&pinned, &Auth::Anonymous)
                .await
                .expect("digest resolves to itself"),
            resolved
        );
    }
    assert_ne!(
        client
            .resolve(&registry.reference("filters/hello:istio"), &Auth::Anonymous)
            .await
            .expect("istio"),
        client
            .resolve(&registry.reference("filters/hello:cncf"), &Auth::Anonymous)
            .await
            .expect("cncf"),
    );
    let mut tags = client
        .tags(&registry.reference("filters/hello"), &Auth::Anonymous)
        .await
        .expect("tags");
    tags.sort();
    assert_eq!(tags, ["cncf", "istio"]);
}

#[tokio::test]
async fn basic_auth_round_trip_and_refusals() {
    let registry = Registry::start_with_basic("alice", "s3cret");
    let client = client();
    let r = registry.reference("private/x:1");
    let good = Auth::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    round_trip(&client, &r, &good, PushFormat::Istio, "private").await;

    let wrong = Auth::Basic {
        username: "alice".into(),
        password: "wrong".into(),
    };
    let err = client
        .pull(&r, &wrong, &NoProgress)
        .await
        .expect_err("a wrong password");
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.reason(), "unauthorized");
    assert_eq!(
        err.to_string(),
        format!(
            "the registry refused the credentials for private/x: check --username/--password or the docker config \
             entry for {}",
            registry.address()
        )
    );
    assert!(!err.retryable());
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("no credentials");
    assert!(
        matches!(err, OciError::CredentialsRequired { .. }),
        "{err:?}"
    );
    let err = client
        .push(&r, &module("x", 1), PushFormat::Cncf, &wrong, &NoProgress)
        .await
        .expect_err("push");
    assert_eq!(err.reason(), "unauthorized");
}

#[tokio::test]
async fn missing_tags_and_repositories() {
    let registry = Registry::start();
    let client = client();
    let r = registry.reference("filters/absent:v9");
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("no such tag");
    assert_eq!(
        err.to_string(),
        format!(
            "{}/filters/absent:v9: no such tag or digest in filters/absent",
            registry.address()
        )
    );
    assert_eq!(err.reason(), "not_found");
    assert_eq!(
        client
            .resolve(&r, &Auth::Anonymous)
            .await
            .expect_err("resolve")
            .reason(),
        "not_found"
    );
    assert_eq!(
        client
            .pull_artifact(&r, &Auth::Anonymous)
            .await
            .expect("no artifact"),
        None
    );
}
