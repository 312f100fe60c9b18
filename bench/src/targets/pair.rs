//! Target `meshwork-mtls-pair`: two meshwork processes as the sidecars of two workloads,
//! joined by mutual TLS with SPIFFE identities, as in a mesh where `productpage` calls
//! `reviews`:
//!
//! ```text
//! load generator ─HTTP/1.1─▶ client sidecar ══mTLS (pooled)══▶ server sidecar ─HTTP/1.1─▶ upstream
//!                            .../sa/productpage                .../sa/reviews, STRICT,
//!                            expects .../sa/reviews            5 policy filters, authz
//!                                                              allows productpage
//! ```
//!
//! Both sidecars run one worker each, pinned to the proxy CPU(s), so the pair shares
//! the core a single proxy gets in the other targets. The client sidecar's admin
//! address goes with the running target: its `/stats` give the connection reuse ratio.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::mesh_pki::{MeshFiles, SECRET, TRUST_DOMAIN};
use super::meshwork::{self, Sidecar, cluster_entry};
use super::{Running, policies};
use crate::process::{self, TempDir};
use crate::upstream::BODY_LEN;
use crate::{mtls, probe};

/// The listeners and admin APIs of both sidecars.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Where the load generator sends requests.
    pub client_listen: SocketAddr,
    /// The client sidecar's admin API.
    pub client_admin: SocketAddr,
    /// The server sidecar's STRICT mTLS listener.
    pub server_listen: SocketAddr,
    /// The server sidecar's admin API.
    pub server_admin: SocketAddr,
}

impl Ports {
    /// Four free loopback ports.
    fn pick() -> std::io::Result<Self> {
        let port = || -> std::io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], process::free_port()?)))
        };
        Ok(Self {
            client_listen: port()?,
            client_admin: port()?,
            server_listen: port()?,
            server_admin: port()?,
        })
    }
}

/// The server sidecar's listener `tls:`: STRICT mutual TLS for clients of the mesh's
/// trust domain.
pub fn strict_listener_tls() -> String {
    format!(
        "{{ mode: strict, certificate: {SECRET}, trusted_ca: {SECRET}, trust_domains: [{TRUST_DOMAIN}] }}"
    )
}

/// The client sidecar: a plaintext listener for its workload (the load generator), and
/// the cluster `upstream` = the server sidecar over mutual TLS, accepted only with the
/// server's SPIFFE ID.
pub fn client_config(ports: &Ports, mesh: &MeshFiles) -> String {
    let tls = format!(
        "{{ certificate: {SECRET}, trusted_ca: {SECRET}, subject_alt_names: [\"{}\"] }}",
        mesh.server.id
    );
    Sidecar {
        secrets: mesh.secret_entry(&mesh.client),
        ..Sidecar::new(
            ports.client_listen,
            ports.client_admin,
            cluster_entry("upstream", ports.server_listen, Some(&tls)),
        )
    }
    .yaml()
}

/// The server sidecar: a STRICT mTLS listener whose route runs the five policy filters
/// (authz allowing only the client sidecar's principal), in front of `upstream`.
pub fn server_config(ports: &Ports, upstream: SocketAddr, mesh: &MeshFiles) -> String {
    let mut clusters = cluster_entry("upstream", upstream, None);
    clusters.push_str(&policies::subset_clusters(upstream));
    Sidecar {
        listener_tls: Some(strict_listener_tls()),
        route_filters: policies::route_filters(&policies::server_sidecar_policies()),
        secrets: mesh.secret_entry(&mesh.server),
        ..Sidecar::new(ports.server_listen, ports.server_admin, clusters)
    }
    .yaml()
}

