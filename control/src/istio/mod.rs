//! Istio resources as meshwork reads them from YAML: the wire types (serde, Istio's camelCase field names, unknown
//! fields refused), loading a directory of YAML files with errors that name the file, line and field, and an
//! `istioctl analyze`-like check of values and cross-references.
//!
//! The spec types carry Istio's message names ([`VirtualService`], [`DestinationRule`], ...); a whole resource is a
//! [`Resource<Spec>`] (envelope + spec). Sub-objects such as `retries`, `fault`, `connectionPool`,
//! `outlierDetection` and `rules` serialize back with exactly Istio's field names, so the translation can hand them
//! to the policy filters as JSON.

pub mod analyze;
pub mod common;
pub mod destination_rule;
pub mod diagnostic;
mod documents;
pub mod duration;
pub mod hosts;
pub mod http_policy;
pub mod load;
mod locate;
pub mod mesh_config;
mod messages;
pub mod resource;
pub mod security;
pub mod service;
pub mod telemetry;
pub mod virtual_service;
pub mod wasm_plugin;

pub use analyze::analyze;
pub use common::{
    Destination, Labels, Percent, PolicyTargetReference, PortSelector, StringMatch,
    WorkloadSelector,
};
pub use destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, HttpSettings, LoadBalancerSettings,
    OutlierDetection, PortTrafficPolicy, RetryBudget, SimpleLb, Subset, TcpSettings, TlsMode,
    TrafficPolicy,
};
pub use diagnostic::{Diagnostic, FieldPath, Severity};
pub use duration::Duration;
pub use hosts::resolve_host;
pub use http_policy::{
    Abort, CorsPolicy, Delay, Delegate, HeaderOperations, Headers, HttpDirectResponse,
    HttpFaultInjection, HttpMirrorPolicy, HttpRedirect, HttpRetry, HttpRewrite,
};
pub use load::{
    DirError, Loaded, Located, MeshConfigDoc, Site, Spec, load_dir, load_str, read_dir,
};
pub use mesh_config::MeshConfig;
pub use resource::{Kind, Meta, Resource};
pub use security::{
    Action, AuthorizationPolicy, Condition, MtlsMode, MutualTls, Operation, PeerAuthentication,
    Rule, RuleFrom, RuleTo, Source,
};
pub use service::{EntrySelector, Location, Resolution, ServiceEntry, ServicePort, WorkloadEntry};
pub use telemetry::Telemetry;
pub use virtual_service::{
    HttpMatchRequest, HttpRoute, HttpRouteDestination, RouteDestination, TcpRoute, TlsRoute,
    VirtualService,
};
pub use wasm_plugin::{FailStrategy, PluginPhase, WasmPlugin};

#[cfg(test)]
mod tests;
