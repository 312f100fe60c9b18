//! Remote modules: an ECDS plugin whose code is `remote.http_uri` with a `sha256` names a module the control plane
//! serves (`https://…/meshwork.modules.v1/sha256/HEX`, see `meshwork_pki::api::fetch_module`). Before a config with
//! such plugins applies, each module is made local: taken from the proxy's content-addressed cache
//! (`DIR/sha256/HEX.wasm`) or fetched from the control plane, checked, and written there; the plugin then loads it as
//! a file. So a restarted proxy needs neither the registry nor, for modules it had, the control plane's cache. A
//! module that cannot be had fails the config (NACK): the plugin's previous version keeps serving.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use meshwork_pki::api::MODULES_PATH;
use sha2::{Digest, Sha256};

use crate::{config::Config, tls::agent::CertificateSource};

/// The largest module fetched (Istio's default cap).
const MAX_MODULE_BYTES: usize = 256 << 20;
/// Pauses before the second and third attempt of a failed fetch that may succeed later.
const RETRY: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1500)];
/// Cached modules no plugin of the running config uses leave the cache when unused this long.
const EVICT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Where remote modules come from and are kept.
#[derive(Clone)]
pub struct Modules {
    dir: PathBuf,
    source: Option<Arc<dyn CertificateSource>>,
}

impl Modules {
    /// Modules cached in `dir`, fetched through `source` (the proxy's CA client; none: cached modules only).
    pub fn new(dir: PathBuf, source: Option<Arc<dyn CertificateSource>>) -> Self {
        Modules { dir, source }
    }

    /// `config` with every remote plugin module replaced by its local copy (`file://…`, same `sha256`).
    pub async fn localize(&self, mut config: Config) -> Result<Config, String> {
        let mut done: HashMap<String, String> = HashMap::new();
        for p in crate::config::plugins_mut(&mut config) {
            let Some(url) = p.url.as_deref().filter(|u| is_remote(u)) else {
                continue;
            };
            let sha = served_digest(url, p.sha256.as_deref())
                .map_err(|e| format!("plugin `{}`: {e}", p.name))?;
            let local = match done.get(&sha) {
                Some(local) => local.clone(),
                None => {
                    let path = self
                        .ensure(&sha)
                        .await
                        .map_err(|e| format!("plugin `{}`: module {url}: {e}", p.name))?;
                    let local = format!("file://{}", path.display());
                    done.insert(sha.clone(), local.clone());
                    local
                }
            };
            p.url = Some(local);
            p.sha256 = Some(sha);
        }
        Ok(config)
    }

