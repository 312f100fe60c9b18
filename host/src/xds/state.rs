//! What the client holds — per type URL, name → (version, converted resource) — and the [`Config`] it adds up to.
//!
//! Resources are converted (and so validated one by one) when they arrive; [`State::build`] then assembles a config
//! from all of them: each listener with its route configuration (RDS or inline) and its ECDS plugins, every cluster
//! with its endpoints. It is [`Incomplete`] while something a listener or a route names has not arrived, and the
//! client keeps serving the config it applied last. The admin address, workers and drain timeout are not xDS's: they
//! come in `base`.

use std::collections::{BTreeMap, BTreeSet};

use super::convert::{
    CLUSTER, ENDPOINTS, EXTENSION, LISTENER, ROUTE, SECRET,
    listener::{PluginRef, Routes, XdsListener},
    resource::{Resource, kind},
    route::RouteConfig,
    tls::SdsSecret,
};
use crate::config::{Config, plugin::WasmPlugin, schema};

/// A held resource and the version the server gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// The server's version of it.
    pub version: String,
    /// The converted resource.
    pub resource: Resource,
}

/// The config cannot be assembled yet: what is missing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("waiting for {}", .0.join(", "))]
pub struct Incomplete(pub Vec<String>);

/// Everything held, by type URL then name.
#[derive(Clone, Debug, Default)]
pub struct State {
    held: BTreeMap<&'static str, BTreeMap<String, Held>>,
    answered: BTreeSet<&'static str>,
    /// Secret names provided locally (the certificate agent's `default`), never asked of the server.
    local_secrets: BTreeSet<String>,
}

impl State {
    /// An empty state whose secrets named `local` come from this proxy, not over SDS.
    pub fn with_local_secrets(local: impl IntoIterator<Item = String>) -> Self {
        State {
            local_secrets: local.into_iter().collect(),
            ..State::default()
        }
    }

    /// The SDS secrets held.
    pub fn secrets(&self) -> impl Iterator<Item = (&String, &SdsSecret)> {
        self.of(SECRET).filter_map(|(n, r)| match r {
            Resource::Secret(s) => Some((n, s)),
            _ => None,
        })
    }

    /// Holds `held` as `name` of `type_url`; returns what it replaces.
    pub fn insert(&mut self, type_url: &'static str, name: String, held: Held) -> Option<Held> {
        self.held.entry(type_url).or_default().insert(name, held)
    }

    /// Drops `name` of `type_url`; returns what was held.
    pub fn remove(&mut self, type_url: &'static str, name: &str) -> Option<Held> {
        self.held.get_mut(type_url)?.remove(name)
    }

    /// Puts back what [`State::insert`] or [`State::remove`] returned.
    pub fn restore(&mut self, type_url: &'static str, name: String, previous: Option<Held>) {
        match previous {
            Some(h) => {
                self.insert(type_url, name, h);
            }
            None => {
                self.remove(type_url, &name);
            }
        }
    }

    /// Records that the server answered a wildcard subscription of `type_url`; returns whether it had before.
    pub fn mark_answered(&mut self, type_url: &'static str) -> bool {
        !self.answered.insert(type_url)
    }

    /// Forgets [`State::mark_answered`] (to undo a response).
    pub fn unmark_answered(&mut self, type_url: &'static str) {
        self.answered.remove(type_url);
    }

