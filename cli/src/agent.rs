//! The sidecar's mesh identity: the certificate agent's options, from `meshwork proxy` flags or, in `meshwork up`,
//! from the embedded control plane (which mints each sidecar a bootstrap token for its workload's identity).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use meshwork_control::run::ControlPlane;
use meshwork_host::tls::{agent::AgentOptions, ca::MeshCa};
use meshwork_pki::{SpiffeId, api::CaEndpoint};

/// How long a bootstrap token minted by `meshwork up` is good for. It authenticates the first request and a
/// renewal after the held certificate lapsed; renewals otherwise present the certificate.
const UP_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The certificate agent's flags (`meshwork proxy`).
#[derive(clap::Args)]
pub struct AgentArgs {
    /// The workload's SPIFFE ID, spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT. With it the proxy makes its
    /// own key, asks the mesh CA (--ca-address) for a certificate, serves it as secret `default` and renews it at half
    /// its lifetime.
    #[arg(long, value_name = "SPIFFE_ID", requires_all = ["ca_address", "ca_root"])]
    identity: Option<String>,
    /// The mesh CA (`meshwork control --ca-address`, e.g. 127.0.0.1:15012).
    #[arg(long, value_name = "HOST:PORT", requires = "identity")]
    ca_address: Option<String>,
    /// The mesh's root certificate(s) to verify the CA by (PEM; `root-cert.pem` in the control plane's --ca-dir).
    #[arg(long, value_name = "FILE", requires = "identity")]
    ca_root: Option<PathBuf>,
    /// A file holding the bootstrap token for the first request (`meshwork control token --identity ...`).
    #[arg(long, value_name = "FILE", requires = "identity")]
    ca_token_file: Option<PathBuf>,
    /// The name to verify the CA's certificate for, if not the host of --ca-address.
    #[arg(long, value_name = "NAME", requires = "identity")]
    ca_server_name: Option<String>,
    /// The certificate lifetime to ask for (the CA may grant less); default: the CA's default.
    #[arg(long, value_name = "DURATION", requires = "identity", value_parser = meshwork_host::config::duration::parse)]
    cert_ttl: Option<Duration>,
}

impl AgentArgs {
    /// The agent's options, or `None` without `--identity`.
    pub fn options(self) -> anyhow::Result<Option<AgentOptions>> {
        let Some(identity) = self.identity else {
            return Ok(None);
        };
        let identity: SpiffeId = identity.parse().context("--identity")?;
        let address = self
            .ca_address
            .context("--ca-address is required with --identity")?;
        let root = self
            .ca_root
            .context("--ca-root is required with --identity")?;
        let roots_pem = std::fs::read_to_string(&root)
            .with_context(|| format!("reading --ca-root {}", root.display()))?;
        let token = self
            .ca_token_file
            .map(|p| {
                std::fs::read_to_string(&p)
                    .map(|t| t.trim().to_string())
                    .with_context(|| format!("reading --ca-token-file {}", p.display()))
            })
            .transpose()?;
        let address = if address.contains("://") {
            address
        } else {
            format!("https://{address}")
        };
        let endpoint = CaEndpoint {
            address,
            roots_pem,
            server_name: self.ca_server_name,
        };
        Ok(Some(AgentOptions {
            identity,
            ttl: self.cert_ttl.unwrap_or(Duration::ZERO),
            source: Arc::new(MeshCa::new(endpoint, token)),
        }))
    }
}

/// The agent of the sidecar of a workload running as `service_account` in `namespace`, asking `control`'s CA
/// for certificates of lifetime `ttl` (zero: the CA's default).
pub fn for_workload(
    control: &ControlPlane,
    namespace: &str,
    service_account: &str,
    ttl: Duration,
) -> AgentOptions {
    let ca = control.ca();
    let identity = SpiffeId::new(ca.trust_domain(), namespace, service_account);
    let token = ca.mint_token(&identity, UP_TOKEN_TTL);
    let endpoint = CaEndpoint {
        address: format!("https://{}", ca_host(control.ca_address())),
        roots_pem: ca.trust_bundle_pem(),
        server_name: None,
    };
    AgentOptions {
        identity,
        ttl,
        source: Arc::new(MeshCa::new(endpoint, Some(token))),
    }
}

/// The CA's address as clients dial it: a wildcard bind address becomes loopback.
fn ca_host(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}
