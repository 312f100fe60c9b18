//! In-process HTTP/1.1 load generator (hyper 1.x low-level client).
//!
//! Two modes:
//! * **open loop** ([`LoadGen::open_loop`]): a fixed global schedule, slot `k` due at
//!   `start + k / rate`; connection `i` of `C` serves slots `i, i+C, i+2C, ...`. A
//!   dispatcher thread (std sleep with 1 ns timer slack, far finer than tokio's 1 ms
//!   timer wheel) releases each slot to its connection when due. A connection still
//!   busy with an earlier slot sends the next one as soon as it is free, and every
//!   latency is measured from the slot's *intended* time, so queueing caused by a slow
//!   target is counted (coordinated-omission correction).
//! * **closed loop** ([`LoadGen::closed_loop`]): every connection sends its next
//!   request as soon as the previous response is read; counts completions.
//!
//! All connection tasks run on a tokio runtime with a single worker thread, pinned
//! to the load generator's CPUs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::sys;
use crate::upstream::BODY_LEN;

/// Highest latency the histograms track (60 s, in µs); larger values saturate.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Extra time after the schedule ends for in-flight requests to finish.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Time to let connections settle between connecting and the first slot.
const START_DELAY: Duration = Duration::from_millis(20);

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Connect,
    Request,
    Status,
    Body,
}

/// Failed requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Connection could not be (re-)established.
    pub connect: u64,
    /// Sending the request or reading the response failed.
    pub request: u64,
    /// The response status was not 200.
    pub status: u64,
    /// The body was not exactly 1024 bytes.
    pub body: u64,
    /// Scheduled requests that never completed (stuck past the end of the run).
    pub unfinished: u64,
}

impl ErrorCounts {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.request + self.status + self.body + self.unfinished
    }

    fn count(&mut self, failure: Failure) {
        match failure {
            Failure::Connect => self.connect += 1,
            Failure::Request => self.request += 1,
            Failure::Status => self.status += 1,
            Failure::Body => self.body += 1,
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.request += other.request;
        self.status += other.status;
        self.body += other.body;
        self.unfinished += other.unfinished;
    }
}

/// Result of a fixed-rate run.
#[derive(Debug)]
pub struct OpenLoopResult {
    /// Latencies (µs, from intended send time) of the successful measured requests.
    pub histogram: Histogram<u64>,
    /// How late (µs) the schedule thread released each measured slot: the load
    /// generator's own timing noise, included in every latency above.
    pub schedule_lag: Histogram<u64>,
    /// Errors over the whole run, warm-up included.
    pub errors: ErrorCounts,
    /// Connections re-opened during the run (0 when keep-alive holds).
    pub reconnects: u64,
}

/// Result of a closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoopResult {
    /// Successful responses completed inside the measured window.
    pub completed: u64,
    /// `completed` divided by the measured seconds.
    pub rps: f64,
    /// Errors over the whole run, warm-up included.
    pub errors: ErrorCounts,
    /// Connections re-opened during the run (0 when keep-alive holds).
    pub reconnects: u64,
}

