//! A fault-injecting HTTP/1.1 proxy between the AWS SDK and DynamoDB Local, for the failures
//! DynamoDB Local never produces: throttling, 500s, `TransactionConflict`, any error code (access
//! denied, validation), responses slower than the SDK's timeout, connection resets, a transaction
//! that commits but whose response never arrives, and a transaction still in progress. A plan decides per request; the SDK, its retries and DynamoDB Local stay real.
//! [`Recording`] is the same proxy keeping every request it forwards (operation and body), to see
//! which calls a function really makes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward and relay the answer.
    Pass,
    /// Answer `ProvisionedThroughputExceededException` without forwarding.
    Throttle,
    /// Answer HTTP 500 `InternalServerError` without forwarding.
    ServerError,
    /// Answer `TransactionCanceledException` with a `TransactionConflict` reason, not forwarding.
    Conflict,
    /// Answer `TransactionConflictException`, not forwarding: what a single-item write gets when
    /// a transaction holds its item.
    ItemConflict,
    /// Wait this long, then forward (the SDK has usually given up and retried by then).
    Slow(Duration),
    /// Close the connection without forwarding or answering.
    Reset,
    /// Forward (DynamoDB commits), then close the connection instead of answering.
    CommitThenDrop,
    /// Answer this HTTP status with this DynamoDB error code (`__type`), not forwarding: a fake
    /// of the errors DynamoDB Local never gives, e.g. `AccessDeniedException` (an IAM mistake)
    /// or a `ValidationException` the local table would not raise.
    Error { status: u16, code: &'static str },
    /// Answer `TransactionInProgressException`, not forwarding: what a retry gets while a
    /// transaction with the same token is still being processed.
    InProgress,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Throttle => "throttle",
            Fault::ServerError => "server_error",
            Fault::Conflict => "conflict",
            Fault::ItemConflict => "item_conflict",
            Fault::Slow(_) => "slow",
            Fault::Reset => "reset",
            Fault::CommitThenDrop => "commit_then_drop",
            Fault::Error { .. } => "error",
            Fault::InProgress => "in_progress",
        }
    }
}

/// DynamoDB Local's address (`host:port` of [`crate::endpoint`]), where the proxies forward.
pub fn upstream() -> SocketAddr {
    crate::endpoint().trim_start_matches("http://").trim_end_matches('/').parse().expect("endpoint is host:port")
}

/// Short, cloud-like timeouts so slow answers really time out.
pub fn timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_millis(800))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

/// A plan that forwards everything.
pub fn pass() -> Plan {
    Box::new(|_: &str, _: &str| Fault::Pass)
}

/// A plan that applies `fault` to a seeded `share` of the operations it names.
pub fn seeded(seed: u64, share: f64, ops: &'static [&'static str], fault: Fault) -> Plan {
    let mut rng = fastrand::Rng::with_seed(seed);
    Box::new(move |op: &str, _: &str| if ops.contains(&op) && rng.f64() < share { fault } else { Fault::Pass })
}

/// Decides the fault for a request, given its `X-Amz-Target` operation (e.g. `TransactWriteItems`)
/// and its JSON body (to aim at one key).
pub type Plan = Box<dyn FnMut(&str, &str) -> Fault + Send>;

pub struct Proxy {
    pub endpoint: String,
    plan: Arc<Mutex<Plan>>,
    counts: Arc<Mutex<BTreeMap<(String, &'static str), usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (a loopback DynamoDB Local).
    pub async fn start(upstream: SocketAddr, plan: Plan) -> Proxy {
        assert!(upstream.ip().is_loopback(), "the proxy only forwards to loopback");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let plan = Arc::new(Mutex::new(plan));
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let (p, c) = (plan.clone(), counts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                tokio::spawn(serve(client, upstream, p.clone(), c.clone()));
            }
        });
        Proxy { endpoint, plan, counts, task }
    }

    /// Replaces the plan (e.g. with one that passes everything, to check recovery).
    pub fn set_plan(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    /// How often each (operation, fault) happened.
    pub fn counts(&self) -> BTreeMap<(String, &'static str), usize> {
        self.counts.lock().unwrap().clone()
    }

    /// A client through this proxy with the local stack's patient timeouts: on a loaded machine
    /// no attempt times out, so what a recording sees is the code's requests, not the SDK's
    /// retries of attempts abandoned early.
    pub fn patient_client(&self) -> aws_sdk_dynamodb::Client {
        crate::own_retry_quota(&flash_sale::aws::local_client(&self.endpoint).expect("client"))
    }

    /// A DynamoDB client (static credentials, region) whose endpoint is this proxy, with the
    /// cloud-like [`timeouts`].
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        crate::own_retry_quota(
            &flash_sale::aws::local_client_with_timeouts(&self.endpoint, timeouts()).expect("client"),
        )
    }
}

