//! One resource of any type this client reads → its converted form ([`Resource`]), and what each type is called.

use envoy_types::pb::{
    envoy::config::{
        cluster::v3::Cluster, core::v3::TypedExtensionConfig, endpoint::v3::ClusterLoadAssignment,
        listener::v3::Listener, route::v3::RouteConfiguration,
    },
    envoy::extensions::transport_sockets::tls::v3::Secret,
    google::protobuf::Any,
};

use super::{
    CLUSTER, ConvertError, ENDPOINTS, EXTENSION, LISTENER, ROUTE, SECRET, cluster,
    cluster::XdsCluster, decode, listener, listener::XdsListener, plugin, route,
    route::RouteConfig, tls, tls::SdsSecret,
};
use crate::config::plugin::WasmPlugin;

/// A converted resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// A listener; `None` for an API listener, which the proxy does not serve (held only to track its version).
    Listener(Option<XdsListener>),
    /// A route configuration.
    Routes(RouteConfig),
    /// A cluster.
    Cluster(XdsCluster),
    /// A cluster's endpoints (`IP:PORT`).
    Endpoints(Vec<String>),
    /// A WASM plugin.
    Plugin(WasmPlugin),
    /// An SDS secret.
    Secret(SdsSecret),
}

/// The resource kinds this client reads, in the order a control plane pushes them.
pub const TYPES: [&str; 6] = [CLUSTER, ENDPOINTS, LISTENER, ROUTE, EXTENSION, SECRET];

/// The known type URL equal to `type_url`.
pub fn known(type_url: &str) -> Option<&'static str> {
    TYPES.into_iter().find(|t| *t == type_url)
}

/// What a type's resources are called in messages.
pub fn kind(type_url: &str) -> &'static str {
    match type_url {
        LISTENER => "listener",
        ROUTE => "route config",
        CLUSTER => "cluster",
        ENDPOINTS => "endpoints",
        EXTENSION => "plugin",
        SECRET => "secret",
        _ => "resource",
    }
}

/// Converts `any`, a resource of `type_url` sent as `name` (empty: the resource's own name). Returns its name.
pub fn convert(type_url: &str, name: &str, any: &Any) -> Result<(String, Resource), ConvertError> {
    let (own, resource) = match type_url {
        LISTENER => {
            let l: Listener = decode(any, "")?;
            (l.name.clone(), Resource::Listener(listener::listener(&l)?))
        }
        ROUTE => {
            let rc: RouteConfiguration = decode(any, "")?;
            (rc.name.clone(), Resource::Routes(route::route_config(&rc)?))
        }
        CLUSTER => {
            let c: Cluster = decode(any, "")?;
            (c.name.clone(), Resource::Cluster(cluster::cluster(&c)?))
        }
        ENDPOINTS => {
            let cla: ClusterLoadAssignment = decode(any, "")?;
            (
                cla.cluster_name.clone(),
                Resource::Endpoints(cluster::endpoints(&cla)?),
            )
        }
        EXTENSION => {
            let ext: TypedExtensionConfig = decode(any, "")?;
            (ext.name.clone(), Resource::Plugin(plugin::plugin(&ext)?))
        }
        SECRET => {
            let secret: Secret = decode(any, "")?;
            (secret.name.clone(), Resource::Secret(tls::secret(&secret)?))
        }
        other => {
            return Err(ConvertError::new(
                "",
                format!("type `{other}` is not read by meshwork"),
            ));
        }
    };
    match (name.is_empty(), own.is_empty() || own == name) {
        (true, _) => Ok((own, resource)),
        (false, true) => Ok((name.to_string(), resource)),
        (false, false) => Err(ConvertError::new(
            "name",
            format!("`{own}` differs from the resource name `{name}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::util::pack_any;

    use super::*;
    use crate::xds::testing as fx;

    #[test]
    fn names_must_agree() {
        let any = pack_any(fx::static_cluster("a", &[]));
        assert_eq!(convert(CLUSTER, "a", &any).map(|(n, _)| n), Ok("a".into()));
        assert_eq!(convert(CLUSTER, "", &any).map(|(n, _)| n), Ok("a".into()));
        let err = convert(CLUSTER, "b", &any).expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "name: `a` differs from the resource name `b`"
        );
        let err = convert(ROUTE, "a", &any).expect_err("wrong type");
        assert!(
            err.message
                .contains("expected envoy.config.route.v3.RouteConfiguration"),
            "{err}"
        );
    }
}
