//! The handshake load: blocking client threads, each opening one connection at a time to
//! the server sidecar: TCP connect, a full TLS 1.3 handshake presenting the client
//! sidecar's certificate (rustls, ring: X25519, ECDSA P-256; session resumption off, so
//! every handshake is a full one), one `GET /` with `Connection: close`, the whole
//! response, and the server's close. Plaintext connections do the same without TLS.
//!
//! Two client configurations: [`Tls::checking`] verifies the server as a client sidecar
//! does (chain to the mesh root, SPIFFE ID of `reviews`) and is used once before each
//! phase; [`Tls::load`] skips verifying the server so that the client threads, which
//! share a core with the upstream, spend their CPU on driving handshakes. The server's
//! work is the same for both: it signs its handshake and verifies the client's chain and
//! signature either way.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, Error, HandshakeKind, RootCertStore,
    SignatureScheme, StreamOwned,
};

use crate::targets::mesh_pki::{Identity, MeshFiles};
use crate::upstream::BODY_LEN;

/// The request every connection sends.
const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: reviews\r\nUser-Agent: meshwork-bench\r\nConnection: close\r\n\r\n";

/// Longest wait for any read or write; a server that stops answering fails the
/// connection instead of hanging a thread.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed connection, so a dead server does not spin the clients.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The rustls client configurations of the mTLS phase.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Verifies the server's chain and SPIFFE ID: the pre-flight check.
    pub checking: Arc<ClientConfig>,
    /// Skips verifying the server: the measured load.
    pub load: Arc<ClientConfig>,
    /// Like `checking`, without a client certificate: server authentication only, as
    /// rustls' published figures ([`super::inmemory`]).
    pub without_client_cert: Arc<ClientConfig>,
}

impl Tls {
    /// Both configurations with `mesh`'s client certificate, expecting the server's
    /// SPIFFE ID.
    pub fn new(mesh: &MeshFiles) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in meshwork_pki::certs_from_pem(&read(&mesh.root)?)? {
            roots.add(cert).context("adding the mesh root")?;
        }
        let spiffe = || ServerCheck::Spiffe {
            roots: roots.clone(),
            expected: mesh.server.id.to_string(),
        };
        Ok(Self {
            checking: config(Some(&mesh.client), spiffe())?,
            load: config(Some(&mesh.client), ServerCheck::Skip)?,
            without_client_cert: config(None, spiffe())?,
        })
    }
}

