//! What `meshwork top` shows, as pure functions of two scrapes: per (source workload → destination service) pair the
//! request rate, the error share and the p50/p99 latency over the interval between the scrapes.
//!
//! Each call is seen by both of its sidecars (`reporter="source"` and `reporter="destination"`); a pair's row uses the
//! client side's numbers when the client's sidecar reported the pair, else the server side's (a caller without a
//! sidecar, or a client sidecar that is not scraped), so no call is counted twice.

use std::{collections::BTreeMap, fmt::Write as _};

use super::exposition::Sample;

/// The request counter.
pub const REQUESTS: &str = "istio_requests_total";
/// The latency histogram's buckets.
pub const BUCKETS: &str = "istio_request_duration_milliseconds_bucket";

/// One scrape of every proxy: the series of [`REQUESTS`] and [`BUCKETS`] by identity (proxy, name and labels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape(BTreeMap<String, Sample>);

impl Scrape {
    /// Adds the samples read from proxy `proxy`.
    pub fn add(&mut self, proxy: &str, samples: Vec<Sample>) {
        for s in samples {
            let mut key = format!("{proxy} {}", s.name);
            for (k, v) in &s.labels {
                let _ = write!(key, " {k}={v:?}");
            }
            self.0.insert(key, s);
        }
    }
}

/// The counts of one pair over the interval, as one reporter saw them.
#[derive(Clone, Debug, Default, PartialEq)]
struct Counts {
    requests: f64,
    errors: f64,
    /// Latency bucket upper bound (ms) → observations at or under it.
    buckets: Vec<(f64, f64)>,
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `source_workload`.
    pub source: String,
    /// `destination_service`.
    pub destination: String,
    /// Requests per second.
    pub rps: f64,
    /// Errors (5xx, or a gRPC status other than OK) per 100 requests.
    pub error_percent: f64,
    /// Median latency in ms (`None`: no requests).
    pub p50: Option<f64>,
    /// 99th percentile latency in ms.
    pub p99: Option<f64>,
}

/// How much a counter grew from `before` to `now`; a counter that went down was reset (the proxy restarted).
fn growth(before: Option<&Sample>, now: &Sample) -> f64 {
    match before {
        Some(b) if b.value <= now.value => now.value - b.value,
        _ => now.value,
    }
}

/// Whether a request series counts as failed: a 5xx answer, or a gRPC status other than OK.
fn is_error(s: &Sample) -> bool {
    s.label("response_code").starts_with('5')
        || !matches!(s.label("grpc_response_status"), "" | "0")
}

/// The rows for the interval from `before` to `now`, `seconds` long, busiest first.
pub fn rows(before: &Scrape, now: &Scrape, seconds: f64) -> Vec<Row> {
    // (source, destination) → reporter → counts.
    let mut pairs: BTreeMap<(String, String), BTreeMap<String, Counts>> = BTreeMap::new();
    for (key, s) in &now.0 {
        let d = growth(before.0.get(key), s);
        let pair = (
            s.label("source_workload").to_string(),
            s.label("destination_service").to_string(),
        );
        let c = pairs
            .entry(pair)
            .or_default()
            .entry(s.label("reporter").to_string())
            .or_default();
        if s.name == REQUESTS {
            c.requests += d;
            if is_error(s) {
                c.errors += d;
            }
        } else if s.name == BUCKETS {
            let Ok(le) = s.label("le").parse::<f64>() else {
                continue;
            };
            match c.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += d,
                None => c.buckets.push((le, d)),
            }
        }
    }
    let mut out: Vec<Row> = pairs
        .into_iter()
        .filter_map(|((source, destination), mut by_reporter)| {
            let c = by_reporter
                .remove("source")
                .filter(|c| c.requests > 0.0)
                .or_else(|| by_reporter.remove("destination"))?;
            let mut buckets = c.buckets;
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            Some(Row {
                source,
                destination,
                rps: c.requests / seconds.max(f64::MIN_POSITIVE),
                error_percent: if c.requests > 0.0 {
                    100.0 * c.errors / c.requests
                } else {
                    0.0
                },
                p50: quantile(0.5, &buckets),
                p99: quantile(0.99, &buckets),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.rps
            .total_cmp(&a.rps)
            .then_with(|| (&a.source, &a.destination).cmp(&(&b.source, &b.destination)))
    });
    out
}

/// The `q` quantile of cumulative `buckets` (upper bound, count at or under it; sorted, ending with `+Inf`), by
/// linear interpolation inside the bucket that holds it, as Prometheus' `histogram_quantile` does.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let (&(last_bound, total), rest) = buckets.split_last()?;
    if rest.is_empty() || last_bound != f64::INFINITY || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let b = buckets.iter().position(|(_, n)| *n >= rank)?;
    if b == buckets.len() - 1 {
        // In the +Inf bucket: the highest finite bound is all that is known.
        return Some(buckets[b - 1].0);
    }
    let (end, count) = buckets[b];
    if b == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, below) = if b > 0 { buckets[b - 1] } else { (0.0, 0.0) };
    let inside = count - below;
    if inside <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * (rank - below) / inside)
}

