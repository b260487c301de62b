//! The local API: `cargo lambda watch` on an internal loopback port, the front door on the public
//! one, and a warm-up that starts every function instance before the stack calls itself ready.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::frontdoor::{self, FrontDoor};
use crate::{Children, cargo, dynamodb, local_aws_env, root, run, seed, tools};

/// The test stack's function log filter: the product's warnings, and nothing from the Lambda
/// runtime, which reports every long poll it loses when the stack stops as an error.
pub const QUIET: &str = "warn,lambda_runtime=off,lambda_runtime_api_client=off";

/// How the API is served.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Public port of the front door (0: a free one).
    pub port: u16,
    /// Instances per function (`cargo lambda watch --concurrency`), and requests in flight per
    /// function.
    pub instances: u32,
    /// Requests waiting per function before the next one is answered 503.
    pub queue: u32,
    /// Longest wait in that queue.
    pub max_wait: Duration,
    /// `RUST_LOG` of the functions: `info` prints a line per request, [`QUIET`] only the product's
    /// own trouble.
    pub function_log: &'static str,
}

/// A running API. Keep it alive as long as the stack should serve; the `cargo lambda watch`
/// process is in the `Children` given to [`start`].
pub struct Api {
    pub front: FrontDoor,
    pub url: String,
    pub functions: Vec<String>,
    watch_pid: u32,
    /// `cargo lambda watch`'s own port: its Lambda invoke API for functions without a route.
    internal: u16,
}

impl Api {
    /// Invokes `function` once with `payload` through the Lambda invoke API, as a schedule
    /// would; returns its answer.
    pub fn invoke(&self, function: &str, payload: &'static str) -> Result<String> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations", self.internal);
        self.front.runtime().block_on(async {
            let req = Request::builder()
                .method(Method::POST)
                .uri(url)
                .body(Full::new(Bytes::from_static(payload.as_bytes())))?;
            let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req)).await??;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            let text = String::from_utf8_lossy(&body).into_owned();
            if !status.is_success() {
                bail!("{function} answered {status}: {text}");
            }
            Ok(text)
        })
    }

    /// Function instances running now, per function.
    pub fn instances(&self) -> BTreeMap<String, usize> {
        instances_running(self.watch_pid, &self.functions)
    }
}

/// Builds the function binaries and the admin CLI, creates and seeds the `flash-sale` table at
/// `endpoint`, starts `cargo lambda watch` on a free internal port and the front door on
/// `options.port`, then warms every instance. Nothing may build with cargo after this while the
/// stack serves: the instances start through `cargo run` and would wait on cargo's locks.
pub fn start(tools: &tools::Tools, children: &mut Children, endpoint: &str, options: ApiOptions) -> Result<Api> {
    eprintln!("xtask: building the functions and the admin CLI");
    run(cargo().arg("build").args(crate::package_args(crate::FUNCTIONS)).args(["-p", "flash-sale-admin"]))?;
    seed(endpoint)?;
    let routes = frontdoor::routes_from_cargo_toml(&std::fs::read_to_string(root().join("Cargo.toml"))?)?;
    let functions = frontdoor::functions(&routes);
    let in_flight = functions.len() * options.instances as usize;
    if in_flight > 90 {
        eprintln!(
            "xtask: warning: {} functions × {} instances = {in_flight} requests in flight; cargo lambda watch 1.9.2 \
             queues every function's requests through one channel of 100 and may hang above that",
            functions.len(),
            options.instances
        );
    }

    let internal = dynamodb::free_port()?;
    let mut watch = Command::new(&tools.cargo_lambda);
    watch
        .current_dir(root())
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &internal.to_string()])
        .args(["--concurrency", &options.instances.to_string()])
        .args(["--env-var", &format!("TABLE_NAME=flash-sale,AUTH_MODE=body,DYNAMODB_ENDPOINT={endpoint}")])
        // cargo lambda watch passes path parameters as the client sent them (API Gateway decodes
        // them); the admission key signs the waiting room's tokens, new for every stack.
        .args(["--env-var", &format!("PATH_PARAMETERS=percent-encoded,ADMISSION_KEY={}", crate::admission_key()?)])
        .args(["--env-var", "AWS_ACCESS_KEY_ID=local,AWS_SECRET_ACCESS_KEY=local,AWS_REGION=us-east-1"])
        .args(["--env-var", "AWS_EC2_METADATA_DISABLED=true"])
        // A file, because a log filter has commas, which --env-var reads as separators.
        .arg("--env-file")
        .arg(log_env_file(options.function_log)?)
        .env("PATH", tools.path_with_venv());
    local_aws_env(&mut watch, endpoint);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        watch.process_group(0);
    }
    let child = watch.spawn().context("cannot start cargo lambda watch")?;
    let watch_pid = child.id();
    children.add_group("cargo lambda watch", child);

    let front = frontdoor::start(frontdoor::Config {
        listen: frontdoor::loopback(options.port),
        upstream: frontdoor::loopback(internal),
        routes,
        instances: options.instances as usize,
        queue: options.queue as usize,
        max_wait: options.max_wait,
        upstream_timeout: Duration::from_secs(180),
    })?;
    let url = format!("http://{}", front.addr);
    let api = Api { front, url, functions, watch_pid, internal };
    wait_for_watch(internal, children)?;
    warm_up(&api, options.instances as usize)?;
    Ok(api)
}

