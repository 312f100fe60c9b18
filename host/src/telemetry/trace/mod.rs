//! Distributed tracing: one span per request per proxy, W3C and B3 propagation, OTLP export.
//!
//! ```text
//! proxy(): Tracer::begin ─► extract (traceparent > b3 > x-b3-*) ─► decide (caller's decision, else sampling %)
//!          ─► sampled: new span id, inject traceparent (+ b3 / x-b3-* when the request had them) ─► Record.trace
//!          ─► not sampled: nothing stored; a new trace gets `traceparent: …-00` so later hops agree
//! Worker::finish ─► span::Finished (cheap clones) ─► Exporter::push (try_send, drops counted)
//!          ─► exporter thread: batch ≤ 512 spans or 1 s ─► OTLP/gRPC or OTLP/HTTP
//! ```
//!
//! Span kind follows the listener's direction: SERVER on inbound listeners, CLIENT on outbound ones and on listeners
//! without a direction (a stand-alone proxy is reported like a sidecar's outbound side, as its metrics are with
//! `reporter="source"`; note Envoy's HCM defaults to ingress). The span this proxy records is the parent the upstream
//! sees, so an application that forwards the headers keeps the trace id and nests under this hop.

pub mod export;
pub mod propagation;
pub mod proto;
pub mod span;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};

use self::{
    export::Target,
    propagation::{Decision, Extracted, SpanContext},
    proto::SpanKind,
};
use crate::config::{
    Invalid,
    telemetry::{Direction, ListenerTelemetry},
};

/// A listener's compiled tracing settings.
#[derive(Debug)]
pub struct Tracer {
    /// Percent of new traces recorded.
    sampling: f64,
    /// Where the spans go, and as which service.
    pub target: Arc<Target>,
    /// SERVER or CLIENT.
    pub kind: SpanKind,
    /// Literal attributes added to every span.
    pub custom_tags: Box<[(String, String)]>,
    /// Attributes from request headers: tag, header, default.
    pub header_tags: Box<[(String, http::HeaderName, Option<String>)]>,
    /// The local workload as `name.namespace`, Envoy's `node_id` tag.
    pub node_id: Option<Box<str>>,
}

/// The span of a sampled request, kept in its [`crate::telemetry::Record`] until the request finishes.
#[derive(Debug)]
pub struct Active {
    /// The listener's tracer.
    pub tracer: Arc<Tracer>,
    /// This span: the trace id and its own span id.
    pub ctx: SpanContext,
    /// The caller's span id, for a continued trace.
    pub parent: Option<[u8; 8]>,
    /// The incoming `tracestate`, kept as is.
    pub tracestate: Option<HeaderValue>,
    /// `x-request-id`, when the request had one.
    pub request_id: Option<HeaderValue>,
    /// `user-agent`, when the request had one.
    pub user_agent: Option<HeaderValue>,
    /// The values of the tracer's header tags, in order (`None`: header absent and no default).
    pub header_tags: Box<[Option<HeaderValue>]>,
}

