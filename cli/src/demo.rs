//! A tiny demo upstream for the quick start: answers every request with a description of it.

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

/// Starts the demo upstream on its own thread; fails if the address cannot be bound.
pub fn spawn(addr: SocketAddr) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("demo-upstream".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let svc = service_fn(|req: Request<Incoming>| async move {
                            let body = format!(
                                "hello from the meshwork demo upstream\n{} {} {:?}\nhost: {}\n",
                                req.method(),
                                req.uri(),
                                req.version(),
                                req.headers()
                                    .get("host")
                                    .and_then(|h| h.to_str().ok())
                                    .unwrap_or("-"),
                            );
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(())
}