fn wait_for_watch(port: u16, children: &mut Children) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if std::net::TcpStream::connect(frontdoor::loopback(port)).is_ok() {
            return Ok(());
        }
        if let Some(name) = children.exited() {
            bail!("{name} exited");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("cargo lambda watch did not listen on 127.0.0.1:{port} within 120 s")
}

/// A file with the functions' `RUST_LOG`, for `cargo lambda watch --env-file`.
fn log_env_file(filter: &str) -> Result<std::path::PathBuf> {
    let dir = crate::target_dir().join("xtask");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("functions-{}.env", std::process::id()));
    // Quoted: the value holds `=` signs.
    std::fs::write(&path, format!("RUST_LOG=\"{filter}\"\n"))?;
    Ok(path)
}

/// A harmless request per function: it reaches the function and its DynamoDB client, and changes
/// nothing stored.
fn warm_request(function: &str, base: &str) -> (Method, String, &'static str) {
    const NO_SALE: &str = "xtask-warmup-no-such-sale";
    match function {
        "purchase" => (Method::POST, format!("{base}/sales/{NO_SALE}/purchases"), "{\"userId\":42}"),
        "user-lookup" => (Method::GET, format!("{base}/sales/{NO_SALE}/purchases/warmup"), ""),
        "status" => (Method::GET, format!("{base}/health"), ""),
        "queue" => (Method::GET, format!("{base}/sales/{NO_SALE}/queue/warmup"), ""),
        "orders" => (Method::POST, format!("{base}/sales/{NO_SALE}/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV/confirm"), ""),
        other => (Method::GET, format!("{base}/{other}-warmup-unknown"), ""),
    }
}

