//! The fault policy: the checked config, and for each request whether it is delayed, aborted, or both. Pure
//! functions over plain values (random draws are arguments), so every decision is tested by tables without a host.
//!
//! As Envoy's fault filter: the delay and the abort are drawn independently; a request that gets both is held first,
//! then answered with the abort.

use std::time::Duration as Std;

use meshwork_sdk::{config::ConfigError, proxy_wasm::types::GrpcStatusCode};

use crate::config::{self, Config, invalid};
use crate::matching::Matcher;

/// The body of an abort reply (Envoy's words), and the `grpc-message` of a gRPC one.
pub const ABORT_BODY: &str = "fault filter abort";

/// The longest delay the host's `meshwork.delay` takes.
pub const MAX_DELAY: Std = Std::from_secs(300);

/// How often something happens: a random `u64` draw below the threshold hits, so the odds are exact to 2⁻⁶⁴.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chance {
    /// Every time (100%).
    Always,
    /// When the draw is below this (0 = never).
    Below(u64),
}

impl Chance {
    /// The chance of `percent` (0–100).
    pub fn percent(percent: f64) -> Chance {
        if percent >= 100.0 {
            Chance::Always
        } else {
            // 2^64 × share; `as` saturates, and a share below 1 keeps the product below 2^64.
            Chance::Below((percent.max(0.0) / 100.0 * 18_446_744_073_709_551_616.0) as u64)
        }
    }

    /// Whether uniform random `draw` hits.
    pub fn hits(self, draw: u64) -> bool {
        match self {
            Chance::Always => true,
            Chance::Below(t) => draw < t,
        }
    }
}

/// The answer an abort sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// This HTTP status, body [`ABORT_BODY`].
    Http(u16),
    /// A gRPC error: HTTP 200 with this `grpc-status` and `grpc-message: fault filter abort`.
    Grpc(GrpcStatusCode),
}

impl Reply {
    /// The reply for a request that is gRPC (`content-type: application/grpc...`) or not: an HTTP status becomes its
    /// gRPC status for a gRPC request, as Envoy's local replies do, so gRPC clients see an error and not a protocol
    /// failure.
    pub fn for_request(self, grpc_request: bool) -> Reply {
        match self {
            Reply::Http(status) if grpc_request => Reply::Grpc(grpc_of_http(status)),
            other => other,
        }
    }
}

/// gRPC's HTTP-to-gRPC status mapping (as Envoy's `Grpc::Utility::httpToGrpcStatus`).
pub fn grpc_of_http(status: u16) -> GrpcStatusCode {
    match status {
        400 => GrpcStatusCode::Internal,
        401 => GrpcStatusCode::Unauthenticated,
        403 => GrpcStatusCode::PermissionDenied,
        404 => GrpcStatusCode::Unimplemented,
        429 | 502..=504 => GrpcStatusCode::Unavailable,
        _ => GrpcStatusCode::Unknown,
    }
}

/// gRPC status names, as Istio's `grpcStatus` takes them.
const GRPC_NAMES: &[(&str, GrpcStatusCode)] = &[
    ("OK", GrpcStatusCode::Ok),
    ("CANCELLED", GrpcStatusCode::Cancelled),
    ("UNKNOWN", GrpcStatusCode::Unknown),
    ("INVALID_ARGUMENT", GrpcStatusCode::InvalidArgument),
    ("DEADLINE_EXCEEDED", GrpcStatusCode::DeadlineExceeded),
    ("NOT_FOUND", GrpcStatusCode::NotFound),
    ("ALREADY_EXISTS", GrpcStatusCode::AlreadyExists),
    ("PERMISSION_DENIED", GrpcStatusCode::PermissionDenied),
    ("RESOURCE_EXHAUSTED", GrpcStatusCode::ResourceExhausted),
    ("FAILED_PRECONDITION", GrpcStatusCode::FailedPrecondition),
    ("ABORTED", GrpcStatusCode::Aborted),
    ("OUT_OF_RANGE", GrpcStatusCode::OutOfRange),
    ("UNIMPLEMENTED", GrpcStatusCode::Unimplemented),
    ("INTERNAL", GrpcStatusCode::Internal),
    ("UNAVAILABLE", GrpcStatusCode::Unavailable),
    ("DATA_LOSS", GrpcStatusCode::DataLoss),
    ("UNAUTHENTICATED", GrpcStatusCode::Unauthenticated),
];

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long, and how often.
    pub delay: Option<(Std, Chance)>,
    /// What, and how often.
    pub abort: Option<(Reply, Chance)>,
    /// Which requests.
    pub matcher: Matcher,
}

