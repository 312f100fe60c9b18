//! Table tests of the token endpoint's answers and of the JWTs it signs.

use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair as _, UnparsedPublicKey};
use serde_json::Value;

use super::*;

const NOW: u64 = 1_790_000_000;

fn basic(user_pass: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!("Basic {}", STANDARD.encode(user_pass));
    headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
    headers
}

/// Checks the JWT's signature with the issuer's key and returns (header, claims).
fn open(issuer: &Issuer, jwt: &str) -> (Value, Value) {
    let (input, sig) = jwt.rsplit_once('.').expect("three parts");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url signature");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, issuer.key.public_key().as_ref());
    public
        .verify(input.as_bytes(), &sig)
        .expect("signature verifies");
    let part = |p: &str| {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("json")
    };
    let (header, claims) = input.split_once('.').expect("header.claims");
    (part(header), part(claims))
}

#[test]
fn answers_by_path_method_credentials_service_and_scope() {
    let issuer = Issuer::new("ann", "pw").expect("issuer");
    let get = Method::GET;
    let good = basic("ann:pw");
    let scope = "service=meshwork-test-registry&scope=repository%3Afilters%2Fhello%3Apull%2Cpush";
    let cases: &[(&Method, &str, &str, &HeaderMap, StatusCode, &str)] = &[
        (
            &get,
            "/token",
            scope,
            &good,
            StatusCode::OK,
            "\"expires_in\":300",
        ),
        (
            &get,
            "/token",
            "",
            &good,
            StatusCode::OK,
            "\"issued_at\":\"2026-09-21T",
        ),
        (
            &get,
            "/v2/",
            scope,
            &good,
            StatusCode::NOT_FOUND,
            "the token endpoint is /token",
        ),
        (
            &Method::POST,
            "/token",
            scope,
            &good,
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET",
        ),
        (
            &get,
            "/token",
            scope,
            &HeaderMap::new(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ),
        (
            &get,
            "/token",
            scope,
            &basic("ann:wrong"),
            StatusCode::UNAUTHORIZED,
            "wrong or missing",
        ),
        (
            &get,
            "/token",
            scope,
            &basic("bob:pw"),
            StatusCode::UNAUTHORIZED,
            "wrong or missing",
        ),
        (
            &get,
            "/token",
            "service=other",
            &good,
            StatusCode::BAD_REQUEST,
            "unknown service `other`",
        ),
        (
            &get,
            "/token",
            "scope=repository:x",
            &good,
            StatusCode::BAD_REQUEST,
            "malformed scope `repository:x`",
        ),
    ];
    for (method, path, query, headers, status, body) in cases {
        let (got, text) = issuer.respond(method, path, query, headers, NOW);
        assert_eq!(
            (got, text.contains(body)),
            (*status, true),
            "{method} {path}?{query}: {text}"
        );
    }
}

#[test]
fn tokens_are_es256_jwts_distribution_accepts() {
    let issuer = Issuer::new("ann", "pw").expect("issuer");
    let query = "service=meshwork-test-registry&scope=repository:filters/hello:pull,push+registry:catalog:*";
    let (status, body) = issuer.respond(&Method::GET, "/token", query, &basic("ann:pw"), NOW);
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["token"], body["access_token"]);
    let (header, claims) = open(&issuer, body["token"].as_str().expect("token"));
    let cert = pem::parse(&issuer.cert_pem).expect("cert pem");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5c"][0], STANDARD.encode(cert.contents()));
    assert_eq!(
        (&claims["iss"], &claims["aud"], &claims["sub"]),
        (&json!(ISSUER), &json!(SERVICE), &json!("ann"))
    );
    assert_eq!(
        (&claims["nbf"], &claims["iat"], &claims["exp"]),
        (&json!(NOW), &json!(NOW), &json!(NOW + 300))
    );
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    let access = json!([
        {"type": "repository", "name": "filters/hello", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]);
    assert_eq!(claims["access"], access);
}

#[test]
fn scopes_and_queries_parse() {
    let access = |kind: &str, name: &str, actions: &[&str]| Access {
        kind: kind.into(),
        name: name.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    };
    let cases = [
        (
            "repository:filters/hello:pull",
            Some(access("repository", "filters/hello", &["pull"])),
        ),
        (
            "repository:a/b:pull,push",
            Some(access("repository", "a/b", &["pull", "push"])),
        ),
        (
            "repository(plugin):a:b:pull",
            Some(access("repository(plugin)", "a:b", &["pull"])),
        ),
        ("repository:a:", None),
        ("repository:a", None),
        (":a:pull", None),
    ];
    for (scope, want) in cases {
        assert_eq!(parse_scope(scope), want, "{scope}");
    }
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        parse_query("a=1&b=x%3Ay+z&&c"),
        pairs(&[("a", "1"), ("b", "x:y z"), ("c", "")])
    );
    assert_eq!(parse_query("a=%zz%4"), pairs(&[("a", "%zz%4")]));
}
