//! Pull secrets from Kubernetes (`meshwork control --kube`), as Istio reads them: `imagePullSecret: NAME` is the
//! Secret NAME in the WasmPlugin's namespace, read with one `get` each time a module is resolved (no watch: plugins
//! resolve rarely, and a Secret changed later is read at the next resolution). The Secret is of type
//! `kubernetes.io/dockerconfigjson` (key `.dockerconfigjson`: a Docker config.json, what `kubectl create secret
//! docker-registry` makes) or `kubernetes.io/dockercfg` (key `.dockercfg`: the older format, the `auths` map alone).
//!
//! Only `auths` is taken from a Secret, as the kubelet does: a `credsStore` or `credHelpers` in it is ignored, so that
//! whoever writes a Secret never chooses a program the control plane runs.

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use super::{PullSecrets, check_name};
use crate::{
    kube::SharedClient,
    modules::resolve::{Pending, PullError},
};

/// The Secret type holding a Docker config.json.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The Secret type holding the older `.dockercfg`.
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// The cluster's Secrets.
pub struct KubeSecrets {
    client: SharedClient,
}

impl KubeSecrets {
    /// Secrets read with `client` (the one the Kubernetes source watches with).
    pub fn new(client: SharedClient) -> Self {
        KubeSecrets { client }
    }
}

impl PullSecrets for KubeSecrets {
    fn docker_config<'a>(&'a self, namespace: &'a str, name: &'a str) -> Pending<'a, Vec<u8>> {
        Box::pin(async move {
            check_name(name)?;
            let client = self.client.get().await.map_err(|e| {
                PullError::new("credentials", format!("Secret {namespace}/{name}: {e}"))
            })?;
            let secret = ::kube::Api::<Secret>::namespaced(client, namespace)
                .get(name)
                .await
                .map_err(|e| api_error(namespace, name, &e))?;
            docker_config(namespace, name, &secret)
        })
    }

    fn describe(&self, namespace: &str, name: &str) -> String {
        format!("Secret {namespace}/{name}")
    }
}

/// The Docker config.json of Secret `namespace/name`, with its `auths` only.
pub fn docker_config(namespace: &str, name: &str, secret: &Secret) -> Result<Vec<u8>, PullError> {
    let error = |message: String| PullError::new("credentials", message);
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    let (key, wrapped) = match kind {
        DOCKER_CONFIG_JSON => (".dockerconfigjson", true),
        DOCKER_CFG => (".dockercfg", false),
        other => {
            return Err(error(format!(
                "Secret {namespace}/{name} has type {other}; an imagePullSecret must be of type {DOCKER_CONFIG_JSON} \
                 (key .dockerconfigjson) or {DOCKER_CFG} (key .dockercfg): create it with `kubectl create secret \
                 docker-registry {name} -n {namespace} ...`"
            )));
        }
    };
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            error(format!(
                "Secret {namespace}/{name} (type {kind}) has no key {key}"
            ))
        })?;
    auths_config(&data.0, wrapped)
        .map_err(|e| error(format!("Secret {namespace}/{name}: {key} {e}")))
}

/// A config.json with the `auths` of `json` and nothing else: `json` is a config.json (`wrapped`, `.dockerconfigjson`)
/// or the `auths` map alone (`.dockercfg`).
pub fn auths_config(json: &[u8], wrapped: bool) -> Result<Vec<u8>, String> {
    let value: Value = serde_json::from_slice(json).map_err(|e| format!("is not JSON: {e}"))?;
    let auths = match value {
        Value::Object(mut config) if wrapped => config
            .remove("auths")
            .unwrap_or_else(|| Value::Object(Map::new())),
        other => other,
    };
    if !auths.is_object() {
        let what = if wrapped {
            "is not a Docker config.json ({\"auths\": {REGISTRY: {...}}})"
        } else {
            "is not a map of registries ({REGISTRY: {...}})"
        };
        return Err(what.to_string());
    }
    let config = Value::Object(Map::from_iter([("auths".to_string(), auths)]));
    Ok(config.to_string().into_bytes())
}

