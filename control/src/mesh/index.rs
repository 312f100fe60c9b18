//! Finding the workloads a `workloadSelector` selects without comparing it with every workload: 1,000
//! ServiceEntries over 2,000 WorkloadEntries were two million label comparisons on every load of the directory.

use std::collections::{BTreeMap, HashMap};

use super::{Labels, Workload, selects};

/// Workloads by namespace, and by namespace and label.
pub(crate) struct WorkloadIndex<'a> {
    by_namespace: HashMap<&'a str, Vec<&'a Workload>>,
    by_label: HashMap<(&'a str, &'a str, &'a str), Vec<&'a Workload>>,
}

impl<'a> WorkloadIndex<'a> {
    /// Indexes `workloads` (each list keeps their order: by id).
    pub fn new(workloads: &'a BTreeMap<String, Workload>) -> Self {
        let mut index = WorkloadIndex {
            by_namespace: HashMap::new(),
            by_label: HashMap::new(),
        };
        for w in workloads.values() {
            let ns = w.namespace.as_str();
            index.by_namespace.entry(ns).or_default().push(w);
            for (k, v) in &w.labels {
                index
                    .by_label
                    .entry((ns, k.as_str(), v.as_str()))
                    .or_default()
                    .push(w);
            }
        }
        index
    }

    /// The workloads of namespace `ns` that carry every label of `selector` (all of the namespace's when it is
    /// empty), in id order.
    pub fn select(&self, ns: &str, selector: &Labels) -> Vec<&'a Workload> {
        let candidates = match selector.iter().next() {
            None => self.by_namespace.get(ns),
            Some((k, v)) => self.by_label.get(&(ns, k.as_str(), v.as_str())),
        };
        candidates
            .into_iter()
            .flatten()
            .copied()
            .filter(|w| selects(selector, &w.labels))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selects_as_a_scan_would() {
        let workloads: BTreeMap<String, Workload> = [
            ("a-v1", "default", &[("app", "a"), ("version", "v1")][..]),
            ("a-v2", "default", &[("app", "a"), ("version", "v2")]),
            ("b-v1", "default", &[("app", "b"), ("version", "v1")]),
            ("a-v1", "shop", &[("app", "a"), ("version", "v1")]),
            ("bare", "default", &[]),
        ]
        .into_iter()
        .map(|(name, ns, l)| {
            let w = Workload {
                id: format!("{name}.{ns}"),
                name: name.into(),
                namespace: ns.into(),
                labels: labels(l),
                ..Default::default()
            };
            (w.id.clone(), w)
        })
        .collect();
        let index = WorkloadIndex::new(&workloads);
        let table: &[(&str, &[(&str, &str)])] = &[
            ("default", &[("app", "a")]),
            ("default", &[("version", "v1")]),
            ("default", &[("app", "a"), ("version", "v2")]),
            ("default", &[("app", "c")]),
            ("default", &[]),
            ("shop", &[("app", "a")]),
            ("nowhere", &[]),
        ];
        for (ns, selector) in table {
            let selector = labels(selector);
            let got: Vec<&str> = index
                .select(ns, &selector)
                .iter()
                .map(|w| w.id.as_str())
                .collect();
            let want: Vec<&str> = workloads
                .values()
                .filter(|w| w.namespace == *ns && selects(&selector, &w.labels))
                .map(|w| w.id.as_str())
                .collect();
            assert_eq!(got, want, "{ns} {selector:?}");
        }
        assert_eq!(index.select("default", &labels(&[("app", "a")])).len(), 2);
    }
}
