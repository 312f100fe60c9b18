//! Envoy's substitution format strings (`%START_TIME% "%REQ(:METHOD)% ..."`), compiled once at config time into a list
//! of [`Part`]s; a request only evaluates them.
//!
//! A command is `%NAME%`, `%NAME(ARG)%` or either with `:N` (at most N characters). `%%` is a literal `%`. Unknown
//! commands are config errors naming the command. Missing values print as `-` (text) or `null` (JSON), as in Envoy.

use std::{borrow::Cow, fmt::Write as _};

use http::HeaderName;

use super::{
    entry::{Decision, Entry},
    time::{self, TimeFormat},
};

/// `traceparent` (W3C trace context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `x-b3-traceid` (Zipkin B3).
pub const X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `x-envoy-upstream-service-time`, which Istio's formats read.
const UPSTREAM_SERVICE_TIME: HeaderName = HeaderName::from_static("x-envoy-upstream-service-time");

/// Istio's default text format (`accessLogEncoding: TEXT`).
pub const ISTIO_TEXT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \
\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% \
%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// A compiled format string.
#[derive(Clone, Debug, PartialEq)]
pub struct Format(pub(super) Vec<Part>);

/// A piece of a format.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(Box<str>),
    /// A command and its maximum length.
    Command(Command, Option<usize>),
}

/// A header a command reads: a pseudo-header, the request id, or a named header captured for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// `:method`.
    Method,
    /// `:path`.
    Path,
    /// `:authority` (or `host`).
    Authority,
    /// `:scheme`.
    Scheme,
    /// `x-request-id` (kept in the record, generated when absent).
    RequestId,
    /// `x-envoy-upstream-service-time` in a response: the header when the upstream sent one, else the time meshwork
    /// measured to the upstream's response headers.
    UpstreamServiceTime,
    /// Any other header.
    Named(HeaderName),
}

/// A substitution command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `%START_TIME%`, `%START_TIME(FORMAT)%`.
    StartTime(TimeFormat),
    /// `%DURATION%`, `%REQUEST_DURATION%`... in milliseconds.
    Duration,
    /// `%RESPONSE_DURATION%`: to the upstream's response headers, in milliseconds.
    ResponseDuration,
    /// `%REQ(A?B)%`: request header A, else B.
    Req(Header, Option<Header>),
    /// `%RESP(A?B)%`: response header A, else B.
    Resp(Header, Option<Header>),
    /// `%PROTOCOL%`.
    Protocol,
    /// `%RESPONSE_CODE%`.
    ResponseCode,
    /// `%RESPONSE_FLAGS%`.
    ResponseFlags,
    /// `%RESPONSE_CODE_DETAILS%`.
    ResponseCodeDetails,
    /// `%CONNECTION_TERMINATION_DETAILS%`.
    ConnectionTerminationDetails,
    /// `%BYTES_RECEIVED%`.
    BytesReceived,
    /// `%BYTES_SENT%`.
    BytesSent,
    /// `%UPSTREAM_HOST%`.
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%`.
    UpstreamCluster,
    /// `%UPSTREAM_LOCAL_ADDRESS%`: meshwork does not record it, so it is always missing.
    UpstreamLocalAddress,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    UpstreamTransportFailureReason,
    /// `%ROUTE_NAME%`.
    RouteName,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%` (or `_WITHOUT_PORT`).
    DownstreamRemoteAddress {
        /// With the port.
        port: bool,
    },
    /// `%DOWNSTREAM_LOCAL_ADDRESS%` (or `_WITHOUT_PORT`).
    DownstreamLocalAddress {
        /// With the port.
        port: bool,
    },
    /// `%DOWNSTREAM_PEER_URI_SAN%`.
    DownstreamPeerUriSan,
    /// `%DOWNSTREAM_LOCAL_URI_SAN%`.
    DownstreamLocalUriSan,
    /// `%REQUESTED_SERVER_NAME%`.
    RequestedServerName,
    /// `%TRACE_ID%`.
    TraceId,
    /// `%GRPC_STATUS_NUMBER%`.
    GrpcStatus,
    /// `%SOURCE_PRINCIPAL%` (meshwork): the caller's SPIFFE principal.
    SourcePrincipal,
    /// `%DESTINATION_PRINCIPAL%` (meshwork): the callee's SPIFFE principal.
    DestinationPrincipal,
    /// `%FILTER_DECISIONS%` (meshwork): what the WASM plugins decided.
    FilterDecisions,
}

