//! Tiny demo upstreams: for the quick start (`meshwork proxy --demo-upstream`) a server that describes each request,
//! and for `meshwork up --demo-upstreams` one small app per workload that names itself and calls the services it
//! depends on through its sidecar, so one request shows the whole call graph and which versions answered.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

/// A demo app: who it is and whom it calls.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// Workload name, e.g. `reviews-v2`.
    pub name: String,
    /// Services it calls for every request (their host names), through `outbound`.
    pub calls: Vec<String>,
    /// Its sidecar's outbound listener.
    pub outbound: Option<SocketAddr>,
}

/// Starts the quick start's demo upstream on its own thread; fails if the address cannot be bound.
pub fn spawn(addr: SocketAddr) -> std::io::Result<()> {
    serve(addr, None)
}

/// Starts `app` on `addr` on its own thread; fails if the address cannot be bound.
pub fn spawn_app(addr: SocketAddr, app: App) -> std::io::Result<()> {
    serve(addr, Some(Arc::new(app)))
}

fn serve(addr: SocketAddr, app: Option<Arc<App>>) -> std::io::Result<()> {
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
                    let app = app.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let app = app.clone();
                            async move {
                                let body = match app {
                                    Some(app) => answer(&app, &req).await,
                                    None => describe(&req),
                                };
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                            }
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

fn describe(req: &Request<Incoming>) -> String {
    format!(
        "hello from the meshwork demo upstream\n{} {} {:?}\nhost: {}\n",
        req.method(),
        req.uri(),
        req.version(),
        header(req, "host").unwrap_or("-"),
    )
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|h| h.to_str().ok())
}

/// `NAME PATH` and, indented below, the answer of every service it calls (or why there was none).
async fn answer(app: &App, req: &Request<Incoming>) -> String {
    let mut out = format!("{} {}\n", app.name, req.uri().path());
    let user = header(req, "end-user").map(str::to_string);
    for service in &app.calls {
        let reply = match app.outbound {
            Some(outbound) => call(outbound, service, user.as_deref()).await,
            None => Err("no sidecar to call through".to_string()),
        };
        let text = reply.unwrap_or_else(|e| format!("{service}: {e}\n"));
        for line in text.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `GET /` to `service` through the sidecar at `outbound`, passing `end-user` on (so routes matching it apply on
/// every hop). A non-200 answer is an error naming the status.
async fn call(outbound: SocketAddr, service: &str, user: Option<&str>) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(outbound)
        .await
        .map_err(|e| format!("cannot reach the sidecar at {outbound}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get("/").header("host", service);
    if let Some(user) = user {
        req = req.header("end-user", user);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {}", text.lines().next().unwrap_or("")))
    }
}
