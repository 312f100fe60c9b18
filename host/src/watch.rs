//! Watches the config file and applies valid edits live.
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
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let meta = metadata(&path);
        if meta == last_meta {
            continue;
        }
        last_meta = meta;
        let Ok(text) = std::fs::read_to_string(&path) else {
            tracing::warn!(path = %path.display(), "config file unreadable; keeping the running config");
            continue;
        };
        if last_text.as_deref() == Some(text.as_str()) {
            continue;
        }
        last_text = Some(text.clone());
        match config::parse(&text, &path.display().to_string()) {
            Ok(cfg) => match proxy.apply(cfg) {
                Ok(version) => {
                    tracing::info!(version, path = %path.display(), "config file change applied")
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change rejected; the running config stays")
                }
            },
            Err(e) => {
                proxy
                    .shared()
                    .stats
                    .inc(crate::stats::Counter::ConfigReloadRejected);
                tracing::error!(error = %e, "config change rejected; the running config stays");
            }
        }
    }
}

fn metadata(path: &PathBuf) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}
