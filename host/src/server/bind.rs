//! Listening sockets: one per worker on the same address with `SO_REUSEPORT`, so the kernel spreads new connections
//! across workers and no accept lock is shared.

use std::{io, net::SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` sockets to `addr`. Port 0 is resolved by the first bind and reused by the others. Returns the bound
/// address and the sockets (non-blocking, listening).
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(bound)?);
    }
    Ok((bound, all))
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_resolves_once_and_all_sockets_share_it() {
        let (bound, socks) = bind_reuseport("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        assert_ne!(bound.port(), 0);
        assert_eq!(socks.len(), 3);
        for s in &socks {
            assert_eq!(s.local_addr().expect("addr"), bound);
        }
        // Each socket accepts: connect three times and check the kernel hands connections out.
        let _c: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(bound).expect("connect"))
            .collect();
    }
}
