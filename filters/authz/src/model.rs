//! The authorization configuration as the evaluation reads it: validated, with every pattern, IP block and port
//! parsed. [`crate::config`] builds it from the `pluginConfig`; [`crate::eval`] applies it to a request.

use crate::matcher::{Field, IpBlock, StringMatch};

/// Peer authentication and the policies, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authz {
    /// Whether mTLS is required.
    pub peer: PeerAuthn,
    /// Every policy, whatever its action.
    pub policies: Vec<Policy>,
}

/// Istio's `PeerAuthentication`: the mTLS mode of the workload and of single ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerAuthn {
    /// The workload's mode (`mtls.mode`).
    pub mode: MtlsMode,
    /// Modes of single destination ports (`portLevelMtls`), overriding `mode`.
    pub ports: Vec<(u16, MtlsMode)>,
}

impl PeerAuthn {
    /// The mode that applies to a request on `port`.
    pub fn mode_for(&self, port: Option<u16>) -> MtlsMode {
        port.and_then(|p| self.ports.iter().find(|(q, _)| *q == p))
            .map_or(self.mode, |(_, m)| *m)
    }
}

/// An mTLS mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MtlsMode {
    /// Inherit; with nothing to inherit from, as `PERMISSIVE`.
    #[default]
    Unset,
    /// Plain text.
    Disable,
    /// Plain text or mTLS.
    Permissive,
    /// mTLS only.
    Strict,
}

/// One `AuthorizationPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its name, quoted in denials and audit logs.
    pub name: String,
    /// What a match does.
    pub action: Action,
    /// The policy matches when one rule matches; never when there are none.
    pub rules: Vec<Rule>,
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request must match one ALLOW policy, if there is any.
    Allow,
    /// A match denies the request.
    Deny,
    /// A match is logged and counted; the decision does not change.
    Audit,
}

/// One rule: every part must match. An empty part matches everything, so a rule `{}` matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `from[].source`: one must match (each is its checks ANDed).
    pub from: Vec<Vec<Check>>,
    /// `to[].operation`: one must match (each is its checks ANDed).
    pub to: Vec<Vec<Check>>,
    /// `when[]`: all must match.
    pub when: Vec<Check>,
}

/// A request attribute against a field and its `not` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A text attribute.
    Text(TextAttr, Field<StringMatch>),
    /// An IP attribute.
    Ip(IpAttr, Field<IpBlock>),
    /// The destination port.
    Port(Field<u16>),
}

/// The text attributes a check can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextAttr {
    /// The peer's SPIFFE id without `spiffe://` (mTLS only).
    Principal,
    /// The namespace in the principal (`/ns/NAME/`).
    Namespace,
    /// `NAMESPACE/SERVICE_ACCOUNT` from the principal.
    ServiceAccount,
    /// `:authority`, lower case (patterns are lowered too).
    Host,
    /// `:method`.
    Method,
    /// `:path` without the query, normalized.
    Path,
    /// A request header (lower-case name); several values and comma-separated lists match element by element.
    Header(String),
}

/// The IP attributes a check can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAttr {
    /// The peer's address (`source.address`).
    Source,
    /// The original client: the last `x-forwarded-for` hop, else the peer.
    Remote,
    /// The local address the request arrived on.
    Destination,
}
