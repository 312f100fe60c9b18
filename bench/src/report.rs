//! Turning measurements into the markdown report: percentiles, added latency
//! (target minus direct), ratios to the baseline proxy, tables and notes.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::cli::Target;
use crate::loadgen::ErrorCounts;
use crate::mtls;
use crate::stats::Spread;

/// Latency percentiles of one open-loop run, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest recorded value.
    pub max: u64,
    /// Number of recorded (successful, measured) requests.
    pub count: u64,
}

impl Latency {
    /// Percentiles of `h`; `None` when nothing was recorded.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        Some(Self {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            count: h.len(),
        })
    }

    /// Latency added over `direct`, percentile by percentile: `[p50, p99, p99.9]`.
    /// Negative values are noise (the target was faster than direct at that percentile).
    pub fn added_over(&self, direct: &Latency) -> [i64; 3] {
        let diff = |a: u64, b: u64| {
            let (a, b) = (i128::from(a), i128::from(b));
            i64::try_from(a - b).unwrap_or(if a > b { i64::MAX } else { i64::MIN })
        };
        [
            diff(self.p50, direct.p50),
            diff(self.p99, direct.p99),
            diff(self.p999, direct.p999),
        ]
    }
}

/// `value / base`, when both make a meaningful ratio (base positive, value not negative).
pub fn ratio(value: f64, base: f64) -> Option<f64> {
    (base > 0.0 && value >= 0.0 && value.is_finite() && base.is_finite()).then(|| value / base)
}

/// One target's line in the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which target.
    pub target: Target,
    /// Why it was not measured at all.
    pub skipped: Option<String>,
    /// Whether `skipped` is a failure (it was meant to run but could not) rather than
    /// a missing optional target.
    pub failed: bool,
    /// Fixed-rate latency percentiles of all rounds pooled (histograms added).
    pub latency: Option<Latency>,
    /// How late the load generator's schedule thread released requests (its own
    /// noise), all rounds pooled.
    pub schedule_lag: Option<Latency>,
    /// What each round measured, in round order.
    pub rounds: Vec<Round>,
    /// Peak RSS of the proxy process over the whole run, MiB (for the mTLS pair, the
    /// sum of both sidecars').
    pub rss_mib: Option<f64>,
    /// With more than one process (the mTLS pair), each one's peak RSS, MiB.
    pub rss_parts_mib: Vec<f64>,
    /// Errors in both phases, warm-ups included.
    pub errors: ErrorCounts,
    /// Load-generator connections re-opened in both phases (keep-alive not held).
    pub reconnects: u64,
    /// Problems worth a footnote (a phase that failed, …).
    pub notes: Vec<String>,
}

impl Row {
    /// A row for a target that was not run.
    pub fn skipped(target: Target, reason: String) -> Self {
        Self {
            target,
            skipped: Some(reason),
            ..Self::new(target)
        }
    }

    /// A row for a target that was meant to run but failed before being measured.
    pub fn failed(target: Target, reason: String) -> Self {
        Self {
            failed: true,
            ..Self::skipped(target, reason)
        }
    }

    /// An empty row to fill in.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            skipped: None,
            failed: false,
            latency: None,
            schedule_lag: None,
            rounds: Vec::new(),
            rss_mib: None,
            rss_parts_mib: Vec::new(),
            errors: ErrorCounts::default(),
            reconnects: 0,
            notes: Vec::new(),
        }
    }

    /// Median and range over rounds of the closed-loop req/s.
    pub fn rps(&self) -> Option<Spread> {
        Spread::of(self.rounds.iter().filter_map(|r| r.rps))
    }

    /// Median and range over rounds of the per-round p99 (µs).
    pub fn p99_per_round(&self) -> Option<Spread> {
        Spread::of_u64(self.rounds.iter().filter_map(|r| r.latency.map(|l| l.p99)))
    }

    /// The rounds whose schedule-lag p99 exceeded `max_lag_us`: `(round, lag p99)`.
    pub fn noisy_rounds(&self, max_lag_us: u64) -> Vec<(usize, u64)> {
        self.rounds
            .iter()
            .filter_map(|r| Some((r.number, r.schedule_lag?.p99)))
            .filter(|&(_, lag)| lag > max_lag_us)
            .collect()
    }
}

/// One round of one target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    /// Round number, from 1.
    pub number: usize,
    /// Where the target ran in that round's order, from 1.
    pub position: usize,
    /// Latency percentiles of this round alone.
    pub latency: Option<Latency>,
    /// Schedule lag of this round's latency phase.
    pub schedule_lag: Option<Latency>,
    /// Closed-loop requests/s of this round.
    pub rps: Option<f64>,
    /// The mTLS pair's client-sidecar counters and CPU time over the latency phase.
    pub mtls: Option<mtls::Sample>,
}

impl Round {
    /// A round with nothing measured yet.
    pub fn new(number: usize, position: usize) -> Self {
        Self {
            number,
            position,
            latency: None,
            schedule_lag: None,
            rps: None,
            mtls: None,
        }
    }
}

