//! Target `nginx-mtls-pair`: the same two-hop topology as `meshwork-mtls-pair`, with two nginx processes and no
//! filters, so the pair's added latency has a reference measured on the same machine in the same run:
//!
//! ```text
//! load generator ─HTTP/1.1─▶ client nginx ══mTLS 1.3 (keep-alive pool)══▶ server nginx ─HTTP/1.1─▶ upstream
//!                            presents .../sa/productpage                  verifies the client's chain
//! ```
//!
//! Both use the mesh certificates of [`MeshFiles`]. The server nginx requires a client certificate signed by the
//! mesh root (`ssl_verify_client on`). The client nginx presents its certificate but does not verify the server's:
//! nginx checks DNS names, and a SPIFFE identity is a URI SAN. meshwork's client sidecar does check it, so nginx does
//! slightly less work per connection; with pooled connections that is a handshake now and then.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::Running;
use super::mesh_pki::{Identity, MeshFiles};
use super::nginx::{self, Tls};
use crate::probe;
use crate::process::{self, TempDir};
use crate::upstream::BODY_LEN;

/// The server nginx's listener: TLS 1.3, the server's certificate, a client certificate from the mesh required.
pub fn server_tls(mesh: &MeshFiles) -> Tls {
    Tls {
        downstream: Some(format!(
            "ssl_certificate \"{}\";\nssl_certificate_key \"{}\";\nssl_client_certificate \"{}\";\n\
             ssl_verify_client on;\nssl_protocols TLSv1.3;",
            mesh.server.chain.display(),
            mesh.server.key.display(),
            mesh.root.display()
        )),
        upstream: None,
    }
}

/// The client nginx's upstream: TLS 1.3 with the client's certificate, sessions reused.
pub fn client_tls(client: &Identity) -> Tls {
    Tls {
        downstream: None,
        upstream: Some(format!(
            "proxy_ssl_certificate \"{}\";\nproxy_ssl_certificate_key \"{}\";\nproxy_ssl_protocols TLSv1.3;\n\
             proxy_ssl_session_reuse on;",
            client.chain.display(),
            client.key.display()
        )),
    }
}

/// Writes the certificates and both configs, starts the server nginx and then the client nginx (both pinned to
/// `cpus`), and checks the pair answers and that the server's port takes TLS only.
pub fn start(
    bin: &Path,
    build: &str,
    upstream: SocketAddr,
    cpus: Option<&[usize]>,
) -> anyhow::Result<Running> {
    let dir = TempDir::new("nginx-mtls-pair")?;
    let mesh = MeshFiles::write(dir.path())?;
    let addr = || -> std::io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], process::free_port()?)))
    };
    let (client_listen, server_listen) = (addr()?, addr()?);
    let side = |name: &str, listen, to, tls: Tls| -> anyhow::Result<process::Proc> {
        let prefix = dir.path().join(name);
        fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
        let conf = prefix.join("nginx.conf");
        fs::write(&conf, nginx::config_with(listen, to, &prefix, build, &tls))
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut proc = nginx::spawn(bin, build, name, &conf, &prefix, cpus)?;
        proc.wait_for_port(listen, process::READY_TIMEOUT)?;
        Ok(proc)
    };
    let server = side("server-nginx", server_listen, upstream, server_tls(&mesh))?;
    let client = side(
        "client-nginx",
        client_listen,
        server_listen,
        client_tls(&mesh.client),
    )?;
    check(client_listen, server_listen).with_context(|| {
        format!(
            "the nginx pair did not answer over mutual TLS; client nginx:\n{}\nserver nginx:\n{}",
            client.log_tail(1024),
            server.log_tail(1024)
        )
    })?;
    Ok(Running {
        addr: client_listen,
        procs: vec![client, server],
        dir: Some(dir),
        mtls_client_admin: None,
    })
}

/// One request through the pair gets the upstream's answer, and plaintext to the server's port is refused.
fn check(client: SocketAddr, server: SocketAddr) -> anyhow::Result<()> {
    let p = probe::get(client, "/")?;
    if p.status != 200 || p.body_len != BODY_LEN {
        bail!(
            "GET / through the nginx pair gave status {} with {} body bytes (want 200, {BODY_LEN}): a 502 is a \
             refused handshake between the two",
            p.status,
            p.body_len
        );
    }
    match probe::get(server, "/") {
        Ok(p) if p.status == 200 => {
            bail!("the server nginx answered plaintext: its listener is not TLS")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_put_tls_on_the_right_side() {
        let a = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let m = MeshFiles::fixture();
        let server = nginx::config_with(a(18090), a(18081), Path::new("/p"), "", &server_tls(&m));
        let client = nginx::config_with(
            a(18080),
            a(18090),
            Path::new("/p"),
            "",
            &client_tls(&m.client),
        );
        // (config, must contain, must not contain)
        let cases: [(&str, &[&str], &[&str]); 2] = [
            (
                &server,
                &[
                    "listen 127.0.0.1:18090 ssl;",
                    "ssl_certificate \"/t/reviews-cert.pem\";",
                    "ssl_certificate_key \"/t/reviews-key.pem\";",
                    "ssl_client_certificate \"/t/root-cert.pem\";",
                    "ssl_verify_client on;",
                    "ssl_protocols TLSv1.3;",
                    "proxy_pass http://bench_upstream;",
                    "server 127.0.0.1:18081;",
                ],
                &["proxy_ssl"],
            ),
            (
                &client,
                &[
                    "listen 127.0.0.1:18080;",
                    "proxy_pass https://bench_upstream;",
                    "proxy_ssl_certificate \"/t/productpage-cert.pem\";",
                    "proxy_ssl_certificate_key \"/t/productpage-key.pem\";",
                    "proxy_ssl_session_reuse on;",
                    "keepalive 64;",
                    "server 127.0.0.1:18090;",
                ],
                &[" ssl;", "ssl_verify_client"],
            ),
        ];
        for (conf, want, unwanted) in cases {
            for w in want {
                assert!(conf.contains(w), "missing {w:?} in\n{conf}");
            }
            for u in unwanted {
                assert!(!conf.contains(u), "unexpected {u:?} in\n{conf}");
            }
        }
    }
}
