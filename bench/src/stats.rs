//! Repeated rounds: the order targets run in within a round, pooling per-round
//! histograms, and medians / spreads of per-round numbers.

use anyhow::Context as _;
use hdrhistogram::Histogram;

use crate::report::Latency;

/// The order (indices into the list of `n` started targets) in which round `round`
/// (0-based) runs them: a rotation that starts at index `round mod n`, so that no
/// target always runs first, and the one that runs right after `direct` changes.
pub fn rotation(round: usize, n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let first = round % n;
    (0..n).map(|i| (first + i) % n).collect()
}

/// Histograms of several rounds added together (HdrHistogram `add`), so that the
/// percentiles are those of all samples, not an average of per-round percentiles.
#[derive(Debug, Default)]
pub struct Pooled(Option<Histogram<u64>>);

impl Pooled {
    /// Adds all samples of `h`.
    pub fn add(&mut self, h: &Histogram<u64>) -> anyhow::Result<()> {
        match &mut self.0 {
            Some(pooled) => pooled.add(h).context("pooling histograms"),
            None => {
                self.0 = Some(h.clone());
                Ok(())
            }
        }
    }

    /// Percentiles of everything added so far; `None` when nothing was recorded.
    pub fn latency(&self) -> Option<Latency> {
        self.0.as_ref().and_then(Latency::from_histogram)
    }
}

/// Median and range of per-round values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// Median, min and max of `values`, ignoring NaN; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let (&min, &max) = (v.first()?, v.last()?);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            f64::midpoint(v[mid - 1], v[mid])
        };
        Some(Self {
            median,
            min,
            max,
            n: v.len(),
        })
    }

    /// Same, for integer values (µs).
    pub fn of_u64(values: impl IntoIterator<Item = u64>) -> Option<Self> {
        #[expect(
            clippy::cast_precision_loss,
            reason = "latencies in µs are far below 2^52"
        )]
        Self::of(values.into_iter().map(|v| v as f64))
    }

    /// `median (min–max)` with `decimals` digits, or just the value for a single one.
    pub fn display(&self, decimals: usize) -> String {
        if self.n <= 1 {
            format!("{:.decimals$}", self.median)
        } else {
            format!(
                "{:.decimals$} ({:.decimals$}–{:.decimals$})",
                self.median, self.min, self.max
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations() {
        let cases: &[(usize, usize, &[usize])] = &[
            (0, 4, &[0, 1, 2, 3]),
            (1, 4, &[1, 2, 3, 0]),
            (2, 4, &[2, 3, 0, 1]),
            (3, 4, &[3, 0, 1, 2]),
            (4, 4, &[0, 1, 2, 3]),
            (5, 4, &[1, 2, 3, 0]),
            (0, 2, &[0, 1]),
            (1, 2, &[1, 0]),
            (7, 1, &[0]),
            (3, 0, &[]),
        ];
        for &(round, n, want) in cases {
            assert_eq!(rotation(round, n), want, "round {round} of {n} targets");
        }
    }

    #[test]
    fn every_target_leads_once_per_cycle() {
        for n in 1..=5 {
            let mut firsts: Vec<usize> = (0..n).map(|r| rotation(r, n)[0]).collect();
            firsts.sort_unstable();
            assert_eq!(firsts, (0..n).collect::<Vec<_>>(), "{n} targets");
            for r in 0..2 * n {
                let mut order = rotation(r, n);
                order.sort_unstable();
                assert_eq!(
                    order,
                    (0..n).collect::<Vec<_>>(),
                    "round {r}: a permutation"
                );
            }
        }
    }

    fn histogram(samples: &[(u64, u64)]) -> anyhow::Result<Histogram<u64>> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for &(v, n) in samples {
            h.record_n(v, n)?;
        }
        Ok(h)
    }

    #[test]
    fn pooling_adds_samples() -> anyhow::Result<()> {
        type Case = (
            &'static [&'static [(u64, u64)]],
            Option<(u64, u64, u64, u64, u64)>,
        );
        let cases: &[Case] = &[
            (&[], None),
            (&[&[]], None),
            (&[&[(100, 10)]], Some((100, 100, 100, 100, 10))),
            // Two quiet rounds and one with a tail: the pooled p99 sees the tail of
            // the one round in proportion to its samples.
            (
                &[&[(100, 1000)], &[(100, 1000)], &[(100, 960), (2000, 40)]],
                Some((100, 2000, 2000, 2000, 3000)),
            ),
            (
                &[&[(100, 990), (900, 10)], &[(200, 1000)]],
                // 990 × 100, 1000 × 200, 10 × 900: p50 is the 1000th sample (a 200),
                // p99 the 1980th (a 200), p99.9 the 1998th (a 900).
                Some((200, 200, 900, 900, 2000)),
            ),
            (&[&[], &[(7, 2)], &[]], Some((7, 7, 7, 7, 2))),
        ];
        for (rounds, want) in cases {
            let mut pooled = Pooled::default();
            for samples in *rounds {
                pooled.add(&histogram(samples)?)?;
            }
            let got = pooled
                .latency()
                .map(|l| (l.p50, l.p99, l.p999, l.max, l.count));
            assert_eq!(got, *want, "{rounds:?}");
        }
        Ok(())
    }

    #[test]
    fn spreads() {
        type Case = (&'static [f64], Option<(f64, f64, f64, usize)>);
        let cases: &[Case] = &[
            (&[], None),
            (&[f64::NAN], None),
            (&[5.0], Some((5.0, 5.0, 5.0, 1))),
            (&[3.0, 1.0], Some((2.0, 1.0, 3.0, 2))),
            (&[9.0, 1.0, 4.0], Some((4.0, 1.0, 9.0, 3))),
            (&[10.0, 40.0, 20.0, 30.0], Some((25.0, 10.0, 40.0, 4))),
            (&[1.0, 1000.0, 2.0, 3.0, 2.5], Some((2.5, 1.0, 1000.0, 5))),
            (&[2.0, f64::NAN, 4.0], Some((3.0, 2.0, 4.0, 2))),
        ];
        for &(values, want) in cases {
            let got = Spread::of(values.iter().copied()).map(|s| (s.median, s.min, s.max, s.n));
            assert_eq!(got, want, "{values:?}");
        }
        let got = Spread::of_u64([400, 100, 250, 300]).map(|s| s.median);
        assert_eq!(got, Some(275.0));
    }

    #[test]
    fn spread_display() {
        let cases: &[(&[f64], usize, &str)] = &[
            (&[412.0], 0, "412"),
            (&[400.0, 900.0, 420.0], 0, "420 (400–900)"),
            (&[1.0, 2.0], 1, "1.5 (1.0–2.0)"),
        ];
        for &(values, decimals, want) in cases {
            let got = Spread::of(values.iter().copied()).map(|s| s.display(decimals));
            assert_eq!(got.as_deref(), Some(want), "{values:?}");
        }
    }
}
