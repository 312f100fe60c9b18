//! rustls alone on this machine: full TLS 1.3 handshakes between a client and a server
//! in memory (no sockets, no proxy), the way rustls' own benchmark measures them, timing
//! only the server's side. Run on the proxy CPU with the mesh certificates, it gives the
//! figure to hold meshwork's handshakes per CPU-second against: the same library, crypto
//! provider (ring) and machine, without the sidecar around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::client::{Tls, provider, read};
use crate::targets::mesh_pki::MeshFiles;

/// Handshakes before the timed ones (caches, branch predictors, allocator).
const WARMUP_HANDSHAKES: u32 = 200;

/// The server configuration: the mesh server's certificate; with `mutual`, a client
/// certificate chained to the mesh root is required (as a STRICT sidecar does).
pub fn server_config(mesh: &MeshFiles, mutual: bool) -> anyhow::Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the ring provider")?;
    let builder = if mutual {
        let mut roots = RootCertStore::empty();
        for cert in meshwork_pki::certs_from_pem(&read(&mesh.root)?)? {
            roots.add(cert).context("adding the mesh root")?;
        }
        builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("the client verifier")?,
        )
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            meshwork_pki::certs_from_pem(&read(&mesh.server.chain)?)?,
            meshwork_pki::key_from_pem(&read(&mesh.server.key)?)?,
        )
        .context("the server certificate")?;
    Ok(Arc::new(config))
}

/// One full handshake in memory; returns the time spent in the server's calls.
pub fn one_handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> anyhow::Result<Duration> {
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut c = ClientConnection::new(client.clone(), name)?;
    let mut s = ServerConnection::new(server.clone())?;
    let mut server_time = Duration::ZERO;
    let mut wire = Vec::with_capacity(8192);
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(server_time);
        }
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)?;
        }
        let started = Instant::now();
        let mut input = wire.as_slice();
        while !input.is_empty() {
            s.read_tls(&mut input)?;
            s.process_new_packets()?;
        }
        let mut reply = Vec::with_capacity(8192);
        while s.wants_write() {
            s.write_tls(&mut reply)?;
        }
        server_time += started.elapsed();
        let mut input = reply.as_slice();
        while !input.is_empty() {
            c.read_tls(&mut input)?;
            c.process_new_packets()?;
        }
    }
    bail!("the in-memory handshake did not finish in 10 flights")
}

/// Server handshakes per second of its own time: the median of `batches` batches, each
/// timed over `per_batch` handshakes, after a warm-up.
pub fn server_rate(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    batches: usize,
    per_batch: u32,
) -> anyhow::Result<f64> {
    for _ in 0..WARMUP_HANDSHAKES {
        one_handshake(client, server)?;
    }
    let mut rates = Vec::with_capacity(batches);
    for _ in 0..batches {
        let mut total = Duration::ZERO;
        for _ in 0..per_batch {
            total += one_handshake(client, server)?;
        }
        rates.push(f64::from(per_batch) / total.as_secs_f64());
    }
    crate::stats::Spread::of(rates)
        .map(|s| s.median)
        .context("no batches")
}

/// rustls' server handshakes per second of its own time on this machine, with server
/// authentication only (as rustls publishes it) and with mutual TLS (as a sidecar runs
/// it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Server authentication only.
    pub server_auth: f64,
    /// Mutual TLS: the client presents the mesh certificate, the server verifies it.
    pub mutual: f64,
}

/// Both rates with the mesh certificates (5 batches of 500 handshakes each), on the
/// calling thread.
pub fn measure(mesh: &MeshFiles, tls: &Tls) -> anyhow::Result<Rates> {
    let server_auth_client = tls.without_client_cert.clone();
    Ok(Rates {
        server_auth: server_rate(&server_auth_client, &server_config(mesh, false)?, 5, 500)?,
        mutual: server_rate(&tls.checking, &server_config(mesh, true)?, 5, 500)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_complete_in_memory() -> anyhow::Result<()> {
        let dir = crate::process::TempDir::new("inmemory-test")?;
        let mesh = MeshFiles::write(dir.path())?;
        let tls = Tls::new(&mesh)?;
        let mutual = server_config(&mesh, true)?;
        let server_auth = server_config(&mesh, false)?;
        // Mutual TLS with a client certificate; server authentication only without one.
        assert!(one_handshake(&tls.checking, &mutual)? > Duration::ZERO);
        assert!(one_handshake(&tls.without_client_cert, &server_auth)? > Duration::ZERO);
        // A STRICT server refuses a client without a certificate.
        let refused = one_handshake(&tls.without_client_cert, &mutual)
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("certificate")),
            "{refused:?}"
        );
        let rate = server_rate(&tls.checking, &mutual, 2, 5)?;
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        Ok(())
    }
}
