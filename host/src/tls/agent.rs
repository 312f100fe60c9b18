//! The certificate agent: the proxy's own identity, as istio-agent provides it to Envoy.
//!
//! It makes a fresh ECDSA key and a CSR for the workload's SPIFFE ID, asks the mesh CA to sign it, and installs chain
//! and key as secret `default`, which listeners and clusters name. It renews at half the certificate's lifetime
//! (after a first request authenticated by a bootstrap token, renewals present the current certificate), so a
//! certificate never expires while the proxy runs; failures retry with backoff, and the current certificate keeps
//! serving until its end. A new certificate applies to the next handshake: no connection is closed.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use meshwork_pki::{KeyAndCsr, SpiffeId};

use super::Secrets;

/// The secret name the agent fills, as Istio's SDS names the workload certificate.
pub const DEFAULT_SECRET: &str = "default";

/// The certificate currently held, for authenticating a renewal.
#[derive(Clone)]
pub struct Current {
    /// Chain PEM, leaf first.
    pub chain_pem: String,
    /// Key PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Current { .. }")
    }
}

/// A future the CA client returns.
pub type Signing = Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send>>;

/// A future a module fetch returns: the module's bytes, or why not and whether trying again may help.
pub type Fetching = Pin<Box<dyn Future<Output = Result<Vec<u8>, (String, bool)>> + Send>>;

/// Asks the mesh CA to sign a CSR: `(csr_pem, ttl, current)` → the chain PEMs, leaf first, or why not. The control
/// plane the CA belongs to also serves the WASM modules it pulled from registries.
pub trait CertificateSource: Send + Sync {
    /// Requests a certificate for `csr_pem` valid for `ttl`; `current` is the certificate held now, if any.
    fn sign(&self, csr_pem: String, ttl: Duration, current: Option<Current>) -> Signing;

    /// Told the certificate the agent holds after each issuance, with which module fetches authenticate.
    fn held(&self, _current: &Current) {}

    /// The module whose SHA-256 is `sha256` (hex), at most `max_bytes` long, from the control plane.
    fn fetch_module(&self, sha256: String, _max_bytes: usize) -> Fetching {
        Box::pin(async move {
            Err((
                format!("module {sha256}: this proxy's CA serves no modules"),
                false,
            ))
        })
    }
}

/// What the agent needs.
#[derive(Clone)]
pub struct AgentOptions {
    /// The workload's identity.
    pub identity: SpiffeId,
    /// The lifetime to ask for (the CA may grant less).
    pub ttl: Duration,
    /// The CA.
    pub source: Arc<dyn CertificateSource>,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("identity", &self.identity.to_string())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// When to renew a certificate received at `received`, valid until `not_after`: half way through what is left of it
/// at receipt (the CA backdates `not_before`, which must not count). Pure, for the table test.
pub fn renew_after(received: SystemTime, not_after: SystemTime) -> Duration {
    not_after.duration_since(received).unwrap_or_default() / 2
}

/// How long to wait before retrying after `failures` failed requests in a row: 0.5 s doubling to at most 30 s, and
/// never past half of what is left of a held certificate. Pure, for the table test.
pub fn retry_after(failures: u32, left: Option<Duration>) -> Duration {
    let backoff = Duration::from_millis(500)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(30));
    match left {
        Some(l) if !l.is_zero() => backoff.min(l / 2).max(Duration::from_millis(100)),
        _ => backoff,
    }
}

