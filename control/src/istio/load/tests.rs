//! Loading: documents, lists, lines in later documents, and every kind of load error with its line and advice.

use std::path::PathBuf;

use super::*;
use crate::istio::Severity;

const VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
";

const SE: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  ports: [{number: 9080, name: http}]
";

/// The diagnostics of `text`, as displayed.
fn errors(text: &str) -> Vec<String> {
    match load_str(text, "f.yaml") {
        Ok(l) => panic!("loaded {} resources from\n{text}", l.len()),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn documents_lists_and_lines() {
    let text = format!("# header\n---\n{VS}---\n\n---\n{SE}...\n");
    let loaded = load_str(&text, "f.yaml").unwrap();
    assert_eq!(
        (loaded.len(), loaded.resources_seen, loaded.files.len()),
        (2, 2, 1)
    );
    let vs = &loaded.virtual_services[0];
    assert_eq!((vs.file.as_str(), vs.line), ("f.yaml", 3));
    assert_eq!(vs.metadata.namespace, "default");
    let se = &loaded.service_entries[0];
    assert_eq!(
        se.line, 15,
        "the second document starts after the empty one"
    );
    assert_eq!(se.line_of(&FieldPath::parse("spec.ports[0].number")), 20);
    assert_eq!(
        se.line_of(&FieldPath::parse("spec.ports[0].nothing")),
        20,
        "the deepest part written"
    );

    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n- {}",
        VS.replace('\n', "\n  "),
        SE.replace('\n', "\n  ")
    );
    let loaded = load_str(&list, "list.yaml").unwrap();
    let se = &loaded.service_entries[0];
    assert_eq!(se.line, 14);
    assert_eq!(
        se.field(&FieldPath::parse("spec.hosts")).to_string(),
        "items[1].spec.hosts"
    );
    assert_eq!(se.line_of(&FieldPath::parse("spec.hosts")), 18);
    assert_eq!(se.spec.ports[0].number, 9080);

    let empty = load_str("\n---\n# nothing\n---\n", "e.yaml").unwrap();
    assert_eq!((empty.len(), empty.resources_seen), (0, 0));
}

#[test]
fn load_errors_table() {
    let second = |doc: &str| format!("{SE}---\n{doc}");
    let cases: Vec<(String, &str)> = vec![
        // Lines in the second document are lines of the file.
        (
            second(&VS.replace("hosts:", "hots:")),
            "f.yaml:13: field `spec.hots`: unknown field `hots`: did you mean `hosts`? Fix the name, or remove the field",
        ),
        (
            second(&VS.replace("{host: reviews}", "{host: reviews, subset: 3, weight: 1}")),
            "f.yaml:16: field `spec.http[0].route[0].destination.weight`: unknown field `weight`",
        ),
        (
            second(&VS.replace("[reviews]", "reviews")),
            "f.yaml:13: field `spec.hosts`: invalid type: string \"reviews\", expected a sequence",
        ),
        (
            second(&VS.replace("kind: VirtualService", "kind: Gateway")),
            "f.yaml:9: field `kind`: unknown kind `Gateway`: meshwork reads ServiceEntry, WorkloadEntry, VirtualService",
        ),
        (
            VS.replace("kind: VirtualService", "kind: VirtualServices"),
            "f.yaml:2: field `kind`: unknown kind `VirtualServices`: did you mean `VirtualService`?",
        ),
        (
            second(&VS.replace("networking.istio.io/v1", "security.istio.io/v1")),
            "f.yaml:8: field `apiVersion`: `security.istio.io/v1` is not an API version of VirtualService: write \
             `apiVersion: networking.istio.io/v1` (networking.istio.io/v1beta1, networking.istio.io/v1alpha3 also work)",
        ),
        (
            VS.replace("apiVersion: networking.istio.io/v1\n", ""),
            "f.yaml:1: a missing or empty apiVersion is not an API version of VirtualService",
        ),
        (
            VS.replace("kind: VirtualService\n", ""),
            "f.yaml:1: missing field `kind`: add the resource's kind, one of ServiceEntry,",
        ),
        (
            second(&VS.replace("  name: reviews\n", "  namespace: x\n")),
            "f.yaml:11: field `metadata`: missing field `name`: every resource needs `metadata.name`; add it",
        ),
        (
            VS.replace("{host: reviews}", "{subset: v1}"),
            "f.yaml:9: field `spec.http[0].route[0].destination`: missing field `host`: add it, it is required",
        ),
        (
            second(
                "kind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: a}\nspec:\n  http:\n  - timeout: 5 s\n",
            ),
            "f.yaml:13: field `spec.http[0].timeout`: `5 s` is not a duration",
        ),
        (
            second("a: [\n"),
            "f.yaml:8: invalid YAML: did not find expected node content; check the indentation and quoting here",
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  \
             portLevelMtls: {http: {mode: STRICT}}\n"
                .into(),
            "f.yaml:5: field `spec.portLevelMtls.http`: `http` is not a port number: write the workload's port, e.g. 8080",
        ),
        (
            "- just\n- a list\n".into(),
            "f.yaml:1: expected a resource: a mapping with apiVersion, kind, metadata and spec",
        ),
        (
            "apiVersion: v1\nkind: List\n".into(),
            "f.yaml:1: a `List` needs `items`",
        ),
        (
            format!(
                "apiVersion: v1\nkind: List\nitems:\n- {}",
                VS.replace('\n', "\n  ").replace("hosts:", "hostz:")
            ),
            "f.yaml:9: field `items[0].spec.hostz`: unknown field `hostz`: did you mean `hosts`?",
        ),
        (
            format!("{VS}---\n{}", VS.replace("[reviews]", "[ratings]")),
            "f.yaml:14: field `metadata.name`: duplicate VirtualService `default/reviews`: also defined at f.yaml:4; \
             names are unique per kind and namespace, so rename or delete one of them",
        ),
    ];
    for (text, want) in cases {
        let got = errors(&text);
        assert_eq!(got.len(), 1, "{text}\n{got:?}");
        assert!(got[0].starts_with(want), "want {want}\n got {}", got[0]);
    }
}

#[test]
fn a_broken_document_does_not_hide_the_others() {
    let text = format!("{VS}---\nkind: [\n---\n{SE}");
    let Err(diags) = load_str(&text, "f.yaml") else {
        panic!("accepted")
    };
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line, Some(11));
    let mut loader = Loader::default();
    loader.text(&text, "f.yaml");
    assert_eq!((loader.loaded.len(), loader.loaded.resources_seen), (2, 2));
}

