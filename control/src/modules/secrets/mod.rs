//! Pull secrets: the Docker `config.json` that WasmPlugin `imagePullSecret: NAME` names in the plugin's namespace.
//! [`PullSecrets`] is where they come from: files (`--pull-secrets DIR`: `DIR/NAMESPACE/NAME.json`,
//! [`SecretFiles`]), or with the `kube` feature the cluster's Secrets, as in Istio ([`kube::KubeSecrets`]).

#[cfg(feature = "kube")]
pub mod kube;

use std::path::PathBuf;

use super::resolve::{Pending, PullError};

/// Where pull secrets come from.
pub trait PullSecrets: Send + Sync {
    /// The Docker `config.json` (its bytes) of pull secret `name` in `namespace`.
    fn docker_config<'a>(&'a self, namespace: &'a str, name: &'a str) -> Pending<'a, Vec<u8>>;
    /// Where pull secret `name` of `namespace` is, for messages (`Secret NS/NAME`, a file).
    fn describe(&self, namespace: &str, name: &str) -> String;
}

/// Pull secrets as files, `DIR/NAMESPACE/NAME.json`; without a directory, a plugin with a pull secret does not
/// resolve.
pub struct SecretFiles {
    dir: Option<PathBuf>,
}

impl SecretFiles {
    /// The pull secrets in `dir` (`--pull-secrets`), or none.
    pub fn new(dir: Option<PathBuf>) -> Self {
        SecretFiles { dir }
    }
}

impl PullSecrets for SecretFiles {
    fn docker_config<'a>(&'a self, namespace: &'a str, name: &'a str) -> Pending<'a, Vec<u8>> {
        Box::pin(async move {
            check_name(name)?;
            let Some(dir) = &self.dir else {
                return Err(PullError::new(
                    "credentials",
                    format!(
                        "imagePullSecret `{name}`: the control plane has no pull secrets; start it with \
                         --pull-secrets DIR holding {namespace}/{name}.json"
                    ),
                ));
            };
            let file = dir.join(namespace).join(format!("{name}.json"));
            // A small local file, read once per resolution: not worth a blocking-pool thread.
            std::fs::read(&file).map_err(|e| {
                PullError::new(
                    "credentials",
                    format!(
                        "pull secret {namespace}/{name}: cannot read {}: {e}",
                        file.display()
                    ),
                )
            })
        })
    }

    fn describe(&self, namespace: &str, name: &str) -> String {
        match &self.dir {
            Some(dir) => format!(
                "pull secret {namespace}/{name} ({})",
                dir.join(namespace).join(format!("{name}.json")).display()
            ),
            None => format!("pull secret {namespace}/{name}"),
        }
    }
}

/// Checks that `name` is a Kubernetes object name (a DNS subdomain: lower-case letters, digits, `-` and `.`, each
/// dot-separated label starting and ending with a letter or digit, 253 characters at most), so that it is also a
/// plain file name and a plain path segment.
pub fn check_name(name: &str) -> Result<(), PullError> {
    let label_ok = |l: &str| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        l.chars().all(|c| alnum(c) || c == '-') && l.starts_with(alnum) && l.ends_with(alnum)
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return Ok(());
    }
    Err(PullError::new(
        "credentials",
        format!(
            "imagePullSecret `{name}` is not a Secret name: use lower-case letters, digits, `-` and `.`, starting \
             and ending with a letter or digit"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        let table = [
            ("regcred", true),
            ("reg-cred.v2", true),
            ("0", true),
            ("", false),
            ("Regcred", false),
            ("../regcred", false),
            ("a/b", false),
            ("-regcred", false),
            ("regcred.", false),
            ("a..b", false),
            ("reg_cred", false),
        ];
        for (name, ok) in table {
            assert_eq!(check_name(name).is_ok(), ok, "{name:?}");
        }
        assert!(check_name(&"a".repeat(253)).is_ok());
        assert!(check_name(&"a".repeat(254)).is_err());
        let e = check_name("../x").unwrap_err();
        assert_eq!(e.reason, "credentials");
        assert!(
            e.message
                .starts_with("imagePullSecret `../x` is not a Secret name"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn files_are_read_by_namespace_and_name() {
        let dir =
            std::env::temp_dir().join(format!("meshwork-secret-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("shop")).unwrap();
        std::fs::write(dir.join("shop/regcred.json"), br#"{"auths":{}}"#).unwrap();
        let files = SecretFiles::new(Some(dir.clone()));
        assert_eq!(
            files.docker_config("shop", "regcred").await.unwrap(),
            br#"{"auths":{}}"#
        );
        let missing = files.docker_config("other", "regcred").await.unwrap_err();
        assert!(
            missing
                .message
                .starts_with("pull secret other/regcred: cannot read ")
                && missing.message.contains("other/regcred.json"),
            "{missing}"
        );
        let none = SecretFiles::new(None)
            .docker_config("shop", "regcred")
            .await
            .unwrap_err();
        assert_eq!(
            none.message,
            "imagePullSecret `regcred`: the control plane has no pull secrets; start it with --pull-secrets DIR \
             holding shop/regcred.json"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
