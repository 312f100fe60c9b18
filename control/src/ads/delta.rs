//! Incremental ADS (`DeltaAggregatedResources`) as a state machine over one stream.
//!
//! Per type URL the stream keeps the subscription and what the client has (name → version): seeded from the first
//! request's `initial_resource_versions` on a reconnect, then updated with every response. A response carries only
//! the resources whose version the client does not have, and names the client has that are gone (or that it
//! subscribed to and that do not exist) in `removed_resources`. Every request is honoured, whatever its nonce: the
//! nonce only tells ACK from NACK (`error_detail`).
//!
//! Work per view change is proportional to what changed, not to what the client holds: every request and every
//! change leaves the client up to date with the stream's view, so a new view is compared with the previous one
//! ([`Resources::changed_names`], by pointer where they share entries) and only the names that differ are looked at.
//! `system_version_info` is a [`SetDigest`] of what the client holds, kept up to date as resources come and go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tracing::{debug, warn};

use super::order::{Kind, Step, make_before_break};
use super::resources::{Entry, Resources, SetDigest, member_digest};
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

/// A resource the client has.
#[derive(Debug)]
enum Held {
    /// Sent on this stream (the entry is shared with the view it came from).
    Sent(Arc<Entry>),
    /// Claimed in `initial_resource_versions`: the version and its [`member_digest`].
    Claimed(Box<(String, u128)>),
}

impl Held {
    fn version(&self) -> &str {
        match self {
            Held::Sent(entry) => entry.version(),
            Held::Claimed(claim) => &claim.0,
        }
    }

    fn digest(&self) -> u128 {
        match self {
            Held::Sent(entry) => entry.digest(),
            Held::Claimed(claim) => claim.1,
        }
    }
}

struct TypeState {
    subscription: Subscription,
    /// What the client has, by name.
    known: BTreeMap<Arc<str>, Held>,
    /// The digest of `known`: the `system_version_info` of every response.
    digest: SetDigest,
    /// Explicitly subscribed names already reported as not existing.
    reported_absent: BTreeSet<String>,
    /// Names unsubscribed while the wildcard still covers them: answered in `resources` or `removed_resources`.
    must_answer: BTreeSet<String>,
}

impl TypeState {
    fn new(
        kind: Kind,
        type_url: &str,
        claimed: &std::collections::HashMap<String, String>,
    ) -> Self {
        let mut state = TypeState {
            subscription: Subscription::new(kind),
            known: BTreeMap::new(),
            digest: SetDigest::new(type_url),
            reported_absent: BTreeSet::new(),
            must_answer: BTreeSet::new(),
        };
        for (name, version) in claimed {
            let digest = member_digest(type_url, name, version);
            state.set(
                Arc::from(name.as_str()),
                Held::Claimed(Box::new((version.clone(), digest))),
            );
        }
        state
    }

    /// Whether the client has `entry`'s version of it.
    fn has(&self, entry: &Entry) -> bool {
        self.known
            .get(entry.name())
            .is_some_and(|held| held.version() == entry.version())
    }

    /// Records that the client has `entry` now.
    fn hold(&mut self, entry: &Arc<Entry>) {
        self.set(entry.shared_name().clone(), Held::Sent(entry.clone()));
    }

    fn set(&mut self, name: Arc<str>, held: Held) {
        self.digest.add(held.digest());
        if let Some(before) = self.known.insert(name, held) {
            self.digest.remove(before.digest());
        }
    }

