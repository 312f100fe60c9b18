//! The request as the router reads it: its headers, pseudo-headers included, and the local port.

use std::borrow::Cow;

/// The request as the router sees it: its headers (pseudo-headers `:path`, `:method`, `:authority`, `:scheme`
/// included, names lowercase) and the local port, when it was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    headers: &'a [(String, String)],
    /// The local port, when it was asked for.
    pub port: Option<u16>,
}

impl<'a> Request<'a> {
    /// A request with these headers, arrived on local port `port`.
    pub fn new(headers: &'a [(String, String)], port: Option<u16>) -> Request<'a> {
        Request { headers, port }
    }

    /// A header's value; several values are joined with `,` (as Envoy matches them).
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut all = format!("{first},{second}");
                for v in values {
                    all.push(',');
                    all.push_str(v);
                }
                Some(Cow::Owned(all))
            }
        }
    }

    /// `:path`, query included.
    pub fn path(&self) -> &'a str {
        self.headers
            .iter()
            .find(|(k, _)| k == ":path")
            .map_or("/", |(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path_only(&self) -> &'a str {
        let p = self.path();
        p.split_once('?').map_or(p, |(path, _)| path)
    }

    /// The query with its `?`, or `""`.
    pub fn query_suffix(&self) -> &'a str {
        let p = self.path();
        p.find('?').map_or("", |i| &p[i..])
    }

    /// The first value of query parameter `name` (raw, not percent-decoded); `?name` alone has the value `""`.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        let (_, query) = self.path().split_once('?')?;
        query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn headers_table() {
        let h = pairs(&[
            (":path", "/p?a=1"),
            ("x-one", "1"),
            ("x-multi", "a"),
            ("X-Multi", "b"),
            ("x-multi", "c"),
        ]);
        let r = Request::new(&h, None);
        let cases: &[(&str, Option<&str>)] = &[
            ("x-one", Some("1")),
            ("X-ONE", Some("1")),
            ("x-multi", Some("a,b,c")),
            ("x-none", None),
            (":path", Some("/p?a=1")),
        ];
        for (name, want) in cases {
            assert_eq!(r.header(name).as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn path_and_query_table() {
        // (`:path`, path only, query suffix, `a`, `b`)
        let cases: &[(&str, &str, &str, Option<&str>, Option<&str>)] = &[
            ("/x", "/x", "", None, None),
            ("/x?", "/x", "?", None, None),
            ("/x?a=1&b=2", "/x", "?a=1&b=2", Some("1"), Some("2")),
            ("/x?a=1&a=2", "/x", "?a=1&a=2", Some("1"), None),
            ("/x?a&b=", "/x", "?a&b=", Some(""), Some("")),
            ("/x?ab=1&a%20=2", "/x", "?ab=1&a%20=2", None, None),
            ("/x?b=1=2", "/x", "?b=1=2", None, Some("1=2")),
        ];
        for (path, only, suffix, a, b) in cases {
            let h = pairs(&[(":path", path)]);
            let r = Request::new(&h, None);
            assert_eq!(r.path_only(), *only, "{path}");
            assert_eq!(r.query_suffix(), *suffix, "{path}");
            assert_eq!(r.query_param("a"), *a, "{path} a");
            assert_eq!(r.query_param("b"), *b, "{path} b");
        }
        assert_eq!(Request::new(&[], None).path(), "/", "no :path reads as /");
    }
}
