//! A minimal AWS Lambda Runtime API on 127.0.0.1 (HTTP/1.1, keep-alive, plain threads): enough
//! for `lambda_runtime` to fetch invocations and post responses, with timestamps of both. The
//! benchmarks run the function binaries against it, and so do the process-level tests.
//!
//! - `GET /2018-06-01/runtime/invocation/next` hands out the next queued event (waiting, bounded,
//!   while the queue is empty) with the `Lambda-Runtime-*` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error` record the result;
//! - `POST /2018-06-01/runtime/init/error` records an init failure.
//!
//! Every connection is served by a thread of its own, so several `GET /next` can wait at once
//! (a runtime polling with `AWS_LAMBDA_MAX_CONCURRENCY` > 1, as on Lambda Managed Instances, holds
//! one per worker); each queued event goes to exactly one of them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const PREFIX: &str = "/2018-06-01/runtime";
/// Longest a `GET /next` waits for an event before the connection is closed.
const NEXT_WAIT: Duration = Duration::from_secs(120);
/// Largest request the server reads (responses of our functions are a few hundred bytes).
const MAX_BODY: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Outcome {
    pub request_id: String,
    pub at: Instant,
    /// `response` or `error`.
    pub kind: &'static str,
    pub body: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    first_next: Option<Instant>,
    outcomes: Vec<Outcome>,
    init_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    function_name: String,
}

pub struct RuntimeApi {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    pub fn start(function_name: &str) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind Runtime API")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            function_name: function_name.to_owned(),
        });
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.stop.load(Ordering::Relaxed) {
                // Blocking accept; `Drop` wakes it with a connection of its own after setting `stop`.
                match listener.accept() {
                    Ok((stream, _)) if !s.stop.load(Ordering::Relaxed) => {
                        let s = s.clone();
                        conns.push(std::thread::spawn(move || {
                            let _ = serve(stream, &s);
                        }));
                    }
                    Ok(_) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Ok(Self { port, shared, acceptor: Some(acceptor), next_id: AtomicU64::new(0) })
    }

    /// The variables Lambda sets for a function process (`AWS_LAMBDA_*`), pointing it at this API.
    pub fn function_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", self.port)),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[1]local".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Queues one invocation; returns its request id.
    pub fn push(&self, event: String) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-bench-4000-8000-{:012x}", std::process::id(), n);
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.queue.push_back((id.clone(), event));
        self.shared.changed.notify_all();
        id
    }

    pub fn first_next(&self) -> Option<Instant> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).first_next
    }

    pub fn init_error(&self) -> Option<String> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).init_error.clone()
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).outcomes.clone()
    }

    /// Waits until `n` outcomes are recorded (or an init error, or the timeout). True when reached.
    pub fn wait_outcomes(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.outcomes.len() >= n {
                return true;
            }
            if st.init_error.is_some() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, self.port).into(), Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

