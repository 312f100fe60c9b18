//! Component tests of module resolution: a fake registry, the real cache on disk, paused time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    resolve::{Pending, PullError, Pulled, Registry, Wanted},
    store::ModuleStore,
    table::{Modules, served_url},
};
use crate::mesh::{Mesh, Plugin, PluginMode, PullPolicy, PullSettings};

/// A registry whose tags, failures and signatures the test sets.
#[derive(Default)]
struct FakeRegistry {
    /// url → (manifest digest, module).
    tags: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// url → error every call gets.
    broken: Mutex<HashMap<String, PullError>>,
    /// Manifest digests signed by the key "good".
    signed: Mutex<Vec<String>>,
    pulls: Mutex<u32>,
    digests: Mutex<u32>,
}

impl FakeRegistry {
    fn publish(&self, url: &str, digest: &str, wasm: &[u8]) {
        let mut tags = self.tags.lock().unwrap();
        tags.insert(url.into(), (digest.into(), wasm.to_vec()));
    }
    fn find(&self, url: &str) -> Result<(String, Vec<u8>), PullError> {
        if let Some(e) = self.broken.lock().unwrap().get(url) {
            return Err(e.clone());
        }
        let tags = self.tags.lock().unwrap();
        tags.get(url)
            .cloned()
            .ok_or_else(|| PullError::new("not_found", format!("{url}: no such tag")))
    }
}

impl Registry for FakeRegistry {
    fn digest<'a>(&'a self, w: &'a Wanted) -> Pending<'a, String> {
        *self.digests.lock().unwrap() += 1;
        Box::pin(async move { self.find(&w.url).map(|(d, _)| d) })
    }
    fn pull<'a>(&'a self, w: &'a Wanted) -> Pending<'a, Pulled> {
        *self.pulls.lock().unwrap() += 1;
        Box::pin(async move {
            let (manifest_digest, wasm) = self.find(&w.url)?;
            Ok(Pulled {
                manifest_digest,
                wasm,
                format: "cncf".into(),
            })
        })
    }
    fn download<'a>(&'a self, w: &'a Wanted) -> Pending<'a, Vec<u8>> {
        *self.pulls.lock().unwrap() += 1;
        Box::pin(async move { self.find(&w.url).map(|(_, wasm)| wasm) })
    }
    fn verify<'a>(&'a self, w: &'a Wanted, digest: &'a str) -> Pending<'a, String> {
        Box::pin(async move {
            let ok = w.key.as_deref() == Some("good")
                && self.signed.lock().unwrap().iter().any(|d| d == digest);
            if ok {
                Ok("fp-good".to_string())
            } else {
                Err(PullError::new(
                    "bad_signature",
                    format!("{digest}: no valid signature"),
                ))
            }
        })
    }
    fn fingerprint(&self, key: &str) -> Result<String, PullError> {
        Ok(format!("fp-{key}"))
    }
}

fn plugin(url: &str) -> Plugin {
    Plugin {
        name: "default.limits".into(),
        namespace: "default".into(),
        selector: Default::default(),
        mode: PluginMode::ClientAndServer,
        url: url.into(),
        sha256: None,
        plugin_name: None,
        config: None,
        phase: None,
        priority: 0,
        fail_strategy: None,
        pull: PullSettings::default(),
    }
}

fn mesh(p: Plugin) -> Mesh {
    Mesh {
        plugins: vec![p],
        ..Default::default()
    }
}

struct Setup {
    registry: Arc<FakeRegistry>,
    modules: Arc<Modules>,
    dir: std::path::PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn setup(dir: Option<std::path::PathBuf>, registry: Arc<FakeRegistry>) -> Setup {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "meshwork-modules-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ))
    });
    let store = Arc::new(ModuleStore::open(&dir).unwrap());
    let modules = Modules::new(store, registry.clone());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(modules.clone().run(rx));
    Setup {
        registry,
        modules,
        dir,
        _stop: stop,
    }
}

/// Lets the resolver run (time is paused: sleeping advances it).
async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

fn sha(wasm: &[u8]) -> String {
    use sha2::Digest;
    meshwork_pki::api::hex(&sha2::Sha256::digest(wasm))
}

const V1: &[u8] = b"\0asm version 1";
const V2: &[u8] = b"\0asm version 2";

