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

/// The names `meshwork.callbacks` takes, and their bits.
const NAMES: [(&str, u16); 8] = [
    ("request_headers", 1),
    ("request_body", 1 << 1),
    ("request_trailers", 1 << 2),
    ("response_headers", 1 << 3),
    ("response_body", 1 << 4),
    ("response_trailers", 1 << 5),
    ("log", 1 << 6),
    ("done", 1 << 7),
];

impl Uses {
    /// Every callback: what a plugin gets unless it declares otherwise.
    pub const ALL: Uses = Uses(u16::MAX);

    /// The set named by `text`: callback names separated by spaces or commas (`request_headers response_headers`).
    pub fn parse(text: &str) -> Result<Uses, String> {
        let mut bits = 0;
        for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
            match NAMES.iter().find(|(n, _)| *n == word) {
                Some((_, bit)) => bits |= bit,
                None => {
                    let known: Vec<_> = NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown callback `{word}`; name some of: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(Uses(bits))
    }

    /// Whether the header, body or trailers callback of `phase` is called.
    pub fn phase(self, phase: Phase) -> bool {
        let bit = match phase {
            Phase::RequestHeaders => 1,
            Phase::RequestBody => 1 << 1,
            Phase::RequestTrailers => 1 << 2,
            Phase::ResponseHeaders => 1 << 3,
            Phase::ResponseBody => 1 << 4,
            Phase::ResponseTrailers => 1 << 5,
        };
        self.0 & bit != 0
    }

    /// Whether `proxy_on_log` is called.
    pub fn log(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Whether `proxy_on_done` is called.
    pub fn done(self) -> bool {
        self.0 & (1 << 7) != 0
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
