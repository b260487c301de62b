//! The HTTP side: one pooled HTTP/1.1 client, a warm-up, and the closed-loop, open-loop and
//! ramping drivers.
//!
//! The client is hyper-util's legacy client over hyper-rustls, the stack the AWS SDK already
//! builds. Attempts are numbered (`seq`) in the order the generator dispatches them; that is the
//! send order fairness is judged by.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attempt::{Attempt, Reply};
use crate::ramp::{self, Stage};
use crate::report::Mode;
use crate::target::BaseUrl;
use crate::verify::Choice;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A sale id that cannot exist (ids are at most 64 characters): warm-up requests reach the
/// purchase function and DynamoDB but never buy anything.
pub const WARMUP_SALE: &str = "loadgen-warmup-no-such-sale";

/// The client, with up to `connections` idle connections kept per host. TLS roots are loaded only
/// for an https base URL.
pub fn http_client(base: &BaseUrl, connections: usize) -> Result<HttpClient> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = HttpsConnectorBuilder::new();
    let tls = if base.is_https() {
        tls.with_provider_and_native_roots(provider).context("cannot load the system's TLS root certificates")?
    } else {
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        tls.with_tls_config(config)
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector = tls.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build(connector))
}

fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

enum Exchange {
    /// Status, `Retry-After`, body.
    Done(u16, Option<String>, Bytes),
    Failed(String),
    TimedOut,
}

async fn exchange(client: &HttpClient, req: Request<Full<Bytes>>, timeout: Duration) -> Exchange {
    let call = async {
        let resp = client.request(req).await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.into_body().collect().await.map_err(|e| error_chain(&e))?.to_bytes();
        Ok::<_, String>((status, retry_after, body))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok((status, retry_after, body))) => Exchange::Done(status, retry_after, body),
        Ok(Err(e)) => Exchange::Failed(e),
        Err(_) => Exchange::TimedOut,
    }
}

fn purchase_request(url: &Uri, user: &str, choice: Option<&Choice>) -> Request<Full<Bytes>> {
    let mut body = json!({ "userId": user });
    if let Some(c) = choice {
        if let Some(v) = &c.variant_id {
            body["variantId"] = json!(v);
        }
        if let Some(q) = c.quantity {
            body["quantity"] = json!(q);
        }
    }
    let body = body.to_string();
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = url.clone();
    req.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    req.headers_mut().insert(ACCEPT, hyper::header::HeaderValue::from_static("application/json"));
    req
}

/// One purchase attempt.
pub async fn purchase(client: &HttpClient, url: &Uri, user: &str, timeout: Duration) -> Reply {
    purchase_choosing(client, url, user, None, timeout).await
}

/// One purchase attempt naming a variant and a quantity (`None`: the body of [`purchase`]).
pub async fn purchase_choosing(
    client: &HttpClient,
    url: &Uri,
    user: &str,
    choice: Option<&Choice>,
    timeout: Duration,
) -> Reply {
    match exchange(client, purchase_request(url, user, choice), timeout).await {
        Exchange::Done(status, retry_after, body) => {
            Reply::from_http(status, &body).with_retry_after(retry_after.as_deref())
        }
        Exchange::Failed(error) => Reply::Transport { error },
        Exchange::TimedOut => Reply::Timeout,
    }
}

/// `GET url`, with the body as JSON (`Null` if it is not JSON).
pub async fn get_json(client: &HttpClient, url: &str, timeout: Duration) -> Result<(u16, Value)> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri;
    req.headers_mut().insert(ACCEPT, hyper::header::HeaderValue::from_static("application/json"));
    match exchange(client, req, timeout).await {
        Exchange::Done(status, _, body) => Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null))),
        Exchange::Failed(e) => anyhow::bail!("GET {url} failed: {e}"),
        Exchange::TimedOut => {
            anyhow::bail!("GET {url} timed out after {} s", timeout.as_secs_f64())
        }
    }
}

/// `POST url` with a JSON body; the answer's status and JSON body (`Null` if it is not JSON).
/// A 503 is retried after its `Retry-After` (at most `attempts` times), as a client should.
pub async fn post_json(
    client: &HttpClient,
    url: &str,
    body: &Value,
    timeout: Duration,
    attempts: u32,
) -> Result<(u16, Value)> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    for attempt in 1..=attempts.max(1) {
        let mut req = Request::new(Full::new(Bytes::from(body.to_string())));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
        match exchange(client, req, timeout).await {
            Exchange::Done(503, retry_after, _) if attempt < attempts => {
                let wait = retry_after.and_then(|r| r.parse::<u64>().ok()).unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
            }
            Exchange::Done(status, _, body) => {
                return Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            }
            Exchange::Failed(e) => anyhow::bail!("POST {url} failed: {e}"),
            Exchange::TimedOut => anyhow::bail!("POST {url} timed out after {} s", timeout.as_secs_f64()),
        }
    }
    anyhow::bail!("POST {url}: still 503 after {attempts} attempts")
}