/// The contents of a PEM file.
pub(super) fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The crypto of the client: ring, like meshwork's.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 only, `client`'s certificate (none: no client authentication), ALPN
/// `http/1.1`, no session resumption.
fn config(client: Option<&Identity>, check: ServerCheck) -> anyhow::Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the ring provider")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(check));
    let mut config = match client {
        Some(client) => builder
            .with_client_auth_cert(
                meshwork_pki::certs_from_pem(&read(&client.chain)?)?,
                meshwork_pki::key_from_pem(&read(&client.key)?)?,
            )
            .context("the client certificate")?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// How the client treats the server's certificate.
#[derive(Debug)]
enum ServerCheck {
    /// As a client sidecar does: chain to `roots`, URI SAN equal to `expected`, and the
    /// handshake signature verified.
    Spiffe {
        roots: RootCertStore,
        expected: String,
    },
    /// Accept any certificate and signature: the load threads (see the module docs; the
    /// pre-flight connection uses [`ServerCheck::Spiffe`]).
    Skip,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ServerCheck::Spiffe { roots, expected } = self else {
            return Ok(ServerCertVerified::assertion());
        };
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            roots,
            intermediates,
            now,
            provider().signature_verification_algorithms.all,
        )?;
        let sans = meshwork_pki::inspect(end_entity)
            .map_err(|e| Error::General(format!("unreadable server certificate: {e}")))?
            .uri_sans;
        if sans.contains(expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(format!(
                "the server is {sans:?}, not {expected}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match self {
            ServerCheck::Spiffe { .. } => verify_tls13_signature(
                message,
                cert,
                dss,
                &provider().signature_verification_algorithms,
            ),
            ServerCheck::Skip => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Status line code, `content-length` and header block length (blank line included) of
/// a response head in `buf`; `None` until the whole head is there or when it is not
/// HTTP/1.x.
pub fn parse_head(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut status = lines.next()?.split_whitespace();
    if !status.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = status.next()?.parse().ok()?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    Some((code, length, end))
}

/// Sends [`REQUEST`] on `stream`, reads the whole response, then waits for the server to
/// close (so that TIME_WAIT stays on the server side and the client never runs out of
/// ports). Fails unless it is `200` with the upstream's 1 KiB body.
fn exchange(stream: &mut impl ReadWrite) -> Result<(), String> {
    stream
        .write_all(REQUEST)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending: {e}"))?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let (code, length) = loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((code, length, head)) = parse_head(&buf)
            && buf.len() >= head + length
        {
            break (code, length);
        }
    };
    if code != 200 || length != BODY_LEN {
        return Err(format!("status {code} with {length} body bytes"));
    }
    // The server closes after a `Connection: close` response: EOF, or a TLS peer that
    // left without close_notify; either way the exchange is complete.
    while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
    Ok(())
}

/// Read + Write.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One connection to `addr`: with `tls`, a full TLS 1.3 handshake first. Returns the
/// server's SPIFFE ID (its certificate's first URI SAN) for TLS connections.
pub fn connect_once(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Option<String>, String> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true)
        .and_then(|()| tcp.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    let Some(config) = tls else {
        let mut tcp = tcp;
        return exchange(&mut tcp).map(|()| None);
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| format!("TLS: {e}"))?;
    let mut stream = StreamOwned::new(conn, tcp);
    exchange(&mut stream)?;
    match stream.conn.handshake_kind() {
        Some(HandshakeKind::Full) => {}
        other => return Err(format!("not a full handshake: {other:?}")),
    }
    let peer = stream
        .conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| meshwork_pki::inspect(leaf).ok())
        .and_then(|info| info.uri_sans.into_iter().next());
    Ok(peer)
}

/// What the client threads have done so far, shared with the measuring thread.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections that completed (handshake, request, response, close).
    pub completed: AtomicU64,
    /// Connections that failed.
    pub errors: AtomicU64,
    /// The first failure, for the report.
    pub first_error: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Tally {
    fn record(&self, result: Result<Option<String>, String>) {
        match result {
            Ok(_) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert(e);
                }
                thread::sleep(ERROR_PAUSE);
            }
        }
    }
}

