//! Test fixtures for this crate's tests and other crates' (feature `testing`): local registries and the token server
//! Distribution's `auth: token` mode needs.

pub mod token;
