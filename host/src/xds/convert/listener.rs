//! LDS: a `Listener` whose one filter chain holds an `HttpConnectionManager` → a listener of the schema, plus what it
//! refers to: its routes (an RDS name or an inline `RouteConfiguration`) and its ECDS plugins in chain order.
//!
//! Listeners without a socket address (gRPC clients' `api_listener`s) are not for a proxy: [`listener`] returns
//! `None` for them. The HTTP filters must end with the router, as in Envoy; the filters before it must be ECDS
//! filters that can hold a WASM plugin, or be `is_optional` (then they are left out).

use envoy_types::pb::envoy::{
    config::{
        core::v3::address,
        listener::v3::{Filter, FilterChain, FilterChainMatch, Listener, filter},
    },
    extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier, http_filter,
    },
};

use super::{ConvertError, decode, duration, idle_timeout, join, route, socket_address, tls};
use crate::config::{
    schema,
    tls::{ListenerTls, TlsMode},
};

/// The type of the router filter's `typed_config`.
pub const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
/// The router filter's conventional name.
pub const ROUTER_NAME: &str = "envoy.filters.http.router";
/// The type a WASM plugin's ECDS resource holds.
pub const WASM: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// A listener as xDS describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsListener {
    /// Its own settings; `virtual_hosts` and `filters` are filled in when the config is assembled.
    pub listener: schema::Listener,
    /// Where its routes come from.
    pub routes: Routes,
    /// The ECDS plugins of its HTTP filter chain, first to last.
    pub plugins: Vec<PluginRef>,
}

/// Where a listener's routes come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Routes {
    /// The RDS resource of this name.
    Rds(String),
    /// Inline in the listener.
    Inline(route::RouteConfig),
}

/// An HTTP filter configured by ECDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    /// The filter's name, which is also the ECDS resource name.
    pub name: String,
    /// Runs only on routes that enable it (`typed_per_filter_config[NAME] = FilterConfig{disabled: false}`).
    pub disabled: bool,
}

/// The listener `l` describes, or `None` when it has no socket address (an API listener).
pub fn listener(l: &Listener) -> Result<Option<XdsListener>, ConvertError> {
    let has_socket = matches!(
        l.address.as_ref().and_then(|a| a.address.as_ref()),
        Some(address::Address::SocketAddress(_))
    );
    if l.api_listener.is_some() || !has_socket {
        return Ok(None);
    }
    let address = socket_address(l.address.as_ref(), "address")?;
    if l.use_original_dst.as_ref().is_some_and(|b| b.value) {
        return Err(ConvertError::unsupported(
            "use_original_dst",
            "use_original_dst",
        ));
    }
    let (chain, cfield, tls) = chains(l)?;
    let hcm = http_connection_manager(&chain.filters, &format!("{cfield}.filters"))?;
    let hfield = format!("{cfield}.filters[0].typed_config");
    let mut out = XdsListener {
        listener: schema::Listener::new(l.name.clone(), address),
        routes: match &hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) if !rds.route_config_name.is_empty() => {
                Routes::Rds(rds.route_config_name.clone())
            }
            Some(RouteSpecifier::RouteConfig(rc)) => {
                Routes::Inline(route::route_config(rc).map_err(|e| ConvertError {
                    field: join(&format!("{hfield}.route_config"), &e.field),
                    ..e
                })?)
            }
            Some(RouteSpecifier::Rds(_)) => {
                return Err(ConvertError::new(
                    format!("{hfield}.rds.route_config_name"),
                    "missing",
                ));
            }
            Some(_) => {
                return Err(ConvertError::unsupported(
                    format!("{hfield}.scoped_routes"),
                    "scoped routing",
                ));
            }
            None => return Err(ConvertError::new(hfield, "needs rds or route_config")),
        },
        plugins: plugins(&hcm.http_filters, &format!("{hfield}.http_filters"))?,
    };
    let s = &mut out.listener;
    s.tls = tls;
    *s.telemetry = super::telemetry::listener_telemetry(l)?;
    s.telemetry.access_log =
        super::access_log::access_logs(&hcm.access_log, &format!("{hfield}.access_log"))?;
    s.telemetry.tracing =
        super::tracing::hcm_tracing(hcm.tracing.as_ref(), &format!("{hfield}.tracing"))?;
    if let Some(d) = idle_timeout(hcm.common_http_protocol_options.as_ref(), &hfield)? {
        s.idle_timeout = d;
    }
    if let Some(d) = &hcm.request_headers_timeout {
        s.request_headers_timeout = duration(d, &format!("{hfield}.request_headers_timeout"))?;
    }
    if let Some(kb) = &hcm.max_request_headers_kb {
        s.max_request_headers_kb = kb.value;
    }
    if let Some(n) = hcm
        .http2_protocol_options
        .as_ref()
        .and_then(|o| o.max_concurrent_streams.as_ref())
    {
        s.http2_max_concurrent_streams = n.value;
    }
    Ok(Some(out))
}

