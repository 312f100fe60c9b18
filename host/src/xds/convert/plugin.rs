//! ECDS: a `TypedExtensionConfig` holding `envoy.extensions.filters.http.wasm.v3.Wasm` → a plugin entry
//! ([`WasmPlugin`]).
//!
//! `PluginConfig` maps onto Istio's `WasmPlugin` spelling: `name`, `root_id` → `pluginName`, the code's location →
//! `url` (+ `sha256`), `configuration` → `pluginConfig`, `failure_policy` → `failStrategy`, and meshwork's own VM
//! environment keys `MESHWORK_MODE` / `MESHWORK_PHASE` → `mode` / `phase` (the other variables reach the VM). The
//! plugin's `priority` comes from its position in the listener's HTTP filters, so it is set by the caller.

use envoy_types::pb::{
    envoy::{
        config::core::v3::{AsyncDataSource, TypedExtensionConfig, async_data_source, data_source},
        extensions::{
            filters::http::wasm::v3::Wasm,
            wasm::v3::{EnvironmentVariables, FailurePolicy, PluginConfig, plugin_config},
        },
    },
    google::protobuf::{Any, BytesValue, ListValue, StringValue, Struct, Value, value},
};
use prost::Name;

use super::{ConvertError, decode, join};
use crate::{
    config::plugin::{EnvSource, EnvVar, FailStrategy, Mode, Phase, VmConfig, WasmPlugin},
    wasm::builtin,
};

/// The VM environment key that sets `mode` (`enforce` or `shadow`).
pub const MODE_KEY: &str = "MESHWORK_MODE";
/// The VM environment key that sets `phase` (`AUTHN`, `AUTHZ`, `STATS`).
pub const PHASE_KEY: &str = "MESHWORK_PHASE";

/// The plugin an ECDS resource describes. Its `name` is the `PluginConfig`'s, else the resource's.
pub fn plugin(ext: &TypedExtensionConfig) -> Result<WasmPlugin, ConvertError> {
    let any = ext
        .typed_config
        .as_ref()
        .ok_or_else(|| ConvertError::new("typed_config", "missing"))?;
    let wasm: Wasm = decode(any, "typed_config")?;
    let config = wasm
        .config
        .ok_or_else(|| ConvertError::new("typed_config.config", "missing"))?;
    plugin_config(&config, &ext.name).map_err(|e| ConvertError {
        field: join("typed_config.config", &e.field),
        ..e
    })
}

fn plugin_config(c: &PluginConfig, resource: &str) -> Result<WasmPlugin, ConvertError> {
    let Some(plugin_config::Vm::VmConfig(vm)) = &c.vm else {
        return Err(ConvertError::new(
            "vm_config",
            "missing; it says where the module's code is",
        ));
    };
    if vm
        .configuration
        .as_ref()
        .is_some_and(|a| !a.value.is_empty())
    {
        return Err(ConvertError::unsupported(
            "vm_config.configuration",
            "a VM configuration (proxy_on_vm_start)",
        ));
    }
    let (url, sha256) = code(vm.code.as_ref())?;
    let (mode, phase, env) = environment(vm.environment_variables.as_ref())?;
    Ok(WasmPlugin {
        name: if c.name.is_empty() { resource } else { &c.name }.to_string(),
        plugin_name: (!c.root_id.is_empty()).then(|| c.root_id.clone()),
        url: Some(url),
        sha256,
        plugin_config: configuration(c.configuration.as_ref())?,
        fail_strategy: fail_strategy(c)?,
        vm_config: (!env.is_empty()).then_some(VmConfig { env }),
        mode,
        phase,
        ..Default::default()
    })
}

/// The module's `url` and expected `sha256`.
fn code(code: Option<&AsyncDataSource>) -> Result<(String, Option<String>), ConvertError> {
    let field = "vm_config.code";
    match code.and_then(|c| c.specifier.as_ref()) {
        Some(async_data_source::Specifier::Local(local)) => match &local.specifier {
            Some(data_source::Specifier::Filename(f)) if !f.is_empty() => {
                Ok((format!("file://{f}"), None))
            }
            Some(data_source::Specifier::Filename(_)) | None => Err(ConvertError::new(
                format!("{field}.local.filename"),
                "missing",
            )),
            Some(_) => Err(ConvertError::new(
                format!("{field}.local"),
                "module code inline or from an environment variable is not supported by meshwork; use a filename or a builtin:// URL",
            )),
        },
        Some(async_data_source::Specifier::Remote(remote)) => {
            let uri = remote
                .http_uri
                .as_ref()
                .map(|u| u.uri.as_str())
                .unwrap_or_default();
            let sha = (!remote.sha256.is_empty()).then(|| remote.sha256.clone());
            if crate::xds::modules::is_remote(uri) {
                crate::xds::modules::served_digest(uri, sha.as_deref())
                    .map_err(|e| ConvertError::new(format!("{field}.remote"), e))?;
            } else if !(uri.starts_with(builtin::SCHEME) || uri.starts_with("file://")) {
                return Err(ConvertError::new(
                    format!("{field}.remote.http_uri.uri"),
                    format!(
                        "`{uri}`: not a module meshwork can load; use builtin://NAME, file://PATH, or an https:// URL \
                         of the meshwork control plane's module cache (the control plane resolves oci:// URLs)"
                    ),
                ));
            }
            Ok((uri.to_string(), sha))
        }
        None => Err(ConvertError::new(
            field,
            "missing; give local.filename or remote.http_uri",
        )),
    }
}

