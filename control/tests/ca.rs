//! The mesh CA end to end: a control plane on loopback with a temporary CA directory, the `meshwork-pki` client
//! over TLS, and openssl (a third-party implementation) verifying what the CA issues and what its port serves.
//!
//! The tests run on a multi-thread runtime so that the clients' connections close while a test blocks stopping its
//! control plane (on a current-thread runtime nothing polls them, and the server waits out its one-second grace).

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use envoy_types::pb::envoy::{
    config::core::v3::Node,
    service::discovery::v3::{
        DiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    },
};
use meshwork_control::{
    ads::type_url::CLUSTER,
    ca::{CaFiles, CaOptions, SpiffeId},
    run::{ControlPlane, Options},
    source::Polling,
};
use meshwork_pki::{
    Authority, CertInfo, KeyAndCsr,
    api::{
        CaAuth, CaClientError, CaEndpoint, IstioCertificateRequest, IstioCertificateResponse,
        request_certificate,
    },
    certs_from_pem, inspect,
};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

const HOUR: Duration = Duration::from_secs(3600);

/// A fresh directory under the system temp dir.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshwork-ca-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A control plane serving an empty mesh directory (or `mesh` if given) with `ca`.
fn start(root: &Path, ca: CaOptions, mesh: Option<PathBuf>) -> ControlPlane {
    let dir = mesh.unwrap_or_else(|| {
        let dir = root.join("mesh");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    ControlPlane::start(Options {
        dir,
        xds_address: "127.0.0.1:0".parse().unwrap(),
        sidecars: Default::default(),
        polling: Polling::default(),
        ca,
        modules: Default::default(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn ca_in(dir: &Path) -> CaOptions {
    CaOptions {
        dir: Some(dir.join("ca")),
        ..CaOptions::default()
    }
}

fn endpoint(cp: &ControlPlane) -> CaEndpoint {
    CaEndpoint {
        address: format!("https://{}", cp.ca_address()),
        roots_pem: cp.ca().trust_bundle_pem(),
        server_name: None,
    }
}

fn productpage() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "productpage")
}

fn leaf(chain: &[String]) -> CertInfo {
    inspect(&certs_from_pem(chain[0].as_bytes()).unwrap()[0]).unwrap()
}

/// Asks for a certificate for `id` with `auth`; returns the chain and the key.
async fn obtain(
    cp: &ControlPlane,
    auth: &CaAuth,
    id: &SpiffeId,
    ttl: Duration,
) -> Result<(Vec<String>, String), CaClientError> {
    let request = KeyAndCsr::generate(id).unwrap();
    let chain = request_certificate(&endpoint(cp), auth, &request.csr_pem, ttl).await?;
    Ok((chain, request.key_pem))
}

/// A certificate for `id`, valid for an hour, obtained with a bootstrap token; and its key.
async fn with_token(cp: &ControlPlane, id: &SpiffeId) -> (Vec<String>, String) {
    let token = CaAuth::Token(cp.ca().mint_token(id, HOUR));
    obtain(cp, &token, id, HOUR).await.unwrap()
}

/// A tonic channel to the CA port, verifying it for `server_name` against the trust bundle, without a client
/// certificate.
async fn tls_channel(cp: &ControlPlane, server_name: &str) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cp.ca().trust_bundle_pem()))
        .domain_name(server_name);
    Endpoint::from_shared(format!("https://{}", cp.ca_address()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `openssl verify -CAfile bundle -untrusted chain leaf`: whether it printed `leaf.pem: OK`, and its output.
fn openssl_verify(dir: &Path, bundle_pem: &str, chain: &[String]) -> (bool, String) {
    let (bundle, intermediates, leaf) = (
        dir.join("bundle.pem"),
        dir.join("chain.pem"),
        dir.join("leaf.pem"),
    );
    std::fs::write(&bundle, bundle_pem).unwrap();
    std::fs::write(&intermediates, chain[1..].concat()).unwrap();
    std::fs::write(&leaf, &chain[0]).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&bundle)
        .arg("-untrusted")
        .arg(&intermediates)
        .arg(&leaf)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("leaf.pem: OK"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_token_gets_a_certificate_that_openssl_verifies() {
    let dir = temp("token");
    let cp = start(&dir, ca_in(&dir), None);
    let id = productpage();
    let token = CaAuth::Token(cp.ca().mint_token(&id, HOUR));
    let (chain, _) = obtain(&cp, &token, &id, HOUR).await.unwrap();
    assert_eq!(chain.len(), 2, "leaf and root");
    let info = leaf(&chain);
    assert_eq!(info.uri_sans, [id.to_string()]);
    assert!(!info.is_ca);
    let life = info.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        life <= HOUR && life > HOUR - Duration::from_secs(10),
        "{life:?}"
    );
    assert_eq!(chain[1], cp.ca().root_pem());
    let (ok, out) = openssl_verify(&dir, &cp.ca().trust_bundle_pem(), &chain);
    assert!(ok, "{out}");

    // Zero asks for the default (24 h).
    let (chain, _) = obtain(&cp, &token, &id, Duration::ZERO).await.unwrap();
    let life = leaf(&chain)
        .not_after
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(life > 23 * HOUR && life <= 24 * HOUR, "{life:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_issued_certificate_renews_itself() {
    let dir = temp("renew");
    let cp = start(&dir, CaOptions::default(), None);
    let id = productpage();
    let (first, key) = with_token(&cp, &id).await;
    let renew = CaAuth::Certificate {
        chain_pem: first.concat(),
        key_pem: key,
    };
    let (second, _) = obtain(&cp, &renew, &id, HOUR).await.unwrap();
    assert_eq!(leaf(&second).uri_sans, [id.to_string()]);
    assert_ne!(leaf(&second).serial, leaf(&first).serial);
    // The certificate proves its own identity only.
    let err = obtain(
        &cp,
        &renew,
        &SpiffeId::new("cluster.local", "default", "reviews"),
        HOUR,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            CaClientError::Denied {
                code: Code::PermissionDenied,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the CSR asks for `spiffe://cluster.local/ns/default/sa/reviews`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn refused_requests_say_why() {
    let dir = temp("refused");
    let cp = start(&dir, CaOptions::default(), None);
    let id = productpage();
    let other_ca = Authority::generate_root("cluster.local", HOUR).unwrap();
    let (foreign_chain, foreign_key) = other_ca.issue(&id, HOUR).unwrap();
    let expired = cp.ca().mint_token(&id, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reviews = SpiffeId::new("cluster.local", "default", "reviews");
    let alien = SpiffeId::new("elsewhere.example", "default", "productpage");
    let cases: Vec<(CaAuth, &SpiffeId, &str, &str)> = vec![
        (
            CaAuth::Token(cp.ca().mint_token(&id, HOUR)),
            &reviews,
            "Denied",
            "the CSR asks for",
        ),
        (CaAuth::Token(expired), &id, "Denied", "the token expired"),
        (
            CaAuth::Token("mw1.1.ab.spiffe://x".into()),
            &id,
            "Denied",
            "signature does not verify",
        ),
        (
            CaAuth::Token("a-jwt".into()),
            &id,
            "Denied",
            "not a meshwork bootstrap token",
        ),
        (
            CaAuth::Token(cp.ca().mint_token(&alien, HOUR)),
            &alien,
            "Denied",
            "this CA serves `cluster.local`",
        ),
        (
            CaAuth::Certificate {
                chain_pem: foreign_chain.concat(),
                key_pem: foreign_key,
            },
            &id,
            "Tls",
            "refused the client certificate",
        ),
    ];
    for (auth, ask, kind, message) in cases {
        let err = obtain(&cp, &auth, ask, HOUR).await.unwrap_err();
        assert!(format!("{err:?}").starts_with(kind), "{auth:?}: {err:?}");
        assert!(err.to_string().contains(message), "{auth:?}: {err}");
        assert!(!err.retryable(), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_request_without_credentials_is_unauthenticated() {
    let dir = temp("anonymous");
    let cp = start(&dir, CaOptions::default(), None);
    let mut grpc = tonic::client::Grpc::new(tls_channel(&cp, "localhost").await);
    grpc.ready().await.unwrap();
    let csr = KeyAndCsr::generate(&productpage()).unwrap().csr_pem;
    let request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: 0,
    });
    let path = http::uri::PathAndQuery::from_static(meshwork_pki::api::CREATE_CERTIFICATE);
    let status = grpc
        .unary::<_, IstioCertificateResponse, _>(request, path, tonic_prost::ProstCodec::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status
            .message()
            .contains("send `authorization: Bearer TOKEN`"),
        "{}",
        status.message()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn transport_failures_name_what_to_check() {
    let dir = temp("transport");
    let cp = start(&dir, CaOptions::default(), None);
    let id = productpage();
    let token = CaAuth::Token(cp.ca().mint_token(&id, HOUR));
    let csr = KeyAndCsr::generate(&id).unwrap().csr_pem;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let wrong_root = Authority::generate_root("cluster.local", HOUR)
        .unwrap()
        .cert_pem()
        .to_owned();
    let at = |address: String, roots_pem: String, server_name: Option<&str>| CaEndpoint {
        address,
        roots_pem,
        server_name: server_name.map(String::from),
    };
    let bundle = cp.ca().trust_bundle_pem();
    let ca_url = format!("https://{}", cp.ca_address());
    let cases = [
        (
            at(format!("https://{closed}"), bundle.clone(), None),
            true,
            "cannot reach the CA",
        ),
        (
            at(ca_url.clone(), wrong_root, None),
            false,
            "does not verify against the root file",
        ),
        (
            at(ca_url.clone(), bundle.clone(), Some("ca.example")),
            false,
            "--ca-hostname",
        ),
        (
            at(ca_url.clone(), bundle.clone(), Some("meshwork-control")),
            false,
            "",
        ),
        (
            at(
                format!("https://{}", cp.xds_address()),
                bundle.clone(),
                None,
            ),
            false,
            "does not speak TLS",
        ),
        (
            at(format!("http://{}", cp.ca_address()), bundle.clone(), None),
            false,
            "use https://HOST:PORT",
        ),
        (
            at(ca_url, "no roots".into(), None),
            false,
            "check the root file",
        ),
    ];
    for (endpoint, retryable, message) in cases {
        let got = request_certificate(&endpoint, &token, &csr, HOUR).await;
        match (got, message) {
            (Ok(chain), "") => assert_eq!(leaf(&chain).uri_sans, [id.to_string()]),
            (Err(e), message) if !message.is_empty() => {
                assert!(e.to_string().contains(message), "{endpoint:?}: {e}");
                assert_eq!(e.retryable(), retryable, "{e}");
            }
            (got, _) => panic!("{endpoint:?}: {got:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_restart_reuses_the_persisted_root_and_token_key() {
    let dir = temp("restart");
    let id = productpage();
    let cp = start(&dir, ca_in(&dir), None);
    let root = cp.ca().root_pem().to_owned();
    let token = CaAuth::Token(cp.ca().mint_token(&id, HOUR));
    cp.stop();
    for file in ["ca-key.pem", "token-key"] {
        let mode = std::fs::metadata(dir.join("ca").join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let cp = start(&dir, ca_in(&dir), None);
    assert_eq!(cp.ca().root_pem(), root);
    assert_eq!(cp.ca().trust_bundle_pem(), root);
    let (chain, _) = obtain(&cp, &token, &id, HOUR).await.unwrap();
    assert_eq!(chain[1], root);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_intermediate_from_files_signs_three_certificate_chains() {
    let dir = temp("intermediate");
    let root = Authority::generate_root("cluster.local", HOUR * 24).unwrap();
    let mid = root
        .generate_intermediate("cluster.local", HOUR * 24)
        .unwrap();
    let files = CaFiles {
        cert: write(&dir, "mid.pem", mid.cert_pem()),
        key: write(&dir, "mid-key.pem", &mid.key_pem()),
        chain: Some(write(&dir, "root.pem", root.cert_pem())),
    };
    let cp = start(
        &dir,
        CaOptions {
            files: Some(files),
            ..ca_in(&dir)
        },
        None,
    );
    assert_eq!(cp.ca().trust_bundle_pem(), root.cert_pem());
    let id = productpage();
    let (chain, _) = with_token(&cp, &id).await;
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(chain[1], mid.cert_pem());
    assert_eq!(chain[2], root.cert_pem());
    let (ok, out) = openssl_verify(&dir, root.cert_pem(), &chain);
    assert!(ok, "{out}");
    // Without the intermediate, openssl cannot build the path: the check above is not vacuous.
    let (ok, out) = openssl_verify(&dir, root.cert_pem(), &[chain[0].clone(), chain[2].clone()]);
    assert!(!ok, "{out}");
    assert!(
        !dir.join("ca/ca-key.pem").exists(),
        "a CA from files is not copied into the CA directory"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn extra_roots_let_certificates_of_the_old_root_renew_onto_the_new() {
    let dir = temp("rotation");
    let old = Authority::generate_root("cluster.local", HOUR * 24).unwrap();
    let new = Authority::generate_root("cluster.local", HOUR * 24).unwrap();
    let files = CaFiles {
        cert: write(&dir, "new.pem", new.cert_pem()),
        key: write(&dir, "new-key.pem", &new.key_pem()),
        chain: None,
    };
    let options = CaOptions {
        files: Some(files),
        trust_bundle: vec![write(&dir, "old.pem", old.cert_pem())],
        ..CaOptions::default()
    };
    let cp = start(&dir, options, None);
    assert_eq!(
        cp.ca().trust_bundle_pem(),
        format!("{}{}", new.cert_pem(), old.cert_pem())
    );
    let id = productpage();
    let (old_chain, old_key) = old.issue(&id, HOUR).unwrap();
    let renew = CaAuth::Certificate {
        chain_pem: old_chain.concat(),
        key_pem: old_key,
    };
    let (chain, _) = obtain(&cp, &renew, &id, HOUR).await.unwrap();
    assert_eq!(chain[1], new.cert_pem(), "signed by the new root");
    for chain in [&chain, &old_chain] {
        let (ok, out) = openssl_verify(&dir, &cp.ca().trust_bundle_pem(), chain);
        assert!(ok, "both roots verify against the bundle: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn openssl_s_client_sees_the_server_chain_up_to_the_root() {
    let dir = temp("s-client");
    let cp = start(
        &dir,
        CaOptions {
            hostnames: vec!["ca.mesh.example".into()],
            ..CaOptions::default()
        },
        None,
    );
    let bundle = write(&dir, "bundle.pem", &cp.ca().trust_bundle_pem());
    for name in ["localhost", "meshwork-control", "ca.mesh.example"] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &cp.ca_address().to_string(),
                "-showcerts",
                "-verify_return_error",
            ])
            .args([
                "-servername",
                name,
                "-verify_hostname",
                name,
                "-alpn",
                "h2",
                "-CAfile",
            ])
            .arg(&bundle)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{name}: {text}"
        );
        assert!(text.contains("ALPN protocol: h2"), "{name}: {text}");
        let subjects: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("0 s:") || l.trim_start().starts_with("1 s:"))
            .collect();
        assert_eq!(
            subjects.len(),
            2,
            "the server's certificate and the root: {text}"
        );
        assert!(
            subjects[0].contains("CN = localhost") && subjects[1].contains("CN = meshwork root CA"),
            "{subjects:?}"
        );
        assert_eq!(
            text.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{text}"
        );
    }
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &cp.ca_address().to_string(),
            "-verify_return_error",
        ])
        .args(["-verify_hostname", "elsewhere.example", "-CAfile"])
        .arg(&bundle)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Verify return code: 0 (ok)"),
        "a name the certificate lacks fails"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn ads_is_served_on_the_tls_port_too() {
    let dir = temp("ads");
    let mesh = dir.join("bookinfo");
    std::fs::create_dir_all(&mesh).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, mesh.join(path.file_name().unwrap())).unwrap();
    }
    let cp = start(&dir, CaOptions::default(), Some(mesh));
    let channel = tls_channel(&cp, "meshwork-control").await;
    let request = DiscoveryRequest {
        node: Some(Node {
            id: "grpc-client".into(),
            ..Node::default()
        }),
        type_url: CLUSTER.into(),
        ..DiscoveryRequest::default()
    };
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let cds = tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(cds.type_url, CLUSTER);
    assert!(!cds.resources.is_empty(), "the mesh's clusters");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_csr_made_by_openssl_is_signed() {
    let dir = temp("openssl-csr");
    let cp = start(&dir, CaOptions::default(), None);
    let id = productpage();
    let (key, csr) = (dir.join("key.pem"), dir.join("csr.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/O=cluster.local", "-addext"])
        .arg(format!("subjectAltName=URI:{id}"))
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = CaAuth::Token(cp.ca().mint_token(&id, HOUR));
    let csr_pem = std::fs::read_to_string(&csr).unwrap();
    let chain = request_certificate(&endpoint(&cp), &token, &csr_pem, HOUR)
        .await
        .unwrap();
    assert_eq!(leaf(&chain).uri_sans, [id.to_string()]);
    let (ok, out) = openssl_verify(&dir, &cp.ca().trust_bundle_pem(), &chain);
    assert!(ok, "{out}");
    // The certificate is for openssl's key: renewing with it works.
    let renew = CaAuth::Certificate {
        chain_pem: chain.concat(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
    };
    let renewed = request_certificate(&endpoint(&cp), &renew, &csr_pem, HOUR)
        .await
        .unwrap();
    assert_eq!(leaf(&renewed).uri_sans, [id.to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}
