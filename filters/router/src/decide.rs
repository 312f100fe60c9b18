//! The routing decision, a pure function: the compiled [`Router`], the request's attributes and a source of random
//! numbers in, a [`Decision`] out. The proxy-wasm glue (`filter.rs`) only reads the request and carries the decision
//! out, so everything here is tested natively by the table tests at the bottom.
//!
//! - `http[]` routes are tried in order; the first one with a matching `match[]` entry wins (entries are ORed, the
//!   conditions of one entry ANDed; a route without `match` matches everything).
//! - Nothing matches: [`Decision::Pass`] (the host's route applies), or `404` with `noMatch: NOT_FOUND`.
//! - A forwarding route draws one destination by weight and may rewrite the path and authority (Istio semantics: the
//!   part of the path a `uri` `prefix` matched is replaced, the whole path for `exact` and `regex`, and the leading
//!   `/` when the entry had no `uri` condition, because Istio then matches the prefix `/`).
//! - Redirects and direct responses are local replies.

use std::{borrow::Cow, time::Duration};

pub use crate::request::Request;
use crate::{
    config::NoMatch,
    headerops::HeaderOps,
    model::{Action, Dest, Match, Redirect, Route, Router},
    strmatch::StrMatch,
};

/// What the filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'r> {
    /// No route matched: leave the request alone.
    Pass,
    /// Answer it here (redirect, direct response, no match).
    Reply(Reply),
    /// Send it upstream.
    Forward(Forward<'r>),
}

/// A local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: u32,
    /// Its headers (`location` for a redirect, then the route's response `set` and `add`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// Where and how a request goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward<'r> {
    /// The index of the route that matched (for its header edits, [`Router::request_ops`]).
    pub route: usize,
    /// The index of the destination drawn.
    pub destination: usize,
    /// Its cluster, `outbound|PORT|SUBSET|HOST`.
    pub cluster: &'r str,
    /// The new `:path`, when rewritten.
    pub path: Option<String>,
    /// The new `:authority`, when rewritten.
    pub authority: Option<&'r str>,
    /// The upstream timeout to set: `None` leaves the host's, `Some(None)` removes it.
    pub timeout: Option<Option<Duration>>,
}

/// Routes `req` with `router`. `below(n)` must return a uniform random number in `0..n`; it is called once, and only
/// when a route with destinations matches.
pub fn decide<'r>(
    router: &'r Router,
    req: &Request<'_>,
    below: impl FnOnce(u64) -> u64,
) -> Decision<'r> {
    for (i, route) in router.routes.iter().enumerate() {
        let Some(matched) = matched_len(route, req) else {
            continue;
        };
        return match &route.action {
            Action::Forward {
                destinations,
                total,
            } => {
                let d = pick(destinations, below(*total));
                Decision::Forward(Forward {
                    route: i,
                    destination: d,
                    cluster: &destinations[d].cluster,
                    path: route
                        .rewrite_uri
                        .as_deref()
                        .map(|uri| format!("{uri}{}", &req.path()[matched..])),
                    authority: route.rewrite_authority.as_deref(),
                    timeout: route.timeout,
                })
            }
            Action::Redirect(r) => {
                let mut headers = vec![("location".to_string(), location(r, req))];
                headers.extend(reply_headers(&route.response_ops));
                Decision::Reply(Reply {
                    status: r.code,
                    headers,
                    body: String::new(),
                })
            }
            Action::Direct { status, body } => Decision::Reply(Reply {
                status: *status,
                headers: reply_headers(&route.response_ops).collect(),
                body: body.clone(),
            }),
        };
    }
    match router.no_match {
        NoMatch::Passthrough => Decision::Pass,
        NoMatch::NotFound => Decision::Reply(Reply {
            status: 404,
            headers: Vec::new(),
            body: "no route of the router filter matched this request\n".into(),
        }),
    }
}

/// If `route` matches, how many bytes at the start of the path its matching entry matched (what a `rewrite.uri`
/// replaces).
fn matched_len(route: &Route, req: &Request<'_>) -> Option<usize> {
    let slash = usize::from(req.path().starts_with('/'));
    if route.matches.is_empty() {
        return Some(slash);
    }
    let m = route.matches.iter().find(|m| matches(m, req))?;
    Some(match &m.uri {
        Some(StrMatch::Prefix(p)) => p.len(),
        Some(_) => req.path_only().len(),
        None => slash,
    })
}

