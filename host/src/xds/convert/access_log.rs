//! An HttpConnectionManager's `access_log[]` as the listener's `telemetry.access_log`: the file logger
//! (`envoy.access_loggers.file`, `FileAccessLog{path, log_format}`) and the stdout/stderr loggers
//! (`StdoutAccessLog{log_format}`, `StderrAccessLog{log_format}`), each with a `SubstitutionFormatString`
//! (`text_format_source.inline_string`, the older `text_format`, or `json_format`). Other logger types, an access log
//! `filter`, and format options meshwork does not apply (`omit_empty_values`, `formatters`, a format read from a file)
//! are refused, so the control plane hears (NACK) that the proxy would not log as asked.

use envoy_types::pb::{
    envoy::{
        config::{
            accesslog::v3::{AccessLog as XdsAccessLog, access_log::ConfigType},
            core::v3::{SubstitutionFormatString, data_source, substitution_format_string},
        },
        extensions::access_loggers::{
            file::v3::{FileAccessLog, file_access_log},
            stream::v3::{StderrAccessLog, StdoutAccessLog, stderr_access_log, stdout_access_log},
        },
    },
    google::protobuf::Struct,
};
use prost::Name;

use super::{ConvertError, decode, plugin::struct_json};
use crate::config::access_log::{AccessLog, LogFormat};

/// The access logs of an HttpConnectionManager (`field` names its `access_log` list in errors).
pub fn access_logs(logs: &[XdsAccessLog], field: &str) -> Result<Vec<AccessLog>, ConvertError> {
    logs.iter()
        .enumerate()
        .map(|(i, l)| access_log(l, &format!("{field}[{i}]")))
        .collect()
}

fn access_log(l: &XdsAccessLog, field: &str) -> Result<AccessLog, ConvertError> {
    if l.filter.is_some() {
        return Err(ConvertError::unsupported(
            format!("{field}.filter"),
            "an access log filter",
        ));
    }
    let Some(ConfigType::TypedConfig(any)) = &l.config_type else {
        return Err(ConvertError::new(
            format!("{field}.typed_config"),
            "missing: name the access logger (FileAccessLog or StdoutAccessLog)",
        ));
    };
    let tfield = format!("{field}.typed_config");
    let (path, format) = if any.type_url == FileAccessLog::type_url() {
        let f: FileAccessLog = decode(any, &tfield)?;
        if f.path.is_empty() {
            return Err(ConvertError::new(format!("{tfield}.path"), "missing"));
        }
        #[expect(
            deprecated,
            reason = "older control planes still send the pre-`log_format` fields"
        )]
        let format = match f.access_log_format {
            None => Format::Default,
            Some(file_access_log::AccessLogFormat::LogFormat(s)) => Format::Substitution(s),
            Some(file_access_log::AccessLogFormat::Format(text)) => Format::Text(text),
            Some(
                file_access_log::AccessLogFormat::JsonFormat(j)
                | file_access_log::AccessLogFormat::TypedJsonFormat(j),
            ) => Format::Json(j),
        };
        (f.path, format)
    } else if any.type_url == StdoutAccessLog::type_url() {
        let s: StdoutAccessLog = decode(any, &tfield)?;
        let format = match s.access_log_format {
            None => Format::Default,
            Some(stdout_access_log::AccessLogFormat::LogFormat(s)) => Format::Substitution(s),
        };
        ("/dev/stdout".to_string(), format)
    } else if any.type_url == StderrAccessLog::type_url() {
        let s: StderrAccessLog = decode(any, &tfield)?;
        let format = match s.access_log_format {
            None => Format::Default,
            Some(stderr_access_log::AccessLogFormat::LogFormat(s)) => Format::Substitution(s),
        };
        ("/dev/stderr".to_string(), format)
    } else {
        return Err(ConvertError::unsupported(
            tfield,
            &format!(
                "access logger `{}` (meshwork has FileAccessLog, StdoutAccessLog and StderrAccessLog)",
                any.type_url
            ),
        ));
    };
    let mut out = AccessLog {
        path,
        ..Default::default()
    };
    match format {
        Format::Default => {}
        Format::Text(text) => set_text(&mut out, text),
        Format::Json(j) => set_json(&mut out, &j),
        Format::Substitution(s) => substitution(&mut out, s, &format!("{tfield}.log_format"))?,
    }
    Ok(out)
}

/// The format a logger carries, before its `SubstitutionFormatString` is read.
enum Format {
    Default,
    Text(String),
    Json(Struct),
    Substitution(SubstitutionFormatString),
}

fn substitution(
    out: &mut AccessLog,
    s: SubstitutionFormatString,
    field: &str,
) -> Result<(), ConvertError> {
    if s.omit_empty_values {
        return Err(ConvertError::unsupported(
            format!("{field}.omit_empty_values"),
            "omit_empty_values",
        ));
    }
    if !s.formatters.is_empty() {
        return Err(ConvertError::unsupported(
            format!("{field}.formatters"),
            "formatter extensions",
        ));
    }
    #[expect(deprecated, reason = "`text_format` is what older control planes send")]
    match s.format {
        None => {}
        Some(substitution_format_string::Format::TextFormat(t)) => set_text(out, t),
        Some(substitution_format_string::Format::JsonFormat(j)) => set_json(out, &j),
        Some(substitution_format_string::Format::TextFormatSource(source)) => {
            let text = match source.specifier {
                Some(data_source::Specifier::InlineString(t)) => t,
                Some(data_source::Specifier::InlineBytes(b)) => {
                    String::from_utf8(b).map_err(|_| {
                        ConvertError::new(
                            format!("{field}.text_format_source.inline_bytes"),
                            "not UTF-8",
                        )
                    })?
                }
                Some(_) => {
                    return Err(ConvertError::unsupported(
                        format!("{field}.text_format_source"),
                        "a format read from a file or the environment (use inline_string)",
                    ));
                }
                None => {
                    return Err(ConvertError::new(
                        format!("{field}.text_format_source"),
                        "missing: inline_string",
                    ));
                }
            };
            set_text(out, text);
        }
    }
    Ok(())
}