    /// Name → version of everything held of `type_url`.
    pub fn versions(&self, type_url: &str) -> BTreeMap<String, String> {
        self.held
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(n, h)| (n.clone(), h.version.clone()))
            .collect()
    }

    fn of(&self, type_url: &str) -> impl Iterator<Item = (&String, &Resource)> {
        self.held
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(n, h)| (n, &h.resource))
    }

    fn get(&self, type_url: &str, name: &str) -> Option<&Resource> {
        self.held.get(type_url)?.get(name).map(|h| &h.resource)
    }

    fn listeners(&self) -> impl Iterator<Item = (&String, &XdsListener)> {
        self.of(LISTENER).filter_map(|(n, r)| match r {
            Resource::Listener(Some(l)) => Some((n, l)),
            _ => None,
        })
    }

    /// The names of the RDS, EDS and ECDS resources the held listeners and clusters refer to, by type URL.
    pub fn wanted(&self) -> BTreeMap<&'static str, BTreeSet<String>> {
        let mut out: BTreeMap<&'static str, BTreeSet<String>> =
            [ROUTE, ENDPOINTS, EXTENSION, SECRET]
                .into_iter()
                .map(|t| (t, BTreeSet::new()))
                .collect();
        for (_, l) in self.listeners() {
            if let Routes::Rds(name) = &l.routes {
                out.entry(ROUTE).or_default().insert(name.clone());
            }
            out.entry(EXTENSION)
                .or_default()
                .extend(l.plugins.iter().map(|p| p.name.clone()));
            if let Some(t) = &l.listener.tls {
                let names = std::iter::once(&t.certificate).chain(&t.trusted_ca);
                out.entry(SECRET).or_default().extend(names.cloned());
            }
        }
        for (_, r) in self.of(CLUSTER) {
            let Resource::Cluster(c) = r else { continue };
            if let Some(name) = &c.eds {
                out.entry(ENDPOINTS).or_default().insert(name.clone());
            }
            if let Some(t) = &c.cluster.tls {
                let names = t.certificate.iter().chain(std::iter::once(&t.trusted_ca));
                out.entry(SECRET).or_default().extend(names.cloned());
            }
        }
        if let Some(secrets) = out.get_mut(SECRET) {
            secrets.retain(|n| !self.local_secrets.contains(n));
        }
        out
    }

    /// The config everything held adds up to, on top of `base` (whose listeners and clusters are replaced).
    pub fn build(&self, base: &Config) -> Result<Config, Incomplete> {
        let mut missing: Vec<String> = [LISTENER, CLUSTER]
            .into_iter()
            .filter(|t| !self.answered.contains(t))
            .map(|t| format!("the first {} response", kind(t)))
            .collect();
        let mut config = Config {
            listeners: Vec::new(),
            clusters: Vec::new(),
            ..base.clone()
        };
        let mut used = BTreeSet::new();
        for (name, l) in self.listeners() {
            let routes = match &l.routes {
                Routes::Inline(rc) => Some(rc),
                Routes::Rds(rds) => match self.get(ROUTE, rds) {
                    Some(Resource::Routes(rc)) => Some(rc),
                    _ => {
                        missing.push(format!("route config {rds} (listener {name})"));
                        None
                    }
                },
            };
            let plugins = self.plugins(&l.plugins, name, &mut missing);
            if let Some(rc) = routes {
                used.extend(rc.clusters().map(str::to_string));
                config.listeners.push(assemble(l, rc, &plugins));
            }
        }
        for (_, r) in self.of(CLUSTER) {
            let Resource::Cluster(c) = r else { continue };
            let mut cluster = c.cluster.clone();
            if let Some(eds) = &c.eds {
                match self.get(ENDPOINTS, eds) {
                    Some(Resource::Endpoints(e)) => cluster.endpoints = e.clone(),
                    _ if used.contains(&cluster.name) => {
                        missing.push(format!("endpoints {eds} (cluster {})", cluster.name));
                    }
                    _ => {}
                }
            }
            config.clusters.push(cluster);
        }
        for name in &used {
            if !config.clusters.iter().any(|c| c.name == *name) {
                missing.push(format!("cluster {name}"));
            }
        }
        match missing.is_empty() {
            true => Ok(config),
            false => Err(Incomplete(missing)),
        }
    }

    /// The listener's plugins in chain order, each with its filter name; the first gets the highest priority.
    fn plugins(
        &self,
        refs: &[PluginRef],
        listener: &str,
        missing: &mut Vec<String>,
    ) -> Vec<(String, WasmPlugin)> {
        let mut out = Vec::with_capacity(refs.len());
        for (i, r) in refs.iter().enumerate() {
            match self.get(EXTENSION, &r.name) {
                Some(Resource::Plugin(p)) => out.push((
                    r.name.clone(),
                    WasmPlugin {
                        priority: Some(i32::try_from(refs.len() - i).unwrap_or(i32::MAX)),
                        disabled: r.disabled,
                        ..p.clone()
                    },
                )),
                _ => missing.push(format!("plugin {} (listener {listener})", r.name)),
            }
        }
        out
    }
}

