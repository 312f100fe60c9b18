//! The benchmark run: CPU layout, environment, upstream, then every target started
//! (with a pre-flight request), `--rounds` rounds in which the targets take turns in a
//! rotated order (fixed-rate latency, then closed-loop throughput), peak RSS, stop,
//! and finally the report.

use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::cli::{RunArgs, Target};
use crate::loadgen::LoadGen;
use crate::process::{self, Proc, TempDir};
use crate::report::{self, Latency, Round, Row, Settings};
use crate::stats::{self, Pooled};
use crate::targets::{self, Prepared, Running};
use crate::upstream::BODY_LEN;
use crate::{mtls, probe, sys};

/// How the run went, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every selected, available target was measured without errors.
    Clean,
    /// Some target failed or had request errors (exit code 2).
    Problems,
}

/// Which CPUs the proxy and everything else run on; `None` = not pinned.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Where the proxies run.
    pub proxy: Vec<usize>,
    /// Where everything else runs: the load generator and the upstream.
    pub others: Vec<usize>,
}

impl Layout {
    /// Proxy on the first allowed CPU, the rest on the others; `None` with one CPU.
    pub fn detect(allowed: &[usize]) -> Option<Self> {
        match allowed {
            [proxy, others @ ..] if !others.is_empty() => Some(Self {
                proxy: vec![*proxy],
                others: others.to_vec(),
            }),
            _ => None,
        }
    }

    /// Pins the calling thread (the harness, and the threads it starts later) to the
    /// other CPUs; returns the CPUs for the proxies and for the others' child processes.
    pub fn pin_harness(
        layout: Option<&Self>,
    ) -> anyhow::Result<(Option<&[usize]>, Option<&[usize]>)> {
        let Some(layout) = layout else {
            return Ok((None, None));
        };
        sys::pin_current_thread(&layout.others).context("pinning the harness")?;
        Ok((Some(&layout.proxy), Some(&layout.others)))
    }

    /// The layout in words, for the report.
    pub fn describe(layout: Option<&Self>) -> String {
        match layout {
            Some(l) => format!(
                "proxy on CPU {}; load generator and upstream on CPU {}",
                list(&l.proxy),
                list(&l.others)
            ),
            None => "NOT pinned (only one CPU available): proxy, load generator and upstream \
                     share it, so max req/s is not a single-core proxy figure"
                .to_owned(),
        }
    }
}