/// Run settings shown with the table.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Open-loop rate, req/s.
    pub rate: u32,
    /// Open-loop connections.
    pub connections: u32,
    /// Closed-loop connections.
    pub throughput_connections: u32,
    /// Measured seconds per phase.
    pub duration: u64,
    /// Warm-up seconds per phase.
    pub warmup: u64,
    /// How processes were pinned, in words.
    pub pinning: String,
    /// Rounds of both phases per target.
    pub rounds: usize,
    /// Schedule-lag p99 (µs) above which a round is flagged as noisy.
    pub max_lag_us: u64,
}

/// The target ratios are computed against: nginx, else meshwork, else meshwork with
/// the policy filters, else HAProxy (the first of those that was measured).
pub fn baseline(rows: &[Row]) -> Option<&Row> {
    [
        Target::Nginx,
        Target::Meshwork,
        Target::MeshworkPolicies,
        Target::Haproxy,
    ]
    .into_iter()
    .find_map(|t| rows.iter().find(|r| r.target == t && r.skipped.is_none()))
}

fn cell_with_ratio(value: Option<f64>, base: Option<f64>, decimals: usize) -> String {
    let Some(v) = value else {
        return "n/a".to_owned();
    };
    match base.and_then(|b| ratio(v, b)) {
        Some(r) => format!("{v:.decimals$} ({r:.2}×)"),
        None => format!("{v:.decimals$}"),
    }
}

fn added_latency(row: &Row, direct: Option<&Latency>) -> Option<[i64; 3]> {
    Some(row.latency?.added_over(direct?))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "latencies in µs are far below 2^52"
)]
fn as_f64(v: i64) -> f64 {
    v as f64
}

/// Escapes text for a markdown table cell and keeps only its first line.
fn cell_text(s: &str) -> String {
    s.lines().next().unwrap_or_default().replace('|', "\\|")
}

/// The main results table, one line per target, ratios to the baseline. Latency is
/// pooled over all rounds; req/s is the median over rounds (`rounds` is the number of
/// rounds that were asked for, for the header).
pub fn results_table(rows: &[Row], rounds: usize) -> String {
    let direct = rows
        .iter()
        .find(|r| r.target == Target::Direct)
        .and_then(|r| r.latency);
    let base = baseline(rows);
    let suffix = base.map_or_else(String::new, |b| format!(" (× {})", b.target.label()));
    let base_added = base.and_then(|b| added_latency(b, direct.as_ref()));

    let median = if rounds > 1 {
        format!(", median of {rounds} rounds")
    } else {
        String::new()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | added p50 µs{suffix} | added p99 µs{suffix} | added p99.9 µs{suffix} | max req/s, proxy on 1 CPU{median}{suffix} | peak RSS MiB{suffix} | errors |"
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        if let Some(reason) = &row.skipped {
            let what = if row.failed { "**FAILED**" } else { "skipped" };
            let _ = writeln!(
                out,
                "| {} | {what}: {} | | | | | |",
                row.target.label(),
                cell_text(reason)
            );
            continue;
        }
        let added: [String; 3] = if row.target == Target::Direct {
            std::array::from_fn(|_| "— (reference)".to_owned())
        } else {
            let added = added_latency(row, direct.as_ref());
            std::array::from_fn(|i| {
                cell_with_ratio(
                    added.map(|a| as_f64(a[i])),
                    base_added.map(|a| as_f64(a[i])),
                    0,
                )
            })
        };
        let median_rps = |r: &Row| r.rps().map(|s| s.median);
        let rps = cell_with_ratio(median_rps(row), base.and_then(median_rps), 0);
        let rss = if row.target == Target::Direct {
            "—".to_owned()
        } else {
            cell_with_ratio(row.rss_mib, base.and_then(|b| b.rss_mib), 1)
        };
        let total = row.errors.total();
        let errors = if total == 0 {
            "0".to_owned()
        } else {
            format!("**⚠ {total} ERRORS**")
        };
        let [p50, p99, p999] = added;
        let _ = writeln!(
            out,
            "| {} | {p50} | {p99} | {p999} | {rps} | {rss} | {errors} |",
            row.target.label()
        );
    }
    out
}

