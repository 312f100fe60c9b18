//! Checking and compiling the [`config`] into the [`model`](crate::model), once, when the plugin starts: regexes
//! compiled, destinations turned into cluster names, weights summed, durations parsed. Anything wrong is an
//! [`Invalid`] naming the field (`http[1].route[0].weight`), and the plugin refuses to start.

use meshwork_sdk::duration;

use crate::{
    config,
    headerops::{self, HeaderOps},
    model::{Action, Dest, Invalid, Match, Redirect, Route, Router, cluster_name},
    strmatch,
};

impl Router {
    /// Checks and compiles the whole configuration.
    pub fn compile(cfg: &config::Config) -> Result<Router, Invalid> {
        let routes = cfg
            .http
            .iter()
            .enumerate()
            .map(|(i, r)| compile_route(r, &format!("http[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let needs_port = routes
            .iter()
            .flat_map(|r| &r.matches)
            .any(|m| m.port.is_some());
        let reads = reads(&routes);
        Ok(Router {
            routes,
            no_match: cfg.no_match,
            needs_port,
            reads,
        })
    }
}

/// Most headers worth asking the host for one by one; with more, one read of the whole map costs less.
const MAX_READS: usize = 6;

/// The headers `routes` can read: `:path` always (matches, rewrites, the original path), what the matches name, and
/// `:scheme` and `:authority` for redirects. `None` when that is more than [`MAX_READS`].
fn reads(routes: &[Route]) -> Option<Vec<String>> {
    let mut names = vec![":path".to_string()];
    let mut add = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    for r in routes {
        if matches!(r.action, Action::Redirect(_)) {
            add(":scheme");
            add(":authority");
        }
        for m in &r.matches {
            let pseudo = [
                (m.scheme.is_some(), ":scheme"),
                (m.method.is_some(), ":method"),
                (m.authority.is_some(), ":authority"),
            ];
            for (_, name) in pseudo.iter().filter(|(used, _)| *used) {
                add(name);
            }
            for (name, _) in m.headers.iter().chain(&m.without_headers) {
                add(name);
            }
        }
    }
    (names.len() <= MAX_READS).then_some(names)
}

fn compile_route(r: &config::HttpRoute, at: &str) -> Result<Route, Invalid> {
    let action = match (&r.route[..], &r.redirect, &r.direct_response) {
        ([], None, None) => {
            return Err(Invalid::new(
                at,
                "needs one of `route`, `redirect` or `directResponse`",
            ));
        }
        (route, None, None) => compile_forward(route, at)?,
        ([], Some(redirect), None) => Action::Redirect(compile_redirect(redirect, at)?),
        ([], None, Some(direct)) => compile_direct(direct, at)?,
        _ => {
            return Err(Invalid::new(
                at,
                "give only one of `route`, `redirect` or `directResponse`",
            ));
        }
    };
    let rewrite = r.rewrite.as_ref();
    if rewrite.is_some() && !matches!(action, Action::Forward { .. }) {
        return Err(Invalid::new(
            format!("{at}.rewrite"),
            "only routes that forward (`route`) can rewrite; a redirect sets its own `uri` and `authority`",
        ));
    }
    let rewrite_uri = rewrite
        .and_then(|w| w.uri.clone())
        .filter(|u| !u.is_empty());
    if let Some(u) = &rewrite_uri {
        path_like(u, &format!("{at}.rewrite.uri"))?;
    }
    let timeout = r
        .timeout
        .as_deref()
        .map(|t| duration::parse(t).map_err(|e| Invalid::new(format!("{at}.timeout"), e)))
        .transpose()?
        .map(|d| Some(d).filter(|d| !d.is_zero()));
    let (request_ops, response_ops) = HeaderOps::compile_both(r.headers.as_ref(), at)?;
    Ok(Route {
        name: r.name.clone().unwrap_or_else(|| at.to_string()),
        matches: r
            .matches
            .iter()
            .enumerate()
            .map(|(i, m)| compile_match(m, &format!("{at}.match[{i}]")))
            .collect::<Result<_, _>>()?,
        action,
        rewrite_uri,
        rewrite_authority: rewrite
            .and_then(|w| w.authority.clone())
            .filter(|a| !a.is_empty()),
        timeout,
        request_ops,
        response_ops,
    })
}

fn compile_match(m: &config::MatchRequest, at: &str) -> Result<Match, Invalid> {
    let one = |s: &Option<config::StringMatch>, name: &str| {
        s.as_ref()
            .map(|s| strmatch::compile(s, &format!("{at}.{name}"), false))
            .transpose()
    };
    let map = |m: &std::collections::BTreeMap<String, config::StringMatch>, name: &str| {
        m.iter()
            .map(|(k, s)| {
                let field = format!("{at}.{name}.{k}");
                let key = match name {
                    "queryParams" if !k.is_empty() => k.clone(),
                    "queryParams" => {
                        return Err(Invalid::new(field, "a query parameter needs a name"));
                    }
                    _ => headerops::name(k, &field)?,
                };
                Ok((key, strmatch::compile(s, &field, true)?))
            })
            .collect::<Result<Vec<_>, Invalid>>()
    };
    Ok(Match {
        uri: one(&m.uri, "uri")?,
        ignore_uri_case: m.ignore_uri_case,
        scheme: one(&m.scheme, "scheme")?,
        method: one(&m.method, "method")?,
        authority: one(&m.authority, "authority")?,
        headers: map(&m.headers, "headers")?,
        without_headers: map(&m.without_headers, "withoutHeaders")?,
        query_params: map(&m.query_params, "queryParams")?,
        port: m.port.map(|p| port(p, &format!("{at}.port"))).transpose()?,
    })
}

fn compile_forward(route: &[config::RouteDestination], at: &str) -> Result<Action, Invalid> {
    let mut destinations = Vec::with_capacity(route.len());
    for (i, rd) in route.iter().enumerate() {
        let here = format!("{at}.route[{i}]");
        let d = &rd.destination;
        if d.host.is_empty() {
            return Err(Invalid::new(
                format!("{here}.destination.host"),
                "must not be empty",
            ));
        }
        let number = d.port.as_ref().map_or(Ok(80), |p| {
            port(p.number, &format!("{here}.destination.port.number"))
        })?;
        let weight = match rd.weight {
            Some(w) if !(0..=i64::from(i32::MAX)).contains(&w) => {
                return Err(Invalid::new(
                    format!("{here}.weight"),
                    format!("must be between 0 and {}, got {w}", i32::MAX),
                ));
            }
            // Istio: a single destination takes all the traffic, whatever its weight.
            _ if route.len() == 1 => 1,
            w => w.unwrap_or(0) as u64,
        };
        let (request_ops, response_ops) = HeaderOps::compile_both(rd.headers.as_ref(), &here)?;
        destinations.push(Dest {
            cluster: cluster_name(&d.host, d.subset.as_deref().unwrap_or(""), number),
            weight,
            request_ops,
            response_ops,
        });
    }
    let total: u64 = destinations.iter().map(|d| d.weight).sum();
    if total == 0 {
        return Err(Invalid::new(
            format!("{at}.route"),
            "the weights add up to 0: give at least one destination a weight above 0",
        ));
    }
    Ok(Action::Forward {
        destinations,
        total,
    })
}

fn compile_redirect(r: &config::Redirect, at: &str) -> Result<Redirect, Invalid> {
    let at = format!("{at}.redirect");
    if r.uri.is_none() && r.authority.is_none() && r.port.is_none() && r.scheme.is_none() {
        return Err(Invalid::new(
            at,
            "needs at least one of `uri`, `authority`, `port` or `scheme` (or it redirects to itself)",
        ));
    }
    if let Some(u) = &r.uri {
        path_like(u, &format!("{at}.uri"))?;
    }
    if let Some(s) = &r.scheme
        && (s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)))
    {
        return Err(Invalid::new(
            format!("{at}.scheme"),
            format!("`{s}` is not a URL scheme"),
        ));
    }
    let code = r.redirect_code.unwrap_or(301);
    if ![301, 302, 303, 307, 308].contains(&code) {
        return Err(Invalid::new(
            format!("{at}.redirectCode"),
            format!("must be 301, 302, 303, 307 or 308, got {code}"),
        ));
    }
    Ok(Redirect {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        port: r.port.map(|p| port(p, &format!("{at}.port"))).transpose()?,
        scheme: r.scheme.clone(),
        code,
    })
}

fn compile_direct(d: &config::DirectResponse, at: &str) -> Result<Action, Invalid> {
    if !(200..=599).contains(&d.status) {
        return Err(Invalid::new(
            format!("{at}.directResponse.status"),
            format!("must be 200–599, got {}", d.status),
        ));
    }
    Ok(Action::Direct {
        status: d.status,
        body: d
            .body
            .as_ref()
            .map(|b| b.string.clone())
            .unwrap_or_default(),
    })
}

fn port(p: u32, field: &str) -> Result<u16, Invalid> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Invalid::new(field, format!("must be 1–65535, got {p}")))
}