/// A fresh directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshwork-istio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn directories() {
    let dir = temp_dir("load");
    std::fs::write(dir.join("b.yml"), SE).unwrap();
    std::fs::write(
        dir.join("a.yaml"),
        format!("{VS}---\n{}", SE.replace("shop}", "other}")),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "kind: nonsense").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/c.yaml"), VS).unwrap();
    let loaded = load_dir(&dir).unwrap();
    let names: Vec<&str> = loaded
        .files
        .iter()
        .map(|f| f.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a.yaml", "b.yml"],
        "sorted, yaml only, not recursive"
    );
    assert_eq!(loaded.len(), 3);

    // The same ServiceEntry in two files: the second place is the error, naming the first.
    std::fs::write(dir.join("c.yaml"), format!("# copy\n{SE}")).unwrap();
    let diags = load_dir(&dir).unwrap_err();
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    assert!(
        d.file.ends_with("c.yaml") && d.line == Some(4) && d.is_error(),
        "{d}"
    );
    let first = format!("{}:3", dir.join("b.yml").display());
    assert!(
        d.message.contains(&format!("also defined at {first}")),
        "{d}"
    );

    let (partial, diags) = read_dir(&dir).unwrap();
    assert_eq!(
        (partial.len(), partial.resources_seen, diags.len()),
        (3, 4, 1)
    );

    let missing = dir.join("missing");
    let e = read_dir(&missing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read the directory {}", missing.display()))
    );

    let empty = temp_dir("empty");
    let (l, diags) = read_dir(&empty).unwrap();
    assert!(l.is_empty());
    assert_eq!(diags[0].severity, Severity::Warning);
    assert!(
        diags[0]
            .message
            .starts_with("no *.yaml or *.yml files here")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn a_cached_read_parses_only_the_files_that_changed() {
    let dir = temp_dir("cache");
    std::fs::write(dir.join("a.yaml"), VS).unwrap();
    std::fs::write(dir.join("b.yaml"), SE).unwrap();
    let mut cache = ReadCache::default();
    let (first, diags) = read_dir_cached(&dir, &mut cache).unwrap();
    assert!(diags.is_empty() && first.len() == 2, "{diags:?}");
    let parse_of = |cache: &ReadCache, name: &str| {
        let file = dir.join(name).display().to_string();
        cache.files.get(&file).map(|(_, p)| p.clone()).unwrap()
    };
    let (a, b) = (parse_of(&cache, "a.yaml"), parse_of(&cache, "b.yaml"));

    // b also defines a's VirtualService: a duplicate across files, though only b is parsed again.
    std::fs::write(dir.join("b.yaml"), format!("{SE}---\n{VS}")).unwrap();
    let diags = load_dir_cached(&dir, &mut cache).unwrap_err();
    assert!(
        Arc::ptr_eq(&a, &parse_of(&cache, "a.yaml")),
        "a did not change"
    );
    assert!(!Arc::ptr_eq(&b, &parse_of(&cache, "b.yaml")), "b changed");
    assert_eq!(
        diags,
        load_dir(&dir).unwrap_err(),
        "the same as reading afresh"
    );
    assert!(
        diags[0].message.starts_with("duplicate VirtualService"),
        "{diags:?}"
    );
    assert!(diags[0].file.ends_with("b.yaml"), "{diags:?}");

    // A file that goes away leaves the cache.
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    let again = load_dir_cached(&dir, &mut cache).unwrap();
    assert_eq!((again.len(), cache.files.len()), (1, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}
