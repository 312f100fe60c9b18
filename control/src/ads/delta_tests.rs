//! The Delta state machine against a simulated client: after every request and view change the client holds exactly
//! what it subscribed to of the view, and nothing is sent that it already had.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::google::protobuf::Any;

use super::*;
use crate::ads::type_url::{CLUSTER, ENDPOINT};

fn stream() -> Delta {
    Delta::new(StreamContext {
        node: "n".into(),
        stats: Arc::default(),
        control_plane: ControlPlane::default(),
    })
}

fn view(clusters: &[(&str, u8)], endpoints: &[(&str, u8)]) -> Resources {
    let mut set = Resources::new();
    for (type_url, list) in [(CLUSTER, clusters), (ENDPOINT, endpoints)] {
        for (name, content) in list {
            set.insert_any(
                *name,
                Any {
                    type_url: type_url.into(),
                    value: vec![*content],
                },
            );
        }
    }
    set
}

/// A client: what it holds per type (name → version), and the last `system_version_info` per type.
#[derive(Default)]
struct Client {
    held: BTreeMap<String, BTreeMap<String, String>>,
    versions: BTreeMap<String, String>,
}

impl Client {
    /// Applies responses, checking that each update brings something the client did not have and each removal takes
    /// something it had (or reports a subscribed name as absent).
    fn apply(&mut self, responses: &[DeltaDiscoveryResponse], absent_ok: &[&str]) {
        for r in responses {
            let held = self.held.entry(r.type_url.clone()).or_default();
            for res in &r.resources {
                let before = held.insert(res.name.clone(), res.version.clone());
                assert_ne!(
                    before.as_ref(),
                    Some(&res.version),
                    "{} resent unchanged",
                    res.name
                );
            }
            for name in &r.removed_resources {
                let had = held.remove(name).is_some();
                assert!(
                    had || absent_ok.contains(&name.as_str()),
                    "{name} removed but not held"
                );
            }
            self.versions
                .insert(r.type_url.clone(), r.system_version_info.clone());
        }
    }

    fn names(&self, type_url: &str) -> Vec<String> {
        self.held
            .get(type_url)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn matches(&self, view: &Resources, type_url: &str, wanted: Option<&[&str]>) {
        let want: BTreeMap<String, String> = view
            .of_type(type_url)
            .into_iter()
            .flatten()
            .filter(|(n, _)| wanted.is_none_or(|w| w.contains(&n.as_str())))
            .map(|(n, e)| (n.clone(), e.version().to_owned()))
            .collect();
        assert_eq!(
            self.held.get(type_url).cloned().unwrap_or_default(),
            want,
            "{type_url}"
        );
    }
}

fn request(type_url: &str, subscribe: &[&str], initial: &[(&str, &str)]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        initial_resource_versions: initial
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

#[test]
fn changes_bring_the_client_to_each_new_view() {
    let wanted_eds: &[&str] = &["a", "b", "x"];
    // (clusters, endpoints) of each successive view; every view is built from scratch, so nothing is shared by
    // pointer and the versions decide.
    let steps: &[(&[(&str, u8)], &[(&str, u8)])] = &[
        (&[("a", 1), ("b", 1)], &[("a", 1), ("b", 1), ("c", 1)]),
        (&[("a", 1), ("b", 2)], &[("a", 1), ("b", 2), ("c", 2)]),
        (&[("a", 1), ("b", 2), ("c", 1)], &[("a", 1), ("x", 1)]),
        (&[("b", 2)], &[("a", 2), ("b", 3), ("x", 1)]),
        (&[], &[]),
        (&[("a", 3)], &[("x", 2)]),
    ];
    let mut delta = stream();
    let mut client = Client::default();
    let mut current = view(steps[0].0, steps[0].1);
    client.apply(
        &delta.on_request(request(CLUSTER, &["*"], &[]), &current),
        &[],
    );
    client.apply(
        &delta.on_request(request(ENDPOINT, wanted_eds, &[]), &current),
        &["x"],
    );
    for (k, (clusters, endpoints)) in steps.iter().enumerate() {
        let next = view(clusters, endpoints);
        let mut same = view(clusters, endpoints);
        same.reuse_unchanged(&next);
        let responses = delta.on_change(&current, &next);
        client.apply(&responses, &["x"]);
        client.matches(&next, CLUSTER, None);
        client.matches(&next, ENDPOINT, Some(wanted_eds));
        // The same view rebuilt (and sharing the entries that did not change) sends nothing.
        assert!(delta.on_change(&next, &same).is_empty(), "step {k}");
        current = next;
    }
    assert_eq!(client.names(CLUSTER), ["a"]);
    assert_eq!(client.names(ENDPOINT), ["x"]);
}

#[test]
fn a_missing_name_is_reported_once_and_sent_when_it_appears() {
    let mut delta = stream();
    let first = view(&[], &[("a", 1)]);
    let out = delta.on_request(request(ENDPOINT, &["a", "x"], &[]), &first);
    assert_eq!(out[0].removed_resources, ["x"]);
    let second = view(&[], &[("a", 2)]);
    let out = delta.on_change(&first, &second);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].removed_resources.is_empty(),
        "x is not reported again"
    );
    let third = view(&[], &[("a", 2), ("x", 1)]);
    let out = delta.on_change(&second, &third);
    let names: Vec<&str> = out[0].resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["x"]);
    let out = delta.on_change(&third, &second);
    assert_eq!(out[0].removed_resources, ["x"]);
}

