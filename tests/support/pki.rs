//! Certificates for TLS tests: a mesh CA (meshwork-pki, the same code the control plane signs with) writing PEM files
//! into a temporary directory, as a real deployment would hold them.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use meshwork_pki::{Authority, SpiffeId};

/// A CA and a directory of PEM files it issued.
pub struct TestPki {
    /// The directory (removed on drop).
    pub dir: PathBuf,
    /// The CA.
    pub ca: Authority,
}

/// A certificate and key on disk.
pub struct Issued {
    /// Chain, leaf first.
    pub chain: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl TestPki {
    /// A new root CA for `trust_domain` and an empty directory named after `tag`.
    pub fn new(tag: &str, trust_domain: &str) -> TestPki {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("meshwork-pki-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Authority::generate_root(trust_domain, Duration::from_secs(86_400)).unwrap();
        std::fs::write(dir.join("root-cert.pem"), ca.cert_pem()).unwrap();
        TestPki { dir, ca }
    }

    /// The root certificate file.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root-cert.pem")
    }

    /// An SVID for `spiffe_id`, valid for an hour, written as `NAME.pem` / `NAME-key.pem`.
    pub fn issue(&self, name: &str, spiffe_id: &str) -> Issued {
        let id: SpiffeId = spiffe_id.parse().unwrap();
        let (chain, key) = self.ca.issue(&id, Duration::from_secs(3600)).unwrap();
        self.write(name, &chain.concat(), &key)
    }

    /// An SVID for `spiffe_id` that expired an hour ago.
    pub fn issue_expired(&self, name: &str, spiffe_id: &str) -> Issued {
        let id: SpiffeId = spiffe_id.parse().unwrap();
        let now = SystemTime::now();
        let (chain, key) = self
            .ca
            .issue_between(
                &id,
                now - Duration::from_secs(7200),
                now - Duration::from_secs(3600),
            )
            .unwrap();
        self.write(name, &chain.concat(), &key)
    }

    fn write(&self, name: &str, chain: &str, key: &str) -> Issued {
        let issued = Issued {
            chain: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&issued.chain, chain).unwrap();
        std::fs::write(&issued.key, key).unwrap();
        issued
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as YAML-safe text.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}
