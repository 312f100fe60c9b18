//! Route tables: virtual hosts chosen by authority, routes matched by path, headers and method.
//!
//! [`RouteTable::select`] is a pure function of the request's parts, so the routing decision is tested by tables below.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use regex::Regex;

use super::plugins::Filters;
use crate::config::{Invalid, schema};

/// The compiled routes of one listener.
#[derive(Debug)]
pub struct RouteTable {
    vhosts: Vec<VirtualHost>,
    exact: HashMap<String, usize>,
    /// `*.example.com` stored as `.example.com`, longest first.
    suffix: Vec<(String, usize)>,
    /// `api.*` stored as `api.`, longest first.
    prefix: Vec<(String, usize)>,
    any: Option<usize>,
}

/// A virtual host: its name and ordered routes.
#[derive(Debug)]
pub struct VirtualHost {
    /// Name from the config.
    pub name: Arc<str>,
    /// Routes in match order.
    pub routes: Vec<Route>,
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// `NAME` from the config, or `VHOST/INDEX`.
    pub name: Arc<str>,
    path: PathMatch,
    headers: Vec<HeaderMatcher>,
    methods: Vec<Method>,
    /// What to do with a matching request.
    pub action: Action,
    /// Upstream response-headers deadline.
    pub timeout: Option<Duration>,
    /// Longest gap between body chunks.
    pub idle_timeout: Option<Duration>,
    /// WASM plugins, in order.
    pub filters: Filters,
}

#[derive(Debug)]
enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
struct HeaderMatcher {
    name: HeaderName,
    kind: HeaderKind,
    invert: bool,
}

#[derive(Debug)]
enum HeaderKind {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present(bool),
}

/// What a route does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Forward to one cluster.
    Cluster(Arc<str>),
    /// Forward to one of several clusters, by weight.
    Weighted {
        /// `(cluster, weight)` pairs.
        clusters: Vec<(Arc<str>, u32)>,
        /// Sum of the weights (> 0).
        total: u32,
    },
    /// Answer locally.
    Direct {
        /// Status code.
        status: StatusCode,
        /// Body.
        body: Bytes,
    },
}

impl Action {
    /// The cluster to use given a uniformly random `roll` in `0..u32::MAX`; `None` for direct responses.
    pub fn cluster(&self, roll: u32) -> Option<&Arc<str>> {
        match self {
            Action::Cluster(c) => Some(c),
            Action::Weighted { clusters, total } => {
                let mut point = roll % total;
                clusters
                    .iter()
                    .find(|(_, w)| {
                        let hit = point < *w;
                        point = point.saturating_sub(*w);
                        hit
                    })
                    .map(|(c, _)| c)
            }
            Action::Direct { .. } => None,
        }
    }
}

