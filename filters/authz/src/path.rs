//! The path a policy's `paths` compare with: `:path` without its query, normalized as RFC 3986 §6.2.2 says
//! (percent-encoded unreserved characters decoded, other escapes in upper case, `.` and `..` segments removed).
//!
//! Istio normalizes paths the same way before its RBAC filter runs (its default `BASE` normalization). Without it,
//! `/public/../admin` would escape a DENY on `/admin*` and still reach `/admin` upstream. Only the comparison uses
//! the normalized path; the request goes upstream as it came.

/// The normalized path of `raw` (`:path`, query and fragment included or not).
pub fn normalize(raw: &str) -> String {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let path = &raw[..end];
    // Most paths have nothing to normalize: no escapes and no `.` or `..` segment.
    if !path.contains('%') && !path.split('/').any(|seg| seg == "." || seg == "..") {
        return path.to_string();
    }
    remove_dot_segments(&decode_unreserved(path))
}

/// Decodes `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) and writes the hex digits of the others in
/// upper case, so that equivalent spellings of a path compare equal. `%2F` stays encoded: it is not a `/`.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escape {
            Some(b) if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(char::from(b)),
            Some(b) => out.push_str(&format!("%{b:02X}")),
            None => {
                // Copy one whole character (paths are UTF-8 text here).
                let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                i += ch.len_utf8();
                continue;
            }
        }
        i += 3;
    }
    out
}

/// RFC 3986 §5.2.4: `.` segments go, a `..` segment takes the one before it with it. A path ending in either keeps
/// its trailing slash; empty segments (`//`) stay.
fn remove_dot_segments(path: &str) -> String {
    let (root, body) = match path.strip_prefix('/') {
        Some(body) => ("/", body),
        None => ("", path),
    };
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            "." | ".." => {
                if seg == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("{root}{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/api/v1", "/api/v1"),
            ("/api/v1?x=1", "/api/v1"),
            ("/api/v1#frag", "/api/v1"),
            ("/api/v1?next=/admin/../x", "/api/v1"),
            ("/a/b/../c", "/a/c"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/a//b", "/a//b"),
            ("/a/.../b", "/a/.../b"),
            ("/a/..b/c", "/a/..b/c"),
            ("/%61dmin", "/admin"),
            ("/public/%2e%2E/admin", "/admin"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%7e", "/a~"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/%4", "/%4"),
            ("/%+1", "/%+1"),
            ("/caf\u{e9}/x", "/caf\u{e9}/x"),
            ("*", "*"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), *want, "{raw}");
        }
    }
}
