//! Header, trailer and metadata maps: `proxy_{get,set}_header_map_pairs` and `proxy_{get,add,replace,remove}_header_map_value`.
//!
//! Filters see HTTP/2-style pseudo-headers whatever the protocol: `:method`, `:path`, `:authority` and `:scheme` on
//! requests and `:status` on responses. They map onto the request line and the `Host` header, so changing `:path` or
//! `:authority` changes what goes upstream.

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header, uri::PathAndQuery,
};
use wasmtime::{Caller, Linker};

use super::{
    super::{
        state::VmState,
        stream::{HttpStream, ResponseHead},
        wire,
    },
    mem::{self, Ret, status},
};

const REQUEST_HEADERS: i32 = 0;
const REQUEST_TRAILERS: i32 = 1;
const RESPONSE_HEADERS: i32 = 2;
const RESPONSE_TRAILERS: i32 = 3;
const GRPC_INITIAL: i32 = 4;
const GRPC_TRAILING: i32 = 5;
const CALL_HEADERS: i32 = 6;
const CALL_TRAILERS: i32 = 7;

/// Registers the map hostcalls.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_header_map_pairs", get_pairs)?;
    l.func_wrap("env", "proxy_set_header_map_pairs", set_pairs)?;
    l.func_wrap("env", "proxy_get_header_map_value", get_value)?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |c: Caller<'_, VmState>, t, kp, kl, vp, vl| {
            mutate(c, t, kp, kl, vp, vl, "proxy_add_header_map_value", Op::Add)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |c: Caller<'_, VmState>, t, kp, kl, vp, vl| {
            mutate(
                c,
                t,
                kp,
                kl,
                vp,
                vl,
                "proxy_replace_header_map_value",
                Op::Replace,
            )
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |c: Caller<'_, VmState>, t, kp, kl| {
            mutate(
                c,
                t,
                kp,
                kl,
                0,
                0,
                "proxy_remove_header_map_value",
                Op::Remove,
            )
        },
    )?;
    l.func_wrap("env", "proxy_get_header_map_size", get_size)?;
    Ok(())
}

/// Collects the pairs of map `t` as the module sees them.
fn pairs<'a>(
    state: &'a VmState,
    s: Option<&'a HttpStream>,
    t: i32,
    out: &mut Vec<(&'a [u8], &'a [u8])>,
) -> bool {
    let plain = |m: &'a HeaderMap, out: &mut Vec<(&'a [u8], &'a [u8])>| {
        out.extend(m.iter().map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())));
    };
    match (t, s) {
        (REQUEST_HEADERS, Some(s)) => {
            let r = &s.request;
            if let Some(a) = r.headers.get(header::HOST) {
                out.push((b":authority", a.as_bytes()));
            }
            out.push((
                b":path",
                r.uri
                    .path_and_query()
                    .map_or(b"/", |p| p.as_str().as_bytes()),
            ));
            out.push((b":method", r.method.as_str().as_bytes()));
            out.push((b":scheme", r.uri.scheme_str().unwrap_or("http").as_bytes()));
            out.extend(
                r.headers
                    .iter()
                    .filter(|(k, _)| *k != header::HOST)
                    .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            );
        }
        (RESPONSE_HEADERS, Some(s)) => match &s.response {
            Some(r) => {
                out.push((b":status", r.status.as_str().as_bytes()));
                plain(&r.headers, out);
            }
            None => return false,
        },
        (REQUEST_TRAILERS, Some(s)) => match &s.request_trailers {
            Some(m) => plain(m, out),
            None => return false,
        },
        (RESPONSE_TRAILERS, Some(s)) => match &s.response_trailers {
            Some(m) => plain(m, out),
            None => return false,
        },
        (CALL_HEADERS | GRPC_INITIAL, _) => match &state.call {
            Some(c) => out.extend(c.headers.iter().map(|(k, v)| (&k[..], &v[..]))),
            None => return false,
        },
        (CALL_TRAILERS | GRPC_TRAILING, _) => match &state.call {
            Some(c) => out.extend(c.trailers.iter().map(|(k, v)| (&k[..], &v[..]))),
            None => return false,
        },
        _ => return false,
    }
    true
}

fn get_pairs(mut c: Caller<'_, VmState>, t: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let call = "proxy_get_header_map_pairs";
    mem::give_with(&mut c, ret_ptr, ret_size, call, |state, out| {
        let stream = state.stream().map(|s| s.borrow());
        let mut list = Vec::with_capacity(16);
        pairs(state, stream.as_deref(), t, &mut list);
        wire::write_map(list.iter().copied(), out);
        true
    })
}