    /// Records that the client no longer has `name`; whether it had it.
    fn forget(&mut self, name: &str) -> bool {
        match self.known.remove(name) {
            Some(held) => {
                self.digest.remove(held.digest());
                true
            }
            None => false,
        }
    }
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
            .or_insert_with(|| {
                TypeState::new(kind, &request.type_url, &request.initial_resource_versions)
            });
        if let Some(error) = &request.error_detail {
            warn!(node = %self.context.node, type_url = %request.type_url, nonce = %request.response_nonce,
                message = %error.message, "NACK");
            self.context.stats.nacked(kind);
        }
        if !first
            && request.resource_names_subscribe.is_empty()
            && request.resource_names_unsubscribe.is_empty()
        {
            // An ACK or NACK: every request and change so far left the client with what it subscribed to of the
            // current view, so there is nothing to send (and nothing to look through).
            return Vec::new();
        }
        state
            .subscription
            .subscribe(&request.resource_names_subscribe);
        state
            .subscription
            .unsubscribe(&request.resource_names_unsubscribe);
        for name in &request.resource_names_unsubscribe {
            let sub = &state.subscription;
            if name != WILDCARD && sub.wildcard() && !sub.names(name) {
                state.must_answer.insert(name.clone());
            }
            state.forget(name);
        }
        let unwanted: Vec<Arc<str>> = state
            .known
            .keys()
            .filter(|name| !state.subscription.wants(name))
            .cloned()
            .collect();
        for name in unwanted {
            state.forget(&name);
        }
        let sub = &state.subscription;
        state.reported_absent.retain(|name| sub.names(name));
        match self.respond(&request.type_url, view, Part::All) {
            Some(response) => vec![response],
            // A client waits for the first answer of a type (e.g. to finish initialising), even an empty one.
            None if first => vec![self.response(&request.type_url, Vec::new(), Vec::new())],
            None => Vec::new(),
        }
    }

    fn on_change(&mut self, previous: &Resources, view: &Resources) -> Vec<DeltaDiscoveryResponse> {
        // Only the names whose entry differs between the views can change what a client must be sent: before this
        // change the client was brought up to date with `previous` (every request and change answers in full).
        let changed: BTreeMap<String, Vec<&str>> = self
            .types
            .keys()
            .map(|url| (url.clone(), view.changed_names(previous, url)))
            .filter(|(_, names)| !names.is_empty())
            .collect();
        let types: Vec<String> = changed.keys().cloned().collect();
        make_before_break(&types, |url, step| {
            let names = changed.get(url)?;
            match step {
                Step::Make => self.push_updates(url, view, names),
                Step::Break => self.push_removals(url, view, names),
            }
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
        let mut updates = Vec::new();
        if part != Part::Removals {
            for (_, entry) in state.subscription.iter_selected(available) {
                if !state.has(entry) {
                    updates.push(entry.clone());
                }
            }
            for entry in &updates {
                state.hold(entry);
                state.reported_absent.remove(entry.name());
            }
            let sub = &state.subscription;
            state.must_answer.retain(|name| {
                !(sub.wants(name) && available.is_some_and(|a| a.contains_key(name)))
            });
        }
        let mut removed = BTreeSet::new();
        if part != Part::Updates {
            let selected = |name: &str| {
                state.subscription.wants(name) && available.is_some_and(|a| a.contains_key(name))
            };
            removed.extend(
                state
                    .known
                    .keys()
                    .filter(|name| !selected(name))
                    .map(|name| name.to_string()),
            );
            let missing = state
                .subscription
                .missing(available)
                .filter(|name| !state.reported_absent.contains(*name));
            removed.extend(missing.cloned());
            let answer = std::mem::take(&mut state.must_answer);
            removed.extend(answer.into_iter().filter(|n| !selected(n)));
            for name in &removed {
                state.forget(name);
                if state.subscription.names(name) {
                    state.reported_absent.insert(name.clone());
                }
            }
        }
        if updates.is_empty() && removed.is_empty() {
            return None;
        }
        Some(self.response(type_url, updates, removed.into_iter().collect()))
    }

    /// The updates among `names` (the names changed by a new view), if any, recording them as sent.
    fn push_updates(
        &mut self,
        type_url: &str,
        view: &Resources,
        names: &[&str],
    ) -> Option<DeltaDiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        let available = view.of_type(type_url)?;
        let updates: Vec<Arc<Entry>> = names
            .iter()
            .filter(|name| state.subscription.wants(name))
            .filter_map(|name| available.get(*name))
            .filter(|entry| !state.has(entry))
            .cloned()
            .collect();
        for entry in &updates {
            state.hold(entry);
            state.reported_absent.remove(entry.name());
        }
        if updates.is_empty() {
            return None;
        }
        Some(self.response(type_url, updates, Vec::new()))
    }

    /// The removals among `names` (the names changed by a new view), if any, recording them.
    fn push_removals(
        &mut self,
        type_url: &str,
        view: &Resources,
        names: &[&str],
    ) -> Option<DeltaDiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        let available = view.of_type(type_url);
        let mut removed = Vec::new();
        for name in names {
            if available.is_some_and(|a| a.contains_key(*name)) || !state.forget(name) {
                continue;
            }
            if state.subscription.names(name) {
                state.reported_absent.insert((*name).to_owned());
            }
            removed.push((*name).to_owned());
        }
        if removed.is_empty() {
            return None;
        }
        Some(self.response(type_url, Vec::new(), removed))
    }

    fn response(
        &mut self,
        type_url: &str,
        updates: Vec<Arc<Entry>>,
        removed: Vec<String>,
    ) -> DeltaDiscoveryResponse {
        let version = self
            .types
            .get(type_url)
            .map_or_else(|| SetDigest::new(type_url), |s| s.digest)
            .hex();
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

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
