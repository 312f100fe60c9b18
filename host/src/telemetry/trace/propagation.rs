//! Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin B3, single (`b3`) and multi
//! (`x-b3-*`) header. Pure parsing and formatting; [`super::Tracer`] decides what to do with the result.
//!
//! Precedence when a request carries several: a valid `traceparent` wins, then `b3`, then `x-b3-*`. An invalid header
//! is ignored as if absent (W3C says so for `traceparent`), so a broken `traceparent` next to a good `b3` keeps the B3
//! trace. A header that carries only a decision (`b3: 0`, `b3: d`, `x-b3-sampled: 0` without ids) gives a sampling
//! decision without a parent: the proxy starts a new trace that honours it.
//!
//! W3C: version `00` only, lowercase hex, trace id 32 and span id 16 digits, neither all zeros; flags bit 0 = sampled.
//! B3: trace id 16 (64-bit, kept as the low half of a 128-bit id) or 32 digits, span ids 16 digits, either case;
//! sampling state `1`/`0`/`d` (debug, which implies sampled), multi-header `x-b3-sampled: 1|0|true|false` and
//! `x-b3-flags: 1` (debug).

use http::{HeaderMap, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// B3 single header.
pub const B3: &str = "b3";
/// B3 multi headers.
pub const B3_TRACE_ID: &str = "x-b3-traceid";
/// B3 multi: the span id.
pub const B3_SPAN_ID: &str = "x-b3-spanid";
/// B3 multi: the parent's span id.
pub const B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// B3 multi: the sampling decision.
pub const B3_SAMPLED: &str = "x-b3-sampled";
/// B3 multi: `1` = debug.
pub const B3_FLAGS: &str = "x-b3-flags";

/// A trace id and the id of the span that is the parent of the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// 128 bits; a 64-bit B3 id is the low half.
    pub trace_id: [u8; 16],
    /// The sender's span.
    pub span_id: [u8; 8],
}

/// A sampling decision carried by a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Do not record.
    Drop,
    /// Record.
    Sample,
    /// Record (B3 debug, which downstream hops must record too).
    Debug,
}

impl Decision {
    /// Whether spans are recorded.
    pub fn sampled(self) -> bool {
        self != Decision::Drop
    }
}

/// Which propagation formats a request used, so the proxy answers in kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Formats {
    /// A `b3` header was present.
    pub b3_single: bool,
    /// An `x-b3-traceid` or `x-b3-sampled` header was present.
    pub b3_multi: bool,
    /// The B3 trace id had 64 bits (16 digits), so B3 goes out with 16 digits too.
    pub b3_short: bool,
}

/// What a request's headers say about its trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The caller's context, when one was valid.
    pub parent: Option<SpanContext>,
    /// The caller's decision, when it made one.
    pub decision: Option<Decision>,
    /// The formats present.
    pub formats: Formats,
}

