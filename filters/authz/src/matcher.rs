//! The value matchers of an authorization policy: Istio's string patterns (exact, `prefix*`, `*suffix`, `*` for
//! presence), IP blocks (a CIDR or a single address, v4 or v6) and a field's `values` / `notValues` pair.
//!
//! Everything here is pure and parsed once, when the configuration loads.

use std::net::IpAddr;

/// One of Istio's string patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// `abc`: the whole value.
    Exact(String),
    /// `abc*`: the value starts with `abc`.
    Prefix(String),
    /// `*abc`: the value ends with `abc`.
    Suffix(String),
    /// `*`: any value, as long as there is one.
    Present,
}

impl StringMatch {
    /// Parses a pattern. `*` may be the whole pattern, its first or its last character, not both ends and not in the
    /// middle (Istio would read those as literal text that never matches, so they are refused). An empty pattern is
    /// refused too.
    pub fn parse(pattern: &str) -> Result<StringMatch, String> {
        if pattern.is_empty() {
            return Err(
                "an empty value matches nothing; remove it or write `*` for any value".into(),
            );
        }
        if pattern == "*" {
            return Ok(StringMatch::Present);
        }
        let (body, make): (&str, fn(String) -> StringMatch) =
            if let Some(rest) = pattern.strip_prefix('*') {
                (rest, StringMatch::Suffix)
            } else if let Some(rest) = pattern.strip_suffix('*') {
                (rest, StringMatch::Prefix)
            } else {
                (pattern, StringMatch::Exact)
            };
        if body.contains('*') {
            return Err(format!(
                "`{pattern}`: `*` is allowed only as the whole value, or as its first or last character"
            ));
        }
        Ok(make(body.to_string()))
    }

    /// The same pattern in lower case, for values compared without regard to case (hosts).
    pub fn to_lowercase(&self) -> StringMatch {
        match self {
            StringMatch::Exact(s) => StringMatch::Exact(s.to_ascii_lowercase()),
            StringMatch::Prefix(s) => StringMatch::Prefix(s.to_ascii_lowercase()),
            StringMatch::Suffix(s) => StringMatch::Suffix(s.to_ascii_lowercase()),
            StringMatch::Present => StringMatch::Present,
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(s) => value.starts_with(s.as_str()),
            StringMatch::Suffix(s) => value.ends_with(s.as_str()),
            StringMatch::Present => true,
        }
    }
}

/// An IP block: a network and its prefix length; a single address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// Parses `10.0.0.0/8`, `10.1.2.3`, `2001:db8::/32` or `::1`. Bits past the prefix are ignored, as Envoy does.
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let bad = || {
            format!(
                "`{text}` is not an IP address or a CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)"
            )
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(len) => len
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(IpBlock { network, prefix })
    }

    /// Whether `ip` is in the block. An IPv4 address written as IPv6 (`::ffff:10.1.2.3`) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// A field with its negation: `principals` + `notPrincipals`, `values` + `notValues`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<T> {
    /// The value must match one of these (no constraint when empty).
    pub values: Vec<T>,
    /// The value must match none of these.
    pub not_values: Vec<T>,
}

impl<T> Field<T> {
    /// Whether the field constrains nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.not_values.is_empty()
    }

    /// Whether an attribute satisfies the field, `hit` telling whether a pattern matches a value. `values` are the
    /// attribute's values: none when it is missing (no principal without mTLS, no such header), which matches no
    /// pattern (it fails `values` and passes `notValues`); several for a header list, where one matching is enough.
    pub fn check<V, I>(&self, values: I, hit: impl Fn(&T, V) -> bool) -> bool
    where
        V: Copy,
        I: IntoIterator<Item = V> + Clone,
    {
        let any = |list: &[T]| {
            values
                .clone()
                .into_iter()
                .any(|v| list.iter().any(|p| hit(p, v)))
        };
        (self.values.is_empty() || any(&self.values)) && !any(&self.not_values)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]
mod tests {
    use super::*;

