//! The circuit-breaker policy: connection-pool limits and outlier detection, configured as Istio's DestinationRule
//! `trafficPolicy.connectionPool` and `trafficPolicy.outlierDetection`. Pure functions over plain values, tested by
//! tables; the host holds the shared counts (`meshwork.admit`, `meshwork.report`, `meshwork.eject`).

use std::{collections::BTreeMap, time::Duration as Std};

use meshwork_sdk::duration::Duration;
use serde::{Deserialize, de::IgnoredAny};

/// `pluginConfig` of the circuit-breaker filter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `connectionPool` for every cluster this filter's requests go to.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPool>,
    /// `outlierDetection` for every cluster this filter's requests go to.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// Per-cluster settings (by cluster name, e.g. `outbound|80|v2|reviews`), replacing the defaults above field by
    /// field group (`connectionPool` or `outlierDetection` as a whole).
    #[serde(default)]
    pub clusters: BTreeMap<String, TrafficPolicy>,
}

/// The part of a DestinationRule `trafficPolicy` this filter enforces.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// `connectionPool`.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPool>,
    /// `outlierDetection`.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `connectionPool`. The filter enforces the HTTP request limits; connection settings (`tcp`, and the connection
/// fields of `http`) are the host cluster's and are accepted here so a DestinationRule pastes in unchanged.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPool {
    /// `http`.
    #[serde(default)]
    pub http: Option<HttpPool>,
    /// `tcp` (`maxConnections`, `connectTimeout`, ...): host cluster settings.
    #[serde(default)]
    pub tcp: Option<IgnoredAny>,
}

/// `connectionPool.http`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpPool {
    /// Requests in flight to the cluster at once (Envoy's `max_requests`); default unlimited.
    #[serde(default)]
    pub http2_max_requests: Option<u32>,
    /// Requests waiting for a place (Envoy's `max_pending_requests`); default unlimited.
    #[serde(default)]
    pub http1_max_pending_requests: Option<u32>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub max_requests_per_connection: Option<IgnoredAny>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub max_retries: Option<IgnoredAny>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub idle_timeout: Option<IgnoredAny>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub h2_upgrade_policy: Option<IgnoredAny>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub use_client_protocol: Option<IgnoredAny>,
    /// Host cluster settings, accepted and not enforced here.
    #[serde(default)]
    pub max_concurrent_streams: Option<IgnoredAny>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// 5xx answers in a row (gateway errors and failures to answer included) that eject an endpoint; `0` disables.
    #[serde(default = "default_consecutive")]
    pub consecutive_5xx_errors: u32,
    /// 502/503/504 answers (or failures to answer) in a row that eject an endpoint; `0` (the default) disables.
    #[serde(default)]
    pub consecutive_gateway_errors: u32,
    /// Accepted for compatibility: ejections end by time on their own, there is no sweep to tune.
    #[serde(default)]
    pub interval: Option<Duration>,
    /// The first ejection's length; the n-th ejection of an endpoint lasts n times this (capped at `maxEjectionTime`).
    #[serde(default = "default_base_ejection")]
    pub base_ejection_time: Duration,
    /// Longest ejection (Envoy's `max_ejection_time`, default 300 s).
    #[serde(default = "default_max_ejection")]
    pub max_ejection_time: Duration,
    /// Most endpoints out at once, as a percentage of the cluster's; one may always be ejected.
    #[serde(default = "default_max_percent")]
    pub max_ejection_percent: u32,
    /// No ejection that would leave fewer healthy endpoints than this percentage.
    #[serde(default)]
    pub min_health_percent: u32,
}

fn default_consecutive() -> u32 {
    5
}

fn default_base_ejection() -> Duration {
    Duration(Std::from_secs(30))
}

fn default_max_ejection() -> Duration {
    Duration(Std::from_secs(300))
}

fn default_max_percent() -> u32 {
    10
}

/// A validated policy for one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// (max requests, max pending), when the pool is limited.
    pub pool: Option<(u32, u32)>,
    /// Outlier detection, when on.
    pub outlier: Option<Outlier>,
}

/// Validated outlier detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlier {
    /// Consecutive 5xx threshold (0 = off).
    pub consecutive_5xx: u32,
    /// Consecutive gateway-error threshold (0 = off).
    pub consecutive_gateway: u32,
    /// Base ejection time.
    pub base: Std,
    /// Longest ejection.
    pub max: Std,
    /// Max ejection percent.
    pub max_percent: u32,
    /// Min health percent.
    pub min_health: u32,
}

