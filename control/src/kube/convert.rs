//! One Istio object from the Kubernetes API into the typed resource the YAML loader produces.
//!
//! The object is rewritten as the document `kubectl get -o yaml` would print, keeping `apiVersion`, `kind`,
//! `metadata.name`, `namespace`, `labels`, `annotations` and `spec` (the API server's own fields such as
//! `managedFields` and `status` are dropped), and read by [`crate::istio::load`], so an object is held to exactly
//! the rules of a file: unknown fields, misspelled enum values and bad durations are errors naming the field, and so
//! are the values the analysis refuses (weights that do not add up to 100, bad percentages, regexes, statuses), as
//! the file source refuses them. References to other objects are not checked here: they need the whole mesh. The
//! errors name the object (`VirtualService shop/reviews`) where a file would be named; lines are left out, as the
//! object has none.

use ::kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value};

use crate::istio::{Diagnostic, Kind, Loaded, analyze, load::load_str};

/// The API resource watched for `kind`: the version Istio serves and stores (`v1`; `v1alpha1` for WasmPlugin).
pub fn api_resource(kind: Kind) -> ApiResource {
    let (group, version, plural) = match kind {
        Kind::ServiceEntry => ("networking.istio.io", "v1", "serviceentries"),
        Kind::WorkloadEntry => ("networking.istio.io", "v1", "workloadentries"),
        Kind::VirtualService => ("networking.istio.io", "v1", "virtualservices"),
        Kind::DestinationRule => ("networking.istio.io", "v1", "destinationrules"),
        Kind::PeerAuthentication => ("security.istio.io", "v1", "peerauthentications"),
        Kind::AuthorizationPolicy => ("security.istio.io", "v1", "authorizationpolicies"),
        Kind::WasmPlugin => ("extensions.istio.io", "v1alpha1", "wasmplugins"),
        Kind::Telemetry => ("telemetry.istio.io", "v1", "telemetries"),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.name().into(),
        plural: plural.into(),
    }
}

/// How messages name an object: `KIND NAMESPACE/NAME`.
pub fn origin(kind: Kind, obj: &DynamicObject) -> String {
    format!(
        "{kind} {}/{}",
        obj.metadata.namespace.as_deref().unwrap_or("default"),
        obj.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `obj`, watched as `kind`, as a [`Loaded`] holding that one resource; or the errors that keep it out, each naming
/// the object ([`origin`]) and the field.
pub fn convert(kind: Kind, obj: &DynamicObject) -> Result<Loaded, Vec<Diagnostic>> {
    load_document(&envelope(kind, obj), &origin(kind, obj))
}

/// The ConfigMap `istio-system/istio` as a [`Loaded`] holding its mesh config (none for another ConfigMap), or the
/// errors that keep it out, naming the ConfigMap and the field of the mesh config.
pub fn convert_mesh_config(
    cm: &k8s_openapi::api::core::v1::ConfigMap,
) -> Result<Loaded, Vec<Diagnostic>> {
    let meta = &cm.metadata;
    let origin = format!(
        "ConfigMap {}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default()
    );
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": meta.name, "namespace": meta.namespace},
        "data": cm.data,
    });
    load_document(&doc, &origin)
}

/// `doc` loaded as the file loader reads a document, named `origin`; only errors keep it out (alone, an object's
/// references lead nowhere, so the analysis' warnings do not count), without line numbers (there is no file).
fn load_document(doc: &impl serde::Serialize, origin: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let text = serde_yaml::to_string(doc).map_err(|e| {
        vec![Diagnostic::error(
            origin,
            None,
            None,
            format!("cannot be read: {e}"),
        )]
    })?;
    let unlined = |diags: Vec<Diagnostic>| -> Vec<Diagnostic> {
        diags
            .into_iter()
            .filter(Diagnostic::is_error)
            .map(|d| Diagnostic { line: None, ..d })
            .collect()
    };
    let loaded = load_str(&text, origin).map_err(unlined)?;
    let refused = unlined(analyze(&loaded));
    if refused.is_empty() {
        Ok(loaded)
    } else {
        Err(refused)
    }
}

