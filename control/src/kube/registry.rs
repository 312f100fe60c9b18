//! Kubernetes' own service registry as mesh services and workloads: a Service is the service
//! `NAME.NAMESPACE.svc.cluster.local` with its ports, its endpoints are the ready addresses of its EndpointSlices, and
//! every running Pod is a workload (`POD.NAMESPACE`, also its sidecar's node id) with the Pod's labels and service
//! account, so DestinationRule subsets select endpoints by Pod label and AuthorizationPolicies see the identities.
//!
//! A port's protocol is Istio's: `appProtocol` when set, else the port name or its prefix before `-` (`http`,
//! `http-web`, `grpc-api`, `http2`, `tcp-db`, ...). A name Istio does not know is sniffed by Istio; meshwork, which
//! proxies HTTP only, treats it as HTTP, as it treats a ServiceEntry port without `protocol`.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{Pod, Service as KubeService, ServicePort},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use crate::{
    istio::resolve_host,
    mesh::{Endpoint, Labels, Port, Protocol, Service, Workload, build::protocol},
};

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The protocol names Istio parses (`protocol.Parse`); anything else is sniffed.
const ISTIO_PROTOCOLS: [&str; 12] = [
    "tcp",
    "udp",
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tls",
    "mongo",
    "redis",
    "mysql",
];

/// The mesh's services and workloads from Kubernetes objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    /// One per Service (ExternalName Services are left out: their endpoint is a DNS name).
    pub services: Vec<Service>,
    /// One per Pod that has an address and has not terminated.
    pub workloads: Vec<Workload>,
}

/// The registry of `services`, `slices` and `pods` (each in any order; the result is sorted).
pub fn registry(services: &[&KubeService], slices: &[&EndpointSlice], pods: &[&Pod]) -> Registry {
    let mut workloads: BTreeMap<(String, String), Workload> = pods
        .iter()
        .filter_map(|p| workload(p))
        .map(|w| ((w.namespace.clone(), w.name.clone()), w))
        .collect();
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        let labels = slice.metadata.labels.as_ref();
        if let Some(name) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
            by_service.entry((ns, name)).or_default().push(slice);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let (Some(name), Some(spec)) = (svc.metadata.name.as_deref(), svc.spec.as_ref()) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let kube_ports = spec.ports.as_deref().unwrap_or_default();
        let ports: Vec<Port> = kube_ports.iter().filter_map(port).collect();
        let mut endpoints = Vec::new();
        for slice in by_service.get(&(ns, name)).into_iter().flatten() {
            endpoints.extend(slice_endpoints(slice, kube_ports, &mut workloads));
        }
        endpoints.sort_by(|a, b| (&a.address, &a.workload).cmp(&(&b.address, &b.workload)));
        // While the EndpointSlice controller moves an endpoint between slices it may be in both.
        endpoints.dedup_by(|a, b| a.address == b.address && a.ports == b.ports);
        out.push(Service {
            host: resolve_host(name, ns),
            namespace: ns.to_owned(),
            ports,
            endpoints,
            ..Default::default()
        });
    }
    out.sort_by(|a, b| a.host.cmp(&b.host));
    Registry {
        services: out,
        workloads: workloads.into_values().collect(),
    }
}

/// The workload of a Pod, without ports (the EndpointSlices give them); `None` before it has an address and after it
/// has terminated.
fn workload(pod: &Pod) -> Option<Workload> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let address = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let name = pod.metadata.name.clone()?;
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Some(Workload {
        id: format!("{name}.{namespace}"),
        name,
        namespace,
        address,
        ports: BTreeMap::new(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
    })
}

/// A Service port; `None` when its number is out of range.
fn port(p: &ServicePort) -> Option<Port> {
    let number = u16::try_from(p.port).ok()?;
    let target_port = match &p.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        // A named target port is resolved per Pod; the EndpointSlices carry the numbers.
        Some(IntOrString::String(_)) | None => None,
    };
    Some(Port {
        number,
        name: port_name(p.name.as_deref(), number),
        protocol: port_protocol(
            p.name.as_deref().unwrap_or_default(),
            p.app_protocol.as_deref(),
            p.protocol.as_deref(),
        ),
        target_port: target_port.unwrap_or(number),
    })
}

/// A port's name in the mesh: its Kubernetes name, or its number when it has none (a Service's only port may be
/// unnamed), as for a ServiceEntry port.
fn port_name(name: Option<&str>, number: u16) -> String {
    match name {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => number.to_string(),
    }
}

