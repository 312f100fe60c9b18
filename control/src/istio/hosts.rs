//! Istio's host names: a short name (`reviews`) means the Kubernetes service of that name in the resource's own
//! namespace (`reviews.NAMESPACE.svc.cluster.local`); anything with a dot, and `*`, is taken as written.

/// The cluster domain suffix short names resolve under.
pub const DOMAIN_SUFFIX: &str = "svc.cluster.local";

/// Resolves `name` as Istio does for a resource in `namespace`: `reviews` in `default` →
/// `reviews.default.svc.cluster.local`; FQDNs (anything with a `.`), wildcards like `*.example.com`, and `*` are
/// unchanged.
pub fn resolve_host(name: &str, namespace: &str) -> String {
    if name.contains('.') || name == "*" || name.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{namespace}.{DOMAIN_SUFFIX}")
    }
}

/// Whether the service host `service` is covered by the (possibly wildcard) host `pattern`: equal, or `*.suffix`
/// covering one or more leading labels, or `*` covering everything.
pub fn host_matches(pattern: &str, service: &str) -> bool {
    if pattern == "*" || pattern == service {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => service.ends_with(suffix) && service.len() > suffix.len(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let cases = [
            ("reviews", "default", "reviews.default.svc.cluster.local"),
            ("reviews", "shop", "reviews.shop.svc.cluster.local"),
            ("reviews.shop", "default", "reviews.shop"),
            (
                "reviews.default.svc.cluster.local",
                "x",
                "reviews.default.svc.cluster.local",
            ),
            ("api.example.com", "default", "api.example.com"),
            ("*.example.com", "default", "*.example.com"),
            ("*", "default", "*"),
        ];
        for (name, ns, want) in cases {
            assert_eq!(resolve_host(name, ns), want, "{name} in {ns}");
        }
    }

    #[test]
    fn host_matches_table() {
        let cases = [
            ("a.example.com", "a.example.com", true),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.example.org", false),
            ("*", "anything", true),
            ("a.example.com", "b.example.com", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(host_matches(pattern, host), want, "{pattern} vs {host}");
        }
    }
}
