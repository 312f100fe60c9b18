//! The authorization decision: a pure function of the configuration and the request's attributes.
//!
//! As in Istio: peer authentication first (STRICT needs mTLS), then DENY policies (one match denies), then ALLOW
//! policies (when there is any, one must match). AUDIT policies are evaluated for every request and change nothing;
//! the verdict lists the ones that matched.

use std::borrow::Cow;

use crate::{
    matcher::{Field, StringMatch},
    model::{Action, Authz, Check, IpAttr, MtlsMode, Policy, Rule, TextAttr},
    request::Request,
};

/// What to do with a request, and which AUDIT policies it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Allow or deny.
    pub decision: Decision<'a>,
    /// The AUDIT policies that matched, in configuration order.
    pub audited: Vec<&'a str>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Let the request through.
    Allow,
    /// Answer 403, for this reason.
    Deny(Denial<'a>),
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial<'a> {
    /// Peer authentication is STRICT and the connection is not mTLS.
    MtlsRequired,
    /// This DENY policy matched.
    Policy(&'a str),
    /// There are ALLOW policies and none matched.
    NoAllowMatch,
}

/// The verdict for `req` under `authz`.
pub fn evaluate<'a>(authz: &'a Authz, req: &Request) -> Verdict<'a> {
    let audited = with_action(authz, Action::Audit)
        .filter(|p| matches(p, req))
        .map(|p| p.name.as_str())
        .collect();
    Verdict {
        decision: decide(authz, req),
        audited,
    }
}

fn decide<'a>(authz: &'a Authz, req: &Request) -> Decision<'a> {
    if authz.peer.mode_for(req.destination_port) == MtlsMode::Strict && !req.mtls {
        return Decision::Deny(Denial::MtlsRequired);
    }
    if let Some(p) = with_action(authz, Action::Deny).find(|p| matches(p, req)) {
        return Decision::Deny(Denial::Policy(&p.name));
    }
    let mut allows = with_action(authz, Action::Allow).peekable();
    if allows.peek().is_none() || allows.any(|p| matches(p, req)) {
        Decision::Allow
    } else {
        Decision::Deny(Denial::NoAllowMatch)
    }
}

fn with_action(authz: &Authz, action: Action) -> impl Iterator<Item = &Policy> {
    authz.policies.iter().filter(move |p| p.action == action)
}

/// A policy matches when one of its rules does; a policy without rules never matches.
fn matches(policy: &Policy, req: &Request) -> bool {
    policy.rules.iter().any(|r| rule_matches(r, req))
}

/// Every part of a rule must match: one `from` entry (each entry all its checks), one `to` entry, every `when`.
fn rule_matches(rule: &Rule, req: &Request) -> bool {
    let one_of = |entries: &[Vec<Check>]| {
        entries.is_empty()
            || entries
                .iter()
                .any(|checks| checks.iter().all(|c| check(c, req)))
    };
    one_of(&rule.from) && one_of(&rule.to) && rule.when.iter().all(|c| check(c, req))
}

fn check(c: &Check, req: &Request) -> bool {
    match c {
        Check::Text(attr, field) => text(attr, field, req),
        Check::Ip(attr, field) => {
            let ip = match attr {
                IpAttr::Source => req.source_ip,
                IpAttr::Remote => req.remote_ip,
                IpAttr::Destination => req.destination_ip,
            };
            field.check(ip, |block, ip| block.contains(ip))
        }
        Check::Port(field) => field.check(req.destination_port, |p, port| *p == port),
    }
}

