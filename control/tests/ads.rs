//! The ADS server end to end: a real tonic server on loopback, real tonic clients, real Envoy resource protos.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

#[path = "ads/delta.rs"]
mod delta;
#[path = "ads/protos.rs"]
mod protos;
#[path = "ads/scale.rs"]
mod scale;
#[path = "ads/sds.rs"]
mod sds;
#[path = "ads/server.rs"]
mod server;
#[path = "ads/sotw.rs"]
mod sotw;
#[path = "ads/support.rs"]
mod support;
