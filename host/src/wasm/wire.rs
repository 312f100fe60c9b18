//! proxy-wasm wire formats: the serialized header map and property paths.
//!
//! A map is `u32 count`, then `count × (u32 key_len, u32 value_len)`, then every key and value followed by a NUL byte,
//! all integers little-endian. A property path is its segments joined by NUL. These are pure functions over bytes; the
//! hostcalls copy guest memory in and out around them.

/// Why a serialized map from a module could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end before the header or the data they announce.
    #[error("serialized map is truncated: {0}")]
    Truncated(&'static str),
    /// More pairs than the host accepts.
    #[error("serialized map has {0} pairs; the host accepts at most {MAX_PAIRS}")]
    TooManyPairs(usize),
}

/// Most pairs a module may hand the host in one map (as in proxy-wasm-cpp-host).
pub const MAX_PAIRS: usize = 1024;

/// The serialized size of `pairs`.
pub fn map_size<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs.fold(4, |n, (k, v)| n + 8 + k.len() + v.len() + 2)
}

/// Serializes `pairs` into `out` (cleared first). `pairs` is iterated twice, so it must be cheap to clone.
pub fn write_map<'a, I>(pairs: I, out: &mut Vec<u8>)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    out.clear();
    out.reserve(map_size(pairs.clone()));
    let count = pairs.clone().count() as u32;
    out.extend_from_slice(&count.to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
}

/// Reads a serialized map. An empty input is an empty map.
pub fn read_map(bytes: &[u8]) -> Result<Vec<(&[u8], &[u8])>, WireError> {
    // An empty map may come as no bytes, or as a lone NUL (the spec allows both).
    if bytes.len() < 4 && bytes.iter().all(|b| *b == 0) {
        return Ok(Vec::new());
    }
    let count = u32_at(bytes, 0).ok_or(WireError::Truncated("no pair count"))? as usize;
    if count > MAX_PAIRS {
        return Err(WireError::TooManyPairs(count));
    }
    let mut sizes = 4usize;
    let mut data = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let k = u32_at(bytes, sizes).ok_or(WireError::Truncated("pair sizes"))? as usize;
        let v = u32_at(bytes, sizes + 4).ok_or(WireError::Truncated("pair sizes"))? as usize;
        sizes += 8;
        let key = slice(bytes, data, k).ok_or(WireError::Truncated("key"))?;
        data += k + 1;
        let value = slice(bytes, data, v).ok_or(WireError::Truncated("value"))?;
        data += v + 1;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Splits a property path into its segments. A trailing NUL is tolerated.
pub fn path_segments(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let path = path.strip_suffix(b"\0").unwrap_or(path);
    path.split(|b| *b == 0)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_map(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
            &mut out,
        );
        out
    }

    #[test]
    fn map_round_trip_table() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[(":path", "/")],
            &[("a", ""), ("", "b"), ("x-long", "value with spaces")],
        ];
        for pairs in cases {
            let bytes = ser(pairs);
            assert_eq!(
                bytes.len(),
                map_size(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
            );
            let back = read_map(&bytes).expect("valid");
            let back: Vec<(&str, &str)> = back
                .iter()
                .map(|(k, v)| {
                    (
                        std::str::from_utf8(k).expect("utf8"),
                        std::str::from_utf8(v).expect("utf8"),
                    )
                })
                .collect();
            assert_eq!(&back[..], *pairs);
        }
    }

    #[test]
    fn exact_layout() {
        let bytes = ser(&[("k", "vv")]);
        assert_eq!(bytes, b"\x01\0\0\0\x01\0\0\0\x02\0\0\0k\0vv\0");
    }

    #[test]
    fn malformed_maps_table() {
        let good = ser(&[("key", "value")]);
        let cases: Vec<(Vec<u8>, WireError)> = vec![
            (vec![1, 0], WireError::Truncated("no pair count")),
            (vec![0, 1, 0], WireError::Truncated("no pair count")),
            (vec![1, 0, 0, 0], WireError::Truncated("pair sizes")),
            (
                good[..good.len() - 3].to_vec(),
                WireError::Truncated("value"),
            ),
            (good[..14].to_vec(), WireError::Truncated("key")),
            (
                (MAX_PAIRS as u32 + 1).to_le_bytes().to_vec(),
                WireError::TooManyPairs(MAX_PAIRS + 1),
            ),
            (
                [
                    &1u32.to_le_bytes()[..],
                    &u32::MAX.to_le_bytes(),
                    &0u32.to_le_bytes(),
                ]
                .concat(),
                WireError::Truncated("key"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(read_map(&bytes), Err(want), "{bytes:?}");
        }
        assert_eq!(read_map(&[]), Ok(vec![]));
        assert_eq!(read_map(&[0]), Ok(vec![]));
    }

    #[test]
    fn path_segments_table() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"plugin_name", &[b"plugin_name"]),
            (b"request\0headers\0x-a", &[b"request", b"headers", b"x-a"]),
            (b"source\0address\0", &[b"source", b"address"]),
        ];
        for (path, want) in cases {
            let got: Vec<&[u8]> = path_segments(path).collect();
            assert_eq!(&got[..], *want);
        }
    }
}