/// The chain that serves HTTP, where it is, and the listener's TLS. As Envoy expresses Istio's modes: one chain
/// (plaintext, or TLS with `transport_protocol: tls` = STRICT), or a TLS chain plus a `raw_buffer` chain with the same
/// filters (PERMISSIVE). Any other `filter_chain_match` is refused.
fn chains(l: &Listener) -> Result<(&FilterChain, String, Option<ListenerTls>), ConvertError> {
    let all: Vec<(&FilterChain, String)> = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c, format!("filter_chains[{i}]")))
        .chain(
            l.default_filter_chain
                .iter()
                .map(|c| (c, "default_filter_chain".to_string())),
        )
        .collect();
    let mut tls_chain = None;
    let mut plain_chain = None;
    for (chain, field) in &all {
        let transport = chain
            .filter_chain_match
            .as_ref()
            .map_or("", |m| m.transport_protocol.as_str());
        let only_transport = chain.filter_chain_match.as_ref().is_none_or(|m| {
            *m == FilterChainMatch {
                transport_protocol: m.transport_protocol.clone(),
                ..Default::default()
            }
        });
        if !only_transport {
            return Err(ConvertError::unsupported(
                format!("{field}.filter_chain_match"),
                "filter_chain_match other than transport_protocol",
            ));
        }
        let slot = match (&chain.transport_socket, transport) {
            (Some(_), "" | "tls") => &mut tls_chain,
            (None, "" | "raw_buffer") => &mut plain_chain,
            (Some(_), other) => {
                return Err(ConvertError::new(
                    format!("{field}.filter_chain_match.transport_protocol"),
                    format!("`{other}` with a TLS transport socket; expected `tls`"),
                ));
            }
            (None, other) => {
                return Err(ConvertError::new(
                    format!("{field}.filter_chain_match.transport_protocol"),
                    format!("`{other}` without a transport socket; expected `raw_buffer`"),
                ));
            }
        };
        if slot.replace((*chain, field.clone())).is_some() {
            return Err(ConvertError::new(
                "filter_chains",
                "meshwork serves one plaintext and one TLS filter chain per listener at most",
            ));
        }
    }
    match (tls_chain, plain_chain) {
        (None, Some((chain, field))) => Ok((chain, field, None)),
        (Some((chain, field)), plain) => {
            let socket = chain.transport_socket.as_ref();
            let mut tls = tls::downstream(
                socket.unwrap_or(&Default::default()),
                &format!("{field}.transport_socket"),
            )?;
            if let Some((p, pfield)) = plain {
                if p.filters != chain.filters {
                    return Err(ConvertError::new(
                        format!("{pfield}.filters"),
                        "the plaintext and TLS chains of a PERMISSIVE listener must hold the same filters",
                    ));
                }
                tls.mode = TlsMode::Permissive;
            }
            Ok((chain, field, Some(tls)))
        }
        (None, None) => Err(ConvertError::new(
            "filter_chains",
            "meshwork serves one filter chain per listener (two for PERMISSIVE mTLS); got 0",
        )),
    }
}

/// The chain's one network filter, which must be the HTTP connection manager.
fn http_connection_manager(
    filters: &[Filter],
    field: &str,
) -> Result<HttpConnectionManager, ConvertError> {
    let [f] = filters else {
        return Err(ConvertError::new(
            field,
            format!(
                "meshwork needs exactly one network filter, the HTTP connection manager; got {}",
                filters.len()
            ),
        ));
    };
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            decode(any, &format!("{field}[0].typed_config")).map_err(|e| ConvertError {
                message: format!(
                    "network filter `{}`: {}; meshwork serves HTTP only",
                    f.name, e.message
                ),
                ..e
            })
        }
        _ => Err(ConvertError::new(
            format!("{field}[0]"),
            format!(
                "network filter `{}` needs a typed_config holding an HttpConnectionManager",
                f.name
            ),
        )),
    }
}