/// Sends `requests` purchase attempts for a sale that does not exist, `concurrency` at a time, so
/// that every function instance and its DynamoDB connection is up before the measured run.
/// Returns the replies per status.
pub async fn warmup(
    client: &HttpClient,
    base: &BaseUrl,
    requests: u32,
    concurrency: u32,
    timeout: Duration,
) -> Result<BTreeMap<String, u64>> {
    let url: Uri = base.purchases_url(WARMUP_SALE).parse().context("warm-up URL")?;
    let slots = Arc::new(Semaphore::new(concurrency.max(1) as usize));
    let mut set = JoinSet::new();
    for i in 0..requests {
        let permit = slots.clone().acquire_owned().await.context("warm-up semaphore closed")?;
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move {
            let reply = purchase(&client, &url, &format!("loadgen-warmup-{i}"), timeout).await;
            drop(permit);
            reply.status_label()
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(label) = set.join_next().await {
        *statuses.entry(label.unwrap_or_else(|_| "panicked".into())).or_insert(0) += 1;
    }
    Ok(statuses)
}

/// What to send and how fast.
pub struct LoadSpec {
    pub url: Uri,
    /// The user of each planned attempt, in plan order.
    pub users: Arc<Vec<String>>,
    /// What each planned attempt asks for (variant, quantity), in plan order; empty: every
    /// attempt sends the user only.
    pub choices: Arc<Vec<Choice>>,
    pub mode: Mode,
    /// No attempt starts after this much time.
    pub duration: Duration,
    /// Per attempt, until the last byte of the reply.
    pub timeout: Duration,
    /// Closed loop and ramp: after a 503 with `Retry-After`, the user waits that long (at most
    /// 60 s, never past the end of the run) before its next attempt, as the storefront does.
    pub honor_retry_after: bool,
}

/// The pause a user owes after `attempt` (nothing unless `--honor-retry-after`).
fn pause_after(spec: &LoadSpec, attempt: &Attempt) -> Option<Duration> {
    let secs = attempt.reply.retry_after_secs().filter(|_| spec.honor_retry_after)?;
    (attempt.reply.status() == Some(503)).then(|| Duration::from_secs(secs.min(60)))
}

/// Sleeps `pause`, but not past `end` and not once `stop` is set (checked every 50 ms).
async fn pause_until(pause: Duration, end: Instant, stop: Option<&AtomicBool>) {
    let until = end.min(Instant::now() + pause);
    while Instant::now() < until && !stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
        tokio::time::sleep_until(until.min(Instant::now() + Duration::from_millis(50))).await;
    }
}

pub struct LoadResult {
    /// Sent attempts in send order.
    pub attempts: Vec<Attempt>,
    /// Planned attempts that were never sent (the duration ran out).
    pub not_sent: u32,
    /// The most users (closed loop, ramp) or requests (open loop) at once.
    pub peak_users: u32,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs the plan against the target and returns every attempt that was sent.
pub async fn run(client: &HttpClient, spec: LoadSpec) -> LoadResult {
    let spec = Arc::new(spec);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let planned = spec.users.len();
    let (mut attempts, peak_users) = match &spec.mode {
        Mode::Closed { concurrency } => {
            (closed_loop(client, &spec, *concurrency, start, deadline).await, (*concurrency).max(1))
        }
        Mode::Open { rate_per_sec, max_in_flight } => {
            (open_loop(client, &spec, *rate_per_sec, *max_in_flight, start, deadline).await, *max_in_flight)
        }
        Mode::Ramp { stages } => ramping(client, &spec, stages, start, deadline).await,
    };
    attempts.sort_by_key(|a| a.seq);
    let not_sent = u32::try_from(planned - attempts.len()).unwrap_or(u32::MAX);
    LoadResult { attempts, not_sent, peak_users }
}

async fn one(client: &HttpClient, spec: &LoadSpec, seq: usize, start: Instant, due: Option<Instant>) -> Attempt {
    let user = &spec.users[seq];
    let sent = Instant::now();
    let reply = purchase_choosing(client, &spec.url, user, spec.choices.get(seq), spec.timeout).await;
    Attempt {
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        user: user.clone(),
        due_us: due.map(|d| micros(d - start)),
        sent_us: micros(sent - start),
        latency_us: micros(sent.elapsed()),
        reply,
    }
}

/// `concurrency` workers; each takes the next planned attempt as soon as its last one is answered.
async fn closed_loop(
    client: &HttpClient,
    spec: &Arc<LoadSpec>,
    concurrency: u32,
    start: Instant,
    deadline: Instant,
) -> Vec<Attempt> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, spec, next) = (client.clone(), spec.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::SeqCst);
                if seq >= spec.users.len() {
                    break;
                }
                let attempt = one(&client, &spec, seq, start, None).await;
                if let Some(pause) = pause_after(&spec, &attempt) {
                    pause_until(pause, deadline, None).await;
                }
                done.push(attempt);
            }
            done
        });
    }
    let mut attempts = Vec::with_capacity(spec.users.len());
    while let Some(done) = workers.join_next().await {
        attempts.extend(done.unwrap_or_default());
    }
    attempts
}

