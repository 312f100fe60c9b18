//! Incremental ADS (`DeltaAggregatedResources`) as a state machine over one stream.
//!
//! Per type URL the stream keeps the subscription and what the client has (name → version): seeded from the first
//! request's `initial_resource_versions` on a reconnect, then updated with every response. A response carries only
//! the resources whose version the client does not have, and names the client has that are gone (or that it
//! subscribed to and that do not exist) in `removed_resources`. Every request is honoured, whatever its nonce: the
//! nonce only tells ACK from NACK (`error_detail`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tracing::{debug, warn};

use super::order::{Kind, Step, make_before_break};
use super::resources::{Entry, Resources, set_version};
use super::stream::{Protocol, StreamContext};
use super::subscription::{Subscription, WILDCARD};

/// What a computed update may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Updates and removals together (answering a request).
    All,
    /// Only updates (first half of a view change).
    Updates,
    /// Only removals (second half of a view change, after every type's updates).
    Removals,
}

struct TypeState {
    subscription: Subscription,
    /// What the client has: name → version.
    known: BTreeMap<String, String>,
    /// Explicitly subscribed names already reported as not existing.
    reported_absent: BTreeSet<String>,
    /// Names unsubscribed while the wildcard still covers them: answered in `resources` or `removed_resources`.
    must_answer: BTreeSet<String>,
}

/// The Delta state of one stream.
pub(crate) struct Delta {
    context: StreamContext,
    nonces: u64,
    types: BTreeMap<String, TypeState>,
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";

    fn new(context: StreamContext) -> Self {
        Delta {
            context,
            nonces: 0,
            types: BTreeMap::new(),
        }
    }

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(response: &DeltaDiscoveryResponse) -> &str {
        &response.type_url
    }

    fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
        view: &Resources,
    ) -> Vec<DeltaDiscoveryResponse> {
        let kind = Kind::of(&request.type_url);
        let first = !self.types.contains_key(&request.type_url);
        let state = self
            .types
            .entry(request.type_url.clone())
            .or_insert_with(|| TypeState {
                subscription: Subscription::new(kind),
                known: request
                    .initial_resource_versions
                    .clone()
                    .into_iter()
                    .collect(),
                reported_absent: BTreeSet::new(),
                must_answer: BTreeSet::new(),
            });
        if let Some(error) = &request.error_detail {
            warn!(node = %self.context.node, type_url = %request.type_url, nonce = %request.response_nonce,
                message = %error.message, "NACK");
            self.context.stats.nacked(kind);
        }
        let sub = &mut state.subscription;
        sub.subscribe(&request.resource_names_subscribe);
        sub.unsubscribe(&request.resource_names_unsubscribe);
        for name in &request.resource_names_unsubscribe {
            if name != WILDCARD && sub.wildcard() && !sub.names(name) {
                state.must_answer.insert(name.clone());
            }
            state.known.remove(name);
        }
        let sub = &state.subscription;
        state.known.retain(|name, _| sub.wants(name));
        state.reported_absent.retain(|name| sub.names(name));
        match self.respond(&request.type_url, view, Part::All) {
            Some(response) => vec![response],
            // A client waits for the first answer of a type (e.g. to finish initialising), even an empty one.
            None if first => vec![self.response(&request.type_url, view, Vec::new(), Vec::new())],
            None => Vec::new(),
        }
    }

    fn on_change(&mut self, view: &Resources) -> Vec<DeltaDiscoveryResponse> {
        let types: Vec<String> = self.types.keys().cloned().collect();
        make_before_break(&types, |url, step| {
            let part = match step {
                Step::Make => Part::Updates,
                Step::Break => Part::Removals,
            };
            self.respond(url, view, part)
        })
    }
}

impl Delta {
    /// The response for `part` of what `type_url` needs, if any, recording it as sent.
    fn respond(
        &mut self,
        type_url: &str,
        view: &Resources,
        part: Part,
    ) -> Option<DeltaDiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        let available = view.of_type(type_url);
        let selected = state.subscription.select(available);
        let mut updates = Vec::new();
        if part != Part::Removals {
            for (name, entry) in &selected {
                if state
                    .known
                    .get(name)
                    .is_none_or(|version| version != entry.version())
                {
                    state.known.insert(name.clone(), entry.version().to_owned());
                    state.reported_absent.remove(name);
                    updates.push(entry.clone());
                }
            }
            for name in selected.keys() {
                state.must_answer.remove(name);
            }
        }
        let mut removed = BTreeSet::new();
        if part != Part::Updates {
            removed.extend(
                state
                    .known
                    .keys()
                    .filter(|name| !selected.contains_key(*name))
                    .cloned(),
            );
            let missing = state
                .subscription
                .missing(available)
                .filter(|name| !state.reported_absent.contains(*name));
            removed.extend(missing.cloned());
            removed.extend(
                std::mem::take(&mut state.must_answer)
                    .into_iter()
                    .filter(|n| !selected.contains_key(n)),
            );
            for name in &removed {
                state.known.remove(name);
                if state.subscription.names(name) {
                    state.reported_absent.insert(name.clone());
                }
            }
        }
        if updates.is_empty() && removed.is_empty() {
            return None;
        }
        Some(self.response(type_url, view, updates, removed.into_iter().collect()))
    }

    fn response(
        &mut self,
        type_url: &str,
        view: &Resources,
        updates: Vec<Arc<Entry>>,
        removed: Vec<String>,
    ) -> DeltaDiscoveryResponse {
        let selected = self
            .types
            .get(type_url)
            .map(|s| s.subscription.select(view.of_type(type_url)));
        let version = set_version(
            type_url,
            selected
                .iter()
                .flatten()
                .map(|(name, entry)| (name.as_str(), entry.version())),
        );
        self.nonces += 1;
        debug!(type_url, %version, resources = updates.len(), removed = removed.len(), "response");
        DeltaDiscoveryResponse {
            system_version_info: version,
            resources: updates.iter().map(|entry| to_resource(entry)).collect(),
            type_url: type_url.to_owned(),
            removed_resources: removed,
            nonce: self.nonces.to_string(),
            control_plane: Some(self.context.control_plane.clone()),
            ..Default::default()
        }
    }
}

fn to_resource(entry: &Entry) -> Resource {
    Resource {
        name: entry.name().to_owned(),
        version: entry.version().to_owned(),
        resource: Some(entry.any().clone()),
        ..Default::default()
    }
}
