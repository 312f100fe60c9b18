//! The compiled filter in meshwork's own engine (`meshwork_host::wasm::harness`), no proxy and no network: the crate is
//! built to wasm32-wasip1 first (once per test run), then each test drives requests through the module.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use meshwork_host::wasm::harness::{Decision, Harness};
use serde_json::{Value, json};

/// Builds the filter (`cargo build --release --target wasm32-wasip1`) and returns the module's path.
fn module() -> &'static PathBuf {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    MODULE.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--release", "--target", "wasm32-wasip1"])
            .arg("--message-format=json-render-diagnostics")
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building the filter failed (is the target installed? `rustup target add wasm32-wasip1`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact")
            .flat_map(|msg| msg["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.extension().is_some_and(|e| e == "wasm"))
            .expect("the build produced a .wasm module")
    })
}

fn load(config: Value) -> Harness {
    Harness::load(module(), config).expect("the filter starts")
}

#[test]
fn a_request_with_the_header_goes_on_tagged() {
    let filter = load(json!({"requiredHeader": "x-team"}));
    let mut req = filter
        .request("GET", "/orders", &[("host", "shop"), ("x-team", "blue")])
        .expect("a request context");
    assert_eq!(
        req.request_headers(true).expect("no trap"),
        Decision::Continue
    );
    let tag = req.request_header("x-checked-by").expect("the tag header");
    assert!(tag.starts_with("harness-"), "the plugin's name: {tag}");
}

#[test]
fn a_request_without_the_header_is_refused() {
    let filter = load(json!({"requiredHeader": "x-team", "denyStatus": 401}));
    let mut req = filter
        .request("GET", "/orders", &[("host", "shop")])
        .expect("a request context");
    match req.request_headers(true).expect("no trap") {
        Decision::LocalReply(reply) => {
            assert_eq!(reply.status, 401);
            assert_eq!(&reply.body[..], b"missing header `x-team`");
        }
        other => panic!("expected a local reply, got {other:?}"),
    }
}

#[test]
fn a_value_outside_the_allowed_ones_is_refused() {
    let filter = load(json!({"requiredHeader": "x-team", "allowedValues": ["blue"]}));
    let mut req = filter
        .request("GET", "/", &[("x-team", "red")])
        .expect("a request context");
    assert!(
        matches!(req.request_headers(true).expect("no trap"), Decision::LocalReply(r) if r.status == 403)
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    for (config, field) in [
        (
            json!({"requiredHeader": "x-team", "denyStatus": 99}),
            "denyStatus",
        ),
        (
            json!({"requiredHeader": "x-team", "colour": "red"}),
            "colour",
        ),
        (json!({}), "requiredHeader"),
    ] {
        let err = match Harness::load(module(), config.clone()) {
            Ok(_) => panic!("{config} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(field), "{config}: {err}");
    }
}
