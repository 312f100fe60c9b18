//! Watches the config file, and the WASM modules it names, and applies valid edits live.
//!
//! The file is polled (metadata every interval, contents only when it changed) rather than watched with inotify: this
//! works the same for editors that rewrite in place, editors that rename a temporary file over it, and Kubernetes
//! ConfigMap symlink swaps. A half-written file fails to parse, is reported, and is picked up again when complete.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{config, server::Proxy};

/// Polls `path` every `interval` and applies changed, valid contents to `proxy` until `stop` turns true.
pub async fn watch_file(
    proxy: Arc<Proxy>,
    path: PathBuf,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_text = std::fs::read_to_string(&path).ok();
    let mut last_meta = metadata(&path);
    let mut last_modules = modules(&proxy);
    // A rejected change is tried again after a backoff even if nothing changes on disk: a failure can be transient
    // (a plugin's canary VM missing its CPU deadline on an overloaded machine), and the files may already be final.
    let mut failures = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let meta = metadata(&path);
        // A rebuilt module re-applies the same config text: plugins whose module content changed are reloaded.
        let modules_now = modules(&proxy);
        let retry = retry_at.is_some_and(|t| tokio::time::Instant::now() >= t);
        let modules_changed = modules_now != last_modules || retry;
        if meta == last_meta && !modules_changed {
            continue;
        }
        retry_at = None;
        last_meta = meta;
        last_modules = modules_now;
        let Ok(text) = std::fs::read_to_string(&path) else {
            tracing::warn!(path = %path.display(), "config file unreadable; keeping the running config");
            continue;
        };
        if last_text.as_deref() == Some(text.as_str()) && !modules_changed {
            continue;
        }
        last_text = Some(text.clone());
        let applied = match config::parse(&text, &path.display().to_string()) {
            Ok(cfg) => match proxy.apply(cfg) {
                Ok(version) => {
                    last_modules = modules(&proxy);
                    tracing::info!(version, path = %path.display(), "config file change applied");
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change rejected; the running config stays");
                    false
                }
            },
            Err(e) if retry => {
                tracing::warn!(error = %e, "config change still rejected on retry; the running config stays");
                false
            }
            Err(e) => {
                proxy
                    .shared()
                    .stats
                    .inc(crate::stats::Counter::ConfigReloadRejected);
                tracing::error!(error = %e, "config change rejected; the running config stays");
                false
            }
        };
        if applied {
            failures = 0;
        } else {
            failures += 1;
            retry_at = Some(tokio::time::Instant::now() + retry_backoff(failures));
        }
    }
}

/// How long after the `failures`-th rejection in a row the same files are tried again: 1 s doubling to 1 min.
fn retry_backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

type Meta = Option<(SystemTime, u64, u64)>;

/// The module files the running config's plugins were loaded from, with their metadata.
fn modules(proxy: &Proxy) -> Vec<(PathBuf, Meta)> {
    let snapshot = proxy.shared().snapshot.load();
    let mut list: Vec<(PathBuf, Meta)> = snapshot
        .plugins
        .iter()
        .filter_map(|p| crate::wasm::plugin::module_path(p.spec.url.as_deref()?).ok())
        .map(|path| {
            let meta = metadata(&path);
            (path, meta)
        })
        .collect();
    list.sort();
    list.dedup();
    list
}

fn metadata(path: &PathBuf) -> Meta {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_table() {
        let s = Duration::from_secs;
        for (failures, want) in [(1, s(1)), (2, s(2)), (3, s(4)), (7, s(60)), (40, s(60))] {
            assert_eq!(retry_backoff(failures), want, "{failures}");
        }
    }
}
