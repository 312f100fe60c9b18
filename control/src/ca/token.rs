//! Bootstrap tokens: how a proxy that has no certificate yet proves which identity it may have.
//!
//! A token is `mw1.EXPIRY.MAC.SPIFFE_ID`: the expiry in Unix milliseconds, then HMAC-SHA256 (hex) over
//! `mw1.EXPIRY.SPIFFE_ID` with the control plane's 32-byte token key, then the identity in clear (so an operator can
//! read what a token grants). Whoever holds a token can obtain certificates for its identity until it expires: mint
//! them short-lived, one per workload.

use std::time::{Duration, SystemTime};

use meshwork_pki::SpiffeId;
use ring::hmac;

/// What every token starts with (the format's version).
pub const PREFIX: &str = "mw1.";

/// The HMAC key tokens are minted and verified with.
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Why a token was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `mw1.EXPIRY.MAC.SPIFFE_ID`.
    #[error(
        "not a meshwork bootstrap token ({0}); send `authorization: Bearer mw1....` as printed by \
         `meshwork control token --identity spiffe://...`"
    )]
    Format(&'static str),
    /// The MAC does not match: another control plane's key, or an edited token.
    #[error(
        "the token's signature does not verify: it was minted with another token key (another --ca-dir) or \
         altered; mint one with the --ca-dir of this control plane"
    )]
    Signature,
    /// Past its expiry.
    #[error("the token expired {0:?} ago; mint a new one")]
    Expired(Duration),
    /// The identity part is not a workload SPIFFE ID.
    #[error("the token's identity is not usable: {0}")]
    Identity(String),
}

impl TokenKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> TokenKey {
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// 32 fresh random bytes for a key.
    pub fn random_bytes() -> Result<[u8; 32], ring::error::Unspecified> {
        ring::rand::generate(&ring::rand::SystemRandom::new()).map(|r| r.expose())
    }

    /// A token granting `id` until `expires`.
    pub fn mint(&self, id: &SpiffeId, expires: SystemTime) -> String {
        let exp = unix_millis(expires);
        let tag = hmac::sign(&self.0, signed_part(exp, &id.to_string()).as_bytes());
        format!("{PREFIX}{exp}.{}.{id}", hex(tag.as_ref()))
    }

    /// The identity `token` grants at `now`, if it is well-formed, signed with this key and not expired.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<SpiffeId, TokenError> {
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Format("it does not start with mw1."))?;
        let mut parts = rest.splitn(3, '.');
        let (Some(exp), Some(mac), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Format(
                "it does not have the four parts mw1.EXPIRY.MAC.SPIFFE_ID",
            ));
        };
        let exp: u64 = exp
            .parse()
            .map_err(|_| TokenError::Format("the expiry is not a number"))?;
        let mac = unhex(mac).ok_or(TokenError::Format("the MAC is not hex"))?;
        hmac::verify(&self.0, signed_part(exp, id).as_bytes(), &mac)
            .map_err(|_| TokenError::Signature)?;
        let now_ms = unix_millis(now);
        if now_ms >= exp {
            return Err(TokenError::Expired(Duration::from_millis(now_ms - exp)));
        }
        id.parse()
            .map_err(|e: meshwork_pki::PkiError| TokenError::Identity(e.to_string()))
    }
}

/// What the MAC covers: the version, the expiry and the identity.
fn signed_part(exp: u64, id: &str) -> String {
    format!("{PREFIX}{exp}.{id}")
}

fn unix_millis(t: SystemTime) -> u64 {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hex `text`.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((nibble(pair[0])? << 4 | nibble(pair[1])?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn at(d: Duration) -> SystemTime {
        SystemTime::UNIX_EPOCH + d
    }

    #[test]
    fn verify_table() {
        let key = TokenKey::from_bytes(&[7; 32]);
        let other = TokenKey::from_bytes(&[8; 32]);
        let id = SpiffeId::new("cluster.local", "default", "productpage");
        let expires = at(T0 + Duration::from_secs(60));
        let good = key.mint(&id, expires);
        assert!(good.starts_with("mw1.1800000060000."), "{good}");
        assert!(
            good.ends_with(".spiffe://cluster.local/ns/default/sa/productpage"),
            "{good}"
        );
        let retarget = good.replace("productpage", "reviews");
        let later = good.replacen("1800000060000", "1800000099000", 1);
        let bad_id = {
            let exp = 1_800_000_060_000u64;
            let tag = hmac::sign(&key.0, signed_part(exp, "spiffe://td/x").as_bytes());
            format!("mw1.{exp}.{}.spiffe://td/x", hex(tag.as_ref()))
        };
        let now = at(T0);
        let cases: Vec<(String, &TokenKey, SystemTime, Result<&SpiffeId, TokenError>)> = vec![
            (good.clone(), &key, now, Ok(&id)),
            (
                good.clone(),
                &key,
                at(T0 + Duration::from_millis(59_999)),
                Ok(&id),
            ),
            (
                good.clone(),
                &key,
                expires,
                Err(TokenError::Expired(Duration::ZERO)),
            ),
            (
                good.clone(),
                &key,
                at(T0 + Duration::from_secs(90)),
                Err(TokenError::Expired(Duration::from_secs(30))),
            ),
            (good.clone(), &other, now, Err(TokenError::Signature)),
            (retarget, &key, now, Err(TokenError::Signature)),
            (later, &key, now, Err(TokenError::Signature)),
            (
                good.replacen("mw1.", "mw2.", 1),
                &key,
                now,
                Err(TokenError::Format("it does not start with mw1.")),
            ),
            (
                "eyJhbGciOi.x.y".into(),
                &key,
                now,
                Err(TokenError::Format("it does not start with mw1.")),
            ),
            (
                "mw1.123".into(),
                &key,
                now,
                Err(TokenError::Format(
                    "it does not have the four parts mw1.EXPIRY.MAC.SPIFFE_ID",
                )),
            ),
            (
                "mw1.soon.00.spiffe://x".into(),
                &key,
                now,
                Err(TokenError::Format("the expiry is not a number")),
            ),
            (
                "mw1.1.zz.spiffe://x".into(),
                &key,
                now,
                Err(TokenError::Format("the MAC is not hex")),
            ),
            (
                "mw1.1.abc.spiffe://x".into(),
                &key,
                now,
                Err(TokenError::Format("the MAC is not hex")),
            ),
        ];
        for (token, key, now, want) in cases {
            assert_eq!(
                key.verify(&token, now).as_ref(),
                want.as_ref().copied(),
                "{token}"
            );
        }
        let err = key.verify(&bad_id, now).expect_err("not a workload id");
        assert!(
            matches!(&err, TokenError::Identity(m) if m.contains("spiffe://td/x")),
            "{err}"
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let cases = [
            (TokenError::Format("x"), "meshwork control token --identity"),
            (TokenError::Signature, "another --ca-dir"),
            (
                TokenError::Expired(Duration::from_secs(3)),
                "expired 3s ago; mint a new one",
            ),
        ];
        for (err, want) in cases {
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn hex_round_trips_and_random_keys_differ() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&bytes), "00017f80ff");
        assert_eq!(unhex("00017F80ff"), Some(bytes.to_vec()));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("g0"), None);
        assert_eq!(unhex("+f"), None);
        let a = TokenKey::random_bytes().expect("random");
        let b = TokenKey::random_bytes().expect("random");
        assert_ne!(a, b);
    }
}
