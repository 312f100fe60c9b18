//! The bearer-token flow against the real registry in `auth: token` mode, with tokens from
//! `testing::token::TokenServer`: Distribution checks each token's certificate chain, issuer, audience, times,
//! signature and granted actions, so a push and pull that succeed prove the whole flow.

use meshwork_oci::{Auth, NoProgress, OciError, PushFormat, testing::Registry};

use crate::support::{client, module, round_trip};

fn basic(password: &str) -> Auth {
    Auth::Basic {
        username: "ann".into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn push_and_pull_with_tokens_from_the_token_service() {
    let registry = Registry::start_with_token("ann", "pw");
    let tokens = registry.token_server().expect("token server");
    let client = client();
    let r = registry.reference("filters/bearer:v1");
    round_trip(&client, &r, &basic("pw"), PushFormat::Istio, "bearer").await;
    round_trip(
        &client,
        &r.with_tag("cncf"),
        &basic("pw"),
        PushFormat::Cncf,
        "cncf",
    )
    .await;
    assert!(
        tokens.issued() >= 2,
        "a push token and a pull token, at least: {}",
        tokens.issued()
    );
    assert_eq!(tokens.refused(), 0);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_unauthorized() {
    let registry = Registry::start_with_token("ann", "pw");
    let tokens = registry.token_server().expect("token server");
    let client = client();
    let r = registry.reference("filters/bearer:v1");
    let err = client
        .push(
            &r,
            &module("x", 10),
            PushFormat::Cncf,
            &basic("wrong"),
            &NoProgress,
        )
        .await
        .expect_err("a wrong password");
    assert_eq!(err.reason(), "unauthorized", "{err:?}");
    let err = client
        .pull(&r, &basic("wrong"), &NoProgress)
        .await
        .expect_err("a wrong password");
    assert!(matches!(err, OciError::Unauthorized { .. }), "{err:?}");
    assert!(
        tokens.refused() >= 2,
        "the token service refused: {}",
        tokens.refused()
    );
    let err = client
        .pull(&r, &Auth::Anonymous, &NoProgress)
        .await
        .expect_err("no credentials");
    assert_eq!(err.reason(), "unauthorized", "{err:?}");
    assert_eq!(tokens.issued(), 0);
}
