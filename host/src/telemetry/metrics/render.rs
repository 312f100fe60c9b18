//! The Prometheus text exposition (version 0.0.4) of the request metrics, and the small helpers the other
//! `/stats/prometheus` families use: label-value escaping and `# HELP`/`# TYPE` headers.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{BYTES_BUCKETS, DURATION_BUCKETS, LabelSet, Series, labels::NAMES};

/// A histogram family: name, help, how to read it from a series, bucket bounds.
type Family = (
    &'static str,
    &'static str,
    fn(&Series) -> (&[u64], f64),
    &'static [f64],
);

/// Writes the four Istio request families for `series`.
pub fn render(series: &BTreeMap<LabelSet, Series>, out: &mut String) {
    header(
        out,
        "istio_requests_total",
        "counter",
        "Requests, by source and destination workload, service and response (Istio standard).",
    );
    for (labels, s) in series {
        let _ = writeln!(
            out,
            "istio_requests_total{{{}}} {}",
            label_text(labels),
            s.requests
        );
    }
    let families: [Family; 3] = [
        (
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds, from the request's first byte to the response's last.",
            |s| (&s.duration.buckets, s.duration.sum),
            &DURATION_BUCKETS,
        ),
        (
            "istio_request_bytes",
            "Request sizes in bytes (headers and body).",
            |s| (&s.request_bytes.buckets, s.request_bytes.sum),
            &BYTES_BUCKETS,
        ),
        (
            "istio_response_bytes",
            "Response body sizes in bytes.",
            |s| (&s.response_bytes.buckets, s.response_bytes.sum),
            &BYTES_BUCKETS,
        ),
    ];
    for (name, help, get, bounds) in families {
        header(out, name, "histogram", help);
        for (labels, s) in series {
            let (buckets, sum) = get(s);
            histogram(out, name, &label_text(labels), bounds, buckets, sum);
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One histogram's `_bucket` (cumulative, ending with `+Inf`), `_sum` and `_count` lines; `labels` is the rendered
/// label list without braces (may be empty).
pub fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    buckets: &[u64],
    sum: f64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, count) in buckets.iter().enumerate() {
        cumulative += count;
        let le = bounds
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

/// `name="value",…` for a request label set.
fn label_text(labels: &LabelSet) -> String {
    let mut out = String::new();
    for (i, (name, value)) in NAMES.iter().zip(labels.0.iter()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
pub fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        for (v, want) in [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
        ] {
            assert_eq!(escape(v), want);
        }
    }

    #[test]
    fn histogram_lines_are_cumulative_and_end_with_inf() {
        let mut out = String::new();
        histogram(&mut out, "h", "a=\"1\"", &[1.0, 10.0], &[2, 0, 3], 42.5);
        assert_eq!(
            out,
            "h_bucket{a=\"1\",le=\"1\"} 2\nh_bucket{a=\"1\",le=\"10\"} 2\nh_bucket{a=\"1\",le=\"+Inf\"} 5\n\
             h_sum{a=\"1\"} 42.5\nh_count{a=\"1\"} 5\n"
        );
        let mut out = String::new();
        histogram(&mut out, "h", "", &[0.5], &[1, 1], 1.0);
        assert!(
            out.contains("h_bucket{le=\"0.5\"} 1\n") && out.contains("h_count 2\n"),
            "{out}"
        );
    }

    #[test]
    fn request_families_render_every_series() {
        let mut series = BTreeMap::new();
        let mut s = Series {
            requests: 3,
            ..Default::default()
        };
        s.duration.observe(&DURATION_BUCKETS, 2.0);
        let labels = LabelSet(NAMES.iter().map(|n| format!("{n}-v")).collect());
        series.insert(labels, s.clone());
        let mut out = String::new();
        render(&series, &mut out);
        assert!(out.contains("# TYPE istio_requests_total counter\n"));
        assert!(out.contains(
            "istio_requests_total{reporter=\"reporter-v\",source_workload=\"source_workload-v\","
        ));
        assert!(out.contains("connection_security_policy=\"connection_security_policy-v\"} 3\n"));
        assert!(out.contains("# TYPE istio_request_duration_milliseconds histogram\n"));
        assert!(out.contains(",le=\"5\"} 1\n"), "{out}");
        assert_eq!(s.duration.buckets.iter().sum::<u64>(), 1);
    }
}
