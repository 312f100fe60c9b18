//! The retry policy: which answers are worth another attempt, and how long to wait first. Pure functions over plain
//! values, so the whole decision is tested by tables without a host.
//!
//! The config mirrors Istio's `HTTPRetry` (VirtualService `retries`) plus DestinationRule's `retryBudget`.

use std::time::Duration as Std;

use meshwork_sdk::duration::Duration;
use serde::Deserialize;

/// `pluginConfig` of the retry filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Retries allowed (the request is sent at most `1 + attempts` times); `0` disables retries.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Each attempt's timeout to the response headers; unset: only the route's timeout bounds them.
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated conditions (Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` values) and bare HTTP
    /// status codes, e.g. `5xx,reset,503`.
    #[serde(default = "default_retry_on")]
    pub retry_on: String,
    /// Base interval of the exponential backoff (Istio's `backoff`).
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    /// Longest backoff; default ten times `backoff` (as Envoy).
    #[serde(default)]
    pub max_backoff: Option<Duration>,
    /// Retries in flight may be at most this share of the cluster's requests in flight.
    #[serde(default)]
    pub retry_budget: Option<RetryBudget>,
    /// Request body kept for resending; a longer body is sent once and not retried. Default 1 MiB.
    #[serde(default)]
    pub buffer_bytes: Option<u32>,
}

/// DestinationRule `trafficPolicy.retryBudget`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryBudget {
    /// Percent of active requests (default 20).
    #[serde(default = "default_budget_percent")]
    pub percent: f64,
    /// Retries always allowed concurrently (default 3).
    #[serde(default = "default_min_concurrency")]
    pub min_retry_concurrency: u32,
}

fn default_attempts() -> u32 {
    2
}

fn default_retry_on() -> String {
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into()
}

fn default_backoff() -> Duration {
    Duration(Std::from_millis(25))
}

fn default_budget_percent() -> f64 {
    20.0
}

fn default_min_concurrency() -> u32 {
    3
}

/// One retry condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Any 5xx, or no answer at all.
    Server5xx,
    /// 502, 503, 504, or no answer.
    GatewayError,
    /// The connection to the endpoint failed.
    ConnectFailure,
    /// The endpoint refused the HTTP/2 stream.
    RefusedStream,
    /// The endpoint reset or timed out before answering.
    Reset,
    /// 409.
    Retriable4xx,
    /// A status in [`Policy::codes`].
    RetriableStatusCodes,
    /// gRPC status CANCELLED (1).
    Cancelled,
    /// gRPC status DEADLINE_EXCEEDED (4).
    DeadlineExceeded,
    /// gRPC status RESOURCE_EXHAUSTED (8).
    ResourceExhausted,
    /// gRPC status INTERNAL (13).
    Internal,
    /// gRPC status UNAVAILABLE (14).
    Unavailable,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Retries allowed.
    pub attempts: u32,
    /// Per-try timeout.
    pub per_try_timeout: Option<Std>,
    /// Conditions.
    pub on: Vec<On>,
    /// Status codes for `retriable-status-codes` (bare codes in `retryOn`).
    pub codes: Vec<u16>,
    /// Backoff base and cap.
    pub backoff: (Std, Std),
    /// (percent, min concurrency).
    pub budget: Option<(f64, u32)>,
    /// Retry buffer.
    pub buffer_bytes: Option<u32>,
}

impl TryFrom<Config> for Policy {
    type Error = String;

    fn try_from(c: Config) -> Result<Self, String> {
        let mut on = Vec::new();
        let mut codes = Vec::new();
        for word in c
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            if let Ok(code) = word.parse::<u16>() {
                if !(100..=599).contains(&code) {
                    return Err(format!("retryOn: `{word}` is not an HTTP status code"));
                }
                codes.push(code);
                if !on.contains(&On::RetriableStatusCodes) {
                    on.push(On::RetriableStatusCodes);
                }
                continue;
            }
            let cond = match word {
                "5xx" => On::Server5xx,
                "gateway-error" => On::GatewayError,
                "connect-failure" => On::ConnectFailure,
                "refused-stream" => On::RefusedStream,
                "reset" | "reset-before-request" => On::Reset,
                "retriable-4xx" => On::Retriable4xx,
                "retriable-status-codes" => On::RetriableStatusCodes,
                "cancelled" => On::Cancelled,
                "deadline-exceeded" => On::DeadlineExceeded,
                "resource-exhausted" => On::ResourceExhausted,
                "internal" => On::Internal,
                "unavailable" => On::Unavailable,
                other => {
                    return Err(format!(
                        "retryOn: unknown condition `{other}`; use 5xx, gateway-error, connect-failure, \
                         refused-stream, reset, retriable-4xx, retriable-status-codes, cancelled, \
                         deadline-exceeded, resource-exhausted, internal, unavailable or a status code"
                    ));
                }
            };
            if !on.contains(&cond) {
                on.push(cond);
            }
        }
        let base = c.backoff.get();
        if base.is_zero() {
            return Err("backoff: must be more than 0 (Envoy's minimum is 1ms)".into());
        }
        let max = c.max_backoff.map_or(base * 10, Duration::get);
        if max < base {
            return Err(format!(
                "maxBackoff: {max:?} is shorter than backoff {base:?}"
            ));
        }
        if let Some(b) = c.retry_budget
            && !(0.0..=100.0).contains(&b.percent)
        {
            return Err(format!(
                "retryBudget.percent: {} is not within 0 to 100",
                b.percent
            ));
        }
        Ok(Policy {
            attempts: c.attempts,
            per_try_timeout: c
                .per_try_timeout
                .map(Duration::get)
                .filter(|d| !d.is_zero()),
            on,
            codes,
            backoff: (base, max),
            budget: c.retry_budget.map(|b| (b.percent, b.min_retry_concurrency)),
            buffer_bytes: c.buffer_bytes,
        })
    }
}

impl Policy {
    /// Whether a gRPC condition is configured (then `grpc-status` is worth reading).
    pub fn grpc(&self) -> bool {
        self.on.iter().any(|o| {
            matches!(
                o,
                On::Cancelled
                    | On::DeadlineExceeded
                    | On::ResourceExhausted
                    | On::Internal
                    | On::Unavailable
            )
        })
    }

    /// Whether an answer with `status` could meet any condition: the cheap first look, so the common successful
    /// answer costs one header read.
    pub fn may_retry(&self, status: u16) -> bool {
        status >= 500
            || self.codes.contains(&status)
            || (status == 409 && self.on.contains(&On::Retriable4xx))
            || self.grpc()
    }
}

/// What an attempt got back, as the filter sees it in `on_http_response_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answer<'a> {
    /// `:status`.
    pub status: u16,
    /// `response.code_details`: `via_upstream` when the endpoint answered, else why the proxy answered itself.
    pub details: &'a str,
    /// `grpc-status` in the response headers (a trailers-only gRPC answer), if any.
    pub grpc_status: Option<u32>,
}

