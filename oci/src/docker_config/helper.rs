//! Docker credential helpers: `docker-credential-NAME get` reads a server URL on stdin and prints
//! `{"ServerURL","Username","Secret"}`, or "credentials not found in native keychain" with a failing status.

use std::ffi::OsStr;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::CredentialsError;

/// What helpers print when they hold nothing for the server (docker-credential-helpers `ErrCredentialsNotFound`).
const NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name helpers return when `Secret` is an identity token rather than a password.
pub(super) const TOKEN_USERNAME: &str = "<token>";

/// A helper's answer.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HelperCredentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub secret: String,
}

/// Runs `docker-credential-NAME get` for `server`, found on `path` (the process's PATH when None). `field` names the
/// config entry that chose the helper, for errors. None when the helper holds nothing for `server`.
pub(super) fn get(
    name: &str,
    field: &str,
    server: &str,
    path: Option<&OsStr>,
) -> Result<Option<HelperCredentials>, CredentialsError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_whitespace) {
        return Err(CredentialsError::HelperName {
            field: field.to_string(),
            name: name.to_string(),
        });
    }
    let mut command = Command::new(format!("docker-credential-{name}"));
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let missing = |e: std::io::Error| CredentialsError::HelperMissing {
        name: name.to_string(),
        field: field.to_string(),
        reason: e.to_string(),
    };
    let mut child = command.spawn().map_err(missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading breaks the pipe; its status and output say what happened.
        if let Err(e) = stdin.write_all(server.as_bytes()) {
            tracing::debug!(helper = name, error = %e, "writing the server URL to the credential helper");
        }
    }
    let out = child.wait_with_output().map_err(missing)?;
    tracing::debug!(helper = name, server, status = %out.status, "ran the credential helper");
    answer(name, server, out.status.success(), &out.stdout, &out.stderr)
}

/// Interprets a helper's exit status and output.
fn answer(
    name: &str,
    server: &str,
    success: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<HelperCredentials>, CredentialsError> {
    if !success {
        let message = String::from_utf8_lossy(if stdout.trim_ascii().is_empty() {
            stderr
        } else {
            stdout
        });
        let message = message.trim();
        if message.contains(NOT_FOUND) {
            return Ok(None);
        }
        return Err(CredentialsError::HelperFailed {
            name: name.to_string(),
            server: server.to_string(),
            message: message.chars().take(300).collect(),
        });
    }
    let creds: HelperCredentials =
        serde_json::from_slice(stdout).map_err(|e| CredentialsError::HelperOutput {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Some(creds).filter(|c| !(c.username.is_empty() && c.secret.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_credentials_nothing_or_errors() {
        let creds = |u: &str, s: &str| HelperCredentials {
            username: u.into(),
            secret: s.into(),
        };
        let cases: &[(bool, &str, &str, Result<Option<HelperCredentials>, &str>)] = &[
            (
                true,
                r#"{"ServerURL":"r","Username":"ann","Secret":"pw"}"#,
                "",
                Ok(Some(creds("ann", "pw"))),
            ),
            (
                true,
                r#"{"Username":"<token>","Secret":"rt"}"#,
                "",
                Ok(Some(creds("<token>", "rt"))),
            ),
            (
                true,
                r#"{"ServerURL":"r","Username":"","Secret":""}"#,
                "",
                Ok(None),
            ),
            (
                false,
                "credentials not found in native keychain\n",
                "",
                Ok(None),
            ),
            (
                false,
                "",
                "keychain is locked",
                Err("`docker-credential-x` failed for reg: keychain is locked"),
            ),
            (
                true,
                "user=ann",
                "",
                Err("answered with something other than {\"Username\",\"Secret\"} JSON"),
            ),
        ];
        for (success, stdout, stderr, want) in cases {
            match (
                answer("x", "reg", *success, stdout.as_bytes(), stderr.as_bytes()),
                want,
            ) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{stdout}"),
                (Err(err), Err(want)) => assert!(err.to_string().contains(want), "{err}"),
                (got, want) => panic!("{stdout}: {got:?} != {want:?}"),
            }
        }
    }

    #[test]
    fn helper_names_cannot_be_paths() {
        for name in ["", "../../bin/sh", "a b"] {
            let err = get(name, "credsStore", "reg", None)
                .expect_err(name)
                .to_string();
            assert!(err.contains("is not a credential helper name"), "{err}");
        }
    }
}
