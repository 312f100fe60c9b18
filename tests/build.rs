//! Builds the test filters in `tests/filters/` (a separate workspace, `proxy-wasm` crate), the policy filters in
//! `filters/` and the example filters to WebAssembly, so the end-to-end tests load real modules.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "cargo reads build-script directives from stdout; errors go to stderr"
)]

#[path = "../filters/wasm_build.rs"]
mod wasm_build;

use std::path::PathBuf;

use wasm_build::{POLICIES, build, ensure_target, fail, rerun_if_changed};

const TARGETS: &[(&str, &str)] = &[
    ("wasm32-wasip1", "PROBE_WASM"),
    ("wasm32-unknown-unknown", "PROBE_WASM_UNKNOWN"),
];

/// Example filters (folder under examples/, artifact, env var naming the artifact for the tests).
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("my-filter", "my_filter.wasm", "MY_FILTER_WASM"),
    (
        "header-rewrite",
        "header_rewrite.wasm",
        "HEADER_REWRITE_WASM",
    ),
    ("rate-limit", "rate_limit.wasm", "RATE_LIMIT_WASM"),
    ("hmac-auth", "hmac_auth.wasm", "HMAC_AUTH_WASM"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let filters = manifest_dir.join("filters");
    rerun_if_changed(&filters, &["probe", "sdk-demo"]);
    let policies = manifest_dir.join("../filters");
    let names: Vec<&str> = POLICIES.iter().map(|(c, _)| *c).collect();
    rerun_if_changed(&policies, &names);
    let target_dir = manifest_dir.join("../target/wasm-filters");
    for (target, var) in TARGETS {
        ensure_target(target);
        build(&filters, &target_dir, target);
        let wasm = target_dir
            .join(target)
            .join("release/meshwork_test_probe.wasm");
        if !wasm.exists() {
            fail(&format!(
                "the build succeeded but {} is missing",
                wasm.display()
            ));
        }
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
    let release = target_dir.join("wasm32-wasip1/release");
    println!(
        "cargo:rustc-env=SDK_DEMO_WASM={}",
        release.join("meshwork_test_sdk_demo.wasm").display()
    );
    // The policy filters: FILTER_<NAME>_WASM (e.g. FILTER_CIRCUIT_BREAKER_WASM).
    build(&policies, &target_dir, "wasm32-wasip1");
    for (name, file) in POLICIES {
        let var = format!("FILTER_{}_WASM", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", release.join(file).display());
    }
    // The example filters, so documented examples are tested too.
    for (dir, file, var) in EXAMPLES {
        let example = manifest_dir.join("../examples").join(dir);
        for f in ["Cargo.toml", "Cargo.lock", "src"] {
            println!("cargo:rerun-if-changed={}", example.join(f).display());
        }
        build(&example, &target_dir, "wasm32-wasip1");
        println!("cargo:rustc-env={var}={}", release.join(file).display());
    }
}