impl TrafficPolicy {
    fn limits(&self, at: &str) -> Result<Limits, String> {
        let pool = self.connection_pool.and_then(|p| p.http).map(|h| {
            (
                h.http2_max_requests.unwrap_or(u32::MAX),
                h.http1_max_pending_requests.unwrap_or(u32::MAX),
            )
        });
        let outlier = match self.outlier_detection {
            None => None,
            Some(o) => {
                if o.max_ejection_percent > 100 {
                    return Err(format!(
                        "{at}outlierDetection.maxEjectionPercent: {} is over 100",
                        o.max_ejection_percent
                    ));
                }
                if o.min_health_percent > 100 {
                    return Err(format!(
                        "{at}outlierDetection.minHealthPercent: {} is over 100",
                        o.min_health_percent
                    ));
                }
                if o.base_ejection_time.get().is_zero() {
                    return Err(format!(
                        "{at}outlierDetection.baseEjectionTime: must be more than 0"
                    ));
                }
                if o.max_ejection_time < o.base_ejection_time {
                    return Err(format!(
                        "{at}outlierDetection.maxEjectionTime: shorter than baseEjectionTime"
                    ));
                }
                (o.consecutive_5xx_errors > 0 || o.consecutive_gateway_errors > 0).then_some(
                    Outlier {
                        consecutive_5xx: o.consecutive_5xx_errors,
                        consecutive_gateway: o.consecutive_gateway_errors,
                        base: o.base_ejection_time.get(),
                        max: o.max_ejection_time.get(),
                        max_percent: o.max_ejection_percent,
                        min_health: o.min_health_percent,
                    },
                )
            }
        };
        Ok(Limits { pool, outlier })
    }
}

/// The validated configuration: defaults and per-cluster overrides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    default: Limits,
    clusters: BTreeMap<String, Limits>,
}

impl TryFrom<Config> for Policy {
    type Error = String;

    fn try_from(c: Config) -> Result<Self, String> {
        let top = TrafficPolicy {
            connection_pool: c.connection_pool,
            outlier_detection: c.outlier_detection,
        };
        let default = top.limits("")?;
        let mut clusters = BTreeMap::new();
        for (name, p) in &c.clusters {
            let merged = TrafficPolicy {
                connection_pool: p.connection_pool.or(top.connection_pool),
                outlier_detection: p.outlier_detection.or(top.outlier_detection),
            };
            clusters.insert(name.clone(), merged.limits(&format!("clusters.{name}."))?);
        }
        Ok(Policy { default, clusters })
    }
}

impl Policy {
    /// The limits for requests to `cluster`.
    pub fn for_cluster(&self, cluster: &str) -> Limits {
        self.clusters.get(cluster).copied().unwrap_or(self.default)
    }

    /// Whether outlier detection is on for any cluster (the filter watches responses only then).
    pub fn detects_outliers(&self) -> bool {
        self.default.outlier.is_some() || self.clusters.values().any(|l| l.outlier.is_some())
    }
}

/// How an answer counts for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not an error.
    Success,
    /// A 5xx other than 502/503/504.
    Error,
    /// 502/503/504, or no answer.
    Gateway,
}

/// Classifies an answer with `status`, `details` (`response.code_details`).
pub fn classify(status: u16, details: &str) -> Kind {
    if details.starts_with("upstream_reset_before_response_started")
        || details == "response_timeout"
    {
        return Kind::Gateway;
    }
    match status {
        502..=504 => Kind::Gateway,
        500..=599 => Kind::Error,
        _ => Kind::Success,
    }
}

/// Whether an endpoint whose consecutive counts are now (`c5xx`, `gateway`) crossed a threshold.
pub fn over_threshold(o: &Outlier, c5xx: u32, gateway: u32) -> bool {
    (o.consecutive_5xx > 0 && c5xx >= o.consecutive_5xx)
        || (o.consecutive_gateway > 0 && gateway >= o.consecutive_gateway)
}

/// How long the ejection of an endpoint ejected `times_before` times so far lasts: base × (times + 1), capped.
pub fn ejection_time(o: &Outlier, times_before: u32) -> Std {
    o.base
        .saturating_mul(times_before.saturating_add(1))
        .min(o.max)
}

