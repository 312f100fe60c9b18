//! The signature scheme, as pure functions: `authorization: HMAC-SHA256 keyId="ID",signature="BASE64"`, where the
//! signature is HMAC-SHA256 with the key's secret over `METHOD \n PATH \n DATE` (the request's method, its path with
//! the query, and the date header's value as sent), base64 (standard alphabet, padded). The date must be within the
//! clock-skew window of the proxy's clock. Signatures are compared in constant time.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::date;

/// The authorization scheme.
pub const SCHEME: &str = "HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

/// What an `authorization` header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The key the client signed with.
    pub key_id: &'a str,
    /// The signature, base64.
    pub signature: &'a str,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No `authorization` header.
    MissingAuthorization,
    /// An `authorization` header this scheme cannot read.
    Malformed(String),
    /// No date header.
    MissingDate,
    /// A date header that is not an HTTP date.
    BadDate(String),
    /// A date outside the clock-skew window (seconds off).
    StaleDate(i64),
    /// An unknown key, or a signature that does not match.
    BadSignature,
}

impl Failure {
    /// The `error` parameter of `www-authenticate`.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::MissingAuthorization => "missing_authorization",
            Failure::Malformed(_) => "malformed_authorization",
            Failure::MissingDate | Failure::BadDate(_) => "invalid_date",
            Failure::StaleDate(_) => "stale_date",
            Failure::BadSignature => "invalid_signature",
        }
    }

    /// The reply's body: what the client should fix.
    pub fn message(&self, date_header: &str) -> String {
        match self {
            Failure::MissingAuthorization => {
                format!("missing `authorization: {SCHEME} keyId=\"...\",signature=\"...\"`")
            }
            Failure::Malformed(why) => format!("malformed authorization: {why}"),
            Failure::MissingDate => format!("missing `{date_header}` header (it is signed)"),
            Failure::BadDate(why) => format!("`{date_header}`: {why}"),
            Failure::StaleDate(off) => {
                format!("`{date_header}` is {}s off the proxy's clock", off.abs())
            }
            Failure::BadSignature => "invalid signature".into(),
        }
    }
}

/// Reads `HMAC-SHA256 keyId="ID",signature="SIG"` (scheme case-insensitive, quotes optional, spaces allowed around
/// commas and `=`); other parameters, or either one twice, are refused so that a request has one reading.
pub fn parse_authorization(value: &str) -> Result<Credentials<'_>, Failure> {
    let malformed = |why: &str| Failure::Malformed(why.into());
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(malformed(&format!("the scheme must be {SCHEME}")));
    }
    let (mut key_id, mut signature) = (None, None);
    for param in params.split(',') {
        let (name, v) = param
            .split_once('=')
            .ok_or_else(|| malformed("parameters are name=\"value\""))?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or(v);
        let slot = match name.trim() {
            "keyId" => &mut key_id,
            "signature" => &mut signature,
            other => return Err(malformed(&format!("unknown parameter `{other}`"))),
        };
        if slot.replace(v).is_some() {
            return Err(malformed(&format!("`{}` given twice", name.trim())));
        }
    }
    match (key_id, signature) {
        (Some(key_id), Some(signature)) if !key_id.is_empty() && !signature.is_empty() => {
            Ok(Credentials { key_id, signature })
        }
        _ => Err(malformed("keyId and signature are required")),
    }
}

/// What is signed.
pub fn string_to_sign(method: &str, path: &str, date: &str) -> String {
    format!("{method}\n{path}\n{date}")
}

/// The signature of `message` with `secret`, base64.
pub fn sign(secret: &[u8], message: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` (base64) is the signature of `message` with `secret`; the comparison takes the same time
/// whatever the bytes.
pub fn verify(secret: &[u8], message: &str, signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// One request as the check needs it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path` (with the query).
    pub path: &'a str,
    /// The `authorization` header.
    pub authorization: Option<&'a str>,
    /// The date header.
    pub date: Option<&'a str>,
    /// The proxy's clock, seconds since the Unix epoch.
    pub now: i64,
}