/// A schema listener: `l`'s settings, `rc`'s virtual hosts, `plugins` on the listener and the routes' switches as
/// route entries.
fn assemble(
    l: &XdsListener,
    rc: &RouteConfig,
    plugins: &[(String, WasmPlugin)],
) -> schema::Listener {
    let virtual_hosts = rc
        .virtual_hosts
        .iter()
        .map(|v| schema::VirtualHost {
            name: v.name.clone(),
            domains: v.domains.clone(),
            routes: v
                .routes
                .iter()
                .map(|r| schema::Route {
                    filters: route_filters(&r.filters, plugins),
                    ..r.route.clone()
                })
                .collect(),
        })
        .collect();
    schema::Listener {
        filters: plugins.iter().map(|(_, p)| p.clone()).collect(),
        virtual_hosts,
        ..l.listener.clone()
    }
}

/// A route's entries for its switches: a plugin disabled on the listener and enabled here is added whole; one enabled
/// on the listener and disabled here is removed (`disabled: true`). Switches for filters the listener does not have
/// are ignored, as Envoy does.
fn route_filters(
    switches: &BTreeMap<String, bool>,
    plugins: &[(String, WasmPlugin)],
) -> Vec<WasmPlugin> {
    let mut out = Vec::new();
    for (filter, &disabled) in switches {
        let Some((_, p)) = plugins.iter().find(|(n, _)| n == filter) else {
            continue;
        };
        match (p.disabled, disabled) {
            (true, false) => out.push(WasmPlugin {
                disabled: false,
                ..p.clone()
            }),
            (false, true) => out.push(WasmPlugin {
                name: p.name.clone(),
                disabled: true,
                ..WasmPlugin::default()
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use envoy_types::util::pack_any;
    use prost::Name;

    use super::*;
    use crate::xds::{
        convert::resource::{convert, known},
        testing as fx,
    };

    fn put<T: prost::Message + Name>(state: &mut State, msg: T) {
        let (name, resource) = convert(&T::type_url(), "", &pack_any(msg)).expect("valid");
        let t = known(&T::type_url()).expect("known type");
        state.insert(
            t,
            name,
            Held {
                version: "1".into(),
                resource,
            },
        );
    }

    /// CDS and LDS answered; a listener with two plugins (the second disabled) routing to an EDS and a static cluster.
    fn full() -> State {
        let mut s = State::default();
        s.mark_answered(CLUSTER);
        s.mark_answered(LISTENER);
        put(
            &mut s,
            fx::listener(
                "main",
                "127.0.0.1:0",
                "r",
                &[("authz/0", false), ("fault/0", true)],
            ),
        );
        let routes = vec![
            fx::with_switch(fx::to_cluster("/chaos", "eds"), "fault/0", false),
            fx::with_switch(fx::to_cluster("/open", "static"), "authz/0", true),
            fx::weighted("/", &[("eds", 1), ("static", 1)]),
        ];
        put(
            &mut s,
            fx::route_config("r", vec![fx::vhost("all", routes)]),
        );
        put(&mut s, fx::eds_cluster("eds"));
        put(&mut s, fx::static_cluster("static", &["127.0.0.1:2"]));
        put(&mut s, fx::cla("eds", &["127.0.0.1:1"]));
        put(
            &mut s,
            fx::wasm("authz/0", "authz", "builtin://authz", "{}", &[]),
        );
        put(
            &mut s,
            fx::wasm("fault/0", "fault", "builtin://fault", "{}", &[]),
        );
        s
    }

    #[test]
    fn a_complete_set_builds_the_config() {
        let base = Config {
            workers: 3,
            ..Config::default()
        };
        let config = full().build(&base).expect("complete");
        assert_eq!(config.workers, 3, "from the command line, not xDS");
        let l = &config.listeners[0];
        let filters: Vec<_> = l
            .filters
            .iter()
            .map(|p| (p.name.as_str(), p.priority, p.disabled))
            .collect();
        assert_eq!(
            filters,
            [("authz", Some(2), false), ("fault", Some(1), true)]
        );
        let routes = &l.virtual_hosts[0].routes;
        assert_eq!(
            routes[0].filters[0].name, "fault",
            "enabled on the route: the whole entry"
        );
        assert_eq!(routes[0].filters[0].url.as_deref(), Some("builtin://fault"));
        assert!(!routes[0].filters[0].disabled);
        assert_eq!(
            (
                routes[1].filters[0].name.as_str(),
                routes[1].filters[0].disabled
            ),
            ("authz", true)
        );
        assert_eq!(
            routes[1].filters[0].url, None,
            "a removal names the plugin only"
        );
        assert!(routes[2].filters.is_empty());
        let clusters: Vec<_> = config
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.endpoints.clone()))
            .collect();
        assert_eq!(
            clusters,
            [
                ("eds", vec!["127.0.0.1:1".to_string()]),
                ("static", vec!["127.0.0.1:2".to_string()])
            ]
        );
    }

    #[test]
    fn missing_pieces_make_it_incomplete() {
        let without = |t: &'static str, name: &str| {
            let mut s = full();
            s.remove(t, name);
            s.build(&Config::default()).expect_err("incomplete").0
        };
        let cases = [
            (ROUTE, "r", "route config r (listener main)"),
            (EXTENSION, "fault/0", "plugin fault/0 (listener main)"),
            (CLUSTER, "static", "cluster static"),
            (ENDPOINTS, "eds", "endpoints eds (cluster eds)"),
        ];
        for (t, name, want) in cases {
            assert_eq!(without(t, name), [want], "{t} {name}");
        }
        let mut s = full();
        s.unmark_answered(LISTENER);
        assert_eq!(
            s.build(&Config::default()).expect_err("no LDS yet").0,
            ["the first listener response"]
        );
        let mut unused = State::default();
        unused.mark_answered(CLUSTER);
        unused.mark_answered(LISTENER);
        put(&mut unused, fx::eds_cluster("later"));
        let config = unused
            .build(&Config::default())
            .expect("an unused EDS cluster may wait for its endpoints");
        assert!(config.clusters[0].endpoints.is_empty());
    }

    #[test]
    fn wanted_names_follow_the_references() {
        let s = full();
        let wanted = s.wanted();
        let names = |t| wanted[t].iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(ROUTE), ["r"]);
        assert_eq!(names(ENDPOINTS), ["eds"]);
        assert_eq!(names(EXTENSION), ["authz/0", "fault/0"]);
        assert!(State::default().wanted().values().all(BTreeSet::is_empty));
    }

    #[test]
    fn route_switches_table() {
        let plugin = |name: &str, disabled| WasmPlugin {
            name: name.into(),
            url: Some("builtin://x".into()),
            disabled,
            ..Default::default()
        };
        let plugins = [
            ("on".to_string(), plugin("p-on", false)),
            ("off".to_string(), plugin("p-off", true)),
        ];
        /// (switches, expected (name, disabled, has url))
        type Case<'a> = (&'a [(&'a str, bool)], &'a [(&'a str, bool, bool)]);
        let cases: [Case<'_>; 5] = [
            (&[], &[]),
            (&[("on", true)], &[("p-on", true, false)]),
            (&[("on", false)], &[]),
            (&[("off", false)], &[("p-off", false, true)]),
            (&[("off", true), ("elsewhere", false)], &[]),
        ];
        for (switches, want) in cases {
            let switches = switches.iter().map(|(n, d)| (n.to_string(), *d)).collect();
            let got: Vec<_> = route_filters(&switches, &plugins)
                .into_iter()
                .map(|p| (p.name, p.disabled, p.url.is_some()))
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|(n, d, u)| (n.to_string(), *d, *u))
                .collect();
            assert_eq!(got, want, "{switches:?}");
        }
    }

    #[test]
    fn tls_listeners_and_clusters_want_their_secrets_except_local_ones() {
        let mut s = State::with_local_secrets(["default".to_string()]);
        put(
            &mut s,
            fx::with_tls(
                fx::listener("inbound", "127.0.0.1:15006", "inbound", &[]),
                fx::downstream_tls("default", "ROOTCA", "td"),
                true,
            ),
        );
        let mut c = fx::static_cluster("reviews", &["127.0.0.1:9080"]);
        c.transport_socket = Some(fx::upstream_tls(
            "client",
            "BUNDLE",
            "",
            &["spiffe://td/ns/a/sa/b"],
        ));
        put(&mut s, c);
        let want: BTreeSet<String> = ["BUNDLE", "ROOTCA", "client"].map(String::from).into();
        assert_eq!(s.wanted()[SECRET], want);
        assert_eq!(State::default().wanted()[SECRET], BTreeSet::new());
    }
}