/// Writes the certificates and both configs into a temp dir, starts the server sidecar
/// and then the client sidecar (both pinned to `cpus`), and checks that a request
/// crossed the pair over mutual TLS.
pub fn start(bin: &Path, upstream: SocketAddr, cpus: Option<&[usize]>) -> anyhow::Result<Running> {
    let dir = TempDir::new("meshwork-mtls-pair")?;
    let mesh = MeshFiles::write(dir.path())?;
    let ports = Ports::pick()?;
    let write = |name: &str, text: String| -> anyhow::Result<std::path::PathBuf> {
        let path = dir.path().join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let server_conf = write(
        "server-sidecar.yaml",
        server_config(&ports, upstream, &mesh),
    )?;
    let client_conf = write("client-sidecar.yaml", client_config(&ports, &mesh))?;
    let mut server = meshwork::spawn(
        bin,
        "server-sidecar",
        &server_conf,
        dir.path(),
        ports.server_admin,
        cpus,
    )?;
    server.wait_for_port(ports.server_listen, process::READY_TIMEOUT)?;
    let mut client = meshwork::spawn(
        bin,
        "client-sidecar",
        &client_conf,
        dir.path(),
        ports.client_admin,
        cpus,
    )?;
    client.wait_for_port(ports.client_listen, process::READY_TIMEOUT)?;
    check_mtls(&ports).with_context(|| {
        format!(
            "the pair did not answer over mutual TLS; client sidecar:\n{}\nserver sidecar:\n{}",
            client.log_tail(1024),
            server.log_tail(1024)
        )
    })?;
    Ok(Running {
        addr: ports.client_listen,
        procs: vec![client, server],
        dir: Some(dir),
        mtls_client_admin: Some(ports.client_admin),
    })
}

/// One request through the pair must get the upstream's answer, and both sidecars must
/// count it as TLS: the client sidecar opened a TLS connection upstream and the server
/// sidecar completed a TLS handshake with a client.
fn check_mtls(ports: &Ports) -> anyhow::Result<()> {
    let p = probe::get(ports.client_listen, "/")?;
    if p.status != 200 || p.body_len != BODY_LEN {
        bail!(
            "GET / through the pair gave status {} with {} body bytes (want 200, {BODY_LEN}): \
             a 403 is the server's authz refusing the client's identity, a 503 a refused handshake",
            p.status,
            p.body_len
        );
    }
    let client = probe::fetch(ports.client_admin, "/stats")?;
    let server = probe::fetch(ports.server_admin, "/stats")?;
    let opened = mtls::stat(&client.body, "upstream_cx_tls_total");
    let accepted = mtls::stat(&server.body, "downstream_cx_tls_total");
    match (opened, accepted) {
        (Some(o), Some(a)) if o >= 1 && a >= 1 => Ok(()),
        _ => bail!(
            "no mutual TLS between the sidecars: client upstream_cx_tls_total {opened:?}, server \
             downstream_cx_tls_total {accepted:?} (want both at least 1)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        let a = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Ports {
            client_listen: a(18080),
            client_admin: a(18082),
            server_listen: a(18090),
            server_admin: a(18092),
        }
    }

    /// The assembly of the YAML text is [`Sidecar::yaml`]'s (tested in meshwork.rs);
    /// these tests pin the parts each sidecar contributes.
    #[test]
    fn client_sidecar_config() {
        let p = ports();
        let want = Sidecar {
            secrets: "  - { name: mesh, certificate_chain: \"/t/productpage-cert.pem\", private_key: \
                      \"/t/productpage-key.pem\", trusted_ca: \"/t/root-cert.pem\" }\n"
                .into(),
            ..Sidecar::new(
                p.client_listen,
                p.client_admin,
                "  - name: upstream\n    endpoints: [\"127.0.0.1:18090\"]\n    tls: { certificate: \
                 mesh, trusted_ca: mesh, subject_alt_names: \
                 [\"spiffe://cluster.local/ns/default/sa/reviews\"] }\n"
                    .into(),
            )
        };
        assert_eq!(client_config(&p, &MeshFiles::fixture()), want.yaml());
    }

    #[test]
    fn server_sidecar_config() {
        let p = ports();
        let upstream = SocketAddr::from(([127, 0, 0, 1], 18081));
        let want = Sidecar {
            listener_tls: Some(
                "{ mode: strict, certificate: mesh, trusted_ca: mesh, trust_domains: [cluster.local] }"
                    .into(),
            ),
            route_filters: policies::route_filters(&policies::server_sidecar_policies()),
            secrets: "  - { name: mesh, certificate_chain: \"/t/reviews-cert.pem\", private_key: \
                      \"/t/reviews-key.pem\", trusted_ca: \"/t/root-cert.pem\" }\n"
                .into(),
            ..Sidecar::new(
                p.server_listen,
                p.server_admin,
                "  - name: upstream\n    endpoints: [\"127.0.0.1:18081\"]\n  \
                 - name: \"outbound|80|v1|upstream\"\n    endpoints: [\"127.0.0.1:18081\"]\n  \
                 - name: \"outbound|80|v2|upstream\"\n    endpoints: [\"127.0.0.1:18081\"]\n"
                    .into(),
            )
        };
        let got = server_config(&p, upstream, &MeshFiles::fixture());
        assert_eq!(got, want.yaml());
        assert!(
            got.contains("principals: [cluster.local/ns/default/sa/productpage]"),
            "{got}"
        );
    }
}
