//! `x-request-id`: kept when the client sent one, otherwise a fresh UUID v4, as Envoy's `generate_request_id` (on by
//! default) does. The id goes upstream with the request and into the access log.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header's name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the incoming `x-request-id` (`true`: keep it), or a new UUID v4 (`false`: add it upstream).
pub fn of(headers: &HeaderMap) -> (HeaderValue, bool) {
    match headers.get(&X_REQUEST_ID) {
        Some(v) => (v.clone(), true),
        None => (generate(), false),
    }
}

/// A random UUID v4 (RFC 9562 §5.4) in its lowercase hyphenated form.
pub fn generate() -> HeaderValue {
    let text = uuid_v4(fastrand::u128(..));
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The UUID v4 text for 128 random bits: the version nibble set to 4 and the variant bits to `10`.
fn uuid_v4(random: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = (random & !(0xf << 76) & !(0b11 << 62)) | (0x4 << 76) | (0b10 << 62);
    let mut out = [b'-'; 36];
    let mut nibble = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        nibble -= 1;
        *slot = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v4_table() {
        let cases: &[(u128, &str)] = &[
            (0, "00000000-0000-4000-8000-000000000000"),
            (u128::MAX, "ffffffff-ffff-4fff-bfff-ffffffffffff"),
            (
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
                "01234567-89ab-4def-8123-456789abcdef",
            ),
        ];
        for (bits, want) in cases {
            assert_eq!(std::str::from_utf8(&uuid_v4(*bits)).expect("ascii"), *want);
        }
    }

    #[test]
    fn keeps_an_incoming_id_and_makes_one_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("given"));
        assert_eq!(of(&h), (HeaderValue::from_static("given"), true));
        let (id, kept) = of(&HeaderMap::new());
        assert!(!kept);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(generate(), generate());
    }
}
