//! `meshwork filter push|pull|sign|verify|keygen`: filters as OCI artifacts, the way container images ship. Push
//! writes Istio's format (a tar.gz layer holding `plugin.wasm`, readable by Istio and Envoy Gateway) or, with
//! `--format cncf`, the CNCF Wasm artifact; pull reads those and the two other formats in use. Signatures are
//! cosign-compatible (ECDSA P-256 key pairs, the `sha256-HEX.sig` tag).

use std::{
    io::{IsTerminal, Read, Write},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context;
use meshwork_oci::{
    Auth, Client, ClientOptions, Progress, PushFormat, Reference, SigningKey, VerifyingKey,
};

/// How to reach and authenticate to the registry.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Username for HTTP Basic (or the registry's token service); the password comes from --password-stdin or
    /// $MESHWORK_REGISTRY_PASSWORD.
    #[arg(long, short = 'u')]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// A bearer token for the registry (e.g. from a cloud CLI), sent as is.
    #[arg(long, conflicts_with = "username")]
    token: Option<String>,
    /// A Docker config.json to take credentials from when no --username or --token is given [default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json].
    #[arg(long, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// A registry (HOST or HOST:PORT) to reach over plain http; loopback registries always may be. Repeatable.
    #[arg(long = "insecure", value_name = "HOST")]
    insecure: Vec<String>,
    /// CA certificates (PEM) to trust for the registry's TLS, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Give up on the whole transfer after this long, e.g. 30s, 5m.
    #[arg(long, default_value = "5m", value_parser = meshwork_host::config::duration::parse)]
    timeout: Duration,
    /// Refuse any blob larger than this many MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    max_size: u64,
}

impl RegistryArgs {
    /// The client these flags describe.
    pub fn client(&self) -> anyhow::Result<Client> {
        let mut options = ClientOptions::default();
        options.insecure.extend(self.insecure.iter().cloned());
        options.timeout = self.timeout;
        options.max_bytes = self.max_size << 20;
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read(file)
                .with_context(|| format!("reading --ca-file {}", file.display()))?;
            options.extra_roots = meshwork_pki::certs_from_pem(&pem).with_context(|| {
                format!("--ca-file {}: expected PEM certificates", file.display())
            })?;
        }
        Ok(Client::new(options)?)
    }

    /// The credentials for `reference`'s registry.
    pub fn auth(&self, reference: &Reference) -> anyhow::Result<Auth> {
        if let Some(token) = &self.token {
            return Ok(Auth::Bearer(token.clone()));
        }
        if let Some(username) = &self.username {
            let password = if self.password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the password from stdin")?;
                text.trim_end_matches(['\n', '\r']).to_string()
            } else {
                std::env::var("MESHWORK_REGISTRY_PASSWORD").map_err(|_| {
                    anyhow::anyhow!("--username needs a password: pass --password-stdin or set MESHWORK_REGISTRY_PASSWORD")
                })?
            };
            return Ok(Auth::Basic {
                username: username.clone(),
                password,
            });
        }
        let Some(file) = self
            .registry_config
            .clone()
            .or_else(meshwork_oci::docker_config::default_config_path)
        else {
            return Ok(Auth::Anonymous);
        };
        let json = match std::fs::read(&file) {
            Ok(json) => json,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && self.registry_config.is_none() =>
            {
                return Ok(Auth::Anonymous);
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "reading --registry-config {}: {e}",
                    file.display()
                ));
            }
        };
        Ok(
            meshwork_oci::docker_config::credentials_for(&json, &reference.registry)
                .with_context(|| {
                    format!(
                        "credentials for {} in {}",
                        reference.registry,
                        file.display()
                    )
                })?
                .unwrap_or(Auth::Anonymous),
        )
    }
}

/// `meshwork filter push FILE REF`.
pub async fn push(
    file: &Path,
    reference: &str,
    cncf: bool,
    registry: &RegistryArgs,
) -> anyhow::Result<String> {
    let reference: Reference = reference.parse()?;
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (client, auth) = (registry.client()?, registry.auth(&reference)?);
    let format = if cncf {
        PushFormat::Cncf
    } else {
        PushFormat::Istio
    };
    let bar = Bar::new();
    let pushed = client.push(&reference, &wasm, format, &auth, &bar).await?;
    bar.done();
    let format = if cncf {
        "CNCF Wasm artifact"
    } else {
        "Istio (tar.gz with plugin.wasm)"
    };
    Ok(format!(
        "pushed {reference} ({format}, {} bytes)\nmanifest digest  {}\nwasm sha256      {}\npinned URL       oci://{}/{}@{}\n",
        wasm.len(),
        pushed.manifest_digest,
        pushed.wasm_sha256,
        reference.registry,
        reference.repository,
        pushed.manifest_digest,
    ))
}

/// `meshwork filter pull REF -o FILE`.
pub async fn pull(reference: &str, out: &Path, registry: &RegistryArgs) -> anyhow::Result<String> {
    let reference: Reference = reference.parse()?;
    let (client, auth) = (registry.client()?, registry.auth(&reference)?);
    let bar = Bar::new();
    let pulled = client.pull(&reference, &auth, &bar).await?;
    bar.done();
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &pulled.wasm).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(format!(
        "pulled {reference} ({} format, {} bytes) to {}\nmanifest digest  {}\nwasm sha256      {}\n",
        pulled.format,
        pulled.wasm.len(),
        out.display(),
        pulled.manifest_digest,
        pulled.wasm_sha256,
    ))
}

