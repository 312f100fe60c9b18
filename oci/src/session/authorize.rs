//! The credentials a session sends: HTTP Basic when the registry asks for it, a given bearer token as is, or a token
//! from the challenge's realm (validated first: see `guard`), cached per registry, repository, actions and
//! credentials.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header::AUTHORIZATION};
use tracing::debug;

use super::{Action, Session, drain};
use crate::{
    Auth, OciError,
    challenge::Challenge,
    guard,
    token::{self, TokenKey},
    transport::{exchange, read_small, unexpected},
};

impl Session<'_> {
    /// The `Authorization` value the challenge calls for (`fresh`: do not use a cached token).
    pub(super) async fn authorize(&self, fresh: bool) -> Result<Option<HeaderValue>, OciError> {
        let value = match (&self.challenge, self.auth) {
            (_, Auth::Bearer(token)) => Some(format!("Bearer {token}")),
            (Some(Challenge::Basic), Auth::Basic { .. }) => self.auth.basic_header(),
            (Some(Challenge::Bearer { realm, service, .. }), _) => Some(format!(
                "Bearer {}",
                self.token(realm, service.as_deref(), fresh).await?
            )),
            _ => None,
        };
        value
            .map(|v| HeaderValue::from_str(&v))
            .transpose()
            .map(|v| {
                v.map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .map_err(|_| OciError::Credentials {
                registry: self.registry.clone(),
                detail: "the credentials hold characters an HTTP header cannot carry".into(),
            })
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        fresh: bool,
    ) -> Result<String, OciError> {
        let actions = match self.action {
            Action::Pull => "pull",
            Action::Push => "pull,push",
        };
        let key = TokenKey {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            actions,
            credentials: self.auth.fingerprint(),
        };
        match fresh {
            true => self.inner.tokens.remove(&key),
            false => {
                if let Some(token) = self.inner.tokens.get(&key) {
                    return Ok(token);
                }
            }
        }
        let realm_uri =
            guard::check_url(realm, self.allow_http).map_err(|reason| OciError::BadRealm {
                registry: self.registry.clone(),
                realm: realm.to_string(),
                reason,
            })?;
        let origin = realm_uri
            .authority()
            .map_or(realm.to_string(), ToString::to_string);
        let url = token::token_url(
            realm,
            service,
            &format!("repository:{}:{actions}", self.repository),
        );
        let mut headers = HeaderMap::new();
        if let Some(Ok(mut basic)) = self.auth.basic_header().map(|b| HeaderValue::from_str(&b)) {
            basic.set_sensitive(true);
            headers.insert(AUTHORIZATION, basic);
        }
        let reply = exchange(&self.inner.http, Method::GET, &url, headers, Bytes::new())
            .await
            .map_err(|f| f.into_error(&origin, false))?;
        match reply.status {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                drain(reply).await;
                return Err(self.refused());
            }
            _ => {
                return Err(unexpected(
                    reply,
                    &origin,
                    format!("GET token for {}", self.repository),
                )
                .await);
            }
        }
        let body = read_small(reply.body, 1 << 20, &origin).await?;
        let (token, ttl) = token::parse_token(&body).map_err(|detail| OciError::Registry {
            registry: origin,
            operation: format!("GET token for {}", self.repository),
            status: 200,
            detail,
        })?;
        debug!(registry = %self.registry, repository = %self.repository, actions, ttl = ?ttl, "fetched a registry token");
        self.inner.tokens.put(key, token.clone(), ttl);
        Ok(token)
    }
}