/// Offset of schedule slot `k` from the start at `rate` requests/s.
pub fn slot_offset(k: u64, rate: u32) -> Duration {
    let nanos = u128::from(k) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Number of slots whose intended time falls within the first `span` of the schedule.
pub fn slots_in(span: Duration, rate: u32) -> u64 {
    let nanos = span.as_nanos() * u128::from(rate);
    u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// The connection (of `connections`) that serves slot `k`.
pub fn connection_of(k: u64, connections: u32) -> usize {
    usize::try_from(k % u64::from(connections.max(1))).unwrap_or(0)
}

/// The slots below `total` served by connection `i` of `connections`.
#[cfg(test)]
fn slots_of_connection(i: u32, connections: u32, total: u64) -> impl Iterator<Item = u64> {
    let step = usize::try_from(connections.max(1)).unwrap_or(1);
    (u64::from(i)..total).step_by(step)
}

/// Latency in whole microseconds.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One keep-alive client connection, re-established when the server closes it.
struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Empty<Bytes>>>,
    /// New connections opened after the first one (server closed keep-alive, or errors).
    reconnects: u64,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the peer closes or the sender is dropped; errors show up on the
            // sender side.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn new(addr: SocketAddr, sender: Option<SendRequest<Empty<Bytes>>>) -> Self {
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Self {
            addr,
            host,
            sender,
            reconnects: 0,
        }
    }

    /// A sender ready for a request, reconnecting if the old connection was closed.
    async fn ready(&mut self) -> Result<&mut SendRequest<Empty<Bytes>>, Failure> {
        if let Some(sender) = &mut self.sender
            && !sender.is_closed()
            && sender.ready().await.is_ok()
        {
            // Re-borrow: the checks above consumed the first borrow.
            return self.sender.as_mut().ok_or(Failure::Connect);
        }
        self.sender = None;
        self.reconnects += 1;
        let sender = Self::connect(self.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        Ok(self.sender.insert(sender))
    }

    /// `GET /`, reading the whole body; checks for 200 and 1024 bytes.
    async fn request(&mut self) -> Result<(), Failure> {
        let host = self.host.clone();
        let sender = self.ready().await?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = hyper::Uri::from_static("/");
        req.headers_mut().insert(HOST, host);
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|_| Failure::Request)?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Request)?
                .to_bytes();
            if status != StatusCode::OK {
                Err(Failure::Status)
            } else if body.len() != BODY_LEN {
                Err(Failure::Body)
            } else {
                Ok(())
            }
        }
        .await;
        if result == Err(Failure::Request) {
            self.sender = None;
        }
        result
    }
}

/// Per-connection tallies of an open-loop run.
struct OpenStats {
    histogram: Histogram<u64>,
    done: u64,
    errors: ErrorCounts,
    reconnects: u64,
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("creating histogram")
}

/// A load generator: a one-worker tokio runtime, optionally pinned.
pub struct LoadGen {
    rt: tokio::runtime::Runtime,
    cpus: Option<Arc<[usize]>>,
}

impl LoadGen {
    /// Builds the runtime; its threads are pinned to `cpus` when given.
    pub fn new(cpus: Option<Vec<usize>>) -> anyhow::Result<Self> {
        let cpus: Option<Arc<[usize]>> = cpus.map(Into::into);
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(1)
            .enable_all()
            .thread_name("loadgen");
        if let Some(cpus) = cpus.clone() {
            builder.on_thread_start(move || {
                let _ = sys::pin_current_thread(&cpus);
            });
        }
        let rt = builder.build().context("building load generator runtime")?;
        Ok(Self { rt, cpus })
    }

    /// Opens `n` connections to `addr`.
    async fn connect_all(addr: SocketAddr, n: u32) -> anyhow::Result<Vec<Conn>> {
        let mut conns = Vec::new();
        for _ in 0..n {
            let sender = Conn::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            conns.push(Conn::new(addr, Some(sender)));
        }
        Ok(conns)
    }

