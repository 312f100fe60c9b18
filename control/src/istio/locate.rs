//! Positions in YAML, found by serde_yaml itself: a seed walks a [`FieldPath`] through the document and either
//! deserializes what is there ([`at_path`], used for the items of a Kubernetes `List`) or fails on purpose so that
//! serde_yaml's error carries the line of the key or item ([`line_of`], used to point analysis findings at their
//! field). Flow style (`{a: 1}`), anchors and multi-line scalars are handled as serde_yaml handles them.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::diagnostic::{FieldPath, Seg};

/// The message of the deliberate error that marks "found it".
const MARKER: &str = "\u{1}meshwork-located";

/// The 1-based line of `path` in the YAML document `text` (the line of the key, or of the `-` of an item), or of the
/// deepest part of `path` that exists; `None` when `text` is not YAML.
pub fn line_of(text: &str, path: &FieldPath) -> Option<usize> {
    (0..=path.0.len()).rev().find_map(|len| {
        let seed = Nav {
            path: &path.0[..len],
            seed: FailHere,
            fail_at_key: true,
        };
        match seed.deserialize(serde_yaml::Deserializer::from_str(text)) {
            Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| l.line()),
            _ => None,
        }
    })
}

/// Deserializes `seed` from the value at `path` in what `de` reads; `Ok(None)` when there is nothing at `path`.
pub fn at_path<'de, D, S>(de: D, path: &FieldPath, seed: S) -> Result<Option<S::Value>, D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeSeed<'de>,
{
    Nav {
        path: &path.0,
        seed,
        fail_at_key: false,
    }
    .deserialize(de)
}

/// Walks `path`, then applies `seed`.
struct Nav<'p, S> {
    path: &'p [Seg],
    seed: S,
    /// At a final key, fail on the key itself (its line) instead of applying the seed to its value.
    fail_at_key: bool,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nav<'_, S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.path.split_first() {
            None => self.seed.deserialize(d).map(Some),
            Some((Seg::Key(key), rest)) => d.deserialize_map(Step {
                key: Some(key),
                index: 0,
                rest,
                seed: self.seed,
                fail_at_key: self.fail_at_key,
            }),
            Some((Seg::Index(index), rest)) => d.deserialize_seq(Step {
                key: None,
                index: *index,
                rest,
                seed: self.seed,
                fail_at_key: self.fail_at_key,
            }),
        }
    }
}

/// One step into a mapping (`key`) or a sequence (`index`).
struct Step<'p, S> {
    key: Option<&'p str>,
    index: usize,
    rest: &'p [Seg],
    seed: S,
    fail_at_key: bool,
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Step<'_, S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.key.is_some() {
            "a mapping"
        } else {
            "a sequence"
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let target = self.key.unwrap_or_default();
        let fail = self.fail_at_key && self.rest.is_empty();
        let mut seed = Some(self.seed);
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs { target, fail })? {
            match (hit, seed.take()) {
                (true, Some(s)) => {
                    found = map.next_value_seed(Nav {
                        path: self.rest,
                        seed: s,
                        fail_at_key: self.fail_at_key,
                    })?;
                }
                (_, s) => {
                    seed = s;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        let found = seq
            .next_element_seed(Nav {
                path: self.rest,
                seed: self.seed,
                fail_at_key: self.fail_at_key,
            })?
            .flatten();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(found)
    }
}

/// A mapping key: whether it is `target`; with `fail`, finding it is the marker error (at the key's position).
struct KeyIs<'p> {
    target: &'p str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.target, self.fail) {
            (true, true) => Err(E::custom(MARKER)),
            (hit, _) => Ok(hit),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
}

/// Fails where it is applied, so that the error carries that position.
struct FailHere;

impl<'de> DeserializeSeed<'de> for FailHere {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(FailVisitor)
    }
}

/// Any value: the marker error.
struct FailVisitor;

impl<'de> Visitor<'de> for FailVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARKER))
    }

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(D::Error::custom(MARKER))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(MARKER))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(MARKER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# a comment
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /a}
    route:
    - destination:
        host: reviews
      weight: 90
    -   destination: {host: reviews, subset: v2}
        weight: 10
  - route: [{destination: {host: x}}, {destination: {host: y}}]
portLevelMtls:
  8080: {mode: STRICT}
";

    #[test]
    fn lines_table() {
        let cases = [
            ("kind", Some(3)),
            ("metadata.name", Some(5)),
            ("spec.hosts", Some(7)),
            ("spec.hosts[0]", Some(7)),
            ("spec.http[0]", Some(9)),
            ("spec.http[0].match[0].uri.prefix", Some(10)),
            ("spec.http[0].route[0].destination.host", Some(13)),
            ("spec.http[0].route[0].weight", Some(14)),
            ("spec.http[0].route[1].weight", Some(16)),
            ("spec.http[0].route[1].destination.subset", Some(15)),
            ("spec.http[1].route[1].destination.host", Some(17)),
            ("portLevelMtls.8080.mode", Some(19)),
            // Not there: the deepest part that is.
            ("spec.http[0].route[0].destination.subset", Some(12)),
            ("spec.http[7].route", Some(8)),
            ("spec.nothing", Some(6)),
            ("", Some(2)),
        ];
        for (path, want) in cases {
            assert_eq!(line_of(DOC, &FieldPath::parse(path)), want, "{path}");
        }
        assert_eq!(
            line_of("a: 1\n", &FieldPath::parse("b")),
            Some(1),
            "the document"
        );
    }

    #[test]
    fn deserializes_at_a_path() {
        let de = serde_yaml::Deserializer::from_str(DOC);
        let got: Option<u32> = at_path(
            de,
            &FieldPath::parse("spec.http[0].route[1].weight"),
            std::marker::PhantomData,
        )
        .unwrap();
        assert_eq!(got, Some(10));
        let de = serde_yaml::Deserializer::from_str(DOC);
        let none: Option<u32> = at_path(
            de,
            &FieldPath::parse("spec.http[5].route"),
            std::marker::PhantomData,
        )
        .unwrap();
        assert_eq!(none, None);
    }
}
