//! Istio's `StringMatch` for the router: the SDK's compiled matcher (`meshwork_sdk::matching`), with compile errors
//! turned into [`Invalid`] naming the field (`http[0].match[1].uri.regex`).

pub use meshwork_sdk::matching::StrMatch;

use crate::{config, model::Invalid};

/// Compiles `m` found at `field`. `{}` is [`StrMatch::Present`] when `presence` allows it, an error otherwise.
pub fn compile(m: &config::StringMatch, field: &str, presence: bool) -> Result<StrMatch, Invalid> {
    StrMatch::compile(m, presence).map_err(|e| {
        let field = match e.in_regex {
            true => format!("{field}.regex"),
            false => field.to_string(),
        };
        Invalid::new(field, e.message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_errors_name_the_field() {
        let sm = |json: serde_json::Value| -> config::StringMatch {
            serde_json::from_value(json).expect("parses")
        };
        let cases: &[(serde_json::Value, bool, Result<StrMatch, &str>)] = &[
            (serde_json::json!({}), true, Ok(StrMatch::Present)),
            (
                serde_json::json!({}),
                false,
                Err("`m.uri`: needs one of `exact`, `prefix` or `regex`"),
            ),
            (
                serde_json::json!({"exact": "a", "prefix": "b"}),
                true,
                Err("`m.uri`: give only one of `exact`, `prefix` or `regex`"),
            ),
            (
                serde_json::json!({"regex": "("}),
                true,
                Err("`m.uri.regex`: invalid regular expression"),
            ),
        ];
        for (m, presence, want) in cases {
            match (compile(&sm(m.clone()), "m.uri", *presence), want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w),
                (Err(e), Err(w)) => assert!(e.to_string().starts_with(w), "{e}"),
                (got, want) => panic!("{m}: got {got:?}, want {want:?}"),
            }
        }
    }
}
