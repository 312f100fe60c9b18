//! The results of `meshwork-bench xds` and their markdown report.

use std::fmt::Write as _;

use super::fleet::Role;

/// How a change reaches the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The file is written and the file source finds it (polling every 200 ms, 100 ms settle: the defaults).
    Polling,
    /// The file is written and the harness has the control plane load it and call `MeshViews::set_mesh` at once:
    /// the push latency alone, without the polling.
    Push,
}

impl Mode {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Polling => "polling",
            Mode::Push => "push",
        }
    }

    /// Where its latencies count from.
    fn origin(self) -> &'static str {
        match self {
            Mode::Polling => "the file write",
            Mode::Push => "the start of `set_mesh`",
        }
    }
}

/// Percentiles of one group of clients, in ms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Clients with a value.
    pub n: usize,
    /// Clients without one (not ready, or never received the edit).
    pub missing: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest: the time until every client of the group had it.
    pub max: f64,
}

impl Summary {
    /// Percentiles of `times - origin` over the clients whose role `role` accepts (all when `None`), in ms.
    pub fn of(times: &[Option<u64>], roles: &[Role], role: Option<Role>, origin: u64) -> Summary {
        let mut ms: Vec<f64> = Vec::new();
        let mut missing = 0;
        for (t, r) in times.iter().zip(roles) {
            if role.is_some_and(|want| want != *r) {
                continue;
            }
            match t {
                Some(t) => ms.push(ns_to_ms(t.saturating_sub(origin))),
                None => missing += 1,
            }
        }
        ms.sort_by(f64::total_cmp);
        Summary {
            n: ms.len(),
            missing,
            p50: rank(&ms, 50.0),
            p99: rank(&ms, 99.0),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }

    fn cell(&self) -> String {
        if self.n == 0 && self.missing == 0 {
            return "—".into();
        }
        let mut s = format!("{:.0} / {:.0} / {:.0}", self.p50, self.p99, self.max);
        if self.missing > 0 {
            let _ = write!(s, " (⚠ {} missing)", self.missing);
        }
        s
    }
}

/// Nanoseconds as milliseconds.
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[k.clamp(1, sorted.len()) - 1]
}

/// The initial sync of one mode's run.
#[derive(Clone, Debug, Default)]
pub struct Sync {
    /// From the first connection attempt to each client holding a complete config, ms, by group.
    pub all: Summary,
    /// Proxyless clients.
    pub proxyless: Summary,
    /// Sidecars.
    pub sidecars: Summary,
    /// Control-plane CPU seconds from start of connecting to the last client ready.
    pub cpu_s: f64,
    /// The clients' CPU seconds in the same time (all of them share the CPUs the control plane does not have).
    pub clients_cpu_s: f64,
    /// Control-plane RSS once every client was ready, KiB.
    pub rss_kib: u64,
    /// Bytes and responses received by all clients.
    pub bytes: u64,
    /// See `bytes`.
    pub responses: u64,
}

/// One edit and its propagation.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// 1-based.
    pub edit: usize,
    /// The edited service (`svc-0389`).
    pub service: String,
    /// From the origin until the views were rebuilt, ms (polling: wait + settle + load + rebuild; push: rebuild).
    pub rebuilt_ms: f64,
    /// Loading the directory, ms (push only: the polling mode's load is inside `rebuilt_ms`).
    pub load_ms: Option<f64>,
    /// Arrival of the change per group, ms after the origin.
    pub all: Summary,
    /// Proxyless clients.
    pub proxyless: Summary,
    /// Sidecars.
    pub sidecars: Summary,
    /// Control-plane CPU from the edit until 1 s after the last arrival, ms.
    pub cpu_ms: f64,
    /// The clients' CPU in the same time, ms.
    pub clients_cpu_ms: f64,
    /// Bytes and responses the clients received in that window.
    pub bytes: u64,
    /// See `bytes`.
    pub responses: u64,
}

/// Everything one mode measured.
#[derive(Clone, Debug)]
pub struct ModeResult {
    /// The mode.
    pub mode: Mode,
    /// Initial sync.
    pub sync: Sync,
    /// Control-plane CPU while nothing changes, ms per second (the polling's own cost).
    pub idle_cpu_ms_per_s: f64,
    /// Each edit.
    pub changes: Vec<Change>,
    /// `(VmRSS, VmHWM)` at the end, KiB.
    pub memory_kib: (u64, u64),
}

/// What the run was.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Services in the mesh.
    pub services: usize,
    /// Clients in all.
    pub clients: usize,
    /// Of which sidecars.
    pub sidecars: usize,
    /// How the processes were placed on CPUs.
    pub pinning: String,
    /// Failed clients and their first errors.
    pub failures: (usize, Vec<String>),
}

