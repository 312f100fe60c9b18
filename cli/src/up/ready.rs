//! Waiting until every sidecar says it is ready (its first complete config from the control plane is applied).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// Polls `GET /ready` on every admin address until all answer `200`, or fails after `within` naming the ones that
/// did not.
pub fn wait_all(admins: &[SocketAddr], within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut pending: Vec<SocketAddr> = admins.to_vec();
    while !pending.is_empty() {
        pending.retain(|a| !ready(*a));
        if pending.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "sidecars with admin {} did not become ready within {within:?}; their /ready and /config_dump say why",
            pending
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether the admin API at `addr` answers `/ready` with 200.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