/// The ready endpoints of one EndpointSlice of a Service with `service_ports`; each Pod behind one learns the port
/// numbers by port name.
fn slice_endpoints(
    slice: &EndpointSlice,
    service_ports: &[ServicePort],
    workloads: &mut BTreeMap<(String, String), Workload>,
) -> Vec<Endpoint> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return Vec::new();
    }
    let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
    // Slice ports are named as the Service's ports ("" for an unnamed one) and carry the resolved target numbers.
    let ports: BTreeMap<String, u16> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|sp| {
            let name = sp.name.as_deref().unwrap_or_default();
            let svc_port = service_ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or_default() == name)?;
            let number = u16::try_from(svc_port.port).ok()?;
            let target = u16::try_from(sp.port?).ok()?;
            Some((port_name(Some(name), number), target))
        })
        .collect();
    let mut out = Vec::new();
    for ep in &slice.endpoints {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        let pod = ep
            .target_ref
            .as_ref()
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .and_then(|r| {
                let pod_ns = r.namespace.as_deref().unwrap_or(ns);
                workloads.get_mut(&(pod_ns.to_owned(), r.name.clone()?))
            });
        let (workload, labels) = match pod {
            Some(w) => {
                for (name, number) in &ports {
                    w.ports.entry(name.clone()).or_insert(*number);
                }
                (Some(w.id.clone()), w.labels.clone())
            }
            None => (None, Labels::new()),
        };
        out.extend(ep.addresses.iter().map(|address| Endpoint {
            workload: workload.clone(),
            address: address.clone(),
            ports: ports.clone(),
            labels: labels.clone(),
            weight: 1,
        }));
    }
    out
}

