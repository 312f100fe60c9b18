//! Pull secrets from the cluster: a WasmPlugin's `imagePullSecret` is the Secret of that name in its namespace.
//! [`KubeSecrets`] against the mock API server (a Secret of either Docker type, one missing, one of another type, one
//! the service account may not read), then the whole control plane pulling from a registry with Basic auth: with the
//! credentials of the Secret, and with a `--pull-secrets` file instead when one is given.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use meshwork_control::{
    kube::{Connect, Options, SharedClient},
    modules::{ModuleOptions, PullSecrets, RegistryOptions, secrets::kube::KubeSecrets},
    run::ControlPlane,
};
use meshwork_oci::{
    Auth, Client, ClientOptions, NoProgress, PushFormat, docker_config::credentials_for,
    testing::Registry,
};
use serde_json::json;

use super::{ApiServer, bookinfo, path, support};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret-pass";

/// The path of Secret `namespace/name`.
fn secret_path(namespace: &str, name: &str) -> String {
    format!("{}/{name}", path("v1", "secrets", Some(namespace)))
}

/// A Secret as the API server returns it.
fn secret(namespace: &str, name: &str, type_: &str, key: &str, value: &str) -> String {
    let mut secret = Secret {
        type_: Some(type_.into()),
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(namespace.into());
    serde_json::to_string(&secret).unwrap()
}

/// `auths` for `registry` with this test's user and password.
fn auths(registry: &str) -> serde_json::Value {
    json!({ registry: { "username": USER, "password": PASSWORD } })
}

fn secrets(api: &ApiServer) -> KubeSecrets {
    let api = api.clone();
    KubeSecrets::new(SharedClient::new(Connect::With(Arc::new(move || {
        kube::Client::new(api.clone(), "default")
    }))))
}

#[tokio::test]
async fn pull_secrets_are_the_namespaces_docker_secrets() {
    let api = ApiServer::default();
    let config = json!({ "auths": auths("reg.example.com") }).to_string();
    let cfg = auths("reg.example.com").to_string();
    api.object(
        &secret_path("shop", "regcred"),
        &secret(
            "shop",
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &config,
        ),
    );
    api.object(
        &secret_path("shop", "oldcred"),
        &secret(
            "shop",
            "oldcred",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            &cfg,
        ),
    );
    api.object(
        &secret_path("shop", "tls"),
        &secret("shop", "tls", "kubernetes.io/tls", "tls.crt", "PEM"),
    );
    api.refuse(
        &secret_path("vault", "regcred"),
        403,
        "secrets \"regcred\" is forbidden: User \"system:serviceaccount:meshwork-system:meshwork-control\" cannot \
         get resource \"secrets\" in API group \"\" in the namespace \"vault\"",
    );
    let secrets = secrets(&api);
    let basic = Auth::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    };

    // Both Docker types give a config.json with the credentials.
    for name in ["regcred", "oldcred"] {
        let json = secrets.docker_config("shop", name).await.unwrap();
        let auth = credentials_for(&json, "reg.example.com").unwrap();
        assert_eq!(auth, Some(basic.clone()), "{name}");
    }
    assert_eq!(secrets.describe("shop", "regcred"), "Secret shop/regcred");

    // Missing, of another type, forbidden: each says what to do.
    let error = |namespace: &'static str, name: &'static str| {
        let secrets = &secrets;
        async move {
            let e = secrets.docker_config(namespace, name).await.unwrap_err();
            assert_eq!(e.reason, "credentials");
            e.message
        }
    };
    let missing = error("shop", "absent").await;
    assert!(
        missing.starts_with("there is no Secret shop/absent (imagePullSecret `absent`); create it")
            && missing.contains("`kubectl create secret docker-registry absent -n shop "),
        "{missing}"
    );
    let tls = error("shop", "tls").await;
    assert!(
        tls.starts_with(
            "Secret shop/tls has type kubernetes.io/tls; an imagePullSecret must be of type \
             kubernetes.io/dockerconfigjson (key .dockerconfigjson) or kubernetes.io/dockercfg (key .dockercfg)"
        ),
        "{tls}"
    );
    let forbidden = error("vault", "regcred").await;
    assert!(
        forbidden.starts_with("the control plane may not read Secret vault/regcred: secrets \"regcred\" is forbidden")
            && forbidden.ends_with(
                "its service account needs `get` on `secrets` in namespace vault (deploy/kubernetes/rbac.yaml \
                 grants it)"
            ),
        "{forbidden}"
    );

    // One GET of the named Secret per lookup, in the plugin's namespace; nothing listed or watched.
    let requests = api.requests();
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /api/v1/namespaces/") && r.contains("/secrets/")),
        "{requests:#?}"
    );
}

