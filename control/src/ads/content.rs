//! Content equality of encoded resources whose bytes may differ only in the order of protobuf map entries.
//!
//! The known resource types are decoded and compared as messages (prost's `HashMap` fields compare without regard
//! to order). Other types compare by bytes. A map nested inside an `Any` inside the resource (an HTTP filter's typed
//! config, say) is still compared by its bytes.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::order::type_url;

/// Whether two encoded resources hold the same message.
pub(crate) fn same(a: &Any, b: &Any) -> bool {
    if a.type_url != b.type_url {
        return false;
    }
    if a.value == b.value {
        return true;
    }
    match a.type_url.as_str() {
        type_url::CLUSTER => decoded_equal::<Cluster>(a, b),
        type_url::ENDPOINT => decoded_equal::<ClusterLoadAssignment>(a, b),
        type_url::LISTENER => decoded_equal::<Listener>(a, b),
        type_url::ROUTE => decoded_equal::<RouteConfiguration>(a, b),
        type_url::EXTENSION_CONFIG => decoded_equal::<TypedExtensionConfig>(a, b),
        type_url::SECRET => decoded_equal::<Secret>(a, b),
        _ => false,
    }
}

fn decoded_equal<M: Message + Default + PartialEq>(a: &Any, b: &Any) -> bool {
    match (M::decode(a.value.as_slice()), M::decode(b.value.as_slice())) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::Struct;
    use prost::Name;

    fn any<M: Message + Name>(message: &M) -> Any {
        Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        }
    }

    /// The same two-entry map encoded in both orders, by hand, so the test does not depend on `HashMap` order.
    fn metadata_bytes(first: &str, second: &str) -> Vec<u8> {
        let entry = |key: &str| {
            let entry = (key.to_string(), Struct::default());
            Metadata {
                filter_metadata: [entry].into_iter().collect(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let mut bytes = entry(first);
        bytes.extend(entry(second));
        bytes
    }

    fn cluster_with_metadata(metadata: Vec<u8>) -> Any {
        // Cluster.metadata is field 25, length-delimited: tag (25 << 3 | 2) as a varint is [0xca, 0x01].
        let mut value = Cluster {
            name: "c".into(),
            ..Default::default()
        }
        .encode_to_vec();
        value.extend([0xca, 0x01]);
        value.push(u8::try_from(metadata.len()).unwrap_or(u8::MAX));
        value.extend(metadata);
        Any {
            type_url: Cluster::type_url(),
            value,
        }
    }

    #[test]
    fn equality_table() {
        let a_then_b = cluster_with_metadata(metadata_bytes("a", "b"));
        let b_then_a = cluster_with_metadata(metadata_bytes("b", "a"));
        let a_then_c = cluster_with_metadata(metadata_bytes("a", "c"));
        let c1 = any(&Cluster {
            name: "c1".into(),
            ..Default::default()
        });
        let c2 = any(&Cluster {
            name: "c2".into(),
            ..Default::default()
        });
        let other = |value: Vec<u8>| Any {
            type_url: "type.googleapis.com/x.Y".into(),
            value,
        };
        let garbage = Any {
            type_url: Cluster::type_url(),
            value: vec![0xff],
        };
        let table = [
            (&a_then_b, &b_then_a, true),
            (&a_then_b, &a_then_c, false),
            (&c1, &c1, true),
            (&c1, &c2, false),
            (&garbage, &c1, false),
        ];
        assert_ne!(a_then_b.value, b_then_a.value);
        for (a, b, want) in table {
            assert_eq!(same(a, b), want, "{a:?} {b:?}");
        }
        assert!(same(&other(vec![1]), &other(vec![1])));
        assert!(!same(&other(vec![1]), &other(vec![2])));
        assert!(!same(
            &c1,
            &Any {
                type_url: "other".into(),
                value: c1.value.clone()
            }
        ));
    }
}
