//! The unit tests of the filters built to wasm — the policy filters' table tests of their pure decisions
//! (`filters/*`) and the example filters' (`examples/*`) — run natively as part of this suite: each is a separate
//! Cargo workspace, so `cargo test --workspace` would not reach them.

use std::process::Command;

/// Runs `cargo test` in `dir` (relative to the repository root); the number of tests that passed.
fn cargo_test(dir: &str) -> usize {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let target = format!("{root}/target/wasm-filters");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(format!("{root}/{dir}"))
        .args(["test", "--locked", "--target-dir", &target])
        // The outer build's settings are for this crate, not for the filter workspaces.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`cargo test` in {dir} failed:\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn the_policy_filters_unit_tests_pass() {
    let passed = cargo_test("filters");
    assert!(passed >= 50, "the filters' tables ran ({passed} tests)");
}

#[test]
fn the_example_filters_unit_tests_pass() {
    for (dir, at_least) in [
        ("examples/header-rewrite", 5),
        ("examples/rate-limit", 5),
        ("examples/hmac-auth", 5),
    ] {
        let passed = cargo_test(dir);
        assert!(passed >= at_least, "{dir}: {passed} tests ran");
    }
}