fn text(attr: &TextAttr, field: &Field<StringMatch>, req: &Request) -> bool {
    let hit = |m: &StringMatch, v: &str| m.matches(v);
    match attr {
        TextAttr::Principal => field.check(req.principal.as_deref(), hit),
        TextAttr::Namespace => field.check(req.namespace(), hit),
        TextAttr::ServiceAccount => field.check(req.service_account().as_deref(), hit),
        TextAttr::Host => field.check(req.host.as_deref(), hit),
        TextAttr::Method => field.check(req.method.as_deref(), hit),
        TextAttr::Path => field.check(req.path.as_deref(), hit),
        TextAttr::Header(name) => {
            let values = req.header_values(name);
            field.check(values.iter().map(|v: &Cow<'_, str>| &**v), hit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn authz(json: &str) -> Authz {
        config::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// The request the tables start from: productpage (mTLS) calling `GET reviews:9080/api/v1` on port 9080.
    fn base() -> Request {
        Request {
            mtls: true,
            principal: Some("cluster.local/ns/default/sa/productpage".into()),
            source_ip: "10.1.2.3".parse().ok(),
            remote_ip: "203.0.113.9".parse().ok(),
            destination_ip: "10.9.9.9".parse().ok(),
            destination_port: Some(9080),
            host: Some("reviews:9080".into()),
            method: Some("GET".into()),
            path: Some("/api/v1".into()),
            headers: vec![
                ("x-token".into(), "abc".into()),
                ("x-list".into(), "a, b".into()),
            ],
        }
    }

    /// The verdict in short: `allow`, `deny NAME`, `no-allow`, `mtls`, then ` audit[A,B]` if any AUDIT matched.
    fn show(v: &Verdict<'_>) -> String {
        let d = match v.decision {
            Decision::Allow => "allow".to_string(),
            Decision::Deny(Denial::Policy(p)) => format!("deny {p}"),
            Decision::Deny(Denial::NoAllowMatch) => "no-allow".into(),
            Decision::Deny(Denial::MtlsRequired) => "mtls".into(),
        };
        if v.audited.is_empty() {
            d
        } else {
            format!("{d} audit[{}]", v.audited.join(","))
        }
    }

    type Edit = fn(&mut Request);

    /// One ALLOW policy whose single rule has `part` (`"from"`, `"to"` or `"when"`) set to `entries`; each case is a
    /// request edit and whether the request is allowed.
    fn run_allow_table(part: &str, table: &[(&str, Edit, bool)]) {
        for (entries, edit, want) in table {
            let cfg = authz(&format!(
                r#"{{"policies": [{{"name": "p", "action": "ALLOW", "rules": [{{"{part}": {entries}}}]}}]}}"#
            ));
            let mut req = base();
            edit(&mut req);
            let got = evaluate(&cfg, &req).decision == Decision::Allow;
            assert_eq!(got, *want, "{part}: {entries} for {req:?}");
        }
    }

    fn same(_: &mut Request) {}

    #[test]
    fn source_fields() {
        let no_mtls: Edit = |r| {
            r.mtls = false;
            r.principal = None;
        };
        let table: &[(&str, Edit, bool)] = &[
            // principals: exact, prefix, suffix, presence; a principal needs mTLS.
            (
                r#"[{"source": {"principals": ["cluster.local/ns/default/sa/productpage"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"principals": ["cluster.local/ns/default/sa/ratings"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"principals": ["x", "cluster.local/ns/default/sa/productpage"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"principals": ["cluster.local/ns/default/*"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"principals": ["cluster.local/ns/other/*"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"principals": ["*/sa/productpage"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"principals": ["*/sa/reviews"]}}]"#,
                same,
                false,
            ),
            (r#"[{"source": {"principals": ["*"]}}]"#, same, true),
            (r#"[{"source": {"principals": ["*"]}}]"#, no_mtls, false),
            (r#"[{"source": {"notPrincipals": ["*"]}}]"#, no_mtls, true),
            (r#"[{"source": {"notPrincipals": ["*"]}}]"#, same, false),
            (
                r#"[{"source": {"notPrincipals": ["cluster.local/ns/default/sa/productpage"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notPrincipals": ["cluster.local/ns/default/sa/ratings"]}}]"#,
                same,
                true,
            ),
            // namespaces from the principal's /ns/NAME/ segment.
            (r#"[{"source": {"namespaces": ["default"]}}]"#, same, true),
            (r#"[{"source": {"namespaces": ["prod"]}}]"#, same, false),
            (r#"[{"source": {"namespaces": ["def*"]}}]"#, same, true),
            (r#"[{"source": {"namespaces": ["*ult"]}}]"#, same, true),
            (r#"[{"source": {"namespaces": ["*"]}}]"#, no_mtls, false),
            (
                r#"[{"source": {"notNamespaces": ["default"]}}]"#,
                same,
                false,
            ),
            (r#"[{"source": {"notNamespaces": ["prod"]}}]"#, same, true),
            (
                r#"[{"source": {"notNamespaces": ["default"]}}]"#,
                no_mtls,
                true,
            ),
            // serviceAccounts: NAMESPACE/NAME.
            (
                r#"[{"source": {"serviceAccounts": ["default/productpage"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"serviceAccounts": ["prod/productpage"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notServiceAccounts": ["default/productpage"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notServiceAccounts": ["default/ratings"]}}]"#,
                same,
                true,
            ),
            // ipBlocks: the peer's address, v4 and v6, CIDR or single address.
            (r#"[{"source": {"ipBlocks": ["10.0.0.0/8"]}}]"#, same, true),
            (r#"[{"source": {"ipBlocks": ["10.1.2.3"]}}]"#, same, true),
            (
                r#"[{"source": {"ipBlocks": ["10.1.2.4", "192.168.0.0/16"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"ipBlocks": ["2001:db8::/32"]}}]"#,
                |r| r.source_ip = "2001:db8:5::1".parse().ok(),
                true,
            ),
            (
                r#"[{"source": {"ipBlocks": ["2001:db8::/32"]}}]"#,
                |r| r.source_ip = "2001:db9::1".parse().ok(),
                false,
            ),
            (
                r#"[{"source": {"ipBlocks": ["2001:db8::/32"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notIpBlocks": ["10.1.0.0/16"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notIpBlocks": ["10.2.0.0/16"]}}]"#,
                same,
                true,
            ),
            (r#"[{"source": {"notIpBlocks": ["::/0"]}}]"#, same, true),
            // remoteIpBlocks: the original client.
            (
                r#"[{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"remoteIpBlocks": ["10.0.0.0/8"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notRemoteIpBlocks": ["203.0.113.9"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"notRemoteIpBlocks": ["198.51.100.0/24"]}}]"#,
                same,
                true,
            ),
            // Fields of one source are ANDed; values and not-values of one field too.
            (
                r#"[{"source": {"namespaces": ["default"], "ipBlocks": ["10.0.0.0/8"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"source": {"namespaces": ["default"], "ipBlocks": ["192.168.0.0/16"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"principals": ["cluster.local/*"], "notPrincipals": ["*/sa/productpage"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.1.0.0/16"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"source": {"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.2.0.0/16"]}}]"#,
                same,
                true,
            ),
        ];
        run_allow_table("from", table);
    }

    #[test]
    fn operation_fields() {
        let table: &[(&str, Edit, bool)] = &[
            // hosts: `:authority`, without regard to case; the port is part of it.
            (
                r#"[{"operation": {"hosts": ["reviews:9080"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"operation": {"hosts": ["REVIEWS:9080"]}}]"#,
                same,
                true,
            ),
            (r#"[{"operation": {"hosts": ["reviews"]}}]"#, same, false),
            (
                r#"[{"operation": {"hosts": ["reviews", "reviews:*"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"operation": {"hosts": ["*.example.com"]}}]"#,
                |r| r.host = Some("api.example.com".into()),
                true,
            ),
            (
                r#"[{"operation": {"hosts": ["*.example.com"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"operation": {"hosts": ["*"]}}]"#,
                |r| r.host = None,
                false,
            ),
            (
                r#"[{"operation": {"notHosts": ["reviews:*"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"operation": {"notHosts": ["ratings:*"]}}]"#,
                same,
                true,
            ),
            // ports: destination.port.
            (r#"[{"operation": {"ports": ["9080"]}}]"#, same, true),
            (r#"[{"operation": {"ports": ["80", "443"]}}]"#, same, false),
            (
                r#"[{"operation": {"ports": ["9080"]}}]"#,
                |r| r.destination_port = None,
                false,
            ),
            (r#"[{"operation": {"notPorts": ["9080"]}}]"#, same, false),
            (r#"[{"operation": {"notPorts": ["15020"]}}]"#, same, true),
            // methods: exact and case-sensitive, patterns allowed.
            (
                r#"[{"operation": {"methods": ["GET", "HEAD"]}}]"#,
                same,
                true,
            ),
            (r#"[{"operation": {"methods": ["get"]}}]"#, same, false),
            (r#"[{"operation": {"methods": ["POST"]}}]"#, same, false),
            (
                r#"[{"operation": {"methods": ["P*"]}}]"#,
                |r| r.method = Some("PUT".into()),
                true,
            ),
            (r#"[{"operation": {"notMethods": ["GET"]}}]"#, same, false),
            (r#"[{"operation": {"notMethods": ["DELETE"]}}]"#, same, true),
            // paths: exact, prefix, suffix, presence, on the normalized path.
            (r#"[{"operation": {"paths": ["/api/v1"]}}]"#, same, true),
            (r#"[{"operation": {"paths": ["/api"]}}]"#, same, false),
            (r#"[{"operation": {"paths": ["/api/*"]}}]"#, same, true),
            (r#"[{"operation": {"paths": ["/admin/*"]}}]"#, same, false),
            (r#"[{"operation": {"paths": ["*/v1"]}}]"#, same, true),
            (r#"[{"operation": {"paths": ["*.css"]}}]"#, same, false),
            (r#"[{"operation": {"paths": ["*"]}}]"#, same, true),
            (r#"[{"operation": {"notPaths": ["/api/*"]}}]"#, same, false),
            (r#"[{"operation": {"notPaths": ["/admin/*"]}}]"#, same, true),
            // Fields of one operation are ANDed.
            (
                r#"[{"operation": {"methods": ["GET"], "paths": ["/api/*"], "ports": ["9080"]}}]"#,
                same,
                true,
            ),
            (
                r#"[{"operation": {"methods": ["GET"], "paths": ["/api/*"], "ports": ["80"]}}]"#,
                same,
                false,
            ),
            (
                r#"[{"operation": {"paths": ["/api/*"], "notPaths": ["/api/v1"]}}]"#,
                same,
                false,
            ),
        ];
        run_allow_table("to", table);
    }

    #[test]
    fn conditions() {
        let table: &[(&str, Edit, bool)] = &[
            (
                r#"[{"key": "request.headers[x-token]", "values": ["abc"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[X-Token]", "values": ["abc"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["ab*"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["*bc"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["xyz"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["*"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-missing]", "values": ["*"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "request.headers[x-missing]", "notValues": ["*"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "notValues": ["abc"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "request.headers[x-list]", "values": ["b"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-list]", "values": ["a, b"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-list]", "notValues": ["b"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "source.ip", "values": ["10.0.0.0/8"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "source.ip", "notValues": ["10.1.2.3"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "remote.ip", "values": ["203.0.113.0/24"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "remote.ip", "values": ["10.0.0.0/8"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "destination.ip", "values": ["10.9.9.9"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "destination.ip", "notValues": ["10.9.0.0/16"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "destination.port", "values": ["9080"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "destination.port", "values": ["80"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "destination.port", "notValues": ["9080"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "source.namespace", "values": ["default"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "source.namespace", "notValues": ["default"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "source.principal", "values": ["*/sa/productpage"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "source.principal", "values": ["*"]}]"#,
                |r| r.principal = None,
                false,
            ),
            (
                r#"[{"key": "source.principal", "notValues": ["*/sa/productpage"]}]"#,
                same,
                false,
            ),
            // Values of one condition are ORed, conditions ANDed.
            (
                r#"[{"key": "request.headers[x-token]", "values": ["nope", "abc"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["abc"]}, {"key": "destination.port", "values": ["9080"]}]"#,
                same,
                true,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["abc"]}, {"key": "destination.port", "values": ["80"]}]"#,
                same,
                false,
            ),
            (
                r#"[{"key": "request.headers[x-token]", "values": ["a*"], "notValues": ["abc"]}]"#,
                same,
                false,
            ),
        ];
        run_allow_table("when", table);
    }

    #[test]
    fn policy_semantics() {
        let get_api = r#"{"to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}"#;
        let from_ratings =
            r#"{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/ratings"]}}]}"#;
        let post = r#"{"to": [{"operation": {"methods": ["POST"]}}]}"#;
        let table: &[(&str, &str, Edit, &str)] = &[
            ("no policies at all", "[]", same, "allow"),
            (
                "no ALLOW policy: allowed",
                r#"[{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}]"#,
                same,
                "allow",
            ),
            (
                "a DENY match",
                r#"[{"name": "d", "action": "DENY", "rules": [{}]}]"#,
                same,
                "deny d",
            ),
            (
                "the action defaults to ALLOW",
                &format!(r#"[{{"name": "a", "rules": [{get_api}]}}]"#),
                same,
                "allow",
            ),
            (
                "ALLOW without a match",
                &format!(r#"[{{"name": "a", "rules": [{post}]}}]"#),
                same,
                "no-allow",
            ),
            (
                "ALLOW with rules [] allows nothing",
                r#"[{"name": "a", "action": "ALLOW", "rules": []}]"#,
                same,
                "no-allow",
            ),
            (
                "ALLOW without rules allows nothing",
                r#"[{"name": "a", "action": "ALLOW"}]"#,
                same,
                "no-allow",
            ),
            (
                "ALLOW with a rule {} allows all",
                r#"[{"name": "a", "action": "ALLOW", "rules": [{}]}]"#,
                same,
                "allow",
            ),
            (
                "DENY with rules [] denies nothing",
                r#"[{"name": "d", "action": "DENY", "rules": []}]"#,
                same,
                "allow",
            ),
            (
                "DENY without rules denies nothing",
                r#"[{"name": "d", "action": "DENY"}]"#,
                same,
                "allow",
            ),
            (
                "DENY before ALLOW",
                &format!(
                    r#"[{{"name": "a", "action": "ALLOW", "rules": [{{}}]}}, {{"name": "d", "action": "DENY", "rules": [{get_api}]}}]"#
                ),
                same,
                "deny d",
            ),
            (
                "the first matching DENY is named",
                r#"[{"name": "d1", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
                    {"name": "d2", "action": "DENY", "rules": [{}]}, {"name": "d3", "action": "DENY", "rules": [{}]}]"#,
                same,
                "deny d2",
            ),
            (
                "one of several ALLOW policies is enough",
                &format!(
                    r#"[{{"name": "a1", "rules": [{post}]}}, {{"name": "a2", "rules": [{get_api}]}}]"#
                ),
                same,
                "allow",
            ),
            (
                "an ALLOW-nothing policy next to a matching one",
                &format!(
                    r#"[{{"name": "none", "rules": []}}, {{"name": "a", "rules": [{get_api}]}}]"#
                ),
                same,
                "allow",
            ),
            (
                "rules are ORed",
                &format!(r#"[{{"name": "a", "rules": [{from_ratings}, {get_api}]}}]"#),
                same,
                "allow",
            ),
            (
                "from and to of one rule are ANDed",
                r#"[{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"]}}], "to": [{"operation": {"methods": ["POST"]}}]}]}]"#,
                same,
                "no-allow",
            ),
            (
                "from entries are ORed",
                r#"[{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}, {"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}]"#,
                same,
                "allow",
            ),
            (
                "to entries are ORed",
                r#"[{"name": "a", "rules": [{"to": [{"operation": {"methods": ["POST"]}}, {"operation": {"paths": ["/api/*"]}}]}]}]"#,
                same,
                "allow",
            ),
            (
                "from, to and when all needed",
                r#"[{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"]}}], "to": [{"operation": {"methods": ["GET"]}}],
                    "when": [{"key": "request.headers[x-token]", "values": ["other"]}]}]}]"#,
                same,
                "no-allow",
            ),
            (
                "AUDIT changes nothing",
                r#"[{"name": "audit-all", "action": "AUDIT", "rules": [{}]}]"#,
                same,
                "allow audit[audit-all]",
            ),
            (
                "AUDIT is reported on denied requests too, every match in order",
                r#"[{"name": "au1", "action": "AUDIT", "rules": [{}]}, {"name": "d", "action": "DENY", "rules": [{}]},
                    {"name": "au-post", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
                    {"name": "au2", "action": "AUDIT", "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}]}]"#,
                same,
                "deny d audit[au1,au2]",
            ),
            (
                "AUDIT does not count as an ALLOW policy",
                &format!(r#"[{{"name": "au", "action": "AUDIT", "rules": [{post}]}}]"#),
                same,
                "allow",
            ),
            (
                "AUDIT without rules never matches",
                r#"[{"name": "au", "action": "AUDIT"}]"#,
                same,
                "allow",
            ),
        ];
        for (what, policies, edit, want) in table {
            let cfg = authz(&format!(r#"{{"policies": {policies}}}"#));
            let mut req = base();
            edit(&mut req);
            assert_eq!(show(&evaluate(&cfg, &req)), *want, "{what}");
        }
    }

    #[test]
    fn peer_authentication() {
        let plain: Edit = |r| {
            r.mtls = false;
            r.principal = None;
        };
        let on_15021: Edit = |r| {
            r.mtls = false;
            r.destination_port = Some(15021);
        };
        let deny_all = r#"[{"name": "d", "action": "DENY", "rules": [{}]}]"#;
        let table: &[(&str, &str, Edit, &str)] = &[
            (r#"{"mtls": {"mode": "STRICT"}}"#, "[]", same, "allow"),
            (r#"{"mtls": {"mode": "STRICT"}}"#, "[]", plain, "mtls"),
            (r#"{"mtls": {"mode": "STRICT"}}"#, deny_all, plain, "mtls"),
            (r#"{"mtls": {"mode": "STRICT"}}"#, deny_all, same, "deny d"),
            (r#"{"mtls": {"mode": "PERMISSIVE"}}"#, "[]", plain, "allow"),
            (r#"{"mtls": {"mode": "PERMISSIVE"}}"#, "[]", same, "allow"),
            (r#"{"mtls": {"mode": "DISABLE"}}"#, "[]", plain, "allow"),
            (r#"{"mtls": {"mode": "UNSET"}}"#, "[]", plain, "allow"),
            (r#"{"mtls": {}}"#, "[]", plain, "allow"),
            (r#"{}"#, "[]", plain, "allow"),
            (
                r#"{"mtls": {"mode": "STRICT"}, "portLevelMtls": {"15021": {"mode": "PERMISSIVE"}}}"#,
                "[]",
                on_15021,
                "allow",
            ),
            (
                r#"{"mtls": {"mode": "STRICT"}, "portLevelMtls": {"15021": {"mode": "PERMISSIVE"}}}"#,
                "[]",
                plain,
                "mtls",
            ),
            (
                r#"{"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"9080": {"mode": "STRICT"}}}"#,
                "[]",
                plain,
                "mtls",
            ),
            (
                r#"{"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"9080": {"mode": "STRICT"}}}"#,
                "[]",
                on_15021,
                "allow",
            ),
        ];
        for (peer, policies, edit, want) in table {
            let cfg = authz(&format!(
                r#"{{"peerAuthentication": {peer}, "policies": {policies}}}"#
            ));
            let mut req = base();
            edit(&mut req);
            assert_eq!(show(&evaluate(&cfg, &req)), *want, "{peer} {policies}");
        }
    }

    #[test]
    fn an_empty_config_allows_everything() {
        let cfg = authz("");
        let plain = Request::default();
        assert_eq!(show(&evaluate(&cfg, &plain)), "allow");
    }
}
