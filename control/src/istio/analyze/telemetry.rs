//! Findings about the mesh config (ConfigMap `istio-system/istio`) and the Telemetry resources: values and fields
//! meshwork refuses or leaves out ([`crate::mesh::telemetry::check_provider`] and its siblings, so the analysis and
//! the mesh build agree), providers named but not defined, several resources at one level of the resolution, and
//! collectors that are no service of the mesh.

use std::collections::{BTreeMap, BTreeSet};

use super::Out;
use crate::istio::{Diagnostic, FieldPath, Located, MeshConfigDoc, Telemetry, load::Loaded};
use crate::mesh::telemetry::{
    ENVOY_PROVIDER, Finding, PROMETHEUS_PROVIDER, check_mesh_config, check_policy, check_provider,
};

/// What a provider name means where it is used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Tracing,
    AccessLogging,
    Metrics,
}

/// Every finding about telemetry in `loaded`; `known` says whether a host is a service of the mesh.
pub fn check(loaded: &Loaded, known: &dyn Fn(&str) -> bool, diags: &mut Vec<Diagnostic>) {
    let mut providers: BTreeMap<String, Use> = BTreeMap::new();
    let mut defined: BTreeSet<String> = BTreeSet::new();
    if let Some(m) = &loaded.mesh_config {
        mesh_config(m, known, &mut providers, &mut defined, diags);
    }
    let mut levels: BTreeMap<(String, Option<String>), &str> = BTreeMap::new();
    let mut sorted: Vec<&Located<Telemetry>> = loaded.telemetries.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    for t in sorted {
        let mut o = Out::new(t.site(), diags);
        report(&mut o, check_policy(&t.spec), &FieldPath::root());
        let selector = t
            .spec
            .selector
            .as_ref()
            .map(|s| format!("{:?}", s.match_labels));
        let level = (t.metadata.namespace.clone(), selector);
        match levels.get(&level) {
            Some(first) => o.warning(
                FieldPath::root().key("metadata").key("name"),
                format!(
                    "Telemetry `{first}` applies at the same level (same namespace and selector) and comes first by \
                     name: this one is ignored; merge them"
                ),
            ),
            None => {
                levels.insert(level, &t.metadata.name);
            }
        }
        let name = format!("{}/{}", t.metadata.namespace, t.metadata.name);
        let refs = t
            .spec
            .tracing
            .iter()
            .enumerate()
            .flat_map(|(i, x)| {
                x.providers
                    .iter()
                    .enumerate()
                    .map(move |(j, p)| (Use::Tracing, "tracing", i, j, &p.name))
            })
            .chain(t.spec.access_logging.iter().enumerate().flat_map(|(i, x)| {
                x.providers
                    .iter()
                    .enumerate()
                    .map(move |(j, p)| (Use::AccessLogging, "accessLogging", i, j, &p.name))
            }))
            .chain(t.spec.metrics.iter().enumerate().flat_map(|(i, x)| {
                x.providers
                    .iter()
                    .enumerate()
                    .map(move |(j, p)| (Use::Metrics, "metrics", i, j, &p.name))
            }));
        for (usage, field, i, j, provider) in refs {
            let path = FieldPath::root()
                .key("spec")
                .key(field)
                .index(i)
                .key("providers")
                .index(j)
                .key("name");
            if let Some(msg) = reference(&providers, &defined, usage, provider) {
                o.warning(path, format!("Telemetry {name}: {msg}"));
            }
        }
    }
}

/// What is wrong with naming `provider` for `usage`, if anything.
fn reference(
    providers: &BTreeMap<String, Use>,
    defined: &BTreeSet<String>,
    usage: Use,
    provider: &str,
) -> Option<String> {
    let builtin = match usage {
        Use::AccessLogging => provider == ENVOY_PROVIDER,
        Use::Metrics => provider == PROMETHEUS_PROVIDER,
        Use::Tracing => false,
    };
    match providers.get(provider) {
        _ if builtin => None,
        Some(u) if *u == usage => None,
        Some(_) => Some(format!(
            "provider `{provider}` is of another kind (tracing takes opentelemetry, access logging \
             envoyFileAccessLog); it is left out here"
        )),
        None if defined.contains(provider) => Some(format!(
            "provider `{provider}` is of a kind meshwork does not run; it is left out"
        )),
        None => Some(format!(
            "provider `{provider}` is not defined in the mesh config's `extensionProviders`; define it (ConfigMap \
             istio-system/istio) or fix the name"
        )),
    }
}

