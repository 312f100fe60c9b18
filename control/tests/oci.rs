//! Modules from a real registry (Debian's docker-registry with htpasswd on loopback) through a real control plane:
//! pull secrets, signature requirements, the cache, and the module endpoint proxies fetch from.
//!
//! Multi-thread runtime: the control plane's thread is stopped while a test blocks (see tests/ca.rs).

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::{path::PathBuf, time::Duration};

use meshwork_control::{
    ca::SpiffeId,
    modules::{ModuleOptions, RegistryOptions},
    run::{ControlPlane, Options},
    source::Polling,
};
use meshwork_oci::{
    Auth, Client, ClientOptions, NoProgress, PushFormat, SigningKey, testing::Registry,
};
use meshwork_pki::api::{CaAuth, CaClientError, CaEndpoint, fetch_module, hex};
use sha2::Digest;

/// The smallest valid module, plus a label so that each push has its own digest.
fn module(label: &str) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    let name = b"label";
    let payload_len = 1 + name.len() + label.len();
    wasm.extend([
        0,
        u8::try_from(payload_len).unwrap(),
        u8::try_from(name.len()).unwrap(),
    ]);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(label.as_bytes());
    wasm
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshwork-oci-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wasm_plugin(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {{ name: {name}, namespace: default }}
spec:
  url: {url}
{extra}---
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_signed_modules_are_pulled_verified_cached_and_served_only_to_the_mesh() {
    let registry = Registry::start_with_basic("puller", "s3cret");
    let auth = Auth::Basic {
        username: "puller".into(),
        password: "s3cret".into(),
    };
    let client = Client::new(ClientOptions::default()).unwrap();
    let (signed, unsigned) = (module("signed"), module("unsigned"));
    for (tag, wasm) in [
        ("filters/signed:1", &signed),
        ("filters/unsigned:1", &unsigned),
    ] {
        let r = registry.reference(tag);
        client
            .push(&r, wasm, PushFormat::Istio, &auth, &NoProgress)
            .await
            .unwrap();
    }
    let key = SigningKey::generate().unwrap();
    client
        .sign(&registry.reference("filters/signed:1"), &key, &auth)
        .await
        .unwrap();
    let public = key.verifying_key().to_pem();

    let root = temp("private");
    let secrets = root.join("secrets");
    std::fs::create_dir_all(secrets.join("default")).unwrap();
    let config = serde_json::json!({"auths": {registry.address(): {"username": "puller", "password": "s3cret"}}});
    std::fs::write(secrets.join("default/regcred.json"), config.to_string()).unwrap();
    let mesh = root.join("mesh");
    std::fs::create_dir_all(&mesh).unwrap();
    let url = |tag: &str| format!("oci://{}/filters/{tag}", registry.address());
    let key_field = format!(
        "  imagePullSecret: regcred\n  verificationKey: |\n{}",
        public
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let yaml = [
        wasm_plugin("signed", &url("signed:1"), &key_field),
        wasm_plugin("unsigned", &url("unsigned:1"), &key_field),
        wasm_plugin("anonymous", &url("signed:1"), ""),
        wasm_plugin(
            "wrong-secret",
            &url("signed:1"),
            "  imagePullSecret: nosuch\n",
        ),
    ]
    .concat();
    std::fs::write(mesh.join("plugins.yaml"), yaml).unwrap();
    let cache = root.join("cache");
    let start = || {
        ControlPlane::start(Options {
            dir: mesh.clone(),
            xds_address: "127.0.0.1:0".parse().unwrap(),
            sidecars: Default::default(),
            polling: Polling::default(),
            ca: Default::default(),
            modules: ModuleOptions {
                cache: Some(cache.clone()),
                registry: RegistryOptions {
                    pull_secrets: Some(secrets.clone()),
                    docker_config: Some(root.join("no-docker-config.json")),
                    ..Default::default()
                },
            },
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    // Starting waits for every module's first attempt.
    let cp = start();
    let status = cp.modules().status();
    let of = |name: &str| {
        status
            .iter()
            .find(|m| m.plugin == format!("default.{name}"))
            .unwrap()
            .clone()
    };
    let served = of("signed").serving.unwrap();
    assert_eq!(served.wasm_sha256, hex(&sha2::Sha256::digest(&signed)));
    assert_eq!(served.signed_by, [key.verifying_key().fingerprint()]);
    let reason = |name: &str| of(name).error.map(|e| e.reason);
    assert_eq!(reason("unsigned"), Some("unsigned"));
    assert!(of("unsigned").serving.is_none());
    assert_eq!(reason("anonymous"), Some("unauthorized"));
    let wrong = of("wrong-secret").error.unwrap();
    assert_eq!(wrong.reason, "credentials");
    assert!(wrong.message.contains("nosuch"), "{wrong}");

    // The module endpoint: mesh identities only, by digest.
    let endpoint = CaEndpoint {
        address: format!("https://{}", cp.ca_address()),
        roots_pem: cp.ca().trust_bundle_pem(),
        server_name: None,
    };
    let id = SpiffeId::new(cp.ca().trust_domain(), "default", "reviews");
    let token = CaAuth::Token(cp.ca().mint_token(&id, Duration::from_secs(60)));
    let got = fetch_module(&endpoint, &token, &served.wasm_sha256, 1 << 20)
        .await
        .unwrap();
    assert_eq!(got, signed);
    let refused = fetch_module(
        &endpoint,
        &CaAuth::Token("mw1.bogus".into()),
        &served.wasm_sha256,
        1 << 20,
    )
    .await;
    assert!(
        matches!(refused, Err(CaClientError::Denied { .. })),
        "{refused:?}"
    );
    // A digest no plugin of the caller's namespace serves is refused, though the identity is the mesh's.
    let missing = fetch_module(&endpoint, &token, &"0".repeat(64), 1 << 20).await;
    assert!(
        matches!(missing, Err(CaClientError::Denied { .. })),
        "{missing:?}"
    );
    let stranger = SpiffeId::new(cp.ca().trust_domain(), "other", "reviews");
    let stranger = CaAuth::Token(cp.ca().mint_token(&stranger, Duration::from_secs(60)));
    let refused = fetch_module(&endpoint, &stranger, &served.wasm_sha256, 1 << 20).await;
    assert!(
        matches!(refused, Err(CaClientError::Denied { .. })),
        "{refused:?}"
    );
    let capped = fetch_module(&endpoint, &token, &served.wasm_sha256, 4).await;
    assert!(
        matches!(capped, Err(CaClientError::BadResponse(_))),
        "{capped:?}"
    );
    let metrics = meshwork_control::admin::metrics(&meshwork_control::admin::Reported {
        status: cp.status_changes(),
        stats: cp.stats().clone(),
        modules: cp.modules().clone(),
    });
    assert!(
        metrics.contains("meshwork_control_oci_pull_failures_total{reason=\"unsigned\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshwork_control_modules{state=\"serving\"} 1"),
        "{metrics}"
    );
    tokio::task::spawn_blocking(move || cp.stop())
        .await
        .unwrap();

    // Restarted with the registry's password changed: the signed module comes from the cache, verified before.
    std::fs::write(secrets.join("default/regcred.json"), "{\"auths\": {}}").unwrap();
    let cp = start();
    let status = cp.modules().status();
    let signed_again = status
        .iter()
        .find(|m| m.plugin == "default.signed")
        .unwrap();
    assert_eq!(signed_again.serving.as_ref(), Some(&served));
    assert_eq!(cp.modules().stats().pulls, 0);
    tokio::task::spawn_blocking(move || cp.stop())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// Serves `wasm` at `/filters/f.wasm` and a redirect to it at `/latest.wasm`, over plain HTTP on loopback.
async fn module_server(wasm: Vec<u8>) -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::{Response, service::service_fn};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let wasm = wasm.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let wasm = wasm.clone();
                    async move {
                        let resp = match req.uri().path() {
                            "/filters/f.wasm" => Response::new(Full::new(bytes::Bytes::from(wasm))),
                            "/latest.wasm" => Response::builder()
                                .status(302)
                                .header("location", "/filters/f.wasm")
                                .body(Full::new(bytes::Bytes::new()))
                                .unwrap(),
                            _ => Response::builder()
                                .status(404)
                                .body(Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_modules_are_downloaded_following_redirects_and_pinned_by_their_digest() {
    let wasm = module("http");
    let sha = hex(&sha2::Sha256::digest(&wasm));
    let addr = module_server(wasm).await;
    let root = temp("http");
    let mesh = root.join("mesh");
    std::fs::create_dir_all(&mesh).unwrap();
    let yaml = [
        wasm_plugin(
            "pinned",
            &format!("http://{addr}/latest.wasm"),
            &format!("  sha256: {sha}\n"),
        ),
        wasm_plugin(
            "wrong",
            &format!("http://{addr}/filters/f.wasm"),
            &format!("  sha256: {}\n", "0".repeat(64)),
        ),
        wasm_plugin("missing", &format!("http://{addr}/nothing.wasm"), ""),
    ]
    .concat();
    std::fs::write(mesh.join("plugins.yaml"), yaml).unwrap();
    let cp = ControlPlane::start(Options {
        dir: mesh,
        xds_address: "127.0.0.1:0".parse().unwrap(),
        sidecars: Default::default(),
        polling: Polling::default(),
        ca: Default::default(),
        modules: ModuleOptions {
            cache: Some(root.join("cache")),
            ..Default::default()
        },
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let status = cp.modules().status();
    let of = |name: &str| {
        status
            .iter()
            .find(|m| m.plugin == format!("default.{name}"))
            .unwrap()
            .clone()
    };
    assert_eq!(of("pinned").serving.map(|r| r.wasm_sha256), Some(sha));
    assert_eq!(of("wrong").error.map(|e| e.reason), Some("digest_mismatch"));
    assert_eq!(of("missing").error.map(|e| e.reason), Some("not_found"));
    tokio::task::spawn_blocking(move || cp.stop())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
