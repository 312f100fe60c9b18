//! WASM plugins as ECDS resources, and the HTTP filter chain of a listener that names them.
//!
//! Every plugin instance (a policy filter with one route's configuration, or a user WasmPlugin) is its own
//! `TypedExtensionConfig` holding Envoy's `Wasm` filter config. The listener's `http_filters` name each one with a
//! `config_discovery` source: the ones that apply to every route are enabled, the others are `disabled: true` and
//! enabled per route through `typed_per_filter_config` (Envoy's route-based filter chain). Their order in the list is
//! their order in the chain; the router filter is last.

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{
                AsyncDataSource, DataSource, ExtensionConfigSource, HttpUri, RemoteDataSource,
                TypedExtensionConfig, async_data_source, data_source, http_uri,
            },
            route::v3::FilterConfig,
        },
        extensions::{
            filters::{
                http::{router::v3::Router, wasm::v3::Wasm},
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
            wasm::v3::{
                EnvironmentVariables, FailurePolicy, PluginConfig, VmConfig, plugin_config,
            },
        },
    },
    google::protobuf::{Any, StringValue},
};
use envoy_types::util::pack_any;
use prost::Name;

use super::ads_source;

/// The name Envoy and gRPC clients know the router filter by.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// What one plugin instance runs and how.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// Module location: `builtin://NAME`, `file:///…`, `oci://…`, `http(s)://…`.
    pub url: String,
    /// Expected SHA-256 of the module (hex).
    pub sha256: Option<String>,
    /// Root id.
    pub root_id: Option<String>,
    /// The plugin's configuration, handed over as JSON.
    pub config: Option<serde_json::Value>,
    /// `FAIL_CLOSE` (default), `FAIL_OPEN`, `FAIL_RELOAD`.
    pub fail_strategy: Option<String>,
    /// `AUTHN`, `AUTHZ`, `STATS`, or none.
    pub phase: Option<String>,
}

/// Where in the chain a plugin goes: lower first. User plugins are ranked by phase, the policy filters sit at the
/// router's end in the order docs/policies/README.md gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// `AUTHN` user plugins.
    Authn,
    /// `AUTHZ` user plugins and the `authz` policy.
    Authz,
    /// `STATS` user plugins.
    Stats,
    /// User plugins without a phase.
    User,
    /// The fault policy.
    Fault,
    /// The router policy (rewrites, redirects, header edits).
    Router,
    /// The retry policy.
    Retry,
    /// The circuit-breaker policy.
    CircuitBreaker,
}

struct Entry {
    name: String,
    rank: Rank,
    order: i64,
    everywhere: bool,
    spec: PluginSpec,
}

/// The plugins of one listener.
#[derive(Default)]
pub struct Chain {
    entries: Vec<Entry>,
}