/// Reads the trace context of `headers` by the precedence above.
pub fn extract(headers: &HeaderMap) -> Extracted {
    let single = headers.get(B3);
    let multi_trace = headers.get(B3_TRACE_ID);
    let mut formats = Formats {
        b3_single: single.is_some(),
        b3_multi: multi_trace.is_some() || headers.contains_key(B3_SAMPLED),
        b3_short: false,
    };
    if let Some((ctx, decision)) = headers
        .get(TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
    {
        formats.b3_short = b3_short(single, multi_trace);
        return Extracted {
            parent: Some(ctx),
            decision: Some(decision),
            formats,
        };
    }
    if let Some(b3) = single.and_then(|v| parse_b3_single(v.as_bytes())) {
        formats.b3_short = b3.short;
        return Extracted {
            parent: b3.ctx,
            decision: b3.decision,
            formats,
        };
    }
    let multi = parse_b3_multi(
        multi_trace.map(HeaderValue::as_bytes),
        headers.get(B3_SPAN_ID).map(HeaderValue::as_bytes),
        headers.get(B3_SAMPLED).map(HeaderValue::as_bytes),
        headers.get(B3_FLAGS).map(HeaderValue::as_bytes),
    );
    formats.b3_short = multi.short;
    Extracted {
        parent: multi.ctx,
        decision: multi.decision,
        formats,
    }
}

fn b3_short(single: Option<&HeaderValue>, multi: Option<&HeaderValue>) -> bool {
    match (single, multi) {
        (Some(s), _) => s.as_bytes().get(16) == Some(&b'-'),
        (None, Some(m)) => m.len() == 16,
        (None, None) => false,
    }
}

/// Parses a `traceparent` value: `00-{trace id}-{span id}-{flags}`.
pub fn parse_traceparent(v: &[u8]) -> Option<(SpanContext, Decision)> {
    if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    if !v.iter().all(|b| !b.is_ascii_uppercase()) {
        return None;
    }
    let trace_id = hex::<16>(&v[3..35])?;
    let span_id = hex::<8>(&v[36..52])?;
    let flags = hex::<1>(&v[53..55])?[0];
    nonzero(&trace_id, &span_id)?;
    let decision = if flags & 1 == 1 {
        Decision::Sample
    } else {
        Decision::Drop
    };
    Some((SpanContext { trace_id, span_id }, decision))
}

/// Formats a `traceparent` value for `ctx`.
pub fn format_traceparent(ctx: &SpanContext, sampled: bool) -> HeaderValue {
    let mut out = [0u8; 55];
    out[..3].copy_from_slice(b"00-");
    write_hex(&ctx.trace_id, &mut out[3..35]);
    out[35] = b'-';
    write_hex(&ctx.span_id, &mut out[36..52]);
    out[52] = b'-';
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
    header_value(&out)
}

/// A parsed B3 header (single or multi).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct B3Parsed {
    /// The context, when both ids were valid.
    pub ctx: Option<SpanContext>,
    /// The decision, when one was given.
    pub decision: Option<Decision>,
    /// The trace id had 64 bits.
    pub short: bool,
}

