//! Builds the policy filters in `filters/` to WebAssembly so the `meshwork` binary embeds them
//! (`builtin://router`, ...). Installs the wasm32-wasip1 target with rustup when it is missing.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "cargo reads build-script directives from stdout; errors go to stderr"
)]

#[path = "../filters/wasm_build.rs"]
mod wasm_build;

use std::path::PathBuf;

use wasm_build::{POLICIES, build, ensure_target, fail, rerun_if_changed};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let policies = manifest_dir.join("../filters");
    let names: Vec<&str> = POLICIES.iter().map(|(c, _)| *c).collect();
    rerun_if_changed(&policies, &names);
    let target_dir = manifest_dir.join("../target/wasm-filters");
    ensure_target("wasm32-wasip1");
    build(&policies, &target_dir, "wasm32-wasip1");
    let release = target_dir.join("wasm32-wasip1/release");
    for (name, file) in POLICIES {
        let wasm = release.join(file);
        if !wasm.exists() {
            fail(&format!(
                "the build succeeded but {} is missing",
                wasm.display()
            ));
        }
        let var = format!("FILTER_{}_WASM", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
