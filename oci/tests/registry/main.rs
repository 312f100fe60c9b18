//! meshwork-oci against a real registry (Debian's docker-registry on loopback, `meshwork_oci::testing::Registry`),
//! skopeo as an independent client, and fake servers for what a real registry will not do (never answer).

mod bearer;
mod failures;
mod formats;
mod interop;
mod roundtrip;
mod signing;
mod support;
mod tls;
mod token_auth;
