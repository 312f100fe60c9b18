//! Table tests of the Docker config lookup, with a fake credential helper script on PATH.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

fn basic(user: &str, pass: &str) -> Auth {
    Auth::Basic {
        username: user.into(),
        password: pass.into(),
    }
}

/// Runs the table: each case is (config JSON, registry, Ok(credentials) or Err(part of the message)).
fn check(path: Option<&OsStr>, cases: &[(&str, &str, Result<Option<Auth>, &str>)]) {
    for (config, registry, want) in cases {
        match (lookup(config.as_bytes(), registry, path), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{registry} in {config}"),
            (Err(err), Err(want)) => assert!(err.to_string().contains(want), "{registry}: {err}"),
            (got, want) => panic!("{registry} in {config}: {got:?} != {want:?}"),
        }
    }
}

#[test]
fn hosts_match_with_or_without_scheme_path_and_hub_aliases() {
    let cases = [
        ("reg:5000", "reg:5000"),
        ("https://reg:5000/v2/", "reg:5000"),
        ("http://REG.example.com", "reg.example.com"),
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("docker.io", "index.docker.io"),
        ("registry-1.docker.io", "index.docker.io"),
        ("ghcr.io/owner", "ghcr.io"),
    ];
    for (key, want) in cases {
        assert_eq!(hostname(key), want, "{key}");
    }
    assert_eq!(server_url("index.docker.io"), "https://index.docker.io/v1/");
    assert_eq!(server_url("reg:5000"), "reg:5000");
}

#[test]
fn config_path_prefers_docker_config() {
    let home = Some(PathBuf::from("/home/ann"));
    let cases: [(Option<&str>, Option<PathBuf>, Option<&str>); 4] = [
        (Some("/etc/dc"), home.clone(), Some("/etc/dc/config.json")),
        (
            Some(""),
            home.clone(),
            Some("/home/ann/.docker/config.json"),
        ),
        (None, home, Some("/home/ann/.docker/config.json")),
        (None, None, None),
    ];
    for (env, home, want) in cases {
        assert_eq!(
            config_path(env.map(OsStr::new), home),
            want.map(PathBuf::from),
            "{env:?}"
        );
    }
}

#[test]
fn auths_entries() {
    // "ann:pa:ss" and "bob" in base64.
    let cases: &[(&str, &str, Result<Option<Auth>, &str>)] = &[
        (
            r#"{"auths":{"reg:5000":{"auth":"YW5uOnBhOnNz"}}}"#,
            "reg:5000",
            Ok(Some(basic("ann", "pa:ss"))),
        ),
        (
            r#"{"auths":{"https://reg:5000/v1/":{"auth":"YW5uOnBhOnNz"}}}"#,
            "reg:5000",
            Ok(Some(basic("ann", "pa:ss"))),
        ),
        (
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YW5uOnBhOnNz"}}}"#,
            "docker.io",
            Ok(Some(basic("ann", "pa:ss"))),
        ),
        (
            r#"{"auths":{"reg":{"username":"ann","password":"pw"}}}"#,
            "reg",
            Ok(Some(basic("ann", "pw"))),
        ),
        (
            r#"{"auths":{"reg":{"registrytoken":"tok"}}}"#,
            "reg",
            Ok(Some(Auth::Bearer("tok".into()))),
        ),
        (r#"{"auths":{"reg":{}},"psFormat":"x"}"#, "reg", Ok(None)),
        (
            r#"{"auths":{"other":{"auth":"YW5uOnBhOnNz"}}}"#,
            "reg",
            Ok(None),
        ),
        (r#"{}"#, "reg", Ok(None)),
        (
            r#"{"auths":{"reg":{"auth":"Ym9i"}}}"#,
            "reg",
            Err("`auths.reg.auth` is not base64 of \"user:password\": no `:`"),
        ),
        (
            r#"{"auths":{"reg":{"auth":"!!"}}}"#,
            "reg",
            Err("`auths.reg.auth` is not base64"),
        ),
        (
            r#"{"auths":{"reg":{"auth":"YW5uOg==","identitytoken":"rt"}}}"#,
            "reg",
            Err("`auths.reg.identitytoken` holds an identity token"),
        ),
        (
            r#"{"auths":["reg"]}"#,
            "reg",
            Err("the Docker config is not valid: invalid type"),
        ),
        ("", "reg", Err("the Docker config is not valid")),
    ];
    check(None, cases);
    let err = credentials_for(b"{", "reg:5000").expect_err("not a config");
    assert_eq!(err.reason(), "credentials");
    assert!(
        err.to_string()
            .starts_with("credentials for reg:5000: the Docker config is not valid"),
        "{err}"
    );
}

/// A temporary directory holding one executable script, removed on drop.
struct Bin(PathBuf);

impl Bin {
    fn new(name: &str, script: &str) -> Bin {
        use std::os::unix::fs::PermissionsExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "meshwork-oci-helpers-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join(name);
        std::fs::write(&file, script).expect("script");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Bin(dir)
    }

    /// PATH with this directory first.
    fn path(&self) -> OsString {
        let system = std::env::var_os("PATH").unwrap_or_default();
        std::env::join_paths(std::iter::once(self.0.clone()).chain(std::env::split_paths(&system)))
            .expect("PATH")
    }

    fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A helper that answers like docker-credential-helpers for a few servers.
const FAKE_HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unexpected action $1" >&2; exit 2; }
server=$(cat)
case "$server" in
  reg.example.com) echo '{"ServerURL":"reg.example.com","Username":"ann","Secret":"from-helper"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"hub-pw"}' ;;
  token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"refresh"}' ;;
  garbled.example.com) echo 'user=ann' ;;
  locked.example.com) echo 'the keychain is locked' >&2; exit 3 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#;