    /// Fixed-rate, coordinated-omission-corrected run: `rate` req/s over `connections`
    /// connections for `warmup + duration`; only slots due after the warm-up are recorded.
    pub fn open_loop(
        &self,
        addr: SocketAddr,
        rate: u32,
        connections: u32,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<OpenLoopResult> {
        let total_slots = slots_in(warmup + duration, rate);
        let warmup_slots = slots_in(warmup, rate);
        self.rt.block_on(async {
            let conns = Self::connect_all(addr, connections).await?;
            let start = Instant::now() + START_DELAY;
            let deadline = start + warmup + duration + DRAIN_GRACE;
            let mut senders = Vec::new();
            let mut tasks = Vec::new();
            for mut conn in conns {
                let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
                senders.push(tx);
                tasks.push(tokio::spawn(async move {
                    let mut stats = OpenStats {
                        histogram: new_histogram()?,
                        done: 0,
                        errors: ErrorCounts::default(),
                        reconnects: 0,
                    };
                    let deadline = tokio::time::Instant::from_std(deadline);
                    while let Ok(Some(k)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                        let intended = start + slot_offset(k, rate);
                        let Ok(outcome) = tokio::time::timeout_at(deadline, conn.request()).await
                        else {
                            break;
                        };
                        let latency = Instant::now().saturating_duration_since(intended);
                        stats.done += 1;
                        match outcome {
                            Ok(()) if k >= warmup_slots => {
                                stats.histogram.saturating_record(micros(latency).max(1));
                            }
                            Ok(()) => {}
                            Err(failure) => stats.errors.count(failure),
                        }
                    }
                    stats.reconnects = conn.reconnects;
                    anyhow::Ok(stats)
                }));
            }
            let cpus = self.cpus.clone();
            let dispatcher = thread::Builder::new()
                .name("loadgen-schedule".into())
                .spawn(move || -> anyhow::Result<Histogram<u64>> {
                    if let Some(cpus) = cpus {
                        let _ = sys::pin_current_thread(&cpus);
                    }
                    sys::tighten_timer_slack();
                    let mut lag = new_histogram()?;
                    for k in 0..total_slots {
                        let due = start + slot_offset(k, rate);
                        let now = Instant::now();
                        if due > now {
                            thread::sleep(due - now);
                        }
                        // A closed channel means the connection gave up at the deadline.
                        let _ = senders[connection_of(k, connections)].send(k);
                        if k >= warmup_slots {
                            lag.saturating_record(micros(
                                Instant::now().saturating_duration_since(due),
                            ));
                        }
                    }
                    Ok(lag)
                })
                .context("spawning the schedule thread")?;

            let mut histogram = new_histogram()?;
            let mut errors = ErrorCounts::default();
            let mut done = 0;
            let mut reconnects = 0;
            for task in tasks {
                let stats = task.await.context("load task panicked")??;
                histogram
                    .add(&stats.histogram)
                    .context("merging histograms")?;
                errors.merge(&stats.errors);
                done += stats.done;
                reconnects += stats.reconnects;
            }
            let schedule_lag = tokio::task::spawn_blocking(move || dispatcher.join())
                .await
                .context("joining the schedule thread")?
                .map_err(|_| anyhow::anyhow!("schedule thread panicked"))??;
            errors.unfinished = total_slots.saturating_sub(done);
            Ok(OpenLoopResult {
                histogram,
                schedule_lag,
                errors,
                reconnects,
            })
        })
    }

    /// Closed-loop run: `connections` connections each send back-to-back for
    /// `warmup + duration`; completions inside the last `duration` are counted.
    pub fn closed_loop(
        &self,
        addr: SocketAddr,
        connections: u32,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<ClosedLoopResult> {
        self.rt.block_on(async {
            let conns = Self::connect_all(addr, connections).await?;
            let start = Instant::now();
            let measure_from = start + warmup;
            let end = measure_from + duration;
            let mut tasks = Vec::new();
            for mut conn in conns {
                tasks.push(tokio::spawn(async move {
                    let mut completed = 0u64;
                    let mut errors = ErrorCounts::default();
                    let hard_stop = tokio::time::Instant::from_std(end + DRAIN_GRACE);
                    while Instant::now() < end {
                        match tokio::time::timeout_at(hard_stop, conn.request()).await {
                            Ok(Ok(())) => {
                                let now = Instant::now();
                                if now >= measure_from && now < end {
                                    completed += 1;
                                }
                            }
                            Ok(Err(failure)) => {
                                errors.count(failure);
                                if failure == Failure::Connect {
                                    // Don't spin on a refusing port.
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                            Err(_) => {
                                errors.unfinished += 1;
                                break;
                            }
                        }
                    }
                    (completed, errors, conn.reconnects)
                }));
            }
            let mut completed = 0;
            let mut errors = ErrorCounts::default();
            let mut reconnects = 0;
            for task in tasks {
                let (c, e, r) = task.await.context("load task panicked")?;
                completed += c;
                errors.merge(&e);
                reconnects += r;
            }
            #[expect(
                clippy::cast_precision_loss,
                reason = "request counts are far below 2^52"
            )]
            let rps = completed as f64 / duration.as_secs_f64();
            Ok(ClosedLoopResult {
                completed,
                rps,
                errors,
                reconnects,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_offsets() {
        let cases: &[(u64, u32, Duration)] = &[
            (0, 2000, Duration::ZERO),
            (1, 2000, Duration::from_micros(500)),
            (2000, 2000, Duration::from_secs(1)),
            (3, 3, Duration::from_secs(1)),
            (1, 3, Duration::from_nanos(333_333_333)),
            (2, 3, Duration::from_nanos(666_666_666)),
            (7, 1, Duration::from_secs(7)),
            (1_000_000, 1_000_000, Duration::from_secs(1)),
        ];
        for &(k, rate, want) in cases {
            assert_eq!(slot_offset(k, rate), want, "slot {k} at {rate}/s");
        }
    }

    #[test]
    fn slot_counts() {
        let cases: &[(Duration, u32, u64)] = &[
            (Duration::ZERO, 2000, 0),
            (Duration::from_secs(2), 2000, 4000),
            (Duration::from_secs(12), 2000, 24_000),
            (Duration::from_millis(1500), 3, 5),
            (Duration::from_secs(1), 1, 1),
        ];
        for &(span, rate, want) in cases {
            assert_eq!(slots_in(span, rate), want, "{span:?} at {rate}/s");
            // Every counted slot is due before the end of the span; the next one is not.
            if want > 0 {
                assert!(slot_offset(want - 1, rate) < span);
            }
            assert!(slot_offset(want, rate) >= span);
        }
    }

    #[test]
    fn slots_are_dealt_round_robin() {
        let cases: &[(u32, u32, u64, &[u64])] = &[
            (0, 4, 10, &[0, 4, 8]),
            (1, 4, 10, &[1, 5, 9]),
            (3, 4, 10, &[3, 7]),
            (0, 1, 3, &[0, 1, 2]),
            (5, 16, 5, &[]),
        ];
        for &(i, conns, total, want) in cases {
            let got: Vec<u64> = slots_of_connection(i, conns, total).collect();
            assert_eq!(got, want, "connection {i} of {conns}");
            for k in got {
                assert_eq!(connection_of(k, conns), i as usize);
            }
        }
    }

    #[test]
    fn every_slot_has_exactly_one_connection() {
        let conns = 16;
        let total = 1000;
        let mut seen = vec![0u32; total as usize];
        for i in 0..conns {
            for k in slots_of_connection(i, conns, total) {
                seen[k as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    /// End to end over loopback against the real upstream (in a background thread).
    #[test]
    fn drives_the_upstream() -> anyhow::Result<()> {
        let port = crate::process::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        thread::spawn(move || crate::upstream::serve(addr));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "upstream did not start");
            thread::sleep(Duration::from_millis(10));
        }
        let lg = LoadGen::new(None)?;
        let open = lg.open_loop(
            addr,
            500,
            4,
            Duration::from_millis(200),
            Duration::from_millis(600),
        )?;
        assert_eq!(open.errors, ErrorCounts::default());
        assert_eq!(open.histogram.len(), 300);
        assert_eq!(open.schedule_lag.len(), 300);
        assert_eq!(open.reconnects, 0);
        let closed = lg.closed_loop(addr, 4, Duration::ZERO, Duration::from_millis(300))?;
        assert_eq!(closed.errors, ErrorCounts::default());
        assert!(closed.completed > 0 && closed.rps > 0.0);
        Ok(())
    }

    #[test]
    fn error_totals() {
        let mut e = ErrorCounts::default();
        for f in [
            Failure::Connect,
            Failure::Request,
            Failure::Status,
            Failure::Status,
            Failure::Body,
        ] {
            e.count(f);
        }
        e.unfinished = 3;
        assert_eq!(e.total(), 8);
        let mut sum = ErrorCounts::default();
        sum.merge(&e);
        sum.merge(&e);
        assert_eq!(sum.total(), 16);
        assert_eq!(sum.status, 4);
    }
}
