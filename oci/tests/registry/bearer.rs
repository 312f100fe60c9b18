//! The bearer-token flow, image indexes and redirects, against a fake registry (Distribution 2.8 has no token
//! service and does not redirect blob downloads): the token is fetched once with the Basic credentials, service and
//! scope, cached, refreshed after a 401; the index's WASM entry is chosen; the redirected blob download carries no
//! credentials; a realm at a metadata address is refused; a wrong Docker-Content-Digest is caught.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use meshwork_oci::{Auth, Format, NoProgress, OciError, Reference, media};
use sha2::{Digest, Sha256};

use crate::support::{client, module};

/// What the fake servers saw and hold.
#[derive(Default)]
struct State {
    /// `Authorization` of every request, by path and query.
    seen: Vec<(String, Option<String>)>,
    /// Tokens the registry accepts.
    valid: Vec<String>,
    issued: usize,
    /// The realm the challenge names.
    realm: String,
    /// Paths served verbatim: (status, headers, body).
    routes: BTreeMap<String, (u16, Vec<(String, String)>, Vec<u8>)>,
}

type Shared = Arc<Mutex<State>>;

fn digest(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .fold("sha256:".to_string(), |s, b| format!("{s}{b:02x}"))
}

async fn serve(state: Shared, registry: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&state, &request, registry)) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    address
}

