//! The token endpoint's decisions: check the client's HTTP Basic credentials, read the requested scopes and answer
//! with an ES256 JWT a Distribution registry accepts (signing key certified by a self-signed certificate in `x5c`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::{HeaderMap, Method, StatusCode, header};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use super::{ISSUER, SERVICE};

/// Tokens are valid this long (seconds).
const LIFETIME: u64 = 300;

/// The signing key, its certificate and the one user allowed.
pub(super) struct Issuer {
    key: EcdsaKeyPair,
    /// The certificate, base64 DER, for the JWT `x5c` header.
    x5c: String,
    /// The certificate as PEM, for the registry's `rootcertbundle`.
    pub cert_pem: String,
    username: String,
    password: String,
}

/// One `access` entry: a resource and the actions granted on it.
#[derive(Debug, PartialEq, Eq)]
struct Access {
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl Issuer {
    /// A new P-256 key and a self-signed certificate for it.
    pub fn new(username: &str, password: &str) -> Result<Issuer, String> {
        let err = |e: rcgen::Error| format!("token server certificate: {e}");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = rcgen::CertificateParams::new(vec![ISSUER.to_string()]).map_err(err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ISSUER);
        let cert = params.self_signed(&key).map_err(err)?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| format!("token server key: {e}"))?;
        Ok(Issuer {
            key: pair,
            x5c: STANDARD.encode(cert.der()),
            cert_pem: cert.pem(),
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// The answer to one request: status and JSON body. `now` is Unix seconds.
    pub fn respond(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        now: u64,
    ) -> (StatusCode, String) {
        let error = |status: StatusCode, code: &str, message: &str| {
            (
                status,
                json!({"errors": [{"code": code, "message": message}]}).to_string(),
            )
        };
        if path != "/token" {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the token endpoint is /token",
            );
        }
        if method != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "only GET is supported (no OAuth2 POST)",
            );
        }
        if !self.authorized(headers) {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "wrong or missing user name and password",
            );
        }
        let params = parse_query(query);
        if let Some((_, service)) = params
            .iter()
            .find(|(k, _)| k == "service")
            .filter(|(_, s)| s != SERVICE)
        {
            return error(
                StatusCode::BAD_REQUEST,
                "DENIED",
                &format!("unknown service `{service}`"),
            );
        }
        let mut access = Vec::new();
        for scope in params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' '))
        {
            match parse_scope(scope) {
                Some(a) => access.push(a),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "DENIED",
                        &format!("malformed scope `{scope}`"),
                    );
                }
            }
        }
        match self.token(&access, now) {
            Ok(token) => {
                let issued_at = time::OffsetDateTime::from_unix_timestamp(now as i64)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    });
                let body = json!({"token": token, "access_token": token, "expires_in": LIFETIME, "issued_at": issued_at});
                (StatusCode::OK, body.to_string())
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &e),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        let decoded = basic
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        decoded.as_deref().and_then(|d| d.split_once(':')) == Some((&self.username, &self.password))
    }

    /// A signed JWT granting `access` to the user.
    fn token(&self, access: &[Access], now: u64) -> Result<String, String> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)
            .map_err(|_| "no randomness".to_string())?;
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let access: Vec<_> = access
            .iter()
            .map(|a| json!({"type": a.kind, "name": a.name, "actions": a.actions}))
            .collect();
        let claims = json!({
            "iss": ISSUER, "sub": self.username, "aud": SERVICE,
            "exp": now + LIFETIME, "nbf": now, "iat": now, "jti": crate::digest::hex(&jti), "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&rng, input.as_bytes())
            .map_err(|_| "signing failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

/// `TYPE:NAME:ACTIONS` (the name may hold `:`, e.g. a host with a port; actions are comma separated).
fn parse_scope(scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<String> = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    (!kind.is_empty() && !name.is_empty() && !actions.is_empty()).then(|| Access {
        kind: kind.to_string(),
        name: name.to_string(),
        actions,
    })
}

/// `k=v&k=v` pairs, percent- and `+`-decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")));
    pairs
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (
            b,
            hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(value)) => {
                out.push(value);
                rest = &tail[2..];
            }
            (b'+', _) => {
                out.push(b' ');
                rest = tail;
            }
            (b, _) => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
