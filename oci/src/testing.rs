//! Test registries (feature `testing`): Debian's `docker-registry` (Distribution 2.8) on `127.0.0.1:0` in a temporary
//! directory, plain, with htpasswd Basic auth or with bearer tokens from [`token::TokenServer`], killed and its
//! directory removed on drop. `stop` and `restart` (same
//! port, same data) make "registry down" tests possible. [`RegistryConfig`] writes the YAML, so other `auth` modes
//! can be added beside [`RegistryAuth::Htpasswd`].

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::Reference;

pub mod token;

/// The registry binary of the Debian package.
const BINARY: &str = "/usr/bin/docker-registry";
/// What to do when a tool is missing.
const INSTALL: &str = "install docker-registry (apt-get install docker-registry apache2-utils)";
/// How long the registry may take to report its port.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How the registry authenticates requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    None,
    /// HTTP Basic against a bcrypt htpasswd file (`WWW-Authenticate: Basic realm="test-realm"`).
    Htpasswd {
        /// The htpasswd file.
        path: PathBuf,
    },
    /// Bearer tokens from a token service (`WWW-Authenticate: Bearer realm=…,service=…`), signed by a key whose
    /// certificate is in `rootcertbundle`.
    Token {
        /// The token endpoint.
        realm: String,
        /// The `service` (the tokens' audience).
        service: String,
        /// The tokens' issuer.
        issuer: String,
        /// The PEM certificates that sign tokens.
        rootcertbundle: PathBuf,
    },
}

/// The registry's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The storage root.
    pub data_dir: PathBuf,
    /// The port on 127.0.0.1 (0: any).
    pub port: u16,
    /// The authentication.
    pub auth: RegistryAuth,
    /// TLS: the PEM certificate chain and key files (`None`: plain http).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl RegistryConfig {
    /// The YAML `docker-registry serve` reads (deletes enabled, an HTTP secret set, access log off).
    pub fn yaml(&self) -> String {
        let auth = match &self.auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Htpasswd { path } => {
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    path.display()
                )
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                rootcertbundle,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
                 rootcertbundle: {}\n",
                rootcertbundle.display()
            ),
        };
        let tls = match &self.tls {
            None => String::new(),
            Some((certificate, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ),
        };
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n  secret: \
             meshwork-test-registry\n{tls}{auth}",
            self.data_dir.display(),
            self.port
        )
    }
}

