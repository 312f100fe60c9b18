//! Builds the test filters in `tests/filters/` (a separate workspace, `proxy-wasm` crate) to WebAssembly, so the
//! end-to-end tests load real modules. Installs the wasm targets with rustup when they are missing and stops with a
//! clear message when it cannot.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "cargo reads build-script directives from stdout; errors go to stderr"
)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const TARGETS: &[(&str, &str)] = &[
    ("wasm32-wasip1", "PROBE_WASM"),
    ("wasm32-unknown-unknown", "PROBE_WASM_UNKNOWN"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let filters = manifest_dir.join("filters");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "probe/Cargo.toml",
        "probe/src",
        "sdk-demo/Cargo.toml",
        "sdk-demo/src",
    ] {
        println!("cargo:rerun-if-changed={}", filters.join(f).display());
    }
    // The SDK demo filter is built from the SDK's sources.
    for f in ["Cargo.toml", "src"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest_dir.join("../sdk").join(f).display()
        );
    }
    let example = manifest_dir.join("../examples/my-filter");
    for f in ["Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={}", example.join(f).display());
    }
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
    let demo = target_dir.join("wasm32-wasip1/release/meshwork_test_sdk_demo.wasm");
    println!("cargo:rustc-env=SDK_DEMO_WASM={}", demo.display());
    // The filter of docs/filters.md and examples/wasm-filter.yaml, so the documented example is tested too.
    build(&example, &target_dir, "wasm32-wasip1");
    let wasm = target_dir.join("wasm32-wasip1/release/my_filter.wasm");
    println!("cargo:rustc-env=MY_FILTER_WASM={}", wasm.display());
}

fn ensure_target(target: &str) {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == target)
        })
        .unwrap_or(false);
    if installed {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        fail(&format!(
            "the {target} target is not installed and `rustup target add {target}` failed ({status:?}); install it \
             by hand (rustup target add {target}) and build again"
        ));
    }
}

fn build(crate_dir: &Path, target_dir: &Path, target: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate_dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(target_dir)
        // The outer build's flags and target settings are for the host, not for wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        fail(&format!(
            "building the filter in {} for {target} failed ({status:?}); run `cargo build --release --target \
             {target}` there to see why",
            crate_dir.display()
        ));
    }
}

fn fail(msg: &str) -> ! {
    println!("cargo:warning={msg}");
    eprintln!("error: {msg}");
    std::process::exit(1)
}