fn answer(state: &Shared, request: &Request<Incoming>, registry: bool) -> Response<Full<Bytes>> {
    let mut state = state.lock().expect("lock");
    let target = request
        .uri()
        .path_and_query()
        .map_or(String::new(), ToString::to_string);
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    state.seen.push((target.clone(), authorization.clone()));
    let reply = |status: u16, headers: Vec<(String, String)>, body: Vec<u8>| {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        response
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    if registry && target.starts_with("/token?") {
        if authorization.as_deref() != Some("Basic Ym9iOnB3") {
            return reply(401, vec![], b"{}".to_vec());
        }
        state.issued += 1;
        let token = format!("tok-{}", state.issued);
        state.valid.push(token.clone());
        return reply(
            200,
            vec![],
            format!(r#"{{"access_token":"{token}","expires_in":300}}"#).into_bytes(),
        );
    }
    let bearer = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "));
    if registry && !bearer.is_some_and(|t| state.valid.iter().any(|v| v == t)) {
        let challenge = format!(
            r#"Bearer realm="{}",service="fake",scope="repository:x:pull""#,
            state.realm
        );
        return reply(
            401,
            vec![("www-authenticate".into(), challenge)],
            b"{}".to_vec(),
        );
    }
    match state.routes.get(request.uri().path()) {
        Some((status, headers, body)) => reply(*status, headers.clone(), body.clone()),
        None => reply(
            404,
            vec![],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec(),
        ),
    }
}

fn ok(content_type: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    (
        200,
        vec![("content-type".into(), content_type.into())],
        body.to_vec(),
    )
}

#[tokio::test]
async fn bearer_tokens_indexes_and_redirects() {
    let state: Shared = Arc::default();
    let cdn_state: Shared = Arc::default();
    let registry = serve(state.clone(), true).await;
    let cdn = serve(cdn_state.clone(), false).await;
    let wasm = module("bearer", 300);
    let layer = digest(&wasm);
    let config = br#"{"architecture":"wasm","os":"wasip1"}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":{}}}]}}"#,
        media::OCI_MANIFEST,
        media::CNCF_CONFIG,
        digest(config),
        config.len(),
        media::CNCF_WASM,
        wasm.len()
    );
    let linux = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{m}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{m}","digest":"{}","size":{},"platform":{{"architecture":"wasm","os":"wasip1"}}}}]}}"#,
        media::OCI_INDEX,
        digest(linux.as_bytes()),
        linux.len(),
        digest(manifest.as_bytes()),
        manifest.len(),
        m = media::OCI_MANIFEST
    );
    {
        let mut s = state.lock().expect("lock");
        s.realm = format!("http://{registry}/token");
        s.routes.insert(
            "/v2/x/manifests/idx".into(),
            ok(media::OCI_INDEX, index.as_bytes()),
        );
        s.routes.insert(
            format!("/v2/x/manifests/{}", digest(manifest.as_bytes())),
            ok(media::OCI_MANIFEST, manifest.as_bytes()),
        );
        let mut lying = ok(media::OCI_MANIFEST, manifest.as_bytes());
        lying
            .1
            .push(("docker-content-digest".into(), digest(b"other")));
        s.routes.insert("/v2/x/manifests/lying".into(), lying);
        let redirect = vec![("location".into(), format!("http://{cdn}/cdn/{layer}"))];
        s.routes
            .insert(format!("/v2/x/blobs/{layer}"), (307, redirect, vec![]));
        cdn_state.lock().expect("lock").routes.insert(
            format!("/cdn/{layer}"),
            ok("application/octet-stream", &wasm),
        );
    }
    let client = client();
    let bob = Auth::Basic {
        username: "bob".into(),
        password: "pw".into(),
    };
    let r: Reference = format!("{registry}/x:idx").parse().expect("reference");
    let pulled = client
        .pull(&r, &bob, &NoProgress)
        .await
        .expect("pull through the index");
    assert_eq!((pulled.format, &pulled.wasm), (Format::Cncf, &wasm));
    assert_eq!(
        pulled.manifest_digest,
        digest(index.as_bytes()),
        "the digest the tag points at: the index's"
    );
    let token_requests = |state: &Shared| -> Vec<String> {
        let s = state.lock().expect("lock");
        s.seen
            .iter()
            .filter(|(t, _)| t.starts_with("/token"))
            .map(|(t, _)| t.clone())
            .collect()
    };
    assert_eq!(
        token_requests(&state),
        ["/token?service=fake&scope=repository%3Ax%3Apull"]
    );
    let cdn_seen = cdn_state.lock().expect("lock").seen.clone();
    assert_eq!(
        cdn_seen,
        [(format!("/cdn/{layer}"), None)],
        "no credentials to another host"
    );
    assert!(
        state
            .lock()
            .expect("lock")
            .seen
            .iter()
            .any(|(t, a)| t == "/v2/x/manifests/idx" && a.as_deref() == Some("Bearer tok-1"))
    );

    client
        .pull(&r, &bob, &NoProgress)
        .await
        .expect("second pull");
    assert_eq!(token_requests(&state).len(), 1, "the token is cached");
    state.lock().expect("lock").valid.clear();
    client
        .pull(&r, &bob, &NoProgress)
        .await
        .expect("pull after the token was revoked");
    assert_eq!(
        token_requests(&state).len(),
        2,
        "a 401 fetches a fresh token"
    );

    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("anonymous");
    assert!(
        matches!(err, OciError::CredentialsRequired { .. }),
        "{err:?}"
    );
    let wrong = Auth::Basic {
        username: "bob".into(),
        password: "nope".into(),
    };
    assert!(matches!(
        client.pull(&r, &wrong, &NoProgress).await,
        Err(OciError::Unauthorized { .. })
    ));

    let lying: Reference = format!("{registry}/x:lying").parse().expect("reference");
    let err = client
        .pull(&lying, &bob, &NoProgress)
        .await
        .expect_err("lying header");
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");

    state.lock().expect("lock").realm = "http://169.254.169.254/token".into();
    let fresh = crate::support::client();
    let err = fresh
        .pull(&r, &bob, &NoProgress)
        .await
        .expect_err("metadata realm");
    assert!(matches!(err, OciError::BadRealm { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("169.254.169.254 is a link-local or cloud-metadata address"),
        "{err}"
    );
    assert_eq!(
        token_requests(&state).len(),
        4,
        "anonymous and wrong-password asked too; the metadata realm never was"
    );
}