/// Every helper case in one test: the script is written once, before any of them runs.
#[test]
fn credential_helpers_run_from_path() {
    let bin = Bin::new("docker-credential-fake", FAKE_HELPER);
    assert!(bin.dir().join("docker-credential-fake").exists());
    let inline =
        r#"{"credsStore":"fake","auths":{"fallback.example.com":{"auth":"YW5uOnBhOnNz"}}}"#;
    let cases: &[(&str, &str, Result<Option<Auth>, &str>)] = &[
        (
            r#"{"credsStore":"fake"}"#,
            "reg.example.com",
            Ok(Some(basic("ann", "from-helper"))),
        ),
        (
            r#"{"credsStore":"fake","auths":{"reg.example.com":{}}}"#,
            "reg.example.com",
            Ok(Some(basic("ann", "from-helper"))),
        ),
        (
            r#"{"credsStore":"fake"}"#,
            "docker.io",
            Ok(Some(basic("hub", "hub-pw"))),
        ),
        (
            r#"{"credHelpers":{"reg.example.com":"fake"}}"#,
            "reg.example.com",
            Ok(Some(basic("ann", "from-helper"))),
        ),
        (
            r#"{"credHelpers":{"other.example.com":"fake"},"auths":{"reg.example.com":{"username":"u","password":"p"}}}"#,
            "reg.example.com",
            Ok(Some(basic("u", "p"))),
        ),
        (
            r#"{"credsStore":"absent","credHelpers":{"reg.example.com":"fake"}}"#,
            "reg.example.com",
            Ok(Some(basic("ann", "from-helper"))),
        ),
        (r#"{"credsStore":"fake"}"#, "unknown.example.com", Ok(None)),
        (
            inline,
            "fallback.example.com",
            Ok(Some(basic("ann", "pa:ss"))),
        ),
        (
            r#"{"credsStore":"fake"}"#,
            "token.example.com",
            Err("the credential helper `docker-credential-fake` holds an identity token"),
        ),
        (
            r#"{"credsStore":"fake"}"#,
            "garbled.example.com",
            Err("answered with something other than"),
        ),
        (
            r#"{"credsStore":"fake"}"#,
            "locked.example.com",
            Err("`docker-credential-fake` failed for locked.example.com: the keychain is locked"),
        ),
        (
            r#"{"credsStore":"absent"}"#,
            "reg.example.com",
            Err(
                "cannot run the credential helper `docker-credential-absent` that `credsStore` names",
            ),
        ),
        (
            r#"{"credHelpers":{"https://reg.example.com":"gone"}}"#,
            "reg.example.com",
            Err("remove `credHelpers.https://reg.example.com` from the Docker config"),
        ),
    ];
    check(Some(&bin.path()), cases);
}
