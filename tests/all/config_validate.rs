//! `meshwork config validate DIR` as a user runs it: the built binary on a directory with one good and one bad file,
//! checking the exit status and every line it prints.
//!
//! The binary belongs to another package (meshwork-cli), so `CARGO_BIN_EXE_meshwork` does not exist here: the test
//! asks cargo to build it (a no-op when it is up to date; cargo has released the target directory's lock while tests
//! run) and takes the executable's path from cargo's JSON messages.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// Builds the `meshwork` binary and copies it to a private path, so that another build into the same target
/// directory cannot replace it while the test runs.
fn build_meshwork() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(root).args([
        "build",
        "-p",
        "meshwork-cli",
        "--bin",
        "meshwork",
        "--message-format=json-render-diagnostics",
    ]);
    let this = std::env::current_exe().unwrap();
    if this.components().any(|c| c.as_os_str() == "release") {
        build.arg("--release");
    }
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "building meshwork failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the meshwork executable");
    let private =
        std::env::temp_dir().join(format!("meshwork-config-validate-{}", std::process::id()));
    // A hard link (no copy of a 300 MB debug binary; a copy only across file systems) keeps this test's binary even
    // when another build replaces target/debug/meshwork meanwhile.
    let _ = std::fs::remove_file(&private);
    if std::fs::hard_link(&exe, &private).is_err() {
        std::fs::copy(&exe, &private).unwrap();
    }
    private
}

/// A fresh directory with `files` in it.
fn dir_with(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshwork-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn validate(meshwork: &Path, args: &[&str], dir: &Path) -> (Output, Vec<String>) {
    let out = Command::new(meshwork)
        .args(["config", "validate"])
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (out, lines)
}

const GOOD: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
";

const BAD: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: -10
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryOnn: 5xx}
";

#[test]
fn config_validate_reports_every_problem_with_its_line() {
    let dir = dir_with(
        "mixed",
        &[
            ("a-good.yaml", GOOD),
            ("b-bad.yaml", BAD),
            ("README.md", "not yaml"),
        ],
    );
    let bin = build_meshwork();
    let bad = dir.join("b-bad.yaml");
    let bad = bad.display();
    let (out, lines) = validate(&bin, &[], &dir);
    assert_eq!(out.status.code(), Some(1), "{lines:#?}");
    assert_eq!(
        lines,
        [
            format!(
                "error: {bad}:11: field `spec.http[0].route[1].weight`: must be 0 or more; got -10"
            ),
            format!(
                "error: {bad}:20: field `spec.http[0].retries.retryOnn`: unknown field `retryOnn`: did you mean \
                 `retryOn`? Fix the name, or remove the field"
            ),
            "2 errors, 0 warnings in 4 resources from 2 files".to_owned(),
        ]
    );

    // The good file alone passes; a warning passes too, unless --strict.
    std::fs::remove_file(dir.join("b-bad.yaml")).unwrap();
    let (out, lines) = validate(&bin, &[], &dir);
    assert_eq!(out.status.code(), Some(0), "{lines:#?}");
    assert_eq!(lines, ["0 errors, 0 warnings in 2 resources from 1 file"]);
    let empty_subset = GOOD.replace(
        "{name: v2, labels: {version: v2}}",
        "{name: v2, labels: {version: v9}}",
    );
    std::fs::write(dir.join("a-good.yaml"), &empty_subset).unwrap();
    let (out, lines) = validate(&bin, &[], &dir);
    assert_eq!(out.status.code(), Some(0), "{lines:#?}");
    assert!(
        lines[0].starts_with("warning: ")
            && lines[0].contains(":14: field `spec.subsets[1].labels`"),
        "{lines:#?}"
    );
    assert_eq!(lines[1], "0 errors, 1 warning in 2 resources from 1 file");
    let (out, _) = validate(&bin, &["--strict"], &dir);
    assert_eq!(out.status.code(), Some(1));

    // A directory that cannot be read.
    let missing = dir.join("missing");
    let (out, lines) = validate(&bin, &[], &missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(lines.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot read the directory {}",
            missing.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&bin).unwrap();
}
