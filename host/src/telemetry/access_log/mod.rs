//! Access logs: one line per finished request, as JSON or an Envoy format string, written off the request path.
//!
//! ```text
//! config ─► AccessLogs::build (formats compiled once, headers they read collected, sinks shared by path)
//! request ─► capture the headers the formats read (only with access logs) ─► … ─► Record::finish
//!         ─► Entry (a borrowed view) ─► each format renders a line ─► Sink::send (try_send; full: dropped, counted)
//!         ─► writer thread: batch, BufWriter, flush ─► stdout / stderr / file
//! ```
//!
//! [`format`] compiles Envoy's substitution commands, [`json`] the JSON formats, [`time`] `%START_TIME(...)%`;
//! [`writer`] owns the queues and writer threads; [`entry`] is what a line is made of, including the plugins'
//! [`Decision`]s.

pub mod entry;
pub mod format;
pub mod json;
#[cfg(test)]
mod testdata;
pub mod time;
pub mod writer;

use std::{fmt::Write as _, sync::Arc};

use http::{HeaderMap, HeaderName, HeaderValue};

use self::{format::Format, json::JsonFormat, writer::Sink};
use super::Record;
use crate::{
    config::{
        Invalid,
        access_log::{AccessLog, LogFormat},
        telemetry::Direction,
    },
    stats::{Counter, Stats},
};
pub use entry::{Decision, Entry, Verdict, push_decision};

pub use writer::Sinks;

/// A listener's access logs, compiled.
#[derive(Debug)]
pub struct AccessLogs {
    logs: Vec<Log>,
    /// Request headers any of the formats reads.
    request_headers: Vec<HeaderName>,
    /// Response headers any of the formats reads.
    response_headers: Vec<HeaderName>,
}

#[derive(Debug)]
struct Log {
    encoding: Encoding,
    sink: Arc<Sink>,
}

#[derive(Debug)]
enum Encoding {
    Text(Format),
    Json(JsonFormat),
}

impl AccessLogs {
    /// Compiles a listener's `access_log` list (`field` names it in errors); `None` when the list is empty.
    pub fn build(
        config: &[AccessLog],
        sinks: &Sinks,
        field: &str,
    ) -> Result<Option<Arc<AccessLogs>>, Invalid> {
        if config.is_empty() {
            return Ok(None);
        }
        let mut logs = Vec::with_capacity(config.len());
        for (i, c) in config.iter().enumerate() {
            let field = format!("{field}[{i}]");
            if c.path.is_empty() {
                return Err(Invalid::new(
                    format!("{field}.path"),
                    "must name a file, /dev/stdout or /dev/stderr",
                ));
            }
            let encoding = match c
                .encoding()
                .map_err(|(f, m)| Invalid::new(format!("{field}.{f}"), m))?
            {
                LogFormat::Text => Encoding::Text(
                    Format::compile(c.text_format.as_deref().unwrap_or(format::ISTIO_TEXT))
                        .map_err(|m| Invalid::new(format!("{field}.text_format"), m))?,
                ),
                LogFormat::Json => Encoding::Json(match &c.json_format {
                    None => JsonFormat::istio(),
                    Some(fields) => JsonFormat::compile(fields).map_err(|(key, m)| {
                        Invalid::new(format!("{field}.json_format.{key}"), m)
                    })?,
                }),
            };
            logs.push(Log {
                encoding,
                sink: sinks.get(&c.path),
            });
        }
        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        for log in &logs {
            let formats = match &log.encoding {
                Encoding::Text(f) => vec![f],
                Encoding::Json(j) => j.formats(),
            };
            for c in formats.into_iter().flat_map(Format::commands) {
                add_unique(&mut request_headers, c.request_headers());
                add_unique(&mut response_headers, c.response_headers());
            }
        }
        Ok(Some(Arc::new(AccessLogs {
            logs,
            request_headers,
            response_headers,
        })))
    }

    /// Copies the request headers the formats read.
    pub fn capture_request(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        capture(&self.request_headers, headers)
    }

    /// Copies the response headers the formats read.
    pub fn capture_response(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        capture(&self.response_headers, headers)
    }

    /// Formats `e` once per log and queues the lines; lines that do not fit a queue are counted in `stats`.
    pub fn write(&self, e: &Entry<'_>, stats: &Stats) {
        for log in &self.logs {
            let mut line = String::with_capacity(512);
            match &log.encoding {
                Encoding::Text(f) => {
                    f.render(e, &mut line);
                    if !line.ends_with('\n') {
                        line.push('\n');
                    }
                }
                Encoding::Json(j) => {
                    j.render(e, &mut line);
                    line.push('\n');
                }
            }
            if !log.sink.send(line) {
                stats.inc(Counter::AccessLogDropped);
            }
            let lost = log.sink.take_lost();
            if lost > 0 {
                stats.add(Counter::AccessLogDropped, lost);
            }
        }
    }
}

fn add_unique(list: &mut Vec<HeaderName>, names: Vec<HeaderName>) {
    for n in names {
        if !list.contains(&n) {
            list.push(n);
        }
    }
}

fn capture(names: &[HeaderName], headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    names
        .iter()
        .filter_map(|n| Some((n.clone(), headers.get(n)?.clone())))
        .collect()
}

