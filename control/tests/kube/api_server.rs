//! A Kubernetes API server as a tower service, for kube's real client: list requests get recorded responses (JSON
//! fixtures), so do gets of single objects (a Secret), a watch request gets the events the test sends (one JSON object per line, as the API server streams
//! them), and a path with no fixture gets the API server's `404 NotFound` status, which is what a kind whose
//! CustomResourceDefinition is not installed answers.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::{Ready, ready},
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// A response body.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The recorded API; clones share it.
#[derive(Clone, Default)]
pub struct ApiServer {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    lists: HashMap<String, Bytes>,
    refusals: HashMap<String, (u16, String)>,
    watches: HashMap<String, mpsc::UnboundedReceiver<Bytes>>,
    requests: Vec<String>,
}

/// The path of a collection: `/api/v1/pods`, `/apis/GROUP/VERSION/namespaces/NS/PLURAL`, ...
pub fn path(api_version: &str, plural: &str, namespace: Option<&str>) -> String {
    let root = match api_version {
        "v1" => "/api/v1".to_string(),
        gv => format!("/apis/{gv}"),
    };
    match namespace {
        Some(ns) => format!("{root}/namespaces/{ns}/{plural}"),
        None => format!("{root}/{plural}"),
    }
}

impl ApiServer {
    /// Lists at `path` answer `json`.
    pub fn list(&self, path: &str, json: &str) {
        self.lock()
            .lists
            .insert(path.into(), Bytes::from(json.to_owned()));
    }

    /// Gets of the object at `path` (`/api/v1/namespaces/NS/secrets/NAME`) answer `json`.
    pub fn object(&self, path: &str, json: &str) {
        self.list(path, json);
    }

    /// Requests at `path` are refused with `code` (e.g. 403 for a missing RBAC rule).
    pub fn refuse(&self, path: &str, code: u16, message: &str) {
        self.lock()
            .refusals
            .insert(path.into(), (code, message.into()));
    }

    /// The first watch of `path` streams what is sent here (later watches, and other paths, stay open and quiet).
    pub fn watch(&self, path: &str) -> mpsc::UnboundedSender<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().watches.insert(path.into(), rx);
        tx
    }

    /// Every request so far, as `METHOD PATH?QUERY`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn answer(&self, method: &http::Method, uri: &http::Uri) -> Response<Body> {
        let mut state = self.lock();
        state.requests.push(format!("{method} {uri}"));
        let path = uri.path();
        let watching = uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true"));
        if let Some((code, message)) = state.refusals.get(path) {
            return status(*code, message);
        }
        if watching {
            let body = match state.watches.remove(path) {
                Some(rx) => UnboundedReceiverStream::new(rx)
                    .map(|line| Ok(Frame::data(line)))
                    .boxed(),
                None => stream::pending().boxed(),
            };
            return json(StatusCode::OK, StreamBody::new(body).boxed_unsync());
        }
        match state.lists.get(path) {
            Some(list) => json(StatusCode::OK, Full::new(list.clone()).boxed_unsync()),
            None => status(404, "the server could not find the requested resource"),
        }
    }
}

/// The API server's `Status` object for a failed request.
fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {}, "code": code,
    });
    json(
        StatusCode::from_u16(code).unwrap(),
        Full::new(Bytes::from(body.to_string())).boxed_unsync(),
    )
}

fn json(code: StatusCode, body: Body) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

impl tower::Service<Request<kube::client::Body>> for ApiServer {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        ready(Ok(self.answer(req.method(), req.uri())))
    }
}