    #[test]
    fn string_patterns() {
        use StringMatch::*;
        let cases: &[(&str, Result<StringMatch, &str>)] = &[
            ("abc", Ok(Exact("abc".into()))),
            ("abc*", Ok(Prefix("abc".into()))),
            ("*abc", Ok(Suffix("abc".into()))),
            ("*", Ok(Present)),
            ("", Err("an empty value")),
            ("a*c", Err("`a*c`: `*` is allowed only")),
            ("*abc*", Err("`*abc*`: `*` is allowed only")),
            ("**", Err("`**`: `*` is allowed only")),
        ];
        for (text, want) in cases {
            match (StringMatch::parse(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text}"),
                (Err(e), Err(want)) => assert!(e.starts_with(want), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn string_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("/api", "/api", true),
            ("/api", "/api/", false),
            ("/api", "/API", false),
            ("/api/*", "/api/v1", true),
            ("/api/*", "/api/", true),
            ("/api/*", "/api", false),
            ("*.css", "/a/b.css", true),
            ("*.css", "/a/b.cssx", false),
            ("*", "", true),
            ("*", "anything", true),
        ];
        for (pattern, value, want) in cases {
            let m = StringMatch::parse(pattern).unwrap();
            assert_eq!(m.matches(value), *want, "{pattern} vs {value}");
        }
        let host = StringMatch::parse("*.Example.COM").unwrap().to_lowercase();
        assert!(host.matches("api.example.com"));
    }

    #[test]
    fn ip_blocks() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("10.1.2.3/32", "10.1.2.3", true),
            ("192.168.1.0/26", "192.168.1.63", true),
            ("192.168.1.0/26", "192.168.1.64", false),
            ("192.168.1.77/24", "192.168.1.1", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("2001:db8::/32", "2001:db8:1::7", true),
            ("2001:db8::/32", "2001:db9::7", false),
            ("2001:db8::/33", "2001:db8:8000::1", false),
            ("2001:db8::/33", "2001:db8:7fff::1", true),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("::/0", "fe80::1", true),
            ("fe80::/10", "febf::1", true),
            ("fe80::/10", "fec0::1", false),
        ];
        for (block, ip, want) in cases {
            let b = IpBlock::parse(block).unwrap();
            assert_eq!(b.contains(ip.parse().unwrap()), *want, "{block} ∋ {ip}");
        }
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "host",
            "",
        ] {
            let e = IpBlock::parse(bad).expect_err(bad);
            assert!(e.contains("is not an IP address or a CIDR block"), "{e}");
        }
    }

    #[test]
    fn fields_and_their_negation() {
        let f = |values: &[&str], not: &[&str]| Field {
            values: values
                .iter()
                .map(|v| StringMatch::parse(v).unwrap())
                .collect(),
            not_values: not.iter().map(|v| StringMatch::parse(v).unwrap()).collect(),
        };
        let hit = |p: &StringMatch, v: &str| p.matches(v);
        let cases: &[(Field<StringMatch>, Option<&str>, bool)] = &[
            (f(&[], &[]), None, true),
            (f(&[], &[]), Some("x"), true),
            (f(&["a", "b"], &[]), Some("b"), true),
            (f(&["a", "b"], &[]), Some("c"), false),
            (f(&["a"], &[]), None, false),
            (f(&["*"], &[]), None, false),
            (f(&["*"], &[]), Some("x"), true),
            (f(&[], &["a"]), Some("a"), false),
            (f(&[], &["a"]), Some("b"), true),
            (f(&[], &["a"]), None, true),
            (f(&[], &["*"]), None, true),
            (f(&[], &["*"]), Some("x"), false),
            (f(&["a*"], &["ab"]), Some("ac"), true),
            (f(&["a*"], &["ab"]), Some("ab"), false),
        ];
        for (field, value, want) in cases {
            assert_eq!(field.check(*value, hit), *want, "{field:?} {value:?}");
        }
        assert!(f(&[], &[]).is_empty());
        assert!(!f(&[], &["a"]).is_empty());
    }
}
