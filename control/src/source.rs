//! The file source: a directory of Istio YAML, polled for changes and applied to the [`MeshViews`].
//!
//! The directory is polled (file names, sizes and modification times every `interval`) rather than watched with
//! inotify, so editors that rename over a file, Kubernetes ConfigMap symlink swaps and network file systems all work
//! the same. A change is read once the directory has been quiet for `settle`, so an editor's burst of writes costs
//! one rebuild. A directory that does not load, or holds values the analysis refuses, keeps the mesh that is being
//! served: the errors are logged (each with file, line and field) and kept for status output until a good version
//! arrives.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::watch;

use crate::{
    istio::{Diagnostic, analyze, load},
    mesh::Mesh,
    views::MeshViews,
};

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

/// What the source last did (the directory source here, or the Kubernetes source).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// Mesh versions applied (1 = the first load).
    pub version: u64,
    /// Resources in the version being served.
    pub resources: usize,
    /// Directory: why its current contents are not being served (each `FILE:LINE: field ...: message`), if so.
    /// Kubernetes: the objects left out of the mesh being served (each `KIND NAMESPACE/NAME: field ...: message`).
    pub rejected: Vec<String>,
    /// Configuration errors found since start: every error of each rejected directory version; each Kubernetes
    /// object newly rejected.
    pub errors_total: u64,
}

/// Loads `dir` once: the mesh, or every error found. Values the analysis finds wrong (weights that do not add up
/// to 100, percentages outside 0–100, invalid regexes, statuses, durations, ...) are errors too, as in
/// `meshwork config validate`: serving them would hand sidecars routing Istio refuses, or plugin configs the policy
/// filters refuse (a NACK the operator only sees in each sidecar's `/config_dump`).
pub fn load(dir: &Path) -> Result<(Mesh, usize), Vec<String>> {
    DirLoader::default().load(dir)
}

/// Loads a directory again and again, parsing only the files whose text changed since the last load (parsing a
/// 1,000-service mesh's 5,000 documents took most of the time from an edit to the change being served).
#[derive(Default)]
pub struct DirLoader {
    cache: load::ReadCache,
}

impl DirLoader {
    /// Loads `dir`: the mesh and its resource count, or every error found.
    pub fn load(&mut self, dir: &Path) -> Result<(Mesh, usize), Vec<String>> {
        let errors = |diags: Vec<Diagnostic>| -> Vec<String> {
            diags
                .iter()
                .filter(|d| d.is_error())
                .map(ToString::to_string)
                .collect()
        };
        let loaded = load::load_dir_cached(dir, &mut self.cache).map_err(errors)?;
        let refused = errors(analyze(&loaded));
        if !refused.is_empty() {
            return Err(refused);
        }
        Ok((Mesh::from_loaded(&loaded), loaded.len()))
    }
}

/// Polls `dir` until `stop` turns true, applying each good version to `views` and reporting on `status`.
pub async fn watch_dir(
    dir: PathBuf,
    views: Arc<MeshViews>,
    polling: Polling,
    status: watch::Sender<Status>,
    mut stop: watch::Receiver<bool>,
    mut loader: DirLoader,
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
        // Reading the directory takes a while on a large mesh: off the runtime's thread, so that the ADS streams it
        // serves keep answering (and keepalives keep flowing) meanwhile. The views are rebuilt here, so that no
        // stream pushes the change before the status says it is applied.
        let task_dir = dir.clone();
        let task = tokio::task::spawn_blocking(move || (loader.load(&task_dir), loader));
        let applied = match task.await {
            Ok((loaded, used)) => {
                loader = used;
                loaded.map(|(mesh, count)| {
                    views.set_mesh(mesh);
                    count
                })
            }
            Err(e) => {
                loader = DirLoader::default();
                Err(vec![format!("loading the directory failed: {e}")])
            }
        };
        match applied {
            Ok(count) => {
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
                status.send_modify(|s| {
                    s.errors_total += errors.len() as u64;
                    s.rejected = errors;
                });
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

    #[test]
    fn values_the_analysis_refuses_are_errors_and_warnings_are_not() {
        let dir = temp_dir("analyze");
        std::fs::write(dir.join("a.yaml"), SERVICE).expect("write");
        let vs = |weights: (u32, u32)| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: a }}\nspec:\n  \
                 hosts: [a.default.svc.cluster.local]\n  http:\n    - route:\n        \
                 - {{ destination: {{ host: a.default.svc.cluster.local }}, weight: {} }}\n        \
                 - {{ destination: {{ host: b.default.svc.cluster.local }}, weight: {} }}\n",
                weights.0, weights.1
            )
        };
        // A route to a host no ServiceEntry defines is a warning: served.
        std::fs::write(dir.join("vs.yaml"), vs((60, 40))).expect("write");
        let (_, count) = load(&dir).expect("warnings do not refuse");
        assert_eq!(count, 2);
        std::fs::write(dir.join("vs.yaml"), vs((50, 40))).expect("write");
        let errors = load(&dir).expect_err("weights add up to 90");
        assert_eq!(
            errors,
            ["vs.yaml:7: field `spec.http[0].route`: the weights of the 2 destinations add up to 90; \
              make them add up to 100"
                .replace("vs.yaml", &dir.join("vs.yaml").display().to_string())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