fn get_size(mut c: Caller<'_, VmState>, t: i32, ret_size: i32) -> Ret {
    let call = "proxy_get_header_map_size";
    let state = c.data();
    let stream = state.stream().map(|s| s.borrow());
    let mut list = Vec::new();
    pairs(state, stream.as_deref(), t, &mut list);
    let size = wire::map_size(list.iter().copied()) as u32;
    drop(stream);
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_size, size, call)?;
    Ok(status::OK)
}

fn get_value(
    mut c: Caller<'_, VmState>,
    t: i32,
    kp: i32,
    kl: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let call = "proxy_get_header_map_value";
    let key = mem::read_key(&mut c, kp, kl, call)?;
    mem::give_with(&mut c, ret_ptr, ret_size, call, |state, out| {
        let stream = state.stream().map(|s| s.borrow());
        match value(state, stream.as_deref(), t, &key) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    })
}

/// The first value of `key` (any case) in map `t`, as [`pairs`] shows the map.
fn value<'a>(
    state: &'a VmState,
    s: Option<&'a HttpStream>,
    t: i32,
    key: &[u8],
) -> Option<&'a [u8]> {
    if let Some(found) = s.and_then(|s| stream_value(s, t, key)) {
        return found;
    }
    let mut list = Vec::new();
    pairs(state, s, t, &mut list);
    list.into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// [`value`] in the request or response headers, looked up directly instead of scanned; `None` for other maps.
fn stream_value<'a>(s: &'a HttpStream, t: i32, key: &[u8]) -> Option<Option<&'a [u8]>> {
    let is = |name: &[u8]| key.eq_ignore_ascii_case(name);
    // `HeaderMap::get` with a `&str` lowercases on the stack; a name that is not a valid header name is absent.
    let plain = |m: &'a HeaderMap| Some(m.get(std::str::from_utf8(key).ok()?)?.as_bytes());
    Some(match t {
        REQUEST_HEADERS => {
            let r = &s.request;
            if is(b":authority") {
                r.headers.get(header::HOST).map(HeaderValue::as_bytes)
            } else if is(b":path") {
                Some(
                    r.uri
                        .path_and_query()
                        .map_or(b"/", |p| p.as_str().as_bytes()),
                )
            } else if is(b":method") {
                Some(r.method.as_str().as_bytes())
            } else if is(b":scheme") {
                Some(r.uri.scheme_str().unwrap_or("http").as_bytes())
            } else if is(b"host") {
                // Shown as `:authority` only.
                None
            } else {
                plain(&r.headers)
            }
        }
        RESPONSE_HEADERS => {
            let r = s.response.as_ref()?;
            match is(b":status") {
                true => Some(r.status.as_str().as_bytes()),
                false => plain(&r.headers),
            }
        }
        _ => return None,
    })
}

fn set_pairs(mut c: Caller<'_, VmState>, t: i32, ptr: i32, len: i32) -> Ret {
    let call = "proxy_set_header_map_pairs";
    let bytes = mem::read(&mut c, ptr, len, call)?;
    let list = wire::read_map(&bytes).map_err(|e| mem::trap(call, e))?;
    let Some(stream) = c.data().stream().cloned() else {
        return Ok(status::BAD_ARGUMENT);
    };
    let mut s = stream.borrow_mut();
    if !clear(&mut s, t) {
        return Ok(status::BAD_ARGUMENT);
    }
    for (k, v) in list {
        apply(&mut s, t, k, v, Op::Add, &c.data().plugin.name);
    }
    Ok(status::OK)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the hostcall's parameters"
)]
fn mutate(
    mut c: Caller<'_, VmState>,
    t: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
    call: &str,
    op: Op,
) -> Ret {
    mem::check_len(c.data(), kl, call)?;
    mem::check_len(c.data(), vl, call)?;
    let memory = mem::memory(&c, call)?;
    // Key and value are read in place: no copy on the way to the header map.
    let (data, state) = memory.data_and_store_mut(&mut c);
    let key = mem::slice(data, kp, kl, call)?;
    let value = mem::slice(data, vp, vl, call)?;
    let Some(stream) = state.stream() else {
        return Ok(status::BAD_ARGUMENT);
    };
    if !(REQUEST_HEADERS..=RESPONSE_TRAILERS).contains(&t) {
        return Ok(status::BAD_ARGUMENT);
    }
    apply(
        &mut stream.borrow_mut(),
        t,
        key,
        value,
        op,
        &state.plugin.name,
    );
    Ok(status::OK)
}

