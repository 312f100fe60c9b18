//! The stream callbacks a plugin says it implements, declared with `meshwork.callbacks` while it starts; the host
//! skips the others.
//!
//! A proxy-wasm module built with the Rust or Go SDK exports every callback, so the host cannot tell from its exports
//! which ones do anything: a policy that only looks at request headers would still be called for response headers,
//! every body chunk, `on_log` and `on_done`, at about 0.1 µs each, and every body chunk would be copied into its
//! buffer. A skipped callback behaves as the SDKs' defaults do: headers, bodies and trailers continue unchanged,
//! `on_done` answers "done", `on_log` does nothing. `proxy_on_context_create` and `proxy_on_delete` are always called
//! (the SDKs keep per-stream state between them).

use super::Phase;

/// A set of stream callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uses(u16);

/// The names `meshwork.callbacks` takes; a name's position is its bit.
const NAMES: [&str; 8] = [
    "request_headers",
    "request_body",
    "request_trailers",
    "response_headers",
    "response_body",
    "response_trailers",
    "log",
    "done",
];

impl Uses {
    /// Every callback: what a plugin gets unless it declares otherwise.
    pub const ALL: Uses = Uses(u16::MAX);

    /// The set named by `text`: callback names separated by spaces or commas (`request_headers response_headers`).
    pub fn parse(text: &str) -> Result<Uses, String> {
        let mut bits = 0;
        for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
            match NAMES.iter().position(|n| *n == word) {
                Some(i) => bits |= 1 << i,
                None => {
                    return Err(format!(
                        "unknown callback `{word}`; name some of: {}",
                        NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(Uses(bits))
    }

    /// Whether the header, body or trailers callback of `phase` is called.
    pub fn phase(self, phase: Phase) -> bool {
        self.has(match phase {
            Phase::RequestHeaders => 0,
            Phase::RequestBody => 1,
            Phase::RequestTrailers => 2,
            Phase::ResponseHeaders => 3,
            Phase::ResponseBody => 4,
            Phase::ResponseTrailers => 5,
        })
    }

    /// Whether `proxy_on_log` is called.
    pub fn log(self) -> bool {
        self.has(6)
    }

    /// Whether `proxy_on_done` is called.
    pub fn done(self) -> bool {
        self.has(7)
    }

    /// Whether the callback at position `i` of [`NAMES`] is called.
    fn has(self, i: u32) -> bool {
        self.0 & (1 << i) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        use Phase::*;
        // (declaration, phases called, log, done)
        let cases: &[(&str, &[Phase], bool, bool)] = &[
            ("", &[], false, false),
            ("request_headers", &[RequestHeaders], false, false),
            (
                "request_headers response_headers",
                &[RequestHeaders, ResponseHeaders],
                false,
                false,
            ),
            (
                "request_body,response_body, log",
                &[RequestBody, ResponseBody],
                true,
                false,
            ),
            (
                "request_trailers response_trailers done",
                &[RequestTrailers, ResponseTrailers],
                false,
                true,
            ),
        ];
        let all = [
            RequestHeaders,
            RequestBody,
            RequestTrailers,
            ResponseHeaders,
            ResponseBody,
            ResponseTrailers,
        ];
        for (text, called, log, done) in cases {
            let uses = Uses::parse(text).expect("valid");
            for p in all {
                assert_eq!(uses.phase(p), called.contains(&p), "{text:?} {p:?}");
            }
            assert_eq!((uses.log(), uses.done()), (*log, *done), "{text:?}");
        }
        for p in all {
            assert!(Uses::ALL.phase(p));
        }
        assert!(Uses::ALL.log() && Uses::ALL.done());
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        for text in ["on_request_headers", "request_headers delete", "Log"] {
            let e = Uses::parse(text).expect_err("unknown");
            assert!(e.contains("unknown callback"), "{e}");
            assert!(e.contains("request_headers, request_body"), "{e}");
        }
    }
}
