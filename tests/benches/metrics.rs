//! Criterion benches of the Istio request metrics' cost: recording one finished request into a worker's shard (what
//! every request pays at its end), the same while another thread scrapes, and a scrape of 200 label sets (drain,
//! label, render), which runs on the admin thread, never on a worker.
//!
//! Run: `cargo bench -p meshwork-tests --bench metrics`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    reason = "criterion's macros generate undocumented items; a bench panics on setup failure"
)]

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use meshwork_host::{
    config::telemetry::{Direction, ListenerTelemetry, Workload},
    telemetry::{
        Telemetry,
        metrics::{Observation, Registry},
    },
    tls::TlsInfo,
};

/// The allocator the `meshwork` binary uses, so allocation costs are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn inbound() -> Arc<Telemetry> {
    Arc::new(Telemetry::new(&ListenerTelemetry {
        direction: Direction::Inbound,
        workload: Some(workload("reviews")),
        ..Default::default()
    }))
}

fn record(c: &mut Criterion) {
    let registry = Registry::new(2);
    let listener = inbound();
    let cluster: Arc<str> = Arc::from("inbound|9080||");
    let peer = Arc::new(workload("productpage"));
    let tls = Arc::new(TlsInfo {
        mtls: true,
        peer_uri_sans: vec!["spiffe://cluster.local/ns/default/sa/productpage".into()],
        ..Default::default()
    });
    let authority = HeaderValue::from_static("reviews:9080");
    let observation = |status| Observation {
        listener: &listener,
        cluster: Some(&cluster),
        peer: Some(&peer),
        tls: Some(&tls),
        authority: Some(&authority),
        status,
        flags: None,
        grpc: false,
        grpc_status: None,
        elapsed: Duration::from_micros(850),
        request_bytes: 420,
        response_bytes: 1024,
    };
    let ok = observation(200);
    c.bench_function("metrics/record one request", |b| {
        b.iter(|| registry.observe(0, black_box(&ok)))
    });
    // A scraper draining every shard in a loop: the worst contention a worker's lock can see.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = std::thread::spawn({
        let (registry, stop) = (registry.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(registry.collect());
            }
        }
    });
    c.bench_function("metrics/record one request, scraped meanwhile", |b| {
        b.iter(|| registry.observe(0, black_box(&ok)))
    });
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();
}

fn scrape(c: &mut Criterion) {
    let registry = Registry::new(2);
    let listener = inbound();
    let clusters: Vec<Arc<str>> = (0..20)
        .map(|i| Arc::from(format!("outbound|9080||svc{i}.default.svc.cluster.local").as_str()))
        .collect();
    c.bench_function("metrics/scrape 200 label sets", |b| {
        b.iter(|| {
            // Fresh traffic since the last scrape: 20 services × 10 statuses.
            for cluster in &clusters {
                for status in 200..210 {
                    registry.observe(
                        0,
                        &Observation {
                            listener: &listener,
                            cluster: Some(cluster),
                            peer: None,
                            tls: None,
                            authority: None,
                            status,
                            flags: None,
                            grpc: false,
                            grpc_status: None,
                            elapsed: Duration::from_millis(2),
                            request_bytes: 300,
                            response_bytes: 2000,
                        },
                    );
                }
            }
            let mut out = String::new();
            registry.render(&mut out);
            black_box(out)
        })
    });
}

criterion_group!(benches, record, scrape);
criterion_main!(benches);