fn matches(m: &Match, req: &Request<'_>) -> bool {
    let one = |cond: &Option<StrMatch>, name: &str| match cond {
        None => true,
        Some(c) => req.header(name).is_some_and(|v| c.matches(&v)),
    };
    let uri_ok = match &m.uri {
        None => true,
        Some(u) if m.ignore_uri_case => u.matches_ignore_case(req.path_only()),
        Some(u) => u.matches(req.path_only()),
    };
    uri_ok
        && one(&m.scheme, ":scheme")
        && one(&m.method, ":method")
        && one(&m.authority, ":authority")
        && m.port.is_none_or(|p| req.port == Some(p))
        && m.headers
            .iter()
            .all(|(k, c)| req.header(k).is_some_and(|v| c.matches(&v)))
        && !m
            .without_headers
            .iter()
            .any(|(k, c)| req.header(k).is_some_and(|v| c.matches(&v)))
        && m.query_params
            .iter()
            .all(|(k, c)| req.query_param(k).is_some_and(|v| c.matches(v)))
}

/// The destination `draw` (in `0..total`) lands on: each gets a run of draws as long as its weight.
fn pick(destinations: &[Dest], mut draw: u64) -> usize {
    for (i, d) in destinations.iter().enumerate() {
        if draw < d.weight {
            return i;
        }
        draw -= d.weight;
    }
    // Unreachable with draw < total; the last destination with weight is the safe answer.
    destinations.iter().rposition(|d| d.weight > 0).unwrap_or(0)
}

/// The `location` of a redirect (as Envoy builds it): each part the redirect gives replaces the request's; the query
/// stays unless the new `uri` has one; a scheme change drops an explicit default port of the old scheme.
fn location(r: &Redirect, req: &Request<'_>) -> String {
    let old_scheme = req.header(":scheme").unwrap_or(Cow::Borrowed("http"));
    let scheme = r.scheme.as_deref().unwrap_or(&old_scheme);
    let host = match &r.authority {
        Some(a) => Cow::Borrowed(a.as_str()),
        None => req.header(":authority").unwrap_or_default(),
    };
    let (bare, port) = split_port(&host);
    let default_port = match &*old_scheme {
        "https" => "443",
        _ => "80",
    };
    let host = match (r.port, port) {
        (Some(p), _) => format!("{bare}:{p}"),
        (None, Some(p)) if scheme != old_scheme && p == default_port => bare.to_string(),
        _ => host.into_owned(),
    };
    let path = match &r.uri {
        Some(u) if u.contains('?') => u.clone(),
        Some(u) => format!("{u}{}", req.query_suffix()),
        None => req.path().to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// `host:port` → (`host`, `port`); an IPv6 literal keeps its brackets.
fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rfind(':') {
        Some(i) if !host.ends_with(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&host[..i], Some(&host[i + 1..]))
        }
        _ => (host, None),
    }
}