impl TryFrom<Config> for Policy {
    type Error = ConfigError;

    fn try_from(c: Config) -> Result<Self, ConfigError> {
        if c.delay.is_none() && c.abort.is_none() {
            return Err(ConfigError {
                field: None,
                at: None,
                message: "give `delay`, `abort` or both (a fault with neither does nothing)".into(),
            });
        }
        Ok(Policy {
            delay: c.delay.map(delay).transpose()?,
            abort: c.abort.map(abort).transpose()?,
            matcher: Matcher::compile(&c.matches)?,
        })
    }
}

fn delay(d: config::Delay) -> Result<(Std, Chance), ConfigError> {
    const FIELD: &str = "delay.fixedDelay";
    let fixed = d
        .fixed_delay
        .ok_or_else(|| invalid(FIELD, "required (e.g. \"100ms\")"))?
        .get();
    if fixed < Std::from_millis(1) {
        return Err(invalid(FIELD, format!("{fixed:?} is under 1ms")));
    }
    if fixed > MAX_DELAY {
        let message = format!("{fixed:?} is over the longest delay, {MAX_DELAY:?}");
        return Err(invalid(FIELD, message));
    }
    Ok((fixed, chance(d.percentage, "delay")?))
}

fn abort(a: config::Abort) -> Result<(Reply, Chance), ConfigError> {
    let reply = match (a.http_status, a.grpc_status) {
        (Some(s), None) => match u16::try_from(s) {
            Ok(s) if (200..=599).contains(&s) => Reply::Http(s),
            _ => {
                let message = format!("{s} is not within 200 to 599");
                return Err(invalid("abort.httpStatus", message));
            }
        },
        (None, Some(name)) => match GRPC_NAMES.iter().find(|(n, _)| *n == name) {
            Some((_, code)) => Reply::Grpc(*code),
            None => {
                let names: Vec<&str> = GRPC_NAMES.iter().map(|(n, _)| *n).collect();
                let message = format!(
                    "unknown gRPC status `{name}`; use one of {}",
                    names.join(", ")
                );
                return Err(invalid("abort.grpcStatus", message));
            }
        },
        (None, None) => return Err(invalid("abort", "needs `httpStatus` or `grpcStatus`")),
        (Some(_), Some(_)) => {
            let message = "give only one of `httpStatus` and `grpcStatus`";
            return Err(invalid("abort", message));
        }
    };
    Ok((reply, chance(a.percentage, "abort")?))
}

/// `percentage` of `fault` (`delay` or `abort`); absent means no request, as in Istio.
fn chance(p: Option<config::Percent>, fault: &str) -> Result<Chance, ConfigError> {
    let value = p.map_or(0.0, |p| p.value);
    if !(0.0..=100.0).contains(&value) {
        let message = format!("{value} is not within 0 to 100");
        return Err(invalid(format!("{fault}.percentage.value"), message));
    }
    Ok(Chance::percent(value))
}

/// What happens to one selected request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fault {
    /// Hold it this long first.
    pub delay: Option<Std>,
    /// Then answer it with this instead of forwarding it.
    pub abort: Option<Reply>,
}