#[test]
fn system_version_is_a_digest_of_what_the_client_holds() {
    let set = view(&[("a", 1), ("b", 1)], &[]);
    let mut fresh = stream();
    let first = fresh.on_request(request(CLUSTER, &["*"], &[]), &set);
    let held: Vec<(String, String)> = first[0]
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let claimed: Vec<(&str, &str)> = held.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // A reconnect that claims the same resources is told the same version, in an otherwise empty first answer.
    let mut resumed = stream();
    let again = resumed.on_request(request(CLUSTER, &["*"], &claimed), &set);
    assert!(again[0].resources.is_empty() && again[0].removed_resources.is_empty());
    assert_eq!(again[0].system_version_info, first[0].system_version_info);
    // Another set, another version; the same set over another type, another version.
    let changed = view(&[("a", 1), ("b", 2)], &[]);
    let out = fresh.on_change(&set, &changed);
    assert_ne!(out[0].system_version_info, first[0].system_version_info);
    let mut other = stream();
    let empty = other.on_request(request(ENDPOINT, &["*"], &[]), &Resources::new());
    let empty_clusters = stream().on_request(request(CLUSTER, &["*"], &[]), &Resources::new());
    assert_ne!(
        empty[0].system_version_info,
        empty_clusters[0].system_version_info
    );
}

#[test]
fn acks_and_nacks_send_nothing_and_nacks_are_counted() {
    let mut delta = stream();
    let set = view(&[("a", 1)], &[]);
    let first = delta.on_request(request(CLUSTER, &[], &[]), &set);
    assert_eq!(first[0].resources.len(), 1);
    let ack = DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: first[0].nonce.clone(),
        ..Default::default()
    };
    let nack = DeltaDiscoveryRequest {
        error_detail: Some(envoy_types::pb::google::rpc::Status {
            code: 3,
            message: "bad".into(),
            details: Vec::new(),
        }),
        ..ack.clone()
    };
    assert!(delta.on_request(ack, &set).is_empty());
    assert!(delta.on_request(nack, &set).is_empty());
    assert_eq!(delta.context.stats.snapshot().nacks_of(Kind::Cluster), 1);
    // A subscription change is still answered: naming `b` ends the legacy wildcard (the client drops `a` itself)
    // and `b` does not exist.
    let out = delta.on_request(request(CLUSTER, &["b"], &[]), &set);
    assert_eq!(out[0].removed_resources, ["b"]);
}
