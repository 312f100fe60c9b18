//! Building proxy-wasm filter crates to WebAssembly from a build script; shared by `tests/build.rs` (test filters)
//! and `cli/build.rs` (the policy filters embedded in the `meshwork` binary) through `#[path]`.
//!
//! Installs the wasm targets with rustup when they are missing and stops with a clear message when it cannot.

use std::{path::Path, process::Command};

/// The policy filters in `filters/`: (crate folder, artifact file name).
#[allow(dead_code, reason = "only the CLI's build embeds them all")]
pub const POLICIES: &[(&str, &str)] = &[
    ("router", "meshwork_filters_router.wasm"),
    ("fault", "meshwork_filters_fault.wasm"),
    ("retry", "meshwork_filters_retry.wasm"),
    ("circuit-breaker", "meshwork_filters_circuit_breaker.wasm"),
    ("authz", "meshwork_filters_authz.wasm"),
];

/// Tells cargo to rerun the build script when the filter workspace in `dir` or the SDK changes.
pub fn rerun_if_changed(dir: &Path, crates: &[&str]) {
    for f in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    for c in crates {
        for f in ["Cargo.toml", "src"] {
            println!("cargo:rerun-if-changed={}", dir.join(c).join(f).display());
        }
    }
    let sdk = dir.join("../sdk");
    for f in ["Cargo.toml", "src"] {
        println!("cargo:rerun-if-changed={}", sdk.join(f).display());
    }
}

pub fn ensure_target(target: &str) {
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

pub fn build(crate_dir: &Path, target_dir: &Path, target: &str) {
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

pub fn fail(msg: &str) -> ! {
    println!("cargo:warning={msg}");
    eprintln!("error: {msg}");
    std::process::exit(1)
}
