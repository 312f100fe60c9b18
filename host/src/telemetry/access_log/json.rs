//! JSON access logs: one object per line. Istio's default keys (plus meshwork's `trace_id`, principals and
//! `filter_decisions`), or a user's `json_format`: an object (nested objects allowed) whose string values are format
//! strings. A value that is exactly one command stays typed, as in Envoy: numbers are numbers, a missing value is
//! `null`, the filter decisions are an array; any other string concatenates as text. Keys come out sorted, as Envoy
//! prints a protobuf Struct.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    entry::Entry,
    format::{self, Format, Value},
};

/// A compiled JSON format.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonFormat(Vec<(Box<str>, Node)>);

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Format(Format),
    Object(JsonFormat),
    /// A literal non-string value, already serialized.
    Literal(Box<str>),
}

/// Istio's default JSON keys and their commands, with meshwork's additions.
const ISTIO_JSON: &[(&str, &str)] = &[
    ("authority", "%REQ(:AUTHORITY)%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("destination_principal", "%DESTINATION_PRINCIPAL%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("duration", "%DURATION%"),
    ("filter_decisions", "%FILTER_DECISIONS%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("route_name", "%ROUTE_NAME%"),
    ("source_principal", "%SOURCE_PRINCIPAL%"),
    ("start_time", "%START_TIME%"),
    ("trace_id", "%TRACE_ID%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
];

impl JsonFormat {
    /// Istio's default JSON format.
    pub fn istio() -> JsonFormat {
        JsonFormat(
            ISTIO_JSON
                .iter()
                .map(|(k, f)| {
                    let f = Format::compile(f).unwrap_or_else(|e| unreachable!("{k}: {e}"));
                    ((*k).into(), Node::Format(f))
                })
                .collect(),
        )
    }

    /// Compiles a user's `json_format`; `Err` is (the key path, what is wrong).
    pub fn compile(
        fields: &BTreeMap<String, serde_json::Value>,
    ) -> Result<JsonFormat, (String, String)> {
        let mut out = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            let node = match v {
                serde_json::Value::String(s) => {
                    Node::Format(Format::compile(s).map_err(|e| (k.clone(), e))?)
                }
                serde_json::Value::Object(o) => {
                    let nested: BTreeMap<String, serde_json::Value> =
                        o.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    Node::Object(
                        JsonFormat::compile(&nested).map_err(|(p, e)| (format!("{k}.{p}"), e))?,
                    )
                }
                serde_json::Value::Array(_) => {
                    return Err((
                        k.clone(),
                        "lists are not supported in json_format; use a string or an object".into(),
                    ));
                }
                other => Node::Literal(other.to_string().into()),
            };
            out.push((k.as_str().into(), node));
        }
        Ok(JsonFormat(out))
    }

    /// Every format in the tree.
    pub fn formats(&self) -> Vec<&Format> {
        let mut out = Vec::new();
        for (_, n) in &self.0 {
            match n {
                Node::Format(f) => out.push(f),
                Node::Object(o) => out.extend(o.formats()),
                Node::Literal(_) => {}
            }
        }
        out
    }

    /// Appends the object for `e` to `out` (no newline).
    pub fn render(&self, e: &Entry<'_>, out: &mut String) {
        out.push('{');
        for (i, (k, node)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(k, out);
            out.push(':');
            match node {
                Node::Literal(v) => out.push_str(v),
                Node::Object(o) => o.render(e, out),
                Node::Format(f) => match f.single() {
                    Some((c, max)) => typed(&c.eval(e), max, out),
                    None => {
                        let mut s = String::new();
                        f.render(e, &mut s);
                        string(&s, out);
                    }
                },
            }
        }
        out.push('}');
    }
}

/// A single command's value, typed.
fn typed(v: &Value<'_>, max: Option<usize>, out: &mut String) {
    match v {
        Value::Missing => out.push_str("null"),
        Value::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Str(s) => match max {
            None => string(s, out),
            Some(_) => {
                let mut cut = String::new();
                format::text(v, max, &mut cut);
                string(&cut, out);
            }
        },
        Value::Decisions(ds) => {
            out.push('[');
            for (i, d) in ds.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"plugin\":");
                string(&d.plugin, out);
                let _ = write!(out, ",\"verdict\":\"{}\"", d.verdict.name());
                if let Some(s) = d.verdict.status() {
                    let _ = write!(out, ",\"status\":{s}");
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

/// Appends `s` as a JSON string.
pub fn string(s: &str, out: &mut String) {
    out.push('"');
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        last = i + 1;
    }
    out.push_str(&s[last..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::access_log::testdata::{decisions, sample};

    #[test]
    fn istio_default_keys_and_types() {
        let ds = decisions();
        let mut e = sample();
        e.decisions = &ds;
        let mut out = String::new();
        JsonFormat::istio().render(&e, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        let want = serde_json::json!({
            "authority": "svc.local",
            "bytes_received": 12,
            "bytes_sent": 345,
            "connection_termination_details": null,
            "destination_principal": "spiffe://cluster.local/ns/default/sa/svc",
            "downstream_local_address": "10.0.0.2:8080",
            "downstream_remote_address": "10.0.0.1:5555",
            "duration": 7,
            "filter_decisions": [
                {"plugin": "authz", "verdict": "local_reply", "status": 403},
                {"plugin": "probe", "verdict": "shadow_mutation"}
            ],
            "method": "GET",
            "path": "/a?b=1",
            "protocol": "HTTP/1.1",
            "request_id": "0c2b4d84-7f3a-4b8e-9a1d-2f6e5c4b3a21",
            "requested_server_name": null,
            "response_code": 200,
            "response_code_details": "via_upstream",
            "response_flags": "-",
            "route_name": "r1",
            "source_principal": "spiffe://cluster.local/ns/default/sa/client",
            "start_time": "2024-02-29T13:04:05.123Z",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "upstream_cluster": "backend",
            "upstream_host": "10.0.0.3:80",
            "upstream_local_address": null,
            "upstream_service_time": "5",
            "upstream_transport_failure_reason": null,
            "user_agent": "curl/8.0 \"quoted\"",
            "x_forwarded_for": "192.0.2.1",
        });
        assert_eq!(v, want);
        assert!(!out.contains('\n'));
    }

    #[test]
    fn user_formats_table() {
        let json = |s: &str| -> BTreeMap<String, serde_json::Value> {
            serde_json::from_str(s).expect("test json")
        };
        let cases: &[(&str, &str)] = &[
            (
                r#"{"code": "%RESPONSE_CODE%", "line": "%REQ(:METHOD)% %RESPONSE_CODE%"}"#,
                r#"{"code":200,"line":"GET 200"}"#,
            ),
            (
                r#"{"nested": {"ua": "%REQ(USER-AGENT):4%"}, "fixed": 1, "on": true, "none": null}"#,
                r#"{"fixed":1,"nested":{"ua":"curl"},"none":null,"on":true}"#,
            ),
            (
                r#"{"missing": "%REQ(X-NONE)%", "missing_in_text": "a %REQ(X-NONE)% b"}"#,
                r#"{"missing":null,"missing_in_text":"a - b"}"#,
            ),
            (r#"{"d": "%FILTER_DECISIONS%"}"#, r#"{"d":[]}"#),
            (r#"{"esc": "tab\there"}"#, r#"{"esc":"tab\there"}"#),
        ];
        for (format, want) in cases {
            let f = JsonFormat::compile(&json(format)).expect(format);
            let mut out = String::new();
            f.render(&sample(), &mut out);
            assert_eq!(out, *want, "{format}");
        }
        let bad: &[(&str, &str)] = &[
            (r#"{"a": "%NOPE%"}"#, "a"),
            (r#"{"a": {"b": "%REQ(bad name)%"}}"#, "a.b"),
            (r#"{"list": ["%DURATION%"]}"#, "list"),
        ];
        for (format, key) in bad {
            let (k, _) = JsonFormat::compile(&json(format)).expect_err(format);
            assert_eq!(k, *key, "{format}");
        }
    }

    #[test]
    fn strings_escape() {
        let mut out = String::new();
        string("a\"b\\c\u{1}\ré", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\u0001\\ré\"");
    }
}