/// A command's value for one request.
#[derive(Debug, PartialEq)]
pub enum Value<'a> {
    /// Not known: `-` in text, `null` in JSON.
    Missing,
    /// Text.
    Str(Cow<'a, str>),
    /// A number (a JSON number).
    Num(u64),
    /// The plugins' decisions (a JSON array; `plugin:verdict[:status]` joined by `,` in text).
    Decisions(&'a [Decision]),
}

impl Format {
    /// Compiles `s`; `Err` says what is wrong (an unknown command, a bad header name...).
    pub fn compile(s: &str) -> Result<Format, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
                continue;
            }
            let (part, after) = command(rest)?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text).into()));
            }
            parts.push(part);
            rest = after;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        Ok(Format(parts))
    }

    /// The single command this format is, if it is exactly one (JSON keeps such values typed).
    pub fn single(&self) -> Option<(&Command, Option<usize>)> {
        match self.0.as_slice() {
            [Part::Command(c, max)] => Some((c, *max)),
            _ => None,
        }
    }

    /// The commands, for collecting the headers the format reads.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.0.iter().filter_map(|p| match p {
            Part::Command(c, _) => Some(c),
            Part::Text(_) => None,
        })
    }

    /// Appends the format for `e` to `out`, as text.
    pub fn render(&self, e: &Entry<'_>, out: &mut String) {
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Command(c, max) => text(&c.eval(e), *max, out),
            }
        }
    }
}

/// Appends `v` as text, cut to `max` characters.
pub fn text(v: &Value<'_>, max: Option<usize>, out: &mut String) {
    let start = out.len();
    match v {
        Value::Missing => out.push('-'),
        Value::Str(s) => out.push_str(s),
        Value::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Decisions(ds) => {
            for (i, d) in ds.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{}", d.plugin, d.verdict.name());
                if let Some(s) = d.verdict.status() {
                    let _ = write!(out, ":{s}");
                }
            }
        }
    }
    if let Some(max) = max {
        truncate(out, start, max);
    }
}

/// Cuts `out[start..]` to at most `max` characters.
pub fn truncate(out: &mut String, start: usize, max: usize) {
    if let Some((cut, _)) = out[start..].char_indices().nth(max) {
        out.truncate(start + cut);
    }
}