#[tokio::test(start_paused = true)]
async fn a_tag_bump_serves_the_old_module_until_the_new_one_resolves() {
    let s = setup(None, Arc::default());
    s.registry.publish("oci://r/limits:1", "sha256:m1", V1);
    let m1 = mesh(plugin("oci://r/limits:1"));
    // Not attempted yet: left out, nothing denied.
    assert!(s.modules.rewrite(&m1).unwrap().plugins.is_empty());
    settle(Duration::from_millis(10)).await;
    let out = s.modules.rewrite(&m1).unwrap();
    assert_eq!(out.plugins[0].url, served_url(&sha(V1)));
    assert_eq!(out.plugins[0].sha256.as_deref(), Some(&*sha(V1)));
    // Only its namespace may fetch it; a root-namespace plugin's module is everyone's.
    assert!(s.modules.may_fetch(&sha(V1), "default"));
    assert!(!s.modules.may_fetch(&sha(V1), "other"));
    assert!(!s.modules.may_fetch(&sha(V2), "default"));
    let mut root = plugin("oci://r/limits:1");
    root.namespace = crate::translate::ROOT_NAMESPACE.into();
    root.name = "istio-system.limits".into();
    let both = Mesh {
        plugins: vec![plugin("oci://r/limits:1"), root],
        ..Default::default()
    };
    s.modules.rewrite(&both);
    settle(Duration::from_millis(10)).await;
    assert!(s.modules.may_fetch(&sha(V1), "other"));
    // v2 is not pushed yet: v1 keeps serving, the status says why, and it is retried with backoff.
    let m2 = mesh(plugin("oci://r/limits:2"));
    assert_eq!(
        s.modules.rewrite(&m2).unwrap().plugins[0].url,
        served_url(&sha(V1))
    );
    settle(Duration::from_millis(10)).await;
    let status = s.modules.status();
    assert_eq!(
        status[0].error.as_ref().map(|e| e.reason),
        Some("not_found")
    );
    assert_eq!(
        status[0].serving.as_ref().map(|r| r.url.as_str()),
        Some("oci://r/limits:1")
    );
    assert_eq!(
        s.modules.rewrite(&m2).unwrap().plugins[0].url,
        served_url(&sha(V1))
    );
    s.registry.publish("oci://r/limits:2", "sha256:m2", V2);
    let mut changes = s.modules.changes();
    changes.borrow_and_update();
    settle(Duration::from_secs(2)).await;
    assert!(changes.has_changed().unwrap());
    assert_eq!(
        s.modules.rewrite(&m2).unwrap().plugins[0].url,
        served_url(&sha(V2))
    );
    assert!(s.modules.status()[0].error.is_none());
    assert_eq!(s.modules.stats().pulls, 2);
    assert_eq!(s.modules.stats().failures.get("not_found"), Some(&1));
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(start_paused = true)]
async fn a_module_that_never_resolved_applies_the_fail_strategy() {
    let s = setup(None, Arc::default());
    for (strategy, kept) in [
        (None, true),
        (Some("FAIL_CLOSE"), true),
        (Some("FAIL_OPEN"), false),
    ] {
        let mut p = plugin("oci://r/missing:1");
        p.fail_strategy = strategy.map(str::to_string);
        let m = mesh(p);
        s.modules.rewrite(&m);
        settle(Duration::from_millis(10)).await;
        let out = s.modules.rewrite(&m).unwrap();
        assert_eq!(!out.plugins.is_empty(), kept, "{strategy:?}");
        if kept {
            assert_eq!(out.plugins[0].url, "builtin://authz");
            let config = out.plugins[0].config.clone().unwrap();
            assert_eq!(config["policies"][0]["action"], "DENY");
            assert_eq!(
                config["policies"][0]["name"],
                "module-unavailable/default.limits"
            );
        }
        s.modules.rewrite(&Mesh::default());
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(start_paused = true)]
async fn pins_and_signatures_are_checked_and_the_cache_survives_a_restart() {
    let registry: Arc<FakeRegistry> = Arc::default();
    let s = setup(None, registry.clone());
    registry.publish("oci://r/limits:1", "sha256:m1", V1);
    // A pin that does not match: refused.
    let mut p = plugin("oci://r/limits:1");
    p.sha256 = Some("other".into());
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.status()[0].error.as_ref().map(|e| e.reason),
        Some("digest_mismatch")
    );
    // The right pin, and a key the manifest is not signed with: refused; signed: served.
    p.sha256 = Some("m1".into());
    p.pull.verification_key = Some("good".into());
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.status()[0].error.as_ref().map(|e| e.reason),
        Some("bad_signature")
    );
    registry.signed.lock().unwrap().push("sha256:m1".into());
    settle(Duration::from_secs(2)).await;
    assert_eq!(
        s.modules.rewrite(&mesh(p.clone())).unwrap().plugins[0].url,
        served_url(&sha(V1))
    );
    let pulls = *registry.pulls.lock().unwrap();
    // A new control plane on the same cache serves it at once, without the registry.
    registry.broken.lock().unwrap().insert(
        "oci://r/limits:1".into(),
        PullError::new("unreachable", "down"),
    );
    let again = setup(Some(s.dir.clone()), registry.clone());
    assert_eq!(
        again.modules.rewrite(&mesh(p.clone())).unwrap().plugins[0].url,
        served_url(&sha(V1))
    );
    settle(Duration::from_millis(10)).await;
    assert_eq!(*registry.pulls.lock().unwrap(), pulls);
    // Another key was never verified for the cached module: it needs the registry, which is down.
    p.pull.verification_key = Some("other".into());
    let third = setup(Some(s.dir.clone()), registry.clone());
    third.modules.rewrite(&mesh(p));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        third.modules.status()[0].error.as_ref().map(|e| e.reason),
        Some("unreachable")
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(start_paused = true)]
async fn always_asks_for_the_digest_and_pulls_only_when_it_moved() {
    let s = setup(None, Arc::default());
    s.registry.publish("oci://r/limits:latest", "sha256:m1", V1);
    let mut p = plugin("oci://r/limits:latest");
    assert!(Wanted::of(&p).unwrap().always, "latest defaults to Always");
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(*s.registry.pulls.lock().unwrap(), 1);
    // The plugin changes (new config), the tag did not move: one digest request, no pull.
    p.config = Some(serde_json::json!({"limit": 2}));
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        (
            *s.registry.digests.lock().unwrap(),
            *s.registry.pulls.lock().unwrap()
        ),
        (2, 1)
    );
    // The tag moved: pulled.
    s.registry.publish("oci://r/limits:latest", "sha256:m2", V2);
    p.config = Some(serde_json::json!({"limit": 3}));
    let out = s.modules.rewrite(&mesh(p.clone())).unwrap();
    assert_eq!(
        out.plugins[0].url,
        served_url(&sha(V1)),
        "the old module serves meanwhile"
    );
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.rewrite(&mesh(p.clone())).unwrap().plugins[0].url,
        served_url(&sha(V2))
    );
    // IfNotPresent on the same tag: the cache answers.
    p.pull.policy = PullPolicy::IfNotPresent;
    assert!(!Wanted::of(&p).unwrap().always);
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(start_paused = true)]
async fn http_modules_are_pinned_by_their_own_digest() {
    let s = setup(None, Arc::default());
    let url = "https://modules.example/limits.wasm";
    s.registry.publish(url, "", V1);
    let mut p = plugin(url);
    p.sha256 = Some(sha(V2));
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.status()[0].error.as_ref().map(|e| e.reason),
        Some("digest_mismatch")
    );
    p.sha256 = Some(sha(V1).to_ascii_uppercase());
    s.modules.rewrite(&mesh(p.clone()));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.rewrite(&mesh(p.clone())).unwrap().plugins[0].url,
        served_url(&sha(V1))
    );
    // A signature cannot be asked of an http module.
    p.pull.verification_key = Some("good".into());
    s.modules.rewrite(&mesh(p));
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        s.modules.status()[0].error.as_ref().map(|e| e.reason),
        Some("unsigned")
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn wanted_table() {
    let cases: &[(&str, Option<&str>, PullPolicy, Option<&str>, bool)] = &[
        ("oci://r/x:1", None, PullPolicy::Unspecified, None, false),
        ("oci://r/x", None, PullPolicy::Unspecified, None, true),
        (
            "oci://r:5000/x:latest",
            None,
            PullPolicy::Unspecified,
            None,
            true,
        ),
        (
            "oci://r:5000/x",
            Some("ABC"),
            PullPolicy::Unspecified,
            Some("sha256:abc"),
            false,
        ),
        ("oci://r/x:1", None, PullPolicy::Always, None, true),
        (
            "oci://r/x:latest",
            None,
            PullPolicy::IfNotPresent,
            None,
            false,
        ),
        (
            "oci://r/x@sha256:def",
            None,
            PullPolicy::Always,
            Some("sha256:def"),
            false,
        ),
        (
            "oci://r/x:1",
            Some("sha256:abc"),
            PullPolicy::Always,
            Some("sha256:abc"),
            false,
        ),
    ];
    for (url, sha, policy, pin, always) in cases {
        let mut p = plugin(url);
        p.sha256 = sha.map(str::to_string);
        p.pull.policy = *policy;
        let w = Wanted::of(&p).unwrap();
        assert_eq!(
            (w.pin.as_deref(), w.always),
            (*pin, *always),
            "{url} {sha:?} {policy:?}"
        );
    }
    assert!(Wanted::of(&plugin("builtin://router")).is_none());
    assert!(Wanted::of(&plugin("file:///x.wasm")).is_none());
    let mut http = plugin("https://example.com/f.wasm");
    http.sha256 = Some("ABC".into());
    let w = Wanted::of(&http).expect("http modules are fetched");
    assert_eq!(
        (w.http, w.pin.as_deref(), w.always),
        (true, Some("abc"), false)
    );
    http.sha256 = None;
    http.pull.policy = PullPolicy::Always;
    assert!(Wanted::of(&http).expect("fetched").always);
    let bare = Wanted::of(&plugin("r/x:1")).expect("a URL without scheme is an OCI reference");
    assert_eq!((bare.url.as_str(), bare.always), ("r/x:1", false));
}