/// The raw (not subtracted) pooled latency percentiles with, per target, the spread
/// over rounds of p99 and req/s, the pooled schedule lag of the load generator, and
/// the rounds whose schedule lag p99 exceeded `max_lag_us`.
pub fn raw_latency_table(rows: &[Row], max_lag_us: u64) -> String {
    let mut out = String::from(
        "| target | p50 µs | p99 µs | p99.9 µs | max µs | measured requests | p99 per round µs: median (min–max) | schedule lag p99 / max µs | req/s per round: median (min–max) | noisy rounds |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows.iter().filter(|r| r.skipped.is_none()) {
        let lag = row
            .schedule_lag
            .map_or_else(|| "n/a".to_owned(), |l| format!("{} / {}", l.p99, l.max));
        let pooled = row.latency.map_or_else(
            || "n/a | n/a | n/a | n/a | 0".to_owned(),
            |l| {
                format!(
                    "{} | {} | {} | {} | {}",
                    l.p50, l.p99, l.p999, l.max, l.count
                )
            },
        );
        let spread = |s: Option<Spread>| s.map_or_else(|| "n/a".to_owned(), |s| s.display(0));
        let noisy = row.noisy_rounds(max_lag_us);
        let noisy = if noisy.is_empty() {
            format!("0 of {}", row.rounds.len())
        } else {
            let which: Vec<String> = noisy.iter().map(|(n, _)| n.to_string()).collect();
            format!(
                "⚠ {} of {} (round {})",
                noisy.len(),
                row.rounds.len(),
                which.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "| {} | {pooled} | {} | {lag} | {} | {noisy} |",
            row.target.label(),
            spread(row.p99_per_round()),
            spread(row.rps()),
        );
    }
    out
}

/// One column per round: each target's p99, schedule lag p99 and req/s in that round
/// (⚠ marks a noisy round), and a last line with the order the targets ran in.
pub fn rounds_table(rows: &[Row], rounds: usize, max_lag_us: u64) -> String {
    let mut out = String::from("| target |");
    for n in 1..=rounds {
        let _ = write!(out, " round {n} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(rounds));
    out.push('\n');
    let measured: Vec<&Row> = rows.iter().filter(|r| r.skipped.is_none()).collect();
    for row in &measured {
        let _ = write!(out, "| {} |", row.target.label());
        for n in 1..=rounds {
            let cell = row.rounds.iter().find(|r| r.number == n).map_or_else(
                || "—".to_owned(),
                |r| {
                    let p99 = r
                        .latency
                        .map_or_else(|| "n/a".to_owned(), |l| l.p99.to_string());
                    let lag = r
                        .schedule_lag
                        .map_or_else(|| "n/a".to_owned(), |l| l.p99.to_string());
                    let rps = r
                        .rps
                        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
                    let flag = if r.schedule_lag.is_some_and(|l| l.p99 > max_lag_us) {
                        " ⚠"
                    } else {
                        ""
                    };
                    format!("{p99} / {lag} / {rps}{flag}")
                },
            );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push_str("| *order* |");
    for n in 1..=rounds {
        let mut ran: Vec<(usize, Target)> = measured
            .iter()
            .filter_map(|row| {
                let r = row.rounds.iter().find(|r| r.number == n)?;
                Some((r.position, row.target))
            })
            .collect();
        ran.sort_by_key(|&(position, _)| position);
        let order: Vec<&str> = ran.iter().map(|(_, t)| t.label()).collect();
        let _ = write!(out, " {} |", order.join(" → "));
    }
    out.push('\n');
    out
}

/// Footnotes: errors by kind, noisy rounds, skipped targets with full reasons, failed
/// phases.
pub fn notes(rows: &[Row], max_lag_us: u64) -> Vec<String> {
    let mut notes = Vec::new();
    let has_direct = rows
        .iter()
        .any(|r| r.target == Target::Direct && r.latency.is_some());
    if !has_direct && rows.iter().any(|r| r.latency.is_some()) {
        notes.push(
            "added latency needs a measured `direct` target (add it to --targets); \
             see the raw latency table."
                .to_owned(),
        );
    }
    for row in rows {
        let e = &row.errors;
        if e.total() > 0 {
            notes.push(format!(
                "**WARNING: {} had {} errors** (connect {}, request/response {}, non-200 {}, wrong body size {}, unfinished {}); its numbers are not trustworthy.",
                row.target.label(),
                e.total(),
                e.connect,
                e.request,
                e.status,
                e.body,
                e.unfinished
            ));
        }
        let noisy = row.noisy_rounds(max_lag_us);
        if !noisy.is_empty() {
            let which: Vec<String> = noisy
                .iter()
                .map(|(n, lag)| format!("round {n}: {lag} µs"))
                .collect();
            notes.push(format!(
                "{}: noisy rounds: {} of {} had a load-generator schedule lag p99 above \
                 {max_lag_us} µs ({}). They are still pooled; compare their p99 with the \
                 other rounds' in the per-round table before trusting the tail.",
                row.target.label(),
                noisy.len(),
                row.rounds.len(),
                which.join(", ")
            ));
        }
        if row.reconnects > 0 {
            notes.push(format!(
                "{}: the load generator had to re-open {} connections (keep-alive connections \
                 closed by the target or after errors); each adds a TCP handshake to a latency.",
                row.target.label(),
                row.reconnects
            ));
        }
        if let Some(reason) = &row.skipped {
            let what = if row.failed { "**FAILED**" } else { "skipped" };
            notes.push(format!(
                "{} {what}: {}",
                row.target.label(),
                reason.trim_end()
            ));
        }
        for note in &row.notes {
            notes.push(format!("{}: {}", row.target.label(), note.trim_end()));
        }
    }
    notes
}

/// What the policy filters cost: the `meshwork-policies` row against the bare
/// `meshwork` row of the same run (pooled raw percentiles, median req/s), when both
/// were measured.
pub fn chain_cost(rows: &[Row]) -> Option<String> {
    let measured = |t: Target| rows.iter().find(|r| r.target == t && r.skipped.is_none());
    let bare = measured(Target::Meshwork)?;
    let chained = measured(Target::MeshworkPolicies)?;
    let [p50, p99, p999] = chained.latency?.added_over(&bare.latency?);
    let rps = match (chained.rps(), bare.rps()) {
        (Some(c), Some(b)) => ratio(c.median, b.median)
            .map_or_else(String::new, |r| format!("; max req/s {r:.2}× meshwork's")),
        _ => String::new(),
    };
    Some(format!(
        "The five policy filters' cost ({} − {}, pooled raw percentiles): p50 {p50:+} µs, \
         p99 {p99:+} µs, p99.9 {p999:+} µs{rps}.",
        chained.target.label(),
        bare.target.label()
    ))
}

/// The whole report: environment, settings, both tables and notes.
pub fn render(env: &[(String, String)], settings: &Settings, rows: &[Row]) -> String {
    let mut out = heading("meshwork benchmark", env);
    let rounds_text = if settings.rounds > 1 {
        format!(
            "Both phases ran {n} rounds per target. All targets stayed up for the whole run; \
             within a round they ran one after another, in an order rotated by one target per \
             round (last line of the per-round table). Latency percentiles are those of all \
             rounds' samples pooled (HdrHistograms added): added latency = pooled target \
             percentile − pooled direct percentile. Max req/s is the median over rounds. ",
            n = settings.rounds
        )
    } else {
        "One round per target: on a shared machine the tail (p99, p99.9) of a single run \
         can vary several-fold from run to run; for a comparison use --rounds 5 or more. "
            .to_owned()
    };
    let _ = write!(
        out,
        "\n## Results\n\n\
         Added latency = target percentile − direct percentile, at {rate} req/s over {conns} \
         keep-alive connections (open loop, latency from the intended send time, so \
         coordinated omission is corrected), {dur} s measured after {warm} s warm-up. \
         Max req/s: closed loop, {tconns} connections, {dur} s after {warm} s warm-up. \
         {rounds_text}Pinning: {pin}. {ratios}\n\n",
        rate = settings.rate,
        conns = settings.connections,
        dur = settings.duration,
        warm = settings.warmup,
        tconns = settings.throughput_connections,
        pin = settings.pinning,
        ratios = baseline(rows).map_or_else(
            || "No proxy was measured, so there are no ratios.".to_owned(),
            |b| format!(
                "Ratios are target ÷ {} (latency and RSS: lower is better; req/s: higher is \
                 better).",
                b.target.label()
            )
        ),
    );
    out.push_str(&results_table(rows, settings.rounds));
    if let Some(cost) = chain_cost(rows) {
        let _ = writeln!(out, "\n{cost}");
    }
    if let Some(pair) = mtls::summary(rows, settings) {
        let _ = writeln!(out, "\n{pair}");
    }
    if rows.iter().any(|r| r.skipped.is_none()) {
        let what = if settings.rounds > 1 {
            "Raw latency, pooled over rounds (not subtracted), its spread over rounds, and the \
             load generator's schedule lag, pooled over rounds"
        } else {
            "Raw latency (not subtracted) and the load generator's schedule lag"
        };
        let _ = write!(
            out,
            "\n{what}, which every latency includes. A round is noisy when its schedule lag \
             p99 exceeds {max} µs.\n\n",
            max = settings.max_lag_us
        );
        out.push_str(&raw_latency_table(rows, settings.max_lag_us));
        if settings.rounds > 1 {
            out.push_str(
                "\nPer round: p99 µs / schedule lag p99 µs / max req/s (⚠ = noisy round):\n\n",
            );
            out.push_str(&rounds_table(rows, settings.rounds, settings.max_lag_us));
        }
    }
    out.push_str(&notes_section(&notes(rows, settings.max_lag_us)));
    out
}

/// A report's title and its environment section, one `- key: value` line each.
pub fn heading(title: &str, env: &[(String, String)]) -> String {
    let mut out = format!("# {title}\n\n## Environment\n\n");
    for (key, value) in env {
        let _ = writeln!(out, "- {key}: {value}");
    }
    out
}

/// `Notes:` and one bullet per note; empty without notes.
pub fn notes_section(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nNotes:\n\n");
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pooled latency with `max` just above p99.9 and 100 samples.
    pub(crate) fn lat(p50: u64, p99: u64, p999: u64) -> Latency {
        Latency {
            p50,
            p99,
            p999,
            max: p999 + 1,
            count: 100,
        }
    }

    #[test]
    fn percentiles_from_histogram() -> anyhow::Result<()> {
        type Case = (&'static [(u64, u64)], Option<(u64, u64, u64, u64, u64)>);
        let cases: &[Case] = &[
            (&[], None),
            (&[(100, 1)], Some((100, 100, 100, 100, 1))),
            (
                &[(50, 990), (900, 9), (5000, 1)],
                // 3 significant digits: above 4096 µs values share buckets of 4.
                Some((50, 50, 900, 5003, 1000)),
            ),
            (&[(10, 500), (20, 500)], Some((10, 20, 20, 20, 1000))),
        ];
        for (samples, want) in cases {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for &(v, n) in *samples {
                h.record_n(v, n)?;
            }
            let got = Latency::from_histogram(&h).map(|l| (l.p50, l.p99, l.p999, l.max, l.count));
            assert_eq!(got, *want, "{samples:?}");
        }
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for v in 1..=1000 {
            h.record(v)?;
        }
        let l = Latency::from_histogram(&h).ok_or_else(|| anyhow::anyhow!("empty"))?;
        assert_eq!((l.p50, l.p99, l.p999, l.max), (500, 990, 999, 1000));
        Ok(())
    }

    #[test]
    fn added_latency_is_signed_difference() {
        let cases = [
            (lat(150, 400, 900), lat(100, 300, 500), [50, 100, 400]),
            (lat(100, 300, 500), lat(100, 300, 500), [0, 0, 0]),
            (lat(90, 300, 500), lat(100, 310, 400), [-10, -10, 100]),
        ];
        for (target, direct, want) in cases {
            assert_eq!(target.added_over(&direct), want);
        }
    }

    #[test]
    fn ratios() {
        let cases = [
            (50.0, 100.0, Some(0.5)),
            (200.0, 100.0, Some(2.0)),
            (0.0, 100.0, Some(0.0)),
            (10.0, 0.0, None),
            (10.0, -5.0, None),
            (-10.0, 5.0, None),
            (f64::NAN, 5.0, None),
        ];
        for (v, b, want) in cases {
            assert_eq!(ratio(v, b), want, "{v} / {b}");
        }
    }

    /// A round with only req/s measured.
    fn rps_round(number: usize, rps: f64) -> Round {
        Round {
            rps: Some(rps),
            ..Round::new(number, 1)
        }
    }

    /// A full round: p99 and schedule-lag p99 in µs, req/s.
    fn round(number: usize, position: usize, p99: u64, lag_p99: u64, rps: f64) -> Round {
        Round {
            latency: Some(lat(p99 / 2, p99, p99 * 2)),
            schedule_lag: Some(lat(1, lag_p99, lag_p99 + 10)),
            rps: Some(rps),
            ..Round::new(number, position)
        }
    }

    fn sample_rows() -> Vec<Row> {
        let mut direct = Row::new(Target::Direct);
        direct.latency = Some(lat(100, 200, 400));
        direct.rounds = vec![rps_round(1, 50_000.0)];
        let mut meshwork = Row::new(Target::Meshwork);
        meshwork.latency = Some(lat(130, 300, 600));
        meshwork.rounds = vec![rps_round(1, 30_000.0)];
        meshwork.rss_mib = Some(6.0);
        let mut nginx = Row::new(Target::Nginx);
        nginx.latency = Some(lat(160, 400, 800));
        nginx.rounds = vec![rps_round(1, 20_000.0)];
        nginx.rss_mib = Some(4.0);
        nginx.schedule_lag = Some(Latency {
            p50: 1,
            p99: 3,
            p999: 20,
            max: 40,
            count: 100,
        });
        let mut haproxy = Row::new(Target::Haproxy);
        haproxy.latency = Some(lat(95, 250, 500));
        haproxy.rounds = vec![rps_round(1, 25_000.0)];
        haproxy.rss_mib = Some(12.0);
        haproxy.errors.status = 3;
        vec![direct, meshwork, nginx, haproxy]
    }

    /// The settings of the render tests, with `rounds` rounds.
    fn settings(rounds: usize) -> Settings {
        Settings {
            rate: 2000,
            connections: 16,
            throughput_connections: 64,
            duration: 10,
            warmup: 2,
            pinning: "proxy on CPU 0".into(),
            rounds,
            max_lag_us: 1000,
        }
    }

    /// The sample rows with meshwork + policy filters after bare meshwork.
    fn rows_with_policies() -> Vec<Row> {
        let mut rows = sample_rows();
        let mut policies = Row::new(Target::MeshworkPolicies);
        policies.latency = Some(lat(145, 420, 700));
        policies.rounds = vec![rps_round(1, 24_000.0)];
        policies.rss_mib = Some(9.0);
        rows.insert(2, policies);
        rows
    }

    /// Three rounds of direct and nginx, rotated; nginx's round 3 is noisy.
    fn three_round_rows() -> Vec<Row> {
        let mut direct = Row::new(Target::Direct);
        direct.latency = Some(lat(60, 150, 900));
        direct.schedule_lag = Some(lat(2, 40, 300));
        direct.rounds = vec![
            round(1, 1, 140, 30, 40_000.0),
            round(2, 2, 150, 45, 44_000.0),
            round(3, 1, 900, 400, 38_000.0),
        ];
        let mut nginx = Row::new(Target::Nginx);
        nginx.latency = Some(lat(80, 300, 2500));
        nginx.schedule_lag = Some(lat(2, 60, 1500));
        nginx.rss_mib = Some(4.0);
        nginx.rounds = vec![
            round(1, 2, 200, 35, 21_000.0),
            round(2, 1, 250, 50, 20_000.0),
            round(3, 2, 2400, 1300, 15_000.0),
        ];
        vec![direct, nginx]
    }

    #[test]
    fn results_table_format() {
        let got = results_table(&sample_rows(), 1);
        let want = "\
| target | added p50 µs (× nginx) | added p99 µs (× nginx) | added p99.9 µs (× nginx) | max req/s, proxy on 1 CPU (× nginx) | peak RSS MiB (× nginx) | errors |
|---|---:|---:|---:|---:|---:|---|
| direct | — (reference) | — (reference) | — (reference) | 50000 (2.50×) | — | 0 |
| meshwork | 30 (0.50×) | 100 (0.50×) | 200 (0.50×) | 30000 (1.50×) | 6.0 (1.50×) | 0 |
| nginx | 60 (1.00×) | 200 (1.00×) | 400 (1.00×) | 20000 (1.00×) | 4.0 (1.00×) | 0 |
| haproxy | -5 | 50 (0.25×) | 100 (0.25×) | 25000 (1.25×) | 12.0 (3.00×) | **⚠ 3 ERRORS** |
";
        assert_eq!(got, want);
    }

    #[test]
    fn results_table_labels_the_policy_chain() {
        // The sample table with one more line, above nginx's; the ratios are still to nginx.
        let want = results_table(&sample_rows(), 1).replacen(
            "| nginx |",
            "| meshwork + 5 policy filters | 45 (0.75×) | 220 (1.10×) | 300 (0.75×) | 24000 (1.20×) | 9.0 (2.25×) | 0 |\n| nginx |",
            1,
        );
        assert_eq!(results_table(&rows_with_policies(), 1), want);
        let raw = raw_latency_table(&rows_with_policies(), 1000);
        assert!(
            raw.contains("| meshwork + 5 policy filters | 145 | 420 | 700 | 701 | 100 | n/a | n/a | 24000 | 0 of 1 |"),
            "{raw}"
        );
    }

    #[test]
    fn chain_cost_compares_with_bare_meshwork() {
        let full = rows_with_policies();
        let mut no_rps = rows_with_policies();
        no_rps[1].rounds.clear();
        let mut faster = rows_with_policies();
        faster[2].latency = Some(lat(120, 290, 600));
        faster[2].rounds = vec![rps_round(1, 33_000.0)];
        let mut unmeasured = rows_with_policies();
        unmeasured[2].latency = None;
        let mut skipped = rows_with_policies();
        skipped[1] = Row::failed(Target::Meshwork, "exited early".into());
        let cases: &[(&[Row], Option<&str>)] = &[
            (
                &full,
                Some(
                    "The five policy filters' cost (meshwork + 5 policy filters − meshwork, \
                     pooled raw percentiles): p50 +15 µs, p99 +120 µs, p99.9 +100 µs; max req/s \
                     0.80× meshwork's.",
                ),
            ),
            (
                &no_rps,
                Some(
                    "The five policy filters' cost (meshwork + 5 policy filters − meshwork, \
                     pooled raw percentiles): p50 +15 µs, p99 +120 µs, p99.9 +100 µs.",
                ),
            ),
            (
                &faster,
                Some(
                    "The five policy filters' cost (meshwork + 5 policy filters − meshwork, \
                     pooled raw percentiles): p50 -10 µs, p99 -10 µs, p99.9 +0 µs; max req/s \
                     1.10× meshwork's.",
                ),
            ),
            (&unmeasured, None),
            (&skipped, None),
            (&sample_rows(), None),
        ];
        for (rows, want) in cases {
            assert_eq!(chain_cost(rows).as_deref(), *want);
        }
    }

    #[test]
    fn results_table_uses_pooled_latency_and_median_rps() {
        let got = results_table(&three_round_rows(), 3);
        let want = "\
| target | added p50 µs (× nginx) | added p99 µs (× nginx) | added p99.9 µs (× nginx) | max req/s, proxy on 1 CPU, median of 3 rounds (× nginx) | peak RSS MiB (× nginx) | errors |
|---|---:|---:|---:|---:|---:|---|
| direct | — (reference) | — (reference) | — (reference) | 40000 (2.00×) | — | 0 |
| nginx | 20 (1.00×) | 150 (1.00×) | 1600 (1.00×) | 20000 (1.00×) | 4.0 (1.00×) | 0 |
";
        assert_eq!(got, want);
    }

    #[test]
    fn noisy_rounds_by_threshold() {
        let rows = three_round_rows();
        let cases: &[(usize, u64, &[(usize, u64)])] = &[
            (0, 1000, &[]),
            (0, 100, &[(3, 400)]),
            (1, 1000, &[(3, 1300)]),
            (1, 1300, &[]),
            (1, 40, &[(2, 50), (3, 1300)]),
        ];
        for &(row, max_lag_us, want) in cases {
            assert_eq!(
                rows[row].noisy_rounds(max_lag_us),
                want,
                "{} at {max_lag_us} µs",
                rows[row].target
            );
        }
        // A round without a latency phase result is never flagged.
        let mut row = Row::new(Target::Nginx);
        row.rounds = vec![rps_round(1, 1.0)];
        assert!(row.noisy_rounds(0).is_empty());
    }

    #[test]
    fn raw_table_with_rounds() {
        let got = raw_latency_table(&three_round_rows(), 1000);
        let want = "\
| target | p50 µs | p99 µs | p99.9 µs | max µs | measured requests | p99 per round µs: median (min–max) | schedule lag p99 / max µs | req/s per round: median (min–max) | noisy rounds |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
| direct | 60 | 150 | 900 | 901 | 100 | 150 (140–900) | 40 / 301 | 40000 (38000–44000) | 0 of 3 |
| nginx | 80 | 300 | 2500 | 2501 | 100 | 250 (200–2400) | 60 / 1501 | 20000 (15000–21000) | ⚠ 1 of 3 (round 3) |
";
        assert_eq!(got, want);
    }

    #[test]
    fn rounds_table_format() {
        let mut rows = three_round_rows();
        // A target that stopped after round 1 and one that never ran.
        rows[1].rounds.truncate(1);
        rows.push(Row::skipped(Target::Haproxy, "missing".into()));
        let got = rounds_table(&rows, 3, 1000);
        let want = "\
| target | round 1 | round 2 | round 3 |
|---|---:|---:|---:|
| direct | 140 / 30 / 40000 | 150 / 45 / 44000 | 900 / 400 / 38000 |
| nginx | 200 / 35 / 21000 | — | — |
| *order* | direct → nginx | direct | direct |
";
        assert_eq!(got, want);
        let got = rounds_table(&three_round_rows(), 3, 300);
        assert!(
            got.contains("| nginx | 200 / 35 / 21000 | 250 / 50 / 20000 | 2400 / 1300 / 15000 ⚠ |"),
            "{got}"
        );
        assert!(got.contains("| 900 / 400 / 38000 ⚠ |"), "{got}");
        assert!(
            got.contains("| *order* | direct → nginx | nginx → direct | direct → nginx |"),
            "{got}"
        );
        let mut rows = three_round_rows();
        let mut policies = Row::new(Target::MeshworkPolicies);
        policies.rounds = vec![round(1, 3, 500, 20, 9_000.0), round(2, 3, 520, 25, 9_500.0)];
        rows.push(policies);
        let got = rounds_table(&rows, 2, 1000);
        for want in [
            "| meshwork + 5 policy filters | 500 / 20 / 9000 | 520 / 25 / 9500 |",
            "| *order* | direct → nginx → meshwork + 5 policy filters | nginx → direct → meshwork + 5 policy filters |",
        ] {
            assert!(got.contains(want), "missing {want:?} in\n{got}");
        }
    }

    #[test]
    fn render_with_policies() {
        let settings = settings(1);
        let mut rows = rows_with_policies();
        rows[2].notes.push("latency phase failed: boom".into());
        let report = render(&[], &settings, &rows);
        for want in [
            "| meshwork + 5 policy filters | 45 (0.75×) | 220 (1.10×) |",
            "| 24000 (1.20×) | 9.0 (2.25×) | 0 |\n| nginx |",
            "\nThe five policy filters' cost (meshwork + 5 policy filters − meshwork, pooled raw \
             percentiles): p50 +15 µs",
            "- meshwork + 5 policy filters: latency phase failed: boom",
            "Ratios are target ÷ nginx",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
    }

    #[test]
    fn render_with_the_mtls_pair() {
        let mut rows = sample_rows();
        let mut pair = Row::new(Target::MeshworkMtlsPair);
        pair.latency = Some(lat(250, 350, 900));
        pair.rounds = vec![Round {
            mtls: Some(mtls::Sample {
                counters: mtls::Counters {
                    tls_connections: 16,
                    requests: 13_000,
                },
                cpu_seconds: Some(1.3),
            }),
            ..rps_round(1, 12_000.0)
        }];
        pair.rss_mib = Some(40.0);
        pair.rss_parts_mib = vec![18.0, 22.0];
        rows.insert(2, pair);
        let report = render(&[], &settings(1), &rows);
        for want in [
            "| meshwork mTLS pair + 5 policy filters | 150 (2.50×) | 150 (0.75×) | 500 (1.25×) | 12000 (0.60×) | 40.0 (10.00×) | 0 |",
            "\n**meshwork mTLS pair + 5 policy filters** (load generator → client sidecar",
            "**p99 +150 µs**",
            "goal met at 2000 req/s, but the goal is stated at 1000 req/s",
            "**99.87 %** (16 new TLS connections for 13000 requests; per round: 99.87 %)",
            "100 µs per request",
            "client sidecar 18.0 MiB + server sidecar 22.0 MiB",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
        assert!(!render(&[], &settings(1), &sample_rows()).contains("mTLS pair"));
    }

    #[test]
    fn baseline_falls_back() {
        let (d, m, p, n, h) = (
            Target::Direct,
            Target::Meshwork,
            Target::MeshworkPolicies,
            Target::Nginx,
            Target::Haproxy,
        );
        // (targets, the skipped ones, the baseline)
        let cases: &[(&[Target], &[Target], Option<Target>)] = &[
            (&[d, m, n], &[], Some(n)),
            (&[d, m, n], &[n], Some(m)),
            (&[d, h], &[], Some(h)),
            (&[d, p, m, n], &[n], Some(m)),
            (&[d, p, m, h], &[m], Some(p)),
            (&[d, h, p], &[], Some(p)),
            (&[d, h, p], &[p], Some(h)),
            (&[d], &[], None),
        ];
        for (targets, skipped, want) in cases {
            let rows: Vec<Row> = targets
                .iter()
                .map(|&t| {
                    if skipped.contains(&t) {
                        Row::skipped(t, "missing".into())
                    } else {
                        Row::new(t)
                    }
                })
                .collect();
            assert_eq!(baseline(&rows).map(|r| r.target), *want, "{targets:?}");
        }
    }

    #[test]
    fn skipped_and_missing_cells() {
        let mut direct = Row::new(Target::Direct);
        direct.latency = Some(lat(100, 200, 400));
        let mut meshwork = Row::new(Target::Meshwork);
        meshwork.notes.push("throughput phase failed: boom".into());
        meshwork.reconnects = 2;
        let rows = vec![
            direct,
            meshwork,
            Row::skipped(Target::Nginx, "`nginx` not found | line1\nline2".into()),
            Row::failed(Target::Haproxy, "exited early".into()),
        ];
        let table = results_table(&rows, 1);
        // No proxy latency measured: nothing to say about the missing direct row.
        assert!(
            !super::notes(&rows[1..], 1000)
                .iter()
                .any(|n| n.starts_with("added latency needs"))
        );
        let mut only_proxy = rows[1..].to_vec();
        only_proxy[0].latency = Some(lat(1, 2, 3));
        assert!(super::notes(&only_proxy, 1000)[0].starts_with("added latency needs"));
        assert!(table.contains("| nginx | skipped: `nginx` not found \\| line1 | | | | | |"));
        assert!(table.contains("| haproxy | **FAILED**: exited early | | | | | |"));
        assert!(
            table.contains("| meshwork | n/a | n/a | n/a | n/a | n/a | 0 |"),
            "{table}"
        );
        let notes = notes(&rows, 1000);
        assert_eq!(
            notes,
            [
                "meshwork: the load generator had to re-open 2 connections (keep-alive \
                 connections closed by the target or after errors); each adds a TCP handshake \
                 to a latency.",
                "meshwork: throughput phase failed: boom",
                "nginx skipped: `nginx` not found | line1\nline2",
                "haproxy **FAILED**: exited early",
            ]
        );
    }

    #[test]
    fn render_includes_everything() {
        let env = vec![("CPUs".to_owned(), "2".to_owned())];
        let settings = settings(1);
        let report = render(&env, &settings, &sample_rows());
        for want in [
            "- CPUs: 2",
            "at 2000 req/s over 16",
            "closed loop, 64 connections",
            "One round per target",
            "--rounds 5",
            "| haproxy | 95 | 250 | 500 | 501 | 100 | n/a | n/a | 25000 | 0 of 1 |",
            "| nginx | 160 | 400 | 800 | 801 | 100 | n/a | 3 / 40 | 20000 | 0 of 1 |",
            "**WARNING: haproxy had 3 errors**",
            "Ratios are target ÷ nginx",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
        for unwanted in ["Per round", "pooled over rounds", "noisy rounds:"] {
            assert!(!report.contains(unwanted), "{unwanted:?} in\n{report}");
        }
    }

    #[test]
    fn render_with_rounds() {
        let settings = settings(3);
        let report = render(&[], &settings, &three_round_rows());
        for want in [
            "Both phases ran 3 rounds per target",
            "pooled target percentile − pooled direct percentile",
            "Raw latency, pooled over rounds",
            "exceeds 1000 µs",
            "median of 3 rounds (× nginx)",
            "Per round: p99 µs / schedule lag p99 µs / max req/s",
            "| *order* | direct → nginx | nginx → direct | direct → nginx |",
            "- nginx: noisy rounds: 1 of 3 had a load-generator schedule lag p99 above 1000 µs \
             (round 3: 1300 µs).",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
        assert!(!report.contains("- direct: noisy"), "{report}");
    }
}