/// Keeps `default` in `secrets` filled with a valid certificate for `options.identity` until `stop` turns true.
pub async fn run(
    secrets: Arc<Secrets>,
    options: AgentOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let id = options.identity.to_string();
    let mut current: Option<(Current, SystemTime)> = None;
    let mut failures = 0u32;
    loop {
        let wait = match obtain(&secrets, &options, current.as_ref().map(|(c, _)| c.clone())).await
        {
            Ok((held, not_after)) => {
                failures = 0;
                let wait = renew_after(SystemTime::now(), not_after);
                tracing::info!(identity = %id, renew_in_ms = wait.as_millis() as u64, "workload certificate obtained");
                current = Some((held, not_after));
                wait
            }
            Err(e) => {
                failures += 1;
                let left = current
                    .as_ref()
                    .and_then(|(_, end)| end.duration_since(SystemTime::now()).ok());
                let wait = retry_after(failures, left);
                tracing::warn!(identity = %id, error = %e, retry_in_ms = wait.as_millis() as u64, failures,
                    "cannot obtain a workload certificate from the CA; the current one keeps serving");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn obtain(
    secrets: &Secrets,
    options: &AgentOptions,
    current: Option<Current>,
) -> Result<(Current, SystemTime), String> {
    let req = KeyAndCsr::generate(&options.identity).map_err(|e| e.to_string())?;
    let chain = options
        .source
        .sign(req.csr_pem.clone(), options.ttl, current)
        .await?;
    let chain_pem = chain.concat();
    let entry = super::secrets::prepare_certificate(
        DEFAULT_SECRET,
        chain_pem.as_bytes(),
        req.key_pem.as_bytes(),
    )
    .map_err(|e| format!("the CA's answer cannot be used: {e}"))?;
    if !entry.info.uri_sans.contains(&options.identity.to_string()) {
        return Err(format!(
            "the CA issued {:?}, not {}",
            entry.info.uri_sans, options.identity
        ));
    }
    let not_after = entry.info.not_after;
    secrets.install_certificate(DEFAULT_SECRET, entry);
    let current = Current {
        chain_pem,
        key_pem: req.key_pem,
    };
    options.source.held(&current);
    Ok((current, not_after))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use meshwork_pki::Authority;

    use super::*;

    #[test]
    fn renewal_and_retry_table() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        assert_eq!(renew_after(t0, t0 + s(86_400)), s(43_200));
        assert_eq!(renew_after(t0, t0 + s(6)), s(3));
        assert_eq!(renew_after(t0, t0 - s(1)), Duration::ZERO);
        let ms = Duration::from_millis;
        let cases = [
            (1, None, ms(500)),
            (2, None, ms(1000)),
            (4, None, ms(4000)),
            (7, None, s(30)),
            (30, None, s(30)),
            (3, Some(s(60)), ms(2000)),
            (7, Some(s(10)), s(5)),
            (7, Some(ms(50)), ms(100)),
        ];
        for (failures, left, want) in cases {
            assert_eq!(retry_after(failures, left), want, "{failures} {left:?}");
        }
    }

    /// A CA in-process that counts requests and fails the first one.
    struct FlakyCa {
        ca: Authority,
        calls: AtomicU32,
        renewals_with_current: AtomicU32,
    }

    impl CertificateSource for Arc<FlakyCa> {
        fn sign(&self, csr: String, ttl: Duration, current: Option<Current>) -> Signing {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if current.is_some() {
                self.renewals_with_current.fetch_add(1, Ordering::SeqCst);
            }
            let result = if n == 0 {
                Err("CA unreachable".to_string())
            } else {
                let id = SpiffeId::new("td", "default", "reviews");
                self.ca.sign_csr(&csr, &id, ttl).map_err(|e| e.to_string())
            };
            Box::pin(async move { result })
        }
    }

    #[tokio::test]
    async fn obtains_renews_and_survives_a_failing_ca() {
        let ca = Arc::new(FlakyCa {
            ca: Authority::generate_root("td", Duration::from_secs(3600)).expect("ca"),
            calls: AtomicU32::new(0),
            renewals_with_current: AtomicU32::new(0),
        });
        let secrets = Arc::new(Secrets::default());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let options = AgentOptions {
            identity: SpiffeId::new("td", "default", "reviews"),
            ttl: Duration::from_secs(2),
            source: Arc::new(ca.clone()),
        };
        let task = tokio::spawn(run(secrets.clone(), options, stop));
        let cell = secrets.cell(DEFAULT_SECRET);
        let mut serials = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while serials.len() < 3 && tokio::time::Instant::now() < deadline {
            if let Some(c) = cell.certificate()
                && serials.last() != Some(&c.info.serial)
            {
                serials.push(c.info.serial.clone());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send_replace(true);
        task.await.expect("agent");
        assert_eq!(
            serials.len(),
            3,
            "a first certificate and two renewals: {serials:?}"
        );
        assert!(ca.renewals_with_current.load(Ordering::SeqCst) >= 2);
    }
}
