//! The `pluginConfig`: Istio's `PeerAuthentication` and `AuthorizationPolicy` specs in their JSON form (camelCase
//! field names), parsed and validated into [`Authz`]. Anything the filter cannot enforce as Istio would (an unknown
//! field, a `CUSTOM` action, JWT attributes, a bad CIDR or port) is refused with the path of the field, so the plugin
//! refuses to start instead of enforcing something else.
//!
//! ```json
//! { "peerAuthentication": {"mtls": {"mode": "STRICT"}},
//!   "policies": [{"name": "allow-productpage", "action": "ALLOW",
//!                 "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/productpage"]}}],
//!                            "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}]}] }
//! ```

use std::collections::{BTreeMap, HashSet};

use meshwork_sdk::config::ConfigError;
use serde::Deserialize;

use crate::{
    matcher::{Field, IpBlock, StringMatch},
    model::{Action, Authz, Check, IpAttr, MtlsMode, PeerAuthn, Policy, Rule, TextAttr},
};

/// The whole `pluginConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Wire {
    #[serde(default)]
    peer_authentication: Option<WirePeerAuthn>,
    #[serde(default)]
    policies: Vec<WirePolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WirePeerAuthn {
    #[serde(default)]
    mtls: Option<WireMtls>,
    #[serde(default)]
    port_level_mtls: BTreeMap<String, WireMtls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMtls {
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePolicy {
    name: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    rules: Vec<WireRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct WireRule {
    from: Option<Vec<WireFrom>>,
    to: Option<Vec<WireTo>>,
    when: Vec<WireCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFrom {
    source: WireSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTo {
    operation: WireOperation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
struct WireSource {
    principals: Vec<String>,
    not_principals: Vec<String>,
    request_principals: Vec<String>,
    not_request_principals: Vec<String>,
    namespaces: Vec<String>,
    not_namespaces: Vec<String>,
    service_accounts: Vec<String>,
    not_service_accounts: Vec<String>,
    ip_blocks: Vec<String>,
    not_ip_blocks: Vec<String>,
    remote_ip_blocks: Vec<String>,
    not_remote_ip_blocks: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
struct WireOperation {
    hosts: Vec<String>,
    not_hosts: Vec<String>,
    ports: Vec<String>,
    not_ports: Vec<String>,
    methods: Vec<String>,
    not_methods: Vec<String>,
    paths: Vec<String>,
    not_paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireCondition {
    key: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    not_values: Vec<String>,
}

/// Parses and validates a `pluginConfig` (JSON; empty means `{}`).
pub fn from_json(bytes: &[u8]) -> Result<Authz, ConfigError> {
    compile(meshwork_sdk::config::parse(bytes)?)
}

/// Validates a parsed `pluginConfig`; the error names the field (`policies[0].rules[1].from[0].source.ipBlocks[2]`).
/// Its text is what the plugin logs when it refuses to start.
pub fn compile(wire: Wire) -> Result<Authz, ConfigError> {
    let peer = peer_authn(wire.peer_authentication.unwrap_or_default())?;
    let mut names = HashSet::new();
    let mut policies = Vec::with_capacity(wire.policies.len());
    for (i, p) in wire.policies.into_iter().enumerate() {
        let at = format!("policies[{i}]");
        if p.name.is_empty() {
            return Err(invalid(
                format!("{at}.name"),
                "a policy needs a name (denials quote it)",
            ));
        }
        if p.name.chars().any(char::is_control) {
            return Err(invalid(
                format!("{at}.name"),
                format!(
                    "`{}` must be printable text (denials quote it in a header)",
                    p.name
                ),
            ));
        }
        if !names.insert(p.name.clone()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("`{}` is the name of an earlier policy too", p.name),
            ));
        }
        policies.push(policy(p, &at)?);
    }
    Ok(Authz { peer, policies })
}

fn peer_authn(w: WirePeerAuthn) -> Result<PeerAuthn, ConfigError> {
    let at = "peerAuthentication";
    let mode = mtls_mode(w.mtls.unwrap_or_default(), &format!("{at}.mtls"))?;
    let mut ports = Vec::with_capacity(w.port_level_mtls.len());
    for (key, m) in w.port_level_mtls {
        let at = format!("{at}.portLevelMtls.{key}");
        ports.push((port(&key).map_err(|e| invalid(&at, e))?, mtls_mode(m, &at)?));
    }
    Ok(PeerAuthn { mode, ports })
}

fn mtls_mode(m: WireMtls, at: &str) -> Result<MtlsMode, ConfigError> {
    match m.mode.as_deref() {
        None | Some("UNSET") => Ok(MtlsMode::Unset),
        Some("DISABLE") => Ok(MtlsMode::Disable),
        Some("PERMISSIVE") => Ok(MtlsMode::Permissive),
        Some("STRICT") => Ok(MtlsMode::Strict),
        Some(other) => Err(invalid(
            format!("{at}.mode"),
            format!("unknown mode `{other}`; expected UNSET, DISABLE, PERMISSIVE or STRICT"),
        )),
    }
}

fn policy(p: WirePolicy, at: &str) -> Result<Policy, ConfigError> {
    let action = match p.action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some("AUDIT") => Action::Audit,
        Some("CUSTOM") => {
            return Err(invalid(
                format!("{at}.action"),
                "CUSTOM (an external authorization provider) is not supported by meshwork; use ALLOW, DENY or AUDIT",
            ));
        }
        Some(other) => {
            return Err(invalid(
                format!("{at}.action"),
                format!("unknown action `{other}`; expected ALLOW, DENY or AUDIT"),
            ));
        }
    };
    let rules = p
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(r, &format!("{at}.rules[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Policy {
        name: p.name,
        action,
        rules,
    })
}

fn rule(r: WireRule, at: &str) -> Result<Rule, ConfigError> {
    let from = entries(
        r.from,
        &format!("{at}.from"),
        "source",
        |f| f.source,
        source,
    )?;
    let to = entries(
        r.to,
        &format!("{at}.to"),
        "operation",
        |t| t.operation,
        operation,
    )?;
    let when = r
        .when
        .into_iter()
        .enumerate()
        .map(|(i, c)| condition(c, &format!("{at}.when[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Rule { from, to, when })
}

/// The checks of each `from` or `to` entry. Left out, the part matches anything; an empty list is refused, as Istio
/// does, because it reads as "nothing" to some and "anything" to others.
fn entries<E, W>(
    list: Option<Vec<E>>,
    at: &str,
    what: &str,
    inner: impl Fn(E) -> W,
    compile: impl Fn(W, &str) -> Result<Vec<Check>, ConfigError>,
) -> Result<Vec<Vec<Check>>, ConfigError> {
    match list {
        None => Ok(Vec::new()),
        Some(list) if list.is_empty() => Err(invalid(
            at,
            format!("an empty list is not allowed; leave it out to match any {what}"),
        )),
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, e)| compile(inner(e), &format!("{at}[{i}].{what}")))
            .collect(),
    }
}

/// A refusal of `field` (its path in the `pluginConfig`).
fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: Some(field.into()),
        at: None,
        message: message.into(),
    }
}

/// Parses one value of a field.
type Parse<T> = fn(&str) -> Result<T, String>;

/// A text field of a source or operation: the attribute, the names of the field and its `not` field, their values,
/// and how to parse one.
type TextField = (
    TextAttr,
    (&'static str, &'static str),
    (Vec<String>, Vec<String>),
    Parse<StringMatch>,
);

/// Adds a check for each text field that is set.
fn push_texts(
    checks: &mut Vec<Check>,
    at: &str,
    texts: impl IntoIterator<Item = TextField>,
) -> Result<(), ConfigError> {
    for (attr, names, lists, parse) in texts {
        push(checks, field(at, names, lists, parse)?, |f| {
            Check::Text(attr, f)
        });
    }
    Ok(())
}

fn source(s: WireSource, at: &str) -> Result<Vec<Check>, ConfigError> {
    for (name, list) in [
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
    ] {
        if !list.is_empty() {
            return Err(invalid(
                format!("{at}.{name}"),
                "request principals come from request authentication (JWT), which meshwork does not have yet",
            ));
        }
    }
    let identities =
        s.principals.len() + s.not_principals.len() + s.namespaces.len() + s.not_namespaces.len();
    if identities > 0 && !(s.service_accounts.is_empty() && s.not_service_accounts.is_empty()) {
        return Err(invalid(
            at,
            "serviceAccounts cannot be combined with principals or namespaces (Istio refuses it too)",
        ));
    }
    let mut checks = Vec::new();
    let texts: [TextField; 3] = [
        (
            TextAttr::Principal,
            ("principals", "notPrincipals"),
            (s.principals, s.not_principals),
            StringMatch::parse,
        ),
        (
            TextAttr::Namespace,
            ("namespaces", "notNamespaces"),
            (s.namespaces, s.not_namespaces),
            StringMatch::parse,
        ),
        (
            TextAttr::ServiceAccount,
            ("serviceAccounts", "notServiceAccounts"),
            (s.service_accounts, s.not_service_accounts),
            service_account,
        ),
    ];
    push_texts(&mut checks, at, texts)?;
    let ips = [
        (
            IpAttr::Source,
            ("ipBlocks", "notIpBlocks"),
            (s.ip_blocks, s.not_ip_blocks),
        ),
        (
            IpAttr::Remote,
            ("remoteIpBlocks", "notRemoteIpBlocks"),
            (s.remote_ip_blocks, s.not_remote_ip_blocks),
        ),
    ];
    for (attr, names, lists) in ips {
        push(&mut checks, field(at, names, lists, IpBlock::parse)?, |f| {
            Check::Ip(attr, f)
        });
    }
    non_empty(checks, at, "source")
}

fn operation(o: WireOperation, at: &str) -> Result<Vec<Check>, ConfigError> {
    let mut checks = Vec::new();
    let texts: [TextField; 3] = [
        (
            TextAttr::Host,
            ("hosts", "notHosts"),
            (o.hosts, o.not_hosts),
            host_pattern,
        ),
        (
            TextAttr::Method,
            ("methods", "notMethods"),
            (o.methods, o.not_methods),
            StringMatch::parse,
        ),
        (
            TextAttr::Path,
            ("paths", "notPaths"),
            (o.paths, o.not_paths),
            path_pattern,
        ),
    ];
    push_texts(&mut checks, at, texts)?;
    push(
        &mut checks,
        field(at, ("ports", "notPorts"), (o.ports, o.not_ports), port)?,
        Check::Port,
    );
    non_empty(checks, at, "operation")
}

fn condition(c: WireCondition, at: &str) -> Result<Check, ConfigError> {
    let key = c.key.as_str();
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(invalid(
            at,
            format!("condition `{key}` needs values or notValues"),
        ));
    }
    let names = ("values", "notValues");
    let lists = (c.values, c.not_values);
    let text = |attr, lists| {
        Ok(Check::Text(
            attr,
            field(at, names, lists, StringMatch::parse)?,
        ))
    };
    let ip = |attr, lists| Ok(Check::Ip(attr, field(at, names, lists, IpBlock::parse)?));
    if let Some(rest) = key.strip_prefix("request.headers[") {
        let name = rest
            .strip_suffix(']')
            .filter(|n| !n.is_empty() && !n.contains([' ', '[', ']']))
            .ok_or_else(|| {
                invalid(
                    format!("{at}.key"),
                    format!("`{key}` must be request.headers[NAME]"),
                )
            })?;
        return text(TextAttr::Header(name.to_ascii_lowercase()), lists);
    }
    match key {
        "source.ip" => ip(IpAttr::Source, lists),
        "remote.ip" => ip(IpAttr::Remote, lists),
        "destination.ip" => ip(IpAttr::Destination, lists),
        "destination.port" => Ok(Check::Port(field(at, names, lists, port)?)),
        "source.namespace" => text(TextAttr::Namespace, lists),
        "source.principal" => text(TextAttr::Principal, lists),
        k if k.starts_with("request.auth.") => Err(invalid(
            format!("{at}.key"),
            format!(
                "`{k}` comes from request authentication (JWT), which meshwork does not have yet"
            ),
        )),
        "connection.sni" => Err(invalid(
            format!("{at}.key"),
            "`connection.sni` needs TLS on the listener, which meshwork does not have yet",
        )),
        k => Err(invalid(
            format!("{at}.key"),
            format!(
                "unsupported condition key `{k}`; supported: request.headers[NAME], source.ip, remote.ip, \
             source.namespace, source.principal, destination.ip, destination.port"
            ),
        )),
    }
}

/// A field and its `not` field, each value parsed by `parse`; errors name `AT.FIELD[INDEX]`.
fn field<T>(
    at: &str,
    (name, not_name): (&str, &str),
    (values, not_values): (Vec<String>, Vec<String>),
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Field<T>, ConfigError> {
    let list = |name: &str, values: Vec<String>| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| parse(v).map_err(|e| invalid(format!("{at}.{name}[{i}]"), e)))
            .collect::<Result<Vec<T>, ConfigError>>()
    };
    Ok(Field {
        values: list(name, values)?,
        not_values: list(not_name, not_values)?,
    })
}

/// Adds the check for `f` unless the field is empty.
fn push<T>(checks: &mut Vec<Check>, f: Field<T>, make: impl FnOnce(Field<T>) -> Check) {
    if !f.is_empty() {
        checks.push(make(f));
    }
}

/// Istio refuses an empty `source` or `operation`: it would read as "anything" to some and "nothing" to others.
fn non_empty(checks: Vec<Check>, at: &str, what: &str) -> Result<Vec<Check>, ConfigError> {
    if checks.is_empty() {
        return Err(invalid(
            at,
            format!("an empty {what} is not allowed; set at least one field"),
        ));
    }
    Ok(checks)
}

fn port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{text}` is not a port number (1-65535)"))
}

/// `NAMESPACE/NAME`, each part a plain name.
fn service_account(text: &str) -> Result<StringMatch, String> {
    match text.split_once('/') {
        Some((ns, sa))
            if !ns.is_empty() && !sa.is_empty() && !text.contains('*') && !sa.contains('/') =>
        {
            Ok(StringMatch::Exact(text.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not NAMESPACE/SERVICE_ACCOUNT (e.g. default/productpage)"
        )),
    }
}

/// Hosts compare without regard to case.
fn host_pattern(text: &str) -> Result<StringMatch, String> {
    StringMatch::parse(text).map(|m| m.to_lowercase())
}

fn path_pattern(text: &str) -> Result<StringMatch, String> {
    if text.contains(['{', '}']) {
        return Err(format!(
            "`{text}`: path templates ({{*}}, {{**}}) are not supported; use a prefix or suffix"
        ));
    }
    StringMatch::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the docs, every field present.
    const FULL: &str = r#"{
      "peerAuthentication": {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"15021": {"mode": "PERMISSIVE"}}},
      "policies": [{"name": "allow-productpage", "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/productpage"], "notPrincipals": [],
                                        "namespaces": [], "notNamespaces": [], "serviceAccounts": [], "notServiceAccounts": [],
                                        "ipBlocks": ["10.0.0.0/8"], "notIpBlocks": [], "remoteIpBlocks": [], "notRemoteIpBlocks": [],
                                        "requestPrincipals": [], "notRequestPrincipals": []}}],
                   "to": [{"operation": {"hosts": ["Reviews*"], "notHosts": [], "ports": ["9080"], "notPorts": [],
                                         "methods": ["GET"], "notMethods": [], "paths": ["/api/*"], "notPaths": []}}],
                   "when": [{"key": "request.headers[X-Token]", "values": ["a"], "notValues": []}]}]}]
    }"#;

    #[test]
    fn the_full_example_compiles_to_its_model() {
        let exact = |s: &str| StringMatch::Exact(s.into());
        let only = |values| Field {
            values,
            not_values: vec![],
        };
        let got = from_json(FULL.as_bytes()).expect("valid");
        let want = Authz {
            peer: PeerAuthn {
                mode: MtlsMode::Strict,
                ports: vec![(15021, MtlsMode::Permissive)],
            },
            policies: vec![Policy {
                name: "allow-productpage".into(),
                action: Action::Allow,
                rules: vec![Rule {
                    from: vec![vec![
                        Check::Text(
                            TextAttr::Principal,
                            only(vec![exact("cluster.local/ns/default/sa/productpage")]),
                        ),
                        Check::Ip(
                            IpAttr::Source,
                            Field {
                                values: vec![IpBlock::parse("10.0.0.0/8").expect("a block")],
                                not_values: vec![],
                            },
                        ),
                    ]],
                    to: vec![vec![
                        Check::Text(
                            TextAttr::Host,
                            only(vec![StringMatch::Prefix("reviews".into())]),
                        ),
                        Check::Text(TextAttr::Method, only(vec![exact("GET")])),
                        Check::Text(
                            TextAttr::Path,
                            only(vec![StringMatch::Prefix("/api/".into())]),
                        ),
                        Check::Port(Field {
                            values: vec![9080],
                            not_values: vec![],
                        }),
                    ]],
                    when: vec![Check::Text(
                        TextAttr::Header("x-token".into()),
                        only(vec![exact("a")]),
                    )],
                }],
            }],
        };
        assert_eq!(got, want);
        assert_eq!(from_json(b"").expect("empty"), Authz::default());
        assert_eq!(from_json(b"{}").expect("{}"), Authz::default());
    }

    /// Pairs of lines: `WHERE JSON`, then `=> PART OF THE ERROR`. WHERE says what the JSON is: the whole `config`,
    /// or the `rule`, `source`, `operation` or `when` entry of a policy `p`.
    const BAD: &str = r#"
        config     {"policy": []}
        => unknown field `policy`
        config     {"peerAuthentication": {"mtls": {"mode": "STRICT"}, "selector": {}}}
        => unknown field `selector`
        config     {"peerAuthentication": {"mtls": {"mod": "STRICT"}}}
        => unknown field `mod`
        config     {"policies": [{"name": "p", "selector": {}}]}
        => unknown field `selector`
        config     {"policies": [{"name": "p", "action": "CUSTOM", "provider": {"name": "x"}}]}
        => unknown field `provider`
        rule       {"form": []}
        => unknown field `form`
        source     {"principal": ["a"]}
        => unknown field `principal`
        source     {"trustDomains": ["a"]}
        => unknown field `trustDomains`
        operation  {"path": ["/a"]}
        => unknown field `path`
        when       {"key": "source.ip", "value": ["1.2.3.4"]}
        => unknown field `value`
        config     {"policies": [{"rules": []}]}
        => missing field `name`
        rule       {"from": [{}]}
        => missing field `source`
        rule       {"to": [{}]}
        => missing field `operation`
        when       {"values": ["a"]}
        => missing field `key`
        operation  {"ports": [8080]}
        => invalid type: integer `8080`, expected a string
        config     {"policies": [{"name": "p", "action": "CUSTOM"}]}
        => policies[0].action: CUSTOM (an external authorization provider) is not supported
        config     {"policies": [{"name": "p", "action": "PERMIT"}]}
        => policies[0].action: unknown action `PERMIT`; expected ALLOW, DENY or AUDIT
        config     {"policies": [{"name": "p", "action": "allow"}]}
        => policies[0].action: unknown action `allow`
        config     {"peerAuthentication": {"mtls": {"mode": "MUTUAL"}}}
        => peerAuthentication.mtls.mode: unknown mode `MUTUAL`
        config     {"peerAuthentication": {"portLevelMtls": {"http": {"mode": "STRICT"}}}}
        => peerAuthentication.portLevelMtls.http: `http` is not a port number
        config     {"peerAuthentication": {"portLevelMtls": {"80": {"mode": "strict"}}}}
        => peerAuthentication.portLevelMtls.80.mode: unknown mode `strict`
        config     {"policies": [{"name": ""}]}
        => policies[0].name: a policy needs a name
        config     {"policies": [{"name": "a"}, {"name": "a", "action": "DENY"}]}
        => policies[1].name: `a` is the name of an earlier policy too
        config     {"policies": [{"name": "a\tb"}]}
        => policies[0].name: `a	b` must be printable text
        source     {"ipBlocks": ["10.0.0.0/8", "10.0.0.0/33"]}
        => policies[0].rules[0].from[0].source.ipBlocks[1]: `10.0.0.0/33` is not an IP address or a CIDR block
        source     {"notRemoteIpBlocks": ["localhost"]}
        => source.notRemoteIpBlocks[0]: `localhost` is not an IP address
        source     {"principals": [""]}
        => source.principals[0]: an empty value matches nothing
        source     {"namespaces": ["a*b"]}
        => source.namespaces[0]: `a*b`: `*` is allowed only
        source     {"serviceAccounts": ["productpage"]}
        => source.serviceAccounts[0]: `productpage` is not NAMESPACE/SERVICE_ACCOUNT
        source     {"notServiceAccounts": ["default/*"]}
        => source.notServiceAccounts[0]: `default/*` is not NAMESPACE/SERVICE_ACCOUNT
        source     {"requestPrincipals": ["issuer/subject"]}
        => source.requestPrincipals: request principals come from request authentication (JWT)
        source     {"notRequestPrincipals": ["*"]}
        => source.notRequestPrincipals: request principals come from
        source     {}
        => policies[0].rules[0].from[0].source: an empty source is not allowed
        rule       {"from": []}
        => policies[0].rules[0].from: an empty list is not allowed; leave it out to match any source
        rule       {"to": []}
        => policies[0].rules[0].to: an empty list is not allowed; leave it out to match any operation
        source     {"serviceAccounts": ["default/web"], "notNamespaces": ["prod"]}
        => from[0].source: serviceAccounts cannot be combined with principals or namespaces
        source     {"principals": [], "requestPrincipals": []}
        => from[0].source: an empty source is not allowed
        operation  {}
        => policies[0].rules[0].to[0].operation: an empty operation is not allowed
        operation  {"ports": ["0"]}
        => operation.ports[0]: `0` is not a port number (1-65535)
        operation  {"notPorts": ["65536"]}
        => operation.notPorts[0]: `65536` is not a port number
        operation  {"paths": ["/a/{*}/b"]}
        => operation.paths[0]: `/a/{*}/b`: path templates ({*}, {**}) are not supported
        operation  {"notHosts": ["*a*"]}
        => operation.notHosts[0]: `*a*`: `*` is allowed only
        operation  {"methods": ["GET", ""]}
        => operation.methods[1]: an empty value
        when       {"key": "request.auth.claims[groups]", "values": ["admin"]}
        => policies[0].rules[0].when[0].key: `request.auth.claims[groups]` comes from request authentication (JWT)
        when       {"key": "request.auth.principal", "values": ["a"]}
        => when[0].key: `request.auth.principal` comes from request authentication
        when       {"key": "connection.sni", "values": ["a"]}
        => when[0].key: `connection.sni` needs TLS
        when       {"key": "source.user", "values": ["a"]}
        => when[0].key: unsupported condition key `source.user`
        when       {"key": "request.headers[]", "values": ["a"]}
        => when[0].key: `request.headers[]` must be request.headers[NAME]
        when       {"key": "request.headers[x-a", "values": ["a"]}
        => when[0].key: `request.headers[x-a` must be
        when       {"key": "source.ip"}
        => when[0]: condition `source.ip` needs values or notValues
        when       {"key": "source.ip", "values": ["10.0.0.300"]}
        => when[0].values[0]: `10.0.0.300` is not an IP address
        when       {"key": "destination.port", "notValues": ["https"]}
        => when[0].notValues[0]: `https` is not a port number
        when       {"key": "source.namespace", "values": ["*a*"]}
        => when[0].values[0]: `*a*`
    "#;

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        let lines: Vec<&str> = BAD
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len() % 2, 0, "pairs of lines");
        for pair in lines.chunks(2) {
            let (kind, json) = pair[0].split_once(' ').expect("WHERE JSON");
            let json = json.trim();
            let rule = |r: &str| format!(r#"{{"policies": [{{"name": "p", "rules": [{r}]}}]}}"#);
            let config = match kind {
                "config" => json.to_string(),
                "rule" => rule(json),
                "source" => rule(&format!(r#"{{"from": [{{"source": {json}}}]}}"#)),
                "operation" => rule(&format!(r#"{{"to": [{{"operation": {json}}}]}}"#)),
                "when" => rule(&format!(r#"{{"when": [{json}]}}"#)),
                other => panic!("no case kind {other}"),
            };
            let want = pair[1].strip_prefix("=> ").expect("=> ERROR");
            let err = from_json(config.as_bytes()).expect_err(&config);
            assert!(
                err.to_string().starts_with("invalid pluginConfig at `"),
                "{config}: {err}"
            );
            let got = format!("{}: {}", err.field.as_deref().unwrap_or("-"), err.message);
            assert!(got.contains(want), "{config}:\n  got  {got}\n  want {want}");
        }
    }

    #[test]
    fn patterns_are_parsed_per_field() {
        let cfg = from_json(
            br#"{"policies": [{"name": "p", "rules": [{"to": [{"operation": {"notHosts": ["*.Example.COM"]}}],
                "when": [{"key": "destination.port", "notValues": ["15020"]}, {"key": "remote.ip", "values": ["::1"]}]}]}]}"#,
        )
        .expect("valid");
        let rule = &cfg.policies[0].rules[0];
        assert_eq!(
            rule.to[0],
            vec![Check::Text(
                TextAttr::Host,
                Field {
                    values: vec![],
                    not_values: vec![StringMatch::Suffix(".example.com".into())],
                }
            )]
        );
        assert_eq!(
            rule.when[0],
            Check::Port(Field {
                values: vec![],
                not_values: vec![15020],
            })
        );
        assert!(matches!(&rule.when[1], Check::Ip(IpAttr::Remote, f) if f.values.len() == 1));
    }
}
