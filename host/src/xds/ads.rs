//! The Delta ADS exchange without the I/O: the requests that open a stream, what a response does to the held
//! [`State`], the ACK or NACK it gets, and the subscription changes that follow.
//!
//! Listeners and clusters are wildcard subscriptions; route configurations, endpoints and plugins are subscribed by
//! the names the held listeners and clusters refer to, and unsubscribed (and dropped) once nothing refers to them. A
//! response's valid resources are kept even when others in it are refused; the refused ones are named in the NACK and
//! are not held, so a reconnect does not claim them in `initial_resource_versions` and the server sends them again.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
};

use envoy_types::pb::{
    envoy::{
        config::core::v3::{Node, node::UserAgentVersionType},
        service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse},
    },
    google::{
        protobuf::{Struct, Value, value::Kind},
        rpc::Status,
    },
};

use super::{
    convert::{
        CLUSTER, LISTENER,
        resource::{convert, kind, known},
    },
    state::{Held, State},
};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of a NACK's `error_detail`.
pub const INVALID_ARGUMENT: i32 = 3;

/// The node this proxy presents: `id`, cluster and user agent `meshwork`, and as metadata its listener addresses
/// (`OUTBOUND_ADDRESS`, `INBOUND_ADDRESS`), from which the control plane builds its listeners, and its admin API's
/// (`ADMIN_ADDRESS`), which the control plane lists for tools that scrape the sidecars' metrics.
pub fn node(
    id: &str,
    outbound: Option<SocketAddr>,
    inbound: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) -> Node {
    let fields = [
        ("OUTBOUND_ADDRESS", outbound),
        ("INBOUND_ADDRESS", inbound),
        ("ADMIN_ADDRESS", admin),
    ]
    .into_iter()
    .filter_map(|(k, a)| {
        let value = Value {
            kind: Some(Kind::StringValue(a?.to_string())),
        };
        Some((k.to_string(), value))
    })
    .collect();
    Node {
        id: id.to_string(),
        cluster: "meshwork".into(),
        user_agent_name: "meshwork".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").into(),
        )),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

/// Sets `ADMIN_ADDRESS` in `node`'s metadata: the admin API's bound address, known only once it listens (a configured
/// port 0 becomes a real one).
pub fn set_admin_address(node: &mut Node, admin: SocketAddr) {
    let value = Value {
        kind: Some(Kind::StringValue(admin.to_string())),
    };
    node.metadata
        .get_or_insert_with(Struct::default)
        .fields
        .insert("ADMIN_ADDRESS".to_string(), value);
}

/// The names subscribed on the current stream, by type URL (wildcard types are not listed).
pub type Subscriptions = BTreeMap<&'static str, BTreeSet<String>>;

fn request(type_url: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        ..Default::default()
    }
}

/// The requests that open a stream: wildcard CDS and LDS, then the RDS, EDS and ECDS names the held resources want;
/// each lists the versions held in `initial_resource_versions`. The first carries the node. Resets `subs`.
pub fn initial(state: &State, node: Node, subs: &mut Subscriptions) -> Vec<DeltaDiscoveryRequest> {
    subs.clear();
    let mut out: Vec<DeltaDiscoveryRequest> = [CLUSTER, LISTENER]
        .into_iter()
        .map(|t| DeltaDiscoveryRequest {
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: state.versions(t).into_iter().collect(),
            ..request(t)
        })
        .collect();
    for (t, names) in state.wanted() {
        if names.is_empty() {
            continue;
        }
        let held = state.versions(t);
        out.push(DeltaDiscoveryRequest {
            resource_names_subscribe: names.iter().cloned().collect(),
            initial_resource_versions: held
                .into_iter()
                .filter(|(n, _)| names.contains(n))
                .collect::<HashMap<_, _>>(),
            ..request(t)
        });
        subs.insert(t, names);
    }
    out[0].node = Some(node);
    out
}

