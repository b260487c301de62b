//! The table's stream as Lambda's event source mapping would hand it to a function, read from
//! DynamoDB Local's streams API; and `FakeEventBridge`, a stand-in for EventBridge's `PutEvents`
//! (EventBridge has no local emulator) that records what it is sent, fails calls or rejects
//! chosen entries when told to, and answers slowly when told to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 exchange over a fresh connection: `(status, body)`.
async fn http_post(addr: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_owned() };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// Calls DynamoDB Local's streams API (`DynamoDBStreams_20120810.{action}`). DynamoDB Local reads
/// the account from the credential scope and does not check the signature.
async fn streams(endpoint: &str, action: &str, body: Value) -> Value {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let auth = "AWS4-HMAC-SHA256 Credential=local/20261126/us-east-1/dynamodb/aws4_request, \
                SignedHeaders=host;x-amz-date, Signature=0000";
    let target = format!("DynamoDBStreams_20120810.{action}");
    let headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("X-Amz-Date", "20261126T000000Z"),
        ("X-Amz-Target", target.as_str()),
        ("Authorization", auth),
    ];
    let (status, text) = http_post(addr, &headers, &body.to_string()).await;
    assert_eq!(status, 200, "{action}: {text}");
    serde_json::from_str(&text).expect("streams JSON")
}

/// Every record of `table`'s stream so far, oldest first, each as a Lambda DynamoDB event record.
pub async fn stream_records(endpoint: &str, table: &str) -> Vec<Value> {
    let listed = streams(endpoint, "ListStreams", json!({"TableName": table})).await;
    let arn = listed["Streams"][0]["StreamArn"].as_str().expect("the table has a stream").to_owned();
    let described = streams(endpoint, "DescribeStream", json!({"StreamArn": arn})).await;
    let mut records = Vec::new();
    for shard in described["StreamDescription"]["Shards"].as_array().cloned().unwrap_or_default() {
        let it = streams(
            endpoint,
            "GetShardIterator",
            json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await;
        let mut iterator = it["ShardIterator"].as_str().map(str::to_owned);
        for _ in 0..1_000 {
            let Some(i) = iterator.take() else { break };
            let page = streams(endpoint, "GetRecords", json!({"ShardIterator": i, "Limit": 1000})).await;
            let got = page["Records"].as_array().cloned().unwrap_or_default();
            if got.is_empty() {
                break;
            }
            for mut r in got {
                r["eventSourceARN"] = json!(arn);
                records.push(r);
            }
            iterator = page["NextShardIterator"].as_str().map(str::to_owned);
        }
    }
    records.sort_by(|a, b| {
        let seq = |r: &Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default().to_owned();
        (seq(a).len(), seq(a)).cmp(&(seq(b).len(), seq(b)))
    });
    records
}

/// What `FakeEventBridge` does with the next `PutEvents` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusPlan {
    Accept,
    /// Fails every entry of the next `n` calls (`InternalFailure`), then accepts.
    FailCalls(u32),
    /// Fails every entry of every call.
    FailAll,
}

/// Decides, from an entry's `DetailType` and `Detail`, the error code it is rejected with (if any).
pub type Rejection = Box<dyn Fn(&str, &Value) -> Option<&'static str> + Send>;

#[derive(Default)]
struct BusState {
    plan: Option<BusPlan>,
    /// Entries rejected whatever the plan says.
    reject: Option<Rejection>,
    /// How long each answer takes.
    delay: Duration,
    calls: u32,
    /// Accepted entries: `(DetailType, Detail as JSON, EventBusName, Source)`.
    accepted: Vec<(String, Value, String, String)>,
}

/// A stand-in for EventBridge's `PutEvents` on a loopback port (awsJson1_1, one call per
/// connection or keep-alive). Not EventBridge: it checks nothing about the entries but their shape.
#[derive(Clone)]
pub struct FakeEventBridge {
    pub endpoint: String,
    state: Arc<Mutex<BusState>>,
}

impl FakeEventBridge {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(BusState { plan: Some(BusPlan::Accept), ..BusState::default() }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, shared.clone()));
            }
        });
        Self { endpoint, state }
    }

    pub fn set_plan(&self, plan: BusPlan) {
        self.state.lock().unwrap().plan = Some(plan);
    }

    /// Rejects, in every call, the entries `rejection` names (with its error code).
    pub fn reject(&self, rejection: Rejection) {
        self.state.lock().unwrap().reject = Some(rejection);
    }

    /// Answers every call after `delay` (a slow bus).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn calls(&self) -> u32 {
        self.state.lock().unwrap().calls
    }

    /// Accepted entries: `(DetailType, Detail, EventBusName, Source)`, in arrival order.
    pub fn accepted(&self) -> Vec<(String, Value, String, String)> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// The bus the order-events function publishes to, pointed at this fake.
    pub fn bus(&self, name: &str) -> order_events::Bus {
        use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url(&self.endpoint)
            .build();
        order_events::Bus { client: aws_sdk_eventbridge::Client::from_conf(config), name: name.to_owned() }
    }
}

async fn serve(mut conn: TcpStream, state: Arc<Mutex<BusState>>) {
    let started = Instant::now();
    let mut buf = Vec::new();
    loop {
        // One request: head, then Content-Length bytes.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if started.elapsed() > Duration::from_secs(120) {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        let delay = state.lock().unwrap().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let answer = {
            let mut s = state.lock().unwrap();
            s.calls += 1;
            let fail = match s.plan.unwrap_or(BusPlan::Accept) {
                BusPlan::Accept => false,
                BusPlan::FailAll => true,
                BusPlan::FailCalls(n) => {
                    s.plan = Some(if n <= 1 { BusPlan::Accept } else { BusPlan::FailCalls(n - 1) });
                    true
                }
            };
            let entries = body["Entries"].as_array().cloned().unwrap_or_default();
            let mut results = Vec::new();
            let mut failed = 0;
            for (i, e) in entries.iter().enumerate() {
                let detail = e["Detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                let rejected = s.reject.as_ref().and_then(|r| r(&text("DetailType"), &detail));
                match rejected.or(fail.then_some("InternalFailure")) {
                    Some(code) => {
                        failed += 1;
                        results.push(json!({"ErrorCode": code, "ErrorMessage": "injected by the fake"}));
                    }
                    None => {
                        s.accepted.push((text("DetailType"), detail, text("EventBusName"), text("Source")));
                        results.push(json!({"EventId": format!("fake-{}-{i}", s.calls)}));
                    }
                }
            }
            json!({"FailedEntryCount": failed, "Entries": results}).to_string()
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
