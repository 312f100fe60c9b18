//! Header values with variables: `%UUID%`, `%DOWNSTREAM_REMOTE_ADDRESS%`, `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
//! `%PROTOCOL%`, and `%%` for a literal `%`. Parsed once when the plugin is configured, expanded per request.

/// A variable a value can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// A random (version 4) UUID, new for each expansion.
    Uuid,
    /// The client's `IP:PORT` (property `source.address`).
    RemoteAddress,
    /// The client's IP (`source.address` without the port).
    RemoteAddressWithoutPort,
    /// `HTTP/1.1`, `HTTP/2`... (property `request.protocol`).
    Protocol,
}

const VARS: &[(&str, Var)] = &[
    ("UUID", Var::Uuid),
    ("DOWNSTREAM_REMOTE_ADDRESS", Var::RemoteAddress),
    (
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        Var::RemoteAddressWithoutPort,
    ),
    ("PROTOCOL", Var::Protocol),
];

/// One piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as is.
    Text(String),
    /// A variable's value.
    Var(Var),
}

/// A parsed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// Parses `text`; the error says what is wrong (the caller adds the field).
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.contains(['\r', '\n', '\0']) {
            return Err("a header value cannot hold CR, LF or NUL".into());
        }
        let mut pieces = Vec::new();
        let mut text_piece = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            text_piece.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after.find('%').ok_or_else(|| {
                format!("unclosed `%` in `{text}` (write `%%` for a literal `%`)")
            })?;
            let name = &after[..end];
            if name.is_empty() {
                text_piece.push('%');
            } else {
                let var = VARS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        let known: Vec<String> =
                            VARS.iter().map(|(n, _)| format!("%{n}%")).collect();
                        format!("unknown variable `%{name}%` (known: {})", known.join(", "))
                    })?;
                if !text_piece.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text_piece)));
                }
                pieces.push(Piece::Var(var));
            }
            rest = &after[end + 1..];
        }
        text_piece.push_str(rest);
        if !text_piece.is_empty() {
            pieces.push(Piece::Text(text_piece));
        }
        Ok(Template(pieces))
    }

    /// The value, with each variable's value from `var`.
    pub fn expand(&self, var: &mut impl FnMut(Var) -> String) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Var(v) => var(*v),
            })
            .collect()
    }
}

/// A version 4 UUID from 128 random bits (version and variant bits overwritten).
pub fn uuid_v4(bits: u128) -> String {
    let b = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `IP:PORT` → `IP` (`[::1]:80` → `::1`); anything that is not a socket address as is.
pub fn without_port(address: &str) -> String {
    address
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| address.to_string(), |a| a.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let text = |s: &str| Piece::Text(s.into());
        let cases: &[(&str, Result<Vec<Piece>, &str>)] = &[
            ("plain", Ok(vec![text("plain")])),
            ("", Ok(vec![])),
            ("%UUID%", Ok(vec![Piece::Var(Var::Uuid)])),
            (
                "id-%UUID%-x",
                Ok(vec![text("id-"), Piece::Var(Var::Uuid), text("-x")]),
            ),
            ("100%%", Ok(vec![text("100%")])),
            (
                "%PROTOCOL%%DOWNSTREAM_REMOTE_ADDRESS%",
                Ok(vec![
                    Piece::Var(Var::Protocol),
                    Piece::Var(Var::RemoteAddress),
                ]),
            ),
            ("%UUID", Err("unclosed `%`")),
            ("%HOST%", Err("unknown variable `%HOST%`")),
            ("a\nb", Err("CR, LF or NUL")),
        ];
        for (input, want) in cases {
            match (Template::parse(input), want) {
                (Ok(t), Ok(w)) => assert_eq!(&t.0, w, "{input}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn expand_fills_each_variable() {
        let t = Template::parse("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%/%PROTOCOL%/%%").unwrap();
        let got = t.expand(&mut |v| format!("{v:?}"));
        assert_eq!(got, "RemoteAddressWithoutPort/Protocol/%");
    }

    #[test]
    fn uuid_table() {
        let cases = [
            (0u128, "00000000-0000-4000-8000-000000000000"),
            (u128::MAX, "ffffffff-ffff-4fff-bfff-ffffffffffff"),
            (
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
                "01234567-89ab-4def-8123-456789abcdef",
            ),
        ];
        for (bits, want) in cases {
            assert_eq!(uuid_v4(bits), want);
        }
    }

    #[test]
    fn without_port_table() {
        let cases = [
            ("10.0.0.1:4000", "10.0.0.1"),
            ("[::1]:4000", "::1"),
            ("10.0.0.1", "10.0.0.1"),
            ("::1", "::1"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(without_port(input), want, "{input}");
        }
    }
}