type Environment = (Option<Mode>, Option<Phase>, Vec<EnvVar>);

/// `MESHWORK_MODE` and `MESHWORK_PHASE` become settings; the other variables go to the VM (sorted by name, so equal
/// resources give equal configs).
fn environment(vars: Option<&EnvironmentVariables>) -> Result<Environment, ConvertError> {
    let Some(vars) = vars else {
        return Ok((None, None, Vec::new()));
    };
    let field = |key: &str| format!("vm_config.environment_variables.key_values[{key}]");
    let (mut mode, mut phase) = (None, None);
    let mut env = Vec::new();
    for (key, value) in &vars.key_values {
        match key.as_str() {
            MODE_KEY => {
                let v = value.to_ascii_lowercase();
                mode = Some(setting(&v, &field(key), "enforce or shadow")?);
            }
            PHASE_KEY => {
                let v = value.to_ascii_uppercase();
                phase = Some(setting(&v, &field(key), "AUTHN, AUTHZ or STATS")?);
            }
            _ => env.push(EnvVar {
                name: key.clone(),
                value_from: EnvSource::Inline,
                value: value.clone(),
            }),
        }
    }
    env.extend(vars.host_env_keys.iter().map(|key| EnvVar {
        name: key.clone(),
        value_from: EnvSource::Host,
        value: String::new(),
    }));
    env.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((mode, phase, env))
}

/// A setting spelled as in the plugin entry (`shadow`, `AUTHZ`).
fn setting<T: serde::de::DeserializeOwned>(
    value: &str,
    field: &str,
    expected: &str,
) -> Result<T, ConvertError> {
    serde_json::from_value(value.into())
        .map_err(|_| ConvertError::new(field, format!("`{value}`: expected {expected}")))
}

/// `configuration`: a `StringValue` or `BytesValue` is handed over as is (parsed when it is a JSON object, array,
/// number or boolean, so `/config_dump` shows it as such); a `Struct` becomes its JSON.
fn configuration(any: Option<&Any>) -> Result<Option<serde_json::Value>, ConvertError> {
    let Some(any) = any else { return Ok(None) };
    let field = "configuration";
    let text = if any.type_url == StringValue::type_url() {
        decode::<StringValue>(any, field)?.value
    } else if any.type_url == BytesValue::type_url() {
        String::from_utf8(decode::<BytesValue>(any, field)?.value)
            .map_err(|_| ConvertError::new(field, "the bytes are not UTF-8 text"))?
    } else if any.type_url == Struct::type_url() {
        return Ok(Some(struct_json(&decode::<Struct>(any, field)?)));
    } else {
        return Err(ConvertError::new(
            field,
            format!(
                "expected google.protobuf.StringValue, BytesValue or Struct, got `{}`",
                any.type_url
            ),
        ));
    };
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if !v.is_string() => v,
            _ => serde_json::Value::String(text),
        },
    ))
}

/// A `google.protobuf.Struct` as JSON; whole numbers become JSON integers (a status code stays `418`, not `418.0`).
pub fn struct_json(s: &Struct) -> serde_json::Value {
    let mut fields: Vec<_> = s.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.kind {
        None | Some(value::Kind::NullValue(_)) => J::Null,
        Some(value::Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            J::from(*n as i64)
        }
        Some(value::Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(J::Null, J::Number)
        }
        Some(value::Kind::StringValue(s)) => J::String(s.clone()),
        Some(value::Kind::BoolValue(b)) => J::Bool(*b),
        Some(value::Kind::StructValue(s)) => struct_json(s),
        Some(value::Kind::ListValue(ListValue { values })) => {
            J::Array(values.iter().map(value_json).collect())
        }
    }
}

