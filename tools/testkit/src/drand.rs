//! A drand relay fixture server on 127.0.0.1: answers `GET /{chain hash}/public/{round}` from
//! recorded quicknet rounds, as `api.drand.sh` does, so the sweeper's real HTTP fetch and the
//! draw's real BLS check run in tests without the internet. It is a stand-in for what no local
//! component produces (a drand network); the rounds it serves are real, published ones unless a
//! test alters them on purpose.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flash_sale::beacon::QUICKNET_CHAIN_HASH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Real quicknet rounds as published (round, signature hex): round 123 is `drand-verify`'s own
/// test vector (`https://api3.drand.sh/52db…e971/public/123`).
pub const QUICKNET_ROUNDS: &[(u64, &str)] = &[
    (123, "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"),
    (657_413, "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b"),
];

/// The recorded signature of `round`, hex.
pub fn quicknet_signature(round: u64) -> &'static str {
    QUICKNET_ROUNDS.iter().find(|(r, _)| *r == round).map(|(_, s)| *s).expect("a recorded quicknet round")
}

/// The fixture relay; stops when dropped.
pub struct DrandFixtureServer {
    url: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DrandFixtureServer {
    /// Serves every recorded round of [`QUICKNET_ROUNDS`].
    pub async fn start() -> Self {
        Self::serving(QUICKNET_ROUNDS.iter().map(|(r, s)| (*r, (*s).to_owned())).collect()).await
    }

    /// Serves exactly `rounds` (round, signature hex): a test may put an altered signature here.
    pub async fn serving(rounds: Vec<(u64, String)>) -> Self {
        let rounds: Arc<HashMap<u64, String>> = Arc::new(rounds.into_iter().collect());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the fixture relay");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let rounds = rounds.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    // One request head, at most 8 KiB.
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8 * 1024 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
                    let path = line.split(' ').nth(1).unwrap_or_default();
                    let prefix = format!("/{QUICKNET_CHAIN_HASH}/public/");
                    let found = path
                        .strip_prefix(&prefix)
                        .and_then(|r| r.parse::<u64>().ok())
                        .and_then(|r| rounds.get(&r).map(|sig| (r, sig)));
                    let (status, body) = match found {
                        // A relay also sends `randomness`; the draw derives it from the signature.
                        Some((round, sig)) => ("200 OK", format!(r#"{{"round":{round},"signature":"{sig}"}}"#)),
                        None => ("404 Not Found", "not found".to_owned()),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { url, requests, task }
    }

    /// `http://127.0.0.1:{port}`: the relay URL to configure.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for DrandFixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
