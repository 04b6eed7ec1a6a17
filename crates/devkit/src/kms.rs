//! moto's KMS server on loopback (started with the mail peers), behind a proxy that can cut
//! KMS off or make it throttle.
//!
//! moto keeps its keys in memory, so an outage cannot be staged by stopping it: the proxy
//! stands in front instead, refusing connections or answering `ThrottlingException` as AWS
//! does under load, and passes traffic through again when told.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Waits until moto (started by the peers, see `tests/peers/peers.py`) accepts connections.
pub async fn wait_for_moto(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("moto's KMS server did not listen on {addr} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// What the proxy does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsMode {
    /// Pass it through to moto.
    Up,
    /// Close it at once (KMS unreachable).
    Down,
    /// Answer every request with HTTP 400 `ThrottlingException`.
    Throttle,
}

/// A switchable proxy in front of a KMS endpoint. Lives as long as the runtime that made it.
#[derive(Clone)]
pub struct KmsProxy {
    mode: Arc<watch::Sender<KmsMode>>,
    requests: Arc<AtomicU64>,
    /// Its address.
    pub addr: SocketAddr,
}

impl KmsProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            mode: Arc::new(watch::Sender::new(KmsMode::Up)),
            requests: Arc::new(AtomicU64::new(0)),
            addr: listener.local_addr()?,
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(p.clone().serve(conn, upstream));
            }
        });
        Ok(proxy)
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches what new connections get. Connections already open are cut unless `Up`.
    pub fn set(&self, mode: KmsMode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far (each KMS call opens at most one; idle ones are reused).
    pub fn connections(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    async fn serve(self, mut conn: TcpStream, upstream: SocketAddr) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut mode = self.mode.subscribe();
        let now = *mode.borrow_and_update();
        match now {
            KmsMode::Down => {}
            KmsMode::Throttle => throttle(&mut conn).await,
            KmsMode::Up => {
                let Ok(mut up) = TcpStream::connect(upstream).await else { return };
                let (mut a, mut b) = (conn.split(), up.split());
                // A kept-alive connection is cut as soon as the mode changes.
                tokio::select! {
                    _ = tokio::io::copy(&mut a.0, &mut b.1) => {}
                    _ = tokio::io::copy(&mut b.0, &mut a.1) => {}
                    _ = mode.wait_for(|m| *m != KmsMode::Up) => {}
                }
            }
        }
    }
}

/// Reads one request and answers it as AWS does when a caller is over its request rate.
async fn throttle(conn: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
    let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
}
