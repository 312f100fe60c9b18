//! The policy filters' own unit tests (the table tests of their pure decisions in `filters/*`), run natively as part
//! of this suite: `filters/` is a separate workspace built for wasm, so `cargo test --workspace` would not reach them.

use std::process::Command;

#[test]
fn the_policy_filters_unit_tests_pass() {
    let filters = concat!(env!("CARGO_MANIFEST_DIR"), "/../filters");
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm-filters");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(filters)
        .args(["test", "--locked", "--target-dir", target])
        // The outer build's settings are for this crate, not for the filters workspace.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`cargo test` in filters/ failed:\n{stdout}\n{stderr}"
    );
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 20,
        "the filters' tables ran ({passed} tests):\n{stdout}"
    );
}
