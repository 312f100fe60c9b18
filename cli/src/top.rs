//! `meshwork top`: a live view of a running mesh from its sidecars' metrics. Every interval it scrapes each sidecar's
//! `/stats/prometheus`, and shows per (source workload → destination service) pair the request rate, error share and
//! p50/p99 latency over the last interval ([`view`]), redrawn in place with ANSI escapes. `--once` prints one table
//! after two scrapes and exits.
//!
//! The sidecars are the `--proxy` admin addresses given, plus those the control plane lists at its admin port's
//! `/sidecars` (`--control-admin`), which come from the `ADMIN_ADDRESS` each sidecar sends in its xDS node metadata.

mod exposition;
mod view;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::admin_http;

/// Arguments of `meshwork top`.
#[derive(clap::Args)]
pub struct Args {
    /// A sidecar's admin address (repeat for several).
    #[arg(long = "proxy", value_name = "ADMIN_ADDR")]
    proxies: Vec<SocketAddr>,
    /// The control plane's admin address: scrape every sidecar it lists at `/sidecars`.
    #[arg(long, value_name = "ADDR")]
    control_admin: Option<SocketAddr>,
    /// Seconds between scrapes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Print one table (after two scrapes, one interval apart) and exit.
    #[arg(long)]
    once: bool,
}

/// Runs the view until interrupted (or once).
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.interval > 0.0 && args.interval.is_finite(),
        "--interval must be a positive number of seconds"
    );
    anyhow::ensure!(
        !args.proxies.is_empty() || args.control_admin.is_some(),
        "give the sidecars to watch: --proxy ADMIN_ADDR (repeatable) or --control-admin ADDR"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(watch(args))
}

async fn watch(args: Args) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(args.interval);
    let mut before = scrape_all(&args).await?;
    loop {
        tokio::time::sleep(interval.saturating_sub(before.1.elapsed())).await;
        let now = scrape_all(&args).await?;
        let seconds = now.1.duration_since(before.1).as_secs_f64();
        let table = view::table(&view::rows(&before.0, &now.0, seconds));
        let frame = if args.once {
            table
        } else {
            // Clear the screen, cursor home, then the frame.
            format!(
                "\x1b[2J\x1b[Hmeshwork top: {} sidecars, every {:.1}s (Ctrl-C to quit)\n\n{table}",
                now.2, args.interval
            )
        };
        #[expect(clippy::print_stdout, reason = "the CLI's own output")]
        {
            print!("{frame}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
        if args.once {
            return Ok(());
        }
        before = now;
    }
}

/// One scrape of every sidecar: the samples, when it was taken, how many sidecars answered.
async fn scrape_all(args: &Args) -> anyhow::Result<(view::Scrape, Instant, usize)> {
    let mut targets = args.proxies.clone();
    if let Some(control) = args.control_admin {
        targets.extend(sidecars(control).await?);
    }
    targets.sort();
    targets.dedup();
    let taken = Instant::now();
    let mut scrape = view::Scrape::default();
    let mut answered = 0;
    for addr in &targets {
        let text = match admin_http::get(*addr, "/stats/prometheus", "the sidecar's admin port")
            .await
        {
            Ok(t) => t,
            // A sidecar listed by the control plane may be gone by now; one given by hand must answer.
            Err(e) if !args.proxies.contains(addr) => {
                tracing::warn!(sidecar = %addr, error = %e, "skipping a sidecar that does not answer");
                continue;
            }
            Err(e) => return Err(e),
        };
        let samples = exposition::parse(&text, |n| n == view::REQUESTS || n == view::BUCKETS)
            .with_context(|| format!("{addr}/stats/prometheus"))?;
        scrape.add(&addr.to_string(), samples);
        answered += 1;
    }
    Ok((scrape, taken, answered))
}

/// The admin addresses of the sidecars the control plane at `control` knows.
async fn sidecars(control: SocketAddr) -> anyhow::Result<Vec<SocketAddr>> {
    let body = admin_http::get(control, "/sidecars", "the control plane's admin port").await?;
    let doc: serde_json::Value = serde_json::from_str(&body).context("/sidecars is not JSON")?;
    Ok(admin_addresses(&doc))
}

/// The admin address of every sidecar in a `/sidecars` document (`{"sidecars": [...]}` as the control plane serves it,
/// or a bare list), from each entry's `admin` (or `admin_address`); sidecars without one (their proxy did not send
/// `ADMIN_ADDRESS`) are left out.
fn admin_addresses(doc: &serde_json::Value) -> Vec<SocketAddr> {
    let list = doc
        .as_array()
        .or_else(|| doc["sidecars"].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter_map(|s| {
            s["admin"]
                .as_str()
                .or_else(|| s["admin_address"].as_str())?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sidecar_list_table() {
        let a: SocketAddr = "127.0.0.1:15000".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:15000".parse().expect("addr");
        let cases = [
            (
                json!([{"node": "a.default", "admin_address": "127.0.0.1:15000"}]),
                vec![a],
            ),
            (
                json!({"sidecars": [
                    {"node": "a.default", "admin_address": "127.0.0.1:15000"},
                    {"node": "b.default", "admin": null},
                    {"node": "c.default", "admin_address": "not an address"},
                    {"node": "d.default", "admin_address": "10.0.0.2:15000"},
                ]}),
                vec![a, b],
            ),
            (
                json!({"sidecars": [{"node": "a.default", "admin": "127.0.0.1:15000"}]}),
                vec![a],
            ),
            (json!({}), vec![]),
        ];
        for (doc, want) in cases {
            assert_eq!(admin_addresses(&doc), want, "{doc}");
        }
    }
}