    /// Deletes cached modules that `config` (the config now running) does not use and that were last fetched or used
    /// more than a day ago; a module in use is never deleted. Returns how many went.
    pub fn sweep(&self, config: &Config) -> usize {
        let in_use: std::collections::HashSet<&str> = config
            .listeners
            .iter()
            .flat_map(|l| {
                let routes = l
                    .virtual_hosts
                    .iter()
                    .flat_map(|v| &v.routes)
                    .flat_map(|r| &r.filters);
                l.filters.iter().chain(routes)
            })
            .filter_map(|p| p.sha256.as_deref())
            .collect();
        let Ok(entries) = std::fs::read_dir(self.dir.join("sha256")) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        let mut gone = 0;
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else {
                continue;
            };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > EVICT_AFTER);
            if old && !in_use.contains(sha) && std::fs::remove_file(e.path()).is_ok() {
                gone += 1;
            }
        }
        gone
    }

    /// The cached file of module `sha`, fetching it first if it is not cached (or damaged).
    async fn ensure(&self, sha: &str) -> Result<PathBuf, String> {
        let path = self.dir.join("sha256").join(format!("{sha}.wasm"));
        if intact(&path, sha).await {
            touch(&path);
            return Ok(path);
        }
        let Some(source) = &self.source else {
            return Err("not cached, and this proxy has no control plane to fetch it from (give it a mesh identity: --identity and --ca-token-file)".into());
        };
        let mut attempt = 0;
        let bytes = loop {
            match source.fetch_module(sha.to_owned(), MAX_MODULE_BYTES).await {
                Ok(bytes) => break bytes,
                Err((e, true)) if attempt < RETRY.len() => {
                    tracing::debug!(sha256 = sha, error = %e, "module fetch failed; trying again");
                    tokio::time::sleep(RETRY[attempt]).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        };
        store(&path, &bytes).await.map_err(|e| {
            format!(
                "cannot write the module cache {}: {e}; check --module-cache",
                self.dir.display()
            )
        })?;
        tracing::info!(
            sha256 = sha,
            bytes = bytes.len(),
            "module fetched from the control plane"
        );
        Ok(path)
    }
}

/// Whether `url` is fetched (rather than built in or a file).
pub fn is_remote(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// The digest of the module a remote `url` names, which `sha256` must repeat. Pure, for the table test.
pub fn served_digest(url: &str, sha256: Option<&str>) -> Result<String, String> {
    let path_start = url.find("://").map_or(0, |i| i + 3);
    let path = url[path_start..]
        .find('/')
        .map_or("", |i| &url[path_start + i..]);
    let Some(hex) = path.strip_prefix(MODULES_PATH) else {
        return Err(format!(
            "only modules the meshwork control plane serves can be fetched (https://CONTROL{MODULES_PATH}HEX); \
             give oci:// URLs to the control plane, or use file://"
        ));
    };
    let hex = hex.to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{url}` does not end in a SHA-256 (64 hex digits)"));
    }
    match sha256 {
        Some(s) if s.eq_ignore_ascii_case(&hex) => Ok(hex),
        Some(s) => Err(format!(
            "sha256 {s} is not the digest the URL names ({hex})"
        )),
        None => Err("a remote module needs its sha256".into()),
    }
}

/// Marks a cached module as used now (its modification time), so that the sweep keeps it.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

async fn intact(path: &Path, sha: &str) -> bool {
    match tokio::fs::read(path).await {
        Ok(bytes) => meshwork_pki::api::hex(&Sha256::digest(&bytes)) == sha,
        Err(_) => false,
    }
}

/// Writes `bytes` to `path` through a temporary file, so a crash never leaves a partial module under its digest.
async fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), fastrand::u32(..)));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_digest_table() {
        let hex = "ab".repeat(32);
        let url = format!("https://cp:15012{MODULES_PATH}{hex}");
        let (upper, other) = (hex.to_ascii_uppercase(), "cd".repeat(32));
        let cases: Vec<(String, Option<&str>, Result<String, &str>)> = vec![
            (url.clone(), Some(&hex), Ok(hex.clone())),
            (url.clone(), Some(&upper), Ok(hex.clone())),
            (url.clone(), None, Err("needs its sha256")),
            (
                url.clone(),
                Some(&other),
                Err("is not the digest the URL names"),
            ),
            (
                "https://example.com/f.wasm".into(),
                Some(&hex),
                Err("only modules the meshwork control plane serves"),
            ),
            (
                format!("https://cp{MODULES_PATH}abc"),
                Some("abc"),
                Err("does not end in a SHA-256"),
            ),
        ];
        for (url, sha, want) in cases {
            let got = served_digest(&url, sha);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{url}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{url}: {g}"),
                _ => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
        assert!(is_remote(&url) && !is_remote("builtin://router") && !is_remote("file:///f.wasm"));
    }

    struct Served(Vec<u8>, std::sync::atomic::AtomicU32);

    impl CertificateSource for Served {
        fn sign(
            &self,
            _: String,
            _: Duration,
            _: Option<crate::tls::agent::Current>,
        ) -> crate::tls::agent::Signing {
            Box::pin(async { Err("no".to_string()) })
        }
        fn fetch_module(&self, _sha: String, _max: usize) -> crate::tls::agent::Fetching {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let bytes = self.0.clone();
            Box::pin(async move {
                if n == 0 {
                    Err(("busy".to_string(), true))
                } else {
                    Ok(bytes)
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn localize_fetches_once_then_uses_the_cache() {
        let dir = std::env::temp_dir().join(format!(
            "meshwork-modules-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        let hex = meshwork_pki::api::hex(&Sha256::digest(&wasm));
        let source = Arc::new(Served(wasm, Default::default()));
        let modules = Modules::new(dir.clone(), Some(source.clone()));
        let yaml = format!(
            "listeners:\n- name: l\n  address: 127.0.0.1:0\n  filters:\n  - name: a\n    url: https://cp{MODULES_PATH}{hex}\n    sha256: {hex}\n  - name: b\n    url: https://cp{MODULES_PATH}{hex}\n    sha256: {hex}\n  virtual_hosts: []\nclusters: []\n"
        );
        let config: Config = serde_yaml::from_str(&yaml).expect("the test config parses");
        let local = modules.localize(config.clone()).await.expect("fetched");
        let want = format!("file://{}/sha256/{hex}.wasm", dir.display());
        assert_eq!(local.listeners[0].filters[0].url.as_deref(), Some(&*want));
        assert_eq!(local.listeners[0].filters[1].url.as_deref(), Some(&*want));
        // One retried fetch for both plugins; a second config is served from the cache, even with no source.
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 2);
        let offline = Modules::new(dir.clone(), None);
        let running = offline.localize(config.clone()).await.expect("cached");
        // The sweep keeps the module in use, however old, and drops an old one no plugin uses.
        let unused = dir.join("sha256").join(format!("{}.wasm", "cd".repeat(32)));
        std::fs::write(&unused, b"old").expect("written");
        let long_ago = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for f in [&unused, &dir.join("sha256").join(format!("{hex}.wasm"))] {
            let file = std::fs::File::options()
                .append(true)
                .open(f)
                .expect("opens");
            file.set_modified(long_ago).expect("set");
        }
        assert_eq!(offline.sweep(&running), 1);
        assert!(!unused.exists());
        assert!(offline.localize(config.clone()).await.is_ok());
        std::fs::remove_dir_all(&dir).expect("the cache is removed");
        let err = offline.localize(config).await.expect_err("nothing cached");
        assert!(
            err.contains("plugin `a`") && err.contains("no control plane"),
            "{err}"
        );
    }
}
