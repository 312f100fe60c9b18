//! The handshake benchmark's numbers and report: per measured window, connections per
//! second and per server CPU-second; over rounds, medians and ranges; the handshake's
//! own cost (mTLS minus plaintext); and the markdown beside rustls' published figures.

use std::fmt::Write as _;

use super::inmemory::Rates;
use crate::stats::Spread;

/// rustls' published server figure: full TLS 1.3 handshakes/s on one core.
pub const RUSTLS_SERVER_HS: f64 = 8325.74;

/// Where that figure comes from, and how it differs from this measurement.
const RUSTLS_REFERENCE: &str = "rustls' published figures (rustls.dev/perf, \
    performance-anchors.md §4.2): **8,326 full TLS 1.3 handshakes/s** on one core for the server \
    (rustls 0.23.15, 2024-10-18: ECDSA P-256 certificate, X25519, server authentication only, \
    client and server in one process without sockets, aws-lc-rs, Xeon E-2386G at a fixed \
    frequency), and 6,786/s with the post-quantum X25519MLKEM768 key exchange (rustls 0.23.37, \
    2026-03-07). The sidecar's figures differ from those in three ways: mutual TLS adds a \
    verification of the client's chain and of its CertificateVerify signature (two ECDSA P-256 \
    verifications) to every handshake; the provider is ring, not aws-lc-rs, on another CPU (the \
    in-memory line above measures both on this machine); and each connection also pays for the \
    kernel's TCP accept and close, the SPIFFE checks and one HTTP/1.1 request proxied to the \
    upstream, on a shared 2-vCPU VM";

/// The project's target (performance-anchors.md §6).
const TARGET: &str = "at least 6,000 full handshakes/s per core";

/// One phase's measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Connections that completed in the window.
    pub connections: u64,
    /// Connections that failed in the whole phase (warm-up included).
    pub errors: u64,
    /// Length of the window, seconds.
    pub wall_seconds: f64,
    /// The server sidecar's CPU time in the window, seconds.
    pub cpu_seconds: f64,
    /// TLS handshakes the server counted in the window (`downstream_cx_tls_total`).
    pub server_tls: Option<u64>,
}

impl Window {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    fn count(&self) -> f64 {
        self.connections as f64
    }

    /// Completed connections per second.
    pub fn per_second(&self) -> Option<f64> {
        (self.wall_seconds > 0.0).then(|| self.count() / self.wall_seconds)
    }

    /// Completed connections per second of the server's CPU time.
    pub fn per_cpu_second(&self) -> Option<f64> {
        (self.cpu_seconds > 0.0).then(|| self.count() / self.cpu_seconds)
    }

    /// The server's CPU µs per completed connection.
    pub fn cpu_us_per_connection(&self) -> Option<f64> {
        (self.connections > 0).then(|| self.cpu_seconds * 1e6 / self.count())
    }

    /// Share of the window the server was on a CPU (1.0 = one core busy all the time).
    pub fn busy(&self) -> Option<f64> {
        (self.wall_seconds > 0.0).then(|| self.cpu_seconds / self.wall_seconds)
    }
}

/// Both phases of one round.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Round {
    /// Against the STRICT mTLS listener.
    pub mtls: Window,
    /// Against the plaintext listener.
    pub plain: Window,
}

impl Round {
    /// The handshake's own server CPU cost: µs per mTLS connection − µs per plaintext one.
    pub fn tls_cost_us(&self) -> Option<f64> {
        Some(self.mtls.cpu_us_per_connection()? - self.plain.cpu_us_per_connection()?)
    }
}

/// Median (min–max) over rounds of `f`.
fn spread(rounds: &[Round], f: impl Fn(&Round) -> Option<f64>) -> Option<Spread> {
    Spread::of(rounds.iter().filter_map(f))
}

