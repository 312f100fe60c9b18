//! The plugin configuration: the keys (id and secret), the signed date header and its clock-skew window, the realm of
//! `www-authenticate`, and the header that tells the upstream which key signed.

use serde::Deserialize;

/// `pluginConfig` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The keys clients may sign with.
    pub keys: Vec<KeyConfig>,
    /// The signed date header (default `date`).
    #[serde(default = "default_date_header")]
    pub date_header: String,
    /// How far the date may be from the proxy's clock, either way (default 300 s, at most 3600).
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    /// The `realm` of `www-authenticate` (default `meshwork`).
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Set on authenticated requests to the key's id, replacing any value the client sent (default `x-auth-key-id`).
    #[serde(default = "default_key_id_header")]
    pub key_id_header: String,
}

/// One key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyConfig {
    /// What clients put in `keyId`.
    pub key_id: String,
    /// The shared secret (UTF-8 text, at least 16 bytes; 32 random bytes, e.g. base64, recommended).
    pub secret: String,
}

fn default_date_header() -> String {
    "date".into()
}

fn default_skew() -> u32 {
    300
}

fn default_realm() -> String {
    "meshwork".into()
}

fn default_key_id_header() -> String {
    "x-auth-key-id".into()
}

/// The configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// (key id, secret).
    pub keys: Vec<(String, Vec<u8>)>,
    /// The signed date header.
    pub date_header: String,
    /// The clock-skew window, seconds.
    pub skew: i64,
    /// The realm.
    pub realm: String,
    /// The header naming the key for the upstream.
    pub key_id_header: String,
}

impl Config {
    /// Checks keys, headers and the window; the error starts with the field's path.
    pub fn validate(self) -> Result<Settings, String> {
        if self.keys.is_empty() {
            return Err("keys: at least one key is needed".into());
        }
        let mut keys: Vec<(String, Vec<u8>)> = Vec::with_capacity(self.keys.len());
        for (i, k) in self.keys.into_iter().enumerate() {
            if k.key_id.is_empty()
                || k.key_id.contains(['"', ',', '='])
                || k.key_id.contains(char::is_whitespace)
            {
                return Err(format!(
                    "keys[{i}].keyId: `{}` must be non-empty, without spaces, quotes, commas or `=`",
                    k.key_id
                ));
            }
            if let Some(j) = keys.iter().position(|(id, _)| *id == k.key_id) {
                return Err(format!("keys[{i}].keyId: `{}` is also keys[{j}]", k.key_id));
            }
            if k.secret.len() < 16 {
                return Err(format!(
                    "keys[{i}].secret: {} bytes is too short (at least 16; 32 random bytes recommended)",
                    k.secret.len()
                ));
            }
            keys.push((k.key_id, k.secret.into_bytes()));
        }
        if !(1..=3600).contains(&self.clock_skew_seconds) {
            return Err(format!(
                "clockSkewSeconds: must be 1-3600, got {}",
                self.clock_skew_seconds
            ));
        }
        header_name("dateHeader", &self.date_header)?;
        header_name("keyIdHeader", &self.key_id_header)?;
        if self.realm.contains(['"', '\\']) || self.realm.contains(char::is_control) {
            return Err("realm: no quotes, backslashes or control characters".into());
        }
        Ok(Settings {
            keys,
            date_header: self.date_header,
            skew: i64::from(self.clock_skew_seconds),
            realm: self.realm,
            key_id_header: self.key_id_header,
        })
    }
}

fn header_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.starts_with(':')
        || name.bytes().any(|c| c.is_ascii_uppercase() || c <= b' ')
    {
        return Err(format!(
            "{field}: `{name}` is not a header name (lowercase, no spaces, no pseudo-headers)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Settings, String> {
        let cfg: Config =
            meshwork_sdk::config::parse(json.as_bytes()).map_err(|e| e.to_string())?;
        cfg.validate()
    }

    #[test]
    fn validate_table() {
        const KEY: &str = r#"{"keyId": "a", "secret": "0123456789abcdef"}"#;
        let cases: Vec<(String, Result<(), &str>)> = vec![
            (format!(r#"{{"keys": [{KEY}]}}"#), Ok(())),
            (
                format!(
                    r#"{{"keys": [{KEY}], "dateHeader": "x-date", "clockSkewSeconds": 60, "realm": "api",
                        "keyIdHeader": "x-client"}}"#
                ),
                Ok(()),
            ),
            (r#"{"keys": []}"#.into(), Err("keys: at least one key")),
            (
                format!(r#"{{"keys": [{KEY}, {KEY}]}}"#),
                Err("keys[1].keyId: `a` is also keys[0]"),
            ),
            (
                r#"{"keys": [{"keyId": "a b", "secret": "0123456789abcdef"}]}"#.into(),
                Err("keys[0].keyId"),
            ),
            (
                r#"{"keys": [{"keyId": "a", "secret": "short"}]}"#.into(),
                Err("keys[0].secret"),
            ),
            (
                format!(r#"{{"keys": [{KEY}], "clockSkewSeconds": 0}}"#),
                Err("clockSkewSeconds"),
            ),
            (
                format!(r#"{{"keys": [{KEY}], "dateHeader": "Date"}}"#),
                Err("dateHeader"),
            ),
            (
                format!(r#"{{"keys": [{KEY}], "keyIdHeader": ":path"}}"#),
                Err("keyIdHeader"),
            ),
            (
                format!(r#"{{"keys": [{KEY}], "realm": "a\"b"}}"#),
                Err("realm"),
            ),
            (
                format!(r#"{{"keys": [{KEY}], "skew": 1}}"#),
                Err("unknown field `skew`"),
            ),
            (
                r#"{"keys": [{"keyId": "a"}]}"#.into(),
                Err("missing field `secret`"),
            ),
        ];
        for (json, want) in cases {
            match (load(&json), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{json}: {e}"),
                (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
            }
        }
        let s = load(&format!(r#"{{"keys": [{KEY}]}}"#)).unwrap();
        assert_eq!(
            (
                s.date_header.as_str(),
                s.skew,
                s.realm.as_str(),
                s.key_id_header.as_str()
            ),
            ("date", 300, "meshwork", "x-auth-key-id")
        );
        assert_eq!(s.keys, [("a".to_string(), b"0123456789abcdef".to_vec())]);
    }
}
