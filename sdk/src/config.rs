//! Typed plugin configuration.
//!
//! ```no_run
//! use meshwork_sdk::config;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     header: String,
//!     #[serde(default)]
//!     status: Option<u16>,
//! }
//!
//! // In `RootContext::on_configure`: `None` means the error is logged and the plugin must refuse to start.
//! let cfg: Option<Config> = config::load();
//! ```

use serde::de::DeserializeOwned;

/// Why a plugin configuration was refused: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, as a path such as `retries.attempts` or `http[0].match[1].uri`, when known.
    pub field: Option<String>,
    /// Line and column in the configuration's JSON, when known.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid pluginConfig")?;
        if let Some(field) = &self.field {
            write!(f, " at `{field}`")?;
        }
        if let Some((line, column)) = self.at {
            write!(f, " (line {line}, column {column})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses configuration bytes (JSON, as meshwork and Envoy hand them over). Empty bytes parse as `{}`, so a type whose
/// fields all have defaults accepts a plugin with no `pluginConfig`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        error((path != "." && path != "?").then_some(path), e.into_inner())
    })?;
    de.end().map_err(|e| error(None, e))?;
    Ok(value)
}

fn error(field: Option<String>, e: serde_json::Error) -> ConfigError {
    let at = (e.line() > 0).then(|| (e.line(), e.column()));
    // serde_json appends " at line L column C"; the position is reported on its own.
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    ConfigError { field, at, message }
}

/// Reads and parses the plugin configuration (call it from `on_configure`). On error it logs the reason at error
/// level and returns `None`: return `false` from `on_configure` then, and the host refuses the plugin, quoting it.
pub fn load<T: DeserializeOwned>() -> Option<T> {
    let bytes = proxy_wasm::hostcalls::get_buffer(
        proxy_wasm::types::BufferType::PluginConfiguration,
        0,
        usize::MAX,
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    match parse(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Error, &e.to_string());
            None
        }
    }
}

/// [`load`], then `build` (validation into the filter's own type). An error of either is logged at error level and
/// gives `None`: return `false` from `on_configure`, and the host refuses the plugin quoting the message.
///
/// ```no_run
/// # #[derive(serde::Deserialize)] struct Wire { limit: u32 }
/// # struct Policy(u32);
/// let policy: Option<Policy> = meshwork_sdk::config::load_with(|w: Wire| match w.limit {
///     0 => Err("`limit`: must be at least 1"),
///     n => Ok(Policy(n)),
/// });
/// ```
pub fn load_with<C, T, E>(build: impl FnOnce(C) -> Result<T, E>) -> Option<T>
where
    C: DeserializeOwned,
    E: std::fmt::Display,
{
    match build(load::<C>()?) {
        Ok(t) => Some(t),
        Err(e) => {
            let text = e.to_string();
            let text = match text.starts_with("invalid pluginConfig") {
                true => text,
                false => format!("invalid pluginConfig: {text}"),
            };
            let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Error, &text);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        header: String,
        #[serde(default)]
        limit: u32,
    }

    #[derive(Debug, PartialEq, Default, serde::Deserialize)]
    #[serde(default)]
    struct AllDefaults {
        on: bool,
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<Cfg, &str>)] = &[
            (
                r#"{"header": "x-a"}"#,
                Ok(Cfg {
                    header: "x-a".into(),
                    limit: 0,
                }),
            ),
            (
                r#"{"header": "x-a", "limit": 3}"#,
                Ok(Cfg {
                    header: "x-a".into(),
                    limit: 3,
                }),
            ),
            (r#"{"limit": 3}"#, Err("missing field `header`")),
            (
                r#"{"header": "x", "extra": 1}"#,
                Err("unknown field `extra`"),
            ),
            (
                r#"{"header": 5}"#,
                Err("invalid type: integer `5`, expected a string"),
            ),
            ("{", Err("EOF while parsing an object")),
        ];
        for (text, want) in cases {
            let got = parse::<Cfg>(text.as_bytes());
            match (got, want) {
                (Ok(c), Ok(w)) => assert_eq!(&c, w, "{text}"),
                (Err(e), Err(w)) => {
                    assert!(e.message.starts_with(w), "{text}: {e}");
                    assert!(e.at.is_some(), "{text}: a position");
                    assert!(!e.to_string().contains(" at line "), "{e}");
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only parsed")]
        struct Outer {
            rules: Vec<Cfg>,
        }
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"rules": [{"header": "a"}, {"header": 5}]}"#,
                Some("rules[1].header"),
            ),
            (
                r#"{"rules": [{"header": "a", "limit": "x"}]}"#,
                Some("rules[0].limit"),
            ),
            (r#"{"rules": 1}"#, Some("rules")),
            ("{", None),
        ];
        for (text, want) in cases {
            let e = parse::<Outer>(text.as_bytes()).expect_err("invalid");
            assert_eq!(e.field.as_deref(), *want, "{text}: {e}");
            if let Some(field) = want {
                assert!(e.to_string().contains(&format!("at `{field}`")), "{e}");
            }
        }
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        assert_eq!(parse::<AllDefaults>(b""), Ok(AllDefaults::default()));
        assert_eq!(parse::<AllDefaults>(b"  \n"), Ok(AllDefaults::default()));
        assert!(
            parse::<Cfg>(b"")
                .expect_err("header is required")
                .message
                .contains("header")
        );
    }
}
