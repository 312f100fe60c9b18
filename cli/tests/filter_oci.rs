//! `meshwork filter keygen|push|pull|sign|verify` as a user runs them, against Debian's docker-registry with htpasswd
//! on loopback: both push formats round trip byte for byte, credentials come from flags or a Docker config.json, and
//! signatures verify with the right key only.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use meshwork_oci::testing::Registry;

fn meshwork(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwork"))
        .args(args)
        // No user Docker config leaks in: DOCKER_CONFIG points into the test's directory.
        .env("DOCKER_CONFIG", home.join("docker"))
        .env_remove("MESHWORK_REGISTRY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
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

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value after `label` on its line of `text`.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` in {text}"))
}

fn temp() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshwork-cli-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    dir
}

#[test]
fn push_pull_sign_and_verify_through_a_private_registry() {
    let registry = Registry::start_with_basic("ci", "pa55");
    let home = temp();
    let s = |p: &Path| p.display().to_string();
    // A valid module: the header and a 255-byte custom section `data` (size 255 in LEB128: 0xff 0x01).
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend([0, 0xff, 0x01, 4]);
    module.extend_from_slice(b"data");
    module.extend([b'x'; 250]);
    let file = home.join("f.wasm");
    let file_arg = s(&file);
    std::fs::write(&file, &module).unwrap();
    let reference = format!("{}/filters/mine:1", registry.address());
    let flags = ["--username", "ci", "--password-stdin"];

    // No credentials: refused, saying what to do.
    let refused = failed(&meshwork(
        &home,
        &["filter", "push", &s(&file), &reference],
        None,
    ));
    assert!(refused.contains("--username"), "{refused}");

    // Istio format, Basic auth from flags; then the CNCF format under another tag.
    let mut args = vec!["filter", "push", &file_arg, &reference];
    args.extend(flags);
    let pushed = ok(&meshwork(&home, &args, Some("pa55\n")));
    let manifest = field(&pushed, "manifest digest").to_string();
    let sha = field(&pushed, "wasm sha256").to_string();
    let cncf_ref = format!("{}/filters/mine:cncf", registry.address());
    let mut args = vec!["filter", "push", &file_arg, &cncf_ref, "--format", "cncf"];
    args.extend(flags);
    let cncf = ok(&meshwork(&home, &args, Some("pa55")));
    assert_eq!(field(&cncf, "wasm sha256"), sha);
    assert_ne!(field(&cncf, "manifest digest"), manifest);

    // Pull with credentials from a Docker config.json, by tag and by digest.
    let config =
        serde_json::json!({"auths": {registry.address(): {"username": "ci", "password": "pa55"}}});
    std::fs::write(home.join("docker/config.json"), config.to_string()).unwrap();
    for r in [
        reference.clone(),
        format!("{}/filters/mine@{manifest}", registry.address()),
        cncf_ref,
    ] {
        let out = home.join("pulled.wasm");
        let pulled = ok(&meshwork(
            &home,
            &["filter", "pull", &r, "-o", &s(&out)],
            None,
        ));
        assert_eq!(field(&pulled, "wasm sha256"), sha, "{r}");
        assert_eq!(std::fs::read(&out).unwrap(), module, "{r}");
    }

    // Keys, a signature, and verification with the right and the wrong key.
    ok(&meshwork(
        &home,
        &["filter", "keygen", "--prefix", &s(&home.join("team"))],
        None,
    ));
    ok(&meshwork(
        &home,
        &["filter", "keygen", "--prefix", &s(&home.join("other"))],
        None,
    ));
    let again = failed(&meshwork(
        &home,
        &["filter", "keygen", "--prefix", &s(&home.join("team"))],
        None,
    ));
    assert!(again.contains("--force"), "{again}");
    let unsigned = failed(&meshwork(
        &home,
        &[
            "filter",
            "verify",
            &reference,
            "--key",
            &s(&home.join("team.pub")),
        ],
        None,
    ));
    assert!(
        unsigned.contains("no signature")
            || unsigned.contains("unsigned")
            || unsigned.contains("not signed"),
        "{unsigned}"
    );
    let signed = ok(&meshwork(
        &home,
        &[
            "filter",
            "sign",
            &reference,
            "--key",
            &s(&home.join("team.key")),
        ],
        None,
    ));
    assert_eq!(field(&signed, "manifest digest"), manifest);
    let verified = ok(&meshwork(
        &home,
        &[
            "filter",
            "verify",
            &reference,
            "--key",
            &s(&home.join("other.pub")),
            "--key",
            &s(&home.join("team.pub")),
        ],
        None,
    ));
    assert!(
        field(&verified, "signed by").starts_with(&s(&home.join("team.pub"))),
        "{verified}"
    );
    let wrong = failed(&meshwork(
        &home,
        &[
            "filter",
            "verify",
            &reference,
            "--key",
            &s(&home.join("other.pub")),
        ],
        None,
    ));
    assert!(!wrong.is_empty());
    let _ = std::fs::remove_dir_all(&home);
}
