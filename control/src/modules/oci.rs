//! The [`Registry`] of a running control plane: OCI registries through `meshwork-oci`, with credentials from the
//! plugin's pull secret (the Docker `config.json` that WasmPlugin `imagePullSecret` names, from [`PullSecrets`]:
//! files under `--pull-secrets DIR`, or the cluster's Secrets), else from the control plane's own Docker config
//! (`--registry-config`), else anonymous.

use std::sync::Arc;

use meshwork_oci::{Auth, Client, ClientOptions, NoProgress, OciError, Reference, VerifyingKey};

use super::{
    options::RegistryOptions,
    resolve::{Pending, PullError, Pulled, Registry, Wanted},
    secrets::PullSecrets,
};

/// OCI registries.
pub struct OciRegistry {
    client: Client,
    options: RegistryOptions,
    secrets: Arc<dyn PullSecrets>,
}

impl OciRegistry {
    /// A registry client per `options`, with pull secrets from `secrets`.
    pub fn new(
        options: RegistryOptions,
        secrets: Arc<dyn PullSecrets>,
    ) -> Result<OciRegistry, OciError> {
        let mut client_options = ClientOptions::default();
        client_options
            .insecure
            .extend(options.insecure.iter().cloned());
        Ok(OciRegistry {
            client: Client::new(client_options)?,
            options,
            secrets,
        })
    }

    /// The reference and credentials for `wanted`.
    async fn target(&self, wanted: &Wanted) -> Result<(Reference, Auth), PullError> {
        let reference: Reference = wanted.url.parse().map_err(pull_error)?;
        let auth = match &wanted.secret {
            Some(name) => {
                let json = self.secrets.docker_config(&wanted.namespace, name).await?;
                let origin = self.secrets.describe(&wanted.namespace, name);
                credentials(&json, &reference, &origin)?
            }
            None => self.own_credentials(&reference)?,
        };
        Ok((reference, auth))
    }

    /// The control plane's own credentials for `reference`: its Docker config, if there is one.
    fn own_credentials(&self, reference: &Reference) -> Result<Auth, PullError> {
        let file = self
            .options
            .docker_config
            .clone()
            .or_else(meshwork_oci::docker_config::default_config_path);
        let Some(file) = file else {
            return Ok(Auth::Anonymous);
        };
        let json = match std::fs::read(&file) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Auth::Anonymous),
            Err(e) => {
                return Err(PullError::new(
                    "credentials",
                    format!("the registry config: cannot read {}: {e}", file.display()),
                ));
            }
        };
        let origin = format!("the registry config ({})", file.display());
        credentials(&json, reference, &origin)
    }
}

/// The credentials for `reference` in the config.json `json` (anonymous when it has none); `origin` says where it
/// came from.
fn credentials(json: &[u8], reference: &Reference, origin: &str) -> Result<Auth, PullError> {
    let auth = meshwork_oci::docker_config::credentials_for(json, &reference.registry)
        .map_err(|e| PullError::new("credentials", format!("{origin}: {e}")))?;
    Ok(auth.unwrap_or(Auth::Anonymous))
}

impl Registry for OciRegistry {
    fn digest<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, String> {
        Box::pin(async move {
            let (r, auth) = self.target(wanted).await?;
            self.client.resolve(&r, &auth).await.map_err(pull_error)
        })
    }

    fn pull<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, Pulled> {
        Box::pin(async move {
            let (r, auth) = self.target(wanted).await?;
            let pulled = self
                .client
                .pull(&r, &auth, &NoProgress)
                .await
                .map_err(pull_error)?;
            Ok(Pulled {
                manifest_digest: pulled.manifest_digest,
                wasm: pulled.wasm,
                format: pulled.format.to_string(),
            })
        })
    }

    fn download<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, Vec<u8>> {
        Box::pin(async move {
            self.client
                .download(&wanted.url, &NoProgress)
                .await
                .map_err(pull_error)
        })
    }

