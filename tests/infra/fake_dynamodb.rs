//! A stand-in for DynamoDB on a loopback port that answers every operation with an empty success
//! and records what the SDK sent. It lets the crate's own code tell what it asks DynamoDB for (the
//! table it creates, the index key it queries) and how its handlers answer, without DynamoDB.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the SDK sent: the operation (`X-Amz-Target` without its prefix) and its JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub body: Value,
}

pub struct FakeDynamoDb {
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeDynamoDb {
    /// Listens on 127.0.0.1 (a free port) for as long as the test's runtime lives.
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the fake DynamoDB");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, recorded.clone()));
            }
        });
        Self { endpoint: format!("http://{addr}"), calls }
    }

    /// A client of the crate's own local configuration, pointed here.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        flash_sale::aws::local_client(&self.endpoint).expect("loopback client")
    }

    /// The calls of one operation so far, in order.
    pub fn calls(&self, operation: &str) -> Vec<Call> {
        self.calls.lock().expect("calls").iter().filter(|c| c.operation == operation).cloned().collect()
    }
}

/// The empty success of each operation the crate uses.
fn answer(operation: &str) -> Value {
    match operation {
        "Query" | "Scan" => json!({"Items": [], "Count": 0, "ScannedCount": 0}),
        "BatchGetItem" => json!({"Responses": {}, "UnprocessedKeys": {}}),
        "CreateTable" => json!({"TableDescription": {"TableStatus": "CREATING"}}),
        "DescribeTable" => json!({"Table": {"TableStatus": "ACTIVE"}}),
        _ => json!({}),
    }
}

/// HTTP/1.1 with keep-alive, one request after another on a connection.
async fn serve(mut stream: TcpStream, calls: Arc<Mutex<Vec<Call>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
        buf.drain(..end + 4 + length);
        let target = header("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let reply = answer(&operation).to_string();
        calls.lock().expect("calls").push(Call { operation, body });
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
