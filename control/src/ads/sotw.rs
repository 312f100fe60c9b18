//! State-of-the-World ADS (`StreamAggregatedResources`) as a state machine over one stream.
//!
//! Per type URL the stream keeps the subscription, the nonce and `version_info` of the last response, what that
//! response left the client with (name → entry) and the last ACKed version. A request whose `response_nonce` is not
//! the last one sent for its type is stale and ignored (a newer response is on its way and supersedes it). A request
//! with `error_detail` is a NACK: logged, counted, and not answered with the same config again.
//!
//! Listeners and clusters are sent as complete sets (absence is deletion); other types carry only the resources that
//! are new to the client or changed, since they have no deletion. `version_info` is a hash of the names and versions
//! of the type's whole selected set, so it differs between types and is the same whenever the content is.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tracing::{debug, warn};

use super::order::{Kind, Step, make_before_break};
use super::resources::{Entry, Resources, set_version};
use super::stream::{Protocol, StreamContext};
use super::subscription::Subscription;

/// How a request relates to what was sent for its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No nonce (first request, or a new subscription), or a nonce from before this stream.
    Initial,
    /// Accepts the last response.
    Ack,
    /// Rejects the last response.
    Nack,
    /// Answers a response that was superseded: ignored.
    Stale,
}

/// Classifies a request by its `response_nonce`, the last nonce sent for its type and whether it has `error_detail`.
/// A nonce on a type this stream never answered comes from an earlier stream (a reconnect): treated as initial.
pub(crate) fn classify(last_sent: Option<&str>, response_nonce: &str, error: bool) -> Verdict {
    match last_sent {
        _ if response_nonce.is_empty() => Verdict::Initial,
        None => Verdict::Initial,
        Some(last) if last != response_nonce => Verdict::Stale,
        Some(_) if error => Verdict::Nack,
        Some(_) => Verdict::Ack,
    }
}

/// Why a response is computed, which decides what it must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    /// Answering a request; `first` when the type was never answered on this stream (then a full-state type is
    /// answered even if empty, since clients wait for it to finish initialising).
    Request { first: bool },
    /// First half of a view change: additions and updates, keeping removed listeners and clusters.
    Make,
    /// Second half: the removals.
    Break,
}

struct TypeState {
    kind: Kind,
    subscription: Subscription,
    last_nonce: Option<String>,
    sent_version: Option<String>,
    sent: BTreeMap<String, Arc<Entry>>,
    acked_version: Option<String>,
}

/// The SotW state of one stream.
pub(crate) struct Sotw {
    context: StreamContext,
    nonces: u64,
    types: BTreeMap<String, TypeState>,
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";

    fn new(context: StreamContext) -> Self {
        Sotw {
            context,
            nonces: 0,
            types: BTreeMap::new(),
        }
    }

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(response: &DiscoveryResponse) -> &str {
        &response.type_url
    }

    fn on_request(
        &mut self,
        request: DiscoveryRequest,
        view: &Resources,
    ) -> Vec<DiscoveryResponse> {
        let kind = Kind::of(&request.type_url);
        let state = self
            .types
            .entry(request.type_url.clone())
            .or_insert_with(|| TypeState {
                kind,
                subscription: Subscription::new(kind),
                last_nonce: None,
                sent_version: None,
                sent: BTreeMap::new(),
                acked_version: None,
            });
        let error = request.error_detail.as_ref();
        let verdict = classify(
            state.last_nonce.as_deref(),
            &request.response_nonce,
            error.is_some(),
        );
        match verdict {
            Verdict::Stale => {
                debug!(type_url = %request.type_url, nonce = %request.response_nonce, "stale request ignored");
                return Vec::new();
            }
            Verdict::Nack => {
                let message = error.map(|e| e.message.as_str()).unwrap_or_default();
                warn!(node = %self.context.node, type_url = %request.type_url, version = ?state.sent_version,
                    accepted = %request.version_info, message, "NACK");
                self.context.stats.nacked(kind);
            }
            Verdict::Ack => state.acked_version = state.sent_version.clone(),
            Verdict::Initial => {}
        }
        if state.subscription.replace(&request.resource_names) {
            let subscription = &state.subscription;
            state.sent.retain(|name, _| subscription.wants(name));
        } else if matches!(verdict, Verdict::Ack | Verdict::Nack) {
            // The response it answers left the client with everything of the current view: nothing to send.
            return Vec::new();
        }
        let first = state.last_nonce.is_none();
        self.respond(&request.type_url, view, Reason::Request { first })
            .into_iter()
            .collect()
    }

