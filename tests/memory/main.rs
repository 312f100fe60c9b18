//! 100 MiB bodies stream through the proxy with bounded memory.
//!
//! A counting global allocator tracks the heap of the whole process: the proxy's workers, the upstream and the client.
//! Each test resets the peak after a warm-up and then moves 100 MiB through the proxy (upload over HTTP/1.1 and
//! HTTP/2, download over HTTP/1.1 and HTTP/2); the heap may not grow by more than [`LIMIT`] during the transfer, where
//! a proxy that collected bodies would need more than 100 MiB. The tests take turns ([`SERIAL`]) so that one transfer's
//! buffers never count against another's peak.

#![allow(
    unsafe_code,
    reason = "a counting #[global_allocator] must implement the unsafe GlobalAlloc trait"
)]
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "tests: a panic is a failure, and the peaks are the output"
)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use meshwork_tests::{
    Body, TestProxy, body_string, cluster, empty, full, h1_conn, h2_conn, proxy_yaml, route,
    upstream,
};

/// Bytes in each transfer.
const TOTAL: usize = 100 * 1024 * 1024;
/// Size of each body chunk the client or upstream generates.
const CHUNK: usize = 64 * 1024;
/// Largest heap growth allowed during one transfer.
const LIMIT: usize = 32 * 1024 * 1024;
/// Longest one transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// The chunk every generated body repeats; static, so producing a chunk allocates nothing and everything the
/// allocator sees during a transfer is the proxy's (and hyper's) buffering.
static DATA: [u8; CHUNK] = {
    let mut d = [0u8; CHUNK];
    let mut i = 0;
    while i < CHUNK {
        d[i] = (i % 251) as u8;
        i += 1;
    }
    d
};

/// Heap bytes currently allocated by the whole process.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// The highest [`CURRENT`] since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Wraps the system allocator and counts live bytes.
struct Counting;

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(by: usize) {
    CURRENT.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the arguments it was given, so the allocator contract is exactly
// `System`'s; the counting around the calls never touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout` and that `new_size` is valid.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts a new measurement: the peak becomes the current level, which is returned as the baseline.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::SeqCst);
    PEAK.store(now, Ordering::SeqCst);
    now
}

/// How far the heap rose above `baseline` since [`reset_peak`].
fn peak_growth(baseline: usize) -> usize {
    PEAK.load(Ordering::SeqCst).saturating_sub(baseline)
}

/// One transfer at a time, so each peak belongs to one transfer.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `bytes` of body, produced chunk by chunk as the consumer asks for them.
fn generated(bytes: usize) -> Body {
    let chunks = bytes.div_ceil(CHUNK);
    let frames = stream::iter((0..chunks).map(move |i| {
        let len = CHUNK.min(bytes - i * CHUNK);
        Ok(hyper::body::Frame::data(Bytes::from_static(&DATA[..len])))
    }));
    StreamBody::new(frames).boxed()
}

/// Reads a body to the end, counting its bytes and dropping each chunk at once.
async fn count_body(mut body: Incoming) -> usize {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len();
        }
    }
    n
}

/// The upstream: `POST /up…` answers with the byte count of the streamed request body; `GET /down?BYTES` answers
/// with a generated body of that many bytes.
async fn handler(req: Request<Incoming>) -> Response<Body> {
    if req.uri().path().starts_with("/down") {
        let bytes = req.uri().query().and_then(|q| q.parse().ok()).unwrap_or(0);
        return Response::new(generated(bytes));
    }
    Response::new(full(count_body(req.into_body()).await.to_string()))
}

/// A proxy in front of the upstream; the cluster speaks whatever protocol the client used.
async fn setup() -> TestProxy {
    let up = upstream(handler).await;
    TestProxy::start(&proxy_yaml(
        &route("/", "up"),
        &cluster("up", &[up], "    protocol: downstream\n"),
    ))
}

/// Client connections of either protocol, with requests addressed as that protocol needs.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>, String),
}

impl Client {
    async fn h1(tp: &TestProxy) -> Client {
        Client::H1(h1_conn(tp.addr).await)
    }

    async fn h2(tp: &TestProxy) -> Client {
        Client::H2(h2_conn(tp.addr).await, format!("http://{}", tp.addr))
    }

    async fn send(&mut self, method: &str, path: &str, body: Body) -> Response<Incoming> {
        match self {
            Client::H1(tx) => {
                // An HTTP/1.1 connection takes the next request only once the previous exchange is finished.
                tx.ready().await.unwrap();
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "mem.local")
                    .body(body)
                    .unwrap();
                tx.send_request(req).await.unwrap()
            }
            Client::H2(tx, base) => {
                tx.ready().await.unwrap();
                let req = Request::builder()
                    .method(method)
                    .uri(format!("{base}{path}"))
                    .body(body)
                    .unwrap();
                tx.send_request(req).await.unwrap()
            }
        }
    }

    /// Uploads `bytes` and returns the count the upstream reports.
    async fn upload(&mut self, bytes: usize) -> usize {
        let resp = self.send("POST", "/up", generated(bytes)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        body_string(resp).await.parse().unwrap()
    }

    /// Downloads `bytes` and returns how many arrived.
    async fn download(&mut self, bytes: usize) -> usize {
        let resp = self.send("GET", &format!("/down?{bytes}"), empty()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        count_body(resp.into_body()).await
    }
}

/// Warms the connection up with small transfers both ways, then measures `transfer` moving [`TOTAL`] bytes.
async fn measure(name: &str, mut client: Client, upload: bool) {
    assert_eq!(client.upload(3 * CHUNK + 1).await, 3 * CHUNK + 1);
    assert_eq!(client.download(3 * CHUNK + 1).await, 3 * CHUNK + 1);

    let baseline = reset_peak();
    let started = Instant::now();
    let moved = tokio::time::timeout(TRANSFER_TIMEOUT, async {
        if upload {
            client.upload(TOTAL).await
        } else {
            client.download(TOTAL).await
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: 100 MiB did not get through within {TRANSFER_TIMEOUT:?}"));
    let growth = peak_growth(baseline);
    let took = started.elapsed();
    println!(
        "{name}: moved {} MiB in {took:.2?} ({:.0} MiB/s); peak heap growth {:.2} MiB (limit {} MiB, baseline {:.2} MiB)",
        moved / (1024 * 1024),
        moved as f64 / (1024.0 * 1024.0) / took.as_secs_f64(),
        growth as f64 / (1024.0 * 1024.0),
        LIMIT / (1024 * 1024),
        baseline as f64 / (1024.0 * 1024.0),
    );
    assert_eq!(moved, TOTAL, "{name}: every byte must arrive");
    assert!(
        growth < LIMIT,
        "{name}: the heap grew by {growth} bytes while streaming {TOTAL} bytes; the proxy is buffering bodies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_http1_streams_in_bounded_memory() {
    let _turn = SERIAL.lock().await;
    let mut tp = setup().await;
    measure("upload over HTTP/1.1", Client::h1(&tp).await, true).await;
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_http2_streams_in_bounded_memory() {
    let _turn = SERIAL.lock().await;
    let mut tp = setup().await;
    measure("upload over HTTP/2", Client::h2(&tp).await, true).await;
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_over_http1_streams_in_bounded_memory() {
    let _turn = SERIAL.lock().await;
    let mut tp = setup().await;
    measure("download over HTTP/1.1", Client::h1(&tp).await, false).await;
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_over_http2_streams_in_bounded_memory() {
    let _turn = SERIAL.lock().await;
    let mut tp = setup().await;
    measure("download over HTTP/2", Client::h2(&tp).await, false).await;
    tp.shutdown().await;
}
