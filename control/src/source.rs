//! The file source: a directory of Istio YAML, polled for changes and applied to the [`MeshViews`].
//!
//! The directory is polled (file names, sizes and modification times every `interval`) rather than watched with
//! inotify, so editors that rename over a file, Kubernetes ConfigMap symlink swaps and network file systems all work
//! the same. A change is read once the directory has been quiet for `settle`, so an editor's burst of writes costs
//! one rebuild. A directory that does not load keeps the mesh that is being served: the errors are logged (each with
//! file, line and field) and kept for status output until a good version arrives.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::watch;

use crate::{istio::load, mesh::Mesh, views::MeshViews};

/// How the source polls.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// How often the directory listing is checked.
    pub interval: Duration,
    /// How long it must stay unchanged before it is read.
    pub settle: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            interval: Duration::from_millis(200),
            settle: Duration::from_millis(100),
        }
    }
}

/// What the source last did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// Mesh versions applied (1 = the first load).
    pub version: u64,
    /// Resources in the version being served.
    pub resources: usize,
    /// Why the directory's current contents are not being served (each `FILE:LINE: field ...: message`), if so.
    pub rejected: Vec<String>,
}

/// Loads `dir` once: the mesh, or every error found.
pub fn load(dir: &Path) -> Result<(Mesh, usize), Vec<String>> {
    match load::load_dir(dir) {
        Ok(loaded) => Ok((Mesh::from_loaded(&loaded), loaded.len())),
        Err(diags) => Err(diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()),
    }
}

/// Polls `dir` until `stop` turns true, applying each good version to `views` and reporting on `status`.
pub async fn watch_dir(
    dir: PathBuf,
    views: Arc<MeshViews>,
    polling: Polling,
    status: watch::Sender<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = fingerprint(&dir);
    loop {
        tokio::select! {
            () = tokio::time::sleep(polling.interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = fingerprint(&dir);
        if now == seen {
            continue;
        }
        // Let a burst of writes finish.
        let mut settled = now;
        loop {
            tokio::time::sleep(polling.settle).await;
            let again = fingerprint(&dir);
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        match load(&dir) {
            Ok((mesh, count)) => {
                views.set_mesh(mesh);
                status.send_modify(|s| {
                    s.version += 1;
                    s.resources = count;
                    s.rejected.clear();
                });
                tracing::info!(dir = %dir.display(), resources = count, "configuration change applied");
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "configuration change rejected; the mesh keeps its last good configuration");
                }
                status.send_modify(|s| s.rejected = errors);
            }
        }
    }
}

type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The YAML files of `dir` with their modification time and size.
fn fingerprint(dir: &Path) -> Fingerprint {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Fingerprint = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let meta = std::fs::metadata(&p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (p, meta)
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshwork-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    const SERVICE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: a }\n\
        spec: { hosts: [a.default.svc.cluster.local], ports: [{ number: 80, name: http }] }\n";

    #[test]
    fn fingerprint_sees_yaml_files_only() {
        let dir = temp_dir("fp");
        std::fs::write(dir.join("a.yaml"), SERVICE).expect("write");
        std::fs::write(dir.join("notes.txt"), "x").expect("write");
        let fp = fingerprint(&dir);
        assert_eq!(fp.len(), 1);
        std::fs::write(dir.join("b.yml"), SERVICE).expect("write");
        assert_ne!(fingerprint(&dir), fp);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn load_reports_errors_with_file_and_line() {
        let dir = temp_dir("load");
        std::fs::write(dir.join("a.yaml"), SERVICE).expect("write");
        let (mesh, count) = load(&dir).expect("loads");
        assert_eq!((mesh.services.len(), count), (1, 1));
        std::fs::write(
            dir.join("b.yaml"),
            "apiVersion: networking.istio.io/v1\nkind: Gadget\nmetadata: { name: x }\nspec: {}\n",
        )
        .expect("write");
        let errors = load(&dir).expect_err("unknown kind");
        assert!(errors.iter().any(|e| e.contains("b.yaml:2")), "{errors:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