/// A path the proxy can send: starts with `/`, no spaces or control characters.
fn path_like(p: &str, field: &str) -> Result<(), Invalid> {
    if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Invalid::new(
            field,
            format!("`{p}` must start with `/` and hold no spaces or control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::NoMatch;

    fn compile(json: serde_json::Value) -> Result<Router, String> {
        let cfg: config::Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        Router::compile(&cfg).map_err(|e| e.to_string())
    }

    fn dest(host: &str, subset: &str, port: u32, weight: i64) -> serde_json::Value {
        serde_json::json!({"destination": {"host": host, "subset": subset, "port": {"number": port}}, "weight": weight})
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        use serde_json::json;
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                json!({"http": [{"route": [dest("a", "", 80, -1), dest("b", "", 80, 1)]}]}),
                "`http[0].route[0].weight`: must be between 0 and 2147483647, got -1",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 0), dest("b", "", 80, 0)]}]}),
                "`http[0].route`: the weights add up to 0",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 0, 1)]}]}),
                "`http[0].route[0].destination.port.number`: must be 1–65535, got 0",
            ),
            (
                json!({"http": [{"route": [dest("", "", 80, 1)]}]}),
                "`http[0].route[0].destination.host`: must not be empty",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)]}, {"match": [{}, {"uri": {"regex": "(["}}], "route": [dest("a", "", 80, 1)]}]}),
                "`http[1].match[1].uri.regex`: invalid regular expression",
            ),
            (
                json!({"http": [{"match": [{"headers": {"x": {"regex": "*"}}}], "route": [dest("a", "", 80, 1)]}]}),
                "`http[0].match[0].headers.x.regex`: invalid regular expression",
            ),
            (
                json!({"http": [{"match": [{"uri": {}}], "route": [dest("a", "", 80, 1)]}]}),
                "`http[0].match[0].uri`: needs one of `exact`, `prefix` or `regex`",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)], "redirect": {"uri": "/x"}}]}),
                "`http[0]`: give only one of `route`, `redirect` or `directResponse`",
            ),
            (
                json!({"http": [{"redirect": {"uri": "/x"}, "directResponse": {"status": 200}}]}),
                "`http[0]`: give only one of",
            ),
            (
                json!({"http": [{"name": "empty"}]}),
                "`http[0]`: needs one of",
            ),
            (
                json!({"http": [{"redirect": {"uri": "/x", "redirectCode": 200}}]}),
                "`http[0].redirect.redirectCode`: must be 301, 302, 303, 307 or 308, got 200",
            ),
            (
                json!({"http": [{"redirect": {}}]}),
                "`http[0].redirect`: needs at least one of",
            ),
            (
                json!({"http": [{"redirect": {"uri": "x"}}]}),
                "`http[0].redirect.uri`: `x` must start with `/`",
            ),
            (
                json!({"http": [{"redirect": {"scheme": "ht tp"}}]}),
                "`http[0].redirect.scheme`: `ht tp` is not a URL scheme",
            ),
            (
                json!({"http": [{"redirect": {"uri": "/x"}, "rewrite": {"uri": "/y"}}]}),
                "`http[0].rewrite`: only routes that forward",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)], "rewrite": {"uri": "v2"}}]}),
                "`http[0].rewrite.uri`: `v2` must start with `/`",
            ),
            (
                json!({"http": [{"directResponse": {"status": 700}}]}),
                "`http[0].directResponse.status`: must be 200–599, got 700",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)], "timeout": "soon"}]}),
                "`http[0].timeout`: `soon` is not a duration",
            ),
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)], "headers": {"response": {"set": {"x y": "1"}}}}]}),
                "`http[0].headers.response.set.x y`: `x y` is not a valid header name",
            ),
            (
                json!({"http": [{"route": [{"destination": {"host": "a"}, "headers": {"request": {"remove": [":path"]}}}]}]}),
                "`http[0].route[0].headers.request.remove[0]`",
            ),
            (
                json!({"http": [{"match": [{"port": 70000}], "route": [dest("a", "", 80, 1)]}]}),
                "`http[0].match[0].port`: must be 1–65535, got 70000",
            ),
            (
                json!({"http": [{"match": [{"queryParams": {"": {}}}], "route": [dest("a", "", 80, 1)]}]}),
                "`http[0].match[0].queryParams.`: a query parameter needs a name",
            ),
            // Serde refuses unknown and unsupported fields by name.
            (
                json!({"http": [{"route": [dest("a", "", 80, 1)], "fault": {}}]}),
                "unknown field `fault`",
            ),
            (
                json!({"http": [{"match": [{"sourceLabels": {}}], "route": [dest("a", "", 80, 1)]}]}),
                "unknown field `sourceLabels`",
            ),
            (json!({"routes": []}), "unknown field `routes`"),
            (json!({"noMatch": "DROP"}), "unknown variant `DROP`"),
            (
                json!({"http": [{"route": [{"destination": {"subset": "v1"}}]}]}),
                "missing field `host`",
            ),
        ];
        for (json, want) in cases {
            let err = compile(json.clone()).expect_err(&json.to_string());
            assert!(err.starts_with(want), "{json}\n→ {err}");
        }
    }

    #[test]
    fn destinations_become_istio_cluster_names_with_weights() {
        let r = compile(serde_json::json!({"http": [
            {"route": [dest("reviews", "v1", 9080, 90), dest("reviews", "v2", 9080, 10), dest("reviews", "v3", 9080, 0)]},
            {"route": [{"destination": {"host": "ratings.default.svc.cluster.local"}, "weight": 0}]},
        ]}))
        .unwrap();
        let clusters = |i: usize| match &r.routes[i].action {
            Action::Forward {
                destinations,
                total,
            } => (
                destinations
                    .iter()
                    .map(|d| (d.cluster.as_str(), d.weight))
                    .collect::<Vec<_>>(),
                *total,
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            clusters(0),
            (
                vec![
                    ("outbound|9080|v1|reviews", 90),
                    ("outbound|9080|v2|reviews", 10),
                    ("outbound|9080|v3|reviews", 0)
                ],
                100
            )
        );
        assert_eq!(
            clusters(1),
            (
                vec![("outbound|80||ratings.default.svc.cluster.local", 1)],
                1
            ),
            "one destination takes everything, whatever its weight; port 80 by default"
        );
        assert_eq!(r.routes[0].name, "http[0]");
        assert!(!r.needs_port);
    }

    #[test]
    fn timeouts_rewrites_and_defaults() {
        let r = compile(serde_json::json!({"http": [
            {"name": "t", "route": [dest("a", "", 80, 1)], "timeout": "1.5s", "rewrite": {"uri": "", "authority": "x"}},
            {"route": [dest("a", "", 80, 1)], "timeout": "0s"},
            {"redirect": {"authority": "h"}},
            {"match": [{"port": 8080}], "directResponse": {"status": 503, "body": {"string": "down"}}},
        ]}))
        .unwrap();
        assert_eq!(r.routes[0].name, "t");
        assert_eq!(r.routes[0].timeout, Some(Some(Duration::from_millis(1500))));
        assert_eq!(r.routes[0].rewrite_uri, None, "an empty rewrite is none");
        assert_eq!(r.routes[0].rewrite_authority.as_deref(), Some("x"));
        assert_eq!(r.routes[1].timeout, Some(None), "0s: no timeout at all");
        assert_eq!(
            r.routes[2].action,
            Action::Redirect(Redirect {
                uri: None,
                authority: Some("h".into()),
                port: None,
                scheme: None,
                code: 301
            })
        );
        assert_eq!(
            r.routes[3].action,
            Action::Direct {
                status: 503,
                body: "down".into()
            }
        );
        assert!(r.needs_port);
        assert_eq!(r.no_match, NoMatch::Passthrough);
    }

    #[test]
    fn reads_table() {
        let reads = |http: serde_json::Value| {
            let cfg: config::Config =
                serde_json::from_value(serde_json::json!({ "http": http })).expect("parses");
            Router::compile(&cfg).expect("valid").reads
        };
        let names = |list: &[&str]| Some(list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let to = serde_json::json!([{"destination": {"host": "a"}}]);
        let cases = [
            (serde_json::json!([{"route": to}]), names(&[":path"])),
            (
                serde_json::json!([{"match": [{"headers": {"End-User": {"exact": "jason"}}, "method": {"exact": "GET"}}],
                    "route": to}, {"route": to}]),
                names(&[":path", ":method", "end-user"]),
            ),
            (
                serde_json::json!([{"redirect": {"uri": "/b"}}]),
                names(&[":path", ":scheme", ":authority"]),
            ),
            (
                serde_json::json!([{"match": [{"headers": {"a": {"exact": "1"}, "b": {"exact": "1"},
                    "c": {"exact": "1"}, "d": {"exact": "1"}, "e": {"exact": "1"}, "f": {"exact": "1"}}}],
                    "route": to}]),
                None,
            ),
        ];
        for (http, want) in cases {
            assert_eq!(reads(http.clone()), want, "{http}");
        }
    }
}