    fn verify<'a>(&'a self, wanted: &'a Wanted, digest: &'a str) -> Pending<'a, String> {
        Box::pin(async move {
            let pem = wanted.key.as_deref().unwrap_or_default();
            let key = VerifyingKey::from_pem(pem).map_err(|e| key_error(&e))?;
            let (r, auth) = self.target(wanted).await?;
            let verified = self
                .client
                .verify(&r, digest, std::slice::from_ref(&key), &auth)
                .await
                .map_err(pull_error)?;
            Ok(verified.key_fingerprint)
        })
    }

    fn fingerprint(&self, key_pem: &str) -> Result<String, PullError> {
        let key = VerifyingKey::from_pem(key_pem).map_err(|e| key_error(&e))?;
        Ok(key.fingerprint())
    }
}

fn pull_error(e: OciError) -> PullError {
    PullError::new(e.reason(), e.to_string())
}

fn key_error(e: &dyn std::fmt::Display) -> PullError {
    PullError::new(
        "bad_key",
        format!(
            "verificationKey: {e}; give the PEM public key the module is signed with (cosign.pub format)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pull secret, `shop/regcred`, whose config.json the test gives.
    struct OneSecret(&'static str);

    impl PullSecrets for OneSecret {
        fn docker_config<'a>(&'a self, namespace: &'a str, name: &'a str) -> Pending<'a, Vec<u8>> {
            Box::pin(async move {
                match (namespace, name) {
                    ("shop", "regcred") => Ok(self.0.as_bytes().to_vec()),
                    _ => Err(PullError::new(
                        "credentials",
                        format!("no {namespace}/{name}"),
                    )),
                }
            })
        }

        fn describe(&self, namespace: &str, name: &str) -> String {
            format!("Secret {namespace}/{name}")
        }
    }

    fn wanted(url: &str, namespace: &str, secret: Option<&str>) -> Wanted {
        Wanted {
            url: url.into(),
            http: false,
            pin: None,
            always: false,
            namespace: namespace.into(),
            secret: secret.map(Into::into),
            key: None,
        }
    }

    #[tokio::test]
    async fn credentials_come_from_the_plugins_pull_secret() {
        // "dTpw" is base64 of "u:p".
        let secrets = Arc::new(OneSecret(
            r#"{"auths":{"reg.example.com":{"auth":"dTpw"}}}"#,
        ));
        let options = RegistryOptions {
            docker_config: Some(std::env::temp_dir().join("meshwork-no-such-config.json")),
            ..RegistryOptions::default()
        };
        let registry = &OciRegistry::new(options, secrets).unwrap();
        let auth = |w: Wanted| async move { registry.target(&w).await.map(|(_, a)| a) };
        let basic = Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let url = "oci://reg.example.com/filters/authz:v1";
        assert_eq!(auth(wanted(url, "shop", Some("regcred"))).await, Ok(basic));
        // Nothing in the secret for another registry, and no secret: anonymous.
        let other = "oci://other.example.com/filters/authz:v1";
        assert_eq!(
            auth(wanted(other, "shop", Some("regcred"))).await,
            Ok(Auth::Anonymous)
        );
        assert_eq!(auth(wanted(url, "shop", None)).await, Ok(Auth::Anonymous));
        // The source's error as it is.
        let missing = auth(wanted(url, "dev", Some("regcred"))).await.unwrap_err();
        assert_eq!(missing.message, "no dev/regcred");
    }

    #[tokio::test]
    async fn a_bad_pull_secret_is_named_in_the_error() {
        let secrets = Arc::new(OneSecret(r#"{"auths":{"reg.example.com":{"auth":"%%%"}}}"#));
        let registry = OciRegistry::new(RegistryOptions::default(), secrets).unwrap();
        let w = wanted(
            "oci://reg.example.com/filters/authz:v1",
            "shop",
            Some("regcred"),
        );
        let e = registry.target(&w).await.unwrap_err();
        assert_eq!(e.reason, "credentials");
        assert!(
            e.message.starts_with("Secret shop/regcred: ")
                && e.message
                    .contains("`auths.reg.example.com.auth` is not base64"),
            "{e}"
        );
    }
}
