//! The front door of the local stack: an HTTP/1.1 server on the public API port that forwards to
//! `cargo lambda watch --only-lambda-apis` on an internal loopback port, whose Runtime API the
//! function instances (see `supervisor.rs`) poll.
//!
//! Each function runs `instances` processes, one request each, and `cargo lambda watch` 1.9.2
//! hangs for good once about 100 requests queue for one function. The front door keeps that from
//! happening whatever the clients do: it knows which function each route goes to (the router table
//! of the workspace `Cargo.toml`), lets at most `instances` requests per function through at a
//! time, queues the rest in arrival order (at most `queue` per function, each for at most
//! `max_wait`), and answers the rest 503 `temporarily_unavailable` with `Retry-After: 1`, the
//! contract of the deployed API. Idle keep-alive connections hold no slot: a request takes one only
//! once its body has arrived, and gives it back as soon as the function has answered. While a
//! function restarts on a new build its lane is held ([`Lane::hold`]): its requests wait in that
//! same queue, at most `max_wait`.
//!
//! Requests are forwarded unchanged (method, path and query, headers but the hop-by-hop ones,
//! body), and so are the answers, CORS headers included. CORS preflights (answered by
//! `cargo lambda watch` itself, no function involved) have a lane of their own.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The largest body forwarded (API Gateway's HTTP API limit); the functions refuse far less.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// A client gets this long to send its headers, and then its body, before the connection closes.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Lane of CORS preflights, which `cargo lambda watch` answers without a function.
pub const PREFLIGHT_LANE: &str = "cors-preflight";
/// Lane of paths that no route names (`cargo lambda watch` answers them itself).
pub const UNROUTED_LANE: &str = "unrouted";

/// One entry of the router table: a path pattern (`/sales/{saleId}`), an optional method, the
/// function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub segments: Vec<Segment>,
    /// `None`: every method.
    pub method: Option<String>,
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param,
}

/// The router table of `[workspace.metadata.lambda.watch.router]` in the workspace `Cargo.toml`
/// (`cargo_toml` is that file's text). A string value routes every method; a list gives
/// `{ method, function }` entries, as `cargo lambda watch` reads it.
pub fn routes_from_cargo_toml(cargo_toml: &str) -> Result<Vec<Route>> {
    let doc = toml::Value::Table(toml::from_str(cargo_toml).context("cannot parse Cargo.toml")?);
    let router = ["workspace", "metadata", "lambda", "watch", "router"]
        .iter()
        .try_fold(&doc, |v, key| v.get(key))
        .and_then(toml::Value::as_table)
        .context("Cargo.toml has no [workspace.metadata.lambda.watch.router] table")?;
    let mut routes = Vec::new();
    for (path, target) in router {
        let segments = parse_pattern(path)?;
        let entries: Vec<(Option<String>, String)> = match target {
            toml::Value::String(function) => vec![(None, function.clone())],
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    let function = item.get("function").and_then(toml::Value::as_str);
                    let method = item.get("method").and_then(toml::Value::as_str).map(str::to_ascii_uppercase);
                    function
                        .map(|f| (method, f.to_owned()))
                        .with_context(|| format!("router {path}: entry without function"))
                })
                .collect::<Result<_>>()?,
            other => bail!("router {path}: unexpected value {other}"),
        };
        routes.extend(entries.into_iter().map(|(method, function)| Route {
            segments: segments.clone(),
            method,
            function,
        }));
    }
    if routes.is_empty() {
        bail!("the router table in Cargo.toml is empty");
    }
    Ok(routes)
}

fn parse_pattern(path: &str) -> Result<Vec<Segment>> {
    let Some(rest) = path.strip_prefix('/') else { bail!("router path `{path}` must start with /") };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !name.is_empty() => Ok(Segment::Param),
            _ if seg.is_empty() || seg.contains(['{', '}']) => {
                bail!("router path `{path}`: bad segment `{seg}`")
            }
            _ => Ok(Segment::Literal(seg.to_owned())),
        })
        .collect()
}