/// The ECDS plugins among `filters`, in order; checks that the router comes last and nothing else is unknown.
fn plugins(filters: &[HttpFilter], field: &str) -> Result<Vec<PluginRef>, ConvertError> {
    let Some((last, rest)) = filters.split_last().filter(|(last, _)| is_router(last)) else {
        return Err(ConvertError::new(
            field,
            format!("the last HTTP filter must be the router ({ROUTER_NAME}), as in Envoy"),
        ));
    };
    let _ = last;
    let mut out: Vec<PluginRef> = Vec::new();
    for (i, f) in rest.iter().enumerate() {
        let ffield = format!("{field}[{i}]");
        if f.name.is_empty() {
            return Err(ConvertError::new(format!("{ffield}.name"), "missing"));
        }
        if rest[..i].iter().any(|o| o.name == f.name) {
            return Err(ConvertError::new(
                format!("{ffield}.name"),
                format!("duplicate filter name `{}`", f.name),
            ));
        }
        if is_router(f) {
            return Err(ConvertError::new(
                ffield,
                "the router must be the last HTTP filter",
            ));
        }
        let refused = match &f.config_type {
            Some(http_filter::ConfigType::ConfigDiscovery(src))
                if src.type_urls.is_empty() || src.type_urls.iter().any(|t| t == WASM) =>
            {
                out.push(PluginRef {
                    name: f.name.clone(),
                    disabled: f.disabled,
                });
                continue;
            }
            Some(http_filter::ConfigType::ConfigDiscovery(src)) => {
                format!(
                    "an ECDS filter of type {} (meshwork runs WASM plugins by ECDS)",
                    src.type_urls.join(", ")
                )
            }
            Some(http_filter::ConfigType::TypedConfig(any)) => {
                format!(
                    "the HTTP filter {} (serve policies as WASM plugins by ECDS)",
                    any.type_url
                )
            }
            None => "an HTTP filter without a config".to_string(),
        };
        if f.is_optional {
            tracing::debug!(filter = %f.name, "optional HTTP filter left out: {refused}");
            continue;
        }
        return Err(ConvertError::new(
            ffield,
            format!(
                "`{}`: {refused} is not supported by meshwork; or mark it is_optional",
                f.name
            ),
        ));
    }
    Ok(out)
}