/// The table as text.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (ws, wd) = (
        width(|r| &r.source, "SOURCE"),
        width(|r| &r.destination, "DESTINATION"),
    );
    let _ = writeln!(
        out,
        "{:<ws$}  {:<wd$}  {:>9}  {:>7}  {:>9}  {:>9}",
        "SOURCE", "DESTINATION", "RPS", "ERR%", "P50(ms)", "P99(ms)"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<ws$}  {:<wd$}  {:>9.1}  {:>6.1}%  {:>9}  {:>9}",
            r.source,
            r.destination,
            r.rps,
            r.error_percent,
            ms(r.p50),
            ms(r.p99)
        );
    }
    if rows.is_empty() {
        out.push_str("(no requests in the interval)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    fn req(reporter: &str, src: &str, dst: &str, code: &str, grpc: &str, n: f64) -> Sample {
        sample(
            REQUESTS,
            &[
                ("reporter", reporter),
                ("source_workload", src),
                ("destination_service", dst),
                ("response_code", code),
                ("grpc_response_status", grpc),
            ],
            n,
        )
    }

    fn bucket(reporter: &str, src: &str, dst: &str, le: &str, n: f64) -> Sample {
        sample(
            BUCKETS,
            &[
                ("reporter", reporter),
                ("source_workload", src),
                ("destination_service", dst),
                ("le", le),
            ],
            n,
        )
    }

    #[test]
    fn quantile_table() {
        const INF: f64 = f64::INFINITY;
        let b = [(1.0, 0.0), (5.0, 50.0), (10.0, 100.0), (INF, 100.0)];
        let cases: Vec<(f64, &[(f64, f64)], Option<f64>)> = vec![
            (0.5, &b, Some(5.0)),
            // rank 75: half way through (5, 10].
            (0.75, &b, Some(7.5)),
            // rank 25: half way through (1, 5].
            (0.25, &b, Some(3.0)),
            (0.99, &b, Some(9.9)),
            // The first bucket interpolates from 0.
            (0.5, &[(2.0, 10.0), (INF, 10.0)], Some(1.0)),
            // Everything above the highest bound: that bound.
            (0.5, &[(2.0, 0.0), (INF, 4.0)], Some(2.0)),
            (0.5, &[(2.0, 0.0), (INF, 0.0)], None),
            (0.5, &[(INF, 3.0)], None),
            (0.5, &[(1.0, 1.0), (2.0, 3.0)], None),
            (0.5, &[], None),
        ];
        for (q, buckets, want) in cases {
            let got = quantile(q, buckets);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{q} {buckets:?}: {g} != {w}"),
                _ => assert_eq!(got, want, "{q} {buckets:?}"),
            }
        }
    }

    #[test]
    fn rows_from_two_scrapes() {
        let mut before = Scrape::default();
        before.add(
            "a",
            vec![
                req("source", "pp", "reviews", "200", "", 100.0),
                req("source", "pp", "reviews", "503", "", 10.0),
                bucket("source", "pp", "reviews", "10", 100.0),
                bucket("source", "pp", "reviews", "+Inf", 110.0),
            ],
        );
        before.add(
            "b",
            vec![req("destination", "pp", "reviews", "200", "", 100.0)],
        );
        let mut now = Scrape::default();
        now.add(
            "a",
            vec![
                req("source", "pp", "reviews", "200", "", 118.0),
                req("source", "pp", "reviews", "503", "", 12.0),
                bucket("source", "pp", "reviews", "10", 120.0),
                bucket("source", "pp", "reviews", "+Inf", 130.0),
                // A series new in this interval counts from zero.
                req("source", "pp", "ratings", "200", "14", 5.0),
            ],
        );
        now.add(
            "b",
            vec![
                // The server side of the same calls: not counted again.
                req("destination", "pp", "reviews", "200", "", 118.0),
                // A caller without a sidecar: only the server side saw it.
                req("destination", "unknown", "reviews", "200", "", 4.0),
                bucket("destination", "unknown", "reviews", "1", 4.0),
                bucket("destination", "unknown", "reviews", "+Inf", 4.0),
            ],
        );
        let got = rows(&before, &now, 2.0);
        let summary: Vec<(&str, &str, f64, f64)> = got
            .iter()
            .map(|r| (&*r.source, &*r.destination, r.rps, r.error_percent))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("pp", "reviews", 10.0, 10.0),
                ("pp", "ratings", 2.5, 100.0),
                ("unknown", "reviews", 2.0, 0.0),
            ]
        );
        // 20 observations, all at or under 10 ms: the median is rank 10 of 20 in (0, 10].
        assert_eq!(got[0].p50, Some(5.0));
        assert_eq!(got[1].p50, None, "no histogram for the pair");
        assert_eq!(got[2].p99, Some(0.99));
    }

    #[test]
    fn a_reset_counter_counts_from_zero() {
        let s = |v| req("source", "a", "b", "200", "", v);
        assert_eq!(growth(Some(&s(10.0)), &s(15.0)), 5.0);
        assert_eq!(growth(Some(&s(10.0)), &s(3.0)), 3.0);
        assert_eq!(growth(None, &s(3.0)), 3.0);
    }

    #[test]
    fn table_lines_up() {
        let rows = [Row {
            source: "productpage-v1".into(),
            destination: "reviews.default.svc.cluster.local".into(),
            rps: 12.345,
            error_percent: 1.5,
            p50: Some(1.234),
            p99: None,
        }];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("SOURCE          DESTINATION"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("12.3     1.5%       1.23          -"),
            "{text}"
        );
        assert!(table(&[]).contains("no requests"));
    }
}
