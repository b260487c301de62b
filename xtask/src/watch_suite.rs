//! The dev stack's watcher, tested on the running stack (a suite of `cargo xtask test`):
//!
//! 1. files created and deleted in the checkout that no function is built from (one in the
//!    repository root, one in a function's directory) restart nothing and build nothing;
//! 2. a comment added to one function's source rebuilds once and restarts exactly that function's
//!    instances (new process ids for it, the same for every other function), and so does taking
//!    the comment out again;
//! 3. requests to that function all along are answered by it or, while it restarts, with the
//!    503 problem+json and `Retry-After` of the contract, each within `max_wait` plus a generous
//!    margin.
//!
//! The files it creates and the comment it adds are removed by guards (also on failure); a run
//! killed outright leaves at most a line marked [`MARKER`] and probe files, which [`recover`]
//! removes at the start of every `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::root;
use crate::stack::Api;
use crate::supervisor::{Rebuild, Snapshot};

/// The line the test appends to a function's source.
pub const MARKER: &str = "// xtask dev-stack watch probe (a test adds this line and removes it again)";
/// The function whose source the test edits, and the source.
const FUNCTION: &str = "purchase";
const SOURCE: &str = "functions/purchase/src/main.rs";
/// Probe files: (directory relative to the root, file name prefix).
const PROBE_PREFIX: &str = ".xtask-watch-probe-";
const PROBE_DIRS: &[&str] = &["", "functions/purchase"];
/// Longest wait for a rebuild and restart (an incremental build on a busy machine).
const REBUILD_LIMIT: Duration = Duration::from_secs(600);

