//! Which request attributes the configured policies can look at, worked out once at start-up, so each request reads
//! only those from the host: every hostcall that returns data costs a round trip into the module's allocator, and a
//! policy on methods and paths needs none of the connection properties.

use crate::model::{Action, Authz, Check, IpAttr, MtlsMode, TextAttr};

/// What to read from the host for each request (`:authority`, `:method` and `:path` are always read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// `connection.mtls` and the peer certificate's URI SAN.
    pub peer: bool,
    /// `source.address`.
    pub source: bool,
    /// `destination.address`.
    pub destination: bool,
    /// `destination.port`.
    pub port: bool,
    /// Every request header, not only the three pseudo-headers: for header checks and `x-forwarded-for`.
    pub headers: bool,
}

impl Needs {
    /// Everything `authz` can use.
    pub fn of(authz: &Authz) -> Needs {
        let mut n = Needs {
            peer: authz.peer.mode == MtlsMode::Strict
                || authz.peer.ports.iter().any(|(_, m)| *m == MtlsMode::Strict),
            port: !authz.peer.ports.is_empty(),
            ..Needs::default()
        };
        for p in &authz.policies {
            // An AUDIT log line names the peer: its principal, else its address.
            if p.action == Action::Audit {
                n.peer = true;
                n.source = true;
            }
            for r in &p.rules {
                for check in r.from.iter().chain(&r.to).flatten().chain(&r.when) {
                    n.add(check);
                }
            }
        }
        n
    }

    fn add(&mut self, check: &Check) {
        match check {
            Check::Text(
                TextAttr::Principal | TextAttr::Namespace | TextAttr::ServiceAccount,
                _,
            ) => self.peer = true,
            Check::Text(TextAttr::Header(_), _) => self.headers = true,
            Check::Text(_, _) => {}
            Check::Ip(IpAttr::Remote, _) => {
                // The last `x-forwarded-for` hop, else the peer's address.
                self.source = true;
                self.headers = true;
            }
            Check::Ip(IpAttr::Source, _) => self.source = true,
            Check::Ip(IpAttr::Destination, _) => self.destination = true,
            Check::Port(_) => self.port = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(json: serde_json::Value) -> Needs {
        let wire: crate::config::Wire = serde_json::from_value(json).expect("parses");
        Needs::of(&crate::config::compile(wire).expect("valid"))
    }

    #[test]
    fn needs_table() {
        let rule = |r: serde_json::Value| serde_json::json!({"policies": [{"name": "p", "action": "ALLOW", "rules": [r]}]});
        let none = Needs::default();
        let cases: Vec<(serde_json::Value, Needs)> = vec![
            (
                rule(
                    serde_json::json!({"to": [{"operation": {"methods": ["GET"], "paths": ["/a*"]}}]}),
                ),
                none,
            ),
            (
                rule(serde_json::json!({"to": [{"operation": {"hosts": ["a"]}}]})),
                none,
            ),
            (
                rule(serde_json::json!({"from": [{"source": {"principals": ["td/ns/a/sa/b"]}}]})),
                Needs { peer: true, ..none },
            ),
            (
                rule(serde_json::json!({"from": [{"source": {"notNamespaces": ["x"]}}]})),
                Needs { peer: true, ..none },
            ),
            (
                rule(serde_json::json!({"from": [{"source": {"remoteIpBlocks": ["10.0.0.0/8"]}}]})),
                Needs {
                    source: true,
                    headers: true,
                    ..none
                },
            ),
            (
                rule(serde_json::json!({"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]})),
                Needs {
                    source: true,
                    ..none
                },
            ),
            (
                rule(
                    serde_json::json!({"when": [{"key": "request.headers[x-token]", "values": ["t"]}]}),
                ),
                Needs {
                    headers: true,
                    ..none
                },
            ),
            (
                rule(serde_json::json!({"to": [{"operation": {"ports": ["8080"]}}]})),
                Needs { port: true, ..none },
            ),
            (
                rule(
                    serde_json::json!({"when": [{"key": "destination.ip", "values": ["10.0.0.1"]}]}),
                ),
                Needs {
                    destination: true,
                    ..none
                },
            ),
            (
                serde_json::json!({"peerAuthentication": {"mtls": {"mode": "STRICT"}}}),
                Needs { peer: true, ..none },
            ),
            (
                serde_json::json!({"peerAuthentication": {"mtls": {"mode": "PERMISSIVE"}}}),
                none,
            ),
            (
                serde_json::json!({"policies": [{"name": "a", "action": "AUDIT", "rules": [{}]}]}),
                Needs {
                    peer: true,
                    source: true,
                    ..none
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(needs(json.clone()), want, "{json}");
        }
    }
}