struct HttpRequest {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// `read_line` that rides out read timeouts (bounded) unless the server is stopping.
/// `Ok(0)` is the end of the connection.
fn line(reader: &mut BufReader<TcpStream>, shared: &Shared, out: &mut String) -> std::io::Result<usize> {
    let before = out.len();
    for _ in 0..3_000 {
        match reader.read_line(out) {
            Ok(0) if out.len() == before => return Ok(0),
            Ok(_) => return Ok(out.len() - before),
            Err(e) if timed_out(&e) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("read timed out"))
}

/// Fills `buf` completely, riding out read timeouts (bounded).
fn exact(reader: &mut BufReader<TcpStream>, shared: &Shared, buf: &mut [u8]) -> std::io::Result<()> {
    let mut at = 0;
    for _ in 0..100_000 {
        if at == buf.len() {
            return Ok(());
        }
        match reader.read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if timed_out(&e) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("read timed out"))
}

/// Reads one request; `Ok(None)` on a clean end of the connection or when stopping.
fn read_request(reader: &mut BufReader<TcpStream>, shared: &Shared) -> std::io::Result<Option<HttpRequest>> {
    let mut first = String::new();
    if line(reader, shared, &mut first)? == 0 {
        return Ok(None);
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked) = (0usize, false);
    for _ in 0..100 {
        let mut h = String::new();
        if line(reader, shared, &mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0).min(MAX_BODY);
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        for _ in 0..10_000 {
            let mut size = String::new();
            line(reader, shared, &mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                line(reader, shared, &mut end)?;
                break;
            }
            if body.len() + n > MAX_BODY {
                return Err(std::io::Error::other("body too large"));
            }
            let start = body.len();
            body.resize(start + n, 0);
            exact(reader, shared, &mut body[start..])?;
            let mut crlf = [0u8; 2];
            exact(reader, shared, &mut crlf)?;
        }
    } else {
        body.resize(length, 0);
        exact(reader, shared, &mut body)?;
    }
    Ok(Some(HttpRequest { method, path, body }))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    for _ in 0..10_000_000u64 {
        let Some(req) = read_request(&mut reader, shared)? else { return Ok(()) };
        let now = Instant::now();
        let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
        match (req.method.as_str(), rest) {
            ("GET", "/invocation/next") => {
                let next = {
                    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.first_next.get_or_insert(now);
                    let deadline = now + NEXT_WAIT;
                    loop {
                        if let Some(ev) = st.queue.pop_front() {
                            break Some(ev);
                        }
                        if shared.stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break None;
                        }
                        st = shared
                            .changed
                            .wait_timeout(st, Duration::from_millis(50))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                };
                let Some((id, event)) = next else { return Ok(()) };
                let deadline_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 30_000)
                    .unwrap_or(0);
                let headers = [
                    ("content-type", "application/json".to_owned()),
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        format!("arn:aws:lambda:us-east-1:123456789012:function:{}", shared.function_name),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0".to_owned(),
                    ),
                ];
                respond(&mut writer, "200 OK", &headers, event.as_bytes())?;
            }
            ("POST", "/init/error") => {
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                st.init_error = Some(String::from_utf8_lossy(&req.body).into_owned());
                shared.changed.notify_all();
                drop(st);
                respond(&mut writer, "202 Accepted", &[], b"{\"status\":\"OK\"}")?;
            }
            ("POST", p) if p.starts_with("/invocation/") && (p.ends_with("/response") || p.ends_with("/error")) => {
                let trimmed = &p["/invocation/".len()..];
                let (id, kind) = trimmed.rsplit_once('/').unwrap_or((trimmed, ""));
                let kind = if kind == "response" { "response" } else { "error" };
                let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                st.outcomes.push(Outcome {
                    request_id: id.to_owned(),
                    at: now,
                    kind,
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                });
                shared.changed.notify_all();
                drop(st);
                respond(&mut writer, "202 Accepted", &[], b"{\"status\":\"OK\"}")?;
            }
            _ => respond(&mut writer, "404 Not Found", &[], b"{}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn hands_out_an_event_and_records_the_response_on_one_connection() {
        let api = RuntimeApi::start("fn").unwrap();
        let id = api.push("{\"hello\":1}".into());
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, api.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let next = exchange(&mut s, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(next.contains(&format!("lambda-runtime-aws-request-id: {id}")), "{next}");
        assert!(next.contains("lambda-runtime-deadline-ms: ") && next.ends_with("{\"hello\":1}"), "{next}");
        let post = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"a\":\r\n2\r\n1}}\r\n0\r\n\r\n"
        );
        assert!(exchange(&mut s, &post).starts_with("HTTP/1.1 202"));
        assert!(api.wait_outcomes(1, Duration::from_secs(5)));
        let out = api.outcomes();
        assert_eq!(
            (out[0].request_id.as_str(), out[0].kind, out[0].body.as_str()),
            (id.as_str(), "response", "{\"a\":1}")
        );
        assert!(api.first_next().is_some());
    }

    #[test]
    fn several_waiting_nexts_each_get_one_event() {
        let api = RuntimeApi::start("fn").unwrap();
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let port = api.port;
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let next = exchange(&mut s, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n");
                    let id = next
                        .lines()
                        .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
                        .unwrap()
                        .trim()
                        .to_owned();
                    let post = format!(
                        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}"
                    );
                    assert!(exchange(&mut s, &post).starts_with("HTTP/1.1 202"));
                    id
                })
            })
            .collect();
        // All four are waiting before the first event is queued.
        std::thread::sleep(Duration::from_millis(200));
        let mut pushed: Vec<String> = (0..4).map(|n| api.push(format!("{{\"n\":{n}}}"))).collect();
        let mut served: Vec<String> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(api.wait_outcomes(4, Duration::from_secs(5)));
        pushed.sort();
        served.sort();
        assert_eq!(served, pushed, "each event handed out once");
        assert_eq!(api.outcomes().len(), 4);
    }
}