/// Removes what an interrupted run may have left: the marked line, probe files.
pub fn recover() -> Result<()> {
    let source = root().join(SOURCE);
    let text = std::fs::read_to_string(&source).with_context(|| format!("cannot read {}", source.display()))?;
    if text.lines().any(|l| l == MARKER) {
        let kept: String = text.split_inclusive('\n').filter(|l| l.trim_end_matches('\n') != MARKER).collect();
        std::fs::write(&source, kept)?;
        eprintln!("xtask: removed the watch probe's line left in {SOURCE} by an interrupted run");
    }
    for dir in PROBE_DIRS {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PROBE_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// A file that is removed when this goes.
struct ProbeFile(PathBuf);

impl ProbeFile {
    fn create(dir: &str) -> Result<Self> {
        let path = root().join(dir).join(format!("{PROBE_PREFIX}{}.tmp", std::process::id()));
        std::fs::write(&path, "a file no function is built from\n")
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ProbeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A line appended to a source file; the file's exact bytes are written back when this goes.
struct SourceEdit {
    path: PathBuf,
    original: Vec<u8>,
}

impl SourceEdit {
    fn append_comment(path: &Path) -> Result<Self> {
        let original = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        ensure!(original.ends_with(b"\n"), "{} does not end with a newline", path.display());
        let edit = Self { path: path.to_owned(), original };
        let mut edited = edit.original.clone();
        edited.extend_from_slice(format!("{MARKER}\n").as_bytes());
        std::fs::write(path, edited)?;
        Ok(edit)
    }
}

impl Drop for SourceEdit {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.original) {
            eprintln!("xtask: cannot restore {}: {e} (the line `{MARKER}` is to be removed)", self.path.display());
        }
    }
}

/// The suite. `max_wait` is the stack's `--max-wait-secs`.
pub fn run(api: &Api, max_wait: Duration) -> Result<()> {
    recover()?;
    let instances = api.instances().get(FUNCTION).copied().context("the function is not running")?;
    let before = api.functions_running.snapshot();
    check_all_running(&before)?;

    // 1. Files no function is built from.
    for dir in PROBE_DIRS {
        let probe = ProbeFile::create(dir)?;
        wait_scans(api, 3)?;
        drop(probe);
        wait_scans(api, 3)?;
    }
    let after_probes = api.functions_running.snapshot();
    ensure!(
        after_probes.pids == before.pids && after_probes.started == before.started,
        "files no function is built from restarted instances: before {:?}, after {:?}",
        before.started,
        after_probes.started
    );
    ensure!(
        after_probes.rebuilds == before.rebuilds,
        "files no function is built from started a build: {:?}",
        &after_probes.rebuilds[before.rebuilds.len()..]
    );
    eprintln!("xtask: watch: creating and deleting untracked files restarted nothing");

    // 2. A comment in the function's source, then the source as it was: each rebuilds once and
    // restarts only that function, while requests keep coming.
    let traffic = Traffic::start(api, max_wait);
    let baseline = traffic.wait_answers(1, Duration::from_secs(60))?;
    let source = root().join(SOURCE);
    let edit = SourceEdit::append_comment(&source)?;
    let edited = wait_rebuild(api, after_probes.rebuilds.len() + 1)?;
    check_restart(&after_probes, &edited, instances)
        .with_context(|| format!("after a comment was added to {SOURCE}"))?;
    eprintln!(
        "xtask: watch: a comment added to {SOURCE} rebuilt once and restarted the {instances} {FUNCTION} instances only"
    );
    // Writes the source back as it was: another rebuild and restart of the function alone.
    drop(edit);
    let restored = wait_rebuild(api, edited.rebuilds.len() + 1)?;
    check_restart(&edited, &restored, instances).with_context(|| format!("after {SOURCE} was restored"))?;
    eprintln!("xtask: watch: restoring {SOURCE} rebuilt once and restarted the {instances} {FUNCTION} instances only");
    let answers = traffic.stop()?;
    let shed = answers.iter().filter(|a| a.status == 503).count();
    let served = answers.len() - shed;
    ensure!(
        answers.iter().filter(|a| a.status != 503).all(|a| a.status == baseline.status),
        "the function answered otherwise than before the edit ({}): {:?}",
        baseline.status,
        answers.iter().filter(|a| a.status != 503 && a.status != baseline.status).take(3).collect::<Vec<_>>()
    );
    ensure!(served > 0, "no request was answered by the function during the rebuilds");
    eprintln!(
        "xtask: watch: {} requests during the rebuilds and restarts: {served} answered by {FUNCTION} ({}), {shed} \
         answered 503 + Retry-After",
        answers.len(),
        baseline.status
    );
    // The stack serves on: one more answer after everything.
    let after = one_request(api, max_wait)?;
    ensure!(after.status == baseline.status, "after the restarts {FUNCTION} answered {after:?}");
    Ok(())
}

fn check_all_running(s: &Snapshot) -> Result<()> {
    ensure!(!s.pids.is_empty() && s.pids.values().all(|p| !p.is_empty()), "instances missing: {:?}", s.pids);
    Ok(())
}

/// `now` has exactly one rebuild more than `before`, of `FUNCTION` alone, and only its instances
/// are new.
fn check_restart(before: &Snapshot, now: &Snapshot, instances: usize) -> Result<()> {
    let new = &now.rebuilds[before.rebuilds.len()..];
    ensure!(
        new == [Rebuild { functions: vec![FUNCTION.to_owned()], built: true }],
        "expected one successful rebuild of {FUNCTION}, got {new:?}"
    );
    for (name, pids) in &now.pids {
        let old = before.pids.get(name).cloned().unwrap_or_default();
        let (started_before, started_now) =
            (before.started.get(name).copied().unwrap_or(0), now.started.get(name).copied().unwrap_or(0));
        if name == FUNCTION {
            ensure!(pids.len() == instances, "{name} runs {} instances, not {instances}", pids.len());
            ensure!(pids.iter().all(|p| !old.contains(p)), "{name} kept old instances: {old:?} → {pids:?}");
            ensure!(
                started_now - started_before == instances as u64,
                "{name}: {} instances started for one restart, not {instances}",
                started_now - started_before
            );
        } else {
            ensure!(
                *pids == old && started_now == started_before,
                "{name} was restarted ({old:?} → {pids:?}) though only {FUNCTION}'s source changed"
            );
        }
    }
    Ok(())
}

/// Waits until the watcher has looked at the sources `n` more times.
fn wait_scans(api: &Api, n: u64) -> Result<()> {
    let target = api.functions_running.snapshot().scans + n;
    let started = Instant::now();
    while api.functions_running.snapshot().scans < target {
        ensure!(api.functions_running.watching(), "the watcher stopped");
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the watcher did not look at the sources {n} times within 60 s");
        }
        std::thread::sleep(crate::supervisor::POLL / 2);
    }
    Ok(())
}

/// Waits until `count` rebuilds are recorded (the restart that follows a build is recorded with it).
fn wait_rebuild(api: &Api, count: usize) -> Result<Snapshot> {
    let started = Instant::now();
    loop {
        let s = api.functions_running.snapshot();
        if s.rebuilds.len() >= count {
            return Ok(s);
        }
        ensure!(api.functions_running.watching(), "the watcher stopped");
        if started.elapsed() > REBUILD_LIMIT {
            bail!("no rebuild within {} s of the change", REBUILD_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
}

/// The request the suite sends: a purchase for a sale that does not exist (nothing is stored).
fn request(base: &str) -> Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/sales/xtask-watch-no-such-sale/purchases"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"userId":"watch-probe"}"#)))?)
}

/// Sends one request and checks its shape: a 503 must be the contract's.
async fn call(client: &Client<HttpConnector, Full<Bytes>>, base: &str, limit: Duration) -> Result<Answer> {
    let exchange = async {
        let resp = client.request(request(base)?).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, headers, body))
    };
    let (status, headers, body) = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", limit.as_secs()))??;
    if status == 503 {
        let retry = headers.get("retry-after").and_then(|v| v.to_str().ok());
        let kind = headers.get("content-type").and_then(|v| v.to_str().ok());
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        ensure!(
            retry == Some("1")
                && kind == Some("application/problem+json")
                && problem["code"] == "temporarily_unavailable"
                && problem["status"] == 503,
            "a 503 without the contract's shape: retry-after {retry:?}, content-type {kind:?}, body {problem}"
        );
    } else {
        ensure!(status < 500, "answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(Answer { status })
}

/// The longest a request may take: the queue's `max_wait`, plus a generous margin for the
/// function's own answer on a loaded machine.
fn answer_limit(max_wait: Duration) -> Duration {
    max_wait + Duration::from_secs(20)
}

fn one_request(api: &Api, max_wait: Duration) -> Result<Answer> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    api.front.runtime().block_on(call(&client, &api.url, answer_limit(max_wait)))
}

/// A few clients sending the request one after another until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    answers: Arc<std::sync::Mutex<Vec<Result<Answer, String>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Handle,
}

impl Traffic {
    fn start(api: &Api, max_wait: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let runtime = api.front.runtime().handle().clone();
        let tasks = (0..4)
            .map(|_| {
                let (stop, answers, client, base) = (stop.clone(), answers.clone(), client.clone(), api.url.clone());
                runtime.spawn(async move {
                    let started = tokio::time::Instant::now();
                    // Bounded: until stopped, at most 20 minutes.
                    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(1_200) {
                        let answer = call(&client, &base, answer_limit(max_wait)).await.map_err(|e| format!("{e:#}"));
                        answers.lock().unwrap_or_else(|p| p.into_inner()).push(answer);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
            .collect();
        Self { stop, answers, tasks, runtime }
    }

    /// The first answer, once `n` have come.
    fn wait_answers(&self, n: usize, limit: Duration) -> Result<Answer> {
        let started = Instant::now();
        loop {
            {
                let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
                if answers.len() >= n {
                    return answers[0].clone().map_err(|e| anyhow::anyhow!("{e}"));
                }
            }
            if started.elapsed() > limit {
                bail!("no answer within {} s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> Result<Vec<Answer>> {
        self.stop.store(true, Ordering::SeqCst);
        for task in std::mem::take(&mut self.tasks) {
            let _ = self.runtime.block_on(task);
        }
        let answers = std::mem::take(&mut *self.answers.lock().unwrap_or_else(|p| p.into_inner()));
        let failures: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
        ensure!(failures.is_empty(), "{} requests failed, first: {}", failures.len(), failures[0]);
        Ok(answers.into_iter().flatten().collect())
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}