/// The faults for a request the matcher selected, from two independent uniform draws.
pub fn decide(p: &Policy, delay_draw: u64, abort_draw: u64) -> Fault {
    Fault {
        delay: p.delay.filter(|(_, c)| c.hits(delay_draw)).map(|(d, _)| d),
        abort: p.abort.filter(|(_, c)| c.hits(abort_draw)).map(|(r, _)| r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The policy of `json`, or the refusal as the host reports it.
    fn policy(json: serde_json::Value) -> Result<Policy, String> {
        let cfg: Config =
            meshwork_sdk::config::parse(json.to_string().as_bytes()).map_err(|e| e.to_string())?;
        Policy::try_from(cfg).map_err(|e| e.to_string())
    }

    const HALF: u64 = 1 << 63;
    const TENTH: u64 = 1_844_674_407_370_955_161; // ⌊2^64 / 10⌋

    #[test]
    fn chance_table() {
        // (percent, draw, hits)
        let cases: &[(f64, u64, bool)] = &[
            (100.0, u64::MAX, true),
            (100.0, 0, true),
            (0.0, 0, false),
            (0.0, u64::MAX, false),
            (50.0, HALF - 1, true),
            (50.0, HALF, false),
            (10.0, TENTH - 1024, true),
            (10.0, TENTH + 1024, false),
            (99.999, u64::MAX - (1 << 48), true), // the threshold is 2^64 × 10⁻⁵ ≈ 1.8 × 10¹⁴ below the top
            (99.999, u64::MAX, false),
            (0.0001, 0, true),
            (0.0001, 18_446_744_073_710, false), // just above 2^64 × 10⁻⁶
        ];
        for (percent, draw, want) in cases {
            assert_eq!(
                Chance::percent(*percent).hits(*draw),
                *want,
                "{percent}% draw {draw}"
            );
        }
    }

    #[test]
    fn decide_table() {
        let p = policy(json!({
            "delay": {"fixedDelay": "100ms", "percentage": {"value": 10.0}},
            "abort": {"httpStatus": 503, "percentage": {"value": 50.0}}
        }))
        .expect("valid");
        let d = Some(Std::from_millis(100));
        let a = Some(Reply::Http(503));
        // (delay draw, abort draw, expected)
        let cases: &[(u64, u64, Fault)] = &[
            (0, 0, Fault { delay: d, abort: a }),
            (TENTH - 1024, HALF - 1, Fault { delay: d, abort: a }),
            (
                TENTH + 1024,
                HALF - 1,
                Fault {
                    delay: None,
                    abort: a,
                },
            ),
            (
                0,
                HALF,
                Fault {
                    delay: d,
                    abort: None,
                },
            ),
            (u64::MAX, u64::MAX, Fault::default()),
        ];
        for (dd, ad, want) in cases {
            assert_eq!(decide(&p, *dd, *ad), *want, "draws {dd} {ad}");
        }
        let only_abort = policy(json!({"abort": {"grpcStatus": "UNAVAILABLE"}})).expect("valid");
        assert_eq!(
            decide(&only_abort, 0, 0),
            Fault::default(),
            "no percentage: no request, as in Istio"
        );
    }

    #[test]
    fn reply_for_grpc_requests_table() {
        // (configured, gRPC request, sent)
        let cases: &[(Reply, bool, Reply)] = &[
            (Reply::Http(503), false, Reply::Http(503)),
            (
                Reply::Http(503),
                true,
                Reply::Grpc(GrpcStatusCode::Unavailable),
            ),
            (
                Reply::Http(429),
                true,
                Reply::Grpc(GrpcStatusCode::Unavailable),
            ),
            (
                Reply::Http(400),
                true,
                Reply::Grpc(GrpcStatusCode::Internal),
            ),
            (
                Reply::Http(401),
                true,
                Reply::Grpc(GrpcStatusCode::Unauthenticated),
            ),
            (
                Reply::Http(403),
                true,
                Reply::Grpc(GrpcStatusCode::PermissionDenied),
            ),
            (
                Reply::Http(404),
                true,
                Reply::Grpc(GrpcStatusCode::Unimplemented),
            ),
            (Reply::Http(500), true, Reply::Grpc(GrpcStatusCode::Unknown)),
            (
                Reply::Grpc(GrpcStatusCode::NotFound),
                false,
                Reply::Grpc(GrpcStatusCode::NotFound),
            ),
        ];
        for (configured, grpc, want) in cases {
            assert_eq!(
                configured.for_request(*grpc),
                *want,
                "{configured:?} grpc {grpc}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases: &[(serde_json::Value, &str)] = &[
            (
                json!({}),
                "invalid pluginConfig: give `delay`, `abort` or both",
            ),
            (
                json!({"match": [{}]}),
                "invalid pluginConfig: give `delay`, `abort`",
            ),
            (json!({"delay": {}}), "at `delay.fixedDelay`: required"),
            (
                json!({"delay": {"fixedDelay": "0s"}}),
                "at `delay.fixedDelay`: 0ns is under 1ms",
            ),
            (
                json!({"delay": {"fixedDelay": "6m"}}),
                "at `delay.fixedDelay`: 360s is over",
            ),
            (
                json!({"delay": {"fixedDelay": "soon"}}),
                "at `delay.fixedDelay` (line 1",
            ),
            (
                json!({"delay": {"fixedDelay": "1s", "percentage": {"value": 100.5}}}),
                "at `delay.percentage.value`: 100.5 is not within 0 to 100",
            ),
            (
                json!({"abort": {"httpStatus": 503, "percentage": {"value": -1}}}),
                "at `abort.percentage.value`: -1 is not within 0 to 100",
            ),
            (
                json!({"abort": {"httpStatus": 600}}),
                "at `abort.httpStatus`: 600 is not within 200 to 599",
            ),
            (
                json!({"abort": {"httpStatus": 199}}),
                "at `abort.httpStatus`: 199",
            ),
            (
                json!({"abort": {"httpStatus": 70000}}),
                "at `abort.httpStatus`: 70000",
            ),
            (
                json!({"abort": {"grpcStatus": "UNAVAILABLEX"}}),
                "at `abort.grpcStatus`: unknown gRPC status `UNAVAILABLEX`; use one of OK, CANCELLED",
            ),
            (
                json!({"abort": {"grpcStatus": "unavailable"}}),
                "at `abort.grpcStatus`: unknown",
            ),
            (
                json!({"abort": {}}),
                "at `abort`: needs `httpStatus` or `grpcStatus`",
            ),
            (
                json!({"abort": {"httpStatus": 503, "grpcStatus": "INTERNAL"}}),
                "at `abort`: give only one",
            ),
            (
                json!({"abort": {"httpStatus": 503}, "match": [{"headers": {"x": {"regex": "("}}}]}),
                "at `match[0].headers.x.regex`: invalid regular expression",
            ),
            (
                json!({"abort": {"httpStatus": 503}, "delays": {}}),
                "unknown field `delays`",
            ),
            (
                json!({"abort": {"http2Error": "REFUSED_STREAM"}}),
                "unknown field `http2Error`",
            ),
            (
                json!({"delay": {"exponentialDelay": "1s"}}),
                "unknown field `exponentialDelay`",
            ),
            (
                json!({"delay": {"fixedDelay": "1s", "percent": 5}}),
                "unknown field `percent`",
            ),
        ];
        for (json, want) in cases {
            let err = policy(json.clone()).expect_err("invalid");
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn valid_configs() {
        let p = policy(json!({
            "delay": {"fixedDelay": "1.5s", "percentage": {"value": 0.5}},
            "abort": {"grpcStatus": "RESOURCE_EXHAUSTED", "percentage": {}}
        }))
        .expect("valid");
        assert_eq!(
            p.delay,
            Some((Std::from_millis(1500), Chance::percent(0.5)))
        );
        assert_eq!(
            p.abort,
            Some((
                Reply::Grpc(GrpcStatusCode::ResourceExhausted),
                Chance::Below(0)
            )),
            "`percentage: {{}}` is 0%, as Istio's Percent"
        );
        let p = policy(json!({"delay": {"fixedDelay": "5m"}})).expect("the longest delay");
        assert_eq!(
            p.delay,
            Some((MAX_DELAY, Chance::Below(0))),
            "no `percentage`: no request, as in Istio"
        );
        assert_eq!(p.abort, None);
    }
}