/// Running client threads.
#[derive(Debug)]
pub struct Load {
    /// Their counts.
    pub tally: Arc<Tally>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` threads connecting to `addr` in a loop (with `tls`, the load
    /// configuration). The threads inherit the caller's CPU affinity.
    pub fn start(
        addr: SocketAddr,
        tls: Option<Arc<ClientConfig>>,
        clients: usize,
    ) -> io::Result<Self> {
        let tally = Arc::new(Tally::default());
        let mut threads = Vec::with_capacity(clients);
        for i in 0..clients {
            let shared = tally.clone();
            let tls = tls.clone();
            let spawned = thread::Builder::new()
                .name(format!("handshake-{i}"))
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        shared.record(connect_once(addr, tls.as_ref()));
                    }
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    Load { tally, threads }.stop();
                    return Err(e);
                }
            }
        }
        Ok(Self { tally, threads })
    }

    /// Stops the threads (each finishes its current connection) and waits for them.
    pub fn stop(self) {
        self.tally.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The pre-flight connection of the mTLS phase: a verifying handshake that must reach
/// the expected server identity.
pub fn check_server(addr: SocketAddr, tls: &Tls, expected: &str) -> anyhow::Result<()> {
    match connect_once(addr, Some(&tls.checking)) {
        Ok(Some(peer)) if peer == expected => Ok(()),
        Ok(peer) => bail!("the server at {addr} presented {peer:?}, not {expected}"),
        Err(e) => bail!("a verified mTLS connection to {addr} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::TcpListener;

    #[test]
    fn parses_response_heads() {
        type Case = (&'static [u8], Option<(u16, usize, usize)>);
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\nxx",
                Some((200, 1024, 41)),
            ),
            (
                b"HTTP/1.1 403 Forbidden\r\nContent-Length:  19 \r\nx: y\r\n\r\n",
                Some((403, 19, 54)),
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n", None),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                None,
            ),
            (b"SSH-2.0\r\ncontent-length: 1\r\n\r\n", None),
            (b"", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_head(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    /// A one-shot plaintext server on loopback answering `response` and closing.
    fn serve_once(response: Vec<u8>) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&response);
            }
        });
        Ok(addr)
    }

    /// A rustls server on loopback presenting `who`'s certificate, requiring a client
    /// certificate chained to the mesh root, answering `connections` connections the way
    /// a sidecar does (200, 1 KiB, close_notify, close).
    fn serve_tls(
        mesh: &MeshFiles,
        who: &Identity,
        connections: usize,
    ) -> anyhow::Result<SocketAddr> {
        use rustls::server::WebPkiClientVerifier;
        use rustls::{ServerConfig, ServerConnection};

        let mut roots = RootCertStore::empty();
        for cert in meshwork_pki::certs_from_pem(&read(&mesh.root)?)? {
            roots.add(cert)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
        let config = Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_client_cert_verifier(verifier)
                .with_single_cert(
                    meshwork_pki::certs_from_pem(&read(&who.chain)?)?,
                    meshwork_pki::key_from_pem(&read(&who.key)?)?,
                )?,
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let response = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\n".to_vec(),
            vec![b'x'; BODY_LEN],
        ]
        .concat();
        thread::spawn(move || {
            for _ in 0..connections {
                let Ok((tcp, _)) = listener.accept() else {
                    return;
                };
                let Ok(conn) = ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut tls = StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 1024];
                if tls.read(&mut buf).is_ok() {
                    let _ = tls.write_all(&response);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        });
        Ok(addr)
    }

    #[test]
    fn mutual_tls_connections() -> anyhow::Result<()> {
        let dir = crate::process::TempDir::new("handshake-client-test")?;
        let mesh = MeshFiles::write(dir.path())?;
        let tls = Tls::new(&mesh)?;
        let reviews = mesh.server.id.to_string();
        let productpage = mesh.client.id.to_string();

        // The expected server: the checking client accepts it, the load client too.
        let addr = serve_tls(&mesh, &mesh.server, 3)?;
        check_server(addr, &tls, &reviews)?;
        assert_eq!(
            connect_once(addr, Some(&tls.load)),
            Ok(Some(reviews.clone()))
        );
        let err = check_server(addr, &tls, &productpage)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("presented Some(") && e.contains("not spiffe://")),
            "{err:?}"
        );

        // Another workload of the mesh in its place: refused by the checking client (its
        // SPIFFE ID), still served to the load client, which does not look.
        let addr = serve_tls(&mesh, &mesh.client, 2)?;
        let err = check_server(addr, &tls, &reviews)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains(
                "failed: sending: unexpected error: the server is \
                [\"spiffe://cluster.local/ns/default/sa/productpage\"], not \
                spiffe://cluster.local/ns/default/sa/reviews"
            )),
            "{err:?}"
        );
        assert_eq!(connect_once(addr, Some(&tls.load)), Ok(Some(productpage)));
        Ok(())
    }

    #[test]
    fn plaintext_exchanges() -> anyhow::Result<()> {
        let ok = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\n".to_vec(),
            vec![b'x'; BODY_LEN],
        ]
        .concat();
        let cases: [(Vec<u8>, Result<Option<String>, &str>); 3] = [
            (ok, Ok(None)),
            (
                b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_vec(),
                Err("status 403 with 0 body bytes"),
            ),
            (
                b"HTTP/1.1 200 OK\r\n".to_vec(),
                Err("closed after 17 bytes"),
            ),
        ];
        for (response, want) in cases {
            let addr = serve_once(response)?;
            let got = connect_once(addr, None);
            assert_eq!(got, want.map_err(str::to_owned));
        }
        Ok(())
    }
}
