//! The mTLS pair's own figures: the client sidecar's `/stats` counters around each
//! latency phase (connection reuse to the server sidecar), the CPU time both sidecars
//! used in it, and the paragraph that sets the pair's added latency beside the goal of
//! issue 6 and the published Istio figures.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;

use crate::cli::Target;
use crate::probe;
use crate::report::{Row, Settings};

/// The goal: added p99 of a sidecar pair (two hops, mTLS, five policy filters), µs.
pub const GOAL_ADDED_P99_US: i64 = 200;

/// The request rate the goal is stated at.
pub const GOAL_RATE: u32 = 1000;

/// The published figures the goal comes from (performance-anchors.md §1).
pub const REFERENCES: &str = "Istio ambient's ztunnel pair adds +0.17 ms p90 / +0.20 ms p99 \
    (L4 only: mTLS without any HTTP processing; Istio 1.22 docs, 1,000 req/s, 1 KB); Envoy \
    sidecars (two hops, mTLS, L7) add about +2.65 ms p90 (Istio 1.10–1.15 docs). Those are \
    other machines and harnesses: a frame of reference, not a comparison within this run";

/// The value of counter `name` in the text of meshwork's `/stats` (`name: value` lines).
pub fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// The client sidecar's counters that the reuse ratio is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `upstream_cx_tls_total`: TLS connections opened to the server sidecar.
    pub tls_connections: u64,
    /// `upstream_rq_total`: requests sent to it.
    pub requests: u64,
}

impl Counters {
    /// Both counters from the text of `/stats`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(Self {
            tls_connections: stat(text, "upstream_cx_tls_total")?,
            requests: stat(text, "upstream_rq_total")?,
        })
    }

    /// Reads them from the admin API at `admin`.
    pub fn read(admin: SocketAddr) -> anyhow::Result<Self> {
        let page = probe::fetch(admin, "/stats")?;
        Self::parse(&page.body).with_context(|| {
            format!("no upstream_cx_tls_total / upstream_rq_total in /stats of {admin}")
        })
    }

    /// What happened between `before` and `self`.
    pub fn since(self, before: Counters) -> Counters {
        Counters {
            tls_connections: self.tls_connections.saturating_sub(before.tls_connections),
            requests: self.requests.saturating_sub(before.requests),
        }
    }
}

/// One latency phase of the pair (warm-up included).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// The client sidecar's counters over the phase.
    pub counters: Counters,
    /// CPU seconds both sidecars used over the phase; `None` when unreadable.
    pub cpu_seconds: Option<f64>,
}

impl Sample {
    /// Connection reuse: `1 − tls_connections / requests`, the share of requests that
    /// went over a connection already open; `None` without requests.
    pub fn reuse_ratio(&self) -> Option<f64> {
        let Counters {
            tls_connections,
            requests,
        } = self.counters;
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        (requests > 0).then(|| 1.0 - tls_connections as f64 / requests as f64)
    }

    /// CPU µs of both sidecars per request; `None` without requests or CPU time.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.cpu_seconds?;
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        (self.counters.requests > 0).then(|| cpu * 1e6 / self.counters.requests as f64)
    }

    /// What happened between the snapshot `before` and this one.
    pub fn since(&self, before: &Sample) -> Sample {
        Sample {
            counters: self.counters.since(before.counters),
            cpu_seconds: self
                .cpu_seconds
                .zip(before.cpu_seconds)
                .map(|(now, then)| (now - then).max(0.0)),
        }
    }

    /// Several phases together (counts and CPU time added; CPU `None` if any is).
    pub fn total<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Sample {
        samples.into_iter().fold(
            Sample {
                cpu_seconds: Some(0.0),
                ..Sample::default()
            },
            |acc, s| Sample {
                counters: Counters {
                    tls_connections: acc.counters.tls_connections + s.counters.tls_connections,
                    requests: acc.counters.requests + s.counters.requests,
                },
                cpu_seconds: acc.cpu_seconds.zip(s.cpu_seconds).map(|(a, b)| a + b),
            },
        )
    }
}

/// A ratio as a percentage with two decimals, never rounded up to 100 unless it is 1.
fn percent(ratio: f64) -> String {
    let hundredths = (ratio * 10_000.0).floor() / 100.0;
    format!("{hundredths:.2} %")
}

/// Whether `added_p99` meets the goal, in words, given the rate it was measured at.
pub fn verdict(added_p99: i64, rate: u32) -> String {
    let met = added_p99 <= GOAL_ADDED_P99_US;
    let outcome = if met { "goal met" } else { "**goal not met**" };
    if rate == GOAL_RATE {
        outcome.to_owned()
    } else {
        format!(
            "{outcome} at {rate} req/s, but the goal is stated at {GOAL_RATE} req/s: rerun with \
             --rate {GOAL_RATE} to check it"
        )
    }
}