/// The function that serves `method path`, if a route names it. A route with literal segments
/// wins over one with parameters at the same place; a route for the method over one for any.
pub fn function_for<'a>(routes: &'a [Route], method: &Method, path: &str) -> Option<&'a str> {
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let parts: &[&str] = if parts == [""] { &[] } else { &parts };
    routes
        .iter()
        .filter(|r| r.method.as_deref().is_none_or(|m| m == method.as_str()))
        .filter(|r| {
            r.segments.len() == parts.len()
                && r.segments.iter().zip(parts).all(|(s, p)| match s {
                    Segment::Literal(l) => l == p,
                    Segment::Param => !p.is_empty(),
                })
        })
        .max_by_key(|r| {
            let literals: Vec<bool> = r.segments.iter().map(|s| matches!(s, Segment::Literal(_))).collect();
            (literals, r.method.is_some())
        })
        .map(|r| r.function.as_str())
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `queue` requests were already waiting.
    QueueFull,
    /// It waited `max_wait` without getting a slot.
    WaitedTooLong,
}

/// At most `slots` requests through at once, the next `queue` waiting in arrival order, each at
/// most `max_wait`.
pub struct Lane {
    pub name: String,
    slots: Semaphore,
    slot_count: usize,
    waiting: AtomicUsize,
    queue: usize,
    max_wait: Duration,
    shed: AtomicU64,
    /// Held for a restart: every slot is taken by [`Lane::hold`].
    held: AtomicBool,
}

/// Takes a place in the queue; gives it back when dropped (also when the client goes away).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lane {
    pub fn new(name: &str, slots: usize, queue: usize, max_wait: Duration) -> Self {
        let slots = slots.max(1);
        Self {
            name: name.to_owned(),
            slots: Semaphore::new(slots),
            slot_count: slots,
            waiting: AtomicUsize::new(0),
            queue,
            max_wait,
            shed: AtomicU64::new(0),
            held: AtomicBool::new(false),
        }
    }

    /// Takes every slot, after the requests in flight have finished (and after the requests
    /// already waiting, first in, first out); requests that come later wait in the queue as for
    /// a busy function. [`Lane::release`] gives the slots back.
    pub async fn hold(&self) {
        // The semaphore is never closed.
        if let Ok(all) = self.slots.acquire_many(self.slot_count as u32).await {
            all.forget();
            self.held.store(true, Ordering::SeqCst);
        }
    }

    /// Gives back the slots [`Lane::hold`] took.
    pub fn release(&self) {
        if self.held.swap(false, Ordering::SeqCst) {
            self.slots.add_permits(self.slot_count);
        }
    }

    /// Whether the lane is held for a restart.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// A slot, at once or after waiting in line. Tokio's semaphore hands permits out in the order
    /// they were asked for, so the line is first in, first out.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, Shed> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.shed.fetch_add(1, Ordering::SeqCst);
            return Err(Shed::QueueFull);
        }
        let _place = QueuePlace(&self.waiting);
        match tokio::time::timeout(self.max_wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => {
                self.shed.fetch_add(1, Ordering::SeqCst);
                Err(Shed::WaitedTooLong)
            }
        }
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        let taken = self.slot_count - self.slots.available_permits();
        if self.is_held() { taken.saturating_sub(self.slot_count) } else { taken }
    }

    /// Requests answered 503 so far because the queue was full or they waited too long.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::SeqCst)
    }
}

/// How the front door is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect (loopback).
    pub listen: SocketAddr,
    /// `cargo lambda watch` (loopback).
    pub upstream: SocketAddr,
    pub routes: Vec<Route>,
    /// Functions without a route that get a lane too (invoked by xtask, not through the door),
    /// with their slots.
    pub unrouted_functions: Vec<(String, usize)>,
    /// Requests in flight per routed function: the instances that run of each.
    pub instances: usize,
    /// Requests waiting per function before the next is answered 503.
    pub queue: usize,
    /// The longest a request waits in the queue before it is answered 503.
    pub max_wait: Duration,
    /// The longest a request that got a slot waits for the function. The slot stays taken until
    /// the function really answers.
    pub upstream_timeout: Duration,
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

struct State {
    config: Config,
    lanes: BTreeMap<String, Arc<Lane>>,
    client: Upstream,
}