/// Parses a `b3` value: `{trace}-{span}[-{sampling}[-{parent}]]` or just `{sampling}`.
pub fn parse_b3_single(v: &[u8]) -> Option<B3Parsed> {
    let mut parts = v.split(|b| *b == b'-');
    let first = parts.next()?;
    let Some(span) = parts.next() else {
        // Only a decision.
        return Some(B3Parsed {
            decision: Some(b3_state(first)?),
            ..Default::default()
        });
    };
    let (trace_id, short) = b3_trace_id(first)?;
    let span_id = (span.len() == 16).then(|| hex::<8>(span))??;
    nonzero(&trace_id, &span_id)?;
    let decision = match parts.next() {
        Some(s) => Some(b3_state(s)?),
        None => None,
    };
    if let Some(parent) = parts.next() {
        (parent.len() == 16).then(|| hex::<8>(parent))??;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(B3Parsed {
        ctx: Some(SpanContext { trace_id, span_id }),
        decision,
        short,
    })
}

/// Parses the B3 multi headers; an invalid id pair leaves `ctx` empty but keeps a valid decision.
pub fn parse_b3_multi(
    trace: Option<&[u8]>,
    span: Option<&[u8]>,
    sampled: Option<&[u8]>,
    flags: Option<&[u8]>,
) -> B3Parsed {
    let ids = trace.zip(span).and_then(|(t, s)| {
        let (trace_id, short) = b3_trace_id(t)?;
        let span_id = (s.len() == 16).then(|| hex::<8>(s))??;
        nonzero(&trace_id, &span_id)?;
        Some((SpanContext { trace_id, span_id }, short))
    });
    let decision = if flags == Some(b"1") {
        Some(Decision::Debug)
    } else {
        match sampled {
            Some(b"1" | b"true") => Some(Decision::Sample),
            Some(b"0" | b"false") => Some(Decision::Drop),
            _ => None,
        }
    };
    B3Parsed {
        ctx: ids.map(|(c, _)| c),
        decision,
        short: ids.is_some_and(|(_, s)| s),
    }
}

/// Formats a `b3` single value: this hop's span as the span, its parent as the parent.
pub fn format_b3_single(
    ctx: &SpanContext,
    parent: Option<&[u8; 8]>,
    decision: Decision,
    short: bool,
) -> HeaderValue {
    let mut out = [0u8; 32 + 1 + 16 + 2 + 17];
    let mut n = write_trace_id(&ctx.trace_id, short, &mut out);
    out[n] = b'-';
    write_hex(&ctx.span_id, &mut out[n + 1..n + 17]);
    n += 17;
    out[n] = b'-';
    out[n + 1] = match decision {
        Decision::Drop => b'0',
        Decision::Sample => b'1',
        Decision::Debug => b'd',
    };
    n += 2;
    if let Some(p) = parent {
        out[n] = b'-';
        write_hex(p, &mut out[n + 1..n + 17]);
        n += 17;
    }
    header_value(&out[..n])
}

/// Formats a B3 trace id (16 or 32 digits).
pub fn format_b3_trace_id(trace_id: &[u8; 16], short: bool) -> HeaderValue {
    let mut out = [0u8; 32];
    let n = write_trace_id(trace_id, short, &mut out);
    header_value(&out[..n])
}

/// Formats a span id (16 digits).
pub fn format_span_id(id: &[u8; 8]) -> HeaderValue {
    let mut out = [0u8; 16];
    write_hex(id, &mut out);
    header_value(&out)
}

/// Lowercase hex of `bytes`.
pub fn hex_string(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn write_trace_id(trace_id: &[u8; 16], short: bool, out: &mut [u8]) -> usize {
    // A 64-bit id goes back out as 16 digits only if its high half is empty; otherwise all 128 bits.
    if short && trace_id[..8] == [0; 8] {
        write_hex(&trace_id[8..], &mut out[..16]);
        16
    } else {
        write_hex(trace_id, &mut out[..32]);
        32
    }
}

fn b3_trace_id(v: &[u8]) -> Option<([u8; 16], bool)> {
    match v.len() {
        32 => Some((hex::<16>(v)?, false)),
        16 => {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&hex::<8>(v)?);
            Some((id, true))
        }
        _ => None,
    }
}

fn b3_state(v: &[u8]) -> Option<Decision> {
    match v {
        b"0" => Some(Decision::Drop),
        b"1" => Some(Decision::Sample),
        b"d" => Some(Decision::Debug),
        _ => None,
    }
}

fn nonzero(trace_id: &[u8; 16], span_id: &[u8; 8]) -> Option<()> {
    (*trace_id != [0; 16] && *span_id != [0; 8]).then_some(())
}

fn hex<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    if v.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in v.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
}

