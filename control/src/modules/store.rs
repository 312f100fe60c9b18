//! The control plane's module cache on disk, content-addressed: `DIR/sha256/HEX.wasm` holds a module whose SHA-256
//! is HEX, and `DIR/refs/KEY.json` remembers what an `oci://` URL resolved to (its manifest digest and module
//! digest), so that after a restart an `IfNotPresent` plugin is served without asking the registry. Files are
//! written to a temporary name and renamed, so a crash never leaves a partial module under its digest.

use std::{
    collections::HashSet,
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a plugin's module URL resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// The URL as the WasmPlugin gives it (`oci://REGISTRY/REPO:TAG` or `...@sha256:...`).
    pub url: String,
    /// The manifest digest (`sha256:HEX`): what WasmPlugin `sha256` pins for OCI modules.
    pub manifest_digest: String,
    /// SHA-256 of the module itself (hex): what proxies fetch and check.
    pub wasm_sha256: String,
    /// The artifact format it was published in.
    pub format: String,
    /// Fingerprints (SHA-256 of the public key's DER, hex) of the keys whose signature was verified.
    #[serde(default)]
    pub signed_by: Vec<String>,
}

/// The cache directory.
#[derive(Debug)]
pub struct ModuleStore {
    dir: PathBuf,
}

impl ModuleStore {
    /// Opens (creating) the cache at `dir`.
    pub fn open(dir: &Path) -> io::Result<ModuleStore> {
        std::fs::create_dir_all(dir.join("sha256"))?;
        std::fs::create_dir_all(dir.join("refs"))?;
        Ok(ModuleStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `wasm` and returns its SHA-256 (hex). Storing the same bytes again only refreshes the file's time.
    pub fn put(&self, wasm: &[u8]) -> io::Result<String> {
        let hex = hex(&Sha256::digest(wasm));
        let path = self.module_path(&hex);
        if path.exists() {
            touch(&path);
        } else {
            write_atomically(&path, wasm)?;
        }
        Ok(hex)
    }

    /// The module whose SHA-256 is `hex`, if cached (and still intact).
    pub fn read(&self, hex: &str) -> io::Result<Option<Vec<u8>>> {
        if !is_sha256_hex(hex) {
            return Ok(None);
        }
        match std::fs::read(self.module_path(hex)) {
            Ok(bytes) if self::hex(&Sha256::digest(&bytes)) == hex => Ok(Some(bytes)),
            Ok(_) => {
                tracing::warn!(
                    sha256 = hex,
                    "a cached module does not match its digest; removed"
                );
                let _ = std::fs::remove_file(self.module_path(hex));
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the module `hex` is cached.
    pub fn contains(&self, hex: &str) -> bool {
        is_sha256_hex(hex) && self.module_path(hex).is_file()
    }

    /// Remembers what `resolved.url` resolved to.
    pub fn remember(&self, resolved: &Resolved) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(resolved).map_err(io::Error::other)?;
        write_atomically(&self.ref_path(&resolved.url), &json)
    }

    /// What `url` last resolved to, if remembered and its module is still cached.
    pub fn recall(&self, url: &str) -> Option<Resolved> {
        let bytes = std::fs::read(self.ref_path(url)).ok()?;
        let r: Resolved = serde_json::from_slice(&bytes).ok()?;
        (r.url == url && self.contains(&r.wasm_sha256)).then_some(r)
    }

    /// Deletes the modules not in `in_use` whose file was last written or used more than `older_than` ago, and
    /// the references to them; returns how many modules went. A module in use is never deleted.
    pub fn evict(&self, in_use: &HashSet<String>, older_than: Duration) -> usize {
        let now = SystemTime::now();
        let mut gone = HashSet::new();
        for (hex, path) in entries(&self.dir.join("sha256"), ".wasm") {
            let old = modified(&path)
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() > older_than);
            if old && !in_use.contains(&hex) && std::fs::remove_file(&path).is_ok() {
                gone.insert(hex);
            }
        }
        for (_, path) in entries(&self.dir.join("refs"), ".json") {
            let stale = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Resolved>(&b).ok())
                .is_none_or(|r| gone.contains(&r.wasm_sha256));
            if stale {
                let _ = std::fs::remove_file(&path);
            }
        }
        gone.len()
    }

    fn module_path(&self, hex: &str) -> PathBuf {
        self.dir.join("sha256").join(format!("{hex}.wasm"))
    }

    fn ref_path(&self, url: &str) -> PathBuf {
        self.dir
            .join("refs")
            .join(format!("{}.json", hex(&Sha256::digest(url.as_bytes()))))
    }
}

/// Whether `s` is 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    meshwork_pki::api::hex(bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `(stem, path)` of the files in `dir` ending with `suffix`.
fn entries(dir: &Path, suffix: &str) -> Vec<(String, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name.strip_suffix(suffix)?.to_string(), e.path()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(url: &str, wasm_sha256: &str) -> Resolved {
        Resolved {
            url: url.into(),
            manifest_digest: "sha256:00".into(),
            wasm_sha256: wasm_sha256.into(),
            format: "cncf".into(),
            signed_by: Vec::new(),
        }
    }

    #[test]
    fn put_read_recall_evict() {
        let dir = tempdir();
        let store = ModuleStore::open(&dir).unwrap();
        let a = store.put(b"\0asm module a").unwrap();
        let b = store.put(b"\0asm module b").unwrap();
        assert_eq!(store.put(b"\0asm module a").unwrap(), a);
        assert_eq!(
            store.read(&a).unwrap().as_deref(),
            Some(&b"\0asm module a"[..])
        );
        assert_eq!(store.read("not-hex").unwrap(), None);
        store.remember(&resolved("oci://r/a:1", &a)).unwrap();
        store.remember(&resolved("oci://r/b:1", &b)).unwrap();
        assert_eq!(
            store.recall("oci://r/a:1"),
            Some(resolved("oci://r/a:1", &a))
        );
        assert_eq!(store.recall("oci://r/c:1"), None);
        // Only modules older than the bound and not in use go, with their references.
        assert_eq!(store.evict(&HashSet::new(), Duration::from_secs(3600)), 0);
        let in_use = HashSet::from([a.clone()]);
        assert_eq!(store.evict(&in_use, Duration::ZERO), 1);
        assert!(store.contains(&a) && !store.contains(&b));
        assert_eq!(store.recall("oci://r/b:1"), None);
        assert!(store.recall("oci://r/a:1").is_some());
        // A corrupted file is not served.
        std::fs::write(dir.join("sha256").join(format!("{a}.wasm")), b"other").unwrap();
        assert_eq!(store.read(&a).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "meshwork-store-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
