//! A meshwork filter, made by `meshwork filter new`: a request must carry a header (named in the plugin
//! configuration, optionally with one of a few values) or it gets a local reply; a request that passes is tagged for
//! the upstream with the plugin's name.
//!
//! Build with `meshwork filter build` (or `cargo build --release --target wasm32-wasip1`); see README.md.

use meshwork_sdk::{
    callbacks::{self, Callback},
    config, http, proxy_wasm,
};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { cfg: None }) });
}}

/// The plugin configuration (`pluginConfig` in the proxy's YAML, JSON here): camelCase fields, unknown fields refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Requests without this header are refused.
    pub required_header: String,
    /// When not empty, the header's value must be one of these.
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// The status refused requests get (default 403).
    #[serde(default = "default_status")]
    pub deny_status: u16,
    /// Set on requests that pass, with the plugin's name as its value (default `x-checked-by`).
    #[serde(default = "default_tag")]
    pub tag_header: String,
}

fn default_status() -> u16 {
    403
}

fn default_tag() -> String {
    "x-checked-by".into()
}

impl Config {
    /// Checks what serde cannot: the error names the field, as the SDK's parse errors do.
    pub fn validate(&self) -> Result<(), String> {
        if !(200..=599).contains(&self.deny_status) {
            return Err(format!(
                "denyStatus: must be 200-599, got {}",
                self.deny_status
            ));
        }
        for (field, value) in [
            ("requiredHeader", &self.required_header),
            ("tagHeader", &self.tag_header),
        ] {
            if value.is_empty() || value.starts_with(':') || value.chars().any(char::is_whitespace)
            {
                return Err(format!(
                    "{field}: `{value}` is not a header name (lowercase, no spaces, no pseudo-headers)"
                ));
            }
        }
        Ok(())
    }
}

/// What the filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on.
    Pass,
    /// Answer it with this status and reason.
    Deny {
        /// The status.
        status: u16,
        /// The body.
        reason: String,
    },
}

/// The decision, from the required header's value (`None`: the request has no such header).
pub fn decide(cfg: &Config, value: Option<&str>) -> Verdict {
    let deny = |reason: String| Verdict::Deny {
        status: cfg.deny_status,
        reason,
    };
    match value {
        None => deny(format!("missing header `{}`", cfg.required_header)),
        Some(v) if !cfg.allowed_values.is_empty() && !cfg.allowed_values.iter().any(|a| a == v) => {
            deny(format!(
                "header `{}` has a value that is not allowed",
                cfg.required_header
            ))
        }
        Some(_) => Verdict::Pass,
    }
}

/// One per VM (one VM per worker): holds the configuration and creates a context per request.
struct Root {
    cfg: Option<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        // `config::load` logs a parse error (with the field) itself; returning false refuses the plugin.
        let Some(cfg) = config::load::<Config>() else {
            return false;
        };
        if let Err(e) = cfg.validate() {
            let _ =
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("invalid pluginConfig: {e}"));
            return false;
        }
        self.cfg = Some(cfg);
        // Only request headers matter here, so meshwork skips this filter's other callbacks (responses, bodies,
        // on_log). Add a callback here when you implement it. On Envoy this is a no-op.
        callbacks::declare(&[Callback::RequestHeaders]).ok();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Check {
            cfg: self.cfg.clone()?,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct Check {
    cfg: Config,
}

impl Context for Check {}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.check() {
            Ok(action) => action,
            Err(e) => {
                self.send_http_response(500, vec![], Some(e.to_string().as_bytes()));
                Action::Pause
            }
        }
    }
}

impl Check {
    fn check(&self) -> Result<Action, meshwork_sdk::HostError> {
        let value = http::request().get(&self.cfg.required_header)?;
        match decide(&self.cfg, value.as_deref()) {
            Verdict::Pass => {
                let name = http::property_str("plugin_name")?.unwrap_or_default();
                http::request().set(&self.cfg.tag_header, &name)?;
                Ok(Action::Continue)
            }
            Verdict::Deny { status, reason } => {
                self.send_http_response(status.into(), vec![], Some(reason.as_bytes()));
                Ok(Action::Pause)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        config::parse(json.as_bytes()).expect("a valid config")
    }

    #[test]
    fn decide_table() {
        let any = cfg(r#"{"requiredHeader": "x-team"}"#);
        let some =
            cfg(r#"{"requiredHeader": "x-team", "allowedValues": ["a", "b"], "denyStatus": 401}"#);
        let deny = |status, reason: &str| Verdict::Deny {
            status,
            reason: reason.into(),
        };
        let cases = [
            (&any, Some("anything"), Verdict::Pass),
            (&any, Some(""), Verdict::Pass),
            (&any, None, deny(403, "missing header `x-team`")),
            (&some, Some("b"), Verdict::Pass),
            (
                &some,
                Some("c"),
                deny(401, "header `x-team` has a value that is not allowed"),
            ),
            (&some, None, deny(401, "missing header `x-team`")),
        ];
        for (cfg, value, want) in cases {
            assert_eq!(decide(cfg, value), want, "{value:?} with {cfg:?}");
        }
    }

    #[test]
    fn validate_table() {
        let cases = [
            (r#"{"requiredHeader": "x-team"}"#, None),
            (
                r#"{"requiredHeader": "x-team", "denyStatus": 99}"#,
                Some("denyStatus"),
            ),
            (r#"{"requiredHeader": ":path"}"#, Some("requiredHeader")),
            (
                r#"{"requiredHeader": "x-a", "tagHeader": "a b"}"#,
                Some("tagHeader"),
            ),
        ];
        for (json, field) in cases {
            match (cfg(json).validate(), field) {
                (Ok(()), None) => {}
                (Err(e), Some(f)) => assert!(e.starts_with(f), "{json}: {e}"),
                (got, want) => panic!("{json}: got {got:?}, want an error on {want:?}"),
            }
        }
    }
}
