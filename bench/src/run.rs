//! The benchmark run: CPU layout, environment, upstream, then each target in turn
//! (start, pre-flight, fixed-rate latency, closed-loop throughput, peak RSS, stop),
//! and finally the report.

use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::cli::{RunArgs, Target};
use crate::loadgen::LoadGen;
use crate::process::{self, Proc, TempDir};
use crate::report::{self, Latency, Row, Settings};
use crate::targets::{self, Prepared};
use crate::upstream::BODY_LEN;
use crate::{probe, sys};

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
struct Layout {
    proxy: Vec<usize>,
    others: Vec<usize>,
}

impl Layout {
    /// Proxy on the first allowed CPU, the rest on the others; `None` with one CPU.
    fn detect(allowed: &[usize]) -> Option<Self> {
        match allowed {
            [proxy, others @ ..] if !others.is_empty() => Some(Self {
                proxy: vec![*proxy],
                others: others.to_vec(),
            }),
            _ => None,
        }
    }

    fn describe(layout: Option<&Self>) -> String {
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

fn list(cpus: &[usize]) -> String {
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

    let mut env: Vec<(String, String)> = vec![
        (
            "CPUs".into(),
            format!(
                "{} usable ({}), {}",
                allowed.len(),
                list(&allowed),
                cpu_model()
            ),
        ),
        ("kernel".into(), kernel()),
        ("load average at start".into(), load_average()),
        ("pinning".into(), pinning.clone()),
    ];
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
    if cfg!(debug_assertions) {
        env.push((
            "WARNING".into(),
            "harness built without --release: the load generator itself may be the bottleneck"
                .into(),
        ));
    }
    for (k, v) in &env {
        progress!("{k}: {v}");
    }

    if let Some(layout) = &layout {
        sys::pin_current_thread(&layout.others).context("pinning the harness")?;
    }
    let others = layout.as_ref().map(|l| l.others.as_slice());
    let proxy_cpus = layout.as_ref().map(|l| l.proxy.as_slice());

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
    };

    let mut rows = Vec::new();
    for (target, p) in prepared {
        let row = match p {
            Err(reason) if target == Target::Meshwork => Row::failed(target, reason),
            Err(reason) => Row::skipped(target, reason),
            Ok(p) => measure(target, &p, upstream_addr, proxy_cpus, &phase),
        };
        rows.push(row);
    }
    upstream.stop()?;

    let settings = Settings {
        rate: args.rate,
        connections: args.connections,
        throughput_connections: args.throughput_connections,
        duration,
        warmup,
        pinning,
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
fn start_upstream(cpus: Option<&[usize]>) -> anyhow::Result<(SocketAddr, Proc, TempDir)> {
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
}

/// Starts `target`, measures latency, throughput and RSS, stops it.
fn measure(
    target: Target,
    prepared: &Prepared,
    upstream: SocketAddr,
    cpus: Option<&[usize]>,
    phase: &Phase<'_>,
) -> Row {
    progress!("{target}: starting");
    let running = match prepared.start(upstream, cpus) {
        Ok(r) => r,
        Err(e) => {
            progress!("{target}: failed to start: {e:#}");
            return Row::failed(target, format!("failed to start: {e:#}"));
        }
    };
    if let Err(e) = preflight(running.addr) {
        progress!("{target}: pre-flight failed: {e:#}");
        let _ = running.stop();
        return Row::failed(target, format!("pre-flight request failed: {e:#}"));
    }

    let mut row = Row::new(target);
    progress!(
        "{target}: latency phase ({} req/s, {} connections, {:?} + {:?})",
        phase.rate,
        phase.connections,
        phase.warmup,
        phase.duration
    );
    match phase.loadgen.open_loop(
        running.addr,
        phase.rate,
        phase.connections,
        phase.warmup,
        phase.duration,
    ) {
        Ok(r) => {
            row.latency = Latency::from_histogram(&r.histogram);
            row.schedule_lag = Latency::from_histogram(&r.schedule_lag);
            row.reconnects += r.reconnects;
            row.errors.merge(&r.errors);
            if let Some(l) = &row.latency {
                progress!(
                    "{target}: p50 {} µs, p99 {} µs, p99.9 {} µs ({} requests, {} errors, \
                     schedule lag p99 {} µs)",
                    l.p50,
                    l.p99,
                    l.p999,
                    l.count,
                    r.errors.total(),
                    row.schedule_lag.map_or(0, |lag| lag.p99)
                );
            }
        }
        Err(e) => row.notes.push(format!("latency phase failed: {e:#}")),
    }

    progress!(
        "{target}: throughput phase ({} connections, {:?} + {:?})",
        phase.throughput_connections,
        phase.warmup,
        phase.duration
    );
    match phase.loadgen.closed_loop(
        running.addr,
        phase.throughput_connections,
        phase.warmup,
        phase.duration,
    ) {
        Ok(r) => {
            row.rps = Some(r.rps);
            row.reconnects += r.reconnects;
            row.errors.merge(&r.errors);
            progress!(
                "{target}: {:.0} req/s ({} requests, {} errors)",
                r.rps,
                r.completed,
                r.errors.total()
            );
        }
        Err(e) => row.notes.push(format!("throughput phase failed: {e:#}")),
    }

    if let Some(proc) = &running.proc {
        match proc.peak_rss_kib() {
            #[expect(clippy::cast_precision_loss, reason = "KiB counts are far below 2^52")]
            Ok(kib) => row.rss_mib = Some(kib as f64 / 1024.0),
            Err(e) => row.notes.push(format!("peak RSS unavailable: {e:#}")),
        }
    }
    if let Some(proc) = running.proc.as_ref()
        && let Err(e) = proc_alive(proc)
    {
        row.notes
            .push(format!("process died during the run: {e:#}"));
    }
    if let Err(e) = running.stop() {
        row.notes.push(format!("stopping failed: {e:#}"));
    }
    row
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