/// Attempt `i` is due at `start + i / rate`, whatever happened to earlier ones. When
/// `max_in_flight` requests are open, the next one waits for a slot (and its wait shows in the
/// latency measured from the due time).
async fn open_loop(
    client: &HttpClient,
    spec: &Arc<LoadSpec>,
    rate: f64,
    max_in_flight: u32,
    start: Instant,
    deadline: Instant,
) -> Vec<Attempt> {
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1) as usize));
    let mut set = JoinSet::new();
    for seq in 0..spec.users.len() {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() >= deadline {
            break;
        }
        let (client, spec) = (client.clone(), spec.clone());
        set.spawn(async move {
            let attempt = one(&client, &spec, seq, start, Some(due)).await;
            drop(permit);
            attempt
        });
    }
    let mut attempts = Vec::with_capacity(spec.users.len());
    while let Some(done) = set.join_next().await {
        if let Ok(a) = done {
            attempts.push(a);
        }
    }
    attempts
}

/// Closed-loop users whose number follows the stages: every 10 ms the driver starts users up to
/// the number wanted, or tells the newest ones to stop after their current attempt. Each user
/// takes the next planned attempt as soon as its last one is answered. Returns the attempts and
/// the most users that were running at once.
async fn ramping(
    client: &HttpClient,
    spec: &Arc<LoadSpec>,
    stages: &[Stage],
    start: Instant,
    deadline: Instant,
) -> (Vec<Attempt>, u32) {
    let end = deadline.min(start + Duration::from_secs_f64(ramp::total_secs(stages)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut running: Vec<Arc<AtomicBool>> = Vec::new();
    let mut workers = JoinSet::new();
    let mut peak = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end || next.load(Ordering::SeqCst) >= spec.users.len() {
            break;
        }
        let wanted = ramp::users_at(stages, (now - start).as_secs_f64()) as usize;
        while running.len() < wanted {
            let stop = Arc::new(AtomicBool::new(false));
            running.push(stop.clone());
            let (client, spec, next) = (client.clone(), spec.clone(), next.clone());
            workers.spawn(async move {
                let mut done = Vec::new();
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    let seq = next.fetch_add(1, Ordering::SeqCst);
                    if seq >= spec.users.len() {
                        break;
                    }
                    let attempt = one(&client, &spec, seq, start, None).await;
                    if let Some(pause) = pause_after(&spec, &attempt) {
                        pause_until(pause, end, Some(&stop)).await;
                    }
                    done.push(attempt);
                }
                done
            });
        }
        while running.len() > wanted {
            if let Some(stop) = running.pop() {
                stop.store(true, Ordering::SeqCst);
            }
        }
        peak = peak.max(running.len());
    }
    for stop in &running {
        stop.store(true, Ordering::SeqCst);
    }
    let mut attempts = Vec::new();
    while let Some(done) = workers.join_next().await {
        attempts.extend(done.unwrap_or_default());
    }
    (attempts, u32::try_from(peak).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(honor: bool) -> LoadSpec {
        LoadSpec {
            url: "http://127.0.0.1:9/".parse().unwrap(),
            users: Arc::new(Vec::new()),
            choices: Arc::new(Vec::new()),
            mode: Mode::Closed { concurrency: 1 },
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            honor_retry_after: honor,
        }
    }

    fn attempt(reply: Reply) -> Attempt {
        Attempt { seq: 0, user: "u".into(), due_us: None, sent_us: 0, latency_us: 1, reply }
    }

    #[test]
    fn a_user_pauses_only_after_a_503_with_retry_after_and_only_when_asked() {
        let busy = attempt(Reply::from_http(503, b"{}").with_retry_after(Some("2")));
        assert_eq!(pause_after(&spec(true), &busy), Some(Duration::from_secs(2)));
        assert_eq!(pause_after(&spec(false), &busy), None);
        let bare = attempt(Reply::from_http(503, b"{}"));
        assert_eq!(pause_after(&spec(true), &bare), None);
        let other = attempt(Reply::from_http(429, b"{}").with_retry_after(Some("2")));
        assert_eq!(pause_after(&spec(true), &other), None);
        let long = attempt(Reply::from_http(503, b"{}").with_retry_after(Some("3600")));
        assert_eq!(pause_after(&spec(true), &long), Some(Duration::from_secs(60)));
    }
}
