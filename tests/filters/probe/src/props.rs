//! Reading host properties and rendering their values as header text.

use std::fmt::Write;

use proxy_wasm::hostcalls;

use crate::config::{Property, PropertyType};

/// Reads one property and returns `(response header name, rendered value)`.
///
/// The dotted path is split into at most three segments, so
/// `request.headers.x-foo.bar` reads header `x-foo.bar`.
pub fn read(prop: &Property) -> (String, String) {
    let path: Vec<&str> = prop.path.splitn(3, '.').collect();
    let value = match hostcalls::get_property(path) {
        Ok(Some(bytes)) => render(prop.kind, &bytes),
        Ok(None) => "<none>".to_owned(),
        Err(status) => format!("<error:{status:?}>"),
    };
    let name = format!("x-prop-{}", prop.path.replace('.', "-")).to_ascii_lowercase();
    (name, value)
}

fn render(kind: PropertyType, bytes: &[u8]) -> String {
    match kind {
        PropertyType::String => String::from_utf8_lossy(bytes).into_owned(),
        PropertyType::Int => match <[u8; 8]>::try_from(bytes) {
            Ok(b) => i64::from_le_bytes(b).to_string(),
            Err(_) => format!("<bad-int:len={}>", bytes.len()),
        },
        PropertyType::Uint => match <[u8; 8]>::try_from(bytes) {
            Ok(b) => u64::from_le_bytes(b).to_string(),
            Err(_) => format!("<bad-uint:len={}>", bytes.len()),
        },
        PropertyType::Bool => match bytes {
            [b] => (*b != 0).to_string(),
            _ => format!("<bad-bool:len={}>", bytes.len()),
        },
        PropertyType::Bytes => hex(bytes),
        PropertyType::Map => match decode_map(bytes) {
            Some(pairs) => pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect::<Vec<_>>()
                .join(";"),
            None => format!("<bad-map:len={}>", bytes.len()),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
}

/// Takes `len` bytes at `*at` followed by a NUL terminator.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(len)?;
    let value = bytes.get(*at..end)?;
    if *bytes.get(end)? != 0 {
        return None;
    }
    *at = end + 1;
    Some(value)
}

/// Decodes the proxy-wasm map wire format: `u32` LE count, then per pair the
/// `u32` LE key and value lengths, then each key and value NUL-terminated.
fn decode_map(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let count = read_u32(bytes, 0)?;
    if count > bytes.len().saturating_sub(4) / 8 {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 8;
        sizes.push((read_u32(bytes, at)?, read_u32(bytes, at + 4)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for (key_len, value_len) in sizes {
        let key = take(bytes, &mut at, key_len)?;
        let value = take(bytes, &mut at, value_len)?;
        pairs.push((key, value));
    }
    Some(pairs)
}
