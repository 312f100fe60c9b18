//! SDS over ADS from the control plane's views: the trust bundle as the secret `ROOTCA`, followed when it rotates;
//! `default` (the workload certificate, the proxy's own business) answered as missing.

use std::sync::Arc;

use envoy_types::pb::envoy::{
    config::{core::v3::data_source::Specifier, listener::v3::Listener},
    extensions::transport_sockets::tls::v3::{Secret, secret},
    service::discovery::v3::DeltaDiscoveryResponse,
};
use meshwork_control::{
    ads::type_url::SECRET,
    istio::load_str,
    mesh::Mesh,
    translate::{Sidecar, Sidecars},
    views::{MeshViews, Security},
};
use prost::Message;

use crate::support::*;

const MESH: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews }
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v1 }
spec: { address: 127.0.0.11, labels: { app: reviews }, serviceAccount: reviews }
";

/// A control plane's views of a one-workload mesh, the workload's sidecar known, secured by `security`.
fn views(security: Security) -> Arc<MeshViews> {
    let mesh = Mesh::from_loaded(&load_str(MESH, "mesh.yaml").unwrap());
    let sidecars = Sidecars::from([(
        "reviews-v1.default".to_string(),
        Sidecar {
            outbound: "127.0.0.1:15001".parse().unwrap(),
            inbound: "127.0.0.1:15006".parse().unwrap(),
        },
    )]);
    Arc::new(MeshViews::with_security(mesh, sidecars, security))
}

fn secured(bundle: &str) -> Security {
    Security {
        trust_domain: "cluster.local".into(),
        trust_bundle_pem: Some(bundle.into()),
    }
}

/// The trust bundle in the `ROOTCA` secret of a Delta response.
fn bundle(response: &DeltaDiscoveryResponse) -> String {
    assert_eq!(delta_names(response), ["ROOTCA"]);
    let any = response.resources[0].resource.as_ref().unwrap();
    assert_eq!(any.type_url, SECRET);
    let secret = Secret::decode(any.value.as_slice()).unwrap();
    assert_eq!(secret.name, "ROOTCA");
    let Some(secret::Type::ValidationContext(v)) = secret.r#type else {
        panic!("ROOTCA is a validation context: {secret:?}")
    };
    match v.trusted_ca.and_then(|ca| ca.specifier) {
        Some(Specifier::InlineBytes(pem)) => String::from_utf8(pem).unwrap(),
        other => panic!("the bundle is inline bytes: {other:?}"),
    }
}

const ROOT_A: &str = "-----BEGIN CERTIFICATE-----\nroot A\n-----END CERTIFICATE-----\n";
const ROOTS_A_B: &str = "-----BEGIN CERTIFICATE-----\nroot A\n-----END CERTIFICATE-----\n\
                         -----BEGIN CERTIFICATE-----\nroot B\n-----END CERTIFICATE-----\n";

#[tokio::test]
async fn delta_sidecar_gets_the_trust_bundle_and_follows_its_rotation() {
    let views = views(secured(ROOT_A));
    let server = Server::start(views.clone()).await;
    let mut client = Delta::connect(server.addr, "reviews-v1.default").await;
    // As a sidecar asks: its certificate and the bundle. `default` is not the control plane's to serve.
    client.subscribe(SECRET, &["default", "ROOTCA"], &[]).await;
    let first = client.recv().await;
    assert_eq!(bundle(&first), ROOT_A);
    assert_eq!(first.removed_resources, ["default"]);
    client.ack(&first).await;

    // A second root joins the bundle: only the secret is pushed.
    views.set_security(secured(ROOTS_A_B));
    let rotated = client.recv().await;
    assert_eq!(bundle(&rotated), ROOTS_A_B);
    assert!(rotated.removed_resources.is_empty());
    assert_ne!(rotated.resources[0].version, first.resources[0].version);
    client.ack(&rotated).await;
    client.barrier().await;

    // The same bundle again pushes nothing; mutual TLS turned off removes the secret.
    views.set_security(secured(ROOTS_A_B));
    client.barrier().await;
    views.set_security(Security::default());
    let removed = client.recv().await;
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["ROOTCA"]);
}

#[tokio::test]
async fn delta_sidecar_listener_turns_to_mutual_tls_with_a_bundle() {
    let views = views(Security::default());
    let server = Server::start(views.clone()).await;
    let mut client = Delta::connect(server.addr, "reviews-v1.default").await;
    client.subscribe(LISTENER, &[], &[]).await;
    // (transport protocol matched, transport socket) of each chain of the inbound listener.
    let inbound_chains = |response: &DeltaDiscoveryResponse| -> Vec<(String, String)> {
        let r = response
            .resources
            .iter()
            .find(|r| r.name == "inbound")
            .expect("the inbound listener");
        let l = Listener::decode(r.resource.as_ref().unwrap().value.as_slice()).unwrap();
        l.filter_chains
            .iter()
            .map(|c| {
                let m = c.filter_chain_match.as_ref();
                (
                    m.map_or("", |m| m.transport_protocol.as_str()).to_string(),
                    c.transport_socket
                        .as_ref()
                        .map_or("", |s| s.name.as_str())
                        .to_string(),
                )
            })
            .collect()
    };
    let plain = client.recv().await;
    assert_eq!(inbound_chains(&plain), [(String::new(), String::new())]);
    client.ack(&plain).await;
    // No PeerAuthentication: Istio's PERMISSIVE, TLS and plain text on the one port.
    views.set_security(secured(ROOT_A));
    let secure = client.recv().await;
    let chain = |protocol: &str, socket: &str| (protocol.to_string(), socket.to_string());
    assert_eq!(
        inbound_chains(&secure),
        [
            chain("tls", "envoy.transport_sockets.tls"),
            chain("raw_buffer", "")
        ]
    );
}
