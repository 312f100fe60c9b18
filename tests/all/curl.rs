//! The real `curl` binary against the proxy: HTTP/1.1, HTTP/2 with prior knowledge, a chunked upload, a dead upstream
//! and an oversized header block. Skipped (with a message) when `curl` is not installed.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use meshwork_tests::{
    TestProxy, closed_port, cluster, full, named_upstream, proxy_yaml, proxy_yaml_with, route,
    upstream,
};

/// Longest a single curl run may take.
const CURL_TIMEOUT_SECS: &str = "20";

/// Whether `curl` can be run; prints why a test is skipped when it cannot.
#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so in the test output"
)]
fn have_curl() -> bool {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!("SKIPPED: `curl` is not on PATH");
            false
        }
    }
}

/// Runs curl with `args` (plus a time limit) off the async workers; panics if curl itself reports an error.
async fn curl(args: Vec<String>) -> Output {
    let shown = args
        .iter()
        .map(|a| {
            if a.len() > 80 {
                format!("{}…", &a[..80])
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .arg("--max-time")
            .arg(CURL_TIMEOUT_SECS)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl {shown:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Splits `curl -i` output into the final response head and the body (informational `1xx` heads are skipped).
fn split_response(stdout: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let mut rest = text.as_str();
    loop {
        let (head, body) = rest
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {text:?}"));
        let informational = head
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('1'));
        if !informational {
            return (head.to_owned(), body.to_owned());
        }
        rest = body;
    }
}

fn status_line(head: &str) -> &str {
    head.lines().next().unwrap_or("")
}

/// A temp file for the upload, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("meshwork-e2e-{}-{name}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http1_and_http2_prior_knowledge() {
    if !have_curl() {
        return;
    }
    let up = named_upstream("hello from upstream").await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "up"), &cluster("up", &[up], "")));

    let out = curl(args(&["-sS", "-i", &url(tp.addr, "/x")])).await;
    let (head, body) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello from upstream");

    let out = curl(args(&[
        "-sS",
        "-i",
        "--http2-prior-knowledge",
        &url(tp.addr, "/x"),
    ]))
    .await;
    let (head, body) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, "hello from upstream");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_chunked_upload_arrives_whole() {
    if !have_curl() {
        return;
    }
    // Counts the request body as it streams in and answers with the count.
    let up = upstream(|req: Request<Incoming>| async move {
        let mut body = req.into_body();
        let mut n = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                n += data.len();
            }
        }
        Response::new(full(n.to_string()))
    })
    .await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "up"), &cluster("up", &[up], "")));

    // ~1 MB, deliberately not a multiple of any buffer or chunk size.
    let size = 1_000_003usize;
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let file = TempFile::new("chunked-upload", &data);
    let out = curl(vec![
        "-sS".into(),
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        format!("@{}", file.path().display()),
        "-w".into(),
        "\n%{http_code}".into(),
        url(tp.addr, "/upload"),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("{text:?}"));
    assert_eq!(code, "200", "{text:?}");
    assert_eq!(body, size.to_string());
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_dead_upstream_gets_503() {
    if !have_curl() {
        return;
    }
    let dead = closed_port().await;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "dead"),
        &cluster("dead", &[dead], ""),
    ));
    let out = curl(args(&["-sS", "-i", &url(tp.addr, "/x")])).await;
    let (head, body) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.contains("upstream connect error"), "{body:?}");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_oversized_headers_get_431() {
    if !have_curl() {
        return;
    }
    let up = named_upstream("small headers are fine").await;
    let yaml = proxy_yaml_with(
        &["max_request_headers_kb: 8"],
        &route("/", "up"),
        &cluster("up", &[up], ""),
    );
    let mut tp = TestProxy::start(&yaml);

    // A header block well under the limit passes.
    let out = curl(args(&[
        "-sS",
        "-i",
        "-H",
        &format!("X-Small: {}", "a".repeat(1024)),
        &url(tp.addr, "/x"),
    ]))
    .await;
    let (head, body) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "small headers are fine");

    // 100 KiB of header value against an 8 KiB limit.
    let big = format!("X-Big: {}", "a".repeat(100 * 1024));
    let out = curl(args(&["-sS", "-i", "-H", &big, &url(tp.addr, "/x")])).await;
    let (head, _) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/1.1 431"), "{head}");

    // Over HTTP/2 a block somewhat over the limit gets a 431 too. (A far larger one, such as the 100 KiB above, makes
    // the h2 library refuse the stream or close the connection with ENHANCE_YOUR_CALM instead, before any 431.)
    let over = format!("X-Big: {}", "a".repeat(12 * 1024));
    let out = curl(args(&[
        "-sS",
        "-i",
        "--http2-prior-knowledge",
        "-H",
        &over,
        &url(tp.addr, "/x"),
    ]))
    .await;
    let (head, _) = split_response(&out.stdout);
    assert!(status_line(&head).starts_with("HTTP/2 431"), "{head}");
    tp.shutdown().await;
}
