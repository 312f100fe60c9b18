//! Delta ADS: subscriptions, changes, removals, reconnects, NACKs and push order.

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshwork_control::ads::Kind;

use crate::support::*;

#[tokio::test]
async fn delta_wildcard_gets_only_changes_and_removals() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Delta::connect(server.addr, "n1").await;
    // Legacy wildcard: the first CDS request names nothing.
    client.subscribe(CLUSTER, &[], &[]).await;
    let first = client.recv().await;
    assert_eq!(delta_names(&first), ["a", "b", "c"]);
    assert!(first.removed_resources.is_empty());
    assert_eq!(first.system_version_info.len(), 16);
    assert_eq!(
        first.control_plane.as_ref().map(|c| c.identifier.as_str()),
        Some("meshwork-control")
    );
    client.ack(&first).await;

    views.update(|r| {
        r.insert("b", &cluster("b", 10));
    });
    let changed = client.recv().await;
    assert_eq!(delta_names(&changed), ["b"]);
    assert_ne!(changed.nonce, first.nonce);
    assert_ne!(changed.system_version_info, first.system_version_info);
    client.ack(&changed).await;

    views.update(|r| {
        r.remove(CLUSTER, "c");
    });
    let removed = client.recv().await;
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["c"]);
    client.ack(&removed).await;
    client.barrier().await;
}

#[tokio::test]
async fn delta_named_subscription_reports_missing_and_stops_after_unsubscribe() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Delta::connect(server.addr, "n1").await;
    client.subscribe(ENDPOINT, &["a", "x"], &[]).await;
    let first = client.recv().await;
    assert_eq!(delta_names(&first), ["a"]);
    assert_eq!(
        first.removed_resources,
        ["x"],
        "a subscribed name that does not exist is reported removed"
    );
    client.ack(&first).await;

    views.update(|r| {
        r.insert("x", &cla("x", 8000, 0));
    });
    let appeared = client.recv().await;
    assert_eq!(delta_names(&appeared), ["x"]);
    client.ack(&appeared).await;

    client.subscribe(ENDPOINT, &[], &["a"]).await;
    client.barrier().await;
    views.update(|r| {
        r.insert("a", &cla("a", 8001, 0));
    });
    client.barrier().await;
    views.update(|r| {
        r.insert("x", &cla("x", 8001, 0));
    });
    assert_eq!(delta_names(&client.recv().await), ["x"]);
}

#[tokio::test]
async fn delta_reconnect_with_initial_versions_gets_only_what_changed() {
    let (views, server) = start_static(small_mesh()).await;
    let mut before = Delta::connect(server.addr, "n1").await;
    before.subscribe(CLUSTER, &["*"], &[]).await;
    let had = before.recv().await;
    assert_eq!(delta_names(&had), ["a", "b", "c"]);
    drop(before);

    views.update(|r| {
        r.insert("b", &cluster("b", 10));
        r.remove(CLUSTER, "c");
        r.insert("d", &cluster("d", 0));
    });
    let mut after = Delta::connect(server.addr, "n1").await;
    after.resume(CLUSTER, &["*"], delta_versions(&had)).await;
    let caught_up = after.recv().await;
    assert_eq!(delta_names(&caught_up), ["b", "d"]);
    assert_eq!(caught_up.removed_resources, ["c"]);
    after.ack(&caught_up).await;
    after.barrier().await;
}

#[tokio::test]
async fn delta_nack_is_counted_and_a_stale_nonce_still_changes_the_subscription() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Delta::connect(server.addr, "n1").await;
    client.subscribe(ROUTE, &["r"], &[]).await;
    let first = client.recv().await;
    client
        .send(DeltaDiscoveryRequest {
            type_url: ROUTE.into(),
            response_nonce: first.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "route r: redirect".into(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    client.barrier().await;
    assert_eq!(server.stats().nacks_of(Kind::Route), 1);

    views.update(|r| {
        r.insert("r", &route("r", "b"));
        r.insert("r2", &route("r2", "c"));
    });
    let second = client.recv().await;
    assert_eq!(delta_names(&second), ["r"]);
    // Carries the nonce of the superseded first response, and still subscribes.
    client
        .send(DeltaDiscoveryRequest {
            type_url: ROUTE.into(),
            response_nonce: first.nonce.clone(),
            resource_names_subscribe: vec!["r2".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(delta_names(&client.recv().await), ["r2"]);
}

#[tokio::test]
async fn delta_pushes_in_order_and_removes_last() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Delta::connect(server.addr, "n1").await;
    let subscriptions: [(&str, &[&str]); 5] = [
        (EXTENSION_CONFIG, &["e"]),
        (ROUTE, &["r"]),
        (LISTENER, &[]),
        (ENDPOINT, &["a", "d"]),
        (CLUSTER, &[]),
    ];
    for (type_url, names) in subscriptions {
        client.subscribe(type_url, names, &[]).await;
        let response = client.recv().await;
        client.ack(&response).await;
    }
    // Everything changes at once; cluster and endpoints a move to d.
    views.update(|r| {
        r.insert("e", &extension("e", r#"{"v":2}"#));
        r.insert("r", &route("r", "d"));
        r.insert("l", &listener("l", 15002));
        r.insert("d", &cla("d", 9000, 0));
        r.insert("d", &cluster("d", 0));
        r.remove(CLUSTER, "a");
        r.remove(ENDPOINT, "a");
    });
    let mut got = Vec::new();
    for _ in 0..7 {
        let response = client.recv().await;
        got.push((
            response.type_url.clone(),
            delta_names(&response),
            response.removed_resources.clone(),
        ));
    }
    let row = |t: &str, names: &[&str], removed: &[&str]| {
        (t.to_string(), strings(names), strings(removed))
    };
    let want = [
        row(CLUSTER, &["d"], &[]),
        row(ENDPOINT, &["d"], &[]),
        row(LISTENER, &["l"], &[]),
        row(ROUTE, &["r"], &[]),
        row(EXTENSION_CONFIG, &["e"], &[]),
        row(ENDPOINT, &[], &["a"]),
        row(CLUSTER, &[], &["a"]),
    ];
    assert_eq!(got, want);
    client.barrier().await;
}

#[tokio::test]
async fn delta_wildcard_with_explicit_names_follows_unsubscribes() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Delta::connect(server.addr, "n1").await;
    client.subscribe(CLUSTER, &["*", "a", "x"], &[]).await;
    let first = client.recv().await;
    assert_eq!(delta_names(&first), ["a", "b", "c"]);
    assert_eq!(first.removed_resources, ["x"]);
    client.ack(&first).await;

    // Still covered by the wildcard: the server must answer for each again, in resources or removed_resources.
    client.subscribe(CLUSTER, &[], &["a", "x"]).await;
    let answered = client.recv().await;
    assert_eq!(delta_names(&answered), ["a"]);
    assert_eq!(answered.removed_resources, ["x"]);
    client.ack(&answered).await;

    // Leaving the wildcard keeps only the explicit names: removing another cluster is nothing to this client.
    client.subscribe(CLUSTER, &["a"], &["*"]).await;
    client.barrier().await;
    views.update(|r| {
        r.remove(CLUSTER, "b");
    });
    client.barrier().await;
    views.update(|r| {
        r.insert("a", &cluster("a", 10));
    });
    let changed = client.recv().await;
    assert_eq!(delta_names(&changed), ["a"]);
    assert!(changed.removed_resources.is_empty());
}
