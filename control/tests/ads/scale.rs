//! A large view: 1,000 clusters and 1,000 ClusterLoadAssignments, with a CDS response beyond gRPC's 4 MiB default.

#![allow(
    clippy::print_stdout,
    reason = "the test reports the sizes and times it measured"
)]

use std::sync::Arc;
use std::time::Instant;

use meshwork_control::ads::{Resources, StaticViews};
use prost::Message;
use tonic::Code;

use crate::support::*;

const SERVICES: usize = 1000;
/// tonic's and Go gRPC's default receive limit.
const DEFAULT_LIMIT: usize = 4 * 1024 * 1024;

fn service(i: usize) -> String {
    format!("outbound|8080||svc-{i:04}.default.svc.cluster.local")
}

fn large_mesh() -> Resources {
    let mut resources = Resources::new();
    for i in 0..SERVICES {
        let name = service(i);
        resources.insert(name.clone(), &cluster(&name, 5000));
        resources.insert(name.clone(), &cla(&name, 8080, 1000));
    }
    with_probes(resources)
}

#[tokio::test]
async fn a_thousand_clusters_and_endpoints_pass_the_raised_limits() {
    let views = Arc::new(StaticViews::new(large_mesh()));
    let server = Server::start(views.clone()).await;
    let names: Vec<String> = (0..SERVICES).map(service).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let started = Instant::now();
    let mut sotw = Sotw::connect(server.addr, "n1").await;
    sotw.request(CLUSTER, &[]).await;
    let cds = sotw.recv().await;
    let cds_time = started.elapsed();
    assert_eq!(cds.resources.len(), SERVICES);
    assert!(
        cds.encoded_len() > DEFAULT_LIMIT,
        "CDS is {} bytes",
        cds.encoded_len()
    );
    sotw.ack(&cds, &[]).await;
    sotw.request(ENDPOINT, &names).await;
    let eds = sotw.recv().await;
    assert_eq!(eds.resources.len(), SERVICES);
    sotw.ack(&eds, &names).await;
    sotw.barrier().await;

    // One cluster changes: SotW resends all of CDS (it is full-state); Delta sends the one.
    let mut delta = Delta::connect(server.addr, "n2").await;
    delta.subscribe(CLUSTER, &[], &[]).await;
    let all = delta.recv().await;
    assert_eq!(all.resources.len(), SERVICES);
    delta.ack(&all).await;
    let changed = Instant::now();
    views.update(|r| {
        r.insert(service(7), &cluster(&service(7), 5001));
    });
    let sotw_push = sotw.recv().await;
    let sotw_time = changed.elapsed();
    assert_eq!(sotw_push.resources.len(), SERVICES);
    let delta_push = delta.recv().await;
    let delta_time = changed.elapsed();
    assert_eq!(delta_names(&delta_push), [service(7)]);

    // Reconnecting with everything it has, a Delta client is sent nothing but the (empty) first answer.
    let mut versions = delta_versions(&all);
    versions.extend(delta_versions(&delta_push));
    let mut resumed = Delta::connect(server.addr, "n2").await;
    resumed.resume(CLUSTER, &["*"], versions).await;
    let nothing = resumed.recv().await;
    assert!(nothing.resources.is_empty() && nothing.removed_resources.is_empty());

    println!(
        "ADS scale: CDS {} bytes (EDS {} bytes) for {SERVICES} services; first CDS in {cds_time:?}; one change: \
         SotW CDS {} bytes in {sotw_time:?}, Delta {} bytes in {delta_time:?}; server-side push latency {:?}",
        cds.encoded_len(),
        eds.encoded_len(),
        sotw_push.encoded_len(),
        delta_push.encoded_len(),
        server.stats().last_push_latency,
    );
}

#[tokio::test]
async fn a_client_with_the_4_mib_default_cannot_take_the_same_view() {
    let server = Server::start(Arc::new(StaticViews::new(large_mesh()))).await;
    let mut client = Sotw::connect_with_limit(server.addr, "n1", DEFAULT_LIMIT).await;
    client.request(CLUSTER, &[]).await;
    let refused = client.try_recv().await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("too large"), "{refused:?}");
}
