//! meshwork's host extensions, reached through proxy-wasm foreign functions, with typed arguments and answers.
//!
//! The host provides mechanisms (delaying, choosing the upstream, retrying, ejecting endpoints, admitting requests);
//! the filter decides when to use them. Each function here is one foreign function; the wire format of each (UTF-8
//! text) is in docs/filters.md, so filters in other languages can call them too.
//!
//! On a host that does not have an extension (Envoy, or an older meshwork) the call answers
//! [`ExtError::Unsupported`] instead of trapping, so a filter can fall back.
//!
//! ```no_run
//! use std::time::Duration;
//! use meshwork_sdk::ext;
//!
//! // In on_http_request_headers: hold this request 100 ms, then go on (return Action::Pause after this).
//! ext::delay(Duration::from_millis(100))?;
//! // Send it to the canary's cluster, with a 2 s upstream timeout.
//! ext::set_upstream("outbound|80|v2|reviews")?;
//! ext::set_timeout(Some(Duration::from_secs(2)))?;
//! # Ok::<(), meshwork_sdk::ext::ExtError>(())
//! ```

use std::time::Duration;

use crate::HostError;

/// Why an extension call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtError {
    /// The host has no function of that name.
    Unsupported(String),
    /// The host refused the arguments or failed.
    Host(HostError),
    /// The host answered something this SDK does not understand (a newer host?).
    Answer(String),
}

impl std::fmt::Display for ExtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtError::Unsupported(name) => write!(f, "`{name}` is not supported by this host"),
            ExtError::Host(e) => write!(f, "{e}"),
            ExtError::Answer(a) => write!(f, "unexpected answer from the host: {a:?}"),
        }
    }
}

impl std::error::Error for ExtError {}

/// Calls host function `name` with `args`; its answer's bytes.
pub fn call(name: &str, args: &[u8]) -> Result<Vec<u8>, ExtError> {
    match proxy_wasm::hostcalls::call_foreign_function(name, Some(args)) {
        Ok(answer) => Ok(answer.unwrap_or_default()),
        Err(proxy_wasm::types::Status::NotFound) => Err(ExtError::Unsupported(name.to_string())),
        Err(s) => Err(ExtError::Host(HostError(s))),
    }
}

