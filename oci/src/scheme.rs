//! http or https for a registry: https unless the registry is listed as insecure; an insecure registry named
//! `localhost`, `127.0.0.1` or `[::1]` is plain http straight away, another insecure one is tried over https first
//! and over http when it answers the handshake in plain HTTP (as Istio's puller does).

/// How to reach a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// https only: a registry that answers in plain HTTP is an [`crate::OciError::Insecure`] error.
    Https,
    /// Plain http only (an insecure loopback registry).
    Http,
    /// https, and plain http when the server answers the TLS handshake in plain HTTP (an insecure registry
    /// elsewhere; like Istio, which retries over http when "server gave HTTP response"). Other TLS failures (an
    /// untrusted certificate) stay errors: trust the registry's CA with `ClientOptions::extra_roots` instead.
    HttpsThenHttp,
}

/// The plan for `registry` ("host[:port]") given the insecure list (entries "host" for any port, "host:port", or
/// "*" for every registry).
pub(crate) fn plan(registry: &str, insecure: &[String]) -> Plan {
    let registry = registry.to_ascii_lowercase();
    let registry = registry.as_str();
    let (host, _) = split_host_port(registry);
    let listed = insecure.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        entry == "*" || entry == registry || (split_host_port(&entry).1.is_none() && entry == host)
    });
    match listed {
        false => Plan::Https,
        true if is_loopback(host) => Plan::Http,
        true => Plan::HttpsThenHttp,
    }
}

/// Whether credentials may be sent to a registry of this plan over plain http.
pub(crate) fn allows_http(plan: Plan) -> bool {
    plan != Plan::Https
}

/// The loopback names plain http is used for without an https attempt (other loopback addresses try https first, like
/// any insecure registry).
fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// "host:port" → ("host", Some("port")); "[v6]:port" keeps the brackets in the host.
fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if registry.starts_with('[') {
        match registry.split_once("]:") {
            Some((host, port)) => (&registry[..host.len() + 1], Some(port)),
            None => (registry, None),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let default: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .map(String::from)
            .to_vec();
        let custom: Vec<String> = ["reg.lan", "10.0.0.5:5000", "127.0.0.2:80"]
            .map(String::from)
            .to_vec();
        let cases: Vec<(&str, &Vec<String>, Plan)> = vec![
            ("127.0.0.1:5000", &default, Plan::Http),
            ("127.0.0.1", &default, Plan::Http),
            ("localhost:40123", &default, Plan::Http),
            ("[::1]:5000", &default, Plan::Http),
            ("ghcr.io", &default, Plan::Https),
            ("127.0.0.2:5000", &default, Plan::Https),
            ("reg.lan:5000", &custom, Plan::HttpsThenHttp),
            ("reg.lan", &custom, Plan::HttpsThenHttp),
            ("10.0.0.5:5000", &custom, Plan::HttpsThenHttp),
            ("10.0.0.5:5001", &custom, Plan::Https),
            ("10.0.0.5", &custom, Plan::Https),
            ("127.0.0.2:80", &custom, Plan::HttpsThenHttp),
            ("127.0.0.1:5000", &custom, Plan::Https),
        ];
        for (registry, insecure, want) in cases {
            assert_eq!(
                plan(registry, insecure),
                want,
                "{registry} with {insecure:?}"
            );
        }
        assert_eq!(
            plan("anything.example", &["*".to_string()]),
            Plan::HttpsThenHttp
        );
        assert_eq!(
            plan("Reg.Lan:1", &["REG.LAN".to_string()]),
            Plan::HttpsThenHttp
        );
        assert!(
            !allows_http(Plan::Https)
                && allows_http(Plan::Http)
                && allows_http(Plan::HttpsThenHttp)
        );
    }
}
