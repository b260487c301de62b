//! A fixture HTTP server on 127.0.0.1 that answers `GET` of fixed paths with fixed JSON bodies
//! (200) and anything else with 404: a stand-in for what serves public documents outside the
//! stack (a drand relay, an edge cache holding the API's answers), with no logic of its own.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The server; stops when dropped.
pub struct FixtureHttpServer {
    url: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureHttpServer {
    /// Serves `files`: path (with its leading `/`) → JSON body.
    pub async fn serving(files: HashMap<String, String>) -> Self {
        let files = Arc::new(files);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the fixture server");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let files = files.clone();
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
                    let (status, body) = match files.get(path) {
                        Some(body) => ("200 OK", body.as_str()),
                        None => ("404 Not Found", "not found"),
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

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FixtureHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
