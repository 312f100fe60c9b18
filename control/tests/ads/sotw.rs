//! State-of-the-World ADS: wildcard, ACK/NACK, named subscriptions, versions, stale nonces and push order.

use std::collections::BTreeSet;

use meshwork_control::ads::Kind;

use crate::support::*;

#[tokio::test]
async fn sotw_wildcard_cds_gets_every_cluster_and_an_ack_gets_no_resend() {
    let (_views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    client.request(CLUSTER, &[]).await;
    let response = client.recv().await;
    assert_eq!(response.type_url, CLUSTER);
    assert_eq!(names(&response), ["a", "b", "c"]);
    assert_eq!(response.version_info.len(), 16);
    assert!(!response.nonce.is_empty());
    assert_eq!(
        response
            .control_plane
            .as_ref()
            .map(|c| c.identifier.as_str()),
        Some("meshwork-control")
    );

    client.ack(&response, &[]).await;
    client.barrier().await;
    let stats = server.stats();
    assert_eq!(stats.pushes_of(Kind::Cluster), 1);
    assert_eq!(stats.connected_streams, 1);
}

#[tokio::test]
async fn sotw_nack_is_counted_and_not_resent_and_a_later_change_is_pushed() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    client.request(CLUSTER, &[]).await;
    let first = client.recv().await;
    client
        .nack(
            &first,
            &[],
            "",
            "cluster a: lb_policy MAGLEV is not supported",
        )
        .await;
    client.barrier().await;
    assert_eq!(server.stats().nacks_of(Kind::Cluster), 1);
    assert_eq!(server.stats().pushes_of(Kind::Cluster), 1);

    views.update(|r| {
        r.insert("d", &cluster("d", 0));
    });
    let second = client.recv().await;
    assert_eq!(second.type_url, CLUSTER);
    assert_eq!(names(&second), ["a", "b", "c", "d"]);
    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);
}

#[tokio::test]
async fn sotw_named_eds_gets_only_named_and_a_missing_name_arrives_when_it_appears() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    client.request(ENDPOINT, &["a", "x"]).await;
    let first = client.recv().await;
    assert_eq!(names(&first), ["a"]);
    client.ack(&first, &["a", "x"]).await;

    // A change to a resource nobody here asked for is not pushed.
    views.update(|r| {
        r.insert("b", &cla("b", 9000, 0));
    });
    client.barrier().await;

    views.update(|r| {
        r.insert("x", &cla("x", 8000, 0));
    });
    let second = client.recv().await;
    assert_eq!(second.type_url, ENDPOINT);
    assert_eq!(
        names(&second),
        ["x"],
        "EDS carries only what is new to the client"
    );
    assert_ne!(second.version_info, first.version_info);
}

#[tokio::test]
async fn sotw_version_info_is_per_type() {
    let (_views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    let subscriptions: [(&str, &[&str]); 5] = [
        (CLUSTER, &[]),
        (ENDPOINT, &["a"]),
        (LISTENER, &[]),
        (ROUTE, &["r"]),
        (EXTENSION_CONFIG, &["e"]),
    ];
    let mut versions = BTreeSet::new();
    for (type_url, names) in subscriptions {
        client.request(type_url, names).await;
        let response = client.recv().await;
        assert_eq!(response.type_url, type_url);
        versions.insert(response.version_info);
    }
    assert_eq!(versions.len(), 5, "{versions:?}");
}

#[tokio::test]
async fn sotw_stale_nonce_is_ignored() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    client.request(ENDPOINT, &["a"]).await;
    let first = client.recv().await;
    client.ack(&first, &["a"]).await;
    views.update(|r| {
        r.insert("a", &cla("a", 8001, 0));
    });
    let second = client.recv().await;
    assert_eq!(names(&second), ["a"]);

    // Still answering the first response: superseded, so its new name is not served.
    client.ack(&first, &["a", "b"]).await;
    client.barrier().await;
    client.ack(&second, &["a", "b"]).await;
    let third = client.recv().await;
    assert_eq!(names(&third), ["b"]);
}

#[tokio::test]
async fn sotw_pushes_cds_eds_lds_rds_ecds_in_order() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    let subscriptions: [(&str, &[&str]); 5] = [
        (EXTENSION_CONFIG, &["e"]),
        (ROUTE, &["r"]),
        (LISTENER, &[]),
        (ENDPOINT, &["a", "b"]),
        (CLUSTER, &[]),
    ];
    for (type_url, names) in subscriptions {
        client.request(type_url, names).await;
        let response = client.recv().await;
        client.ack(&response, names).await;
    }
    views.update(|r| {
        r.insert("e", &extension("e", r#"{"v":2}"#));
        r.insert("r", &route("r", "b"));
        r.insert("l", &listener("l", 15002));
        r.insert("b", &cla("b", 9000, 0));
        r.insert("b", &cluster("b", 10));
    });
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(client.recv().await.type_url);
    }
    assert_eq!(
        order,
        [CLUSTER, ENDPOINT, LISTENER, ROUTE, EXTENSION_CONFIG]
    );
    client.barrier().await;
    assert!(server.stats().last_push_latency < HUNG);
}

#[tokio::test]
async fn sotw_removes_a_cluster_only_after_the_route_moved_away() {
    let (views, server) = start_static(small_mesh()).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    for (type_url, names) in [(CLUSTER, &[][..]), (ROUTE, &["r"][..])] {
        client.request(type_url, names).await;
        let response = client.recv().await;
        client.ack(&response, names).await;
    }
    // The route moves from a to the new cluster d, and a goes away.
    views.update(|r| {
        r.remove(CLUSTER, "a");
        r.insert("d", &cluster("d", 0));
        r.insert("r", &route("r", "d"));
    });
    let make = client.recv().await;
    assert_eq!(
        (make.type_url.as_str(), names(&make)),
        (
            CLUSTER,
            vec!["a".into(), "b".into(), "c".into(), "d".into()]
        )
    );
    let moved = client.recv().await;
    assert_eq!(moved.type_url, ROUTE);
    let shrink = client.recv().await;
    assert_eq!(
        (shrink.type_url.as_str(), names(&shrink)),
        (CLUSTER, vec!["b".into(), "c".into(), "d".into()])
    );
    client.barrier().await;
}