/// Empties map `t` (pseudo-headers stay); `false` if it does not exist yet.
fn clear(s: &mut HttpStream, t: i32) -> bool {
    match t {
        REQUEST_HEADERS => {
            // `Host` is `:authority`, a pseudo-header: it stays unless the new pairs set `:authority`.
            let host = s.request.headers.remove(header::HOST);
            s.request.headers.clear();
            if let Some(h) = host {
                s.request.headers.insert(header::HOST, h);
            }
        }
        RESPONSE_HEADERS => match &mut s.response {
            Some(r) => r.headers.clear(),
            None => return false,
        },
        REQUEST_TRAILERS => s.request_trailers = Some(HeaderMap::new()),
        RESPONSE_TRAILERS => s.response_trailers = Some(HeaderMap::new()),
        _ => return false,
    }
    true
}

/// Applies one change to map `t`. Values the HTTP layer cannot carry are dropped with a warning, as a bad header
/// would otherwise fail the whole request later.
fn apply(s: &mut HttpStream, t: i32, key: &[u8], value: &[u8], op: Op, plugin: &str) {
    if key.first() == Some(&b':') {
        if op != Op::Remove && !pseudo(s, t, key, value) {
            tracing::warn!(plugin, header = %String::from_utf8_lossy(key), value = %String::from_utf8_lossy(value),
                "wasm: plugin set an invalid pseudo-header; ignored");
        }
        return;
    }
    let map = match t {
        REQUEST_HEADERS => &mut s.request.headers,
        RESPONSE_HEADERS => match &mut s.response {
            Some(ResponseHead { headers, .. }) => headers,
            None => return,
        },
        REQUEST_TRAILERS => s.request_trailers.get_or_insert_with(HeaderMap::new),
        RESPONSE_TRAILERS => s.response_trailers.get_or_insert_with(HeaderMap::new),
        _ => return,
    };
    let Ok(name) = HeaderName::from_bytes(key) else {
        tracing::warn!(plugin, header = %String::from_utf8_lossy(key), "wasm: plugin used an invalid header name; ignored");
        return;
    };
    if op == Op::Remove {
        map.remove(&name);
        return;
    }
    let Ok(value) = HeaderValue::from_bytes(value) else {
        tracing::warn!(plugin, header = %name, "wasm: plugin set an invalid header value; ignored");
        return;
    };
    match op {
        Op::Add => {
            map.append(name, value);
        }
        _ => {
            map.insert(name, value);
        }
    }
}

