//! How the CA is configured: where its root comes from, where it is kept, what it trusts and grants, and where its
//! TLS port listens.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::TtlPolicy;

/// The CLI's default CA port (istiod's).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:15012";
/// The default trust domain (Istio's).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// How long a self-generated root is valid.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The CA's options. [`Default`] suits embedding and tests: a root generated in memory, the TLS port on a free
/// loopback port; `meshwork control` persists the root (`--ca-dir`) and listens on [`DEFAULT_ADDRESS`].
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// Where the TLS port (CA and ADS) listens (`--ca-address`; port 0 picks a free one).
    pub address: SocketAddr,
    /// Where the generated root and the token key are kept (`--ca-dir`); `None` keeps them in memory only.
    pub dir: Option<PathBuf>,
    /// A signing CA from files instead of a generated root (`--ca-cert`, `--ca-key`, `--ca-chain`).
    pub files: Option<CaFiles>,
    /// Extra roots to trust besides the signing CA's (`--trust-bundle`, PEM files of one or more roots).
    pub trust_bundle: Vec<PathBuf>,
    /// The trust domain: the CA signs identities of it only (`--trust-domain`).
    pub trust_domain: String,
    /// Names the TLS port's certificate carries besides `localhost`, `meshwork-control` and `127.0.0.1`
    /// (`--ca-hostname`).
    pub hostnames: Vec<String>,
    /// Workload certificate lifetimes (`--workload-cert-ttl`, `--max-workload-cert-ttl`).
    pub ttl: TtlPolicy,
    /// Lifetime of the TLS port's own certificate (renewed at half of it).
    pub server_cert_ttl: Duration,
    /// Istio's auto mTLS: sidecars are told to talk mutual TLS to each other with certificates from this CA (the
    /// trust bundle is served as SDS `ROOTCA`), inbound listeners follow PeerAuthentication. Off, the CA still issues
    /// certificates but the mesh stays plaintext (for sidecars without a certificate agent).
    pub auto_mtls: bool,
}

/// A signing CA given as files, Istio's "plug-in CA".
#[derive(Clone, Debug)]
pub struct CaFiles {
    /// The CA's certificate (PEM).
    pub cert: PathBuf,
    /// The CA's private key (PEM).
    pub key: PathBuf,
    /// The certificates above the CA up to the root (PEM), for an intermediate CA. May start with the CA's own
    /// certificate, as Istio's `cert-chain.pem` does.
    pub chain: Option<PathBuf>,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: None,
            files: None,
            trust_bundle: Vec::new(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            hostnames: Vec::new(),
            ttl: TtlPolicy::default(),
            server_cert_ttl: Duration::from_secs(24 * 3600),
            auto_mtls: false,
        }
    }
}

/// `$XDG_STATE_HOME/meshwork/ca`, else `$HOME/.local/state/meshwork/ca` (`None` without either variable).
pub fn default_ca_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    state_dir(var("XDG_STATE_HOME"), var("HOME"))
}

fn state_dir(xdg_state_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let state = xdg_state_home.or_else(|| home.map(|h| h.join(".local/state")))?;
    Some(state.join("meshwork/ca"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_table() {
        let p = |s: &str| Some(PathBuf::from(s));
        let cases = [
            (p("/x/state"), p("/home/u"), p("/x/state/meshwork/ca")),
            (None, p("/home/u"), p("/home/u/.local/state/meshwork/ca")),
            (None, None, None),
        ];
        for (xdg, home, want) in cases {
            assert_eq!(
                state_dir(xdg.clone(), home.clone()),
                want,
                "{xdg:?} {home:?}"
            );
        }
    }
}