fn is_router(f: &HttpFilter) -> bool {
    match &f.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) => any.type_url == ROUTER,
        None => f.name == ROUTER_NAME,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::{
        pb::envoy::{
            config::listener::v3::ApiListener, extensions::filters::http::router::v3::Router,
        },
        util::pack_any,
    };

    use super::*;
    use crate::xds::testing as fx;

    /// The listener's HCM, changed by `edit`, put back.
    fn with_hcm(mut l: Listener, edit: &dyn Fn(&mut HttpConnectionManager)) -> Listener {
        let f = &mut l.filter_chains[0].filters[0];
        if let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type {
            let mut hcm: HttpConnectionManager = decode(any, "t").expect("hcm");
            edit(&mut hcm);
            *any = pack_any(hcm);
        }
        l
    }

    #[test]
    fn listeners_map_field_by_field() {
        let l = fx::listener(
            "main",
            "127.0.0.1:0",
            "rds-main",
            &[("authz", false), ("fault", true)],
        );
        let l = with_hcm(l, &|h| {
            h.request_headers_timeout = Some(fx::secs(4));
            h.max_request_headers_kb =
                Some(envoy_types::pb::google::protobuf::UInt32Value { value: 96 });
        });
        let got = listener(&l).expect("valid").expect("has an address");
        assert_eq!(got.listener.name, "main");
        assert_eq!(
            got.listener.telemetry.tracing, None,
            "no tracing without a provider"
        );
        assert_eq!(got.listener.address, "127.0.0.1:0");
        assert_eq!(
            got.listener.request_headers_timeout,
            crate::config::Dur::secs(4)
        );
        assert_eq!(got.listener.max_request_headers_kb, 96);
        assert_eq!(
            got.listener.max_connections, 10_000,
            "defaults where xDS says nothing"
        );
        assert_eq!(got.routes, Routes::Rds("rds-main".into()));
        let refs = [
            PluginRef {
                name: "authz".into(),
                disabled: false,
            },
            PluginRef {
                name: "fault".into(),
                disabled: true,
            },
        ];
        assert_eq!(got.plugins, refs);
    }

    #[test]
    fn hcm_tracing_reaches_the_listener_and_a_zipkin_tracer_is_refused() {
        use envoy_types::pb::envoy::config::{
            core::v3::{GrpcService, grpc_service},
            trace::v3::{OpenTelemetryConfig, ZipkinConfig, tracing::Http, tracing::http},
        };
        let with_tracer = |config: envoy_types::pb::google::protobuf::Any| {
            with_hcm(fx::listener("main", "127.0.0.1:0", "r", &[]), &|h| {
                h.tracing = Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing {
                    provider: Some(Http {
                        name: "t".into(),
                        config_type: Some(http::ConfigType::TypedConfig(config.clone())),
                    }),
                    ..Default::default()
                });
            })
        };
        let otel = OpenTelemetryConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: "otel".into(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = listener(&with_tracer(pack_any(otel)))
            .expect("valid")
            .expect("has an address");
        let t = got.listener.telemetry.tracing.expect("tracing");
        assert_eq!(t.otlp.cluster.as_deref(), Some("otel"));
        let e = listener(&with_tracer(pack_any(ZipkinConfig::default()))).expect_err("refused");
        assert_eq!(
            e.field,
            "filter_chains[0].filters[0].typed_config.tracing.provider.typed_config"
        );
    }

    #[test]
    fn api_listeners_are_skipped() {
        let mut api = fx::listener("reviews:9080", "127.0.0.1:0", "reviews:9080", &[]);
        api.api_listener = Some(ApiListener::default());
        assert_eq!(listener(&api), Ok(None));
        api.api_listener = None;
        api.address = None;
        assert_eq!(listener(&api), Ok(None));
    }

    #[test]
    fn inline_routes_are_read() {
        let l = with_hcm(fx::listener("main", "127.0.0.1:0", "x", &[]), &|h| {
            let rc = fx::route_config(
                "inline",
                vec![fx::vhost("all", vec![fx::to_cluster("/", "a")])],
            );
            h.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
        });
        let Some(XdsListener {
            routes: Routes::Inline(rc),
            ..
        }) = listener(&l).expect("valid")
        else {
            panic!("inline routes expected");
        };
        assert_eq!(rc.clusters().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn refusals_table() {
        let base = || fx::listener("main", "127.0.0.1:0", "r", &[("p", false)]);
        let filters =
            |edit: &dyn Fn(&mut Vec<HttpFilter>)| with_hcm(base(), &|h| edit(&mut h.http_filters));
        let fault = HttpFilter {
            name: "envoy.filters.http.fault".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault::default(),
            ))),
            ..Default::default()
        };
        let router = HttpFilter {
            name: ROUTER_NAME.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        };
        let pf = "filter_chains[0].filters[0].typed_config";
        let cases: Vec<(Listener, String)> = vec![
            (filters(&|f| { f.pop(); }), format!("{pf}.http_filters: the last HTTP filter must be the router")),
            (
                filters(&|f| f.insert(0, fault.clone())),
                format!("{pf}.http_filters[0]: `envoy.filters.http.fault`: the HTTP filter type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault (serve policies as WASM plugins by ECDS) is not supported by meshwork"),
            ),
            (filters(&|f| f.insert(0, router.clone())), format!("{pf}.http_filters[0]: the router must be the last")),
            (filters(&|f| f.insert(0, f[0].clone())), format!("{pf}.http_filters[1].name: duplicate filter name `p`")),
            (
                with_hcm(base(), &|h| h.route_specifier = None),
                format!("{pf}: needs rds or route_config"),
            ),
            (
                {
                    let mut l = base();
                    l.filter_chains.push(l.filter_chains[0].clone());
                    l
                },
                "filter_chains: meshwork serves one plaintext and one TLS filter chain per listener at most".into(),
            ),
            (
                {
                    let mut l = base();
                    l.filter_chains[0].transport_socket = Some(Default::default());
                    l
                },
                "filter_chains[0].transport_socket.typed_config: missing; expected a TLS context".into(),
            ),
            (
                {
                    let mut l = base();
                    l.filter_chains[0].filters[0].config_type =
                        Some(filter::ConfigType::TypedConfig(pack_any(Router::default())));
                    l
                },
                "network filter `envoy.filters.network.http_connection_manager`: expected envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".into(),
            ),
            (
                {
                    let mut l = base();
                    l.address = Some(fx::address("localhost:80"));
                    l
                },
                "address.socket_address.address: `localhost` is not an IP address".into(),
            ),
        ];
        for (l, want) in cases {
            let err = listener(&l).expect_err(&want);
            assert!(err.to_string().contains(&want), "{err}\nwanted: {want}");
        }
        let optional = filters(&|f| {
            f.insert(
                0,
                HttpFilter {
                    is_optional: true,
                    ..fault.clone()
                },
            )
        });
        let got = listener(&optional)
            .expect("an optional filter is left out")
            .expect("listener");
        assert_eq!(got.plugins.len(), 1);
    }
}