fn fail_strategy(c: &PluginConfig) -> Result<Option<FailStrategy>, ConvertError> {
    #[expect(
        deprecated,
        reason = "`fail_open` is still what older control planes send"
    )]
    let fail_open = c.fail_open;
    match FailurePolicy::try_from(c.failure_policy) {
        Ok(FailurePolicy::Unspecified) => Ok(fail_open.then_some(FailStrategy::FailOpen)),
        Ok(FailurePolicy::FailClosed) => Ok(Some(FailStrategy::FailClose)),
        Ok(FailurePolicy::FailOpen) => Ok(Some(FailStrategy::FailOpen)),
        Ok(FailurePolicy::FailReload) => Ok(Some(FailStrategy::FailReload)),
        Err(_) => Err(ConvertError::new(
            "failure_policy",
            format!("unknown value {}", c.failure_policy),
        )),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::{
        pb::envoy::{
            config::core::v3::{DataSource, HttpUri, RemoteDataSource},
            extensions::wasm::v3::VmConfig as PbVmConfig,
        },
        util::pack_any,
    };
    use serde_json::json;

    use super::*;

    /// A Wasm ECDS resource named `fault/0` running `uri` with `configuration`.
    pub(crate) fn wasm_resource(
        name: &str,
        uri: &str,
        configuration: Option<Any>,
        env: &[(&str, &str)],
    ) -> TypedExtensionConfig {
        TypedExtensionConfig {
            name: name.into(),
            typed_config: Some(pack_any(Wasm {
                config: Some(PluginConfig {
                    name: "teapot".into(),
                    root_id: "root".into(),
                    configuration,
                    failure_policy: FailurePolicy::FailOpen as i32,
                    vm: Some(plugin_config::Vm::VmConfig(PbVmConfig {
                        code: Some(AsyncDataSource {
                            specifier: Some(async_data_source::Specifier::Remote(
                                RemoteDataSource {
                                    http_uri: Some(HttpUri {
                                        uri: uri.into(),
                                        ..Default::default()
                                    }),
                                    sha256: "ab".into(),
                                    ..Default::default()
                                },
                            )),
                        }),
                        environment_variables: Some(EnvironmentVariables {
                            host_env_keys: vec!["HOME".into()],
                            key_values: env
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
            })),
        }
    }

    fn string(s: &str) -> Option<Any> {
        Some(pack_any(StringValue { value: s.into() }))
    }

    #[test]
    fn a_full_resource_maps_field_by_field() {
        let ext = wasm_resource(
            "fault/0",
            "builtin://fault",
            string(r#"{"abort": {"httpStatus": 418}}"#),
            &[
                (MODE_KEY, "shadow"),
                (PHASE_KEY, "AUTHZ"),
                ("B", "2"),
                ("A", "1"),
            ],
        );
        let p = plugin(&ext).expect("valid");
        assert_eq!(p.name, "teapot");
        assert_eq!(p.plugin_name.as_deref(), Some("root"));
        assert_eq!(p.url.as_deref(), Some("builtin://fault"));
        assert_eq!(p.sha256.as_deref(), Some("ab"));
        assert_eq!(p.plugin_config, Some(json!({"abort": {"httpStatus": 418}})));
        assert_eq!(p.fail_strategy, Some(FailStrategy::FailOpen));
        assert_eq!(p.mode, Some(Mode::Shadow));
        assert_eq!(p.phase, Some(Phase::Authz));
        let env: Vec<_> = p
            .vm_config
            .expect("env")
            .env
            .into_iter()
            .map(|e| (e.name, e.value_from))
            .collect();
        assert_eq!(
            env,
            [
                ("A".into(), EnvSource::Inline),
                ("B".into(), EnvSource::Inline),
                ("HOME".into(), EnvSource::Host)
            ]
        );
        assert_eq!(p.priority, None, "the listener's order sets it");
    }

    #[test]
    fn configurations_table() {
        let bytes = |b: &[u8]| Some(pack_any(BytesValue { value: b.to_vec() }));
        let st = Struct {
            fields: [
                (
                    "status".to_string(),
                    Value {
                        kind: Some(value::Kind::NumberValue(418.0)),
                    },
                ),
                (
                    "share".to_string(),
                    Value {
                        kind: Some(value::Kind::NumberValue(0.5)),
                    },
                ),
                (
                    "on".to_string(),
                    Value {
                        kind: Some(value::Kind::BoolValue(true)),
                    },
                ),
                (
                    "list".to_string(),
                    Value {
                        kind: Some(value::Kind::ListValue(ListValue {
                            values: vec![Value {
                                kind: Some(value::Kind::StringValue("a".into())),
                            }],
                        })),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        };
        let cases: Vec<(Option<Any>, Option<serde_json::Value>)> = vec![
            (None, None),
            (string(""), None),
            (string(r#"{"a": 1}"#), Some(json!({"a": 1}))),
            (string("[1, 2]"), Some(json!([1, 2]))),
            (string("plain text"), Some(json!("plain text"))),
            (string(r#""quoted""#), Some(json!(r#""quoted""#))),
            (bytes(br#"{"b": true}"#), Some(json!({"b": true}))),
            (
                Some(pack_any(st)),
                Some(json!({"status": 418, "share": 0.5, "on": true, "list": ["a"]})),
            ),
        ];
        for (input, want) in cases {
            let ext = wasm_resource("p", "builtin://fault", input.clone(), &[]);
            assert_eq!(
                plugin(&ext).expect("valid").plugin_config,
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn refusals_table() {
        let good = wasm_resource("p", "builtin://fault", None, &[]);
        let with_config = |f: &dyn Fn(&mut PluginConfig)| {
            let mut wasm: Wasm =
                decode(good.typed_config.as_ref().expect("any"), "t").expect("wasm");
            f(wasm.config.as_mut().expect("config"));
            TypedExtensionConfig {
                name: "p".into(),
                typed_config: Some(pack_any(wasm)),
            }
        };
        let local = |specifier| {
            with_config(&move |c: &mut PluginConfig| {
                if let Some(plugin_config::Vm::VmConfig(vm)) = &mut c.vm {
                    vm.code = Some(AsyncDataSource {
                        specifier: Some(async_data_source::Specifier::Local(DataSource {
                            specifier: Some(match &specifier {
                                Ok(f) => data_source::Specifier::Filename(String::from(*f)),
                                Err(s) => data_source::Specifier::InlineString(String::from(*s)),
                            }),
                            ..Default::default()
                        })),
                    });
                }
            })
        };
        let cases: Vec<(TypedExtensionConfig, &str)> = vec![
            (
                TypedExtensionConfig {
                    name: "p".into(),
                    typed_config: None,
                },
                "typed_config: missing",
            ),
            (
                TypedExtensionConfig {
                    name: "p".into(),
                    typed_config: Some(pack_any(StringValue::default())),
                },
                "typed_config: expected envoy.extensions.filters.http.wasm.v3.Wasm",
            ),
            (
                wasm_resource("p", "https://example.com/f.wasm", None, &[]),
                "typed_config.config.vm_config.code.remote: only modules the meshwork control plane serves can be fetched",
            ),
            (
                wasm_resource("p", "oci://registry/f:1", None, &[]),
                "typed_config.config.vm_config.code.remote.http_uri.uri: `oci://registry/f:1`: not a module meshwork can load",
            ),
            (
                wasm_resource("p", "builtin://fault", None, &[(MODE_KEY, "loud")]),
                "key_values[MESHWORK_MODE]: `loud`: expected enforce or shadow",
            ),
            (
                wasm_resource("p", "builtin://fault", None, &[(PHASE_KEY, "LAST")]),
                "key_values[MESHWORK_PHASE]: `LAST`: expected AUTHN",
            ),
            (
                wasm_resource(
                    "p",
                    "builtin://fault",
                    Some(pack_any(HttpUri::default())),
                    &[],
                ),
                "typed_config.config.configuration: expected google.protobuf.StringValue",
            ),
            (
                with_config(&|c| c.vm = None),
                "typed_config.config.vm_config: missing",
            ),
            (
                with_config(&|c| c.failure_policy = 9),
                "failure_policy: unknown value 9",
            ),
            (
                local(Err("(module)")),
                "module code inline or from an environment variable",
            ),
        ];
        for (ext, want) in cases {
            let err = plugin(&ext).expect_err(want);
            assert!(err.to_string().contains(want), "{err}\nwanted: {want}");
        }
        let file = plugin(&local(Ok("/opt/f.wasm"))).expect("a local file");
        assert_eq!(file.url.as_deref(), Some("file:///opt/f.wasm"));
        assert_eq!(file.sha256, None);
    }

    #[test]
    fn failure_policies_table() {
        let cases = [
            (FailurePolicy::Unspecified, None),
            (FailurePolicy::FailClosed, Some(FailStrategy::FailClose)),
            (FailurePolicy::FailOpen, Some(FailStrategy::FailOpen)),
            (FailurePolicy::FailReload, Some(FailStrategy::FailReload)),
        ];
        for (policy, want) in cases {
            let c = PluginConfig {
                failure_policy: policy as i32,
                ..Default::default()
            };
            assert_eq!(fail_strategy(&c), Ok(want), "{policy:?}");
        }
    }
}
