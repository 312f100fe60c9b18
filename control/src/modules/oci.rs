//! The [`Registry`] of a running control plane: OCI registries through `meshwork-oci`, with credentials from the
//! plugin's pull secret (a Docker `config.json` named by WasmPlugin `imagePullSecret`, read from
//! `--pull-secrets DIR/NAMESPACE/NAME.json`), else from the control plane's own Docker config (`--registry-config`),
//! else anonymous.

use meshwork_oci::{Auth, Client, ClientOptions, NoProgress, OciError, Reference, VerifyingKey};

use super::{
    options::RegistryOptions,
    resolve::{Pending, PullError, Pulled, Registry, Wanted},
};

/// OCI registries.
pub struct OciRegistry {
    client: Client,
    options: RegistryOptions,
}

impl OciRegistry {
    /// A registry client per `options`.
    pub fn new(options: RegistryOptions) -> Result<OciRegistry, OciError> {
        let mut client_options = ClientOptions::default();
        client_options
            .insecure
            .extend(options.insecure.iter().cloned());
        Ok(OciRegistry {
            client: Client::new(client_options)?,
            options,
        })
    }

    /// The reference and credentials for `wanted`.
    fn target(&self, wanted: &Wanted) -> Result<(Reference, Auth), PullError> {
        let reference: Reference = wanted.url.parse().map_err(pull_error)?;
        let (file, origin) = match (&wanted.secret, &self.options.pull_secrets) {
            (Some(name), Some(dir)) => (
                Some(dir.join(&wanted.namespace).join(format!("{name}.json"))),
                format!("pull secret {}/{name}", wanted.namespace),
            ),
            (Some(name), None) => {
                return Err(PullError::new(
                    "credentials",
                    format!(
                        "imagePullSecret `{name}`: the control plane has no pull secrets; start it with --pull-secrets DIR holding {}/{name}.json",
                        wanted.namespace
                    ),
                ));
            }
            (None, _) => (
                self.options
                    .docker_config
                    .clone()
                    .or_else(meshwork_oci::docker_config::default_config_path),
                "the registry config".to_string(),
            ),
        };
        let Some(file) = file else {
            return Ok((reference, Auth::Anonymous));
        };
        let json = match std::fs::read(&file) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && wanted.secret.is_none() => {
                return Ok((reference, Auth::Anonymous));
            }
            Err(e) => {
                return Err(PullError::new(
                    "credentials",
                    format!("{origin}: cannot read {}: {e}", file.display()),
                ));
            }
        };
        let auth = meshwork_oci::docker_config::credentials_for(&json, &reference.registry)
            .map_err(|e| {
                PullError::new("credentials", format!("{origin} ({}): {e}", file.display()))
            })?
            .unwrap_or(Auth::Anonymous);
        Ok((reference, auth))
    }
}

impl Registry for OciRegistry {
    fn digest<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, String> {
        Box::pin(async move {
            let (r, auth) = self.target(wanted)?;
            self.client.resolve(&r, &auth).await.map_err(pull_error)
        })
    }

    fn pull<'a>(&'a self, wanted: &'a Wanted) -> Pending<'a, Pulled> {
        Box::pin(async move {
            let (r, auth) = self.target(wanted)?;
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

    fn verify<'a>(&'a self, wanted: &'a Wanted, digest: &'a str) -> Pending<'a, String> {
        Box::pin(async move {
            let pem = wanted.key.as_deref().unwrap_or_default();
            let key = VerifyingKey::from_pem(pem).map_err(|e| key_error(&e))?;
            let (r, auth) = self.target(wanted)?;
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
