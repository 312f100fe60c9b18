//! `meshwork filter new`, `build` and `test` as a user runs them: a crate made from the template and the example filter
//! crate are built to WebAssembly, then requests go through the results.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn meshwork() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meshwork"));
    // The outer cargo's settings are for this test build, not for the filter's.
    c.env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    c
}

#[test]
fn build_then_test_the_example_filter() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/my-filter");
    let target = std::env::temp_dir().join(format!("meshwork-filter-build-{}", std::process::id()));
    let out = meshwork()
        .args(["filter", "build", example])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with("wasm32-wasip1/release/my_filter.wasm"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("size   ") && lines[1].ends_with(" bytes"),
        "{stdout}"
    );
    assert_eq!(lines[2].len(), "sha256 ".len() + 64, "{stdout}");

    let out = meshwork()
        .args([
            "filter",
            "test",
            lines[0],
            "--config",
            "hi",
            "--request",
            "GET /x",
            "-H",
            "host: svc",
            "--response",
            "200",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("request headers: CONTINUE"), "{stdout}");
    assert!(stdout.contains("x-hello: hi   (filter)"), "{stdout}");
    assert!(
        stdout.contains("response headers (200): CONTINUE"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&target).unwrap();
}

#[test]
fn a_filter_that_refuses_its_config_is_reported() {
    let out = meshwork()
        .args(["filter", "test", "/nonexistent/filter.wasm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the filter did not start") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

/// The target directory of this test build: the new crate's build shares it, so meshwork's engine (a dev-dependency of
/// the template's harness test) is not compiled again.
fn shared_target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_meshwork"));
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn new_makes_a_crate_that_builds_passes_the_filter_test_and_its_own_tests() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let root = std::env::temp_dir().join(format!("meshwork-filter-new-{}", std::process::id()));
    let dir = root.join("team-check");
    let new = |dir: &Path| {
        meshwork()
            .args(["filter", "new", "team-check", "--dir"])
            .arg(dir)
            .arg("--sdk-path")
            .arg(format!("{repo}/sdk"))
            .arg("--host-path")
            .arg(format!("{repo}/host"))
            .output()
            .unwrap()
    };
    let stdout = ok(&new(&dir));
    assert!(
        stdout.contains("created filter crate `team-check`"),
        "{stdout}"
    );
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "tests/harness.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(dir.join(f).is_file(), "{f} is missing");
    }
    let again = new(&dir);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );

    // Offline: every dependency must come from the lock file the checkout gave and the local registry cache.
    let cargo = || {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(&dir)
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS");
        c
    };
    ok(&cargo().args(["fmt", "--", "--check"]).output().unwrap());
    let stdout = ok(&meshwork()
        .args(["filter", "build"])
        .arg(&dir)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap());
    let wasm = stdout.lines().next().unwrap().to_string();
    assert!(
        wasm.ends_with("wasm32-wasip1/release/team_check.wasm"),
        "{stdout}"
    );

    let test = |headers: &[&str]| {
        let mut c = meshwork();
        c.args([
            "filter",
            "test",
            &wasm,
            "--config",
            r#"{"requiredHeader": "x-team"}"#,
        ]);
        for h in headers {
            c.args(["-H", h]);
        }
        ok(&c.output().unwrap())
    };
    let passed = test(&["x-team: blue"]);
    assert!(passed.contains("request headers: CONTINUE"), "{passed}");
    assert!(
        passed.contains("x-checked-by: harness-1   (filter)"),
        "{passed}"
    );
    let refused = test(&[]);
    assert!(
        refused.contains("request headers: LOCAL REPLY 403")
            && refused.contains("body: missing header `x-team`"),
        "{refused}"
    );

    // The template's own tests: unit tests, then tests/harness.rs (which builds the module itself).
    let stdout = ok(&cargo().arg("test").output().unwrap());
    assert!(stdout.contains("test result: ok. 2 passed"), "{stdout}");
    assert!(stdout.contains("test result: ok. 4 passed"), "{stdout}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn new_refuses_a_bad_name_and_explains_the_sdk_dependency() {
    let out = meshwork()
        .args(["filter", "new", "my.filter", "--dir", "/nonexistent/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`my.filter` cannot be a crate name: `.` is not allowed"),
        "{stderr}"
    );

    let root =
        std::env::temp_dir().join(format!("meshwork-filter-new-bare-{}", std::process::id()));
    let dir = root.join("bare");
    ok(&meshwork()
        .args(["filter", "new", "bare", "--dir"])
        .arg(&dir)
        .output()
        .unwrap());
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("meshwork-sdk = \"0.1\""), "{cargo}");
    assert!(!cargo.contains("meshwork-host"), "{cargo}");
    assert!(!dir.join("tests").exists() && !dir.join("Cargo.lock").exists());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("not published on crates.io yet") && readme.contains("--host-path"),
        "{readme}"
    );

    let out = meshwork()
        .args([
            "filter",
            "new",
            "x",
            "--sdk-path",
            "/nonexistent/sdk",
            "--dir",
        ])
        .arg(root.join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--sdk-path /nonexistent/sdk: no Cargo.toml there"),
        "{stderr}"
    );
    assert!(!root.join("x").exists(), "nothing is created on an error");
    std::fs::remove_dir_all(&root).unwrap();
}
