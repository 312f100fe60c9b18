//! Shared pieces: test modules, a recording `Progress`, clients with options.

use std::{net::SocketAddr, sync::Mutex, time::Duration};

use meshwork_oci::{
    Auth, Client, ClientOptions, NoProgress, Progress, PushFormat, Pushed, Reference,
};

/// A WebAssembly module (header + one custom section named `name` with `size` bytes of payload).
pub fn module(name: &str, size: usize) -> Vec<u8> {
    let mut body = leb(name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend(std::iter::repeat_n(0x5a, size));
    let mut wasm = b"\0asm\x01\0\0\0\x00".to_vec();
    wasm.extend(leb(body.len()));
    wasm.extend(body);
    wasm
}

fn leb(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A client for loopback registries with a short timeout.
pub fn client() -> Client {
    client_with(|_| {})
}

/// A client whose options `edit` changes.
pub fn client_with(edit: impl FnOnce(&mut ClientOptions)) -> Client {
    let mut options = ClientOptions {
        timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    };
    edit(&mut options);
    Client::new(options).expect("client")
}

/// Records progress calls as "begin LABEL TOTAL", bytes advanced, "end".
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<String>>,
    pub bytes: Mutex<u64>,
}

impl Progress for Recorder {
    fn begin(&self, label: &str, total: u64) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("begin {label} {total}"));
    }
    fn advance(&self, bytes: u64) {
        *self.bytes.lock().expect("lock") += bytes;
    }
    fn end(&self) {
        self.events.lock().expect("lock").push("end".into());
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().expect("lock").clone()
    }
    pub fn bytes(&self) -> u64 {
        *self.bytes.lock().expect("lock")
    }
}

/// A TCP forwarder on 127.0.0.2 (loopback, but not a name plain http is used for at once) to `backend`.
pub async fn forwarder(backend: String) -> SocketAddr {
    let front = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let address = front.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = front.accept().await {
            let backend = backend.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    address
}

/// Pushes a module named `name` to `r` and pulls it back: the same module under the same manifest digest.
pub async fn round_trip(
    client: &Client,
    r: &Reference,
    auth: &Auth,
    format: PushFormat,
    name: &str,
) -> Pushed {
    let wasm = module(name, 1000);
    let pushed = client
        .push(r, &wasm, format, auth, &NoProgress)
        .await
        .expect("push");
    let pulled = client.pull(r, auth, &NoProgress).await.expect("pull");
    assert_eq!(
        (pulled.wasm, &pulled.manifest_digest),
        (wasm, &pushed.manifest_digest),
        "{r}"
    );
    pushed
}