/// The pair's paragraph under the results table: added latency beside the goal and the
/// published references, connection reuse, CPU per request and both sidecars' RSS.
/// `None` when the pair was not measured.
pub fn summary(rows: &[Row], settings: &Settings) -> Option<String> {
    let measured = |t: Target| rows.iter().find(|r| r.target == t && r.skipped.is_none());
    let pair = measured(Target::MeshworkMtlsPair)?;
    let mut out = format!(
        "**{}** (load generator → client sidecar → mutual TLS → server sidecar with the five \
         policy filters → upstream; both sidecars on the proxy CPU). Goal (issue 6): at most \
         +{GOAL_ADDED_P99_US} µs p99 at {GOAL_RATE} req/s. ",
        pair.target.label()
    );
    let direct = measured(Target::Direct).and_then(|d| d.latency);
    match pair.latency.zip(direct) {
        Some((latency, direct)) => {
            let [p50, p99, p999] = latency.added_over(&direct);
            let _ = write!(
                out,
                "Measured at {} req/s: added p50 {p50:+} µs, **p99 {p99:+} µs**, p99.9 {p999:+} \
                 µs: {}. ",
                settings.rate,
                verdict(p99, settings.rate)
            );
        }
        None => out.push_str("Added latency not measured (it needs `direct` and the pair). "),
    }
    let nginx = measured(Target::NginxMtlsPair).and_then(|n| n.latency);
    if let Some(((pair, nginx), direct)) = pair.latency.zip(nginx).zip(direct) {
        let [p50, p99, p999] = nginx.added_over(&direct);
        let [m50, m99, _] = pair.added_over(&direct);
        let times = |m: i64, n: i64| {
            crate::report::ratio(m as f64, n as f64)
                .map_or("n/a".to_owned(), |r| format!("{r:.2}×"))
        };
        let _ = write!(
            out,
            "The same two hops with nginx (mutual TLS, no filters), in this run: added p50 {p50:+} µs, p99 \
             {p99:+} µs, p99.9 {p999:+} µs; the meshwork pair's added p50 is {} and p99 {} of nginx's. ",
            times(m50, p50),
            times(m99, p99)
        );
    }
    let _ = write!(out, "For reference, {REFERENCES}.");
    let samples: Vec<Sample> = pair.rounds.iter().filter_map(|r| r.mtls).collect();
    let total = Sample::total(&samples);
    if let Some(reuse) = total.reuse_ratio() {
        let per_round: Vec<String> = samples
            .iter()
            .filter_map(Sample::reuse_ratio)
            .map(percent)
            .collect();
        let _ = write!(
            out,
            "\n\nConnection reuse, client sidecar → server sidecar, over the latency phases \
             (warm-ups included; `1 − upstream_cx_tls_total / upstream_rq_total` of the client \
             sidecar's `/stats`): **{}** ({} new TLS connections for {} requests; per round: {}).",
            percent(reuse),
            total.counters.tls_connections,
            total.counters.requests,
            per_round.join(", ")
        );
    }
    if let Some(cpu) = total.cpu_us_per_request() {
        let _ = write!(
            out,
            " CPU of both sidecars over the same phases: {cpu:.0} µs per request \
             (utime + stime from /proc/PID/stat, 10 ms ticks)."
        );
    }
    if let [client, server] = pair.rss_parts_mib[..] {
        let _ = write!(
            out,
            " Peak RSS: client sidecar {client:.1} MiB + server sidecar {server:.1} MiB (the \
             table gives the sum)."
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::Round;
    use crate::report::tests::lat;

    const STATS: &str = "downstream_cx_total: 17\nupstream_rq_total: 13016\n\
                         upstream_cx_tls_total: 16\nupstream_cx_tls_failed: 0\n\
                         upstream_rq_total_x: 5\n";

    #[test]
    fn reads_counters() {
        let cases = [
            ("upstream_rq_total", Some(13_016)),
            ("upstream_cx_tls_total", Some(16)),
            ("upstream_cx_tls_failed", Some(0)),
            ("downstream_cx", None),
            ("upstream_rq_active", None),
        ];
        for (name, want) in cases {
            assert_eq!(stat(STATS, name), want, "{name}");
        }
        assert_eq!(stat("x: lots", "x"), None);
        assert_eq!(
            Counters::parse(STATS),
            Some(Counters {
                tls_connections: 16,
                requests: 13_016
            })
        );
        assert_eq!(Counters::parse("upstream_rq_total: 3\n"), None);
    }

    fn sample(tls_connections: u64, requests: u64, cpu_seconds: Option<f64>) -> Sample {
        Sample {
            counters: Counters {
                tls_connections,
                requests,
            },
            cpu_seconds,
        }
    }

    #[test]
    fn reuse_and_cpu_math() {
        let cases = [
            (sample(16, 13_000, Some(0.65)), Some(0.998_769), Some(50.0)),
            (sample(0, 13_000, None), Some(1.0), None),
            (sample(4, 4, Some(0.01)), Some(0.0), Some(2500.0)),
            (sample(0, 0, Some(0.5)), None, None),
        ];
        for (s, reuse, cpu) in cases {
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-6,
                (a, b) => a.is_none() && b.is_none(),
            };
            assert!(
                close(s.reuse_ratio(), reuse),
                "{s:?}: {:?}",
                s.reuse_ratio()
            );
            assert!(close(s.cpu_us_per_request(), cpu), "{s:?}");
        }
        let before = Counters {
            tls_connections: 16,
            requests: 100,
        };
        let after = Counters {
            tls_connections: 20,
            requests: 13_100,
        };
        assert_eq!(
            after.since(before),
            Counters {
                tls_connections: 4,
                requests: 13_000
            }
        );
        assert_eq!(before.since(after), Counters::default());
        let snapshot = |c: Counters, cpu| Sample {
            counters: c,
            cpu_seconds: cpu,
        };
        let cases = [
            (Some(1.5), Some(2.25), Some(0.75)),
            (Some(1.5), None, None),
            (None, Some(2.0), None),
        ];
        for (then, now, want) in cases {
            assert_eq!(
                snapshot(after, now).since(&snapshot(before, then)),
                snapshot(after.since(before), want)
            );
        }
        let total = Sample::total(&[sample(16, 13_000, Some(0.5)), sample(0, 13_000, Some(0.25))]);
        assert_eq!(total, sample(16, 26_000, Some(0.75)));
        let total = Sample::total(&[sample(1, 10, Some(0.5)), sample(1, 10, None)]);
        assert_eq!(total, sample(2, 20, None));
    }

    #[test]
    fn percentages_and_verdicts() {
        let cases = [
            (1.0, "100.00 %"),
            (0.999_99, "99.99 %"),
            (0.998_769, "99.87 %"),
            (0.0, "0.00 %"),
        ];
        for (ratio, want) in cases {
            assert_eq!(percent(ratio), want, "{ratio}");
        }
        let cases = [
            (150, 1000, "goal met"),
            (200, 1000, "goal met"),
            (201, 1000, "**goal not met**"),
            (
                -20,
                2000,
                "goal met at 2000 req/s, but the goal is stated at 1000 req/s: rerun with \
                 --rate 1000 to check it",
            ),
        ];
        for (p99, rate, want) in cases {
            assert_eq!(verdict(p99, rate), want, "{p99} {rate}");
        }
    }

    fn settings(rate: u32) -> Settings {
        Settings {
            rate,
            connections: 16,
            throughput_connections: 64,
            duration: 10,
            warmup: 3,
            pinning: "proxy on CPU 0".into(),
            rounds: 2,
            max_lag_us: 1000,
        }
    }

    fn pair_rows() -> Vec<Row> {
        let mut direct = Row::new(Target::Direct);
        direct.latency = Some(lat(60, 150, 400));
        let mut pair = Row::new(Target::MeshworkMtlsPair);
        pair.latency = Some(lat(160, 330, 900));
        pair.rss_parts_mib = vec![20.5, 36.3];
        pair.rounds = (1..=2)
            .map(|n| Round {
                mtls: Some(sample(if n == 1 { 16 } else { 0 }, 13_000, Some(0.65))),
                ..Round::new(n, 1)
            })
            .collect();
        vec![direct, pair]
    }

    #[test]
    fn summary_text() -> Result<(), String> {
        let text = summary(&pair_rows(), &settings(1000)).ok_or("no summary")?;
        for want in [
            "**meshwork mTLS pair + 5 policy filters** (load generator → client sidecar",
            "Goal (issue 6): at most +200 µs p99 at 1000 req/s.",
            "Measured at 1000 req/s: added p50 +100 µs, **p99 +180 µs**, p99.9 +500 µs: goal met.",
            "ztunnel pair adds +0.17 ms p90 / +0.20 ms p99",
            "**99.93 %** (16 new TLS connections for 26000 requests; per round: 99.87 %, 100.00 %).",
            "CPU of both sidecars over the same phases: 50 µs per request",
            "client sidecar 20.5 MiB + server sidecar 36.3 MiB",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let mut slow = pair_rows();
        slow[1].latency = Some(lat(160, 351, 900));
        let text = summary(&slow, &settings(2000)).ok_or("no summary")?;
        assert!(
            text.contains("**p99 +201 µs**, p99.9 +500 µs: **goal not met** at 2000 req/s"),
            "{text}"
        );
        assert!(
            !text.contains("with nginx"),
            "no nginx pair measured: {text}"
        );
        let mut with_nginx = pair_rows();
        let mut nginx = Row::new(Target::NginxMtlsPair);
        nginx.latency = Some(lat(140, 450, 1200));
        with_nginx.push(nginx);
        let text = summary(&with_nginx, &settings(1000)).ok_or("no summary")?;
        assert!(
            text.contains(
                "The same two hops with nginx (mutual TLS, no filters), in this run: added p50 +80 µs, p99 \
                 +300 µs, p99.9 +800 µs; the meshwork pair's added p50 is 1.25× and p99 0.60× of nginx's."
            ),
            "{text}"
        );
        let text = summary(&pair_rows()[1..], &settings(1000)).ok_or("no summary")?;
        assert!(text.contains("Added latency not measured"), "{text}");
        let mut failed = pair_rows();
        failed[1] = Row::failed(Target::MeshworkMtlsPair, "boom".into());
        assert_eq!(summary(&failed, &settings(1000)), None);
        assert_eq!(summary(&pair_rows()[..1], &settings(1000)), None);
        Ok(())
    }
}
