//! The manifests in deploy/kubernetes/: every document parses and has what the API server requires, the CRDs are the
//! ones the watchers ask for (group, kind, plural, every accepted apiVersion served, one stored), the ClusterRole
//! lets the control plane read exactly what it watches (and get Secrets, the pull secrets), and the Deployment,
//! Service and bindings fit together.

use std::{collections::BTreeSet, path::PathBuf};

use meshwork_control::{istio::Kind, kube::convert::api_resource};
use serde_yaml::Value;

const NAMESPACE: &str = "meshwork-system";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of `file`.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    let mut at = v;
    for key in path.split('.') {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[key],
        };
    }
    at.as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string in {v:?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Every manifest, with its file.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|f| documents(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn one<'a>(all: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = all
        .iter()
        .filter(|(_, d)| str_at(d, "kind") == kind)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

#[test]
fn every_document_is_a_named_object() {
    let all = manifests();
    let namespaced = ["ServiceAccount", "Deployment", "Service"];
    let mut kinds = Vec::new();
    for (file, d) in &all {
        let kind = str_at(d, "kind");
        assert!(!str_at(d, "apiVersion").is_empty(), "{file}: apiVersion");
        assert!(
            !str_at(d, "metadata.name").is_empty(),
            "{file}: {kind} name"
        );
        if namespaced.contains(&kind) {
            assert_eq!(str_at(d, "metadata.namespace"), NAMESPACE, "{file}: {kind}");
        }
        kinds.push(kind.to_string());
    }
    kinds.sort();
    let mut want = vec![
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    want.extend(["CustomResourceDefinition"; 8]);
    want.sort();
    assert_eq!(kinds, want);
    let kustomize = &documents("kustomization.yaml")[0];
    for file in strings(&kustomize["resources"]) {
        assert!(dir().join(file).is_file(), "kustomization names {file}");
        assert_ne!(file, "crds.yaml", "the CRDs are applied only without Istio");
    }
}

#[test]
fn crds_are_the_kinds_the_watchers_ask_for() {
    let all = manifests();
    let crds: Vec<&Value> = all
        .iter()
        .filter(|(_, d)| str_at(d, "kind") == "CustomResourceDefinition")
        .map(|(_, d)| d)
        .collect();
    for kind in Kind::ALL {
        let ar = api_resource(kind);
        let name = format!("{}.{}", ar.plural, ar.group);
        let crd = crds
            .iter()
            .find(|c| str_at(c, "metadata.name") == name)
            .unwrap_or_else(|| panic!("no CRD {name}"));
        assert_eq!(str_at(crd, "apiVersion"), "apiextensions.k8s.io/v1");
        assert_eq!(str_at(crd, "spec.group"), ar.group);
        assert_eq!(str_at(crd, "spec.names.kind"), ar.kind);
        assert_eq!(str_at(crd, "spec.names.plural"), ar.plural);
        assert_eq!(
            str_at(crd, "spec.names.listKind"),
            format!("{}List", ar.kind)
        );
        assert_eq!(str_at(crd, "spec.scope"), "Namespaced");
        let versions = crd["spec"]["versions"].as_sequence().unwrap();
        let served: BTreeSet<String> = versions
            .iter()
            .filter(|v| v["served"].as_bool() == Some(true))
            .map(|v| format!("{}/{}", ar.group, str_at(v, "name")))
            .collect();
        let accepted: BTreeSet<String> =
            kind.api_versions().iter().map(|s| s.to_string()).collect();
        assert_eq!(
            served, accepted,
            "{name}: every apiVersion the loader accepts, served"
        );
        let stored: Vec<&str> = versions
            .iter()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .map(|v| str_at(v, "name"))
            .collect();
        assert_eq!(
            stored,
            [ar.version.as_str()],
            "{name}: the watched version is stored"
        );
        for v in versions {
            let schema = &v["schema"]["openAPIV3Schema"];
            assert_eq!(str_at(schema, "type"), "object");
            let spec = &schema["properties"]["spec"];
            assert_eq!(str_at(spec, "type"), "object", "{name}");
            assert_eq!(
                spec["x-kubernetes-preserve-unknown-fields"].as_bool(),
                Some(true),
                "{name}"
            );
        }
    }
}

#[test]
fn the_cluster_role_reads_what_is_watched_and_pull_secrets_and_nothing_more() {
    let all = manifests();
    let role = one(&all, "ClusterRole");
    let mut granted = BTreeSet::new();
    let mut secrets = 0;
    for rule in role["rules"].as_sequence().unwrap() {
        let mut verbs = strings(&rule["verbs"]);
        verbs.sort();
        // Pull secrets are read one by one, by name: `get` alone, in a rule of their own.
        if strings(&rule["resources"]).contains(&"secrets") {
            assert_eq!(strings(&rule["apiGroups"]), [""], "{rule:?}");
            assert_eq!(strings(&rule["resources"]), ["secrets"], "{rule:?}");
            assert_eq!(verbs, ["get"], "secrets: get only: {rule:?}");
            secrets += 1;
            continue;
        }
        assert_eq!(verbs, ["get", "list", "watch"], "read-only: {rule:?}");
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert(format!("{group}/{resource}"));
            }
        }
    }
    assert_eq!(secrets, 1, "one rule for pull secrets");
    let mut watched: BTreeSet<String> = Kind::ALL
        .iter()
        .map(|k| {
            let ar = api_resource(*k);
            format!("{}/{}", ar.group, ar.plural)
        })
        .collect();
    watched.extend(["/services", "/pods", "discovery.k8s.io/endpointslices"].map(String::from));
    assert_eq!(granted, watched);

    let binding = one(&all, "ClusterRoleBinding");
    assert_eq!(str_at(binding, "roleRef.kind"), "ClusterRole");
    assert_eq!(
        str_at(binding, "roleRef.name"),
        str_at(role, "metadata.name")
    );
    let account = one(&all, "ServiceAccount");
    assert_eq!(str_at(binding, "subjects.0.kind"), "ServiceAccount");
    assert_eq!(
        str_at(binding, "subjects.0.name"),
        str_at(account, "metadata.name")
    );
    assert_eq!(str_at(binding, "subjects.0.namespace"), NAMESPACE);
}

#[test]
fn the_deployment_serves_xds_behind_the_service() {
    let all = manifests();
    let deployment = one(&all, "Deployment");
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        str_at(pod, "spec.serviceAccountName"),
        str_at(one(&all, "ServiceAccount"), "metadata.name")
    );
    let containers = pod["spec"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(strings(&c["command"]), ["meshwork"]);
    let args = strings(&c["args"]);
    assert!(
        args.starts_with(&["control", "--kube", "--xds-address", "0.0.0.0:15010"]),
        "{args:?}"
    );
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(15010));
    let port_name = str_at(c, "ports.0.name");
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(str_at(&c[probe], "tcpSocket.port"), port_name, "{probe}");
    }
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    let service = one(&all, "Service");
    let selector = service["spec"]["selector"].as_mapping().unwrap();
    let labels = &pod["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(&labels[k], v, "the Service selects the Pods");
    }
    assert_eq!(
        &deployment["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"]
    );
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"].as_u64(), Some(15010));
    assert_eq!(str_at(port, "targetPort"), port_name);
    assert_eq!(str_at(port, "appProtocol"), "grpc");
}