/// A registry with Basic auth holding a module at `filters/probe:1`.
async fn registry_with_a_module() -> Registry {
    let registry = Registry::start_with_basic(USER, PASSWORD);
    let auth = Auth::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    Client::new(ClientOptions::default())
        .unwrap()
        .push(
            &registry.reference("filters/probe:1"),
            b"\0asm\x01\0\0\0",
            PushFormat::Cncf,
            &auth,
            &NoProgress,
        )
        .await
        .unwrap();
    registry
}

/// The cluster's objects and WasmPlugins `(name, imagePullSecret)` in `default`, pulling the registry's module.
fn cluster(registry: &Registry, plugins: &[(&str, &str)]) -> ApiServer {
    let api = bookinfo(None);
    let items: Vec<serde_json::Value> = plugins
        .iter()
        .map(|(name, secret)| {
            json!({
                "apiVersion": "extensions.istio.io/v1alpha1",
                "kind": "WasmPlugin",
                "metadata": { "name": name, "namespace": "default", "resourceVersion": "1" },
                "spec": {
                    "url": format!("oci://{}/filters/probe:1", registry.address()),
                    "imagePullSecret": secret,
                },
            })
        })
        .collect();
    let list = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPluginList",
        "metadata": { "resourceVersion": "1" },
        "items": items,
    });
    api.list(
        &path("extensions.istio.io/v1alpha1", "wasmplugins", None),
        &list.to_string(),
    );
    api
}

/// Starts a control plane on `api`; the count is of the clients it made.
fn start(api: &ApiServer, pull_secrets: Option<PathBuf>) -> (ControlPlane, Arc<AtomicUsize>) {
    let made = Arc::new(AtomicUsize::new(0));
    let (api2, made2) = (api.clone(), made.clone());
    let connect = Connect::With(Arc::new(move || {
        made2.fetch_add(1, Ordering::Relaxed);
        kube::Client::new(api2.clone(), "default")
    }));
    let modules = ModuleOptions {
        registry: RegistryOptions {
            pull_secrets,
            ..RegistryOptions::default()
        },
        ..ModuleOptions::default()
    };
    let options = Options {
        connect,
        sync_timeout: support::HUNG,
        ..Options::new()
    };
    let cp = ControlPlane::start_kube(
        "127.0.0.1:0".parse().unwrap(),
        &Default::default(),
        modules,
        options,
    )
    .unwrap();
    (cp, made)
}

/// `(plugin, served, error reason)` of every plugin's module.
fn modules(cp: &ControlPlane) -> Vec<(String, bool, Option<&'static str>)> {
    cp.modules()
        .status()
        .into_iter()
        .map(|m| (m.plugin, m.serving.is_some(), m.error.map(|e| e.reason)))
        .collect()
}

#[tokio::test]
async fn a_wasm_plugin_pulls_with_the_credentials_of_its_secret() {
    let registry = registry_with_a_module().await;
    let api = cluster(&registry, &[("probe", "regcred"), ("stranger", "absent")]);
    let config = json!({ "auths": auths(&registry.address()) }).to_string();
    api.object(
        &secret_path("default", "regcred"),
        &secret(
            "default",
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &config,
        ),
    );
    // Starting waits for each module's first attempt.
    let (cp, made) = start(&api, None);
    assert_eq!(
        modules(&cp),
        [
            ("default.probe".into(), true, None),
            ("default.stranger".into(), false, Some("credentials")),
        ]
    );
    let status = cp.modules().status();
    let message = &status[1].error.as_ref().unwrap().message;
    assert!(
        message.starts_with("there is no Secret default/absent"),
        "{message}"
    );
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/default/secrets/regcred")),
        "{requests:#?}"
    );
    assert_eq!(
        made.load(Ordering::Relaxed),
        1,
        "one client, for the watchers and the Secrets"
    );
    cp.stop();
}

#[tokio::test]
async fn pull_secret_files_win_over_the_clusters_secrets() {
    let registry = registry_with_a_module().await;
    let api = cluster(&registry, &[("probe", "regcred")]);
    let dir =
        std::env::temp_dir().join(format!("meshwork-kube-pull-secrets-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("default")).unwrap();
    let config = json!({ "auths": auths(&registry.address()) }).to_string();
    std::fs::write(dir.join("default/regcred.json"), config).unwrap();
    // The cluster has no such Secret: the file is what is read.
    let (cp, _) = start(&api, Some(dir.clone()));
    assert_eq!(modules(&cp), [("default.probe".into(), true, None)]);
    assert!(
        !api.requests().iter().any(|r| r.contains("/secrets")),
        "{:#?}",
        api.requests()
    );
    cp.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