    fn on_change(&mut self, previous: &Resources, view: &Resources) -> Vec<DiscoveryResponse> {
        // A type whose resources did not change needs no response: each earlier request and change left the client
        // with everything `previous` held for it.
        let types: Vec<String> = self
            .types
            .keys()
            .filter(|url| !view.changed_names(previous, url).is_empty())
            .cloned()
            .collect();
        make_before_break(&types, |url, step| {
            let reason = match step {
                Step::Make => Reason::Make,
                Step::Break => Reason::Break,
            };
            self.respond(url, view, reason)
        })
    }
}

impl Sotw {
    /// The response `reason` calls for on `type_url`, if any, recording it as sent.
    fn respond(
        &mut self,
        type_url: &str,
        view: &Resources,
        reason: Reason,
    ) -> Option<DiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        let selected = state.subscription.select(view.of_type(type_url));
        let (carried, now) = if state.kind.full_state() {
            let mut now = selected;
            if reason == Reason::Make {
                // Keep removed resources for now: the types pushed after this one may still name them.
                for (name, entry) in &state.sent {
                    now.entry(name.clone()).or_insert_with(|| entry.clone());
                }
            }
            let version = version_of(type_url, &now);
            if state.sent_version.as_ref() == Some(&version)
                && reason != (Reason::Request { first: true })
            {
                return None;
            }
            (now.values().cloned().collect::<Vec<_>>(), now)
        } else {
            let changed: Vec<Arc<Entry>> = selected
                .iter()
                .filter(|(name, entry)| {
                    state
                        .sent
                        .get(*name)
                        .is_none_or(|sent| sent.version() != entry.version())
                })
                .map(|(_, entry)| entry.clone())
                .collect();
            if changed.is_empty() || reason == Reason::Break {
                return None;
            }
            // The client keeps what it has of the subscribed set (there is no deletion in SotW for this kind).
            let mut now = state.sent.clone();
            now.extend(selected);
            (changed, now)
        };
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        let version = version_of(type_url, &now);
        state.last_nonce = Some(nonce.clone());
        state.sent_version = Some(version.clone());
        state.sent = now;
        debug!(type_url, %version, resources = carried.len(), acked = ?state.acked_version, "response");
        Some(DiscoveryResponse {
            version_info: version,
            resources: carried.iter().map(|entry| entry.any().clone()).collect(),
            type_url: type_url.to_owned(),
            nonce,
            control_plane: Some(self.context.control_plane.clone()),
            ..Default::default()
        })
    }
}

fn version_of(type_url: &str, set: &BTreeMap<String, Arc<Entry>>) -> String {
    set_version(
        type_url,
        set.iter()
            .map(|(name, entry)| (name.as_str(), entry.version())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let table = [
            (None, "", false, Verdict::Initial),
            (None, "", true, Verdict::Initial),
            (None, "7", false, Verdict::Initial),
            (Some("3"), "", false, Verdict::Initial),
            (Some("3"), "3", false, Verdict::Ack),
            (Some("3"), "3", true, Verdict::Nack),
            (Some("3"), "2", false, Verdict::Stale),
            (Some("3"), "2", true, Verdict::Stale),
        ];
        for (last, nonce, error, want) in table {
            assert_eq!(
                classify(last, nonce, error),
                want,
                "{last:?} {nonce:?} {error}"
            );
        }
    }
}
