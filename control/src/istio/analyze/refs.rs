//! Cross-references, as warnings: route destinations and DestinationRules must name a service (a ServiceEntry host,
//! short names resolved in the resource's namespace), subsets must be defined by a DestinationRule for the host and
//! select some endpoint, selectors must select a WorkloadEntry, and every WorkloadEntry should be some service's
//! endpoint.

use super::{Out, out};
use crate::istio::{
    Destination, Diagnostic, FieldPath, Labels, Located, ServiceEntry, WorkloadSelector,
    hosts::{host_matches, resolve_host},
    load::Loaded,
};

/// Istio's root namespace: a selector-less policy there applies to the whole mesh, and its selectors select
/// workloads of every namespace.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Whether `labels` has every label of `selector`.
fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn show(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a host is a ServiceEntry's of `loaded` (wildcards either way).
pub fn known_host(loaded: &Loaded) -> impl Fn(&str) -> bool {
    let hosts: Vec<String> = loaded
        .service_entries
        .iter()
        .flat_map(|se| {
            se.spec
                .hosts
                .iter()
                .map(|h| resolve_host(h, &se.metadata.namespace))
        })
        .collect();
    move |host: &str| {
        hosts
            .iter()
            .any(|h| host_matches(h, host) || host_matches(host, h))
    }
}

/// Every cross-reference finding.
pub fn check(loaded: &Loaded, diags: &mut Vec<Diagnostic>) {
    let services: Vec<(String, &Located<ServiceEntry>)> = loaded
        .service_entries
        .iter()
        .flat_map(|se| {
            se.spec
                .hosts
                .iter()
                .map(move |h| (resolve_host(h, &se.metadata.namespace), se))
        })
        .collect();
    let known = |host: &str| {
        services
            .iter()
            .any(|(h, _)| host_matches(h, host) || host_matches(host, h))
    };
    for vs in &loaded.virtual_services {
        let ns = &vs.metadata.namespace;
        let mut o = out(vs, diags);
        for (path, dest) in destinations(&vs.spec) {
            let host = resolve_host(&dest.host, ns);
            if !known(&host) {
                let resolved = if host == dest.host {
                    String::new()
                } else {
                    format!(" (`{host}`)")
                };
                o.warning(
                    path.key("host"),
                    format!(
                        "`{}`{resolved} is not a known service: no ServiceEntry has this host; add a ServiceEntry \
                         for it or fix the name",
                        dest.host
                    ),
                );
                continue;
            }
            let Some(subset) = &dest.subset else { continue };
            let defined: Vec<&str> = loaded
                .destination_rules
                .iter()
                .filter(|dr| resolve_host(&dr.spec.host, &dr.metadata.namespace) == host)
                .flat_map(|dr| dr.spec.subsets.iter().map(|s| s.name.as_str()))
                .collect();
            if !defined.contains(&subset.as_str()) {
                let have = if defined.is_empty() {
                    "no DestinationRule for this host defines subsets".to_owned()
                } else {
                    format!("its DestinationRules define {}", defined.join(", "))
                };
                o.warning(
                    path.key("subset"),
                    format!(
                        "subset `{subset}` of `{host}` is not defined: {have}; add it to a DestinationRule's \
                         `subsets` or fix the name"
                    ),
                );
            }
        }
    }
    for dr in &loaded.destination_rules {
        let host = resolve_host(&dr.spec.host, &dr.metadata.namespace);
        let mut o = out(dr, diags);
        if !dr.spec.host.is_empty() && !known(&host) {
            o.warning(
                FieldPath::parse("spec.host"),
                format!("`{host}` is not a known service: no ServiceEntry has this host; add one or fix the host"),
            );
        }
        let endpoints = endpoints_of(loaded, &services, &host);
        for (i, s) in dr.spec.subsets.iter().enumerate() {
            let Some(endpoints) = &endpoints else { break };
            if !endpoints.iter().any(|l| selects(&s.labels, l)) {
                o.warning(
                    FieldPath::parse(&format!("spec.subsets[{i}].labels")),
                    format!(
                        "no endpoint of `{host}` has the labels {}: subset `{}` is empty and requests routed to it \
                         fail; fix the labels or add a WorkloadEntry with them",
                        show(&s.labels),
                        s.name
                    ),
                );
            }
        }
        selector(
            loaded,
            &mut o,
            &dr.metadata.namespace,
            "spec.workloadSelector",
            dr.spec.workload_selector.as_ref(),
        );
    }
    for se in &loaded.service_entries {
        let Some(sel) = &se.spec.workload_selector else {
            continue;
        };
        let ns = &se.metadata.namespace;
        if !loaded
            .workload_entries
            .iter()
            .any(|we| &we.metadata.namespace == ns && selects(&sel.labels, &we.spec.labels))
        {
            out(se, diags).warning(
                FieldPath::parse("spec.workloadSelector.labels"),
                format!(
                    "no WorkloadEntry in namespace `{ns}` has the labels {}: the service has no endpoints; add one \
                     or fix the labels",
                    show(&sel.labels)
                ),
            );
        }
    }
    let policies = (loaded.peer_authentications.iter())
        .map(|r| (r.site(), &r.metadata.namespace, r.spec.selector.as_ref()))
        .chain(
            (loaded.authorization_policies.iter())
                .map(|r| (r.site(), &r.metadata.namespace, r.spec.selector.as_ref())),
        )
        .chain(
            (loaded.wasm_plugins.iter())
                .map(|r| (r.site(), &r.metadata.namespace, r.spec.selector.as_ref())),
        );
    for (site, ns, sel) in policies {
        selector(loaded, &mut Out::new(site, diags), ns, "spec.selector", sel);
    }
    for we in &loaded.workload_entries {
        let ns = &we.metadata.namespace;
        let selected = loaded.service_entries.iter().any(|se| {
            &se.metadata.namespace == ns
                && se
                    .spec
                    .workload_selector
                    .as_ref()
                    .is_some_and(|s| selects(&s.labels, &we.spec.labels))
        });
        if !selected {
            out(we, diags).warning(
                FieldPath::parse("spec.labels"),
                format!(
                    "no ServiceEntry in namespace `{ns}` selects this WorkloadEntry, so it gets no traffic; give a \
                     ServiceEntry a `workloadSelector.labels` that its labels match"
                ),
            );
        }
    }
}

/// Every destination of a VirtualService, with its path.
fn destinations(vs: &crate::istio::VirtualService) -> Vec<(FieldPath, &Destination)> {
    let spec = FieldPath::root().key("spec");
    let mut all = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let p = spec.key("http").index(i);
        for (j, d) in r.route.iter().enumerate() {
            all.push((p.key("route").index(j).key("destination"), &d.destination));
        }
        if let Some(m) = &r.mirror {
            all.push((p.key("mirror"), m));
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            all.push((p.key("mirrors").index(j).key("destination"), &m.destination));
        }
    }
    for (kind, routes) in [
        ("tls", vs.tls.iter().map(|r| &r.route).collect::<Vec<_>>()),
        ("tcp", vs.tcp.iter().map(|r| &r.route).collect()),
    ] {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                all.push((
                    spec.key(kind)
                        .index(i)
                        .key("route")
                        .index(j)
                        .key("destination"),
                    &d.destination,
                ));
            }
        }
    }
    all
}