impl Answer<'_> {
    fn no_answer(&self) -> bool {
        self.details
            .starts_with("upstream_reset_before_response_started")
            || self.details == "response_timeout"
    }

    fn connect_failure(&self) -> bool {
        self.details.contains("{connection_failure}")
    }
}

/// Whether `answer` meets condition `on`.
pub fn meets(on: On, answer: &Answer<'_>, codes: &[u16]) -> bool {
    let s = answer.status;
    match on {
        On::Server5xx => s >= 500 || answer.no_answer(),
        On::GatewayError => matches!(s, 502..=504) || answer.no_answer(),
        On::ConnectFailure => answer.connect_failure(),
        On::RefusedStream => answer.details.contains("refused_stream"),
        On::Reset => answer.no_answer() && !answer.connect_failure(),
        On::Retriable4xx => s == 409,
        On::RetriableStatusCodes => codes.contains(&s),
        On::Cancelled => answer.grpc_status == Some(1),
        On::DeadlineExceeded => answer.grpc_status == Some(4),
        On::ResourceExhausted => answer.grpc_status == Some(8),
        On::Internal => answer.grpc_status == Some(13),
        On::Unavailable => answer.grpc_status == Some(14),
    }
}

/// Whether the request should be sent again after attempt number `attempt` (1 = the first) got `answer`.
pub fn should_retry(p: &Policy, attempt: u32, answer: &Answer<'_>) -> bool {
    attempt <= p.attempts && p.on.iter().any(|&on| meets(on, answer, &p.codes))
}

