//! What goes wrong: content that is not what the manifest says, too large, a registry that never answers or has
//! stopped, a plain-http registry where https is expected.

use std::time::{Duration, Instant};

use meshwork_oci::{Auth, NoProgress, OciError, PushFormat, testing::Registry};

use crate::support::{Recorder, client, client_with, forwarder, module, round_trip};

#[tokio::test]
async fn tampered_layer_is_a_digest_error() {
    let registry = Registry::start();
    let client = client();
    let r = registry.reference("filters/tampered:1");
    let wasm = module("tampered", 400);
    let pushed = client
        .push(&r, &wasm, PushFormat::Cncf, &Auth::Anonymous, &NoProgress)
        .await
        .expect("push");
    // The registry serves blobs from disk without checking them: change one byte of the stored layer (a CNCF layer is
    // the module itself, so its digest is the module's sha256).
    let hex = pushed.wasm_sha256;
    let path = registry.data_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut stored = std::fs::read(&path).expect("the stored layer");
    let last = stored.len() - 1;
    stored[last] ^= 0xff;
    std::fs::write(&path, stored).expect("tamper");
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("tampered");
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("expected sha256:{hex}")),
        "{err}"
    );
}

#[tokio::test]
async fn layer_over_the_limit_is_refused_before_download() {
    let registry = Registry::start();
    let r = registry.reference("filters/big:1");
    client()
        .push(
            &r,
            &module("big", 4096),
            PushFormat::Cncf,
            &Auth::Anonymous,
            &NoProgress,
        )
        .await
        .expect("push");
    let small = client_with(|o| o.max_bytes = 1024);
    let progress = Recorder::default();
    let err = small
        .pull(&r, &Auth::Anonymous, &progress)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, OciError::TooLarge { limit: 1024, .. }),
        "{err:?}"
    );
    assert_eq!(err.reason(), "too_large");
    assert!(
        progress.events().is_empty(),
        "nothing was downloaded: {:?}",
        progress.events()
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = client_with(|o| o.timeout = Duration::from_millis(500));
    let r = format!("{address}/x:1").parse().expect("reference");
    let started = Instant::now();
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("timeout");
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            OciError::Timeout {
                operation: "pull",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.retryable());
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_stopped_registry_is_unreachable_and_retryable() {
    let mut registry = Registry::start();
    let client = client();
    let r = registry.reference("filters/down:1");
    let wasm = module("down", 10);
    client
        .push(&r, &wasm, PushFormat::Istio, &Auth::Anonymous, &NoProgress)
        .await
        .expect("push");
    client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect("pull");
    registry.stop();
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("down");
    assert!(matches!(err, OciError::Unreachable { .. }), "{err:?}");
    assert!(err.retryable());
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach {}", registry.address())),
        "{err}"
    );
    registry.restart();
    let pulled = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect("pull after restart");
    assert_eq!(pulled.wasm, wasm, "same port, same data");
}

#[tokio::test]
async fn plain_http_where_https_is_expected_is_insecure() {
    let registry = Registry::start();
    let strict = client_with(|o| o.insecure.clear());
    let r = registry.reference("filters/x:1");
    let err = strict
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("not https");
    assert!(matches!(err, OciError::Insecure { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{0} is not https; pass --insecure {0} if it is a plain-http registry you trust",
            registry.address()
        )
    );
}

#[tokio::test]
async fn an_insecure_registry_answering_tls_in_plain_http_gets_plain_http() {
    let registry = Registry::start();
    // 127.0.0.2 is loopback but not one of the names plain http is used for at once: https is tried first.
    let front_address = forwarder(registry.address()).await;
    let r: meshwork_oci::Reference = format!("{front_address}/filters/x:1")
        .parse()
        .expect("reference");
    let listed = client_with(|o| o.insecure = vec!["127.0.0.2".into()]);
    round_trip(&listed, &r, &Auth::Anonymous, PushFormat::Cncf, "fallback").await;
    let unlisted = client_with(|o| o.insecure = vec!["127.0.0.1".into()]);
    let err = unlisted
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("not listed");
    assert_eq!(err.reason(), "insecure", "{err}");
}