/// The label sets of the endpoints of `host`, when its ServiceEntries list them (inline or by selector).
fn endpoints_of<'a>(
    loaded: &'a Loaded,
    services: &[(String, &'a Located<ServiceEntry>)],
    host: &str,
) -> Option<Vec<&'a Labels>> {
    let entries: Vec<&Located<ServiceEntry>> = services
        .iter()
        .filter(|(h, _)| h == host)
        .map(|(_, se)| *se)
        .collect();
    let listed = entries
        .iter()
        .any(|se| !se.spec.endpoints.is_empty() || se.spec.workload_selector.is_some());
    if !listed {
        return None;
    }
    let mut labels = Vec::new();
    for se in entries {
        labels.extend(se.spec.endpoints.iter().map(|e| &e.labels));
        if let Some(sel) = &se.spec.workload_selector {
            labels.extend(
                loaded
                    .workload_entries
                    .iter()
                    .filter(|we| {
                        we.metadata.namespace == se.metadata.namespace
                            && selects(&sel.labels, &we.spec.labels)
                    })
                    .map(|we| &we.spec.labels),
            );
        }
    }
    Some(labels)
}

/// A workload selector of a resource in `ns` must select some WorkloadEntry (of any namespace from the root one).
fn selector(
    loaded: &Loaded,
    o: &mut super::Out<'_>,
    ns: &str,
    path: &str,
    sel: Option<&WorkloadSelector>,
) {
    let Some(sel) = sel else { return };
    let found = loaded.workload_entries.iter().any(|we| {
        (ns == ROOT_NAMESPACE || we.metadata.namespace == ns)
            && selects(&sel.match_labels, &we.spec.labels)
    });
    if !found {
        o.warning(
            FieldPath::parse(path).key("matchLabels"),
            format!(
                "no WorkloadEntry in namespace `{ns}` has the labels {}: this selects nothing, so the resource \
                 applies nowhere; fix the labels",
                show(&sel.match_labels)
            ),
        );
    }
}