/// The wait before retry number `retry` (1 = the first): full jitter over an exponentially growing interval,
/// `random × min(base × 2^(retry-1), max)`, with `random` in `[0, 1)`.
pub fn backoff(p: &Policy, retry: u32, random: f64) -> Std {
    let (base, max) = p.backoff;
    let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(30));
    let ceiling = base.saturating_mul(factor).min(max);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry_on: &str) -> Policy {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "attempts": 3, "retryOn": retry_on, "backoff": "10ms"
        }))
        .expect("config");
        Policy::try_from(cfg).expect("valid")
    }

    const UP: &str = "via_upstream";
    const CONNECT: &str = "upstream_reset_before_response_started{connection_failure}";
    const RESET: &str = "upstream_reset_before_response_started{remote_reset}";
    const REFUSED: &str = "upstream_reset_before_response_started{remote_refused_stream_reset}";
    const TIMEOUT: &str = "response_timeout";

    #[test]
    fn should_retry_table() {
        // (retryOn, attempt, status, details, grpc-status, expected)
        let cases: &[(&str, u32, u16, &str, Option<u32>, bool)] = &[
            ("5xx", 1, 500, UP, None, true),
            ("5xx", 1, 503, CONNECT, None, true),
            ("5xx", 1, 504, TIMEOUT, None, true),
            ("5xx", 1, 404, UP, None, false),
            ("5xx", 1, 200, UP, None, false),
            ("5xx", 3, 500, UP, None, true),
            ("5xx", 4, 500, UP, None, false),
            ("gateway-error", 1, 500, UP, None, false),
            ("gateway-error", 1, 502, UP, None, true),
            ("gateway-error", 1, 503, UP, None, true),
            ("gateway-error", 1, 504, UP, None, true),
            ("gateway-error", 1, 503, RESET, None, true),
            ("connect-failure", 1, 503, CONNECT, None, true),
            ("connect-failure", 1, 503, UP, None, false),
            ("connect-failure", 1, 503, RESET, None, false),
            ("reset", 1, 503, RESET, None, true),
            ("reset", 1, 504, TIMEOUT, None, true),
            ("reset", 1, 503, CONNECT, None, false),
            ("reset", 1, 503, UP, None, false),
            ("refused-stream", 1, 503, REFUSED, None, true),
            ("refused-stream", 1, 503, RESET, None, false),
            ("retriable-4xx", 1, 409, UP, None, true),
            ("retriable-4xx", 1, 429, UP, None, false),
            ("503", 1, 503, UP, None, true),
            ("503", 1, 500, UP, None, false),
            ("retriable-status-codes,429", 1, 429, UP, None, true),
            ("unavailable", 1, 200, UP, Some(14), true),
            ("unavailable", 1, 200, UP, Some(13), false),
            ("cancelled", 1, 200, UP, Some(1), true),
            ("deadline-exceeded", 1, 200, UP, Some(4), true),
            ("resource-exhausted", 1, 200, UP, Some(8), true),
            ("internal", 1, 200, UP, Some(13), true),
            ("connect-failure,5xx", 2, 500, UP, None, true),
            ("", 1, 500, UP, None, false),
        ];
        for (on, attempt, status, details, grpc, want) in cases {
            let answer = Answer {
                status: *status,
                details,
                grpc_status: *grpc,
            };
            assert_eq!(
                should_retry(&policy(on), *attempt, &answer),
                *want,
                "retryOn {on:?}, attempt {attempt}, {status} {details} {grpc:?}"
            );
        }
    }

    #[test]
    fn may_retry_agrees_with_should_retry() {
        for on in [
            "5xx",
            "gateway-error",
            "connect-failure",
            "retriable-4xx",
            "503,429",
            "unavailable",
            "reset",
        ] {
            let p = policy(on);
            // The proxy's own answers for a missing upstream answer are 503 or 504; the upstream's are anything.
            let answers = [200, 204, 404, 409, 429, 500, 503, 504]
                .map(|s| (s, UP))
                .into_iter()
                .chain([(503, CONNECT), (503, RESET), (504, TIMEOUT)]);
            for (status, details) in answers {
                let answer = Answer {
                    status,
                    details,
                    grpc_status: Some(14),
                };
                if should_retry(&p, 1, &answer) {
                    assert!(
                        p.may_retry(status),
                        "{on}: {status} {details} would be retried"
                    );
                }
            }
        }
        assert!(
            !policy("5xx").may_retry(200),
            "a success needs no second look"
        );
        assert!(
            policy("unavailable").may_retry(200),
            "gRPC answers come with 200"
        );
    }

    #[test]
    fn backoff_table() {
        let p = policy("5xx");
        // (retry, random, expected ms): ceiling 10, 20, 40, ... capped at 100 (10 × base).
        let cases: &[(u32, f64, u64)] = &[
            (1, 0.0, 0),
            (1, 0.5, 5),
            (1, 0.999, 9),
            (2, 0.5, 10),
            (3, 0.5, 20),
            (4, 0.5, 40),
            (5, 0.5, 50),
            (40, 0.5, 50),
            (1, 7.0, 10),
        ];
        for (retry, random, want) in cases {
            assert_eq!(
                backoff(&p, *retry, *random).as_millis() as u64,
                *want,
                "{retry} {random}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases: &[(serde_json::Value, &str)] = &[
            (
                serde_json::json!({"retryOn": "5xx,sometimes"}),
                "retryOn: unknown condition `sometimes`",
            ),
            (serde_json::json!({"retryOn": "999"}), "retryOn: `999`"),
            (serde_json::json!({"backoff": "0s"}), "backoff"),
            (
                serde_json::json!({"backoff": "100ms", "maxBackoff": "10ms"}),
                "maxBackoff",
            ),
            (
                serde_json::json!({"retryBudget": {"percent": 150.0}}),
                "retryBudget.percent",
            ),
        ];
        for (json, want) in cases {
            let cfg: Config = serde_json::from_value(json.clone()).expect("parses");
            let err = Policy::try_from(cfg).expect_err("invalid");
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn defaults_follow_istio() {
        let cfg: Config = serde_json::from_value(serde_json::json!({})).expect("config");
        let p = Policy::try_from(cfg).expect("valid");
        assert_eq!(p.attempts, 2);
        assert_eq!(p.backoff, (Std::from_millis(25), Std::from_millis(250)));
        assert!(p.on.contains(&On::ConnectFailure) && p.on.contains(&On::Unavailable));
        assert_eq!(p.budget, None);
    }
}