impl RouteTable {
    /// The first route that matches, after choosing the virtual host by `authority`.
    pub fn select(
        &self,
        authority: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&Route> {
        let vhost = &self.vhosts[self.vhost_index(authority)?];
        let path = path.split('?').next().unwrap_or(path);
        vhost
            .routes
            .iter()
            .find(|r| r.matches(method, path, headers))
    }

    /// The virtual host that serves `authority`, if any.
    pub fn vhost(&self, authority: &str) -> Option<&VirtualHost> {
        self.vhost_index(authority).map(|i| &self.vhosts[i])
    }

    fn vhost_index(&self, authority: &str) -> Option<usize> {
        let lowered;
        let host = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        let bare = strip_port(host);
        for h in [host, bare] {
            if let Some(&i) = self.exact.get(h) {
                return Some(i);
            }
        }
        for h in [host, bare] {
            if let Some((_, i)) = self
                .suffix
                .iter()
                .find(|(s, _)| h.len() > s.len() && h.ends_with(s.as_str()))
            {
                return Some(*i);
            }
        }
        for h in [host, bare] {
            if let Some((_, i)) = self
                .prefix
                .iter()
                .find(|(p, _)| h.len() > p.len() && h.starts_with(p.as_str()))
            {
                return Some(*i);
            }
        }
        self.any
    }

    /// Compiles a listener's virtual hosts; `field` is the path of the list in the config, for errors.
    pub fn compile(
        vhosts: &[schema::VirtualHost],
        field: &str,
        clusters: &dyn Fn(&str) -> bool,
        filters: &dyn Fn(&schema::Route, &str) -> Result<Filters, Invalid>,
    ) -> Result<Self, Invalid> {
        let mut table = RouteTable {
            vhosts: Vec::new(),
            exact: HashMap::new(),
            suffix: Vec::new(),
            prefix: Vec::new(),
            any: None,
        };
        for (vi, vh) in vhosts.iter().enumerate() {
            let vfield = format!("{field}[{vi}]");
            if vhosts[..vi].iter().any(|o| o.name == vh.name) {
                return Err(Invalid::new(
                    format!("{vfield}.name"),
                    format!("duplicate virtual host name `{}`", vh.name),
                ));
            }
            if vh.domains.is_empty() {
                return Err(Invalid::new(
                    format!("{vfield}.domains"),
                    "needs at least one domain; use \"*\" for any",
                ));
            }
            for (di, d) in vh.domains.iter().enumerate() {
                let d = d.to_ascii_lowercase();
                let dfield = format!("{vfield}.domains[{di}]");
                let dup = || {
                    Invalid::new(
                        &dfield,
                        format!("domain `{d}` is already served by another virtual host"),
                    )
                };
                if d == "*" {
                    if table.any.replace(vi).is_some() {
                        return Err(dup());
                    }
                } else if let Some(rest) = d.strip_prefix('*') {
                    if rest.is_empty() || rest.contains('*') {
                        return Err(Invalid::new(
                            &dfield,
                            "a wildcard domain looks like `*.example.com` or `api.*`",
                        ));
                    }
                    if table.suffix.iter().any(|(s, _)| s == rest) {
                        return Err(dup());
                    }
                    table.suffix.push((rest.to_string(), vi));
                } else if let Some(rest) = d.strip_suffix('*') {
                    if rest.contains('*') {
                        return Err(Invalid::new(
                            &dfield,
                            "a wildcard domain looks like `*.example.com` or `api.*`",
                        ));
                    }
                    if table.prefix.iter().any(|(s, _)| s == rest) {
                        return Err(dup());
                    }
                    table.prefix.push((rest.to_string(), vi));
                } else if d.contains('*') {
                    return Err(Invalid::new(&dfield, "`*` may only start or end a domain"));
                } else if table.exact.insert(d.clone(), vi).is_some() {
                    return Err(dup());
                }
            }
            let routes = vh
                .routes
                .iter()
                .enumerate()
                .map(|(ri, r)| {
                    Route::compile(
                        r,
                        &format!("{vfield}.routes[{ri}]"),
                        &vh.name,
                        ri,
                        clusters,
                        filters,
                    )
                })
                .collect::<Result<_, _>>()?;
            table.vhosts.push(VirtualHost {
                name: vh.name.as_str().into(),
                routes,
            });
        }
        table
            .suffix
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        table
            .prefix
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Ok(table)
    }
}

impl Route {
    fn matches(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        let path_ok = match &self.path {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
            PathMatch::Regex(r) => r.is_match(path),
        };
        path_ok
            && (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|h| h.matches(headers))
    }

