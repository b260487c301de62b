//! The local API: `cargo lambda watch --only-lambda-apis` on an internal loopback port (the API
//! Gateway and Lambda Runtime API emulation), the function instances and their watcher (see
//! `supervisor.rs`), the front door on the public port, and a warm-up before the stack calls itself
//! ready.

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
use crate::supervisor::{self, Supervisor};
use crate::{Children, cargo, dynamodb, root, run, seed, tools};

/// The test stack's function log filter: the product's warnings, and nothing from the Lambda
/// runtime, which reports every long poll it loses when the stack stops as an error.
pub const QUIET: &str = "warn,lambda_runtime=off,lambda_runtime_api_client=off";

/// The longest a request that got a function's slot waits for its answer (API Gateway's
/// integration limit); the functions' own timeouts are shorter.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Functions without a route that the stack runs, with their instances: xtask invokes them.
pub const UNROUTED: &[(&str, usize)] = &[("sweeper", 1)];

/// Functions the stack does not run, and why (named in the banner and in `--help`).
pub const NOT_RUN: &[(&str, &str)] =
    &[("order-events", "in AWS the table's stream invokes it and it publishes to EventBridge; neither runs locally")];

/// How the API is served.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Public port of the front door (0: a free one).
    pub port: u16,
    /// Instances (processes) per routed function, and requests in flight per function.
    pub instances: u32,
    /// Requests waiting per function before the next one is answered 503.
    pub queue: u32,
    /// Longest wait in that queue (also while a function restarts on a new build).
    pub max_wait: Duration,
    /// `RUST_LOG` of the functions: `info` prints a line per request, [`QUIET`] only the product's
    /// own trouble.
    pub function_log: &'static str,
}

/// A running API. Keep it alive as long as the stack should serve; the `cargo lambda watch`
/// process is in the `Children` given to [`start`], the function instances stop with this.
pub struct Api {
    /// Declared first: the instances stop before the front door does.
    pub functions_running: Supervisor,
    pub front: FrontDoor,
    pub url: String,
    /// The routed functions (those the front door forwards to).
    pub functions: Vec<String>,
    /// `cargo lambda watch`'s own port: its Lambda invoke API for functions without a route.
    internal: u16,
}

impl Api {
    /// Invokes `function` once with `payload` through the Lambda invoke API, as a schedule
    /// would; returns its answer. It takes a slot of the function's lane like a request through
    /// the front door, so it never meets a restart half-way.
    pub fn invoke(&self, function: &str, payload: &'static str) -> Result<String> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations", self.internal);
        let lane = self.front.lane(function).with_context(|| format!("no lane for {function}"))?;
        self.front.runtime().block_on(async {
            let _slot = lane.enter().await.map_err(|shed| anyhow::anyhow!("{function} is busy: {shed:?}"))?;
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
        self.functions_running.instances()
    }

    /// Every function the stack runs, and how: for the ready banner.
    pub fn describe_functions(&self, instances: u32) -> String {
        let running = self.instances();
        let mut parts = vec![format!("{} ({instances} instances each)", self.functions.join(", "))];
        for (name, _) in UNROUTED {
            let n = running.get(*name).copied().unwrap_or(0);
            parts.push(format!("{name} ({n} instance, invoked every 10 s, no route)"));
        }
        for (name, why) in NOT_RUN {
            parts.push(format!("{name} (no route; not run here: {why})"));
        }
        parts.join("; ")
    }
}

/// Builds the function binaries and the admin CLI, creates and seeds the `flash-sale` table at
/// `endpoint`, starts `cargo lambda watch --only-lambda-apis` on a free internal port, the
/// function instances on their binaries and the front door on `options.port`, then warms every
/// function. From then on a change to a function's sources rebuilds it once and restarts only its
/// instances; no other file in the checkout restarts anything.
pub fn start(tools: &tools::Tools, children: &mut Children, endpoint: &str, options: ApiOptions) -> Result<Api> {
    eprintln!("xtask: building the functions and the admin CLI");
    let built: Vec<&str> = crate::FUNCTIONS.iter().copied().filter(|f| NOT_RUN.iter().all(|(n, _)| n != f)).collect();
    run(cargo().arg("build").args(crate::package_args(&built)).args(["-p", "flash-sale-admin"]))?;
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
    // Only the APIs: cargo lambda watch neither builds nor starts nor restarts a function (it
    // would restart every instance on any change in the checkout, each through `cargo run`).
    // `--concurrency 1`: the instances are ours; above 1 it would start instances of its own.
    watch
        .current_dir(root())
        .args(["lambda", "watch", "--only-lambda-apis", "--concurrency", "1"])
        .args(["--invoke-address", "127.0.0.1", "--invoke-port", &internal.to_string()])
        .env("PATH", tools.path_with_venv())
        .env("RUST_LOG", "warn");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        watch.process_group(0);
    }
    let child = watch.spawn().context("cannot start cargo lambda watch")?;
    children.add_group("cargo lambda watch", child);

    let unrouted: Vec<(String, usize)> = UNROUTED.iter().map(|(n, i)| ((*n).to_owned(), *i)).collect();
    let front = frontdoor::start(frontdoor::Config {
        listen: frontdoor::loopback(options.port),
        upstream: frontdoor::loopback(internal),
        routes,
        unrouted_functions: unrouted.clone(),
        instances: options.instances as usize,
        queue: options.queue as usize,
        max_wait: options.max_wait,
        upstream_timeout: UPSTREAM_TIMEOUT,
    })?;
    wait_for_watch(internal, children)?;

    let mut specs = Vec::new();
    for name in &functions {
        specs.push((name.clone(), options.instances as usize));
    }
    specs.extend(unrouted);
    let specs = specs
        .into_iter()
        .map(|(name, instances)| {
            let lane = front.lane(&name).with_context(|| format!("no lane for {name}"))?;
            Ok(supervisor::FunctionSpec { name, instances, lane })
        })
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "xtask: starting {} instances of each of {}, and {}",
        options.instances,
        functions.join(", "),
        UNROUTED.iter().map(|(n, i)| format!("{i} of {n}")).collect::<Vec<_>>().join(", ")
    );
    let functions_running = Supervisor::start(supervisor::Config {
        functions: specs,
        runtime_api: format!("127.0.0.1:{internal}"),
        env: function_env(endpoint, options.function_log)?,
        runtime: front.runtime().handle().clone(),
        drain_timeout: UPSTREAM_TIMEOUT + Duration::from_secs(5),
        // The test stack: its warnings on standard error are enough.
        quiet_stdout: options.function_log == QUIET,
    })?;
    let url = format!("http://{}", front.addr);
    let api = Api { functions_running, front, url, functions, internal };
    warm_up(&api, options.instances as usize)?;
    Ok(api)
}