/// Whether ejecting one more of `endpoints` (with `ejected` out already) keeps at least `min_health` percent healthy.
pub fn health_allows(o: &Outlier, endpoints: u32, ejected: u32) -> bool {
    let healthy_after = endpoints.saturating_sub(ejected + 1);
    u64::from(healthy_after) * 100 >= u64::from(o.min_health) * u64::from(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> Result<Policy, String> {
        let cfg: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        Policy::try_from(cfg)
    }

    fn outlier() -> Outlier {
        Outlier {
            consecutive_5xx: 5,
            consecutive_gateway: 3,
            base: Std::from_secs(30),
            max: Std::from_secs(100),
            max_percent: 10,
            min_health: 50,
        }
    }

    #[test]
    fn classify_table() {
        let cases: &[(u16, &str, Kind)] = &[
            (200, "via_upstream", Kind::Success),
            (404, "via_upstream", Kind::Success),
            (500, "via_upstream", Kind::Error),
            (501, "via_upstream", Kind::Error),
            (502, "via_upstream", Kind::Gateway),
            (503, "via_upstream", Kind::Gateway),
            (504, "via_upstream", Kind::Gateway),
            (
                503,
                "upstream_reset_before_response_started{connection_failure}",
                Kind::Gateway,
            ),
            (504, "response_timeout", Kind::Gateway),
        ];
        for (status, details, want) in cases {
            assert_eq!(classify(*status, details), *want, "{status} {details}");
        }
    }

    #[test]
    fn thresholds_times_and_health_table() {
        let o = outlier();
        let cases: &[(u32, u32, bool)] = &[
            (4, 0, false),
            (5, 0, true),
            (2, 2, false),
            (3, 3, true),
            (9, 1, true),
        ];
        for (c5, cg, want) in cases {
            assert_eq!(over_threshold(&o, *c5, *cg), *want, "{c5} {cg}");
        }
        let off = Outlier {
            consecutive_gateway: 0,
            ..o
        };
        assert!(
            !over_threshold(&off, 4, 40),
            "0 disables the gateway threshold"
        );
        let times: &[(u32, u64)] = &[(0, 30), (1, 60), (2, 90), (3, 100), (1000, 100)];
        for (before, secs) in times {
            assert_eq!(
                ejection_time(&o, *before),
                Std::from_secs(*secs),
                "{before}"
            );
        }
        // (endpoints, ejected, allowed at min health 50%)
        let health: &[(u32, u32, bool)] = &[
            (4, 0, true),
            (4, 1, true),
            (4, 2, false),
            (2, 0, true),
            (1, 0, false),
        ];
        for (n, out, want) in health {
            assert_eq!(health_allows(&o, *n, *out), *want, "{n} {out}");
        }
    }

    #[test]
    fn config_table() {
        let p = policy(serde_json::json!({
            "connectionPool": {"http": {"http2MaxRequests": 10, "http1MaxPendingRequests": 2}},
            "outlierDetection": {"consecutive5xxErrors": 3, "baseEjectionTime": "1s"},
            "clusters": {"canary": {"connectionPool": {"http": {"http2MaxRequests": 1}}}}
        }))
        .expect("valid");
        let d = p.for_cluster("other");
        assert_eq!(d.pool, Some((10, 2)));
        let o = d.outlier.expect("on");
        assert_eq!(
            (o.consecutive_5xx, o.base, o.max_percent),
            (3, Std::from_secs(1), 10)
        );
        let c = p.for_cluster("canary");
        assert_eq!(
            c.pool,
            Some((1, u32::MAX)),
            "the cluster's own pool, limits unset are unlimited"
        );
        assert_eq!(c.outlier, d.outlier, "outlier detection inherited");
        assert_eq!(
            policy(serde_json::json!({}))
                .expect("valid")
                .for_cluster("x"),
            Limits::default()
        );
        let off = policy(serde_json::json!({"outlierDetection": {"consecutive5xxErrors": 0}}))
            .expect("valid");
        assert_eq!(off.for_cluster("x").outlier, None, "0 and 0 turn it off");
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases: &[(serde_json::Value, &str)] = &[
            (
                serde_json::json!({"outlierDetection": {"maxEjectionPercent": 120}}),
                "outlierDetection.maxEjectionPercent",
            ),
            (
                serde_json::json!({"outlierDetection": {"baseEjectionTime": "0s"}}),
                "baseEjectionTime",
            ),
            (
                serde_json::json!({"clusters": {"c": {"outlierDetection": {"minHealthPercent": 101}}}}),
                "clusters.c.outlierDetection.minHealthPercent",
            ),
            (
                serde_json::json!({"connectionPool": {"http": {"maxRequests": 1}}}),
                "maxRequests",
            ),
        ];
        for (json, want) in cases {
            let err = policy(json.clone()).expect_err("invalid");
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn detects_outliers_table() {
        use serde_json::json;
        let od = json!({"consecutive5xxErrors": 5});
        let pool = json!({"http": {"http2MaxRequests": 10}});
        let cases = [
            (json!({}), false),
            (json!({"connectionPool": pool}), false),
            (json!({"outlierDetection": od}), true),
            (json!({"clusters": {"a": {"connectionPool": pool}}}), false),
            (json!({"clusters": {"a": {"outlierDetection": od}}}), true),
        ];
        for (json, want) in cases {
            assert_eq!(
                policy(json.clone()).unwrap().detects_outliers(),
                want,
                "{json}"
            );
        }
    }
}
