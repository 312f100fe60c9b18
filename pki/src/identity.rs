//! SPIFFE IDs of workloads: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`, as Istio writes them.

use std::{fmt, str::FromStr};

use crate::PkiError;

/// A workload identity. Istio's "principal" is the same without the `spiffe://` scheme.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The trust domain (`cluster.local`).
    pub trust_domain: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account.
    pub service_account: String,
}

impl SpiffeId {
    /// The identity of `service_account` in `namespace` of `trust_domain`.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// Istio's principal form: `TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    pub fn principal(&self) -> String {
        let s = self.to_string();
        s["spiffe://".len()..].to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::Identity {
            id: s.into(),
            reason,
        };
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| bad("it does not start with spiffe://"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [td, "ns", ns, "sa", sa] = parts[..] else {
            return Err(bad("the path is not /ns/NAMESPACE/sa/SERVICE_ACCOUNT"));
        };
        if td.is_empty() || ns.is_empty() || sa.is_empty() {
            return Err(bad("a segment is empty"));
        }
        let td_ok = td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !td_ok {
            return Err(bad(
                "the trust domain may hold only lower-case letters, digits, `-`, `.` and `_`",
            ));
        }
        let seg_ok = |x: &str| {
            x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        };
        if !seg_ok(ns) || !seg_ok(sa) {
            return Err(bad(
                "namespace and service account may hold only letters, digits, `-`, `.`, `_` and `~`",
            ));
        }
        Ok(SpiffeId::new(td, ns, sa))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = SpiffeId::new("cluster.local", "default", "productpage");
        let cases: &[(&str, Result<&SpiffeId, &str>)] = &[
            ("spiffe://cluster.local/ns/default/sa/productpage", Ok(&ok)),
            (
                "cluster.local/ns/default/sa/productpage",
                Err("does not start"),
            ),
            ("spiffe://cluster.local/ns/default/sa", Err("the path")),
            ("spiffe://cluster.local/ns/default/sa/x/y", Err("the path")),
            ("spiffe://cluster.local/sa/x/ns/y", Err("the path")),
            ("spiffe:///ns/default/sa/x", Err("empty")),
            (
                "spiffe://Cluster.local/ns/default/sa/x",
                Err("trust domain"),
            ),
            (
                "spiffe://td/ns/de fault/sa/x",
                Err("namespace and service account"),
            ),
        ];
        for (text, want) in cases {
            match (text.parse::<SpiffeId>(), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, *want, "{text}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn display_and_principal_round_trip() {
        let id = SpiffeId::new("td", "ns1", "sa1");
        assert_eq!(id.to_string(), "spiffe://td/ns/ns1/sa/sa1");
        assert_eq!(id.principal(), "td/ns/ns1/sa/sa1");
        assert_eq!(id.to_string().parse::<SpiffeId>().ok(), Some(id));
    }
}