/// `meshwork filter sign REF --key KEY`.
pub async fn sign(reference: &str, key: &Path, registry: &RegistryArgs) -> anyhow::Result<String> {
    let reference: Reference = reference.parse()?;
    let pem =
        std::fs::read_to_string(key).with_context(|| format!("reading --key {}", key.display()))?;
    let key = SigningKey::from_pem(&pem).with_context(|| format!("--key {}", key.display()))?;
    let (client, auth) = (registry.client()?, registry.auth(&reference)?);
    let signed = client.sign(&reference, &key, &auth).await?;
    let what = if signed.added {
        "signed"
    } else {
        "already signed with this key"
    };
    Ok(format!(
        "{what}: {reference}\nmanifest digest  {}\nsignature        {} ({})\nkey              {}\n",
        signed.manifest_digest,
        signed.signature,
        signed.signature_digest,
        key.verifying_key().fingerprint(),
    ))
}

/// `meshwork filter verify REF --key PUB...`.
pub async fn verify(
    reference: &str,
    keys: &[PathBuf],
    registry: &RegistryArgs,
) -> anyhow::Result<String> {
    let reference: Reference = reference.parse()?;
    let mut verifying = Vec::new();
    for file in keys {
        let pem = std::fs::read_to_string(file)
            .with_context(|| format!("reading --key {}", file.display()))?;
        verifying.push(
            VerifyingKey::from_pem(&pem).with_context(|| format!("--key {}", file.display()))?,
        );
    }
    let (client, auth) = (registry.client()?, registry.auth(&reference)?);
    let digest = client.resolve(&reference, &auth).await?;
    let verified = client
        .verify(&reference, &digest, &verifying, &auth)
        .await?;
    Ok(format!(
        "verified: {reference}\nmanifest digest  {}\nsigned by        {} ({})\n",
        verified.manifest_digest,
        keys[verified.key_index].display(),
        verified.key_fingerprint,
    ))
}

/// `meshwork filter keygen`: writes `PREFIX.key` (PKCS#8, owner-only) and `PREFIX.pub` (as cosign.pub).
pub fn keygen(prefix: &Path, force: bool) -> anyhow::Result<String> {
    let (private, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    for f in [&private, &public] {
        anyhow::ensure!(
            force || !f.exists(),
            "{} exists; remove it or pass --force",
            f.display()
        );
    }
    let key = SigningKey::generate()?;
    write_private(&private, key.to_pem().as_bytes())?;
    std::fs::write(&public, key.verifying_key().to_pem())
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(format!(
        "private key  {} (keep it secret)\npublic key   {} (give it to verifiers: WasmPlugin verificationKey)\nfingerprint  {}\n",
        private.display(),
        public.display(),
        key.verifying_key().fingerprint()
    ))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// A progress bar on standard error when it is a terminal; silent otherwise.
struct Bar {
    state: Mutex<BarState>,
    tty: bool,
}

#[derive(Default)]
struct BarState {
    label: String,
    total: u64,
    done: u64,
    drawn: Option<Instant>,
}

impl Bar {
    fn new() -> Bar {
        Bar {
            state: Mutex::default(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn draw(&self, s: &mut BarState, force: bool) {
        if !self.tty
            || (!force
                && s.drawn
                    .is_some_and(|t| t.elapsed() < Duration::from_millis(100)))
        {
            return;
        }
        s.drawn = Some(Instant::now());
        let line = bar_line(&s.label, s.done, s.total);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    fn done(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = BarState {
            label: label.to_string(),
            total,
            ..BarState::default()
        };
        self.draw(&mut s, true);
    }

    fn advance(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done = s.done.saturating_add(bytes);
        self.draw(&mut s, false);
    }

    fn end(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done = s.total.max(s.done);
        self.draw(&mut s, true);
    }
}

/// One line of the bar: label, 30 cells, bytes. Pure, for the table test.
fn bar_line(label: &str, done: u64, total: u64) -> String {
    const CELLS: u64 = 30;
    let filled = (done.min(total) * CELLS)
        .checked_div(total)
        .unwrap_or(CELLS);
    let cells: String = (0..CELLS)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    format!(
        "{label} [{cells}] {}/{}",
        size(done.min(total.max(done))),
        size(total)
    )
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_table() {
        let cases = [
            (
                "layer",
                0,
                100,
                "layer [..............................] 0 B/100 B",
            ),
            (
                "layer",
                50,
                100,
                "layer [###############...............] 50 B/100 B",
            ),
            (
                "layer",
                3 << 20,
                3 << 20,
                "layer [##############################] 3.0 MiB/3.0 MiB",
            ),
            (
                "config",
                0,
                0,
                "config [##############################] 0 B/0 B",
            ),
            (
                "layer",
                2048,
                4096,
                "layer [###############...............] 2.0 KiB/4.0 KiB",
            ),
        ];
        for (label, done, total, want) in cases {
            assert_eq!(bar_line(label, done, total), want);
        }
    }
}