/// Sets a pseudo-header; `false` if the name or value is not acceptable.
fn pseudo(s: &mut HttpStream, t: i32, key: &[u8], value: &[u8]) -> bool {
    match (t, key) {
        (REQUEST_HEADERS, b":path") => match PathAndQuery::try_from(value) {
            Ok(pq) if value.first() == Some(&b'/') => {
                let mut parts = std::mem::take(&mut s.request.uri).into_parts();
                parts.path_and_query = Some(pq);
                // Origin-form: the authority lives in `Host`.
                parts.scheme = None;
                parts.authority = None;
                s.request.uri = Uri::from_parts(parts).unwrap_or_default();
                true
            }
            _ => false,
        },
        (REQUEST_HEADERS, b":method") => match Method::from_bytes(value) {
            Ok(m) => {
                s.request.method = m;
                true
            }
            Err(_) => false,
        },
        (REQUEST_HEADERS, b":authority") => match HeaderValue::from_bytes(value) {
            Ok(v) => {
                s.request.headers.insert(header::HOST, v);
                if s.request.uri.authority().is_some() {
                    let pq = s
                        .request
                        .uri
                        .path_and_query()
                        .cloned()
                        .unwrap_or_else(|| PathAndQuery::from_static("/"));
                    s.request.uri = Uri::from(pq);
                }
                true
            }
            Err(_) => false,
        },
        (REQUEST_HEADERS, b":scheme") => true,
        (RESPONSE_HEADERS, b":status") => {
            match (
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u16>().ok()),
                &mut s.response,
            ) {
                (Some(code), Some(r)) => match StatusCode::from_u16(code) {
                    Ok(st) => {
                        r.status = st;
                        true
                    }
                    Err(_) => false,
                },
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> HttpStream {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("svc"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        HttpStream::for_test("/p?q=1", headers)
    }

    #[test]
    fn value_table() {
        let mut s = stream();
        s.response = Some(ResponseHead {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::from_iter([(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            )]),
        });
        let cases: &[(i32, &str, Option<Option<&str>>)] = &[
            (REQUEST_HEADERS, ":authority", Some(Some("svc"))),
            (REQUEST_HEADERS, ":PATH", Some(Some("/p?q=1"))),
            (REQUEST_HEADERS, ":method", Some(Some("GET"))),
            (REQUEST_HEADERS, ":scheme", Some(Some("http"))),
            (REQUEST_HEADERS, "host", Some(None)),
            (REQUEST_HEADERS, "X-A", Some(Some("1"))),
            (REQUEST_HEADERS, "x-missing", Some(None)),
            (REQUEST_HEADERS, "not a name", Some(None)),
            (RESPONSE_HEADERS, ":status", Some(Some("404"))),
            (RESPONSE_HEADERS, "content-type", Some(Some("text/plain"))),
            (RESPONSE_HEADERS, "x-a", Some(None)),
            (REQUEST_TRAILERS, "x-a", None),
        ];
        for (t, key, want) in cases {
            let got = stream_value(&s, *t, key.as_bytes());
            let got = got.map(|v| v.map(|v| std::str::from_utf8(v).expect("utf-8")));
            assert_eq!(got, *want, "{t} {key}");
        }
    }

    #[test]
    fn mutations_table() {
        // (op, key, value) -> (path, method, host, x-a, x-b)
        let cases: &[(Op, &str, &str, &str, &str, &str, Option<&str>, Option<&str>)] = &[
            (
                Op::Replace,
                ":path",
                "/new?x",
                "/new?x",
                "GET",
                "svc",
                Some("1"),
                None,
            ),
            (
                Op::Replace,
                ":path",
                "no-slash",
                "/p?q=1",
                "GET",
                "svc",
                Some("1"),
                None,
            ),
            (
                Op::Replace,
                ":method",
                "POST",
                "/p?q=1",
                "POST",
                "svc",
                Some("1"),
                None,
            ),
            (
                Op::Replace,
                ":authority",
                "other:81",
                "/p?q=1",
                "GET",
                "other:81",
                Some("1"),
                None,
            ),
            (
                Op::Add,
                "x-b",
                "2",
                "/p?q=1",
                "GET",
                "svc",
                Some("1"),
                Some("2"),
            ),
            (
                Op::Replace,
                "X-A",
                "9",
                "/p?q=1",
                "GET",
                "svc",
                Some("9"),
                None,
            ),
            (Op::Remove, "x-a", "", "/p?q=1", "GET", "svc", None, None),
            (
                Op::Remove,
                ":path",
                "",
                "/p?q=1",
                "GET",
                "svc",
                Some("1"),
                None,
            ),
            (
                Op::Add,
                "bad name",
                "v",
                "/p?q=1",
                "GET",
                "svc",
                Some("1"),
                None,
            ),
            (
                Op::Add,
                "x-b",
                "bad\nvalue",
                "/p?q=1",
                "GET",
                "svc",
                Some("1"),
                None,
            ),
        ];
        for (op, k, v, path, method, host, xa, xb) in cases {
            let mut s = stream();
            apply(
                &mut s,
                REQUEST_HEADERS,
                k.as_bytes(),
                v.as_bytes(),
                *op,
                "t",
            );
            let h = |n: &str| {
                s.request
                    .headers
                    .get(n)
                    .map(|v| v.to_str().expect("ascii").to_string())
            };
            assert_eq!(s.request.uri.to_string(), *path, "{k}");
            assert_eq!(s.request.method.as_str(), *method, "{k}");
            assert_eq!(h("host").as_deref(), Some(*host), "{k}");
            assert_eq!(h("x-a").as_deref(), *xa, "{k}");
            assert_eq!(h("x-b").as_deref(), *xb, "{k}");
        }
    }

    #[test]
    fn replacing_all_request_headers_keeps_the_authority() {
        let mut s = stream();
        assert!(clear(&mut s, REQUEST_HEADERS));
        apply(&mut s, REQUEST_HEADERS, b"x-new", b"1", Op::Add, "t");
        assert_eq!(s.request.headers.len(), 2);
        assert_eq!(s.request.headers["host"], "svc");
        assert!(s.request.headers.get("x-a").is_none());
    }

    #[test]
    fn response_status_table() {
        let cases = [
            ("404", true, 404),
            ("99", false, 200),
            ("abc", false, 200),
            ("599", true, 599),
        ];
        for (v, ok, want) in cases {
            let mut s = stream();
            s.response = Some(ResponseHead {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
            });
            assert_eq!(
                pseudo(&mut s, RESPONSE_HEADERS, b":status", v.as_bytes()),
                ok,
                "{v}"
            );
            assert_eq!(
                s.response.as_ref().map(|r| r.status.as_u16()),
                Some(want),
                "{v}"
            );
        }
    }
}
