//! A listener's telemetry identity from LDS: `traffic_direction` (which side of the call it reports) and the workload
//! behind it from `metadata.filter_metadata["meshwork.workload"]`, a Struct with Istio's node-metadata keys (`NAME`,
//! `NAMESPACE`, `WORKLOAD_NAME`, `SERVICE_ACCOUNT`, `CLUSTER_ID`, `MESH_ID`, `CANONICAL_SERVICE`,
//! `CANONICAL_REVISION`, `LABELS`).

use envoy_types::pb::{
    envoy::config::{core::v3::TrafficDirection, listener::v3::Listener},
    google::protobuf::{Struct, Value, value::Kind},
};

use super::ConvertError;
use crate::config::telemetry::{Direction, ListenerTelemetry, Workload};

/// The `filter_metadata` key of the workload identity.
pub const WORKLOAD_METADATA: &str = "meshwork.workload";

/// The telemetry settings `l` carries.
pub fn listener_telemetry(l: &Listener) -> Result<ListenerTelemetry, ConvertError> {
    let direction = match TrafficDirection::try_from(l.traffic_direction) {
        Ok(TrafficDirection::Inbound) => Direction::Inbound,
        Ok(TrafficDirection::Outbound) => Direction::Outbound,
        Ok(TrafficDirection::Unspecified) | Err(_) => Direction::Unspecified,
    };
    let workload = match l
        .metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get(WORKLOAD_METADATA))
    {
        Some(s) => Some(workload(
            s,
            &format!("metadata.filter_metadata[\"{WORKLOAD_METADATA}\"]"),
        )?),
        None => None,
    };
    Ok(ListenerTelemetry {
        direction,
        workload,
        tracing: None,
    })
}

/// A workload from its metadata Struct; every key is optional except `NAME` and `NAMESPACE`.
pub fn workload(s: &Struct, field: &str) -> Result<Workload, ConvertError> {
    let text = |key: &str| -> Result<String, ConvertError> {
        match s.fields.get(key).and_then(|v| v.kind.as_ref()) {
            None => Ok(String::new()),
            Some(Kind::StringValue(v)) => Ok(v.clone()),
            Some(_) => Err(ConvertError::new(
                format!("{field}.{key}"),
                "expected a string",
            )),
        }
    };
    let w = Workload {
        name: text("NAME")?,
        namespace: text("NAMESPACE")?,
        workload_name: text("WORKLOAD_NAME")?,
        service_account: text("SERVICE_ACCOUNT")?,
        cluster_id: text("CLUSTER_ID")?,
        mesh_id: text("MESH_ID")?,
        canonical_service: text("CANONICAL_SERVICE")?,
        canonical_revision: text("CANONICAL_REVISION")?,
        labels: match s.fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
            None => Default::default(),
            Some(Kind::StructValue(l)) => l
                .fields
                .iter()
                .filter_map(|(k, v)| match &v.kind {
                    Some(Kind::StringValue(v)) => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect(),
            Some(_) => {
                return Err(ConvertError::new(
                    format!("{field}.LABELS"),
                    "expected a struct of label names to string values",
                ));
            }
        },
    };
    for (key, value) in [("NAME", &w.name), ("NAMESPACE", &w.namespace)] {
        if value.is_empty() {
            return Err(ConvertError::new(
                format!("{field}.{key}"),
                "missing: a workload needs its NAME and NAMESPACE",
            ));
        }
    }
    Ok(w)
}

/// `w` as a metadata Struct, the inverse of [`workload`] (empty fields left out).
pub fn workload_struct(w: &Workload) -> Struct {
    let string = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_string())),
    };
    let mut fields: std::collections::BTreeMap<String, Value> = [
        ("NAME", &w.name),
        ("NAMESPACE", &w.namespace),
        ("WORKLOAD_NAME", &w.workload_name),
        ("SERVICE_ACCOUNT", &w.service_account),
        ("CLUSTER_ID", &w.cluster_id),
        ("MESH_ID", &w.mesh_id),
        ("CANONICAL_SERVICE", &w.canonical_service),
        ("CANONICAL_REVISION", &w.canonical_revision),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), string(v)))
    .collect();
    if !w.labels.is_empty() {
        let labels = Struct {
            fields: w
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), string(v)))
                .collect(),
        };
        fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        );
    }
    Struct {
        fields: fields.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::Metadata;

    use super::*;

    fn sample() -> Workload {
        Workload {
            name: "reviews-v2-1".into(),
            namespace: "default".into(),
            workload_name: "reviews-v2".into(),
            service_account: "bookinfo-reviews".into(),
            cluster_id: "Kubernetes".into(),
            mesh_id: "cluster.local".into(),
            canonical_service: "reviews".into(),
            canonical_revision: "v2".into(),
            labels: [("app", "reviews"), ("version", "v2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn listener(direction: TrafficDirection, meta: Option<Struct>) -> Listener {
        Listener {
            traffic_direction: direction as i32,
            metadata: meta.map(|s| Metadata {
                filter_metadata: [(WORKLOAD_METADATA.to_string(), s)].into_iter().collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn direction_and_workload_round_trip() {
        let w = sample();
        let t = listener_telemetry(&listener(
            TrafficDirection::Inbound,
            Some(workload_struct(&w)),
        ))
        .expect("valid");
        assert_eq!(t.direction, Direction::Inbound);
        assert_eq!(t.workload, Some(w));
        let t = listener_telemetry(&listener(TrafficDirection::Outbound, None)).expect("valid");
        assert_eq!(t.direction, Direction::Outbound);
        assert_eq!(t.workload, None);
        assert_eq!(
            listener_telemetry(&Listener::default())
                .expect("valid")
                .direction,
            Direction::Unspecified
        );
    }

    #[test]
    fn bad_workload_metadata_names_the_field() {
        let mut missing = workload_struct(&sample());
        missing.fields.remove("NAMESPACE");
        let mut wrong = workload_struct(&sample());
        wrong.fields.insert(
            "MESH_ID".into(),
            Value {
                kind: Some(Kind::NumberValue(1.0)),
            },
        );
        let mut labels = workload_struct(&sample());
        labels.fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(Kind::StringValue("app=x".into())),
            },
        );
        for (s, field) in [
            (missing, "NAMESPACE"),
            (wrong, "MESH_ID"),
            (labels, "LABELS"),
        ] {
            let e = listener_telemetry(&listener(TrafficDirection::Inbound, Some(s)))
                .expect_err("invalid");
            assert_eq!(
                e.field,
                format!("metadata.filter_metadata[\"meshwork.workload\"].{field}")
            );
        }
    }
}
