//! The plugin configuration: rules of header operations (Istio's `headers` of a VirtualService route, `set`, `add`
//! and `remove`, plus `rename` and `setIfMissing`), each rule optionally limited to a path prefix. The JSON is parsed
//! by the SDK, then validated into [`Rules`] with errors that name the field (`rules[0].request.set.x-a: ...`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ops::HeaderOps, template::Template};

/// `pluginConfig` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Applied in order; every rule whose `when` matches applies.
    pub rules: Vec<RuleConfig>,
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// When the rule applies (absent: always).
    #[serde(default)]
    pub when: Option<When>,
    /// Operations on the request headers (before the request goes upstream).
    #[serde(default)]
    pub request: OpsConfig,
    /// Operations on the response headers (before the response goes to the client).
    #[serde(default)]
    pub response: OpsConfig,
}

/// The condition of a rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct When {
    /// The request's path (without the query) starts with this.
    pub path_prefix: String,
}

/// Header operations as written (Istio's `HeaderOperations`, plus `rename` and `setIfMissing`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpsConfig {
    /// Header → value, replacing any value.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Header → value, added to existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Old name → new name.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Header → value, set only when the header is absent.
    #[serde(default)]
    pub set_if_missing: BTreeMap<String, String>,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its condition.
    pub when: Option<When>,
    /// Request operations.
    pub request: HeaderOps,
    /// Response operations.
    pub response: HeaderOps,
}

impl Rule {
    /// Whether the rule applies to a request for `path` (query ignored).
    pub fn matches(&self, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.when
            .as_ref()
            .is_none_or(|w| path.starts_with(&w.path_prefix))
    }
}

/// The validated rules.
pub type Rules = Vec<Rule>;

impl Config {
    /// Validates header names, values and prefixes; the error starts with the field's path.
    pub fn validate(self) -> Result<Rules, String> {
        self.rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let at = format!("rules[{i}]");
                if let Some(w) = &r.when
                    && !w.path_prefix.starts_with('/')
                {
                    return Err(format!(
                        "{at}.when.pathPrefix: must start with `/`, got `{}`",
                        w.path_prefix
                    ));
                }
                Ok(Rule {
                    when: r.when,
                    request: r.request.validate(&format!("{at}.request"))?,
                    response: r.response.validate(&format!("{at}.response"))?,
                })
            })
            .collect()
    }
}

impl OpsConfig {
    fn validate(self, at: &str) -> Result<HeaderOps, String> {
        let values = |map: BTreeMap<String, String>, field: &str| {
            map.into_iter()
                .map(|(name, value)| {
                    let at = format!("{at}.{field}.{name}");
                    header_name(&name).map_err(|e| format!("{at}: {e}"))?;
                    let t = Template::parse(&value).map_err(|e| format!("{at}: {e}"))?;
                    Ok((name, t))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let remove = self
            .remove
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                header_name(&name).map_err(|e| format!("{at}.remove[{i}]: {e}"))?;
                Ok(name)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let rename = self
            .rename
            .into_iter()
            .map(|(from, to)| {
                header_name(&from).map_err(|e| format!("{at}.rename.{from}: {e}"))?;
                header_name(&to).map_err(|e| format!("{at}.rename.{from}: {e}"))?;
                Ok((from, to))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(HeaderOps {
            rename,
            remove,
            set: values(self.set, "set")?,
            add: values(self.add, "add")?,
            set_if_missing: values(self.set_if_missing, "setIfMissing")?,
        })
    }
}

/// A lowercase HTTP token that is not a pseudo-header (those are the proxy's: `:path`, `:status`...).
fn header_name(name: &str) -> Result<(), String> {
    let token =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!(
            "`{name}` is not a header name (lowercase letters, digits and -._~!#$%&'*+^`|; no pseudo-headers)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Rules, String> {
        let cfg: Config =
            meshwork_sdk::config::parse(json.as_bytes()).map_err(|e| e.to_string())?;
        cfg.validate()
    }

    #[test]
    fn validate_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"rules": []}"#, None),
            (
                r#"{"rules": [{"when": {"pathPrefix": "/api"}, "request": {"set": {"x-a": "1"}, "remove": ["x-b"]},
                   "response": {"rename": {"x-c": "x-d"}, "setIfMissing": {"x-id": "%UUID%"}}}]}"#,
                None,
            ),
            (
                r#"{"rules": [{"when": {"pathPrefix": "api"}}]}"#,
                Some("rules[0].when.pathPrefix"),
            ),
            (
                r#"{"rules": [{}, {"request": {"set": {"X-A": "1"}}}]}"#,
                Some("rules[1].request.set.X-A"),
            ),
            (
                r#"{"rules": [{"response": {"remove": ["ok", ":status"]}}]}"#,
                Some("rules[0].response.remove[1]"),
            ),
            (
                r#"{"rules": [{"request": {"rename": {"x-a": "x b"}}}]}"#,
                Some("rules[0].request.rename.x-a"),
            ),
            (
                r#"{"rules": [{"request": {"setIfMissing": {"x-id": "%NOPE%"}}}]}"#,
                Some("rules[0].request.setIfMissing.x-id: unknown variable"),
            ),
            (
                r#"{"rules": [{"request": {"sett": {}}}]}"#,
                Some("unknown field `sett`"),
            ),
            (r#"{}"#, Some("missing field `rules`")),
        ];
        for (json, want) in cases {
            match (load(json), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{json}: {e}"),
                (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn matches_table() {
        let rule = |prefix: Option<&str>| Rule {
            when: prefix.map(|p| When {
                path_prefix: p.into(),
            }),
            request: HeaderOps::default(),
            response: HeaderOps::default(),
        };
        let cases = [
            (None, "/anything", true),
            (Some("/api"), "/api/v1", true),
            (Some("/api"), "/api?x=1", true),
            (Some("/api"), "/ap", false),
            (Some("/api/"), "/api?x=/api/", false),
            (Some("/"), "/", true),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(rule(prefix).matches(path), want, "{prefix:?} {path}");
        }
    }
}