/// CPU ids as `0,1,2`.
pub fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the whole benchmark and writes the report.
pub fn run(args: &RunArgs) -> anyhow::Result<Verdict> {
    let duration = args.effective_duration();
    let warmup = args.effective_warmup();
    let allowed = sys::allowed_cpus().context("reading CPU affinity")?;
    let layout = Layout::detect(&allowed);
    let pinning = Layout::describe(layout.as_ref());

    // Locate, install or build everything before pinning this process, so apt-get and
    // cargo are not squeezed onto one core.
    let mut selected: Vec<Target> = Vec::new();
    for t in &args.targets {
        if !selected.contains(t) {
            selected.push(*t);
        }
    }
    let mut prepared: Vec<(Target, Result<Prepared, String>)> = Vec::new();
    for &target in &selected {
        let p = targets::prepare(target, args);
        if let Err(reason) = &p {
            progress!("skipping {target}: {reason}");
        }
        prepared.push((target, p));
    }

    let mut env = machine(&allowed, &pinning);
    for (target, p) in &prepared {
        let version = match p {
            Ok(p) => p.version(),
            Err(reason) => format!("not available ({})", first_line(reason)),
        };
        env.push((target.to_string(), version));
    }
    env.push((
        "latency phase".into(),
        format!(
            "{} req/s over {} connections, {duration} s measured after {warmup} s warm-up",
            args.rate, args.connections
        ),
    ));
    env.push((
        "throughput phase".into(),
        format!(
            "closed loop, {} connections, {duration} s measured after {warmup} s warm-up",
            args.throughput_connections
        ),
    ));
    env.push((
        "rounds".into(),
        format!(
            "{} of both phases per target, targets in an order rotated by one per round; \
             a round is noisy when the load generator's schedule lag p99 exceeds {} µs",
            args.rounds, args.max_lag_us
        ),
    ));
    announce(&mut env, "the load generator");
    let (proxy_cpus, others) = Layout::pin_harness(layout.as_ref())?;

    let (upstream_addr, upstream, _upstream_dir) = start_upstream(others)?;
    progress!("upstream listening on {upstream_addr}");
    let loadgen = LoadGen::new(layout.as_ref().map(|l| l.others.clone()))?;
    let phase = Phase {
        loadgen: &loadgen,
        rate: args.rate,
        connections: args.connections,
        throughput_connections: args.throughput_connections,
        warmup: Duration::from_secs(warmup),
        duration: Duration::from_secs(duration),
        max_lag_us: args.max_lag_us,
    };

    // Start every target once; they all stay up for every round.
    let mut entries: Vec<Entry> = prepared
        .into_iter()
        .map(|(target, p)| {
            let (row, live) = match p {
                Err(reason) if target.is_meshwork() => (Row::failed(target, reason), None),
                Err(reason) => (Row::skipped(target, reason), None),
                Ok(p) => match start(target, &p, upstream_addr, proxy_cpus) {
                    Ok(live) => (Row::new(target), Some(live)),
                    Err(reason) => (Row::failed(target, reason), None),
                },
            };
            Entry { row, live }
        })
        .collect();
    let started: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].live.is_some())
        .collect();
    let rounds = usize::try_from(args.rounds).unwrap_or(1);
    let per_round = 2 * (warmup + duration) * u64::try_from(started.len()).unwrap_or(0);
    progress!(
        "{rounds} round(s) of {} target(s): about {} min of measuring",
        started.len(),
        (per_round * u64::from(args.rounds)).div_ceil(60)
    );
    for round in 0..rounds {
        let order: Vec<usize> = stats::rotation(round, started.len())
            .into_iter()
            .map(|i| started[i])
            .collect();
        let names: Vec<String> = order
            .iter()
            .map(|&i| entries[i].row.target.to_string())
            .collect();
        progress!("round {}/{rounds}: {}", round + 1, names.join(" → "));
        for (position, &i) in order.iter().enumerate() {
            let Entry { row, live } = &mut entries[i];
            if let Some(live) = live
                && live.alive
            {
                live.measure_round(row, round + 1, rounds, position + 1, &phase);
            }
        }
    }
    let rows: Vec<Row> = entries
        .into_iter()
        .map(|Entry { mut row, live }| {
            if let Some(live) = live {
                live.finish(&mut row);
            }
            row
        })
        .collect();
    upstream.stop()?;

    let settings = Settings {
        rate: args.rate,
        connections: args.connections,
        throughput_connections: args.throughput_connections,
        duration,
        warmup,
        pinning,
        rounds,
        max_lag_us: args.max_lag_us,
    };
    let text = report::render(&env, &settings, &rows);
    print!("{text}");
    if let Some(dir) = args.out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    progress!("report written to {}", args.out.display());

    let problems = rows
        .iter()
        .any(|r| r.failed || r.errors.total() > 0 || !r.notes.is_empty());
    Ok(if problems {
        Verdict::Problems
    } else {
        Verdict::Clean
    })
}

/// Starts `<this exe> upstream --addr 127.0.0.1:PORT` pinned to `cpus`, checks it.
pub fn start_upstream(cpus: Option<&[usize]>) -> anyhow::Result<(SocketAddr, Proc, TempDir)> {
    let dir = TempDir::new("upstream")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], process::free_port()?));
    let exe = std::env::current_exe().context("locating the harness executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("upstream").arg("--addr").arg(addr.to_string());
    let mut proc = Proc::spawn("upstream", cmd, &dir.path().join("output.log"), cpus)?;
    proc.wait_for_port(addr, process::READY_TIMEOUT)?;
    preflight(addr).context("upstream pre-flight request")?;
    Ok((addr, proc, dir))
}

/// One `GET /` that must return 200 with a 1024-byte body.
fn preflight(addr: SocketAddr) -> anyhow::Result<()> {
    let p = probe::get(addr, "/")?;
    if p.status != 200 || p.body_len != BODY_LEN {
        bail!(
            "GET http://{addr}/ gave status {} with {} body bytes (want 200, {BODY_LEN})",
            p.status,
            p.body_len
        );
    }
    Ok(())
}

/// Load-generation settings shared by all targets.
struct Phase<'a> {
    loadgen: &'a LoadGen,
    rate: u32,
    connections: u32,
    throughput_connections: u32,
    warmup: Duration,
    duration: Duration,
    /// Schedule-lag p99 (µs) above which a round is reported as noisy.
    max_lag_us: u64,
}