/// Authenticates `req` with `keys` ((key id, secret) pairs) and a clock-skew window of `skew` seconds; the key id on
/// success.
pub fn check<'k>(
    keys: &'k [(String, Vec<u8>)],
    skew: i64,
    req: &Request<'_>,
) -> Result<&'k str, Failure> {
    let creds = parse_authorization(req.authorization.ok_or(Failure::MissingAuthorization)?)?;
    let date = req.date.ok_or(Failure::MissingDate)?;
    let sent = date::parse(date).map_err(Failure::BadDate)?;
    let off = req.now - sent;
    if off.abs() > skew {
        return Err(Failure::StaleDate(off));
    }
    let (id, secret) = keys
        .iter()
        .find(|(id, _)| id == creds.key_id)
        .ok_or(Failure::BadSignature)?;
    let message = string_to_sign(req.method, req.path, date);
    if verify(secret, &message, creds.signature) {
        Ok(id)
    } else {
        Err(Failure::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const NOW: i64 = 1_700_000_000;

    /// RFC 4231, test case 2: a known answer from outside this code.
    #[test]
    fn sign_matches_rfc_4231() {
        let mac = sign(b"Jefe", "what do ya want for nothing?");
        let hex: String = STANDARD
            .decode(mac)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_table() {
        let good = sign(b"secret", "m");
        let other = sign(b"other", "m");
        let cases = [
            (good.as_str(), true),
            (other.as_str(), false),
            (&good[..good.len() - 4], false),
            ("not base64!", false),
            ("", false),
        ];
        for (sig, want) in cases {
            assert_eq!(verify(b"secret", "m", sig), want, "{sig}");
        }
    }

    #[test]
    fn parse_authorization_table() {
        let ok = |key_id, signature| Ok(Credentials { key_id, signature });
        let bad = |why: &str| Err(Failure::Malformed(why.into()));
        let cases = [
            (r#"HMAC-SHA256 keyId="a",signature="c2ln""#, ok("a", "c2ln")),
            (
                r#"hmac-sha256 keyId = a , signature = c2ln"#,
                ok("a", "c2ln"),
            ),
            (r#"HMAC-SHA256 signature="s",keyId="k""#, ok("k", "s")),
            (r#"Bearer abc"#, bad("the scheme must be HMAC-SHA256")),
            (r#"HMAC-SHA256"#, bad("parameters are name=\"value\"")),
            (
                r#"HMAC-SHA256 keyId="a""#,
                bad("keyId and signature are required"),
            ),
            (
                r#"HMAC-SHA256 keyId="",signature="s""#,
                bad("keyId and signature are required"),
            ),
            (
                r#"HMAC-SHA256 keyId=a,keyId=b,signature=s"#,
                bad("`keyId` given twice"),
            ),
            (
                r#"HMAC-SHA256 keyId=a,signature=s,alg=x"#,
                bad("unknown parameter `alg`"),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse_authorization(value), want, "{value}");
        }
    }

    fn req<'a>(
        authorization: Option<&'a str>,
        date: Option<&'a str>,
        method: &'a str,
        path: &'a str,
    ) -> Request<'a> {
        Request {
            method,
            path,
            authorization,
            date,
            now: NOW,
        }
    }

    #[test]
    fn check_table() {
        let keys = vec![
            ("k1".to_string(), b"secret-one".to_vec()),
            ("k2".to_string(), b"secret-two".to_vec()),
        ];
        let signed = |key: &[u8], date: &str| {
            format!(
                "HMAC-SHA256 keyId=\"k2\",signature=\"{}\"",
                sign(key, &string_to_sign("GET", "/a?b=1", date))
            )
        };
        let (old_date, ahead) = (
            "Tue, 14 Nov 2023 22:08:19 GMT",
            "Tue, 14 Nov 2023 22:18:20 GMT",
        );
        let good = signed(b"secret-two", DATE);
        let wrong_key = signed(b"secret-one", DATE);
        let old = signed(b"secret-two", old_date);
        let early = signed(b"secret-two", ahead);
        let unknown = good.replace("k2", "k9");
        let (good, path) = (Some(good.as_str()), "/a?b=1");
        let cases = [
            (req(good, Some(DATE), "GET", path), Ok("k2")),
            (
                req(good, Some(DATE), "POST", path),
                Err(Failure::BadSignature),
            ),
            (
                req(good, Some(DATE), "GET", "/a?b=2"),
                Err(Failure::BadSignature),
            ),
            (
                req(Some(&wrong_key), Some(DATE), "GET", path),
                Err(Failure::BadSignature),
            ),
            (
                req(Some(&unknown), Some(DATE), "GET", path),
                Err(Failure::BadSignature),
            ),
            (
                req(Some(&old), Some(old_date), "GET", path),
                Err(Failure::StaleDate(301)),
            ),
            (req(Some(&early), Some(ahead), "GET", path), Ok("k2")),
            (
                req(good, Some("yesterday"), "GET", path),
                Err(Failure::BadDate(
                    "`yesterday` is not an HTTP date like `Sun, 06 Nov 1994 08:49:37 GMT`".into(),
                )),
            ),
            (
                req(None, Some(DATE), "GET", "/"),
                Err(Failure::MissingAuthorization),
            ),
            (req(good, None, "GET", path), Err(Failure::MissingDate)),
        ];
        for (r, want) in cases {
            assert_eq!(check(&keys, 300, &r), want, "{r:?}");
        }
        assert_eq!(
            check(&keys, 301, &req(Some(&old), Some(old_date), "GET", path)),
            Ok("k2"),
            "301 s off is inside a 301 s window"
        );
    }

    #[test]
    fn failure_codes_and_messages() {
        let cases = [
            (
                Failure::MissingAuthorization,
                "missing_authorization",
                "missing `authorization: HMAC-SHA256",
            ),
            (
                Failure::Malformed("x".into()),
                "malformed_authorization",
                "malformed authorization: x",
            ),
            (
                Failure::MissingDate,
                "invalid_date",
                "missing `x-date` header",
            ),
            (
                Failure::BadDate("bad".into()),
                "invalid_date",
                "`x-date`: bad",
            ),
            (
                Failure::StaleDate(-400),
                "stale_date",
                "`x-date` is 400s off",
            ),
            (
                Failure::BadSignature,
                "invalid_signature",
                "invalid signature",
            ),
        ];
        for (f, code, message) in cases {
            assert_eq!(f.code(), code);
            assert!(
                f.message("x-date").starts_with(message),
                "{}",
                f.message("x-date")
            );
        }
    }
}