fn header_value(ascii: &[u8]) -> HeaderValue {
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(ascii).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn ctx(trace: &str, span: &str) -> SpanContext {
        let (trace_id, _) = b3_trace_id(trace.as_bytes()).expect("trace");
        SpanContext {
            trace_id,
            span_id: hex::<8>(span.as_bytes()).expect("span"),
        }
    }

    #[test]
    fn traceparent_table() {
        let good = |flags: &str| format!("00-{TRACE}-{SPAN}-{flags}");
        // (value) -> Some(sampled) if valid
        let cases: Vec<(String, Option<bool>)> = vec![
            (good("01"), Some(true)),
            (good("00"), Some(false)),
            (good("03"), Some(true)),
            (good("02"), Some(false)),
            (format!("01-{TRACE}-{SPAN}-01"), None),
            (format!("ff-{TRACE}-{SPAN}-01"), None),
            (format!("00-{}-{SPAN}-01", "0".repeat(32)), None),
            (format!("00-{TRACE}-{}-01", "0".repeat(16)), None),
            (format!("00-{}-{SPAN}-01", TRACE.to_uppercase()), None),
            (format!("00-{}x-{SPAN}-01", &TRACE[1..]), None),
            (format!("00-{TRACE}-{SPAN}-01-extra"), None),
            (format!("00-{}-{SPAN}-01", &TRACE[2..]), None),
            (format!("00-{TRACE}-{SPAN}01"), None),
            (format!("00_{TRACE}-{SPAN}-01"), None),
            (format!("00-{TRACE}-{SPAN}-0g"), None),
            (String::new(), None),
        ];
        for (v, want) in cases {
            let got = parse_traceparent(v.as_bytes());
            assert_eq!(got.map(|(_, d)| d.sampled()), want, "{v}");
            if let Some((c, d)) = got {
                assert_eq!(c, ctx(TRACE, SPAN), "{v}");
                // Round trip (flags other than the sampled bit are not kept).
                let back = format_traceparent(&c, d.sampled());
                assert_eq!(parse_traceparent(back.as_bytes()), Some((c, d)), "{v}");
            }
        }
        assert_eq!(
            format_traceparent(&ctx(TRACE, SPAN), true),
            good("01").as_str()
        );
    }

    #[test]
    fn b3_single_table() {
        let short = "a3ce929d0e0e4736";
        // (value) -> Some((has ctx, decision, short)) if valid
        type Want = Option<(bool, Option<Decision>, bool)>;
        let cases: Vec<(String, Want)> = vec![
            ("0".into(), Some((false, Some(Decision::Drop), false))),
            ("1".into(), Some((false, Some(Decision::Sample), false))),
            ("d".into(), Some((false, Some(Decision::Debug), false))),
            ("x".into(), None),
            (format!("{TRACE}-{SPAN}"), Some((true, None, false))),
            (
                format!("{TRACE}-{SPAN}-1"),
                Some((true, Some(Decision::Sample), false)),
            ),
            (
                format!("{TRACE}-{SPAN}-0-{SPAN}"),
                Some((true, Some(Decision::Drop), false)),
            ),
            (
                format!("{short}-{SPAN}-d"),
                Some((true, Some(Decision::Debug), true)),
            ),
            (
                format!("{}-{}-1", TRACE.to_uppercase(), SPAN.to_uppercase()),
                Some((true, Some(Decision::Sample), false)),
            ),
            (format!("{TRACE}-{SPAN}-2"), None),
            (format!("{TRACE}-{SPAN}-1-abc"), None),
            (format!("{TRACE}-{SPAN}-1-{SPAN}-x"), None),
            (format!("{}-{SPAN}-1", &TRACE[1..]), None),
            (format!("{TRACE}-{}-1", "0".repeat(16)), None),
            (format!("{}-{SPAN}", "0".repeat(32)), None),
        ];
        for (v, want) in cases {
            let got = parse_b3_single(v.as_bytes());
            assert_eq!(
                got.map(|p| (p.ctx.is_some(), p.decision, p.short)),
                want,
                "{v}"
            );
        }
        let c = ctx(TRACE, SPAN);
        let parent = [7u8; 8];
        assert_eq!(
            format_b3_single(&c, Some(&parent), Decision::Sample, false),
            format!("{TRACE}-{SPAN}-1-0707070707070707").as_str()
        );
        assert_eq!(
            format_b3_single(&ctx(short, SPAN), None, Decision::Debug, true),
            format!("{short}-{SPAN}-d").as_str()
        );
    }

    #[test]
    fn b3_multi_table() {
        let t = Some(TRACE.as_bytes());
        let s = Some(SPAN.as_bytes());
        // (trace, span, sampled, flags) -> (has ctx, decision, short)
        type Row<'a> = (
            Option<&'a [u8]>,
            Option<&'a [u8]>,
            Option<&'a [u8]>,
            Option<&'a [u8]>,
            (bool, Option<Decision>, bool),
        );
        let cases: &[Row<'_>] = &[
            (
                t,
                s,
                Some(b"1"),
                None,
                (true, Some(Decision::Sample), false),
            ),
            (
                t,
                s,
                Some(b"true"),
                None,
                (true, Some(Decision::Sample), false),
            ),
            (t, s, Some(b"0"), None, (true, Some(Decision::Drop), false)),
            (
                t,
                s,
                Some(b"false"),
                None,
                (true, Some(Decision::Drop), false),
            ),
            (t, s, None, Some(b"1"), (true, Some(Decision::Debug), false)),
            (
                t,
                s,
                Some(b"0"),
                Some(b"1"),
                (true, Some(Decision::Debug), false),
            ),
            (t, s, None, None, (true, None, false)),
            (t, s, Some(b"yes"), None, (true, None, false)),
            (
                None,
                None,
                Some(b"0"),
                None,
                (false, Some(Decision::Drop), false),
            ),
            (
                t,
                None,
                Some(b"1"),
                None,
                (false, Some(Decision::Sample), false),
            ),
            (
                Some(b"a3ce929d0e0e4736"),
                s,
                Some(b"1"),
                None,
                (true, Some(Decision::Sample), true),
            ),
            (
                Some(b"a3ce929d0e0e473"),
                s,
                None,
                None,
                (false, None, false),
            ),
            (t, Some(b"00f067aa0ba902"), None, None, (false, None, false)),
            (
                t,
                Some(b"0000000000000000"),
                None,
                None,
                (false, None, false),
            ),
        ];
        for (trace, span, sampled, flags, want) in cases {
            let got = parse_b3_multi(*trace, *span, *sampled, *flags);
            assert_eq!(
                (got.ctx.is_some(), got.decision, got.short),
                *want,
                "{trace:?} {span:?} {sampled:?} {flags:?}"
            );
        }
        let short = ctx("a3ce929d0e0e4736", SPAN);
        assert_eq!(
            format_b3_trace_id(&short.trace_id, true),
            "a3ce929d0e0e4736"
        );
        assert_eq!(
            format_b3_trace_id(&short.trace_id, false),
            format!("{}a3ce929d0e0e4736", "0".repeat(16)).as_str()
        );
        assert_eq!(format_span_id(&short.span_id), SPAN);
    }

    #[test]
    fn precedence_table() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let other = "11111111111111111111111111111111";
        let b3 = format!("{other}-{SPAN}-0");
        // (headers) -> (trace id of the parent, decision, formats single/multi)
        type Row<'a> = (
            Vec<(&'a str, String)>,
            Option<&'a str>,
            Option<Decision>,
            (bool, bool),
        );
        let cases: Vec<Row<'_>> = vec![
            (vec![], None, None, (false, false)),
            (
                vec![("traceparent", tp.clone())],
                Some(TRACE),
                Some(Decision::Sample),
                (false, false),
            ),
            (
                vec![("traceparent", tp.clone()), ("b3", b3.clone())],
                Some(TRACE),
                Some(Decision::Sample),
                (true, false),
            ),
            (
                vec![("traceparent", "00-bad".into()), ("b3", b3.clone())],
                Some(other),
                Some(Decision::Drop),
                (true, false),
            ),
            (
                vec![
                    ("b3", "garbage".into()),
                    ("x-b3-traceid", other.into()),
                    ("x-b3-spanid", SPAN.into()),
                    ("x-b3-sampled", "1".into()),
                ],
                Some(other),
                Some(Decision::Sample),
                (true, true),
            ),
            (
                vec![("b3", "0".into())],
                None,
                Some(Decision::Drop),
                (true, false),
            ),
            (
                vec![("x-b3-sampled", "0".into())],
                None,
                Some(Decision::Drop),
                (false, true),
            ),
        ];
        for (hs, trace, decision, formats) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in &hs {
                map.insert(*k, HeaderValue::from_str(v).expect("value"));
            }
            let e = extract(&map);
            assert_eq!(
                e.parent.map(|c| hex_string(&c.trace_id)),
                trace.map(str::to_string),
                "{hs:?}"
            );
            assert_eq!(e.decision, decision, "{hs:?}");
            assert_eq!((e.formats.b3_single, e.formats.b3_multi), formats, "{hs:?}");
        }
    }
}
