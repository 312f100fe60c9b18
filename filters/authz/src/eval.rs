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

    /// The request the tables start from: productpage (mTLS) calling `GET reviews:9080/api/v1` on port 9080, from
    /// 10.1.2.3 for the client 203.0.113.9, to 10.9.9.9.
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

    /// [`base`] changed by `edit`: `-` (nothing), `plain` (no mTLS, so no principal), or `NAME=VALUE` for `host`,
    /// `method`, `port`, `source` (IP) and `principal`, with `none` for no value.
    fn request(edit: &str) -> Request {
        let mut r = base();
        match edit.split_once('=') {
            _ if edit == "-" => {}
            _ if edit == "plain" => {
                r.mtls = false;
                r.principal = None;
            }
            Some((name, value)) => {
                let v = (value != "none").then(|| value.to_string());
                match name {
                    "host" => r.host = v,
                    "method" => r.method = v,
                    "port" => r.destination_port = v.map(|p| p.parse().expect("a port")),
                    "source" => r.source_ip = v.map(|ip| ip.parse().expect("an IP")),
                    "principal" => r.principal = v,
                    other => panic!("no edit {other}"),
                }
            }
            None => panic!("no edit {edit}"),
        }
        r
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

    /// Runs a table of one-line cases `FIELD VALUES EDIT WANT` (VALUES a JSON list without spaces, WANT `allow` or
    /// `no-allow`) against one ALLOW policy whose only rule is `rule(FIELD, VALUES)`.
    fn run_field_table(table: &str, rule: impl Fn(&str, &str) -> String) {
        for line in table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let [field, values, edit, want] = line.split_whitespace().collect::<Vec<_>>()[..]
            else {
                panic!("bad table line: {line}");
            };
            let cfg = authz(&format!(
                r#"{{"policies": [{{"name": "p", "action": "ALLOW", "rules": [{}]}}]}}"#,
                rule(field, values)
            ));
            assert_eq!(show(&evaluate(&cfg, &request(edit))), want, "{line}");
        }
    }

    #[test]
    fn source_fields() {
        run_field_table(
            r#"
            # principals: exact, prefix, suffix, presence; there is a principal only under mTLS.
            principals            ["cluster.local/ns/default/sa/productpage"]       -      allow
            principals            ["cluster.local/ns/default/sa/ratings"]           -      no-allow
            principals            ["x","cluster.local/ns/default/sa/productpage"]   -      allow
            principals            ["cluster.local/ns/default/*"]                    -      allow
            principals            ["cluster.local/ns/other/*"]                      -      no-allow
            principals            ["*/sa/productpage"]                              -      allow
            principals            ["*/sa/reviews"]                                  -      no-allow
            principals            ["*"]                                             -      allow
            principals            ["*"]                                             plain  no-allow
            notPrincipals         ["*"]                                             plain  allow
            notPrincipals         ["*"]                                             -      no-allow
            notPrincipals         ["cluster.local/ns/default/sa/productpage"]       -      no-allow
            notPrincipals         ["cluster.local/ns/default/sa/ratings"]           -      allow
            # namespaces: the principal's /ns/NAME/ segment.
            namespaces            ["default"]                                       -      allow
            namespaces            ["prod"]                                          -      no-allow
            namespaces            ["def*"]                                          -      allow
            namespaces            ["*ult"]                                          -      allow
            namespaces            ["*"]                                             plain  no-allow
            notNamespaces         ["default"]                                       -      no-allow
            notNamespaces         ["prod"]                                          -      allow
            notNamespaces         ["default"]                                       plain  allow
            # serviceAccounts: NAMESPACE/NAME.
            serviceAccounts       ["default/productpage"]                           -      allow
            serviceAccounts       ["prod/productpage"]                              -      no-allow
            serviceAccounts       ["default/productpage"]                           plain  no-allow
            notServiceAccounts    ["default/productpage"]                           -      no-allow
            notServiceAccounts    ["default/ratings"]                               -      allow
            # ipBlocks: the peer's address; v4 and v6, CIDR or single address.
            ipBlocks              ["10.0.0.0/8"]                                    -      allow
            ipBlocks              ["10.1.2.3"]                                      -      allow
            ipBlocks              ["10.1.2.4","192.168.0.0/16"]                     -      no-allow
            ipBlocks              ["2001:db8::/32"]                      source=2001:db8:5::1  allow
            ipBlocks              ["2001:db8::/32"]                      source=2001:db9::1    no-allow
            ipBlocks              ["2001:db8::5"]                        source=2001:db8::5    allow
            ipBlocks              ["2001:db8::/32"]                                 -      no-allow
            ipBlocks              ["10.0.0.0/8"]                                source=none  no-allow
            notIpBlocks           ["10.1.0.0/16"]                                   -      no-allow
            notIpBlocks           ["10.2.0.0/16"]                                   -      allow
            notIpBlocks           ["::/0"]                                          -      allow
            notIpBlocks           ["::/0"]                               source=2001:db8::5    no-allow
            # remoteIpBlocks: the original client.
            remoteIpBlocks        ["203.0.113.0/24"]                                -      allow
            remoteIpBlocks        ["10.0.0.0/8"]                                    -      no-allow
            notRemoteIpBlocks     ["203.0.113.9"]                                   -      no-allow
            notRemoteIpBlocks     ["198.51.100.0/24"]                               -      allow
            "#,
            |field, values| format!(r#"{{"from": [{{"source": {{"{field}": {values}}}}}]}}"#),
        );
    }

    #[test]
    fn operation_fields() {
        run_field_table(
            r#"
            # hosts: `:authority` without regard to case; a port is part of it.
            hosts        ["reviews:9080"]              -                     allow
            hosts        ["REVIEWS:9080"]              -                     allow
            hosts        ["reviews"]                   -                     no-allow
            hosts        ["reviews","reviews:*"]       -                     allow
            hosts        ["*.example.com"]             host=api.example.com  allow
            hosts        ["*.example.com"]             -                     no-allow
            hosts        ["*"]                         host=none             no-allow
            notHosts     ["reviews:*"]                 -                     no-allow
            notHosts     ["ratings:*"]                 -                     allow
            # ports: destination.port.
            ports        ["9080"]                      -                     allow
            ports        ["80","443"]                  -                     no-allow
            ports        ["9080"]                      port=none             no-allow
            notPorts     ["9080"]                      -                     no-allow
            notPorts     ["15020"]                     -                     allow
            # methods: case-sensitive, patterns allowed.
            methods      ["GET","HEAD"]                -                     allow
            methods      ["get"]                       -                     no-allow
            methods      ["POST"]                      -                     no-allow
            methods      ["P*"]                        method=PUT            allow
            notMethods   ["GET"]                       -                     no-allow
            notMethods   ["DELETE"]                    -                     allow
            # paths: exact, prefix, suffix, presence (the request's path is normalized by then).
            paths        ["/api/v1"]                   -                     allow
            paths        ["/api"]                      -                     no-allow
            paths        ["/api/*"]                    -                     allow
            paths        ["/admin/*"]                  -                     no-allow
            paths        ["*/v1"]                      -                     allow
            paths        ["*.css"]                     -                     no-allow
            paths        ["*"]                         -                     allow
            notPaths     ["/api/*"]                    -                     no-allow
            notPaths     ["/admin/*"]                  -                     allow
            "#,
            |field, values| format!(r#"{{"to": [{{"operation": {{"{field}": {values}}}}}]}}"#),
        );
    }

    #[test]
    fn conditions() {
        run_field_table(
            r#"
            # KEY:values or KEY:notValues
            request.headers[x-token]:values      ["abc"]            -                allow
            request.headers[X-Token]:values      ["abc"]            -                allow
            request.headers[x-token]:values      ["ab*"]            -                allow
            request.headers[x-token]:values      ["*bc"]            -                allow
            request.headers[x-token]:values      ["xyz"]            -                no-allow
            request.headers[x-token]:values      ["nope","abc"]     -                allow
            request.headers[x-token]:values      ["*"]              -                allow
            request.headers[x-missing]:values    ["*"]              -                no-allow
            request.headers[x-missing]:notValues ["*"]              -                allow
            request.headers[x-token]:notValues   ["abc"]            -                no-allow
            request.headers[x-list]:values       ["b"]              -                allow
            request.headers[x-list]:notValues    ["b"]              -                no-allow
            source.ip:values                     ["10.0.0.0/8"]     -                allow
            source.ip:values                     ["2001:db8::/32"]  source=2001:db8::1  allow
            source.ip:notValues                  ["10.1.2.3"]       -                no-allow
            remote.ip:values                     ["203.0.113.0/24"] -                allow
            remote.ip:values                     ["10.0.0.0/8"]     -                no-allow
            destination.ip:values                ["10.9.9.9"]       -                allow
            destination.ip:notValues             ["10.9.0.0/16"]    -                no-allow
            destination.port:values              ["9080"]           -                allow
            destination.port:values              ["80"]             -                no-allow
            destination.port:notValues           ["9080"]           -                no-allow
            source.namespace:values              ["default"]        -                allow
            source.namespace:notValues           ["default"]        -                no-allow
            source.principal:values              ["*/sa/productpage"]  -             allow
            source.principal:values              ["*"]              principal=none   no-allow
            source.principal:notValues           ["*/sa/productpage"]  -             no-allow
            "#,
            |field, values| {
                let (key, which) = field.split_once(':').expect("KEY:values");
                format!(r#"{{"when": [{{"key": "{key}", "{which}": {values}}}]}}"#)
            },
        );
    }

    /// Cases separated by blank lines: a description, the `policies` JSON (one or more lines), then `=> WANT`.
    const SEMANTICS: &str = r#"
        no policies at all
        []
        => allow

        without an ALLOW policy, what no DENY matches is allowed
        [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}]
        => allow

        a DENY rule {} denies everything
        [{"name": "d", "action": "DENY", "rules": [{}]}]
        => deny d

        the action defaults to ALLOW
        [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}]
        => allow

        an ALLOW policy that does not match
        [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}]
        => no-allow

        ALLOW with rules [] allows nothing
        [{"name": "a", "action": "ALLOW", "rules": []}]
        => no-allow

        ALLOW without rules allows nothing
        [{"name": "a", "action": "ALLOW"}]
        => no-allow

        ALLOW with a rule {} allows everything
        [{"name": "a", "action": "ALLOW", "rules": [{}]}]
        => allow

        DENY with rules [] denies nothing
        [{"name": "d", "action": "DENY", "rules": []}]
        => allow

        DENY without rules denies nothing
        [{"name": "d", "action": "DENY"}]
        => allow

        DENY before ALLOW, whatever the order in the list
        [{"name": "a", "action": "ALLOW", "rules": [{}]},
         {"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}]
        => deny d

        the first DENY that matches is the one named
        [{"name": "d1", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
         {"name": "d2", "action": "DENY", "rules": [{}]}, {"name": "d3", "action": "DENY", "rules": [{}]}]
        => deny d2

        one of several ALLOW policies is enough
        [{"name": "a1", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
         {"name": "a2", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}]
        => allow

        an ALLOW-nothing policy does not stop another ALLOW
        [{"name": "none", "rules": []}, {"name": "a", "rules": [{}]}]
        => allow

        rules are ORed
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}]},
                                 {"to": [{"operation": {"paths": ["/api/*"]}}]}]}]
        => allow

        from and to are ANDed
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"]}}],
                                  "to": [{"operation": {"methods": ["POST"]}}]}]}]
        => no-allow

        from entries are ORed
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["prod"]}}, {"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}]
        => allow

        to entries are ORed
        [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["POST"]}}, {"operation": {"paths": ["/api/*"]}}]}]}]
        => allow

        fields of one source are ANDed
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"], "ipBlocks": ["192.168.0.0/16"]}}]}]}]
        => no-allow

        fields of one source, all matching
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"], "ipBlocks": ["10.0.0.0/8"]}}]}]}]
        => allow

        a field and its not field are ANDed
        [{"name": "a", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.1.0.0/16"]}}]}]}]
        => no-allow

        fields of one operation are ANDed
        [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"], "ports": ["80"]}}]}]}]
        => no-allow

        fields of one operation, all matching
        [{"name": "a", "rules": [{"to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"], "ports": ["9080"]}}]}]}]
        => allow

        conditions are ANDed
        [{"name": "a", "rules": [{"when": [{"key": "request.headers[x-token]", "values": ["abc"]},
                                           {"key": "destination.port", "values": ["80"]}]}]}]
        => no-allow

        conditions, all matching
        [{"name": "a", "rules": [{"when": [{"key": "request.headers[x-token]", "values": ["abc"]},
                                           {"key": "destination.port", "values": ["9080"]}]}]}]
        => allow

        values and notValues of one condition are ANDed
        [{"name": "a", "rules": [{"when": [{"key": "request.headers[x-token]", "values": ["a*"], "notValues": ["abc"]}]}]}]
        => no-allow

        from, to and when are all needed
        [{"name": "a", "rules": [{"from": [{"source": {"namespaces": ["default"]}}],
                                  "to": [{"operation": {"methods": ["GET"]}}],
                                  "when": [{"key": "request.headers[x-token]", "values": ["other"]}]}]}]
        => no-allow

        AUDIT changes nothing
        [{"name": "audit-all", "action": "AUDIT", "rules": [{}]}]
        => allow audit[audit-all]

        AUDIT is reported on denied requests too, every match in order
        [{"name": "au1", "action": "AUDIT", "rules": [{}]}, {"name": "d", "action": "DENY", "rules": [{}]},
         {"name": "au-post", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
         {"name": "au2", "action": "AUDIT", "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}]}]
        => deny d audit[au1,au2]

        an AUDIT policy is not an ALLOW policy
        [{"name": "au", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}]
        => allow

        AUDIT without rules never matches
        [{"name": "au", "action": "AUDIT"}]
        => allow
    "#;

    #[test]
    fn policy_semantics() {
        let cases: Vec<&str> = SEMANTICS
            .split("\n\n")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cases.len(),
            SEMANTICS.matches("=>").count(),
            "one `=>` per case"
        );
        for case in cases {
            let lines: Vec<&str> = case.lines().map(str::trim).collect();
            let (what, policies, want) = match &lines[..] {
                [what, json @ .., want] => (what, json.join(" "), want),
                _ => panic!("bad case: {case}"),
            };
            let want = want.strip_prefix("=> ").expect("=> WANT");
            let cfg = authz(&format!(r#"{{"policies": {policies}}}"#));
            assert_eq!(show(&evaluate(&cfg, &base())), want, "{what}");
        }
    }

    #[test]
    fn peer_authentication() {
        let deny_all = r#"[{"name": "d", "action": "DENY", "rules": [{}]}]"#;
        let strict = r#"{"mtls": {"mode": "STRICT"}}"#;
        let strict_but_15021 =
            r#"{"mtls": {"mode": "STRICT"}, "portLevelMtls": {"15021": {"mode": "PERMISSIVE"}}}"#;
        let permissive_but_9080 =
            r#"{"mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"9080": {"mode": "STRICT"}}}"#;
        let table: &[(&str, &str, &str, &str)] = &[
            (strict, "[]", "-", "allow"),
            (strict, "[]", "plain", "mtls"),
            (strict, "[]", "principal=none", "allow"),
            (strict, deny_all, "plain", "mtls"),
            (strict, deny_all, "-", "deny d"),
            (
                r#"{"mtls": {"mode": "PERMISSIVE"}}"#,
                "[]",
                "plain",
                "allow",
            ),
            (r#"{"mtls": {"mode": "PERMISSIVE"}}"#, "[]", "-", "allow"),
            (r#"{"mtls": {"mode": "DISABLE"}}"#, "[]", "plain", "allow"),
            (r#"{"mtls": {"mode": "UNSET"}}"#, "[]", "plain", "allow"),
            (r#"{"mtls": {}}"#, "[]", "plain", "allow"),
            ("{}", "[]", "plain", "allow"),
            (strict_but_15021, "[]", "plain", "mtls"),
            (permissive_but_9080, "[]", "plain", "mtls"),
        ];
        for (peer, policies, edit, want) in table {
            let cfg = authz(&format!(
                r#"{{"peerAuthentication": {peer}, "policies": {policies}}}"#
            ));
            assert_eq!(
                show(&evaluate(&cfg, &request(edit))),
                *want,
                "{peer} {policies} {edit}"
            );
        }
        // The port-level mode is the one of the port the request arrived on.
        let mut on_15021 = request("plain");
        on_15021.destination_port = Some(15021);
        assert_eq!(
            show(&evaluate(
                &authz(&format!(r#"{{"peerAuthentication": {strict_but_15021}}}"#)),
                &on_15021
            )),
            "allow"
        );
        assert_eq!(
            show(&evaluate(
                &authz(&format!(
                    r#"{{"peerAuthentication": {permissive_but_9080}}}"#
                )),
                &on_15021
            )),
            "allow"
        );
    }

    #[test]
    fn an_empty_config_allows_everything() {
        assert_eq!(show(&evaluate(&authz(""), &Request::default())), "allow");
    }
}