/// What a failed `get` of Secret `namespace/name` means, and what to do.
pub fn api_error(namespace: &str, name: &str, e: &::kube::Error) -> PullError {
    let message = match e {
        ::kube::Error::Api(s) if s.is_not_found() => format!(
            "there is no Secret {namespace}/{name} (imagePullSecret `{name}`); create it in the WasmPlugin's \
             namespace: `kubectl create secret docker-registry {name} -n {namespace} --docker-server=REGISTRY \
             --docker-username=USER --docker-password=PASSWORD`"
        ),
        ::kube::Error::Api(s) if s.is_forbidden() => format!(
            "the control plane may not read Secret {namespace}/{name}: {}; its service account needs `get` on \
             `secrets` in namespace {namespace} (deploy/kubernetes/rbac.yaml grants it)",
            s.message
        ),
        e => format!("cannot read Secret {namespace}/{name} from the Kubernetes API: {e}"),
    };
    PullError::new("credentials", message)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ::kube::core::Status;
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(type_: Option<&str>, key: &str, value: &str) -> Secret {
        Secret {
            type_: type_.map(Into::into),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn text(r: Result<Vec<u8>, PullError>) -> Result<String, String> {
        r.map(|b| String::from_utf8(b).unwrap()).map_err(|e| {
            assert_eq!(e.reason, "credentials");
            e.message
        })
    }

    #[test]
    fn dockercfg_becomes_a_config_json_and_only_auths_are_kept() {
        let auths = r#"{"reg.example.com":{"auth":"dTpw"}}"#;
        let table: [(&str, bool, Result<String, &str>); 9] = [
            // .dockercfg: the auths map, wrapped.
            (auths, false, Ok(format!(r#"{{"auths":{auths}}}"#))),
            ("{}", false, Ok(r#"{"auths":{}}"#.into())),
            // .dockerconfigjson: auths kept, helpers and the rest dropped.
            (
                r#"{"auths":{"reg.example.com":{"auth":"dTpw"}},"credsStore":"evil","credHelpers":{"r":"x"}}"#,
                true,
                Ok(format!(r#"{{"auths":{auths}}}"#)),
            ),
            (
                r#"{"credsStore":"desktop"}"#,
                true,
                Ok(r#"{"auths":{}}"#.into()),
            ),
            // Not what the type says.
            ("[]", true, Err("is not a Docker config.json")),
            (r#"{"auths":[]}"#, true, Err("is not a Docker config.json")),
            ("[]", false, Err("is not a map of registries")),
            (r#""x""#, false, Err("is not a map of registries")),
            ("{", true, Err("is not JSON: EOF while parsing")),
        ];
        for (json, wrapped, want) in table {
            let got = auths_config(json.as_bytes(), wrapped).map(|b| String::from_utf8(b).unwrap());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{json}"),
                (Err(g), Err(w)) => assert!(g.starts_with(w), "{json}: {g}"),
                (g, w) => panic!("{json}: {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn secrets_by_type() {
        let json = r#"{"auths":{"reg":{"auth":"dTpw"}}}"#;
        let cfg = r#"{"reg":{"auth":"dTpw"}}"#;
        let ok = |s: Secret| text(docker_config("shop", "regcred", &s));
        assert_eq!(
            ok(secret(Some(DOCKER_CONFIG_JSON), ".dockerconfigjson", json)),
            Ok(json.into())
        );
        assert_eq!(
            ok(secret(Some(DOCKER_CFG), ".dockercfg", cfg)),
            Ok(json.into())
        );
        let wrong = "Secret shop/regcred has type Opaque; an imagePullSecret must be of type \
                     kubernetes.io/dockerconfigjson (key .dockerconfigjson) or kubernetes.io/dockercfg (key \
                     .dockercfg): create it with `kubectl create secret docker-registry regcred -n shop ...`";
        assert_eq!(
            ok(secret(None, ".dockerconfigjson", json)),
            Err(wrong.into())
        );
        assert_eq!(
            ok(secret(Some("Opaque"), ".dockerconfigjson", json)),
            Err(wrong.into())
        );
        assert!(
            ok(secret(Some("kubernetes.io/basic-auth"), "username", "u"))
                .unwrap_err()
                .starts_with("Secret shop/regcred has type kubernetes.io/basic-auth; ")
        );
        assert_eq!(
            ok(secret(Some(DOCKER_CONFIG_JSON), ".dockercfg", cfg)),
            Err("Secret shop/regcred (type kubernetes.io/dockerconfigjson) has no key .dockerconfigjson".into())
        );
        assert_eq!(
            ok(Secret {
                type_: Some(DOCKER_CFG.into()),
                ..Secret::default()
            }),
            Err("Secret shop/regcred (type kubernetes.io/dockercfg) has no key .dockercfg".into())
        );
        assert_eq!(
            ok(secret(Some(DOCKER_CFG), ".dockercfg", "reg: {}")),
            Err(
                "Secret shop/regcred: .dockercfg is not JSON: expected value at line 1 column 1"
                    .into()
            )
        );
    }

    #[test]
    fn api_errors_say_what_to_do() {
        let api = |code: u16, reason: &str, message: &str| {
            ::kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
        };
        let table = [
            (
                api(404, "NotFound", "secrets \"regcred\" not found"),
                "there is no Secret shop/regcred (imagePullSecret `regcred`); create it in the WasmPlugin's \
                 namespace: `kubectl create secret docker-registry regcred -n shop --docker-server=REGISTRY \
                 --docker-username=USER --docker-password=PASSWORD`",
            ),
            (
                api(403, "Forbidden", "secrets \"regcred\" is forbidden"),
                "the control plane may not read Secret shop/regcred: secrets \"regcred\" is forbidden; its service \
                 account needs `get` on `secrets` in namespace shop (deploy/kubernetes/rbac.yaml grants it)",
            ),
            (
                api(500, "InternalError", "etcd is down"),
                "cannot read Secret shop/regcred from the Kubernetes API: ApiError: etcd is down: InternalError",
            ),
        ];
        for (e, want) in table {
            let got = api_error("shop", "regcred", &e);
            assert_eq!(got.reason, "credentials");
            assert!(
                got.message.starts_with(want),
                "{}\nwant {want}",
                got.message
            );
        }
    }
}