/// Run settings shown with the results.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client threads.
    pub clients: usize,
    /// Warm-up seconds per phase.
    pub warmup: u64,
    /// Measured seconds per phase.
    pub duration: u64,
    /// How processes were pinned, in words.
    pub pinning: String,
}

/// `value` with thousands separators, no decimals.
fn thousands(value: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rounded, non-negative handshake rates far below 2^63"
    )]
    let n = value.max(0.0).round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cell(s: Option<Spread>, decimals: usize) -> String {
    s.map_or_else(|| "n/a".to_owned(), |s| s.display(decimals))
}

/// One line of the main table.
fn phase_row(name: &str, rounds: &[Round], window: impl Fn(&Round) -> Window) -> String {
    let errors: u64 = rounds.iter().map(|r| window(r).errors).sum();
    let errors = if errors == 0 {
        "0".to_owned()
    } else {
        format!("**⚠ {errors}**")
    };
    format!(
        "| {name} | {} | {} | {} | {} | {errors} |\n",
        cell(spread(rounds, |r| window(r).per_second()), 0),
        cell(spread(rounds, |r| window(r).busy().map(|b| b * 100.0)), 0),
        cell(spread(rounds, |r| window(r).cpu_us_per_connection()), 0),
        cell(spread(rounds, |r| window(r).per_cpu_second()), 0),
    )
}

/// rustls alone on this machine, and how the sidecar's mTLS connections compare with it.
pub fn rustls_here(rates: &Rates, rounds: &[Round]) -> String {
    let mut out = format!(
        "rustls alone on this machine (the same certificates and ring provider, client and \
         server in memory on one thread on the proxy CPU, the server's own time, as rustls \
         measures it): **{} full handshakes/s with server authentication only** ({:.2}× the \
         published 8,326/s) and **{}/s with mutual TLS**.",
        thousands(rates.server_auth),
        rates.server_auth / RUSTLS_SERVER_HS,
        thousands(rates.mutual)
    );
    if let Some(whole) = spread(rounds, |r| r.mtls.per_cpu_second()) {
        let _ = write!(
            out,
            " The sidecar's mTLS connections per CPU-second are {:.2}× that mutual-TLS figure.",
            whole.median / rates.mutual
        );
    }
    out
}

/// The headline: full mTLS handshakes per CPU-second, with and without the connection's
/// other costs, beside rustls' figure. `None` before anything was measured.
pub fn headline(rounds: &[Round]) -> Option<String> {
    let whole = spread(rounds, |r| r.mtls.per_cpu_second())?;
    let mut out = format!(
        "**{} full mutual-TLS handshakes per server CPU-second** (median over rounds of the mTLS \
         row: handshake, request and connection together; {:.2}× rustls' 8,326/s).",
        thousands(whole.median),
        whole.median / RUSTLS_SERVER_HS
    );
    if let Some(cost) = spread(rounds, Round::tls_cost_us)
        && cost.median > 0.0
    {
        let alone = 1e6 / cost.median;
        let _ = write!(
            out,
            " The handshake's own share, mTLS − plaintext: {} µs of server CPU per connection, \
             that is **{} full mutual-TLS handshakes per CPU-second** for TLS alone ({:.2}× \
             rustls' figure).",
            cost.display(0),
            thousands(alone),
            alone / RUSTLS_SERVER_HS
        );
    }
    Some(out)
}

/// Per round: connections/s and CPU µs per connection of both phases, and the server's
/// own count of TLS handshakes.
fn rounds_table(rounds: &[Round]) -> String {
    let mut out = String::from(
        "| round | mTLS connections/s | mTLS server CPU µs per connection | TLS handshakes the server counted / connections completed | plaintext connections/s | plaintext server CPU µs per connection |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    let num = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    for (i, r) in rounds.iter().enumerate() {
        let counted = r
            .mtls
            .server_tls
            .map_or_else(|| "n/a".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {counted} / {} | {} | {} |",
            i + 1,
            num(r.mtls.per_second()),
            num(r.mtls.cpu_us_per_connection()),
            r.mtls.connections,
            num(r.plain.per_second()),
            num(r.plain.cpu_us_per_connection()),
        );
    }
    out
}