/// Istio's protocol of a Kubernetes Service port (`ConvertProtocol`): UDP and SCTP ports are opaque; `appProtocol`
/// wins over the name (with Kubernetes' `kubernetes.io/h2c` = HTTP2, `kubernetes.io/ws` = HTTP, `kubernetes.io/wss` =
/// HTTPS); a name counts by its prefix before the first `-` (`grpc-web` whole); an unknown name is HTTP in meshwork.
pub fn port_protocol(name: &str, app_protocol: Option<&str>, l4: Option<&str>) -> Protocol {
    if matches!(l4, Some("UDP" | "SCTP")) {
        return Protocol::Opaque;
    }
    let name = match app_protocol {
        Some("kubernetes.io/h2c") => return Protocol::Http2,
        Some("kubernetes.io/ws") => return Protocol::Http,
        Some("kubernetes.io/wss") => return Protocol::Opaque,
        Some(app) => app,
        None => name,
    };
    let name = name.to_ascii_lowercase();
    if name.starts_with("grpc-web") {
        return Protocol::Http2;
    }
    let prefix = name.split('-').next().unwrap_or_default();
    protocol(ISTIO_PROTOCOLS.contains(&prefix).then_some(prefix))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn port_protocols_follow_istio() {
        use Protocol::{Http, Http2, Opaque};
        // (name, appProtocol, protocol, want)
        let table: &[(&str, Option<&str>, Option<&str>, Protocol)] = &[
            ("http", None, None, Http),
            ("http-web", None, Some("TCP"), Http),
            ("HTTP-web", None, None, Http),
            ("http2", None, None, Http2),
            ("http2-api", None, None, Http2),
            ("grpc", None, None, Http2),
            ("grpc-api", None, None, Http2),
            ("grpc-web-ui", None, None, Http2),
            ("tcp-db", None, None, Opaque),
            ("https", None, None, Opaque),
            ("tls-x", None, None, Opaque),
            ("mongo", None, None, Opaque),
            ("redis-cache", None, None, Opaque),
            ("mysql", None, None, Opaque),
            ("http_proxy", None, None, Opaque),
            ("", None, None, Http),
            ("web", None, None, Http),
            ("metrics", None, None, Http),
            ("tcp", Some("http"), None, Http),
            ("http", Some("grpc"), None, Http2),
            ("http", Some("tcp"), None, Opaque),
            ("x", Some("kubernetes.io/h2c"), None, Http2),
            ("x", Some("kubernetes.io/ws"), None, Http),
            ("http", Some("kubernetes.io/wss"), None, Opaque),
            ("http", None, Some("UDP"), Opaque),
            ("http", Some("http"), Some("SCTP"), Opaque),
        ];
        for (name, app, l4, want) in table {
            assert_eq!(
                port_protocol(name, *app, *l4),
                *want,
                "{name} {app:?} {l4:?}"
            );
        }
    }

    fn service(v: serde_json::Value) -> KubeService {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ip: Option<&str>, version: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "shop", "labels": { "app": "reviews", "version": version } },
            "spec": { "serviceAccountName": "bookinfo-reviews", "containers": [{ "name": "app" }] },
            "status": { "phase": phase, "podIP": ip },
        }))
        .unwrap()
    }

    fn reviews() -> KubeService {
        service(json!({
            "metadata": { "name": "reviews", "namespace": "shop" },
            "spec": { "ports": [
                { "name": "http", "port": 9080, "targetPort": "web" },
                { "name": "grpc-admin", "port": 9090, "targetPort": 19090 },
            ] },
        }))
    }

    fn reviews_slice(name: &str, endpoints: serde_json::Value) -> EndpointSlice {
        slice(json!({
            "metadata": { "name": name, "namespace": "shop", "labels": { SERVICE_NAME_LABEL: "reviews" } },
            "addressType": "IPv4",
            "ports": [{ "name": "http", "port": 9081 }, { "name": "grpc-admin", "port": 19090 }],
            "endpoints": endpoints,
        }))
    }

    #[test]
    fn services_endpoints_and_workloads() {
        let svc = reviews();
        let a = reviews_slice(
            "reviews-a",
            json!([
                { "addresses": ["10.1.0.12"], "conditions": { "ready": true },
                  "targetRef": { "kind": "Pod", "name": "reviews-v2-x", "namespace": "shop" } },
                { "addresses": ["10.1.0.11"], "targetRef": { "kind": "Pod", "name": "reviews-v1-x" } },
                { "addresses": ["10.1.0.13"], "conditions": { "ready": false },
                  "targetRef": { "kind": "Pod", "name": "reviews-v3-x" } },
            ]),
        );
        let b = reviews_slice(
            "reviews-b",
            json!([
                { "addresses": ["10.1.0.99"], "conditions": { "ready": true } },
                { "addresses": ["10.1.0.11"], "targetRef": { "kind": "Pod", "name": "reviews-v1-x" } },
            ]),
        );
        let other = slice(json!({
            "metadata": { "name": "fqdn", "namespace": "shop", "labels": { SERVICE_NAME_LABEL: "reviews" } },
            "addressType": "FQDN",
            "endpoints": [{ "addresses": ["reviews.example.com"] }],
        }));
        let pods = [
            pod("reviews-v1-x", Some("10.1.0.11"), "v1", "Running"),
            pod("reviews-v2-x", Some("10.1.0.12"), "v2", "Running"),
            pod("reviews-v3-x", Some("10.1.0.13"), "v3", "Running"),
            pod("starting", None, "v1", "Pending"),
            pod("done", Some("10.1.0.50"), "v1", "Succeeded"),
        ];
        let external = service(json!({
            "metadata": { "name": "ext", "namespace": "shop" },
            "spec": { "type": "ExternalName", "externalName": "example.com" },
        }));
        let r = registry(
            &[&svc, &external],
            &[&a, &b, &other],
            &pods.iter().collect::<Vec<_>>(),
        );
        assert_eq!(r.services.len(), 1, "ExternalName is left out");
        let s = &r.services[0];
        assert_eq!(s.host, "reviews.shop.svc.cluster.local");
        let ports: Vec<(u16, &str, Protocol, u16)> = s
            .ports
            .iter()
            .map(|p| (p.number, p.name.as_str(), p.protocol, p.target_port))
            .collect();
        assert_eq!(
            ports,
            [
                (9080, "http", Protocol::Http, 9080),
                (9090, "grpc-admin", Protocol::Http2, 19090)
            ]
        );
        // (address, workload, version label, http port): ready ones only, once each, sorted by address.
        let eps: Vec<(&str, Option<&str>, Option<&str>, u16)> = s
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.address.as_str(),
                    e.workload.as_deref(),
                    e.labels.get("version").map(String::as_str),
                    e.ports["http"],
                )
            })
            .collect();
        assert_eq!(
            eps,
            [
                ("10.1.0.11", Some("reviews-v1-x.shop"), Some("v1"), 9081),
                ("10.1.0.12", Some("reviews-v2-x.shop"), Some("v2"), 9081),
                ("10.1.0.99", None, None, 9081),
            ]
        );
        let ids: Vec<&str> = r.workloads.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "reviews-v1-x.shop",
                "reviews-v2-x.shop",
                "reviews-v3-x.shop"
            ],
            "pods without an address or terminated are no workloads"
        );
        let v1 = &r.workloads[0];
        assert_eq!(
            (v1.address.as_str(), v1.service_account.as_str()),
            ("10.1.0.11", "bookinfo-reviews")
        );
        assert_eq!(
            v1.ports,
            BTreeMap::from([("http".into(), 9081), ("grpc-admin".into(), 19090)])
        );
        assert!(
            r.workloads[2].ports.is_empty(),
            "a pod that is not ready serves no port yet"
        );
    }

    #[test]
    fn unnamed_ports_and_missing_slices() {
        let svc = service(json!({
            "metadata": { "name": "echo", "namespace": "default" },
            "spec": { "ports": [{ "port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c" }] },
        }));
        let lonely = service(json!({
            "metadata": { "name": "lonely", "namespace": "default" },
            "spec": { "ports": [{ "name": "tcp-db", "port": 5432 }] },
        }));
        let s = slice(json!({
            "metadata": { "name": "echo-1", "namespace": "default", "labels": { SERVICE_NAME_LABEL: "echo" } },
            "addressType": "IPv6",
            "ports": [{ "name": "", "port": 8080 }],
            "endpoints": [{ "addresses": ["fd00::5"] }],
        }));
        let r = registry(&[&svc, &lonely], &[&s], &[]);
        let echo = &r.services[0];
        assert_eq!(
            (echo.ports[0].name.as_str(), echo.ports[0].protocol),
            ("80", Protocol::Http2)
        );
        assert_eq!(echo.endpoints[0].address, "fd00::5");
        assert_eq!(echo.endpoints[0].ports["80"], 8080);
        let lonely = &r.services[1];
        assert_eq!(lonely.host, "lonely.default.svc.cluster.local");
        assert!(lonely.endpoints.is_empty());
        assert_eq!(lonely.ports[0].protocol, Protocol::Opaque);
    }
}
