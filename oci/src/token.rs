//! The Docker token protocol: a registry's `Bearer realm=...,service=...` challenge is answered by a GET of the realm
//! with `service` and `scope=repository:REPO:pull[,push]` (HTTP Basic credentials when given), whose JSON carries
//! `token` or `access_token` and `expires_in`. Tokens are cached per registry, repository, actions and credentials.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Seconds a token lives when the answer does not say (the protocol's default).
const DEFAULT_TTL: u64 = 60;
/// A token is dropped this long before it expires, so a request never carries one about to lapse.
const MARGIN: Duration = Duration::from_secs(5);

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    /// The registry.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// "pull" or "pull,push".
    pub actions: &'static str,
    /// [`crate::Auth::fingerprint`] of the credentials the token was fetched with.
    pub credentials: String,
}

/// Tokens until they expire.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    entries: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl Tokens {
    /// A live token for `key`.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (_, expiry)| *expiry > Instant::now());
        entries.get(key).map(|(token, _)| token.clone())
    }

    /// Keeps `token` for `ttl` (less the margin).
    pub(crate) fn put(&self, key: TokenKey, token: String, ttl: Duration) {
        let expiry = Instant::now() + ttl.saturating_sub(MARGIN);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (token, expiry));
    }

    /// Forgets the token for `key` (the registry refused it).
    pub(crate) fn remove(&self, key: &TokenKey) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The realm URL with `service` and `scope` added to its query.
pub(crate) fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_string();
    let mut separator = if realm.contains('?') { '&' } else { '?' };
    for (name, value) in [("service", service), ("scope", Some(scope))] {
        if let Some(value) = value {
            url.push(separator);
            url.push_str(name);
            url.push('=');
            url.push_str(&encode(value));
            separator = '&';
        }
    }
    url
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token and how long it lives, from the token service's JSON.
pub(crate) fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("the token service's answer is not JSON: {e}"))?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or("the token service answered without a token")?;
    Ok((
        token,
        Duration::from_secs(answer.expires_in.unwrap_or(DEFAULT_TTL)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_token_urls() {
        let cases = [
            (
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                "repository:library/x:pull",
                "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fx%3Apull",
            ),
            (
                "http://127.0.0.1:9/t?a=b",
                None,
                "repository:a/b:pull,push",
                "http://127.0.0.1:9/t?a=b&scope=repository%3Aa%2Fb%3Apull%2Cpush",
            ),
            (
                "https://r/t",
                Some("my service"),
                "s",
                "https://r/t?service=my%20service&scope=s",
            ),
        ];
        for (realm, service, scope, want) in cases {
            assert_eq!(token_url(realm, service, scope), want);
        }
    }

    #[test]
    fn parses_token_answers() {
        let cases: Vec<(&str, Result<(&str, u64), &str>)> = vec![
            (r#"{"token":"t1","expires_in":300}"#, Ok(("t1", 300))),
            (r#"{"access_token":"t2"}"#, Ok(("t2", 60))),
            (
                r#"{"token":"","access_token":"t3","issued_at":"2026-01-01T00:00:00Z"}"#,
                Ok(("t3", 60)),
            ),
            (r#"{"token":"t4","access_token":"t5"}"#, Ok(("t4", 60))),
            (r#"{"expires_in":60}"#, Err("without a token")),
            ("<html>", Err("not JSON")),
        ];
        for (body, want) in cases {
            let got = parse_token(body.as_bytes()).map(|(t, d)| (t, d.as_secs()));
            match (got, want) {
                (Ok((t, s)), Ok((wt, ws))) => assert_eq!((t.as_str(), s), (wt, ws), "{body}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{body}: {e}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn caches_until_expiry() {
        let tokens = Tokens::default();
        let key = |credentials: &str| TokenKey {
            registry: "r".into(),
            repository: "x".into(),
            actions: "pull",
            credentials: credentials.into(),
        };
        tokens.put(key("a"), "tok".into(), Duration::from_secs(60));
        assert_eq!(tokens.get(&key("a")).as_deref(), Some("tok"));
        assert_eq!(
            tokens.get(&key("b")),
            None,
            "other credentials never share a token"
        );
        tokens.put(key("c"), "short".into(), Duration::from_secs(3));
        assert_eq!(
            tokens.get(&key("c")),
            None,
            "a token within the margin of expiry is not used"
        );
        tokens.remove(&key("a"));
        assert_eq!(tokens.get(&key("a")), None);
    }
}