/// A selected target: its row, and the running process while it is up.
struct Entry {
    row: Row,
    /// `None` when it was skipped or failed to start.
    live: Option<Live>,
}

/// A started target, kept up for all rounds, and its histograms pooled so far.
struct Live {
    running: Running,
    latency: Pooled,
    schedule_lag: Pooled,
    /// Cleared when the process died; later rounds skip it.
    alive: bool,
}

/// Starts `target` and checks it with a pre-flight request; `Err` says why it failed.
fn start(
    target: Target,
    prepared: &Prepared,
    upstream: SocketAddr,
    cpus: Option<&[usize]>,
) -> Result<Live, String> {
    progress!("{target}: starting");
    let running = match prepared.start(upstream, cpus) {
        Ok(r) => r,
        Err(e) => {
            progress!("{target}: failed to start: {e:#}");
            return Err(format!("failed to start: {e:#}"));
        }
    };
    if let Err(e) = preflight(running.addr) {
        progress!("{target}: pre-flight failed: {e:#}");
        let _ = running.stop();
        return Err(format!("pre-flight request failed: {e:#}"));
    }
    Ok(Live {
        running,
        latency: Pooled::default(),
        schedule_lag: Pooled::default(),
        alive: true,
    })
}

impl Live {
    /// Runs both phases once (round `number` of `total`, at `position` in its order)
    /// and adds the results to `row` and the pooled histograms.
    fn measure_round(
        &mut self,
        row: &mut Row,
        number: usize,
        total: usize,
        position: usize,
        phase: &Phase<'_>,
    ) {
        let target = row.target;
        let tag = if total > 1 {
            format!("{target} [round {number}/{total}]")
        } else {
            target.to_string()
        };
        let in_round = if total > 1 {
            format!(" in round {number}")
        } else {
            String::new()
        };
        let mut round = Round::new(number, position);
        let addr = self.running.addr;

        progress!(
            "{tag}: latency phase ({} req/s, {} connections, {:?} + {:?})",
            phase.rate,
            phase.connections,
            phase.warmup,
            phase.duration
        );
        let mtls_before = self.mtls_snapshot();
        let latency_run = phase.loadgen.open_loop(
            addr,
            phase.rate,
            phase.connections,
            phase.warmup,
            phase.duration,
        );
        if let Some(before) = mtls_before {
            let after = self.mtls_snapshot();
            match before.and_then(|b| Ok(after.context("no client sidecar")??.since(&b))) {
                Ok(sample) => round.mtls = Some(sample),
                Err(e) => row.notes.push(format!(
                    "reading the client sidecar's /stats failed{in_round}: {e:#}"
                )),
            }
        }
        match latency_run {
            Ok(r) => {
                round.latency = Latency::from_histogram(&r.histogram);
                round.schedule_lag = Latency::from_histogram(&r.schedule_lag);
                let pooled = self
                    .latency
                    .add(&r.histogram)
                    .and_then(|()| self.schedule_lag.add(&r.schedule_lag));
                if let Err(e) = pooled {
                    row.notes.push(format!("{e:#}{in_round}"));
                }
                row.reconnects += r.reconnects;
                row.errors.merge(&r.errors);
                if let Some(l) = &round.latency {
                    let lag = round.schedule_lag.map_or(0, |lag| lag.p99);
                    progress!(
                        "{tag}: p50 {} µs, p99 {} µs, p99.9 {} µs ({} requests, {} errors, \
                         schedule lag p99 {lag} µs{})",
                        l.p50,
                        l.p99,
                        l.p999,
                        l.count,
                        r.errors.total(),
                        if lag > phase.max_lag_us {
                            ": NOISY round"
                        } else {
                            ""
                        }
                    );
                }
            }
            Err(e) => row
                .notes
                .push(format!("latency phase failed{in_round}: {e:#}")),
        }

        progress!(
            "{tag}: throughput phase ({} connections, {:?} + {:?})",
            phase.throughput_connections,
            phase.warmup,
            phase.duration
        );
        match phase.loadgen.closed_loop(
            addr,
            phase.throughput_connections,
            phase.warmup,
            phase.duration,
        ) {
            Ok(r) => {
                round.rps = Some(r.rps);
                row.reconnects += r.reconnects;
                row.errors.merge(&r.errors);
                progress!(
                    "{tag}: {:.0} req/s ({} requests, {} errors)",
                    r.rps,
                    r.completed,
                    r.errors.total()
                );
            }
            Err(e) => row
                .notes
                .push(format!("throughput phase failed{in_round}: {e:#}")),
        }
        row.rounds.push(round);

        if let Some(Err(e)) = self
            .running
            .procs
            .iter()
            .map(proc_alive)
            .find(Result::is_err)
        {
            let later = if number < total {
                "; later rounds skipped"
            } else {
                ""
            };
            row.notes.push(format!(
                "process died during the run{in_round}: {e:#}{later}"
            ));
            self.alive = false;
        }
    }