/// Footnotes: errors, and a server that was not kept busy.
pub fn notes(rounds: &[Round], first_errors: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for e in first_errors {
        notes.push(format!("**WARNING**: failed connections; the first: {e}"));
    }
    if let Some(busy) = spread(rounds, |r| r.mtls.busy())
        && busy.median < 0.9
    {
        notes.push(format!(
            "The server sidecar was busy {:.0} % of the time in the mTLS phase: the client \
             threads (on the other CPU, beside the upstream) could not keep it saturated, so \
             connections/s is below what the server can do. Connections per CPU-second still \
             measures the server's own cost, if a little pessimistically: a server that waits \
             between connections spends more wake-ups on each.",
            busy.median * 100.0
        ));
    }
    notes
}

/// The whole report.
pub fn render(
    env: &[(String, String)],
    settings: &Settings,
    rounds: &[Round],
    rustls: Option<&Rates>,
    first_errors: &[String],
) -> String {
    let mut out = crate::report::heading("meshwork handshake benchmark", env);
    let _ = write!(
        out,
        "\n## Results\n\n\
         Each connection: TCP connect, a full TLS 1.3 handshake with mutual authentication (no \
         session resumption; plaintext row: none), one `GET /` with `Connection: close`, the \
         1 KiB response proxied from the upstream, close. {clients} client threads, one \
         connection at a time each. {warmup} s warm-up, {duration} s measured per phase, {n} \
         round(s); each cell is the median (min–max) over rounds. Server CPU: utime + stime of \
         the sidecar process (/proc/PID/stat). Pinning: {pin}.\n\n\
         | listener | connections/s | server CPU busy % | server CPU µs per connection | connections per server CPU-second | failed connections |\n\
         |---|---:|---:|---:|---:|---|\n",
        clients = settings.clients,
        warmup = settings.warmup,
        duration = settings.duration,
        n = rounds.len(),
        pin = settings.pinning,
    );
    out.push_str(&phase_row(
        "STRICT mTLS (a full handshake per connection)",
        rounds,
        |r| r.mtls,
    ));
    out.push_str(&phase_row("plaintext (same route)", rounds, |r| r.plain));
    if let Some(headline) = headline(rounds) {
        let _ = writeln!(out, "\n{headline}");
    }
    if let Some(rates) = rustls {
        let _ = writeln!(out, "\n{}", rustls_here(rates, rounds));
    }
    let _ = writeln!(
        out,
        "\nFor reference, {RUSTLS_REFERENCE}. The project's target: {TARGET}."
    );
    if rounds.len() > 1 {
        out.push_str("\nPer round:\n\n");
        out.push_str(&rounds_table(rounds));
    }
    out.push_str(&crate::report::notes_section(&notes(rounds, first_errors)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(connections: u64, wall_seconds: f64, cpu_seconds: f64) -> Window {
        Window {
            connections,
            errors: 0,
            wall_seconds,
            cpu_seconds,
            server_tls: None,
        }
    }

    #[test]
    fn window_math() {
        let w = window(30_000, 10.0, 9.5);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(close(w.per_second(), 3000.0));
        assert!(close(w.per_cpu_second(), 30_000.0 / 9.5));
        assert!(close(w.cpu_us_per_connection(), 316.666_666_7));
        assert!(close(w.busy(), 0.95));
        let empty = window(0, 0.0, 0.0);
        for v in [
            empty.per_second(),
            empty.per_cpu_second(),
            empty.cpu_us_per_connection(),
            empty.busy(),
        ] {
            assert_eq!(v, None);
        }
        let round = Round {
            mtls: window(30_000, 10.0, 9.0),
            plain: window(100_000, 10.0, 5.0),
        };
        assert!(close(round.tls_cost_us(), 250.0));
        let no_plain = Round {
            plain: Window::default(),
            ..round
        };
        assert_eq!(no_plain.tls_cost_us(), None);
    }

    #[test]
    fn thousands_separators() {
        let cases = [
            (0.0, "0"),
            (999.4, "999"),
            (999.5, "1,000"),
            (8325.74, "8,326"),
            (1_234_567.0, "1,234,567"),
            (-3.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(thousands(v), want, "{v}");
        }
    }

    /// Three rounds: mTLS 250/300/275 µs per connection, plaintext 50 µs.
    fn rounds() -> Vec<Round> {
        [(40_000, 10.0), (33_333, 10.0), (36_364, 10.0)]
            .into_iter()
            .map(|(n, cpu)| Round {
                mtls: Window {
                    server_tls: Some(n),
                    ..window(n, 10.0, cpu)
                },
                plain: window(200_000, 10.0, 10.0),
            })
            .collect()
    }

    #[test]
    fn headline_text() -> Result<(), String> {
        let text = headline(&rounds()).ok_or("no headline")?;
        for want in [
            "**3,636 full mutual-TLS handshakes per server CPU-second**",
            "0.44× rustls' 8,326/s",
            "mTLS − plaintext: 225 (200–250) µs of server CPU per connection",
            "**4,444 full mutual-TLS handshakes per CPU-second** for TLS alone (0.53× rustls' figure)",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(headline(&[]), None);
        let no_plain: Vec<Round> = rounds()
            .into_iter()
            .map(|r| Round {
                plain: Window::default(),
                ..r
            })
            .collect();
        let text = headline(&no_plain).ok_or("no headline")?;
        assert!(!text.contains("own share"), "{text}");
        Ok(())
    }

    #[test]
    fn render_and_notes() {
        let settings = Settings {
            clients: 4,
            warmup: 2,
            duration: 10,
            pinning: "server on CPU 0".into(),
        };
        let mut rs = rounds();
        rs[0].plain.errors = 2;
        let rates = Rates {
            server_auth: 6000.0,
            mutual: 4000.0,
        };
        let report = render(
            &[("CPUs".into(), "2".into())],
            &settings,
            &rs,
            Some(&rates),
            &[],
        );
        for want in [
            "- CPUs: 2",
            "4 client threads",
            "3 round(s)",
            "| STRICT mTLS (a full handshake per connection) | 3636 (3333–4000) | 100 (100–100) | 275 (250–300) | 3636 (3333–4000) | 0 |",
            "| plaintext (same route) | 20000 (20000–20000) | 100 (100–100) | 50 (50–50) | 20000 (20000–20000) | **⚠ 2** |",
            "8,326 full TLS 1.3 handshakes/s",
            "| 2 | 3333 | 300 | 33333 / 33333 | 20000 | 50 |",
            "at least 6,000 full handshakes/s per core",
            "**6,000 full handshakes/s with server authentication only** (0.72× the published \
             8,326/s) and **4,000/s with mutual TLS**. The sidecar's mTLS connections per \
             CPU-second are 0.91× that mutual-TLS figure.",
        ] {
            assert!(report.contains(want), "missing {want:?} in\n{report}");
        }
        assert!(!report.contains("Notes:"), "{report}");
        let idle: Vec<Round> = rounds()
            .into_iter()
            .map(|r| Round {
                mtls: Window {
                    wall_seconds: 20.0,
                    ..r.mtls
                },
                ..r
            })
            .collect();
        let notes = notes(&idle, &["connect: refused".into()]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(
            notes[0],
            "**WARNING**: failed connections; the first: connect: refused"
        );
        assert!(
            notes[1].starts_with("The server sidecar was busy 50 %"),
            "{notes:?}"
        );
        let single = render(&[], &settings, &rs[..1], None, &[]);
        assert!(!single.contains("Per round"), "{single}");
        assert!(!single.contains("rustls alone"), "{single}");
    }
}