/// The goal: a change reaches every client within this.
pub const GOAL_MS: f64 = 1000.0;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The markdown report.
pub fn render(setup: &Setup, results: &[ModeResult]) -> String {
    let mut out = String::new();
    let proxyless = setup.clients - setup.sidecars;
    let _ = writeln!(
        out,
        "## meshwork-bench xds: {} services, {} Delta clients ({proxyless} proxyless, {} sidecars)\n\n{}\n",
        setup.services, setup.clients, setup.sidecars, setup.pinning
    );
    let _ = writeln!(
        out,
        "| mode | change → all clients, median of {} edits ms | worst edit ms | goal ≤ {GOAL_MS:.0} ms | initial sync s | control-plane CPU: initial sync s / per change ms (median) / idle ms/s | RSS after sync / end / peak MiB |\n|---|---:|---:|---|---:|---|---|",
        results.first().map_or(0, |r| r.changes.len())
    );
    for r in results {
        let all: Vec<f64> = r.changes.iter().map(|c| c.all.max).collect();
        let complete = r.changes.iter().all(|c| c.all.missing == 0) && r.sync.all.missing == 0;
        let worst = all.iter().copied().fold(0.0, f64::max);
        let verdict = match (complete, worst <= GOAL_MS) {
            (false, _) => "⚠ incomplete",
            (true, true) => "met",
            (true, false) => "**missed**",
        };
        let cpu = median(r.changes.iter().map(|c| c.cpu_ms).collect());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {worst:.0} | {verdict} | {:.1} | {:.1} / {cpu:.0} / {:.1} | {:.0} / {:.0} / {:.0} |",
            r.mode.name(),
            median(all),
            r.sync.all.max / 1000.0,
            r.sync.cpu_s,
            r.idle_cpu_ms_per_s,
            mib(r.sync.rss_kib),
            mib(r.memory_kib.0),
            mib(r.memory_kib.1),
        );
    }
    let _ = writeln!(
        out,
        "\nInitial sync (from the first connection attempt until a client holds a complete config):\n\n\
         | mode | all p50 / p99 / max ms | proxyless | sidecars | CP CPU s | clients' CPU s | MiB received | responses |\n|---|---|---|---|---:|---:|---:|---:|"
    );
    for r in results {
        let s = &r.sync;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            r.mode.name(),
            s.all.cell(),
            s.proxyless.cell(),
            s.sidecars.cell(),
            s.cpu_s,
            s.clients_cpu_s,
            mib(s.bytes / 1024),
            s.responses
        );
    }
    for r in results {
        let _ = writeln!(
            out,
            "\nChanges, `{}` (ms from {}; p50 / p99 / max over clients):\n\n\
             | edit | service | views rebuilt ms | load ms | all clients | proxyless | sidecars | CP CPU ms | clients' CPU ms | MiB received | responses |\n|---:|---|---:|---:|---|---|---|---:|---:|---:|---:|",
            r.mode.name(),
            r.mode.origin()
        );
        for c in &r.changes {
            let load = c.load_ms.map_or("—".to_string(), |l| format!("{l:.0}"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {load} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |",
                c.edit,
                c.service,
                c.rebuilt_ms,
                c.all.cell(),
                c.proxyless.cell(),
                c.sidecars.cell(),
                c.cpu_ms,
                c.clients_cpu_ms,
                mib(c.bytes / 1024),
                c.responses
            );
        }
    }
    let (failed, errors) = &setup.failures;
    if *failed > 0 {
        let _ = writeln!(out, "\n⚠ {failed} clients failed: {}", errors.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_by_group() {
        let roles = [
            Role::Sidecar,
            Role::Proxyless,
            Role::Proxyless,
            Role::Proxyless,
        ];
        let times = [Some(5_000_000), Some(2_000_000), None, Some(3_000_000)];
        let all = Summary::of(&times, &roles, None, 1_000_000);
        assert_eq!((all.n, all.missing, all.p50, all.max), (3, 1, 2.0, 4.0));
        let proxyless = Summary::of(&times, &roles, Some(Role::Proxyless), 1_000_000);
        assert_eq!(
            (proxyless.n, proxyless.missing, proxyless.p50, proxyless.p99),
            (2, 1, 1.0, 2.0)
        );
        let sidecars = Summary::of(&times, &roles, Some(Role::Sidecar), 1_000_000);
        assert_eq!((sidecars.n, sidecars.max), (1, 4.0));
        assert_eq!(Summary::of(&[], &[], None, 0).cell(), "—");
        assert_eq!(all.cell(), "2 / 4 / 4 (⚠ 1 missing)");
    }

    #[test]
    fn nearest_rank_percentiles_and_medians() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let table = [
            (50.0, 50.0),
            (99.0, 99.0),
            (100.0, 100.0),
            (0.0, 1.0),
            (99.5, 100.0),
        ];
        for (p, want) in table {
            assert_eq!(rank(&v, p), want, "p{p}");
        }
        assert_eq!(rank(&[], 50.0), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn report_says_whether_the_goal_was_met() {
        let change = |max: f64| Change {
            edit: 1,
            service: "svc-0389".into(),
            all: Summary {
                n: 2,
                max,
                ..Summary::default()
            },
            ..Change::default()
        };
        let result = |mode, max| ModeResult {
            mode,
            sync: Sync::default(),
            idle_cpu_ms_per_s: 0.0,
            changes: vec![change(max)],
            memory_kib: (2048, 4096),
        };
        let setup = Setup {
            services: 10,
            clients: 2,
            sidecars: 1,
            pinning: "pinned".into(),
            failures: (1, vec!["client 1: gone".into()]),
        };
        let text = render(
            &setup,
            &[result(Mode::Polling, 1500.0), result(Mode::Push, 80.0)],
        );
        assert!(
            text.contains("| polling | 1500 | 1500 | **missed** |"),
            "{text}"
        );
        assert!(text.contains("| push | 80 | 80 | met |"), "{text}");
        assert!(text.contains("(1 proxyless, 1 sidecars)"), "{text}");
        assert!(
            text.contains("⚠ 1 clients failed: client 1: gone"),
            "{text}"
        );
    }
}
