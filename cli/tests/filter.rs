//! `meshwork filter build` and `meshwork filter test` as a user runs them: the example filter crate is built to
//! WebAssembly, then a request goes through the result.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::process::Command;

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