/// A proxy that keeps every request it sees, `(operation, JSON body)` and when it saw it, and then
/// does what its plan says.
pub struct Recording {
    pub proxy: Proxy,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// One request a [`Recording`] saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The `X-Amz-Target` operation, e.g. `TransactWriteItems`.
    pub op: String,
    /// The JSON body.
    pub body: String,
    /// When the proxy had read the whole request (before forwarding it).
    pub at: std::time::Instant,
}

impl Recording {
    pub async fn start(mut plan: Plan) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let recording: Plan = Box::new(move |op: &str, body: &str| {
            let at = std::time::Instant::now();
            log.lock().unwrap().push(Seen { op: op.to_owned(), body: body.to_owned(), at });
            plan(op, body)
        });
        Self { proxy: Proxy::start(upstream(), recording).await, seen }
    }

    /// The requests seen since the last take, in order: `(operation, JSON body)`.
    pub fn take(&self) -> Vec<(String, String)> {
        self.take_timed().into_iter().map(|s| (s.op, s.body)).collect()
    }

    /// The requests seen since the last take, in order, with when each arrived.
    pub fn take_timed(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One raw HTTP/1.1 request: head (up to the blank line) and body (by Content-Length).
pub(crate) struct RawRequest {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

pub(crate) async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 16 * 1024];
                let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some(RawRequest { head, body });
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub(crate) fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn error_response(status: u16, kind: &str, extra: &str) -> Vec<u8> {
    let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected fault"{extra}}}"#);
    let reason = match status {
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        403 => "Forbidden",
        _ => "Bad Request",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: injected\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends the request upstream on a fresh connection and returns the whole response.
async fn forward(upstream: SocketAddr, request: &RawRequest) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await.ok()?;
    // Ask DynamoDB Local to close after answering, so the response ends at EOF.
    let mut lines: Vec<&str> =
        request.head.trim_end().lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    let head = lines.join("\r\n") + "\r\n\r\n";
    up.write_all(head.as_bytes()).await.ok()?;
    up.write_all(&request.body).await.ok()?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await.ok()?;
    (!response.is_empty()).then_some(response)
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    counts: Arc<Mutex<BTreeMap<(String, &'static str), usize>>>,
) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut client, &mut buf).await {
        let op = header(&request.head, "x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("?").to_owned();
        let fault = (plan.lock().unwrap())(&op, &String::from_utf8_lossy(&request.body));
        *counts.lock().unwrap().entry((op.clone(), fault.name())).or_default() += 1;
        let reply = match fault {
            Fault::Pass => forward(upstream, &request).await,
            Fault::Throttle => Some(error_response(400, "ProvisionedThroughputExceededException", "")),
            Fault::ServerError => Some(error_response(500, "InternalServerError", "")),
            Fault::Conflict => Some(error_response(
                400,
                "TransactionCanceledException",
                r#","CancellationReasons":[{"Code":"TransactionConflict","Message":"injected"},{"Code":"None"}]"#,
            )),
            Fault::ItemConflict => Some(error_response(400, "TransactionConflictException", "")),
            Fault::Error { status, code } => Some(error_response(status, code, "")),
            Fault::InProgress => Some(error_response(400, "TransactionInProgressException", "")),
            Fault::Slow(delay) => {
                tokio::time::sleep(delay).await;
                forward(upstream, &request).await
            }
            Fault::Reset => None,
            Fault::CommitThenDrop => {
                let _ = forward(upstream, &request).await;
                None
            }
        };
        match reply {
            Some(bytes) if client.write_all(&bytes).await.is_ok() => {
                if String::from_utf8_lossy(&bytes[..bytes.len().min(2048)])
                    .to_ascii_lowercase()
                    .contains("connection: close")
                {
                    return;
                }
            }
            _ => {
                // Abortive close: the client sees a reset, not a clean end of stream.
                #[allow(deprecated)] // a zero linger resets at once; it never blocks
                let _ = client.set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}
