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

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Holds the current request (or response) for `d`, then resumes it (`meshwork.delay`). The worker serves other
/// requests meanwhile. Return `Action::Pause` from the callback after calling this.
pub fn delay(d: Duration) -> Result<(), ExtError> {
    call_text("meshwork.delay", &ms(d).to_string()).map(drop)
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
    call_text("meshwork.set_timeout", &t.to_string()).map(drop)
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
        Some(b) => format!("{t} {b}"),
        None => t.to_string(),
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
        None => ms(backoff).to_string(),
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
    let answer = call_text("meshwork.report", &format!("{cluster} {endpoint} {kind}"))?;
    let n: Vec<u32> = answer
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| ExtError::Answer(answer.clone()))?;
    match n[..] {
        [c5, cg, t] => Ok(Health {
            consecutive_5xx: c5,
            consecutive_gateway: cg,
            times_ejected: t,
        }),
        _ => Err(ExtError::Answer(answer)),
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
    let mut args = format!("{cluster} {endpoint} {}", ms(duration));
    if let Some(p) = max_percent {
        args.push_str(&format!(" {p}"));
    }
    match call_text("meshwork.eject", &args)?.as_str() {
        "ejected" => Ok(true),
        "limit" => Ok(false),
        other => Err(ExtError::Answer(other.to_string())),
    }
}

/// Puts `endpoint` back into `cluster`'s rotation (`meshwork.uneject`).
pub fn uneject(cluster: &str, endpoint: &str) -> Result<(), ExtError> {
    call_text("meshwork.uneject", &format!("{cluster} {endpoint}")).map(drop)
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
        &format!("{cluster} {max_requests} {max_pending}"),
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
