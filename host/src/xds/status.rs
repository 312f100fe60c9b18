//! What the xDS client reports: readiness (`/ready`) and, for `/config_dump`, the control plane, the connection, the
//! versions held and why the last config was not applied.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use serde::Serialize;

/// The client's state, shared with the admin API.
#[derive(Debug)]
pub struct XdsStatus {
    ready: AtomicBool,
    inner: Mutex<Report>,
}

/// The connection to the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Connecting, or waiting for the stream to open.
    #[default]
    Connecting,
    /// The stream is open.
    Connected,
    /// The last attempt failed or the stream ended; the client retries after a backoff.
    Disconnected,
}

/// The `/config_dump` view.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The control plane's address.
    pub server: String,
    /// The node id sent.
    pub node: String,
    /// The connection now.
    pub connection: Connection,
    /// Why the last connection attempt or stream ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Streams opened so far.
    pub streams: u64,
    /// Type URL → resource name → version, of everything held.
    pub versions: BTreeMap<String, BTreeMap<String, String>>,
    /// The proxy config version of the last config xDS applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<u64>,
    /// What the held resources still lack for a complete config (empty once complete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// The message of the last NACK sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_nack: Option<String>,
    /// NACKs sent so far.
    pub nacks: u64,
}

impl XdsStatus {
    /// A client of `server` as `node`, not connected and not ready.
    pub fn new(server: &str, node: &str) -> Self {
        XdsStatus {
            ready: AtomicBool::new(false),
            inner: Mutex::new(Report {
                server: server.to_string(),
                node: node.to_string(),
                ..Report::default()
            }),
        }
    }

    /// Whether a complete config from xDS has been applied.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A copy of the report.
    pub fn report(&self) -> Report {
        self.lock().clone()
    }

    /// Changes the report; returns what `f` returns.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Report) -> R) -> R {
        f(&mut self.lock())
    }

    /// Records an applied config.
    pub(crate) fn applied(&self, version: u64) {
        self.update(|r| {
            r.applied_version = Some(version);
            r.waiting_for.clear();
        });
        self.ready.store(true, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_an_applied_config() {
        let s = XdsStatus::new("http://127.0.0.1:15010", "a.default");
        assert!(!s.ready());
        s.update(|r| r.waiting_for = vec!["route config r".into()]);
        s.applied(2);
        assert!(s.ready());
        let json = serde_json::to_value(s.report()).expect("serializes");
        assert_eq!(json["applied_version"], 2);
        assert_eq!(json["connection"], "connecting");
        assert!(json.get("waiting_for").is_none(), "cleared once applied");
    }
}