impl Chain {
    /// Adds a plugin instance called `name` (also its ECDS resource name); `everywhere` runs it on every route,
    /// otherwise only on routes that [`enable`] it. `order` breaks ties within a rank (higher first). Adding a name
    /// twice keeps the first (routes share an instance by using the same name), widening it to every route if asked.
    pub fn add(&mut self, name: &str, rank: Rank, order: i64, everywhere: bool, spec: PluginSpec) {
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => e.everywhere |= everywhere,
            None => self.entries.push(Entry {
                name: name.to_string(),
                rank,
                order,
                everywhere,
                spec,
            }),
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The HCM `http_filters`: every plugin by ECDS in chain order, then the router.
    pub fn http_filters(&self) -> Vec<HttpFilter> {
        let mut filters: Vec<HttpFilter> = self
            .sorted()
            .into_iter()
            .map(|e| HttpFilter {
                name: e.name.clone(),
                disabled: !e.everywhere,
                config_type: Some(http_filter::ConfigType::ConfigDiscovery(
                    ExtensionConfigSource {
                        config_source: Some(ads_source()),
                        type_urls: vec![Wasm::type_url()],
                        ..Default::default()
                    },
                )),
                ..Default::default()
            })
            .collect();
        filters.push(router_filter());
        filters
    }

    /// The ECDS resources.
    pub fn extensions(&self) -> Vec<TypedExtensionConfig> {
        self.sorted()
            .into_iter()
            .map(|e| extension(&e.name, &e.spec))
            .collect()
    }

    fn sorted(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by_key(|e| (e.rank, -e.order));
        v
    }
}

/// The router filter, which every HTTP connection manager ends with.
pub fn router_filter() -> HttpFilter {
    HttpFilter {
        name: ROUTER_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    }
}

/// A route's `typed_per_filter_config` entry that turns plugin `name` on (`enable`) or off for that route.
pub fn per_route(enable: bool) -> Any {
    pack_any(FilterConfig {
        disabled: !enable,
        ..Default::default()
    })
}

/// The ECDS resource for one plugin instance.
pub fn extension(name: &str, spec: &PluginSpec) -> TypedExtensionConfig {
    let code = match spec.url.strip_prefix("file://") {
        Some(path) => async_data_source::Specifier::Local(DataSource {
            specifier: Some(data_source::Specifier::Filename(path.to_string())),
            ..Default::default()
        }),
        None => async_data_source::Specifier::Remote(RemoteDataSource {
            http_uri: Some(HttpUri {
                uri: spec.url.clone(),
                timeout: Some(super::duration(std::time::Duration::from_secs(30))),
                // Modules the control plane serves are fetched from it; proxies know it as this cluster.
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(
                    if spec.url.starts_with(&crate::modules::table::served_url("")) {
                        crate::modules::table::CONTROL_CLUSTER.to_string()
                    } else {
                        String::new()
                    },
                )),
            }),
            sha256: spec.sha256.clone().unwrap_or_default(),
            ..Default::default()
        }),
    };
    let mut env = std::collections::HashMap::new();
    if let Some(phase) = &spec.phase {
        env.insert("MESHWORK_PHASE".to_string(), phase.clone());
    }
    let failure_policy = match spec.fail_strategy.as_deref() {
        Some("FAIL_OPEN") => FailurePolicy::FailOpen,
        Some("FAIL_RELOAD") => FailurePolicy::FailReload,
        _ => FailurePolicy::FailClosed,
    };
    let config = PluginConfig {
        name: name.to_string(),
        root_id: spec.root_id.clone().unwrap_or_default(),
        configuration: spec.config.as_ref().map(|c| {
            pack_any(StringValue {
                value: c.to_string(),
            })
        }),
        failure_policy: failure_policy as i32,
        vm: Some(plugin_config::Vm::VmConfig(VmConfig {
            runtime: "envoy.wasm.runtime.wasmtime".to_string(),
            code: Some(AsyncDataSource {
                specifier: Some(code),
            }),
            environment_variables: (!env.is_empty()).then(|| EnvironmentVariables {
                key_values: env,
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    TypedExtensionConfig {
        name: name.to_string(),
        typed_config: Some(pack_any(Wasm {
            config: Some(config),
        })),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn spec(url: &str) -> PluginSpec {
        PluginSpec {
            url: url.into(),
            sha256: None,
            root_id: None,
            config: Some(serde_json::json!({"abort": {"httpStatus": 503}})),
            fail_strategy: None,
            phase: None,
        }
    }

    #[test]
    fn chain_order_is_rank_then_priority_with_router_last() {
        let mut chain = Chain::default();
        chain.add(
            "cb",
            Rank::CircuitBreaker,
            0,
            true,
            spec("builtin://circuit-breaker"),
        );
        chain.add("fault/a", Rank::Fault, 0, false, spec("builtin://fault"));
        chain.add("low", Rank::User, 1, true, spec("file:///low.wasm"));
        chain.add("high", Rank::User, 9, true, spec("file:///high.wasm"));
        chain.add("authz", Rank::Authz, 0, true, spec("builtin://authz"));
        chain.add("fault/a", Rank::Fault, 0, true, spec("builtin://ignored"));
        let filters = chain.http_filters();
        let got: Vec<(&str, bool)> = filters
            .iter()
            .map(|f| (f.name.as_str(), f.disabled))
            .collect();
        assert_eq!(
            got,
            [
                ("authz", false),
                ("high", false),
                ("low", false),
                ("fault/a", false),
                ("cb", false),
                (ROUTER_FILTER, false),
            ]
        );
        assert_eq!(chain.extensions().len(), 5);
    }

    #[test]
    fn extension_carries_code_config_and_policy() {
        let table = [
            (
                "builtin://fault",
                None,
                Some("FAIL_OPEN"),
                FailurePolicy::FailOpen,
            ),
            (
                "file:///x/y.wasm",
                Some("/x/y.wasm"),
                None,
                FailurePolicy::FailClosed,
            ),
            (
                "oci://r/x:1",
                None,
                Some("FAIL_RELOAD"),
                FailurePolicy::FailReload,
            ),
        ];
        for (url, local, fail, want_policy) in table {
            let mut s = spec(url);
            s.fail_strategy = fail.map(str::to_string);
            s.phase = Some("AUTHZ".into());
            let ext = extension("p", &s);
            let any = ext.typed_config.expect("typed config");
            assert_eq!(any.type_url, Wasm::type_url());
            let wasm = Wasm::decode(any.value.as_slice()).expect("decodes");
            let config = wasm.config.expect("plugin config");
            assert_eq!(config.failure_policy, want_policy as i32, "{url}");
            let Some(plugin_config::Vm::VmConfig(vm)) = config.vm else {
                panic!("no vm")
            };
            let code = vm.code.and_then(|c| c.specifier).expect("code");
            match (code, local) {
                (async_data_source::Specifier::Local(ds), Some(path)) => assert_eq!(
                    ds.specifier,
                    Some(data_source::Specifier::Filename(path.to_string()))
                ),
                (async_data_source::Specifier::Remote(r), None) => {
                    assert_eq!(r.http_uri.map(|u| u.uri).as_deref(), Some(url))
                }
                (other, _) => panic!("{url}: {other:?}"),
            }
            let env = vm.environment_variables.expect("env").key_values;
            assert_eq!(env.get("MESHWORK_PHASE").map(String::as_str), Some("AUTHZ"));
            let json = config.configuration.expect("configuration");
            let value = StringValue::decode(json.value.as_slice()).expect("string value");
            assert_eq!(value.value, r#"{"abort":{"httpStatus":503}}"#);
        }
    }
}
