//! The whole proxy in-process against real hyper/tonic upstreams and real clients on loopback.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

mod admin;
mod config_validate;
mod curl;
mod errors;
mod examples;
mod filter_units;
mod grpc;
mod http;
mod mesh;
mod mesh_mtls;
mod oci_mesh;
mod policy_authz;
mod policy_chain;
mod policy_circuit_breaker;
mod policy_fault;
mod policy_retry;
mod policy_router;
mod policy_router_e2e;
mod reload;
mod routing;
mod shutdown;
mod telemetry_access_log;
mod telemetry_internals;
mod telemetry_metrics;
mod telemetry_prometheus;
mod telemetry_tracing;
mod tls;
mod upgrade;
mod wasm;
mod wasm_abi;
mod wasm_grpc;
mod wasm_harness;
mod wasm_policy;
mod wasm_swap;
mod xds_client;
mod xds_grpcio;