/// The (un)subscriptions the held resources call for since `subs`; updates `subs` and drops what is unsubscribed.
pub fn resubscribe(state: &mut State, subs: &mut Subscriptions) -> Vec<DeltaDiscoveryRequest> {
    let mut out = Vec::new();
    for (t, names) in state.wanted() {
        let had = subs.entry(t).or_default();
        let add: Vec<String> = names.difference(had).cloned().collect();
        let drop: Vec<String> = had.difference(&names).cloned().collect();
        if add.is_empty() && drop.is_empty() {
            continue;
        }
        for name in &drop {
            state.remove(t, name);
        }
        *had = names;
        out.push(DeltaDiscoveryRequest {
            resource_names_subscribe: add,
            resource_names_unsubscribe: drop,
            ..request(t)
        });
    }
    out
}

/// What one response did to the state.
#[derive(Debug, Default)]
pub struct Processed {
    /// The response's type, when this client reads it.
    pub type_url: Option<&'static str>,
    /// `KIND NAME: reason` for each refused resource.
    pub errors: Vec<String>,
    /// Whether anything held changed.
    pub changed: bool,
    undo: Vec<(&'static str, String, Option<Held>)>,
    first_answer: bool,
}

impl Processed {
    /// Takes the response back out of `state` (when the config it leads to does not apply).
    pub fn undo(self, state: &mut State) {
        for (t, name, previous) in self.undo.into_iter().rev() {
            state.restore(t, name, previous);
        }
        if let (true, Some(t)) = (self.first_answer, self.type_url) {
            state.unmark_answered(t);
        }
    }
}

/// Converts and holds the response's resources, and drops its removed ones.
pub fn process(state: &mut State, resp: &DeltaDiscoveryResponse) -> Processed {
    let Some(t) = known(&resp.type_url) else {
        return Processed::default();
    };
    let mut p = Processed {
        type_url: Some(t),
        ..Processed::default()
    };
    if matches!(t, LISTENER | CLUSTER) && !state.mark_answered(t) {
        p.first_answer = true;
        p.changed = true;
    }
    let mut seen = BTreeSet::new();
    for r in &resp.resources {
        // A resource without a body is a TTL heartbeat: what is held stays.
        let Some(any) = &r.resource else { continue };
        let label = if r.name.is_empty() {
            "(unnamed)"
        } else {
            &r.name
        };
        let (name, resource) = match convert(t, &r.name, any) {
            Ok(converted) => converted,
            Err(e) => {
                p.errors.push(format!("{} {label}: {e}", kind(t)));
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            p.errors
                .push(format!("{} {name}: sent twice in one response", kind(t)));
            continue;
        }
        let held = Held {
            version: r.version.clone(),
            resource,
        };
        let previous = state.insert(t, name.clone(), held.clone());
        p.changed |= previous.as_ref() != Some(&held);
        p.undo.push((t, name, previous));
    }
    let removed = resp
        .removed_resources
        .iter()
        .chain(resp.removed_resource_names.iter().map(|n| &n.name));
    for name in removed {
        if let Some(previous) = state.remove(t, name) {
            p.changed = true;
            p.undo.push((t, name.clone(), Some(previous)));
        }
    }
    p
}

/// The ACK of `resp`, or its NACK when there are `errors` (`error_detail.message` = the errors joined by `; `).
pub fn reply(resp: &DeltaDiscoveryResponse, errors: &[String]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        response_nonce: resp.nonce.clone(),
        error_detail: (!errors.is_empty()).then(|| Status {
            code: INVALID_ARGUMENT,
            message: errors.join("; "),
            details: Vec::new(),
        }),
        ..request(&resp.type_url)
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::{
        pb::envoy::{config::route::v3::RedirectAction, service::discovery::v3::Resource},
        util::pack_any,
    };
    use prost::Name;

    use super::*;
    use crate::{
        config::Config,
        xds::{
            convert::{EXTENSION, ROUTE},
            testing as fx,
        },
    };

    fn response<T: prost::Message + Name>(
        resources: Vec<(&str, &str, T)>,
        removed: &[&str],
    ) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: T::type_url(),
            nonce: "n1".into(),
            resources: resources
                .into_iter()
                .map(|(name, version, r)| Resource {
                    name: name.into(),
                    version: version.into(),
                    resource: Some(pack_any(r)),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn redirecting(name: &str) -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
        let mut r = fx::to_cluster("/", "a");
        r.action = Some(
            envoy_types::pb::envoy::config::route::v3::route::Action::Redirect(
                RedirectAction::default(),
            ),
        );
        fx::route_config(name, vec![fx::vhost("v", vec![r])])
    }

    #[test]
    fn responses_table() {
        let good =
            |n: &str| fx::route_config(n, vec![fx::vhost("v", vec![fx::to_cluster("/", "a")])]);
        // (response, errors expected, changed, held after)
        let cases = vec![
            (
                response(vec![("r1", "1", good("r1"))], &[]),
                vec![],
                true,
                vec!["r1"],
            ),
            (
                response(
                    vec![("r1", "1", good("r1")), ("r2", "1", redirecting("r2"))],
                    &[],
                ),
                vec![
                    "route config r2: virtual_hosts[0].routes[0]: redirect is not supported by meshwork",
                ],
                true,
                vec!["r1"],
            ),
            (
                response(vec![("r1", "1", good("r1")), ("r1", "2", good("r1"))], &[]),
                vec!["route config r1: sent twice in one response"],
                true,
                vec!["r1"],
            ),
            (
                response(vec![("x", "1", good("r1"))], &[]),
                vec!["route config x: name: `r1` differs from the resource name `x`"],
                false,
                vec![],
            ),
            (
                response::<envoy_types::pb::envoy::config::route::v3::RouteConfiguration>(
                    vec![],
                    &["gone"],
                ),
                vec![],
                false,
                vec![],
            ),
        ];
        for (resp, errors, changed, held) in cases {
            let mut state = State::default();
            let p = process(&mut state, &resp);
            assert_eq!(p.errors, errors);
            assert_eq!(p.changed, changed, "{errors:?}");
            assert_eq!(state.versions(ROUTE).into_keys().collect::<Vec<_>>(), held);
            let r = reply(&resp, &p.errors);
            assert_eq!(r.response_nonce, "n1");
            assert_eq!(
                r.error_detail.map(|e| (e.code, e.message)),
                (!errors.is_empty()).then(|| (3, errors.join("; ")))
            );
        }
    }

    #[test]
    fn undo_restores_what_was_held() {
        let mut state = State::default();
        let first = response(
            vec![("a", "1", fx::static_cluster("a", &["127.0.0.1:1"]))],
            &[],
        );
        process(&mut state, &first);
        let second = response(
            vec![
                ("a", "2", fx::static_cluster("a", &["127.0.0.1:2"])),
                ("b", "1", fx::static_cluster("b", &[])),
            ],
            &[],
        );
        let p = process(&mut state, &second);
        assert!(p.changed);
        p.undo(&mut state);
        assert_eq!(
            state.versions(CLUSTER),
            [("a".to_string(), "1".to_string())].into()
        );
        let removal = process(
            &mut state,
            &response::<envoy_types::pb::envoy::config::cluster::v3::Cluster>(vec![], &["a"]),
        );
        assert!(state.versions(CLUSTER).is_empty());
        removal.undo(&mut state);
        assert_eq!(state.versions(CLUSTER).len(), 1);
        // The first answer to the wildcard is undone too, so the config stays incomplete.
        let mut fresh = State::default();
        process(
            &mut fresh,
            &response::<envoy_types::pb::envoy::config::listener::v3::Listener>(vec![], &[]),
        )
        .undo(&mut fresh);
        let err = fresh.build(&Config::default()).expect_err("no answers");
        assert!(
            err.0.contains(&"the first listener response".to_string()),
            "{err}"
        );
    }

    /// `(type, names)` of each request, the names picked by `pick`.
    fn names(
        requests: &[DeltaDiscoveryRequest],
        pick: fn(&DeltaDiscoveryRequest) -> Vec<String>,
    ) -> Vec<(&str, Vec<String>)> {
        requests
            .iter()
            .map(|r| (r.type_url.as_str(), pick(r)))
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subscriptions_follow_the_held_resources() {
        let subscribed = |r: &DeltaDiscoveryRequest| r.resource_names_subscribe.clone();
        let unsubscribed = |r: &DeltaDiscoveryRequest| r.resource_names_unsubscribe.clone();
        let versions = |r: &DeltaDiscoveryRequest| {
            let mut v: Vec<_> = r
                .initial_resource_versions
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            v.sort();
            v
        };
        let mut state = State::default();
        let mut subs = Subscriptions::new();
        let opening = initial(&state, node("n", None, None, None), &mut subs);
        assert_eq!(
            names(&opening, subscribed),
            [(CLUSTER, strings(&["*"])), (LISTENER, strings(&["*"]))]
        );
        assert_eq!(opening[0].node.as_ref().map(|n| n.id.as_str()), Some("n"));
        assert!(opening[1].node.is_none());
        let listener = fx::listener("l", "127.0.0.1:0", "r", &[("p", true)]);
        process(&mut state, &response(vec![("l", "7", listener)], &[]));
        let changes = resubscribe(&mut state, &mut subs);
        assert_eq!(
            names(&changes, subscribed),
            [(EXTENSION, strings(&["p"])), (ROUTE, strings(&["r"]))]
        );
        assert!(resubscribe(&mut state, &mut subs).is_empty(), "nothing new");
        process(
            &mut state,
            &response(vec![("r", "3", fx::route_config("r", vec![]))], &[]),
        );
        let reopening = initial(&state, node("n", None, None, None), &mut subs);
        let held = [
            (CLUSTER, strings(&[])),
            (LISTENER, strings(&["l=7"])),
            (EXTENSION, strings(&[])),
            (ROUTE, strings(&["r=3"])),
        ];
        assert_eq!(names(&reopening, versions), held);
        let removal =
            response::<envoy_types::pb::envoy::config::listener::v3::Listener>(vec![], &["l"]);
        process(&mut state, &removal);
        let changes = resubscribe(&mut state, &mut subs);
        assert_eq!(
            names(&changes, unsubscribed),
            [(EXTENSION, strings(&["p"])), (ROUTE, strings(&["r"]))]
        );
        assert!(
            state.versions(ROUTE).is_empty(),
            "unsubscribed resources are dropped"
        );
    }

    #[test]
    fn node_metadata_carries_the_addresses() {
        let n = node(
            "a.default",
            "127.0.0.1:15001".parse().ok(),
            None,
            "127.0.0.1:15000".parse().ok(),
        );
        assert_eq!(
            (n.cluster.as_str(), n.user_agent_name.as_str()),
            ("meshwork", "meshwork")
        );
        let fields = n.metadata.clone().expect("metadata").fields;
        assert_eq!(
            fields["OUTBOUND_ADDRESS"].kind,
            Some(Kind::StringValue("127.0.0.1:15001".into()))
        );
        assert!(!fields.contains_key("INBOUND_ADDRESS"));
        assert_eq!(
            fields["ADMIN_ADDRESS"].kind,
            Some(Kind::StringValue("127.0.0.1:15000".into()))
        );
        let mut n = n;
        set_admin_address(&mut n, "127.0.0.1:41234".parse().expect("addr"));
        assert_eq!(
            n.metadata.expect("metadata").fields["ADMIN_ADDRESS"].kind,
            Some(Kind::StringValue("127.0.0.1:41234".into()))
        );
    }
}