fn call_text(name: &str, args: &str) -> Result<String, ExtError> {
    let answer = crate::http::text(call(name, args.as_bytes())?);
    // The host's answers carry no padding; trimming is for other hosts, and copies only when there is any.
    Ok(match answer.trim() {
        t if t.len() == answer.len() => answer,
        t => t.to_string(),
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A call's arguments: words separated by single spaces, written without `format!` (these calls run on every
/// request, and formatting machinery costs more than the words).
struct Args(String);

impl Args {
    fn new() -> Args {
        Args(String::with_capacity(64))
    }

    fn word(mut self, w: &str) -> Args {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(w);
        self
    }

    fn num(self, n: u64) -> Args {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // ASCII digits only.
        self.word(std::str::from_utf8(&digits[i..]).unwrap_or("0"))
    }
}

/// Holds the current request (or response) for `d`, then resumes it (`meshwork.delay`). The worker serves other
/// requests meanwhile. Return `Action::Pause` from the callback after calling this.
pub fn delay(d: Duration) -> Result<(), ExtError> {
    call_text("meshwork.delay", &Args::new().num(ms(d)).0).map(drop)
}

/// Sends this request to upstream cluster `cluster` instead of the route's (`meshwork.set_upstream`). Call it in
/// `on_http_request_headers`.
pub fn set_upstream(cluster: &str) -> Result<(), ExtError> {
    call_text("meshwork.set_upstream", cluster).map(drop)
}

/// This request's upstream timeout instead of the route's; `None` = no timeout (`meshwork.set_timeout`). With
/// retries, it bounds all attempts together.
pub fn set_timeout(timeout: Option<Duration>) -> Result<(), ExtError> {
    let t = timeout.map_or(0, ms);
    call_text("meshwork.set_timeout", &Args::new().num(t).0).map(drop)
}

/// Makes this request retriable (`meshwork.retriable`): the host keeps a copy of the request body, up to
/// `buffer_bytes` (the host caps it; `None` = the host's default, 1 MiB), so it can send the request again, and limits
/// each attempt to `per_try_timeout`. Call it in `on_http_request_headers`.
pub fn retriable(
    per_try_timeout: Option<Duration>,
    buffer_bytes: Option<u32>,
) -> Result<(), ExtError> {
    let t = per_try_timeout.map_or(0, ms);
    let args = match buffer_bytes {
        Some(b) => Args::new().num(t).num(u64::from(b)).0,
        None => Args::new().num(t).0,
    };
    call_text("meshwork.retriable", &args).map(drop)
}

/// A retry budget: retries in flight may be at most `percent` of the cluster's requests in flight, but at least
/// `min_concurrency` retries are always allowed (Envoy's `retry_budget`, Istio's `retryBudget`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Percent of active requests (0–100).
    pub percent: f64,
    /// Retries always allowed concurrently.
    pub min_concurrency: u32,
}

/// What the host said to a retry request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAnswer {
    /// The response is dropped; the request goes again after the backoff, to another endpoint when there is one.
    Retrying,
    /// The cluster's retry budget is spent.
    Budget,
    /// The request body outgrew the retry buffer, so it cannot be sent again.
    Body,
    /// The request's overall timeout leaves no time for another attempt.
    Deadline,
    /// [`retriable`] was not called for this request.
    Unarmed,
}

/// Asks the host to drop the response being processed and send the request again after `backoff`
/// (`meshwork.retry`). Only in `on_http_response_headers`; plugins later in the response order do not see the dropped
/// response, and every plugin sees the next attempt's response headers again. With a `budget`, the host refuses when
/// the cluster's retries in flight are over it.
pub fn retry(backoff: Duration, budget: Option<Budget>) -> Result<RetryAnswer, ExtError> {
    let args = match budget {
        Some(b) => format!("{} {} {}", ms(backoff), b.percent, b.min_concurrency),
        None => Args::new().num(ms(backoff)).0,
    };
    match call_text("meshwork.retry", &args)?.as_str() {
        "retrying" => Ok(RetryAnswer::Retrying),
        "budget" => Ok(RetryAnswer::Budget),
        "body" => Ok(RetryAnswer::Body),
        "deadline" => Ok(RetryAnswer::Deadline),
        "unarmed" => Ok(RetryAnswer::Unarmed),
        other => Err(ExtError::Answer(other.to_string())),
    }
}

/// How an endpoint answered, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A non-5xx answer: resets the endpoint's consecutive error counts.
    Success,
    /// A 5xx other than 502/503/504.
    Error,
    /// 502, 503, 504, or no answer at all (connect failure, reset, timeout).
    GatewayError,
}

/// An endpoint's health record, shared by all workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Consecutive 5xx answers (gateway errors included).
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors.
    pub consecutive_gateway: u32,
    /// How many times it was ejected so far (for ejection times that grow with repeat ejections).
    pub times_ejected: u32,
}

/// Records `outcome` for `endpoint` (`IP:PORT`, the `upstream.address` property) of `cluster` and answers its health
/// record (`meshwork.report`).
pub fn report(cluster: &str, endpoint: &str, outcome: Outcome) -> Result<Health, ExtError> {
    let kind = match outcome {
        Outcome::Success => "success",
        Outcome::Error => "error",
        Outcome::GatewayError => "gateway",
    };
    let args = Args::new().word(cluster).word(endpoint).word(kind);
    let answer = call_text("meshwork.report", &args.0)?;
    parse_health(&answer).ok_or(ExtError::Answer(answer))
}

fn parse_health(answer: &str) -> Option<Health> {
    let mut n = answer.split_whitespace().map(str::parse::<u32>);
    match (n.next(), n.next(), n.next(), n.next()) {
        (Some(Ok(c5)), Some(Ok(cg)), Some(Ok(t)), None) => Some(Health {
            consecutive_5xx: c5,
            consecutive_gateway: cg,
            times_ejected: t,
        }),
        _ => None,
    }
}

/// Takes `endpoint` out of `cluster`'s rotation for `duration`, on every worker (`meshwork.eject`). With
/// `max_percent`, the host refuses (answers `false`) when that would put more than that percentage of the cluster's
/// endpoints out of rotation at once.
pub fn eject(
    cluster: &str,
    endpoint: &str,
    duration: Duration,
    max_percent: Option<u32>,
) -> Result<bool, ExtError> {
    let mut args = Args::new().word(cluster).word(endpoint).num(ms(duration));
    if let Some(p) = max_percent {
        args = args.num(u64::from(p));
    }
    match call_text("meshwork.eject", &args.0)?.as_str() {
        "ejected" => Ok(true),
        "limit" => Ok(false),
        other => Err(ExtError::Answer(other.to_string())),
    }
}