impl Tracer {
    /// Compiles a listener's `tracing` block; `has_cluster` checks the collector's cluster.
    pub fn compile(
        config: &ListenerTelemetry,
        field: &str,
        has_cluster: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Arc<Tracer>>, Invalid> {
        let Some(t) = &config.tracing else {
            return Ok(None);
        };
        if !(0.0..=100.0).contains(&t.sampling) {
            return Err(Invalid::new(
                format!("{field}.sampling"),
                "expected a percentage from 0 to 100",
            ));
        }
        if let Some(c) = &t.otlp.cluster
            && !has_cluster(c)
        {
            return Err(Invalid::new(
                format!("{field}.otlp.cluster"),
                format!("unknown cluster `{c}`"),
            ));
        }
        let service_name = match (&t.service_name, &config.workload) {
            (s, _) if !s.is_empty() => s.clone(),
            (_, Some(w)) => format!("{}.{}", w.canonical_service(), w.namespace),
            (_, None) => "meshwork".into(),
        };
        let target = Target::compile(&t.otlp, service_name.into())
            .map_err(|(sub, message)| Invalid::new(format!("{field}.otlp{sub}"), message))?;
        Ok(Some(Arc::new(Tracer {
            sampling: t.sampling,
            target: Arc::new(target),
            kind: match config.direction {
                Direction::Inbound => SpanKind::Server,
                Direction::Outbound | Direction::Unspecified => SpanKind::Client,
            },
            custom_tags: t
                .custom_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            header_tags: t
                .header_tags
                .iter()
                .map(|(tag, h)| {
                    http::HeaderName::from_bytes(h.header.as_bytes())
                        .map(|name| (tag.clone(), name, h.default.clone()))
                        .map_err(|_| {
                            Invalid::new(
                                format!("{field}.tracing.header_tags.{tag}.header"),
                                "not a valid header name",
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            node_id: config
                .workload
                .as_ref()
                .map(|w| format!("{}.{}", w.name, w.namespace).into()),
        })))
    }

    /// Reads the request's trace context, decides, and for a sampled request starts this hop's span and injects it
    /// for the upstream. Returns the span to keep in the record, or `None` when the request is not recorded.
    pub fn begin(self: &Arc<Self>, headers: &mut HeaderMap) -> Option<Active> {
        let incoming = propagation::extract(headers);
        let decision = decide(incoming.decision, self.sampling, fastrand::f64() * 100.0);
        if !decision.sampled() {
            if incoming.decision.is_none() {
                // This hop made the decision: say so downstream, keeping the caller's trace id if it sent one.
                let ctx = SpanContext {
                    trace_id: incoming.parent.map_or_else(new_trace_id, |p| p.trace_id),
                    span_id: new_span_id(),
                };
                headers.insert(
                    propagation::TRACEPARENT,
                    propagation::format_traceparent(&ctx, false),
                );
            }
            return None;
        }
        let ctx = SpanContext {
            trace_id: incoming.parent.map_or_else(new_trace_id, |p| p.trace_id),
            span_id: new_span_id(),
        };
        let parent = incoming.parent.map(|p| p.span_id);
        inject(headers, &ctx, parent.as_ref(), decision, &incoming);
        Some(Active {
            tracer: self.clone(),
            ctx,
            parent,
            tracestate: headers.get(propagation::TRACESTATE).cloned(),
            request_id: headers.get("x-request-id").cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            header_tags: self
                .header_tags
                .iter()
                .map(|(_, name, default)| {
                    headers.get(name).cloned().or_else(|| {
                        default
                            .as_deref()
                            .and_then(|d| HeaderValue::from_str(d).ok())
                    })
                })
                .collect(),
        })
    }
}

/// The sampling decision: the caller's when it made one, else `roll` (uniform in `[0, 100)`) under `rate` percent.
pub fn decide(incoming: Option<Decision>, rate: f64, roll: f64) -> Decision {
    incoming.unwrap_or(if roll < rate {
        Decision::Sample
    } else {
        Decision::Drop
    })
}

/// Writes `ctx` as the upstream's parent: `traceparent` always, B3 in the forms the request used.
fn inject(
    headers: &mut HeaderMap,
    ctx: &SpanContext,
    parent: Option<&[u8; 8]>,
    decision: Decision,
    incoming: &Extracted,
) {
    use propagation::*;
    headers.insert(TRACEPARENT, format_traceparent(ctx, true));
    let short = incoming.formats.b3_short;
    if incoming.formats.b3_single {
        headers.insert(B3, format_b3_single(ctx, parent, decision, short));
    }
    if incoming.formats.b3_multi {
        headers.insert(B3_TRACE_ID, format_b3_trace_id(&ctx.trace_id, short));
        headers.insert(B3_SPAN_ID, format_span_id(&ctx.span_id));
        match parent {
            Some(p) => headers.insert(B3_PARENT_SPAN_ID, format_span_id(p)),
            None => headers.remove(B3_PARENT_SPAN_ID),
        };
        if decision == Decision::Debug {
            headers.insert(B3_FLAGS, HeaderValue::from_static("1"));
            headers.remove(B3_SAMPLED);
        } else {
            headers.insert(B3_SAMPLED, HeaderValue::from_static("1"));
        }
    }
}

fn new_trace_id() -> [u8; 16] {
    fastrand::u128(1..).to_be_bytes()
}

fn new_span_id() -> [u8; 8] {
    fastrand::u64(1..).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tracing::{Otlp, Tracing};

    #[test]
    fn decision_table() {
        // (incoming, rate, roll) -> sampled
        let cases: &[(Option<Decision>, f64, f64, bool)] = &[
            (None, 100.0, 99.999, true),
            (None, 0.0, 0.0, false),
            (None, 1.0, 0.5, true),
            (None, 1.0, 1.0, false),
            (None, 1.0, 50.0, false),
            (Some(Decision::Drop), 100.0, 0.0, false),
            (Some(Decision::Sample), 0.0, 99.0, true),
            (Some(Decision::Debug), 0.0, 99.0, true),
        ];
        for (incoming, rate, roll, want) in cases {
            assert_eq!(
                decide(*incoming, *rate, *roll).sampled(),
                *want,
                "{incoming:?} {rate} {roll}"
            );
        }
    }

    fn tracer(sampling: f64) -> Arc<Tracer> {
        let config = ListenerTelemetry {
            tracing: Some(Tracing {
                sampling,
                otlp: Otlp {
                    grpc: Some("127.0.0.1:4317".into()),
                    ..Default::default()
                },
                service_name: String::new(),
                custom_tags: Default::default(),
                header_tags: Default::default(),
            }),
            ..Default::default()
        };
        Tracer::compile(&config, "t", &|_| true)
            .expect("valid")
            .expect("tracer")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_str(v).expect("value"),
                )
            })
            .collect()
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn begin_table() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let tp_off = format!("00-{TRACE}-{SPAN}-00");
        let b3 = format!("{}-{SPAN}-1", &TRACE[16..]);
        // (sampling, headers) -> (recorded, traceparent prefix out, b3 out prefix, x-b3-traceid out)
        type Row<'a> = (
            f64,
            Vec<(&'static str, &'a str)>,
            bool,
            Option<String>,
            Option<String>,
            Option<&'a str>,
        );
        let cases: Vec<Row<'_>> = vec![
            (
                0.0,
                vec![("traceparent", &tp)],
                true,
                Some(format!("00-{TRACE}-")),
                None,
                None,
            ),
            (
                100.0,
                vec![("traceparent", &tp_off)],
                false,
                Some(tp_off.clone()),
                None,
                None,
            ),
            (
                100.0,
                vec![("b3", &b3)],
                true,
                Some(format!("00-0000000000000000{}-", &TRACE[16..])),
                Some(format!("{}-", &TRACE[16..])),
                None,
            ),
            (
                100.0,
                vec![
                    ("x-b3-traceid", TRACE),
                    ("x-b3-spanid", SPAN),
                    ("x-b3-sampled", "1"),
                ],
                true,
                Some(format!("00-{TRACE}-")),
                None,
                Some(TRACE),
            ),
            (
                100.0,
                vec![("b3", "0")],
                false,
                None,
                Some("0".into()),
                None,
            ),
            (0.0, vec![], false, Some("00-".into()), None, None),
            (100.0, vec![], true, Some("00-".into()), None, None),
        ];
        for (sampling, hs, recorded, tp_out, b3_out, multi_out) in cases {
            let mut map = headers(&hs);
            let active = tracer(sampling).begin(&mut map);
            assert_eq!(active.is_some(), recorded, "{hs:?}");
            let get = |k: &str| map.get(k).map(|v| v.to_str().expect("ascii").to_string());
            let out = get("traceparent");
            match &tp_out {
                Some(p) => assert!(
                    out.as_deref().is_some_and(|o| o.starts_with(p.as_str())),
                    "{hs:?}: {out:?}"
                ),
                None => assert_eq!(out, None, "{hs:?}"),
            }
            if let Some(a) = &active {
                let o = out.expect("traceparent");
                assert_eq!(
                    &o[36..52],
                    propagation::hex_string(&a.ctx.span_id),
                    "{hs:?}"
                );
                assert!(o.ends_with("-01"), "{hs:?}");
                assert_ne!(a.ctx.span_id, [0; 8]);
            } else if hs.is_empty() {
                assert!(out.expect("traceparent").ends_with("-00"));
            }
            let b3 = get("b3");
            match &b3_out {
                Some(p) => assert!(
                    b3.as_deref().is_some_and(|o| o.starts_with(p.as_str())),
                    "{hs:?}: {b3:?}"
                ),
                None => assert_eq!(b3, None, "{hs:?}"),
            }
            assert_eq!(get("x-b3-traceid").as_deref(), multi_out, "{hs:?}");
            if multi_out.is_some() {
                assert_eq!(get("x-b3-parentspanid").as_deref(), Some(SPAN));
            }
        }
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut config = ListenerTelemetry {
            tracing: Some(Tracing {
                sampling: 101.0,
                otlp: Otlp::default(),
                service_name: String::new(),
                custom_tags: Default::default(),
                header_tags: Default::default(),
            }),
            ..Default::default()
        };
        let err = |c: &ListenerTelemetry| {
            Tracer::compile(c, "l", &|n| n == "otel")
                .expect_err("invalid")
                .field
        };
        assert_eq!(err(&config), "l.sampling");
        let t = config.tracing.as_mut().expect("tracing");
        t.sampling = 1.0;
        assert_eq!(err(&config), "l.otlp");
        let t = config.tracing.as_mut().expect("tracing");
        t.otlp.grpc = Some("c:4317".into());
        t.otlp.cluster = Some("nope".into());
        assert_eq!(err(&config), "l.otlp.cluster");
    }
}
