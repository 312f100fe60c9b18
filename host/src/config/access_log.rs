//! A listener's access logs (`telemetry.access_log`): where each goes and its format.
//!
//! ```yaml
//! telemetry:
//!   access_log:
//!     - path: /dev/stdout           # or /dev/stderr, or a file (appended; reopened on SIGUSR1 or when moved)
//!       format: json                # Istio's default JSON keys
//!     - path: /var/log/meshwork/access.log
//!       text_format: "[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%\n"
//!     - path: /var/log/meshwork/custom.json
//!       json_format: {code: "%RESPONSE_CODE%", who: "%SOURCE_PRINCIPAL%"}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One access log of a listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// `/dev/stdout`, `/dev/stderr` or a file path; default `/dev/stdout`.
    #[serde(default = "stdout")]
    pub path: String,
    /// `text` (default) or `json`; implied by `text_format` / `json_format` when those are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// An Envoy format string; default: Istio's default text format. Only with `format: text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_format: Option<String>,
    /// An object whose string values are Envoy format strings; default: Istio's default JSON keys. Only with
    /// `format: json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_format: Option<BTreeMap<String, serde_json::Value>>,
}

/// The encoding of an access log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// An Envoy format string.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn stdout() -> String {
    "/dev/stdout".into()
}

impl AccessLog {
    /// The encoding, from `format` or the format field that is set; `Err` is (field, message) for a contradiction.
    pub fn encoding(&self) -> Result<LogFormat, (&'static str, &'static str)> {
        match (self.format, &self.text_format, &self.json_format) {
            (_, Some(_), Some(_)) => Err((
                "json_format",
                "give either text_format or json_format, not both",
            )),
            (Some(LogFormat::Json), Some(_), None) => Err((
                "text_format",
                "is for `format: text`; use json_format with `format: json`",
            )),
            (Some(LogFormat::Text), None, Some(_)) => Err((
                "json_format",
                "is for `format: json`; use text_format with `format: text`",
            )),
            (_, None, Some(_)) => Ok(LogFormat::Json),
            (_, Some(_), None) => Ok(LogFormat::Text),
            (f, None, None) => Ok(f.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_table() {
        let log = |yaml: &str| -> AccessLog { serde_yaml::from_str(yaml).expect(yaml) };
        let cases: &[(&str, Result<LogFormat, &str>)] = &[
            ("{}", Ok(LogFormat::Text)),
            ("format: json", Ok(LogFormat::Json)),
            ("text_format: '%DURATION%'", Ok(LogFormat::Text)),
            ("json_format: {d: '%DURATION%'}", Ok(LogFormat::Json)),
            (
                "{format: json, json_format: {d: '%DURATION%'}}",
                Ok(LogFormat::Json),
            ),
            ("{format: json, text_format: x}", Err("text_format")),
            ("{format: text, json_format: {}}", Err("json_format")),
            ("{text_format: x, json_format: {}}", Err("json_format")),
        ];
        for (yaml, want) in cases {
            assert_eq!(log(yaml).encoding().map_err(|(f, _)| f), *want, "{yaml}");
        }
        assert_eq!(log("{}").path, "/dev/stdout");
        assert!(serde_yaml::from_str::<AccessLog>("{paht: x}").is_err());
    }
}
