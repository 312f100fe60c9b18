//! The control plane end to end: a directory of Istio YAML, [`ControlPlane`] serving it over ADS, and real tonic xDS
//! clients — a proxyless client and a sidecar — seeing the translation and its live changes.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

#[path = "ads/protos.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod protos;
#[path = "ads/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod support;

use std::{path::PathBuf, time::Duration};

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::Node,
            endpoint::v3::ClusterLoadAssignment,
            route::v3::{RouteConfiguration, route, route_action::ClusterSpecifier},
        },
        service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse},
    },
    google::protobuf::{Struct, Value, value},
};
use meshwork_control::{
    run::{ControlPlane, Options},
    source::Polling,
};
use prost::Message;
use support::{CLUSTER, LISTENER, ROUTE, Sotw};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn bookinfo_copy(name: &str) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let dir = std::env::temp_dir().join(format!("meshwork-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn start(dir: &std::path::Path) -> ControlPlane {
    ControlPlane::start(Options {
        dir: dir.to_path_buf(),
        xds_address: "127.0.0.1:0".parse().unwrap(),
        sidecars: Default::default(),
        polling: Polling {
            interval: Duration::from_millis(20),
            settle: Duration::from_millis(20),
        },
        ca: Default::default(),
        modules: Default::default(),
    })
    .unwrap()
}

/// `(cluster, weight)` of the first route of the first virtual host.
fn split(rc: &RouteConfiguration) -> Vec<(String, u32)> {
    let Some(route::Action::Route(a)) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("not a forwarding route")
    };
    match &a.cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
            .collect(),
        other => panic!("not weighted: {other:?}"),
    }
}

const REVIEWS: &str = "reviews.default.svc.cluster.local:9080";

#[tokio::test]
async fn proxyless_client_follows_edits_and_survives_broken_ones() {
    let dir = bookinfo_copy("proxyless");
    let cp = start(&dir);
    let mut s = Sotw::connect(cp.xds_address(), "grpc-client").await;

    s.request(LISTENER, &[REVIEWS]).await;
    let lds = s.recv().await;
    assert_eq!(support::names(&lds), [REVIEWS]);
    s.ack(&lds, &[REVIEWS]).await;
    s.request(CLUSTER, &[]).await;
    let cds = s.recv().await;
    assert!(
        support::names(&cds)
            .contains(&"outbound|9080|v2|reviews.default.svc.cluster.local".to_string())
    );
    s.ack(&cds, &[]).await;
    s.request(ROUTE, &[REVIEWS]).await;
    let rds = s.recv().await;
    let rc = RouteConfiguration::decode(rds.resources[0].value.as_slice()).unwrap();
    assert_eq!(
        split(&rc),
        [
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local".to_string(),
                90
            ),
            (
                "outbound|9080|v2|reviews.default.svc.cluster.local".to_string(),
                10
            ),
        ]
    );
    s.ack(&rds, &[REVIEWS]).await;

    // A broken file: rejected with file and line, nothing is pushed, the status says why.
    let routing = dir.join("routing.yaml");
    let good = std::fs::read_to_string(&routing).unwrap();
    std::fs::write(&routing, good.replace("weight: 90", "wieght: 90")).unwrap();
    let mut status = cp.status_changes();
    tokio::time::timeout(support::HUNG, status.wait_for(|s| !s.rejected.is_empty()))
        .await
        .unwrap()
        .unwrap();
    let rejected = cp.status().rejected;
    assert!(
        rejected
            .iter()
            .any(|e| e.contains("routing.yaml:") && e.contains("wieght")),
        "{rejected:?}"
    );

    // A good edit: the new split arrives.
    std::fs::write(
        &routing,
        good.replace("weight: 90", "weight: 50")
            .replace("weight: 10", "weight: 50"),
    )
    .unwrap();
    let rds = s.recv().await;
    assert_eq!(rds.type_url, ROUTE);
    let rc = RouteConfiguration::decode(rds.resources[0].value.as_slice()).unwrap();
    assert_eq!(
        split(&rc).iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        [50, 50]
    );
    assert!(cp.status().rejected.is_empty());
    assert_eq!(cp.status().version, 2);
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn sidecar_node(id: &str, outbound: Option<&str>, inbound: Option<&str>) -> Node {
    let mut fields = std::collections::BTreeMap::new();
    for (k, v) in [("OUTBOUND_ADDRESS", outbound), ("INBOUND_ADDRESS", inbound)] {
        if let Some(v) = v {
            fields.insert(
                k.to_string(),
                Value {
                    kind: Some(value::Kind::StringValue(v.to_string())),
                },
            );
        }
    }
    Node {
        id: id.into(),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    }
}

async fn delta_wildcard(
    addr: std::net::SocketAddr,
    node: Node,
    type_url: &str,
) -> Result<DeltaDiscoveryResponse, tonic::Status> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: Some(node),
        type_url: type_url.into(),
        resource_names_subscribe: vec!["*".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client = support::client(addr, support::LIMIT).await;
    let mut stream = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let response = tokio::time::timeout(support::HUNG, stream.message())
        .await
        .unwrap()?;
    drop(tx);
    response.ok_or_else(|| tonic::Status::cancelled("stream ended"))
}

#[tokio::test]
async fn sidecars_get_their_listeners_and_must_say_where_they_listen() {
    let dir = bookinfo_copy("sidecar");
    let cp = start(&dir);
    let addr = cp.xds_address();

    let err = delta_wildcard(
        addr,
        sidecar_node("reviews-v1.default", None, None),
        LISTENER,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("--outbound-address"),
        "{}",
        err.message()
    );

    let node = sidecar_node(
        "reviews-v1.default",
        Some("127.0.0.1:25001"),
        Some("127.0.0.1:25006"),
    );
    let lds = delta_wildcard(addr, node, LISTENER).await.unwrap();
    let mut names: Vec<&str> = lds.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["inbound", "outbound"]);

    // Now that reviews-v1's sidecar is known, other sidecars reach reviews-v1 through it; proxyless clients still
    // call the workload itself.
    let eds_of = async |id: &str| {
        let mut s = Sotw::connect(addr, id).await;
        s.request(
            support::ENDPOINT,
            &["outbound|9080|v1|reviews.default.svc.cluster.local"],
        )
        .await;
        let eds = s.recv().await;
        let cla = ClusterLoadAssignment::decode(eds.resources[0].value.as_slice()).unwrap();
        format!("{:?}", cla.endpoints[0].lb_endpoints[0])
    };
    let proxyless = eds_of("grpc-client").await;
    assert!(proxyless.contains("PortValue(19082)"), "{proxyless}");
    cp.views().register_sidecar(
        "productpage-v1.default",
        meshwork_control::translate::Sidecar {
            outbound: "127.0.0.1:25011".parse().unwrap(),
            inbound: "127.0.0.1:25016".parse().unwrap(),
        },
    );
    let from_sidecar = eds_of("productpage-v1.default").await;
    assert!(from_sidecar.contains("PortValue(25006)"), "{from_sidecar}");
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