fn mesh_config(
    m: &MeshConfigDoc,
    known: &dyn Fn(&str) -> bool,
    providers: &mut BTreeMap<String, Use>,
    defined: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut o = Out::new(m.site(), diags);
    for path in &m.ignored {
        o.warning(
            path.clone(),
            format!(
                "mesh config: meshwork does not read `{path}` (Istio's own setting); it is ignored"
            ),
        );
    }
    let c = &m.config;
    report(&mut o, check_mesh_config(c), &FieldPath::root());
    for (i, p) in c.extension_providers.iter().enumerate() {
        let at = FieldPath::root().key("extensionProviders").index(i);
        report(&mut o, check_provider(p), &at);
        if !defined.insert(p.name.clone()) {
            o.error(
                at.key("name"),
                format!(
                    "a second provider named `{}`: names are unique; rename one",
                    p.name
                ),
            );
        }
        let usage = if p.opentelemetry.is_some() {
            Use::Tracing
        } else if p.envoy_file_access_log.is_some() {
            Use::AccessLogging
        } else {
            continue;
        };
        providers.entry(p.name.clone()).or_insert(usage);
        if let Some(otel) = &p.opentelemetry {
            let service = otel.service.rsplit('/').next().unwrap_or_default();
            let host = crate::istio::resolve_host(service, crate::translate::ROOT_NAMESPACE);
            if !service.is_empty() && !known(&host) {
                o.warning(
                    at.key("opentelemetry").key("service"),
                    format!(
                        "the collector `{host}` is no service of the mesh: sidecars have no cluster to send spans \
                         to, so tracing with `{}` is left out; add a ServiceEntry (or Service) for it",
                        p.name
                    ),
                );
            }
        }
    }
    if let Some(d) = &c.default_providers {
        let lists: [(&str, &Vec<String>, Use); 3] = [
            ("tracing", &d.tracing, Use::Tracing),
            ("accessLogging", &d.access_logging, Use::AccessLogging),
            ("metrics", &d.metrics, Use::Metrics),
        ];
        for (field, names, usage) in lists {
            for (i, name) in names.iter().enumerate() {
                if let Some(msg) = reference(providers, defined, usage, name) {
                    o.warning(
                        FieldPath::root()
                            .key("defaultProviders")
                            .key(field)
                            .index(i),
                        format!("mesh config: {msg}"),
                    );
                }
            }
        }
    }
}

/// Reports `findings` (paths relative to `at`).
fn report(o: &mut Out<'_>, findings: Vec<Finding>, at: &FieldPath) {
    for f in findings {
        let path = f.path.under(at);
        if f.error {
            o.error(path, f.message);
        } else {
            o.warning(path, f.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::istio::{analyze, load_str};

    const MESH: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: istio, namespace: istio-system }\n\
        data:\n  mesh: |\n    extensionProviders:\n      - name: otel\n        opentelemetry: { service: otel.obs.svc.cluster.local, port: 4317 }\n      \
        - name: zipkin\n        zipkin: { service: z, port: 9411 }\n      - name: log\n        envoyFileAccessLog: { path: /tmp/a }\n    \
        trustDomain: cluster.local\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: other, namespace: istio-system }\n\
        data: { x: y }\n";

    fn telemetry(name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {{ name: {name} }}\nspec:\n{spec}\n"
        )
    }

    /// `LINE: field: start of message` of every finding.
    fn findings(yaml: &str) -> Vec<String> {
        let loaded = load_str(yaml, "t.yaml").expect("loads");
        analyze(&loaded)
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    if d.is_error() { "E" } else { "W" },
                    d.to_string().trim_start_matches("t.yaml")
                )
            })
            .collect()
    }

    #[test]
    fn findings_table() {
        // (extra documents, findings that must be there)
        let table: &[(String, &[&str])] = &[
            (
                String::new(),
                &[
                    "W:8: field `extensionProviders[0].opentelemetry.service`: the collector `otel.obs.svc.cluster.local` is no service",
                    "W:10: field `extensionProviders[1].zipkin`: provider kind `zipkin` is not supported by meshwork; use opentelemetry",
                    "W:13: field `trustDomain`: mesh config: meshwork does not read `trustDomain`",
                ],
            ),
            (
                telemetry(
                    "a",
                    "  tracing: [{ providers: [{ name: nope }], randomSamplingPercentage: 101 }]\n  targetRefs: [{ kind: Gateway, name: g }]",
                ),
                &[
                    "E:24: field `spec.tracing[0].randomSamplingPercentage`: 101 is not a percentage",
                    "W:24: field `spec.tracing[0].providers[0].name`: Telemetry default/a: provider `nope` is not defined",
                    "W:25: field `spec.targetRefs`: `targetRefs` (Gateway API attachment) is not supported by meshwork",
                ],
            ),
            (
                telemetry(
                    "a",
                    "  accessLogging: [{ providers: [{ name: otel }, { name: envoy }, { name: zipkin }], filter: { expression: x } }]",
                ) + &telemetry("b", "  metrics: [{ providers: [{ name: prometheus }] }]"),
                &[
                    "W:24: field `spec.accessLogging[0].providers[0].name`: Telemetry default/a: provider `otel` is of another kind",
                    "W:24: field `spec.accessLogging[0].providers[2].name`: Telemetry default/a: provider `zipkin` is of a kind meshwork does not run",
                    "W:24: field `spec.accessLogging[0].filter.expression`: access-log filters (CEL) are not supported",
                    "W:28: field `metadata.name`: Telemetry `a` applies at the same level",
                ],
            ),
        ];
        for (extra, want) in table {
            let got = findings(&format!("{MESH}{extra}"));
            for w in *want {
                assert!(
                    got.iter().any(|g| g.starts_with(w)),
                    "missing {w}\nin {got:#?}"
                );
            }
            // The mesh config's own three findings come with every row.
            let base = if extra.is_empty() { 0 } else { 3 };
            assert_eq!(got.len(), want.len() + base, "{got:#?}");
        }
    }

    #[test]
    fn bad_fields_inside_what_meshwork_reads_are_errors() {
        let yaml = MESH.replace("path: /tmp/a", "path: /tmp/a, format: x");
        let errors = load_str(&yaml, "t.yaml").expect_err("refused");
        assert!(errors[0].to_string().starts_with("t.yaml:12: field `extensionProviders[2].envoyFileAccessLog.format`: mesh config: unknown field `format`"), "{errors:?}");
    }
}
