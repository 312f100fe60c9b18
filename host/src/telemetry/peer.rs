//! Workload metadata exchange, as Istio's sidecars do it: the client's proxy adds its workload's metadata to the
//! request (`x-envoy-peer-metadata-id` and `x-envoy-peer-metadata`, a base64 protobuf `Struct` with Istio's node
//! metadata keys), the server's proxy reads and removes it and answers with its own on the response. Each side then
//! knows the workload at the other end for the `source_*` and `destination_*` labels. Decoded metadata is cached per
//! worker, keyed by the header value, so a steady peer costs one hash lookup per request.

use std::{cell::RefCell, collections::HashMap, sync::Arc};

use base64::Engine as _;
use envoy_types::pb::google::protobuf::Struct;
use http::{HeaderMap, HeaderValue, header::HeaderName};
use prost::Message as _;

use super::identity::Telemetry;
use crate::config::telemetry::{Direction, Workload};

/// The header naming the peer's node.
pub const HEADER_ID: HeaderName = HeaderName::from_static("x-envoy-peer-metadata-id");
/// The header carrying the peer's metadata.
pub const HEADER: HeaderName = HeaderName::from_static("x-envoy-peer-metadata");

/// Most distinct peers a worker keeps decoded; the cache starts over when it is full.
const CACHE_LIMIT: usize = 512;

/// The headers announcing `w`: Istio's node id `sidecar~~NAME.NAMESPACE~NAMESPACE.svc.cluster.local` and the metadata.
pub fn encode(w: &Workload) -> Option<(HeaderValue, HeaderValue)> {
    let id = format!(
        "sidecar~~{}.{}~{}.svc.cluster.local",
        w.name, w.namespace, w.namespace
    );
    let bytes = crate::xds::convert::telemetry::workload_struct(w).encode_to_vec();
    let value = base64::engine::general_purpose::STANDARD.encode(bytes);
    Some((
        HeaderValue::from_str(&id).ok()?,
        HeaderValue::from_str(&value).ok()?,
    ))
}

/// The workload in a metadata header, or `None` when it is not valid metadata.
pub fn decode(value: &HeaderValue) -> Option<Workload> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .ok()?;
    let s = Struct::decode(bytes.as_slice()).ok()?;
    crate::xds::convert::telemetry::workload(&s, "").ok()
}

/// A worker's decoded peers.
#[derive(Default)]
pub struct PeerCache {
    peers: RefCell<HashMap<HeaderValue, Option<Arc<Workload>>>>,
}

impl PeerCache {
    /// The workload `value` announces, decoded once per distinct value.
    pub fn get(&self, value: &HeaderValue) -> Option<Arc<Workload>> {
        if let Some(hit) = self.peers.borrow().get(value) {
            return hit.clone();
        }
        let decoded = decode(value).map(Arc::new);
        let mut peers = self.peers.borrow_mut();
        if peers.len() >= CACHE_LIMIT {
            peers.clear();
        }
        peers.insert(value.clone(), decoded.clone());
        decoded
    }

    /// Request headers on their way in: an inbound listener takes the client's metadata out (returned), an outbound
    /// one replaces whatever the application sent with its own workload's.
    pub fn on_request(&self, t: &Telemetry, headers: &mut HeaderMap) -> Option<Arc<Workload>> {
        match t.direction {
            Direction::Unspecified => None,
            Direction::Inbound => self.take(headers),
            Direction::Outbound => {
                headers.remove(&HEADER_ID);
                headers.remove(&HEADER);
                insert(t, headers);
                None
            }
        }
    }

    /// Response headers on their way back: an outbound listener takes the server's metadata out (returned), an
    /// inbound one adds its own workload's.
    pub fn on_response(&self, t: &Telemetry, headers: &mut HeaderMap) -> Option<Arc<Workload>> {
        match t.direction {
            Direction::Unspecified => None,
            Direction::Outbound => self.take(headers),
            Direction::Inbound => {
                headers.remove(&HEADER_ID);
                headers.remove(&HEADER);
                insert(t, headers);
                None
            }
        }
    }

    fn take(&self, headers: &mut HeaderMap) -> Option<Arc<Workload>> {
        headers.remove(&HEADER_ID);
        let value = headers.remove(&HEADER)?;
        self.get(&value)
    }
}

fn insert(t: &Telemetry, headers: &mut HeaderMap) {
    if let Some((id, value)) = &t.exchange {
        headers.insert(HEADER_ID, id.clone());
        headers.insert(HEADER, value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::telemetry::ListenerTelemetry;

    fn workload(name: &str) -> Workload {
        Workload {
            name: format!("{name}-1"),
            namespace: "default".into(),
            workload_name: name.into(),
            service_account: name.into(),
            mesh_id: "cluster.local".into(),
            labels: [("app".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    fn telemetry(direction: Direction, name: &str) -> Telemetry {
        Telemetry::new(&ListenerTelemetry {
            direction,
            workload: Some(workload(name)),
            tracing: None,
        })
    }

    #[test]
    fn metadata_round_trips_through_the_headers() {
        let (id, value) = encode(&workload("reviews")).expect("headers");
        assert_eq!(
            id.to_str().expect("ascii"),
            "sidecar~~reviews-1.default~default.svc.cluster.local"
        );
        assert_eq!(decode(&value), Some(workload("reviews")));
        assert_eq!(decode(&HeaderValue::from_static("not base64!")), None);
        // Valid base64 of a Struct without NAME: not metadata.
        assert_eq!(decode(&HeaderValue::from_static("")), None);
    }

    #[test]
    fn a_call_exchanges_metadata_both_ways() {
        let client = telemetry(Direction::Outbound, "productpage");
        let server = telemetry(Direction::Inbound, "reviews");
        let (client_cache, server_cache) = (PeerCache::default(), PeerCache::default());
        let mut req = HeaderMap::new();
        req.insert(HEADER, HeaderValue::from_static("spoofed-by-the-app"));
        assert_eq!(client_cache.on_request(&client, &mut req), None);
        let source = server_cache.on_request(&server, &mut req).expect("source");
        assert_eq!(source.workload_name(), "productpage");
        assert!(
            req.get(&HEADER).is_none() && req.get(&HEADER_ID).is_none(),
            "the application never sees the metadata"
        );
        let mut resp = HeaderMap::new();
        assert_eq!(server_cache.on_response(&server, &mut resp), None);
        let dest = client_cache
            .on_response(&client, &mut resp)
            .expect("destination");
        assert_eq!(dest.workload_name(), "reviews");
        assert!(resp.is_empty(), "{resp:?}");
        // A proxy with no direction neither sends nor reads.
        let plain = Telemetry::new(&ListenerTelemetry::default());
        let mut h = HeaderMap::new();
        assert_eq!(client_cache.on_request(&plain, &mut h), None);
        assert!(h.is_empty());
    }

    #[test]
    fn the_cache_decodes_each_value_once_and_stays_bounded() {
        let cache = PeerCache::default();
        let (_, value) = encode(&workload("a")).expect("headers");
        let first = cache.get(&value).expect("peer");
        let again = cache.get(&value).expect("peer");
        assert!(Arc::ptr_eq(&first, &again));
        for i in 0..CACHE_LIMIT + 5 {
            let (_, v) = encode(&workload(&format!("w{i}"))).expect("headers");
            cache.get(&v);
        }
        assert!(cache.peers.borrow().len() <= CACHE_LIMIT);
    }
}