/// The response edits that make sense on a local reply: `set`, then `add`.
fn reply_headers(ops: &HeaderOps) -> impl Iterator<Item = (String, String)> + '_ {
    ops.set.iter().chain(&ops.add).cloned()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::config::Config;

    fn router(http: Value) -> Router {
        let cfg: Config = serde_json::from_value(http).unwrap();
        Router::compile(&cfg).unwrap()
    }

    fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h = vec![
            (":authority".to_string(), "reviews:9080".to_string()),
            (":path".into(), path.into()),
            (":method".into(), method.into()),
            (":scheme".into(), "http".into()),
        ];
        // A pseudo-header in `extra` replaces the default one.
        for (k, v) in extra {
            match h
                .iter_mut()
                .find(|(name, _)| name == k && k.starts_with(':'))
            {
                Some(slot) => slot.1 = v.to_string(),
                None => h.push((k.to_string(), v.to_string())),
            }
        }
        h
    }

    /// The cluster (or `pass`, or `STATUS location-or-body`) a request gets, with draw `draw`.
    fn outcome(r: &Router, method: &str, path: &str, extra: &[(&str, &str)], draw: u64) -> String {
        let h = headers(method, path, extra);
        match decide(r, &Request::new(&h, Some(9080)), |n| draw.min(n - 1)) {
            Decision::Pass => "pass".into(),
            Decision::Forward(f) => f.cluster.into(),
            Decision::Reply(r) => match r.headers.iter().find(|(k, _)| k == "location") {
                Some((_, l)) => format!("{} {l}", r.status),
                None => format!("{} {}", r.status, r.body),
            },
        }
    }

    fn to(subset: &str) -> Value {
        json!({"destination": {"host": "reviews", "subset": subset}})
    }

    #[test]
    fn match_conditions_table() {
        let r = router(json!({"http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("jason")]},
            {"match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}], "route": [to("api-get")]},
            {"match": [{"uri": {"exact": "/Exact"}, "ignoreUriCase": true}], "route": [to("exact-ci")]},
            {"match": [{"uri": {"regex": "/item/[0-9]+"}}], "route": [to("item")]},
            {"match": [{"queryParams": {"debug": {"exact": "1"}}}, {"queryParams": {"trace": {}}}], "route": [to("query")]},
            {"match": [{"uri": {"prefix": "/wo"}, "withoutHeaders": {"x-canary": {}}}], "route": [to("no-canary")]},
            {"match": [{"uri": {"prefix": "/wo"}, "withoutHeaders": {"x-canary": {"exact": "off"}}}], "route": [to("canary-not-off")]},
            {"match": [{"authority": {"prefix": "ratings"}}], "route": [to("authority")]},
            {"match": [{"headers": {"x-multi": {"exact": "a,b"}}}], "route": [to("multi")]},
            {"match": [{"port": 9090}], "route": [to("port-9090")]},
            {"match": [{"port": 9080, "uri": {"prefix": "/port"}}], "route": [to("port-9080")]},
            {"match": [{"scheme": {"exact": "https"}}], "route": [to("https")]},
        ]}));
        let cases: &[(&str, &str, &[(&str, &str)], &str)] = &[
            (
                "GET",
                "/",
                &[("end-user", "jason")],
                "outbound|80|jason|reviews",
            ),
            (
                "GET",
                "/",
                &[("End-User", "jason")],
                "outbound|80|jason|reviews",
            ),
            ("GET", "/", &[("end-user", "jasonx")], "pass"),
            ("GET", "/api/v1", &[], "outbound|80|api-get|reviews"),
            ("POST", "/api/v1", &[], "pass"),
            ("GET", "/apix?a=b", &[], "outbound|80|api-get|reviews"),
            ("GET", "/x/api", &[], "pass"),
            ("GET", "/EXACT", &[], "outbound|80|exact-ci|reviews"),
            ("GET", "/exact?q=1", &[], "outbound|80|exact-ci|reviews"),
            ("GET", "/exact/", &[], "pass"),
            ("GET", "/item/42", &[], "outbound|80|item|reviews"),
            ("GET", "/item/42?x=1", &[], "outbound|80|item|reviews"),
            ("GET", "/item/4x", &[], "pass"),
            ("GET", "/q?debug=1", &[], "outbound|80|query|reviews"),
            ("GET", "/q?a=2&debug=1", &[], "outbound|80|query|reviews"),
            ("GET", "/q?debug=10", &[], "pass"),
            ("GET", "/q?trace", &[], "outbound|80|query|reviews"),
            ("GET", "/q?trace=", &[], "outbound|80|query|reviews"),
            ("GET", "/q?tracer=1", &[], "pass"),
            ("GET", "/wo", &[], "outbound|80|no-canary|reviews"),
            (
                "GET",
                "/wo",
                &[("x-canary", "on")],
                "outbound|80|canary-not-off|reviews",
            ),
            ("GET", "/wo", &[("x-canary", "off")], "pass"),
            (
                "GET",
                "/",
                &[(":authority", "ratings.default")],
                "outbound|80|authority|reviews",
            ),
            ("GET", "/", &[(":authority", "xratings")], "pass"),
            (
                "GET",
                "/",
                &[("x-multi", "a"), ("x-multi", "b")],
                "outbound|80|multi|reviews",
            ),
            ("GET", "/", &[("x-multi", "a")], "pass"),
            ("GET", "/port", &[], "outbound|80|port-9080|reviews"),
            (
                "GET",
                "/",
                &[(":scheme", "https")],
                "outbound|80|https|reviews",
            ),
            ("GET", "/", &[], "pass"),
        ];
        for (method, path, extra, want) in cases {
            assert_eq!(
                &outcome(&r, method, path, extra, 0),
                want,
                "{method} {path} {extra:?}"
            );
        }
        // Without the port (the host was not asked for it), a port condition does not hold.
        let h = headers("GET", "/port", &[]);
        assert_eq!(decide(&r, &Request::new(&h, None), |_| 0), Decision::Pass);
    }

    #[test]
    fn first_matching_route_wins_and_no_match_is_configurable() {
        let routes = json!([
            {"match": [{"uri": {"prefix": "/a"}}], "route": [to("first")]},
            {"match": [{"uri": {"prefix": "/"}}], "route": [to("second")]},
        ]);
        let pass = router(json!({"http": routes}));
        assert_eq!(
            outcome(&pass, "GET", "/a", &[], 0),
            "outbound|80|first|reviews"
        );
        assert_eq!(
            outcome(&pass, "GET", "/b", &[], 0),
            "outbound|80|second|reviews"
        );
        let strict = router(json!({"http": [routes[0].clone()], "noMatch": "NOT_FOUND"}));
        assert_eq!(
            outcome(&strict, "GET", "/b", &[], 0),
            "404 no route of the router filter matched this request\n"
        );
        let empty = router(json!({}));
        assert_eq!(outcome(&empty, "GET", "/", &[], 0), "pass");
        let catch_all = router(json!({"http": [{"route": [to("all")]}]}));
        assert_eq!(
            outcome(&catch_all, "DELETE", "/x", &[], 0),
            "outbound|80|all|reviews"
        );
    }

    #[test]
    fn weighted_draws_cover_each_destination_by_its_weight() {
        let r = router(json!({"http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 90},
            {"destination": {"host": "reviews", "subset": "off", "port": {"number": 9080}}, "weight": 0},
            {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}, "weight": 10},
        ]}]}));
        let cases: &[(u64, &str)] = &[
            (0, "outbound|9080|v1|reviews"),
            (89, "outbound|9080|v1|reviews"),
            (90, "outbound|9080|v2|reviews"),
            (99, "outbound|9080|v2|reviews"),
        ];
        for (draw, want) in cases {
            assert_eq!(&outcome(&r, "GET", "/", &[], *draw), want, "draw {draw}");
        }
        // Every draw in 0..total, counted: exactly the weights.
        let mut counts = [0; 3];
        let h = headers("GET", "/", &[]);
        for draw in 0..100 {
            let mut asked = 0;
            match decide(&r, &Request::new(&h, None), |n| {
                asked = n;
                draw
            }) {
                Decision::Forward(f) => counts[f.destination] += 1,
                other => panic!("{other:?}"),
            }
            assert_eq!(asked, 100, "the draw is over the sum of the weights");
        }
        assert_eq!(counts, [90, 0, 10]);
    }

    #[test]
    fn rewrites_follow_istio() {
        let r = router(json!({"http": [
            {"match": [{"uri": {"prefix": "/api/"}}], "rewrite": {"uri": "/"}, "route": [to("a")]},
            {"match": [{"uri": {"prefix": "/API2", }, "ignoreUriCase": true}], "rewrite": {"uri": "/v2"}, "route": [to("a")]},
            {"match": [{"uri": {"exact": "/old"}}], "rewrite": {"uri": "/new", "authority": "new.host"}, "route": [to("a")]},
            {"match": [{"uri": {"regex": "/r/[a-z]+"}}], "rewrite": {"uri": "/regex"}, "route": [to("a")]},
            {"match": [{"headers": {"x-rw": {}}}], "rewrite": {"uri": "/pre"}, "route": [to("a")]},
            {"match": [{"uri": {"prefix": "/keep"}}], "rewrite": {"authority": "only.host"}, "route": [to("a")], "timeout": "250ms"},
        ]}));
        /// A request and what it should become.
        struct Case {
            path: &'static str,
            header: Option<(&'static str, &'static str)>,
            new_path: Option<&'static str>,
            new_authority: Option<&'static str>,
            timeout: Option<Option<Duration>>,
        }
        let case = |path, new_path| Case {
            path,
            header: None,
            new_path,
            new_authority: None,
            timeout: None,
        };
        let cases = [
            case("/api/reviews?x=1", Some("/reviews?x=1")),
            case("/api2/list", Some("/v2/list")),
            Case {
                new_authority: Some("new.host"),
                ..case("/old?q", Some("/new?q"))
            },
            case("/r/abc?z=9", Some("/regex?z=9")),
            // No `uri` condition: Istio matched the prefix `/`, and that is what the rewrite replaces.
            Case {
                header: Some(("x-rw", "1")),
                ..case("/foo", Some("/prefoo"))
            },
            Case {
                new_authority: Some("only.host"),
                timeout: Some(Some(Duration::from_millis(250))),
                ..case("/keep/me", None)
            },
        ];
        for c in cases {
            let h = headers("GET", c.path, c.header.as_slice());
            let Decision::Forward(f) = decide(&r, &Request::new(&h, None), |_| 0) else {
                panic!("{}: not forwarded", c.path);
            };
            assert_eq!(f.path.as_deref(), c.new_path, "{}", c.path);
            assert_eq!(f.authority, c.new_authority, "{}", c.path);
            assert_eq!(f.timeout, c.timeout, "{}", c.path);
        }
    }

    #[test]
    fn redirects_and_direct_responses_are_local_replies() {
        let r = router(json!({"http": [
            {"match": [{"uri": {"prefix": "/moved"}}], "redirect": {"uri": "/new"}},
            {"match": [{"uri": {"prefix": "/q"}}], "redirect": {"uri": "/n?fixed=1", "redirectCode": 308}},
            {"match": [{"uri": {"prefix": "/secure"}}], "redirect": {"scheme": "https"}},
            {"match": [{"uri": {"prefix": "/host"}}], "redirect": {"authority": "other.example", "port": 8443, "redirectCode": 302}},
            {"match": [{"uri": {"prefix": "/v6"}}], "redirect": {"port": 81}},
            {"match": [{"uri": {"prefix": "/down"}}], "directResponse": {"status": 503, "body": {"string": "maintenance"}},
             "headers": {"response": {"set": {"retry-after": "60"}, "add": {"x-a": "1"}}}},
            {"match": [{"uri": {"prefix": "/empty"}}], "directResponse": {"status": 204}},
        ]}));
        let cases: &[(&str, &[(&str, &str)], &str)] = &[
            ("/moved/x?a=1", &[], "301 http://reviews:9080/new?a=1"),
            ("/q?a=1", &[], "308 http://reviews:9080/n?fixed=1"),
            (
                "/secure/p?z",
                &[(":authority", "shop:80")],
                "301 https://shop/secure/p?z",
            ),
            ("/host/p", &[], "302 http://other.example:8443/host/p"),
            ("/down", &[], "503 maintenance"),
            ("/empty", &[], "204 "),
        ];
        for (path, extra, want) in cases {
            assert_eq!(&outcome(&r, "GET", path, extra, 0), want, "{path}");
        }
        let location = |authority: &str, path: &str| {
            let h = vec![
                (":authority".to_string(), authority.to_string()),
                (":path".into(), path.into()),
                (":scheme".into(), "http".into()),
            ];
            match decide(&r, &Request::new(&h, None), |_| 0) {
                Decision::Reply(rep) => rep.headers[0].1.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            location("shop:80", "/secure?z"),
            "https://shop/secure?z",
            "the old default port goes"
        );
        assert_eq!(location("shop:8080", "/secure"), "https://shop:8080/secure");
        assert_eq!(location("shop", "/secure"), "https://shop/secure");
        assert_eq!(location("[::1]:9080", "/v6"), "http://[::1]:81/v6");
        assert_eq!(location("[::1]", "/v6"), "http://[::1]:81/v6");
        let h = headers("GET", "/down", &[]);
        let Decision::Reply(rep) = decide(&r, &Request::new(&h, None), |_| 0) else {
            panic!("a reply");
        };
        assert_eq!(
            rep.headers,
            vec![
                ("retry-after".into(), "60".into()),
                ("x-a".into(), "1".into())
            ]
        );
    }
}