    /// For a target with an mTLS client sidecar: its counters and the CPU time of all
    /// its processes now (`None` for other targets).
    fn mtls_snapshot(&self) -> Option<anyhow::Result<mtls::Sample>> {
        let admin = self.running.mtls_client_admin?;
        Some((|| {
            let counters = mtls::Counters::read(admin)?;
            let cpu: anyhow::Result<f64> = self.running.procs.iter().map(Proc::cpu_seconds).sum();
            Ok(mtls::Sample {
                counters,
                cpu_seconds: cpu.ok(),
            })
        })())
    }

    /// Fills in the pooled percentiles, reads the peak RSS (over all rounds) and stops
    /// the target.
    fn finish(self, row: &mut Row) {
        row.latency = self.latency.latency();
        row.schedule_lag = self.schedule_lag.latency();
        if !self.running.procs.is_empty() {
            let peaks: anyhow::Result<Vec<u64>> =
                self.running.procs.iter().map(Proc::peak_rss_kib).collect();
            match peaks {
                #[expect(clippy::cast_precision_loss, reason = "KiB counts are far below 2^52")]
                Ok(kib) => {
                    let mib: Vec<f64> = kib.iter().map(|&k| k as f64 / 1024.0).collect();
                    row.rss_mib = Some(mib.iter().sum());
                    if mib.len() > 1 {
                        row.rss_parts_mib = mib;
                    }
                }
                Err(e) if self.alive => row.notes.push(format!("peak RSS unavailable: {e:#}")),
                Err(_) => {}
            }
        }
        if let Err(e) = self.running.stop() {
            row.notes.push(format!("stopping failed: {e:#}"));
        }
    }
}

/// Whether the process is still running (via /proc, without reaping it).
fn proc_alive(proc: &Proc) -> anyhow::Result<()> {
    let stat = fs::read_to_string(format!("/proc/{}/stat", proc.pid()))?;
    // State is the field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        bail!("exited (state {state:?})");
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Adds a warning to `env` when the harness is a debug build (`slow`, e.g. the load
/// generator, may then be the bottleneck), and prints every line as progress.
pub fn announce(env: &mut Vec<(String, String)>, slow: &str) {
    if cfg!(debug_assertions) {
        env.push((
            "WARNING".into(),
            format!("harness built without --release: {slow} itself may be the bottleneck"),
        ));
    }
    for (k, v) in env.iter() {
        progress!("{k}: {v}");
    }
}

/// The environment lines every report starts with: CPUs, kernel, load, pinning.
pub fn machine(allowed: &[usize], pinning: &str) -> Vec<(String, String)> {
    vec![
        (
            "CPUs".into(),
            format!(
                "{} usable ({}), {}",
                allowed.len(),
                list(allowed),
                cpu_model()
            ),
        ),
        ("kernel".into(), kernel()),
        ("load average at start".into(), load_average()),
        ("pinning".into(), pinning.to_owned()),
    ]
}

/// The CPU model name from /proc/cpuinfo.
fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown model".to_owned())
}

/// The 1/5/15-minute load averages: other work on the machine skews results.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// The kernel release.
fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        type Case = (
            &'static [usize],
            Option<(&'static [usize], &'static [usize])>,
        );
        let cases: &[Case] = &[
            (&[0, 1], Some((&[0], &[1]))),
            (&[2, 3, 5], Some((&[2], &[3, 5]))),
            (&[0], None),
            (&[], None),
        ];
        for (allowed, want) in cases {
            let got = Layout::detect(allowed);
            assert_eq!(
                got.as_ref()
                    .map(|l| (l.proxy.as_slice(), l.others.as_slice())),
                *want
            );
        }
        assert!(Layout::describe(None).contains("NOT pinned"));
    }
}