/// The document the loader reads: the envelope of `kind`'s watched version, the user's metadata and the spec.
fn envelope(kind: Kind, obj: &DynamicObject) -> Value {
    let meta = &obj.metadata;
    let mut metadata = Map::new();
    let name = meta.name.clone().unwrap_or_default();
    metadata.insert("name".into(), Value::String(name));
    if let Some(ns) = &meta.namespace {
        metadata.insert("namespace".into(), Value::String(ns.clone()));
    }
    for (key, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
            let map = map
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            metadata.insert(key.into(), Value::Object(map));
        }
    }
    let mut doc = Map::new();
    doc.insert(
        "apiVersion".into(),
        Value::String(api_resource(kind).api_version),
    );
    doc.insert("kind".into(), Value::String(kind.name().into()));
    doc.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = obj.data.get("spec") {
        doc.insert("spec".into(), spec.clone());
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn api_resources_of_every_kind() {
        let got: Vec<String> = Kind::ALL
            .map(|k| {
                let ar = api_resource(k);
                format!("{}/{}", ar.api_version, ar.plural)
            })
            .to_vec();
        assert_eq!(
            got,
            [
                "networking.istio.io/v1/serviceentries",
                "networking.istio.io/v1/workloadentries",
                "networking.istio.io/v1/virtualservices",
                "networking.istio.io/v1/destinationrules",
                "security.istio.io/v1/peerauthentications",
                "security.istio.io/v1/authorizationpolicies",
                "extensions.istio.io/v1alpha1/wasmplugins",
                "telemetry.istio.io/v1/telemetries",
            ]
        );
        for k in Kind::ALL {
            assert!(
                k.api_versions()
                    .contains(&api_resource(k).api_version.as_str())
            );
        }
    }

    #[test]
    fn an_object_as_the_api_server_returns_it() {
        let obj = object(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "name": "reviews", "namespace": "shop", "uid": "6b1c", "resourceVersion": "812",
                "generation": 3, "creationTimestamp": "2026-01-05T10:00:00Z",
                "managedFields": [{ "manager": "kubectl", "operation": "Apply" }],
                "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1" }],
                "finalizers": ["example.com/keep"],
                "labels": { "team": "books" },
            },
            "spec": { "hosts": ["reviews"], "http": [{ "route": [{ "destination": { "host": "reviews" } }] }] },
            "status": { "observedGeneration": 3 },
        }));
        let loaded = convert(Kind::VirtualService, &obj).unwrap();
        let vs = &loaded.virtual_services[0];
        assert_eq!(
            (vs.metadata.namespace.as_str(), vs.metadata.name.as_str()),
            ("shop", "reviews")
        );
        assert_eq!(vs.metadata.labels["team"], "books");
        assert_eq!(vs.spec.hosts, ["reviews"]);
        assert_eq!(vs.file, "VirtualService shop/reviews");
    }

    #[test]
    fn errors_name_the_object_and_the_field() {
        // (kind, spec, message of the first error)
        let table: &[(Kind, Value, &str)] = &[
            (
                Kind::VirtualService,
                json!({ "hosts": ["r"], "http": [{ "route": [{ "destination": { "host": "r" }, "wieght": 5 }] }] }),
                "VirtualService default/bad: field `spec.http[0].route[0].wieght`: unknown field `wieght`",
            ),
            (
                Kind::DestinationRule,
                json!({ "host": "r", "trafficPolicy": { "connectionPool": { "tcp": { "connectTimeout": "5 s" } } } }),
                "DestinationRule default/bad: field `spec.trafficPolicy.connectionPool.tcp.connectTimeout`: `5 s` is not a duration",
            ),
            (
                Kind::PeerAuthentication,
                json!({ "mtls": { "mode": "strict" } }),
                "PeerAuthentication default/bad: field `spec.mtls.mode`: `strict` is not a valid value",
            ),
            (
                Kind::ServiceEntry,
                json!({ "ports": [{ "number": 80 }] }),
                "ServiceEntry default/bad: field `spec`: missing field `hosts`",
            ),
            (
                Kind::VirtualService,
                json!({ "hosts": ["r"], "http": [{ "route": [
                    { "destination": { "host": "r", "subset": "a" }, "weight": 80 },
                    { "destination": { "host": "r", "subset": "b" }, "weight": 10 },
                ] }] }),
                "VirtualService default/bad: field `spec.http[0].route`: the weights of the 2 destinations add up to 90",
            ),
        ];
        for (kind, spec, want) in table {
            let obj = object(
                json!({ "metadata": { "name": "bad", "namespace": "default" }, "spec": spec }),
            );
            let errors = convert(*kind, &obj).expect_err("refused");
            assert!(errors.iter().all(Diagnostic::is_error), "{errors:?}");
            let first = errors[0].to_string();
            assert!(
                first.starts_with(want),
                "{first}\n  does not start with\n{want}"
            );
            assert_eq!(errors[0].line, None);
        }
        let no_spec = object(json!({ "metadata": { "name": "x", "namespace": "default" } }));
        let errors = convert(Kind::WasmPlugin, &no_spec).expect_err("no spec");
        assert!(
            errors[0].to_string().contains("missing field `spec`"),
            "{errors:?}"
        );
    }
}