    fn compile(
        r: &schema::Route,
        field: &str,
        vhost: &str,
        index: usize,
        clusters: &dyn Fn(&str) -> bool,
        filters: &dyn Fn(&schema::Route, &str) -> Result<Filters, Invalid>,
    ) -> Result<Self, Invalid> {
        let m = &r.matcher;
        let mfield = format!("{field}.match");
        let path = match (&m.prefix, &m.path, &m.regex) {
            (Some(p), None, None) => PathMatch::Prefix(p.clone()),
            (None, Some(p), None) => PathMatch::Exact(p.clone()),
            (None, None, Some(re)) => PathMatch::Regex(anchored(re, &format!("{mfield}.regex"))?),
            _ => {
                return Err(Invalid::new(
                    mfield,
                    "needs exactly one of `prefix`, `path` or `regex`",
                ));
            }
        };
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatcher::compile(h, &format!("{mfield}.headers[{i}]")))
            .collect::<Result<_, _>>()?;
        let methods = m
            .methods
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Method::from_bytes(s.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    Invalid::new(
                        format!("{mfield}.methods[{i}]"),
                        format!("`{s}` is not an HTTP method"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let action = match (&r.cluster, &r.weighted_clusters, &r.direct_response) {
            (Some(c), None, None) => {
                check_cluster(c, &format!("{field}.cluster"), clusters)?;
                Action::Cluster(c.as_str().into())
            }
            (None, Some(w), None) => {
                for (i, wc) in w.iter().enumerate() {
                    check_cluster(
                        &wc.name,
                        &format!("{field}.weighted_clusters[{i}].name"),
                        clusters,
                    )?;
                }
                let total = w.iter().try_fold(0u32, |a, wc| a.checked_add(wc.weight));
                match total {
                    Some(total) if total > 0 => Action::Weighted {
                        clusters: w
                            .iter()
                            .map(|wc| (wc.name.as_str().into(), wc.weight))
                            .collect(),
                        total,
                    },
                    _ => {
                        return Err(Invalid::new(
                            format!("{field}.weighted_clusters"),
                            "weights must add up to more than 0 and at most 4294967295",
                        ));
                    }
                }
            }
            (None, None, Some(d)) => Action::Direct {
                status: StatusCode::from_u16(d.status).map_err(|_| {
                    Invalid::new(
                        format!("{field}.direct_response.status"),
                        "expected an HTTP status code (100-999)",
                    )
                })?,
                body: Bytes::from(d.body.clone()),
            },
            _ => {
                return Err(Invalid::new(
                    field,
                    "needs exactly one of `cluster`, `weighted_clusters` or `direct_response`",
                ));
            }
        };
        Ok(Route {
            name: r
                .name
                .clone()
                .unwrap_or_else(|| format!("{vhost}/{index}"))
                .into(),
            path,
            headers,
            methods,
            action,
            timeout: r.timeout.enabled(),
            idle_timeout: r.idle_timeout.enabled(),
            filters: filters(r, field)?,
        })
    }
}

impl HeaderMatcher {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let hit = match &self.kind {
            HeaderKind::Present(want) => headers.contains_key(&self.name) == *want,
            kind => headers.get_all(&self.name).iter().any(|v| {
                let Ok(v) = v.to_str() else { return false };
                match kind {
                    HeaderKind::Exact(e) => v == e,
                    HeaderKind::Prefix(p) => v.starts_with(p.as_str()),
                    HeaderKind::Regex(r) => r.is_match(v),
                    HeaderKind::Present(_) => unreachable!("handled above"),
                }
            }),
        };
        hit != self.invert
    }

    fn compile(h: &schema::HeaderMatch, field: &str) -> Result<Self, Invalid> {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            Invalid::new(
                format!("{field}.name"),
                format!("`{}` is not a valid header name", h.name),
            )
        })?;
        let kind = match (&h.exact, &h.prefix, &h.regex, h.present) {
            (Some(e), None, None, None) => HeaderKind::Exact(e.clone()),
            (None, Some(p), None, None) => HeaderKind::Prefix(p.clone()),
            (None, None, Some(r), None) => {
                HeaderKind::Regex(anchored(r, &format!("{field}.regex"))?)
            }
            (None, None, None, Some(p)) => HeaderKind::Present(p),
            _ => {
                return Err(Invalid::new(
                    field,
                    "needs exactly one of `exact`, `prefix`, `regex` or `present`",
                ));
            }
        };
        Ok(HeaderMatcher {
            name,
            kind,
            invert: h.invert,
        })
    }
}

fn check_cluster(name: &str, field: &str, clusters: &dyn Fn(&str) -> bool) -> Result<(), Invalid> {
    if clusters(name) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("unknown cluster `{name}`; define it under `clusters:` or fix the name"),
        ))
    }
}

fn anchored(re: &str, field: &str) -> Result<Regex, Invalid> {
    Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| Invalid::new(field, format!("invalid regular expression: {e}")))
}

fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host.ends_with(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &host[..i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let yaml = r#"
- name: api
  domains: ["api.example.com", "api.example.com:8443"]
  routes:
    - { name: exact, match: { path: /health }, direct_response: { status: 200, body: ok } }
    - { name: canary, match: { prefix: /, headers: [{ name: x-canary, exact: "1" }] }, cluster: canary }
    - { name: posts, match: { regex: "/posts/[0-9]+", methods: [GET] }, cluster: posts }
    - { name: not-beta, match: { prefix: /v1, headers: [{ name: x-beta, present: true, invert: true }] }, cluster: v1 }
    - { name: rest, match: { prefix: / }, cluster: api }
- name: wild
  domains: ["*.example.com"]
  routes: [{ name: wild, match: { prefix: / }, cluster: wild }]
- name: deeper
  domains: ["*.eu.example.com"]
  routes: [{ name: deeper, match: { prefix: / }, cluster: eu }]
- name: pre
  domains: ["internal.*"]
  routes: [{ name: pre, match: { prefix: / }, cluster: internal }]
- name: any
  domains: ["*"]
  routes: [{ name: any, match: { prefix: /only }, cluster: any }]
"#;
        let vhosts: Vec<schema::VirtualHost> = serde_yaml::from_str(yaml).expect("yaml");
        RouteTable::compile(&vhosts, "vh", &|_| true, &|_, _| Ok(Filters::from([])))
            .expect("compile")
    }

    #[test]
    fn select_table() {
        let t = table();
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().expect("value"));
            }
            m
        };
        let get = Method::GET;
        let cases: &[(&str, &Method, &str, HeaderMap, Option<&str>)] = &[
            ("api.example.com", &get, "/health", h(&[]), Some("exact")),
            (
                "API.Example.com",
                &get,
                "/health?x=1",
                h(&[]),
                Some("exact"),
            ),
            ("api.example.com", &get, "/healthz", h(&[]), Some("rest")),
            (
                "api.example.com",
                &get,
                "/x",
                h(&[("x-canary", "1")]),
                Some("canary"),
            ),
            (
                "api.example.com",
                &get,
                "/x",
                h(&[("x-canary", "2")]),
                Some("rest"),
            ),
            ("api.example.com", &get, "/posts/42", h(&[]), Some("posts")),
            (
                "api.example.com",
                &Method::POST,
                "/posts/42",
                h(&[]),
                Some("rest"),
            ),
            ("api.example.com", &get, "/posts/42/x", h(&[]), Some("rest")),
            ("api.example.com", &get, "/v1/a", h(&[]), Some("not-beta")),
            (
                "api.example.com",
                &get,
                "/v1/a",
                h(&[("x-beta", "")]),
                Some("rest"),
            ),
            ("api.example.com:8443", &get, "/x", h(&[]), Some("rest")),
            ("api.example.com:9999", &get, "/x", h(&[]), Some("rest")),
            ("www.example.com", &get, "/", h(&[]), Some("wild")),
            ("a.eu.example.com", &get, "/", h(&[]), Some("deeper")),
            ("example.com", &get, "/only", h(&[]), Some("any")),
            ("internal.corp", &get, "/", h(&[]), Some("pre")),
            // Suffix wildcards beat prefix wildcards even when the host carries a port.
            ("internal.example.com:8080", &get, "/", h(&[]), Some("wild")),
            ("other", &get, "/", h(&[]), None),
            ("other", &get, "/only/x", h(&[]), Some("any")),
        ];
        for (host, method, path, headers, want) in cases {
            let got = t.select(host, method, path, headers).map(|r| &*r.name);
            assert_eq!(got, *want, "{host} {method} {path}");
        }
    }

    #[test]
    fn weighted_pick_table() {
        let a = Action::Weighted {
            clusters: vec![("a".into(), 1), ("b".into(), 0), ("c".into(), 3)],
            total: 4,
        };
        let cases = [(0, "a"), (1, "c"), (3, "c"), (4, "a"), (7, "c")];
        for (roll, want) in cases {
            assert_eq!(a.cluster(roll).map(|c| &**c), Some(want), "roll {roll}");
        }
    }

    #[test]
    fn compile_errors_table() {
        let cases = [
            (
                "[{name: a, domains: [], routes: []}]",
                "vh[0].domains",
                "at least one domain",
            ),
            (
                "[{name: a, domains: ['*'], routes: []}, {name: b, domains: ['*'], routes: []}]",
                "vh[1].domains[0]",
                "already",
            ),
            (
                "[{name: a, domains: ['a*b'], routes: []}]",
                "vh[0].domains[0]",
                "may only",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {}, cluster: c}]}]",
                "vh[0].routes[0].match",
                "exactly one of",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {regex: '('}, cluster: c}]}]",
                "vh[0].routes[0].match.regex",
                "invalid regular",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {prefix: /}}]}]",
                "vh[0].routes[0]",
                "exactly one of `cluster`",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {prefix: /}, cluster: nope}]}]",
                "vh[0].routes[0].cluster",
                "unknown cluster",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {prefix: /, methods: ['G T']}, cluster: c}]}]",
                "vh[0].routes[0].match.methods[0]",
                "not an HTTP method",
            ),
            (
                "[{name: a, domains: ['*'], routes: [{match: {prefix: /}, weighted_clusters: [{name: c, weight: 0}]}]}]",
                "vh[0].routes[0].weighted_clusters",
                "add up",
            ),
        ];
        for (yaml, field, msg) in cases {
            let vhosts: Vec<schema::VirtualHost> = serde_yaml::from_str(yaml).expect(yaml);
            let err =
                RouteTable::compile(&vhosts, "vh", &|c| c == "c", &|_, _| Ok(Filters::from([])))
                    .expect_err(yaml);
            assert_eq!(err.field, field, "{yaml}");
            assert!(err.message.contains(msg), "{yaml}: {}", err.message);
        }
    }
}