/// A running test registry.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    config: RegistryConfig,
    child: Option<Child>,
    /// The token service of [`Registry::start_with_token`] (dropped after the registry is stopped).
    token: Option<token::TokenServer>,
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Registry::start_with_config(|_, _| {})
    }

    /// A registry without authentication served over https with this certificate chain and key (PEM).
    pub fn start_https(certificate_pem: &str, key_pem: &str) -> Registry {
        Registry::start_with_config(|dir, config| {
            let (certificate, key) = (dir.join("tls.crt"), dir.join("tls.key"));
            std::fs::write(&certificate, certificate_pem).expect("write the certificate");
            std::fs::write(&key, key_pem).expect("write the key");
            config.tls = Some((certificate, key));
        })
    }

    /// A registry that accepts `user`/`pass` by HTTP Basic (bcrypt htpasswd made by `htpasswd -Bbn`).
    pub fn start_with_basic(user: &str, pass: &str) -> Registry {
        Registry::start_with_config(|dir, config| {
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap_or_else(|e| panic!("running htpasswd: {e}; {INSTALL}"));
            assert!(
                output.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let path = dir.join("htpasswd");
            std::fs::write(&path, &output.stdout).expect("write the htpasswd file");
            config.auth = RegistryAuth::Htpasswd { path };
        })
    }

    /// A registry that wants bearer tokens from a [`token::TokenServer`] started for it, which issues them to
    /// `user`/`pass` (HTTP Basic at the token endpoint) with every scope asked for.
    pub fn start_with_token(user: &str, pass: &str) -> Registry {
        let server = token::TokenServer::start(user, pass)
            .unwrap_or_else(|e| panic!("starting the token server: {e}"));
        let mut registry = Registry::start_with_config(|dir, config| {
            config.auth = server
                .registry_auth(dir)
                .expect("write the token certificate");
        });
        registry.token = Some(server);
        registry
    }

    /// The token service of a registry made by [`Registry::start_with_token`].
    pub fn token_server(&self) -> Option<&token::TokenServer> {
        self.token.as_ref()
    }

    /// A registry whose configuration `edit` sets up (plain http, no auth, any port by default), given the
    /// registry's own temporary directory for the files it needs (htpasswd, certificates, token keys).
    pub fn start_with_config(edit: impl FnOnce(&Path, &mut RegistryConfig)) -> Registry {
        let dir = temp_dir();
        let mut config = RegistryConfig {
            data_dir: dir.join("data"),
            port: 0,
            auth: RegistryAuth::None,
            tls: None,
        };
        edit(&dir, &mut config);
        let mut registry = Registry {
            dir,
            config,
            child: None,
            token: None,
        };
        registry.launch();
        registry
    }

    /// "127.0.0.1:PORT".
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.config.port)
    }

    /// A reference into this registry: `reference("filters/x:1")`.
    pub fn reference(&self, repository_and_tag: &str) -> Reference {
        format!("{}/{repository_and_tag}", self.address())
            .parse()
            .expect("a valid test reference")
    }

    /// The storage root (blobs under `docker/registry/v2/blobs/sha256/`).
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The registry's temporary directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the registry (the port and data stay reserved for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let config_path = self.dir.join("config.yml");
        std::fs::write(&config_path, self.config.yaml()).expect("write the registry config");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BINARY}: {e}; {INSTALL}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, seen) = mpsc::channel();
        // The reader keeps draining after start-up so the registry never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let mut log = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match seen.recv_timeout(left) {
                Ok(line) => match listening_port(&line) {
                    Some(port) => break port,
                    None => log.push(line),
                },
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "docker-registry did not start within {START_TIMEOUT:?}; its log:\n{}",
                        log.join("\n")
                    );
                }
            }
        };
        self.config.port = port;
        self.child = Some(child);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port of a `listening on 127.0.0.1:PORT` log line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let address = rest
        .split(|c: char| c == '"' || c == ',' || c.is_whitespace())
        .next()?;
    address.rsplit_once(':')?.1.parse().ok()
}

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "meshwork-registry-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(dir.join("data")).expect("create the registry's temporary directory");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let cases = [
            (
                r#"time="2026-11-24T18:00:00Z" level=info msg="listening on 127.0.0.1:36215" go.version=go1.19"#,
                Some(36215),
            ),
            ("level=info msg=\"listening on [::]:5000\"", Some(5000)),
            ("level=warning msg=\"No HTTP secret provided\"", None),
            ("listening on nowhere", None),
            (
                r#"level=info msg="listening on 127.0.0.1:40001, tls" go.version=go1.19"#,
                Some(40001),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(listening_port(line), want, "{line}");
        }
    }

    #[test]
    fn writes_the_config() {
        let config = RegistryConfig {
            data_dir: "/tmp/r/data".into(),
            port: 0,
            auth: RegistryAuth::Htpasswd {
                path: "/tmp/r/htpasswd".into(),
            },
            tls: Some(("/tmp/r/tls.crt".into(), "/tmp/r/tls.key".into())),
        };
        let yaml = config.yaml();
        for want in [
            "rootdirectory: /tmp/r/data\n",
            "  delete:\n    enabled: true\n",
            "  addr: 127.0.0.1:0\n",
            "  secret: meshwork-test-registry\n  tls:\n    certificate: /tmp/r/tls.crt\n    key: /tmp/r/tls.key\n",
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: /tmp/r/htpasswd\n",
        ] {
            assert!(yaml.contains(want), "{want:?} not in\n{yaml}");
        }
        let token = RegistryConfig {
            auth: RegistryAuth::Token {
                realm: "http://127.0.0.1:9/token".into(),
                service: "svc".into(),
                issuer: "iss".into(),
                rootcertbundle: "/tmp/r/token-root.pem".into(),
            },
            tls: None,
            ..config.clone()
        }
        .yaml();
        let want = "auth:\n  token:\n    realm: http://127.0.0.1:9/token\n    service: svc\n    issuer: iss\n    \
                    rootcertbundle: /tmp/r/token-root.pem\n";
        assert!(token.ends_with(want), "{token}");
        let plain = RegistryConfig {
            auth: RegistryAuth::None,
            tls: None,
            ..config
        }
        .yaml();
        assert!(
            !plain.contains("auth:") && !plain.contains("tls:"),
            "{plain}"
        );
    }
}