impl State {
    fn lane(&self, method: &Method, headers: &HeaderMap, path: &str) -> Arc<Lane> {
        let preflight = method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let name = if preflight {
            PREFLIGHT_LANE
        } else {
            function_for(&self.config.routes, method, path).unwrap_or(UNROUTED_LANE)
        };
        self.lanes.get(name).or_else(|| self.lanes.get(UNROUTED_LANE)).cloned().expect("the unrouted lane exists")
    }
}

/// A running front door. Dropping it stops the server and every connection.
pub struct FrontDoor {
    runtime: tokio::runtime::Runtime,
    pub addr: SocketAddr,
    lanes: BTreeMap<String, Arc<Lane>>,
}

impl FrontDoor {
    /// The runtime the server runs on, for work (such as the warm-up) that talks to it.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// The lane of `name` (a function, [`PREFLIGHT_LANE`] or [`UNROUTED_LANE`]).
    pub fn lane(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes.get(name).cloned()
    }

    /// `(lane, in flight, waiting, answered 503 so far)` for every lane.
    pub fn load(&self) -> Vec<(String, usize, usize, u64)> {
        self.lanes.values().map(|l| (l.name.clone(), l.in_flight(), l.waiting(), l.shed())).collect()
    }
}

/// The functions the routes name, in name order.
pub fn functions(routes: &[Route]) -> Vec<String> {
    let mut names: Vec<String> = routes.iter().map(|r| r.function.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// Binds `config.listen` (loopback only) and serves from a runtime of its own.
pub fn start(config: Config) -> Result<FrontDoor> {
    if !config.listen.ip().is_loopback() || !config.upstream.ip().is_loopback() {
        bail!("the front door listens and forwards on loopback only");
    }
    let std_listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {} (is another stack running?)", config.listen))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("front-door")
        .enable_all()
        .build()
        .context("cannot start the front door's runtime")?;

    let mut lanes: BTreeMap<String, Arc<Lane>> = functions(&config.routes)
        .into_iter()
        .map(|f| {
            let lane = Lane::new(&f, config.instances, config.queue, config.max_wait);
            (f, Arc::new(lane))
        })
        .collect();
    for name in [PREFLIGHT_LANE, UNROUTED_LANE] {
        lanes.insert(name.to_owned(), Arc::new(Lane::new(name, config.instances, config.queue, config.max_wait)));
    }
    for (name, slots) in &config.unrouted_functions {
        lanes.entry(name.clone()).or_insert_with(|| Arc::new(Lane::new(name, *slots, config.queue, config.max_wait)));
    }
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.instances * (lanes.len()))
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http);
    let state = Arc::new(State { config, lanes: lanes.clone(), client });

    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    runtime.spawn(accept_loop(listener, state));
    Ok(FrontDoor { runtime, addr, lanes })
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>) {
    let mut reported = false;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors, most likely: wait for connections to close.
                if !reported {
                    eprintln!("xtask: front door cannot accept a connection: {e}");
                    reported = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Headers that belong to one connection, not to the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name == header::CONTENT_LENGTH
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in hop {
        headers.remove(name);
    }
}

/// 503 `temporarily_unavailable`, as the deployed API answers it, with the CORS headers
/// `cargo lambda watch` would have added so that a page on another origin can read it.
pub fn unavailable(detail: &str, origin: Option<&HeaderValue>) -> Response<Full<Bytes>> {
    problem(503, "temporarily_unavailable", detail, origin)
}

fn problem(status: u16, code: &str, detail: &str, origin: Option<&HeaderValue>) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    if status == StatusCode::SERVICE_UNAVAILABLE {
        body["retryAfterSeconds"] = json!(1);
    }
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
        h.insert(
            header::VARY,
            HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers"),
        );
    }
    resp
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let lane = state.lane(&parts.method, &parts.headers, parts.uri.path());

    // The whole body first, so that a slow client never holds a function's slot.
    let body = match tokio::time::timeout(CLIENT_READ_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            let detail = format!("the request body is larger than {MAX_BODY} bytes");
            return Ok(problem(413, "payload_too_large", &detail, origin.as_ref()));
        }
        Ok(Err(_)) | Err(_) => {
            return Ok(problem(400, "invalid_request", "the request body did not arrive", origin.as_ref()));
        }
    };

    let permit = match lane.enter().await {
        Ok(permit) => permit,
        Err(shed) => {
            let detail = match shed {
                Shed::QueueFull => format!(
                    "the local stack is at capacity: {} requests are waiting for the {} function; retry after 1 second",
                    state.config.queue, lane.name
                ),
                Shed::WaitedTooLong if lane.is_held() => format!(
                    "the {} function is restarting on a new build: the request waited {} s; retry after 1 second",
                    lane.name,
                    state.config.max_wait.as_secs_f64()
                ),
                Shed::WaitedTooLong => format!(
                    "the local stack is at capacity: the request waited {} s for the {} function; retry after 1 second",
                    state.config.max_wait.as_secs_f64(),
                    lane.name
                ),
            };
            return Ok(unavailable(&detail, origin.as_ref()));
        }
    };
    // The slot travels with the upstream call, which runs to its end even when the client goes
    // away or gives up: a slot is free again only once the function instance is.
    permit.forget();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = match format!("http://{}{path}", state.config.upstream).parse() {
        Ok(uri) => uri,
        Err(_) => {
            lane.slots.add_permits(1);
            return Ok(problem(400, "invalid_request", "the request target is not a valid URI", origin.as_ref()));
        }
    };
    parts.uri = uri;
    strip_hop_by_hop(&mut parts.headers);
    let upstream_req = Request::from_parts(parts, Full::new(body));
    let client = state.client.clone();
    let call_lane = lane.clone();
    let call = tokio::spawn(async move {
        let result = async {
            let resp = client.request(upstream_req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
        }
        .await;
        call_lane.slots.add_permits(1);
        result
    });
    match tokio::time::timeout(state.config.upstream_timeout, call).await {
        Ok(Ok(Ok((mut parts, body)))) => {
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Full::new(body)))
        }
        Ok(Ok(Err(e))) => {
            let detail = format!("the {} function could not be reached through cargo lambda watch: {e}", lane.name);
            Ok(unavailable(&detail, origin.as_ref()))
        }
        Ok(Err(_)) => Ok(unavailable("the front door lost the request", origin.as_ref())),
        Err(_) => {
            let detail = format!(
                "the {} function did not answer within {} s",
                lane.name,
                state.config.upstream_timeout.as_secs_f64()
            );
            Ok(unavailable(&detail, origin.as_ref()))
        }
    }
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        let text = std::fs::read_to_string(crate::root().join("Cargo.toml")).unwrap();
        routes_from_cargo_toml(&text).unwrap()
    }

    #[test]
    fn every_route_of_the_workspace_router_reaches_its_function() {
        let r = routes();
        assert_eq!(functions(&r), ["orders", "purchase", "queue", "status", "user-lookup"]);
        let cases = [
            ("GET", "/health", Some("status")),
            ("GET", "/sales", Some("status")),
            ("GET", "/sales/demo", Some("status")),
            ("POST", "/sales/demo/purchases", Some("purchase")),
            ("GET", "/sales/demo/purchases", Some("purchase")),
            ("GET", "/sales/demo/purchases/alice", Some("user-lookup")),
            ("GET", "/sales/a%20b/purchases/x%2Fy", Some("user-lookup")),
            ("POST", "/sales/demo/queue", Some("queue")),
            ("GET", "/sales/demo/queue/alice", Some("queue")),
            ("GET", "/sales/demo/entrants/0", Some("status")),
            ("POST", "/sales/demo/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV/confirm", Some("orders")),
            ("DELETE", "/sales/demo/purchases/alice", Some("user-lookup")),
            ("GET", "/", None),
            ("GET", "/nope", None),
            ("GET", "/sales//purchases", None),
            ("GET", "/sales/demo/purchases/alice/more", None),
        ];
        for (method, path, function) in cases {
            assert_eq!(function_for(&r, &method.parse().unwrap(), path), function, "{method} {path}");
        }
    }

    #[test]
    fn method_lists_and_literal_segments_take_precedence() {
        let toml = r#"
            [workspace.metadata.lambda.watch.router]
            "/a/{id}" = "param"
            "/a/b" = [{ method = "post", function = "post-b" }]
            "/{x}" = "any"
        "#;
        let r = routes_from_cargo_toml(toml).unwrap();
        assert_eq!(function_for(&r, &Method::POST, "/a/b"), Some("post-b"));
        assert_eq!(function_for(&r, &Method::GET, "/a/b"), Some("param"));
        assert_eq!(function_for(&r, &Method::GET, "/a/c"), Some("param"));
        assert_eq!(function_for(&r, &Method::GET, "/z"), Some("any"));
        assert!(routes_from_cargo_toml("[workspace]\n").is_err());
        assert!(routes_from_cargo_toml("[workspace.metadata.lambda.watch.router]\n\"no-slash\" = \"f\"").is_err());
        assert!(
            routes_from_cargo_toml("[workspace.metadata.lambda.watch.router]\n\"/a\" = [{ method = \"GET\" }]")
                .is_err()
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_the_rest_kept() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "12"),
            ("idempotency-key", "k-1"),
            ("origin", "http://127.0.0.1:5173"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort();
        assert_eq!(kept, ["content-type", "idempotency-key", "origin"]);
    }

    #[test]
    fn the_503_is_the_deployed_contract() {
        let origin = HeaderValue::from_static("http://127.0.0.1:5173");
        let resp = unavailable("busy", Some(&origin));
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://127.0.0.1:5173");
        let body = futures_body(resp);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"type":"about:blank","title":"Service Unavailable","status":503,
                   "code":"temporarily_unavailable","detail":"busy","retryAfterSeconds":1})
        );
        assert!(!unavailable("busy", None).headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    fn futures_body(resp: Response<Full<Bytes>>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(resp.into_body().collect()).unwrap().to_bytes()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
    }

    #[test]
    fn a_lane_lets_slots_through_then_queues_then_sheds() {
        rt().block_on(async {
            let lane = Arc::new(Lane::new("f", 2, 3, Duration::from_secs(10)));
            let a = lane.enter().await.unwrap();
            let _b = lane.enter().await.unwrap();
            assert_eq!(lane.in_flight(), 2);
            // Three wait, in order; the fourth is shed at once.
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut waiters = Vec::new();
            for i in 0..3 {
                let (lane, order) = (lane.clone(), order.clone());
                waiters.push(tokio::spawn(async move {
                    let permit = lane.enter().await.unwrap();
                    order.lock().unwrap().push(i);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    drop(permit);
                }));
                tokio::task::yield_now().await;
            }
            assert_eq!(lane.waiting(), 3);
            assert_eq!(lane.enter().await.unwrap_err(), Shed::QueueFull);
            assert_eq!(lane.shed(), 1);
            drop(a);
            for w in waiters {
                w.await.unwrap();
            }
            assert_eq!(*order.lock().unwrap(), [0, 1, 2], "first in, first out");
            assert_eq!(lane.waiting(), 0);
        });
    }

    #[test]
    fn a_request_that_waits_too_long_is_shed_and_a_gone_client_frees_its_place() {
        rt().block_on(async {
            let lane = Arc::new(Lane::new("f", 1, 1, Duration::from_secs(10)));
            let held = lane.enter().await.unwrap();
            let waiter = {
                let lane = lane.clone();
                tokio::spawn(async move { lane.enter().await.map(drop) })
            };
            tokio::task::yield_now().await;
            assert_eq!(lane.waiting(), 1);
            waiter.abort();
            let _ = waiter.await;
            assert_eq!(lane.waiting(), 0, "an abandoned wait gives its place back");
            let started = tokio::time::Instant::now();
            assert_eq!(lane.enter().await.unwrap_err(), Shed::WaitedTooLong);
            assert_eq!(started.elapsed(), Duration::from_secs(10));
            drop(held);
            assert!(lane.enter().await.is_ok());
        });
    }

    #[test]
    fn a_held_lane_waits_for_its_requests_in_flight_then_keeps_new_ones_waiting_until_released() {
        rt().block_on(async {
            let lane = Arc::new(Lane::new("f", 2, 4, Duration::from_secs(10)));
            let in_flight = lane.enter().await.unwrap();
            let holder = {
                let lane = lane.clone();
                tokio::spawn(async move { lane.hold().await })
            };
            tokio::task::yield_now().await;
            assert!(!holder.is_finished(), "the hold waits for the request in flight");
            assert!(!lane.is_held());
            drop(in_flight);
            holder.await.unwrap();
            assert!(lane.is_held());
            assert_eq!(lane.in_flight(), 0);
            // Held: a request waits, and is shed after max_wait with the restart named.
            let started = tokio::time::Instant::now();
            assert_eq!(lane.enter().await.unwrap_err(), Shed::WaitedTooLong);
            assert_eq!(started.elapsed(), Duration::from_secs(10));
            // A request waiting when the lane is released gets through.
            let waiter = {
                let lane = lane.clone();
                tokio::spawn(async move { lane.enter().await.map(drop) })
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(lane.waiting(), 1);
            lane.release();
            assert_eq!(waiter.await.unwrap(), Ok(()));
            assert!(!lane.is_held());
            lane.release();
            assert_eq!(lane.slots.available_permits(), 2, "a second release gives nothing back twice");
        });
    }

    /// A stand-in for `cargo lambda watch`: answers after `delay`, echoes what it got, and records
    /// the most POST requests (purchases) it had open at once.
    async fn fake_upstream(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = peak.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (open, peak) = (open.clone(), peak.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (open, peak) = (open.clone(), peak.clone());
                        async move {
                            let post = req.method() == Method::POST;
                            if post {
                                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                            }
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            tokio::time::sleep(delay).await;
                            if post {
                                open.fetch_sub(1, Ordering::SeqCst);
                            }
                            let key = parts.headers.get("idempotency-key").cloned();
                            let echo = json!({
                                "method": parts.method.as_str(),
                                "target": parts.uri.path_and_query().map(|p| p.as_str()),
                                "key": key.as_ref().and_then(|k| k.to_str().ok()),
                                "body": String::from_utf8_lossy(&body),
                            });
                            let mut resp = Response::new(Full::new(Bytes::from(echo.to_string())));
                            resp.headers_mut().insert("x-upstream", HeaderValue::from_static("yes"));
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[test]
    fn the_front_door_forwards_unchanged_holds_the_limit_and_sheds_the_rest() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (upstream, peak) = rt.block_on(fake_upstream(Duration::from_millis(1_000)));
        let door = start(Config {
            listen: loopback(0),
            upstream,
            routes: routes(),
            unrouted_functions: Vec::new(),
            instances: 2,
            queue: 3,
            max_wait: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(10),
        })
        .unwrap();
        let base = format!("http://{}", door.addr);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());

        rt.block_on(async {
            // One request: everything arrives as sent, the answer comes back as given.
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("{base}/sales/a%20b/purchases?x=1&y=%2F"))
                .header("idempotency-key", "k-1")
                .body(Full::new(Bytes::from_static(br#"{"userId":"u"}"#)))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-upstream"], "yes");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                echo,
                json!({"method": "POST", "target": "/sales/a%20b/purchases?x=1&y=%2F", "key": "k-1",
                       "body": r#"{"userId":"u"}"#})
            );

            // Ten at once for one function: 2 through, 3 queued, 5 shed at once with the contract.
            let mut set = tokio::task::JoinSet::new();
            for i in 0..10 {
                let (client, url) = (client.clone(), format!("{base}/sales/s/purchases"));
                set.spawn(async move {
                    let body = Full::new(Bytes::from(format!("{{\"userId\":\"u{i}\"}}")));
                    let req = Request::builder().method(Method::POST).uri(url).body(body).unwrap();
                    let resp = client.request(req).await.unwrap();
                    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
                    (resp.status().as_u16(), retry_after)
                });
            }
            // Meanwhile another function has its own lane: it answers while purchases still wait.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let status = client.get(format!("{base}/sales/s").parse().unwrap()).await.unwrap().status();
            assert_eq!(status, 200);
            let purchase = door.load().into_iter().find(|l| l.0 == "purchase").unwrap();
            assert!(purchase.1 + purchase.2 > 0, "purchases were still in flight or waiting: {purchase:?}");

            let mut statuses = Vec::new();
            while let Some(done) = set.join_next().await {
                let (status, retry_after) = done.unwrap();
                if status == 503 {
                    assert_eq!(retry_after.unwrap(), "1");
                }
                statuses.push(status);
            }
            statuses.sort();
            assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503, 503, 503]);
            assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than `instances` at the function");
        });
        drop(door);
    }
}