/// The environment of every function instance (the Lambda variables are added per function).
fn function_env(endpoint: &str, log: &str) -> Result<Vec<(String, String)>> {
    let vars = [
        ("TABLE_NAME", "flash-sale".to_owned()),
        ("AUTH_MODE", "body".to_owned()),
        ("DYNAMODB_ENDPOINT", endpoint.to_owned()),
        // cargo lambda watch passes path parameters as the client sent them (API Gateway decodes
        // them); the admission key signs the waiting room's tokens, new for every stack.
        ("PATH_PARAMETERS", "percent-encoded".to_owned()),
        ("ADMISSION_KEY", crate::admission_key()?),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", log.to_owned()),
    ];
    Ok(vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
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

/// Sends `instances` harmless requests at once to every routed function, round after round, until
/// a round answers without a 5xx (an instance that is still starting may lose a first request), and
/// checks every instance is running.
fn warm_up(api: &Api, instances: usize) -> Result<()> {
    let started = Instant::now();
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    for round in 1..=300 {
        let replies = api.front.runtime().block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for function in &api.functions {
                for _ in 0..instances {
                    let (client, function, base) = (client.clone(), function.clone(), api.url.clone());
                    set.spawn(async move {
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
                        let answer = match tokio::time::timeout(UPSTREAM_TIMEOUT * 2, call).await {
                            Ok(Ok((status, body))) => Ok((status, String::from_utf8_lossy(&body).into_owned())),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!("no answer within {} s", (UPSTREAM_TIMEOUT * 2).as_secs())),
                        };
                        (function, answer)
                    });
                }
            }
            let mut replies = Vec::new();
            while let Some(done) = set.join_next().await {
                match done {
                    Ok(reply) => replies.push(reply),
                    Err(e) => replies.push(("?".into(), Err(e.to_string()))),
                }
            }
            replies
        });
        let failure = replies.iter().find_map(|(function, answer)| match answer {
            Ok((status, _)) if *status < 500 => None,
            Ok((status, body)) => Some(format!("{function} answered {status}: {body}")),
            Err(e) => Some(format!("{function} did not answer: {e}")),
        });
        match failure {
            None => {
                let running = api.instances();
                let short: Vec<String> = running
                    .iter()
                    .filter(|(name, n)| **n < if api.functions.contains(name) { instances } else { 1 })
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                if !short.is_empty() {
                    bail!("warm-up: instances not running: {}", short.join(", "));
                }
                eprintln!(
                    "xtask: warmed {instances} instances of each function in {:.1} s (round {round})",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Some(failure) => {
                eprintln!("xtask: warm-up: {failure}");
                if started.elapsed() > Duration::from_secs(120) {
                    bail!("warm-up: {failure}");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    bail!("warm-up: no round answered without a 5xx")
}