/// Puts `endpoint` back into `cluster`'s rotation (`meshwork.uneject`).
pub fn uneject(cluster: &str, endpoint: &str) -> Result<(), ExtError> {
    call_text(
        "meshwork.uneject",
        &Args::new().word(cluster).word(endpoint).0,
    )
    .map(drop)
}

/// A cluster's ejected endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ejections {
    /// How many endpoints the cluster has.
    pub endpoints: u32,
    /// The ejected ones, with the time left.
    pub ejected: Vec<(String, Duration)>,
}

/// `cluster`'s ejected endpoints (`meshwork.ejections`).
pub fn ejections(cluster: &str) -> Result<Ejections, ExtError> {
    let answer = call_text("meshwork.ejections", cluster)?;
    parse_ejections(&answer).ok_or(ExtError::Answer(answer))
}

fn parse_ejections(answer: &str) -> Option<Ejections> {
    let mut lines = answer.lines();
    let endpoints = lines.next()?.trim().parse().ok()?;
    let mut ejected = Vec::new();
    for line in lines {
        let (addr, left) = line.trim().split_once(' ')?;
        ejected.push((addr.to_string(), Duration::from_millis(left.parse().ok()?)));
    }
    Some(Ejections { endpoints, ejected })
}

/// What the host said to an admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The request holds one of the cluster's active places until it ends.
    Admitted,
    /// The cluster is at its limit; the request waits in the pending queue. Return `Action::Pause`: the host resumes
    /// it when a place frees (or the route's idle timeout answers 504).
    Queued,
    /// Both the active places and the pending queue are full: answer the request yourself (503).
    Overflow,
}

/// Admits this request to `cluster` under connection-pool limits (`meshwork.admit`): at most `max_requests` requests
/// in flight and `max_pending` waiting, across all workers (Istio's `http2MaxRequests` and
/// `http1MaxPendingRequests`).
pub fn admit(cluster: &str, max_requests: u32, max_pending: u32) -> Result<Admission, ExtError> {
    match call_text(
        "meshwork.admit",
        &Args::new()
            .word(cluster)
            .num(u64::from(max_requests))
            .num(u64::from(max_pending))
            .0,
    )?
    .as_str()
    {
        "admitted" => Ok(Admission::Admitted),
        "queued" => Ok(Admission::Queued),
        "overflow" => Ok(Admission::Overflow),
        other => Err(ExtError::Answer(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_table() {
        let cases = [
            (Args::new().num(0).0, "0"),
            (Args::new().num(250).0, "250"),
            (Args::new().num(u64::MAX).0, "18446744073709551615"),
            (
                Args::new().word("outbound|80|v1|app").num(1000).num(7).0,
                "outbound|80|v1|app 1000 7",
            ),
            (
                Args::new().word("c").word("10.0.0.1:80").word("error").0,
                "c 10.0.0.1:80 error",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn health_answer_table() {
        let h = |a, b, c| Health {
            consecutive_5xx: a,
            consecutive_gateway: b,
            times_ejected: c,
        };
        let cases = [
            ("0 0 0", Some(h(0, 0, 0))),
            ("5 3 1\n", Some(h(5, 3, 1))),
            ("5 3", None),
            ("5 3 1 9", None),
            ("a b c", None),
            ("", None),
        ];
        for (answer, want) in cases {
            assert_eq!(parse_health(answer), want, "{answer:?}");
        }
    }

    #[test]
    fn ejections_answer_table() {
        let cases: &[(&str, Option<Ejections>)] = &[
            (
                "3",
                Some(Ejections {
                    endpoints: 3,
                    ejected: vec![],
                }),
            ),
            (
                "3\n127.0.0.1:80 1500\n",
                Some(Ejections {
                    endpoints: 3,
                    ejected: vec![("127.0.0.1:80".into(), Duration::from_millis(1500))],
                }),
            ),
            ("", None),
            ("x", None),
            ("2\n127.0.0.1:80", None),
        ];
        for (answer, want) in cases {
            assert_eq!(&parse_ejections(answer), want, "{answer:?}");
        }
    }
}
