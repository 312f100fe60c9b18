//! A tiny blocking HTTP/1.1 GET used for readiness checks (`/ready` on the
//! meshwork admin port), a pre-flight request to every target before it is
//! measured, and reading meshwork's `/stats`. Not used for measurements.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Status and body length of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// HTTP status code.
    pub status: u16,
    /// Bytes after the header block.
    pub body_len: usize,
}

/// Status and body text of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status code.
    pub status: u16,
    /// The bytes after the header block, as text (invalid UTF-8 replaced).
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole response.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Probe> {
    let raw = get_raw(addr, path)?;
    parse_response(&raw).with_context(|| format!("malformed HTTP response from {addr}{path}"))
}

/// [`get`], keeping the body; fails unless the status is 200.
pub fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<Page> {
    let raw = get_raw(addr, path)?;
    let page =
        parse_page(&raw).with_context(|| format!("malformed HTTP response from {addr}{path}"))?;
    if page.status != 200 {
        bail!("GET http://{addr}{path} gave status {}", page.status);
    }
    Ok(page)
}

/// The raw bytes of the response to `GET path`.
fn get_raw(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: meshwork-bench\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// Polls `GET path` until it answers 200 or `timeout` passes; `alive` is checked
/// between attempts so a crashed process fails fast.
pub fn wait_for_200(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        let last = match get(addr, path) {
            Ok(p) if p.status == 200 => return Ok(()),
            Ok(p) => format!("status {}", p.status),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("GET http://{addr}{path} not 200 within {timeout:?} (last: {last})");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Parses a raw HTTP/1.x response: status code from the status line, body length as
/// the bytes after the blank line.
fn parse_response(raw: &[u8]) -> Option<Probe> {
    let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..header_end]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Probe {
        status,
        body_len: raw.len() - header_end - 4,
    })
}

/// [`parse_response`] with the body's text.
fn parse_page(raw: &[u8]) -> Option<Page> {
    let probe = parse_response(raw)?;
    let body = &raw[raw.len() - probe.body_len..];
    Some(Page {
        status: probe.status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        type Case = (&'static [u8], Option<(u16, usize)>);
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                Some((200, 2)),
            ),
            (b"HTTP/1.0 503 Service Unavailable\r\n\r\n", Some((503, 0))),
            (b"HTTP/1.1 404\r\n\r\n", Some((404, 0))),
            (b"HTTP/1.1 200 OK\r\n", None),
            (b"SSH-2.0-OpenSSH\r\n\r\n", None),
            (b"HTTP/1.1 abc OK\r\n\r\n", None),
            (b"", None),
        ];
        for (raw, want) in cases {
            let got = parse_response(raw).map(|p| (p.status, p.body_len));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn parses_pages() {
        let cases: &[(&[u8], Option<(u16, &str)>)] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\na: 1\nb: 2\n",
                Some((200, "a: 1\nb: 2\n")),
            ),
            (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", Some((503, ""))),
            (b"HTTP/1.1 200 OK\r\n\r\n\xff", Some((200, "\u{fffd}"))),
            (b"garbage", None),
        ];
        for (raw, want) in cases {
            let got = parse_page(raw);
            let got = got.as_ref().map(|p| (p.status, p.body.as_str()));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }
}