fn set_text(out: &mut AccessLog, text: String) {
    out.format = Some(LogFormat::Text);
    out.text_format = Some(text);
}

fn set_json(out: &mut AccessLog, j: &Struct) {
    out.format = Some(LogFormat::Json);
    out.json_format = match struct_json(j) {
        serde_json::Value::Object(m) => Some(m.into_iter().collect()),
        _ => None,
    };
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::{
        envoy::config::{accesslog::v3::AccessLogFilter, core::v3::DataSource},
        google::protobuf::{Any, Value, value::Kind},
    };
    use prost::Message;

    use super::*;

    fn any<T: Message + Name>(m: &T) -> Any {
        Any {
            type_url: T::type_url(),
            value: m.encode_to_vec(),
        }
    }

    fn log(config: Any) -> XdsAccessLog {
        XdsAccessLog {
            name: "envoy.access_loggers.file".into(),
            filter: None,
            config_type: Some(ConfigType::TypedConfig(config)),
        }
    }

    fn inline(text: &str) -> SubstitutionFormatString {
        SubstitutionFormatString {
            format: Some(substitution_format_string::Format::TextFormatSource(
                DataSource {
                    specifier: Some(data_source::Specifier::InlineString(text.into())),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    fn json_format() -> SubstitutionFormatString {
        SubstitutionFormatString {
            format: Some(substitution_format_string::Format::JsonFormat(Struct {
                fields: [(
                    "code".to_string(),
                    Value {
                        kind: Some(Kind::StringValue("%RESPONSE_CODE%".into())),
                    },
                )]
                .into_iter()
                .collect(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn loggers_table() {
        let file = |path: &str, f: Option<SubstitutionFormatString>| {
            log(any(&FileAccessLog {
                path: path.into(),
                access_log_format: f.map(file_access_log::AccessLogFormat::LogFormat),
            }))
        };
        let stdout = |f: Option<SubstitutionFormatString>| {
            log(any(&StdoutAccessLog {
                access_log_format: f.map(stdout_access_log::AccessLogFormat::LogFormat),
            }))
        };
        let got = access_logs(
            &[
                file("/var/log/a.log", Some(inline("%DURATION%\n"))),
                file("/var/log/b.json", Some(json_format())),
                stdout(None),
                stdout(Some(inline("%RESPONSE_CODE%"))),
                log(any(&StderrAccessLog::default())),
            ],
            "access_log",
        )
        .expect("valid");
        let want = [
            AccessLog {
                path: "/var/log/a.log".into(),
                format: Some(LogFormat::Text),
                text_format: Some("%DURATION%\n".into()),
                json_format: None,
            },
            AccessLog {
                path: "/var/log/b.json".into(),
                format: Some(LogFormat::Json),
                text_format: None,
                json_format: Some(
                    [("code".to_string(), serde_json::json!("%RESPONSE_CODE%"))]
                        .into_iter()
                        .collect(),
                ),
            },
            AccessLog {
                path: "/dev/stdout".into(),
                ..Default::default()
            },
            AccessLog {
                path: "/dev/stdout".into(),
                format: Some(LogFormat::Text),
                text_format: Some("%RESPONSE_CODE%".into()),
                json_format: None,
            },
            AccessLog {
                path: "/dev/stderr".into(),
                ..Default::default()
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn refusals_name_the_field() {
        let file = |f: SubstitutionFormatString| {
            log(any(&FileAccessLog {
                path: "/x".into(),
                access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(f)),
            }))
        };
        let mut filtered = log(any(&StdoutAccessLog::default()));
        filtered.filter = Some(AccessLogFilter::default());
        let from_file = SubstitutionFormatString {
            format: Some(substitution_format_string::Format::TextFormatSource(
                DataSource {
                    specifier: Some(data_source::Specifier::Filename("/etc/f".into())),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let omit = SubstitutionFormatString {
            omit_empty_values: true,
            ..inline("x")
        };
        let grpc = log(Any {
            type_url: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
                .into(),
            value: Vec::new(),
        });
        let cases = [
            (filtered, "access_log[0].filter"),
            (grpc, "access_log[0].typed_config"),
            (
                log(any(&FileAccessLog::default())),
                "access_log[0].typed_config.path",
            ),
            (
                file(from_file),
                "access_log[0].typed_config.log_format.text_format_source",
            ),
            (
                file(omit),
                "access_log[0].typed_config.log_format.omit_empty_values",
            ),
            (XdsAccessLog::default(), "access_log[0].typed_config"),
        ];
        for (l, field) in cases {
            let e = access_logs(&[l], "access_log").expect_err(field);
            assert_eq!(e.field, field, "{}", e.message);
        }
    }
}
