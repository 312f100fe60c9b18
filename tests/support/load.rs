//! Steady traffic for tests that change the mesh under load: a few clients, each sending `GET /` with a `Host`
//! header at a steady pace on its own keep-alive HTTP/1.1 connection, recording every answer and every error with
//! the time it came. A connection that fails is reopened (and the failure recorded), so one error never stops the load.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use http::Request;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::watch, task::JoinHandle};

use crate::{Body, empty};

/// Longest a single request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One request's fate.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// When the answer (or the error) came.
    pub at: Instant,
    /// Status and body, or what went wrong.
    pub answer: Result<(u16, String), String>,
}

impl Outcome {
    /// Whether this is a `200` with `body`.
    pub fn is_ok_from(&self, body: &str) -> bool {
        matches!(&self.answer, Ok((200, b)) if b == body)
    }

    /// Whether this is anything but a `200`.
    pub fn failed(&self) -> bool {
        !matches!(self.answer, Ok((200, _)))
    }
}

type Log = Arc<Mutex<Vec<Outcome>>>;

/// Running clients.
pub struct Load {
    log: Log,
    stop: watch::Sender<bool>,
    clients: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Load {
    /// Starts `clients` clients sending `GET /` with `Host: host` to `addr`, each at most one request per `pace`
    /// (and never more than one at a time).
    pub fn start(addr: SocketAddr, host: &str, clients: usize, pace: Duration) -> Load {
        let log = Log::default();
        let (stop, stopped) = watch::channel(false);
        let clients = (0..clients)
            .map(|_| {
                tokio::spawn(client(
                    addr,
                    host.to_string(),
                    pace,
                    log.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Load {
            log,
            stop,
            clients,
            started: Instant::now(),
        }
    }

    /// Runs `f` over the outcomes so far, in the order they came.
    pub fn with<R>(&self, f: impl FnOnce(&[Outcome]) -> R) -> R {
        f(&self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until `check` holds over the outcomes so far (polled every 5 ms); panics naming `what` after
    /// `within`, with a summary of the outcomes.
    pub async fn until(&self, within: Duration, what: &str, check: impl Fn(&[Outcome]) -> bool) {
        let deadline = Instant::now() + within;
        while !self.with(&check) {
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for: {what}; {}",
                self.with(summary)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients and returns everything they saw.
    pub async fn stop(self) -> Report {
        self.stop.send_replace(true);
        for c in self.clients {
            c.await.unwrap();
        }
        let elapsed = self.started.elapsed();
        let outcomes =
            std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner));
        Report { outcomes, elapsed }
    }
}

/// What a finished load saw.
pub struct Report {
    /// Every outcome, in the order they came.
    pub outcomes: Vec<Outcome>,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl Report {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.outcomes.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Panics listing the failures (non-`200` answers and errors) if there is any.
    pub fn assert_no_failures(&self) {
        let failures: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.failed()).collect();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed, the first: {:?}",
            failures.len(),
            self.outcomes.len(),
            &failures[..failures.len().min(5)]
        );
    }

    /// `N requests in S s (R/s), F failed`.
    pub fn describe(&self) -> String {
        format!(
            "{} requests in {:.2} s ({:.0}/s), {} failed",
            self.outcomes.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.outcomes.iter().filter(|o| o.failed()).count()
        )
    }
}

/// When the first `200` with `body` came after `since`.
pub fn first_from(outcomes: &[Outcome], since: Instant, body: &str) -> Option<Instant> {
    outcomes
        .iter()
        .find(|o| o.at >= since && o.is_ok_from(body))
        .map(|o| o.at)
}

/// Whether the last `n` outcomes (and at least `n` came) are all `200` with `body`.
pub fn last_all_from(outcomes: &[Outcome], n: usize, body: &str) -> bool {
    outcomes.len() >= n
        && outcomes[outcomes.len() - n..]
            .iter()
            .all(|o| o.is_ok_from(body))
}

/// Counts of outcomes by answer, for failure messages.
fn summary(outcomes: &[Outcome]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for o in outcomes {
        let key = match &o.answer {
            Ok((status, body)) => format!("{status} {body}"),
            Err(e) => format!("error: {e}"),
        };
        *counts.entry(key).or_default() += 1;
    }
    format!("{} outcomes: {counts:?}", outcomes.len())
}

async fn client(
    addr: SocketAddr,
    host: String,
    pace: Duration,
    log: Log,
    stopped: watch::Receiver<bool>,
) {
    let mut conn = None;
    let mut ticks = tokio::time::interval(pace);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stopped.borrow() {
        ticks.tick().await;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut conn, addr, &host))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        let failed = answer.is_err();
        if failed {
            conn = None;
        }
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Outcome {
                at: Instant::now(),
                answer,
            });
        if failed {
            // Not to spin on a refused port; the failure is already recorded.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One request on the client's connection, opening it first if needed.
async fn exchange(
    conn: &mut Option<hyper::client::conn::http1::SendRequest<Body>>,
    addr: SocketAddr,
    host: &str,
) -> Result<(u16, String), String> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (tx, c) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(c);
        *conn = Some(tx);
    }
    let tx = conn.as_mut().expect("opened above");
    tx.ready().await.map_err(|e| format!("connection: {e}"))?;
    let req = Request::get("/")
        .header("host", host)
        .body(empty())
        .unwrap();
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