impl Command {
    /// The command's value for `e`.
    pub fn eval<'a>(&self, e: &Entry<'a>) -> Value<'a> {
        let opt = |s: Option<&'a str>| s.map_or(Value::Missing, |s| Value::Str(Cow::Borrowed(s)));
        let addr = |a: Option<std::net::SocketAddr>, port: bool| match a {
            None => Value::Missing,
            Some(a) if port => Value::Str(Cow::Owned(a.to_string())),
            Some(a) => Value::Str(Cow::Owned(a.ip().to_string())),
        };
        match self {
            Command::StartTime(f) => {
                let mut s = String::with_capacity(24);
                f.render(e.start_time, &mut s);
                Value::Str(Cow::Owned(s))
            }
            Command::Duration => Value::Num(e.duration.as_millis() as u64),
            Command::ResponseDuration => e
                .upstream_time
                .map_or(Value::Missing, |d| Value::Num(d.as_millis() as u64)),
            Command::Req(a, b) => request(e, a)
                .or_else(|| b.as_ref().and_then(|b| request(e, b)))
                .unwrap_or(Value::Missing),
            Command::Resp(a, b) => response(e, a)
                .or_else(|| b.as_ref().and_then(|b| response(e, b)))
                .unwrap_or(Value::Missing),
            Command::Protocol => Value::Str(Cow::Borrowed(e.protocol)),
            Command::ResponseCode => Value::Num(u64::from(e.response_code)),
            Command::ResponseFlags => Value::Str(Cow::Borrowed(e.flags.unwrap_or("-"))),
            Command::ResponseCodeDetails => opt(e.details),
            Command::ConnectionTerminationDetails => opt(e.termination),
            Command::BytesReceived => Value::Num(e.bytes_received),
            Command::BytesSent => Value::Num(e.bytes_sent),
            Command::UpstreamHost => addr(e.upstream_host, true),
            Command::UpstreamCluster => opt(e.cluster),
            Command::UpstreamLocalAddress => Value::Missing,
            Command::UpstreamTransportFailureReason => opt(e.transport_failure),
            Command::RouteName => opt(e.route),
            Command::DownstreamRemoteAddress { port } => addr(Some(e.remote), *port),
            Command::DownstreamLocalAddress { port } => addr(e.local, *port),
            Command::DownstreamPeerUriSan => opt(e.peer_uri_san),
            Command::DownstreamLocalUriSan => opt(e.local_uri_san),
            Command::RequestedServerName => opt(e.sni),
            Command::TraceId => opt(e.trace_id()),
            Command::GrpcStatus => e
                .grpc_status
                .map_or(Value::Missing, |s| Value::Num(u64::from(s))),
            Command::SourcePrincipal => opt(e.source_principal),
            Command::DestinationPrincipal => opt(e.destination_principal),
            Command::FilterDecisions => Value::Decisions(e.decisions),
        }
    }

    /// The request headers this command needs captured.
    pub fn request_headers(&self) -> Vec<HeaderName> {
        match self {
            Command::Req(a, b) => [Some(a), b.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|h| match h {
                    Header::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect(),
            Command::TraceId => vec![TRACEPARENT, X_B3_TRACEID],
            _ => Vec::new(),
        }
    }

    /// The response headers this command needs captured.
    pub fn response_headers(&self) -> Vec<HeaderName> {
        match self {
            Command::Resp(a, b) => [Some(a), b.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|h| match h {
                    Header::Named(n) => Some(n.clone()),
                    Header::UpstreamServiceTime => Some(UPSTREAM_SERVICE_TIME),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn request<'a>(e: &Entry<'a>, h: &Header) -> Option<Value<'a>> {
    let s = match h {
        Header::Method => Some(e.method),
        Header::Path => Some(e.path),
        Header::Authority => e.authority,
        Header::Scheme => Some(e.scheme),
        Header::RequestId => Some(e.request_id),
        Header::UpstreamServiceTime => e.request_header(&UPSTREAM_SERVICE_TIME),
        Header::Named(n) => e.request_header(n),
    };
    s.map(|s| Value::Str(Cow::Borrowed(s)))
}

fn response<'a>(e: &Entry<'a>, h: &Header) -> Option<Value<'a>> {
    match h {
        Header::UpstreamServiceTime => e
            .response_header(&UPSTREAM_SERVICE_TIME)
            .map(|s| Value::Str(Cow::Borrowed(s)))
            .or_else(|| {
                e.upstream_time
                    .map(|d| Value::Str(Cow::Owned(d.as_millis().to_string())))
            }),
        Header::Named(n) => e.response_header(n).map(|s| Value::Str(Cow::Borrowed(s))),
        // Pseudo-headers and the request id are not response headers.
        _ => None,
    }
}

/// Parses the command after a `%`; returns it and the rest of the format after its closing `%`.
fn command(s: &str) -> Result<(Part, &str), String> {
    let name_len = s
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (name, mut rest) = s.split_at(name_len);
    if name.is_empty() {
        return Err(format!(
            "`%` not followed by a command at `%{}` (write `%%` for a literal `%`)",
            preview(s)
        ));
    }
    let mut arg = None;
    if let Some(after) = rest.strip_prefix('(') {
        let close = after
            .find(')')
            .ok_or_else(|| format!("`%{name}(` has no closing `)`"))?;
        arg = Some(&after[..close]);
        rest = &after[close + 1..];
    }
    let mut max = None;
    if let Some(after) = rest.strip_prefix(':') {
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let n = after[..digits]
            .parse::<usize>()
            .map_err(|_| format!("`%{name}`: expected a length after `:`"))?;
        max = Some(n);
        rest = &after[digits..];
    }
    let rest = rest
        .strip_prefix('%')
        .ok_or_else(|| format!("command `%{name}` is not closed by `%`"))?;
    let no_arg = |c: Command| match arg {
        None => Ok(c),
        Some(_) => Err(format!("command `%{name}%` takes no argument")),
    };
    let cmd = match name {
        "START_TIME" => Command::StartTime(match arg {
            None => time::default_format(),
            Some(f) => TimeFormat::compile(f).map_err(|e| format!("`%START_TIME({f})%`: {e}"))?,
        }),
        "REQ" | "RESP" => {
            let arg = arg.ok_or_else(|| format!("`%{name}%` needs a header: `%{name}(NAME)%`"))?;
            let (a, b) = match arg.split_once('?') {
                Some((a, b)) => (header(a, name)?, Some(header(b, name)?)),
                None => (header(arg, name)?, None),
            };
            if name == "REQ" {
                Command::Req(a, b)
            } else {
                Command::Resp(a, b)
            }
        }
        "DURATION" | "REQUEST_DURATION" => no_arg(Command::Duration)?,
        "RESPONSE_DURATION" => no_arg(Command::ResponseDuration)?,
        "PROTOCOL" => no_arg(Command::Protocol)?,
        "RESPONSE_CODE" => no_arg(Command::ResponseCode)?,
        "RESPONSE_FLAGS" => no_arg(Command::ResponseFlags)?,
        "RESPONSE_CODE_DETAILS" => no_arg(Command::ResponseCodeDetails)?,
        "CONNECTION_TERMINATION_DETAILS" => no_arg(Command::ConnectionTerminationDetails)?,
        "BYTES_RECEIVED" => no_arg(Command::BytesReceived)?,
        "BYTES_SENT" => no_arg(Command::BytesSent)?,
        "UPSTREAM_HOST" => no_arg(Command::UpstreamHost)?,
        "UPSTREAM_CLUSTER" => no_arg(Command::UpstreamCluster)?,
        "UPSTREAM_LOCAL_ADDRESS" => no_arg(Command::UpstreamLocalAddress)?,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => no_arg(Command::UpstreamTransportFailureReason)?,
        "ROUTE_NAME" => no_arg(Command::RouteName)?,
        "DOWNSTREAM_REMOTE_ADDRESS" => no_arg(Command::DownstreamRemoteAddress { port: true })?,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
            no_arg(Command::DownstreamRemoteAddress { port: false })?
        }
        "DOWNSTREAM_LOCAL_ADDRESS" => no_arg(Command::DownstreamLocalAddress { port: true })?,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            no_arg(Command::DownstreamLocalAddress { port: false })?
        }
        "DOWNSTREAM_PEER_URI_SAN" => no_arg(Command::DownstreamPeerUriSan)?,
        "DOWNSTREAM_LOCAL_URI_SAN" => no_arg(Command::DownstreamLocalUriSan)?,
        "REQUESTED_SERVER_NAME" => no_arg(Command::RequestedServerName)?,
        "TRACE_ID" => no_arg(Command::TraceId)?,
        "GRPC_STATUS_NUMBER" => no_arg(Command::GrpcStatus)?,
        "SOURCE_PRINCIPAL" => no_arg(Command::SourcePrincipal)?,
        "DESTINATION_PRINCIPAL" => no_arg(Command::DestinationPrincipal)?,
        "FILTER_DECISIONS" => no_arg(Command::FilterDecisions)?,
        other => return Err(format!("unknown command `%{other}%`")),
    };
    Ok((Part::Command(cmd, max), rest))
}

/// A `REQ`/`RESP` header argument: pseudo-headers by name, others as lowercase header names.
fn header(name: &str, command: &str) -> Result<Header, String> {
    let lower = name.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        ":method" => Header::Method,
        ":path" => Header::Path,
        ":authority" | "host" => Header::Authority,
        ":scheme" => Header::Scheme,
        "x-request-id" => Header::RequestId,
        "x-envoy-upstream-service-time" => Header::UpstreamServiceTime,
        _ => Header::Named(
            HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| format!("`%{command}({name})%`: `{name}` is not a header name"))?,
        ),
    })
}

fn preview(s: &str) -> &str {
    s.char_indices().nth(12).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests;