/// Keeps `instances` harmless requests per function in flight through the front door, round
/// after round of two seconds, until `cargo lambda watch` runs every instance of every function
/// and every function has answered without a 5xx. (It starts another instance only when it finds
/// every instance busy and requests waiting, so a short burst is not enough.)
fn warm_up(api: &Api, instances: usize) -> Result<()> {
    let started = Instant::now();
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    eprintln!("xtask: starting {instances} instances of each of {}", api.functions.join(", "));
    let mut last_line = String::new();
    let mut hinted = false;
    let mut last_running = BTreeMap::new();
    let mut grew_at = Instant::now();
    // Two-second rounds; 300 of them is the 10 minutes below.
    for round in 1..=300 {
        let round_end = tokio::time::Instant::now() + Duration::from_secs(2);
        let replies = api.front.runtime().block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for function in &api.functions {
                for _ in 0..instances {
                    let (client, function, base) = (client.clone(), function.clone(), api.url.clone());
                    set.spawn(async move {
                        let mut answers = Vec::new();
                        // At least one request, then more until the round ends (bounded).
                        for _ in 0..10_000 {
                            let (method, url, body) = warm_request(&function, &base);
                            let req = Request::builder()
                                .method(method)
                                .uri(url)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(body.as_bytes())));
                            let call = async {
                                let resp = client.request(req?).await?;
                                let status = resp.status().as_u16();
                                let body = resp.into_body().collect().await?.to_bytes();
                                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
                            };
                            let answer = match tokio::time::timeout(Duration::from_secs(240), call).await {
                                Ok(Ok((status, body))) => Ok((status, String::from_utf8_lossy(&body).into_owned())),
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err("no answer within 240 s".to_owned()),
                            };
                            let failed = !matches!(answer, Ok((status, _)) if status < 500);
                            answers.push((function.clone(), answer));
                            if failed || tokio::time::Instant::now() >= round_end {
                                break;
                            }
                        }
                        answers
                    });
                }
            }
            let mut replies = Vec::new();
            while let Some(done) = set.join_next().await {
                match done {
                    Ok(answers) => replies.extend(answers),
                    Err(e) => replies.push(("?".into(), Err(e.to_string()))),
                }
            }
            replies
        });
        // A 5xx or a lost answer may be an instance still starting (a source change restarts them
        // all); it fails the warm-up only if it lasts.
        let failure = replies.iter().find_map(|(function, answer)| match answer {
            Ok((status, _)) if *status < 500 => None,
            Ok((status, body)) => Some(format!("{function} answered {status}: {body}")),
            Err(e) => Some(format!("{function} did not answer: {e}")),
        });
        if let Some(failure) = &failure {
            eprintln!("xtask: warm-up: {failure}");
            if started.elapsed() > Duration::from_secs(600) {
                bail!("warm-up: {failure}");
            }
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let running = api.instances();
        let short: Vec<String> = api
            .functions
            .iter()
            .filter(|f| running.get(*f).copied().unwrap_or(0) < instances)
            .map(|f| format!("{f} {}/{instances}", running.get(f).copied().unwrap_or(0)))
            .collect();
        if short.is_empty() {
            eprintln!(
                "xtask: warmed {instances} instances of each function in {:.1} s (round {round})",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        // cargo lambda watch starts another instance only when every running one is busy and
        // requests wait; when a function's instances serve the warm-up's stream without that, the
        // count stops growing. Every function has answered without a 5xx this round: once the
        // count has not grown for 30 s, the stack is as warm as the emulator makes it.
        if running != last_running {
            last_running = running.clone();
            grew_at = Instant::now();
        } else if grew_at.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "xtask: warmed in {:.1} s; cargo lambda watch started no more instances for 30 s ({} short)",
                started.elapsed().as_secs_f64(),
                short.join(", ")
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("warm-up: after 10 minutes still only {}", short.join(", "));
        }
        let line = format!("xtask: warm-up: running {}", short.join(", "));
        if line != last_line {
            eprintln!("{line}");
            last_line = line;
        }
        if !hinted && started.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "xtask: still starting instances: cargo lambda watch starts each with `cargo run`, which waits while \
                 another cargo command holds the build or package lock (a build in another terminal?)"
            );
            hinted = true;
        }
    }
    bail!("warm-up: not every instance started")
}

/// Descendants of process `root_pid` whose name is one of `functions`, counted per function (the
/// instances `cargo lambda watch` runs: `cargo run` starts each binary under its own name).
fn instances_running(root_pid: u32, functions: &[String]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = functions.iter().map(|f| (f.clone(), 0)).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return counts;
    };
    // pid → (parent, name)
    let mut procs: BTreeMap<u32, (u32, String)> = BTreeMap::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            procs.insert(pid, (ppid, stat[open + 1..close].to_owned()));
        }
    }
    for (pid, (_, name)) in &procs {
        let Some(n) = counts.get_mut(name) else {
            continue;
        };
        let mut at = *pid;
        // Up the tree, a bounded number of steps.
        for _ in 0..16 {
            match procs.get(&at) {
                Some((parent, _)) if *parent == root_pid => {
                    *n += 1;
                    break;
                }
                Some((parent, _)) if *parent > 1 => at = *parent,
                _ => break,
            }
        }
    }
    counts
}
