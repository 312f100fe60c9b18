//! Registry credentials from a Docker `config.json`, the file `docker login` writes and Kubernetes pull secrets
//! (`.dockerconfigjson`) hold.
//!
//! Lookup follows Docker: a `credHelpers` entry for the registry, else the `credsStore` helper, else the `auths` entry.
//! One difference: when a helper holds nothing for the registry, an `auths` entry with inline credentials is still
//! used (Docker would report none). Keys match by host: `https://reg:5000/v2/`, `http://reg:5000` and `reg:5000` are
//! the same registry, and `https://index.docker.io/v1/` is Docker Hub (`docker.io`, `registry-1.docker.io`).
//!
//! Identity tokens (`identitytoken`, or a helper answering user `<token>`) are OAuth2 refresh tokens that must be
//! exchanged at the registry's token endpoint; that exchange is not implemented, so they are refused with advice.
//! Credential helpers run without a timeout: some wait for the user to unlock a keychain.

mod helper;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::{Auth, OciError};

/// Why credentials could not be read (the `detail` of [`OciError::Credentials`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    /// The file is not a Docker config.
    #[error("the Docker config is not valid: {0}")]
    Json(String),
    /// An `auth` field that is not base64 "user:password".
    #[error(
        "`auths.{key}.auth` is not base64 of \"user:password\": {reason}; run `docker login` again"
    )]
    BadAuth {
        /// The `auths` key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An identity (OAuth2 refresh) token, which this crate does not exchange.
    #[error(
        "{origin} holds an identity token (an OAuth2 refresh token from `docker login`), which meshwork cannot \
         exchange for a registry token: log in with a user name and password or access token instead"
    )]
    IdentityToken {
        /// Where it came from: the config field or the helper.
        origin: String,
    },
    /// A helper name that is not a plain name.
    #[error(
        "`{field}` names `{name}`, which is not a credential helper name (docker-credential-NAME, NAME a plain name)"
    )]
    HelperName {
        /// `credsStore` or `credHelpers.KEY`.
        field: String,
        /// The name given.
        name: String,
    },
    /// The helper program could not be run.
    #[error(
        "cannot run the credential helper `docker-credential-{name}` that `{field}` names: {reason}; install it on \
         PATH or remove `{field}` from the Docker config"
    )]
    HelperMissing {
        /// The helper's name.
        name: String,
        /// `credsStore` or `credHelpers.KEY`.
        field: String,
        /// The OS error.
        reason: String,
    },
    /// The helper ran and failed.
    #[error("the credential helper `docker-credential-{name}` failed for {server}: {message}")]
    HelperFailed {
        /// The helper's name.
        name: String,
        /// The server URL asked about.
        server: String,
        /// What it printed.
        message: String,
    },
    /// The helper printed something that is not its JSON answer.
    #[error(
        "the credential helper `docker-credential-{name}` answered with something other than {{\"Username\",\"Secret\"}} JSON: {reason}"
    )]
    HelperOutput {
        /// The helper's name.
        name: String,
        /// The parse error.
        reason: String,
    },
}

/// The parts of config.json that hold credentials (other keys, such as `proxies`, are ignored).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// One `auths` entry.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

/// Credentials for `registry` (`host[:port]`, or `docker.io`) from a Docker config.json (`auths.*.auth` base64
/// "user:pass", `username`/`password`, `registrytoken`; `credHelpers`/`credsStore` by running
/// `docker-credential-NAME get`). None when the config has nothing for the registry: use [`Auth::Anonymous`].
pub fn credentials_for(config_json: &[u8], registry: &str) -> Result<Option<Auth>, OciError> {
    lookup(config_json, registry, None).map_err(|e| OciError::Credentials {
        registry: registry.to_string(),
        detail: e.to_string(),
    })
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; None without a home directory. The file may not exist.
pub fn default_config_path() -> Option<PathBuf> {
    config_path(
        std::env::var_os("DOCKER_CONFIG").as_deref(),
        std::env::home_dir(),
    )
}

fn config_path(docker_config: Option<&OsStr>, home: Option<PathBuf>) -> Option<PathBuf> {
    match docker_config {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => home.map(|home| home.join(".docker").join("config.json")),
    }
}

/// [`credentials_for`], with helpers looked up on `path` instead of the process's PATH when given.
fn lookup(
    config_json: &[u8],
    registry: &str,
    path: Option<&OsStr>,
) -> Result<Option<Auth>, CredentialsError> {
    let config: ConfigFile =
        serde_json::from_slice(config_json).map_err(|e| CredentialsError::Json(e.to_string()))?;
    let host = hostname(registry);
    if let Some((field, name)) = helper_for(&config, &host)
        && let Some(creds) = helper::get(name, &field, &server_url(&host), path)?
    {
        if creds.username == helper::TOKEN_USERNAME {
            let origin = format!("the credential helper `docker-credential-{name}`");
            return Err(CredentialsError::IdentityToken { origin });
        }
        return Ok(Some(Auth::Basic {
            username: creds.username,
            password: creds.secret,
        }));
    }
    let entry = config
        .auths
        .get_key_value(registry)
        .or_else(|| config.auths.iter().find(|(k, _)| hostname(k) == host));
    entry.map_or(Ok(None), |(key, entry)| entry_auth(key, entry))
}

/// The helper that holds the credentials of `host`, and the config field that chose it.
fn helper_for<'a>(config: &'a ConfigFile, host: &str) -> Option<(String, &'a str)> {
    let specific = config
        .cred_helpers
        .iter()
        .find(|(k, _)| hostname(k) == host);
    match (specific, &config.creds_store) {
        (Some((key, name)), _) => Some((format!("credHelpers.{key}"), name.as_str())),
        (None, Some(store)) if !store.is_empty() => {
            Some(("credsStore".to_string(), store.as_str()))
        }
        _ => None,
    }
}

/// The credentials of one `auths` entry; None for an empty entry (`{}`, as Docker leaves when a store holds them).
fn entry_auth(key: &str, entry: &AuthEntry) -> Result<Option<Auth>, CredentialsError> {
    if !entry.identitytoken.is_empty() {
        return Err(CredentialsError::IdentityToken {
            origin: format!("`auths.{key}.identitytoken`"),
        });
    }
    if !entry.registrytoken.is_empty() {
        return Ok(Some(Auth::Bearer(entry.registrytoken.clone())));
    }
    if !entry.auth.is_empty() {
        let bad = |reason: String| CredentialsError::BadAuth {
            key: key.to_string(),
            reason,
        };
        let decoded = STANDARD
            .decode(entry.auth.trim())
            .map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("not UTF-8".into()))?;
        let (username, password) = text.split_once(':').ok_or_else(|| bad("no `:`".into()))?;
        return Ok(Some(Auth::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    if entry.username.is_empty() && entry.password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Auth::Basic {
        username: entry.username.clone(),
        password: entry.password.clone(),
    }))
}

/// The registry host a config key or registry name means: no scheme, no path, lower case, Docker Hub's aliases
/// folded to `index.docker.io`.
fn hostname(key: &str) -> String {
    let key = key.trim();
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io".to_string(),
        _ => host,
    }
}

/// The server URL helpers are asked about: what `docker login` stored (`https://index.docker.io/v1/` for Docker Hub).
fn server_url(host: &str) -> String {
    if host == "index.docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests;