/// Writes `r`'s lines, if its listener has access logs.
pub fn finish(r: &Record, elapsed: std::time::Duration) {
    let s = r.state.borrow();
    let Some(t) = &s.telemetry else { return };
    let Some(logs) = &t.access_log else { return };
    let tls = r.conn.tls.as_deref();
    let peer_uri_san = tls
        .and_then(|t| t.peer_uri_sans.first())
        .map(String::as_str);
    let local_uri_san = tls
        .and_then(|t| t.local_uri_sans.first())
        .map(String::as_str);
    let peer_principal = s.peer.as_ref().and_then(|w| w.principal());
    let local = t.principal.as_deref().or(local_uri_san);
    let remote = peer_uri_san.or(peer_principal.as_deref());
    let (source_principal, destination_principal) = match t.direction {
        Direction::Inbound => (remote, local),
        Direction::Outbound | Direction::Unspecified => (local, remote),
    };
    let authority = r.authority.as_ref().and_then(|a| a.to_str().ok());
    // The span stays in the record for the tracing sink, which runs next.
    let active = r.trace.take();
    let trace = active.as_ref().map(|a| {
        a.ctx
            .trace_id
            .iter()
            .fold(String::with_capacity(32), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    });
    r.trace.set(active);
    let details = s.details.or(match (s.upstream, s.status) {
        (Some(_), _) => Some("via_upstream"),
        (None, 0) => None,
        (None, _) if s.flags.is_none() => Some("direct_response"),
        (None, _) => None,
    });
    let e = Entry {
        start_time: r.start_time,
        duration: elapsed,
        upstream_time: s.upstream_time,
        method: r.method.as_str(),
        path: r.path(),
        authority,
        scheme: if tls.is_some() { "https" } else { "http" },
        protocol: r.protocol_name(),
        request_id: r.request_id.to_str().unwrap_or("-"),
        response_code: s.status,
        flags: s.flags,
        details,
        termination: None,
        transport_failure: s.transport_failure.as_deref(),
        bytes_received: r.body_bytes_received(),
        bytes_sent: r.response_bytes.get(),
        upstream_host: s.upstream,
        cluster: s.cluster.as_deref(),
        route: s.route.as_deref(),
        remote: r.conn.peer,
        local: r.conn.local,
        peer_uri_san,
        local_uri_san,
        sni: tls.and_then(|t| t.sni.as_deref()),
        source_principal,
        destination_principal,
        grpc_status: s.grpc_status,
        trace: trace.as_deref(),
        request_headers: &s.log_request_headers,
        response_headers: &s.log_response_headers,
        decisions: &s.decisions,
    };
    logs.write(&e, &r.worker().shared.stats);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(yaml: &str) -> Result<Option<Arc<AccessLogs>>, Invalid> {
        let config: Vec<AccessLog> = serde_yaml::from_str(yaml).expect(yaml);
        AccessLogs::build(&config, &Sinks::default(), "access_log")
    }

    #[test]
    fn build_collects_headers_and_names_bad_fields() {
        assert!(logs("[]").expect("empty").is_none());
        let l = logs(
            "[{path: /dev/null, text_format: '%REQ(X-A)% %RESP(X-B)%'}, \
              {path: /dev/null, format: json, json_format: {a: '%REQ(x-a)%', t: '%TRACE_ID%'}}]",
        )
        .expect("valid")
        .expect("some");
        let names = |v: &[HeaderName]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&l.request_headers),
            ["x-a", "traceparent", "x-b3-traceid"]
        );
        assert_eq!(names(&l.response_headers), ["x-b"]);
        let l = logs("[{path: /dev/null, format: json}]")
            .expect("valid")
            .expect("some");
        assert_eq!(
            names(&l.request_headers),
            [
                "x-envoy-original-path",
                "traceparent",
                "x-b3-traceid",
                "user-agent",
                "x-forwarded-for"
            ]
        );
        assert_eq!(
            names(&l.response_headers),
            ["x-envoy-upstream-service-time"]
        );
        let cases: &[(&str, &str)] = &[
            ("[{path: ''}]", "access_log[0].path"),
            (
                "[{path: x, text_format: '%BAD%'}]",
                "access_log[0].text_format",
            ),
            (
                "[{path: x}, {path: y, json_format: {a: {b: '%BAD%'}}}]",
                "access_log[1].json_format.a.b",
            ),
            (
                "[{path: x, format: json, text_format: y}]",
                "access_log[0].text_format",
            ),
        ];
        for (yaml, field) in cases {
            let e = logs(yaml).expect_err(yaml);
            assert_eq!(e.field, *field, "{yaml}: {}", e.message);
        }
    }

    #[test]
    fn capture_takes_only_needed_headers() {
        let l = logs("[{path: /dev/null, text_format: '%REQ(USER-AGENT)% %REQ(X-MISSING)%'}]")
            .expect("valid")
            .expect("some");
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("ua"));
        h.insert("cookie", HeaderValue::from_static("secret"));
        let got = l.capture_request(&h);
        assert_eq!(
            got,
            [(
                HeaderName::from_static("user-agent"),
                HeaderValue::from_static("ua")
            )]
        );
        assert!(l.capture_response(&h).is_empty());
    }
}
