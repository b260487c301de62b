//! Development automation: `cargo xtask dev` runs the local stack, `cargo xtask test` runs every
//! test. Both install what they need into `.tools/` (git-ignored) first.

use dynamodb_local as dynamodb;
mod contract;
mod frontdoor;
mod stack;
mod supervisor;
mod surge;
mod tools;
mod watch_suite;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// DynamoDB Local, the `flash-sale` table with demo sales, the storefront, and the functions:
    /// purchase, status, user-lookup, queue and orders behind the API; sweeper (no route) invoked
    /// every 10 s; order-events (no route) is not run, as its stream and bus do not exist locally.
    ///
    /// A function is rebuilt (one `cargo build`) and restarted only when a file it is built from
    /// changes: its own crate, `shared`, Cargo.toml, Cargo.lock. Other files in the checkout
    /// restart nothing. While it restarts its requests wait at most --max-wait-secs, then get 503
    /// with Retry-After. Ctrl-C (or SIGTERM) stops everything it started.
    #[command(verbatim_doc_comment)]
    Dev {
        /// Port of the API (the front door; `cargo lambda watch --only-lambda-apis` runs behind it
        /// on a free port).
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Port of DynamoDB Local; an instance already answering there is reused.
        #[arg(long, default_value_t = 8000)]
        dynamodb_port: u16,
        /// Port of the storefront page.
        #[arg(long, default_value_t = 5173)]
        web_port: u16,
        /// Instances per function: requests served at once per function.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
        /// Requests waiting per function beyond those; the next one is answered 503 with
        /// Retry-After.
        #[arg(long, default_value_t = 256)]
        queue: u32,
        /// Longest wait in that queue before a 503, in seconds; also the longest a request waits
        /// while its function restarts on a new build.
        #[arg(long, default_value_t = 10)]
        max_wait_secs: u64,
    },
    /// Runs the admin CLI already built in target/debug (`flash-sale-admin`) against the local
    /// stack's table, without a cargo build (it builds the CLI only if it is missing), e.g.
    /// `cargo xtask admin show-sale --sale-id demo`.
    Admin {
        /// Port of the local DynamoDB.
        #[arg(long, default_value_t = 8000)]
        dynamodb_port: u16,
        /// The CLI's arguments (`cargo xtask admin -- --help` for its help).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Every test: unit, handler, integration and fault tests against a DynamoDB Local of their
    /// own, the template lint, and the storefront in headless Chromium against the local stack.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter), after `--`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// The surge suite alone (part of `test`): 1,000 concurrent buyers through the dev stack on
    /// free ports, then a check that it still answers and sold exactly the stock.
    Surge {
        /// Instances per function.
        #[arg(long, default_value_t = SURGE_INSTANCES)]
        concurrency: u32,
    },
    /// The source-watch suite alone (part of `test`): on a stack on free ports, files no function
    /// is built from restart nothing, and a comment added to purchase's source (then removed)
    /// restarts purchase alone while its requests are answered.
    Watch,
    /// The contract suite alone (part of `test`): schemathesis checks the API against
    /// docs/openapi.yaml through the dev stack on free ports.
    Contract,
}

/// Instances per function of the stack the browser tests and the surge run against.
const SURGE_INSTANCES: u32 = 8;
/// `--max-wait-secs` of that stack.
const TEST_STACK_MAX_WAIT: Duration = Duration::from_secs(10);

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Environment every local AWS client gets: static credentials, a region, no metadata service.
/// Where cargo puts what it builds: `CARGO_TARGET_DIR` if set (relative to the workspace), else
/// `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Raises this process's open-file limit to the hard limit, so a thousand connections fit in the
/// front door and in the load generator (children inherit the limit).
fn raise_open_files() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub fn local_aws_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("DYNAMODB_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Children that are killed when this guard goes (normal exit, error, Ctrl-C or SIGTERM).
#[derive(Default)]
pub struct Children(Vec<(String, Child, bool)>);

impl Children {
    pub fn add(&mut self, name: &str, child: Child) {
        self.0.push((name.to_owned(), child, false));
    }

    /// A child started as the leader of its own process group (`process_group(0)`): the whole
    /// group is ended with it.
    pub fn add_group(&mut self, name: &str, child: Child) {
        self.0.push((name.to_owned(), child, true));
    }

    /// The name of a child that has exited, if any.
    pub fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(n, c, _)| matches!(c.try_wait(), Ok(Some(_))).then(|| n.clone()))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (name, child, group) in self.0.iter_mut().rev() {
            if *group && matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill").args(["-s", "TERM", "--", &format!("-{}", child.id())]).status();
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("xtask: stopped {name}");
        }
    }
}

fn interrupted() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C and SIGTERM handler")?;
    Ok(flag)
}

/// Every Lambda function's package (its binary has the same name).
pub const FUNCTIONS: &[&str] = &["purchase", "status", "user-lookup", "queue", "orders", "sweeper", "order-events"];

/// `-p NAME` for each package.
pub fn package_args<'a>(packages: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    packages.iter().flat_map(|p| ["-p", p])
}

pub fn admin(endpoint: &str) -> Command {
    let mut cmd = Command::new(target_dir().join("debug/flash-sale-admin"));
    local_aws_env(&mut cmd, endpoint);
    cmd.args(["--table", "flash-sale", "--endpoint-url", endpoint]);
    cmd
}

/// `cargo xtask admin ARGS`: the built CLI against the local table, no cargo build unless the
/// binary is missing.
fn admin_local(dynamodb_port: u16, args: &[String]) -> Result<()> {
    let binary = target_dir().join("debug/flash-sale-admin");
    if !binary.is_file() {
        eprintln!("xtask: {} is missing: building it", binary.display());
        run(cargo().args(["build", "-p", "flash-sale-admin"]))?;
    }
    let endpoint = format!("http://127.0.0.1:{dynamodb_port}");
    let status = admin(&endpoint).args(args).status().with_context(|| format!("cannot start {}", binary.display()))?;
    if !status.success() {
        bail!("flash-sale-admin failed with {status}");
    }
    Ok(())
}

fn rfc3339_from_now(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::seconds(offset_secs);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn seed(endpoint: &str) -> Result<()> {
    run(admin(endpoint).arg("create-table"))?;
    let sales = [
        ("demo", "Demo sneaker drop", 0, 3_600, 100, 1),
        ("upcoming", "Upcoming limited hoodie", 600, 4_200, 50, 1),
        ("ended", "Last week's vinyl", -7_200, -3_600, 20, 1),
    ];
    for (id, name, start, end, stock, shards) in sales {
        let status = admin(endpoint)
            .args(["create-sale", "--sale-id", id, "--name", name, "--price-cents", "4999", "--currency", "EUR"])
            .args(["--stock", &stock.to_string(), "--shards", &shards.to_string()])
            .args(["--starts-at", &rfc3339_from_now(start), "--ends-at", &rfc3339_from_now(end)])
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            eprintln!("xtask: kept the existing sale `{id}`");
        }
    }
    // A sale with holds: a purchase is reserved for two minutes, to confirm, cancel or let expire
    // (the sweeper puts the item back on sale).
    let status = admin(endpoint)
        .args(["create-sale", "--sale-id", "reserve", "--name", "Console bundle (pay within 2 minutes)"])
        .args(["--price-cents", "29900", "--currency", "EUR", "--stock", "5", "--shards", "1"])
        .args(["--starts-at", &rfc3339_from_now(0), "--ends-at", &rfc3339_from_now(3_600)])
        .args(["--hold-seconds", "120"])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        eprintln!("xtask: kept the existing sale `reserve`");
    }
    // A sized drop: one stock per size, some sizes short, two pairs per customer at most (the
    // storefront's size picker and quantity stepper).
    let status = admin(endpoint)
        .args(["create-sale", "--sale-id", "sizes", "--name", "Runner sneakers (sizes EU 40–44)"])
        .args(["--price-cents", "12900", "--currency", "EUR"])
        .args(["--variant", "eu40:EU 40:8", "--variant", "eu41:EU 41:15", "--variant", "eu42:EU 42:25"])
        .args(["--variant", "eu43:EU 43:12", "--variant", "eu44:EU 44:3", "--max-per-customer", "2"])
        .args(["--starts-at", &rfc3339_from_now(0), "--ends-at", &rfc3339_from_now(3_600)])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        eprintln!("xtask: kept the existing sale `sizes`");
    }
    // A sale with a waiting room: the pre-queue is open now, the draw happens at the start in three
    // minutes, then two people a second are admitted, so a person sees the line move.
    let status = admin(endpoint)
        .args(["create-sale", "--sale-id", "line", "--name", "Limited jacket (waiting room)"])
        .args(["--price-cents", "8900", "--currency", "EUR", "--stock", "30", "--shards", "1"])
        .args(["--starts-at", &rfc3339_from_now(180), "--ends-at", &rfc3339_from_now(3_780)])
        .args(["--waiting-room", "--admit-per-second", "2"])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        eprintln!("xtask: kept the existing sale `line`");
    }
    Ok(())
}

/// How often `cargo xtask dev` runs the sweeper.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

fn dev(port: u16, dynamodb_port: u16, web_port: u16, concurrency: u32, queue: u32, max_wait_secs: u64) -> Result<()> {
    let stop = interrupted()?;
    let tools = tools::ensure_dev()?;
    let dist = web::ensure_built(&root())?;

    let mut children = Children::default();
    let endpoint = format!("http://127.0.0.1:{dynamodb_port}");
    if dynamodb::answers(dynamodb_port) {
        eprintln!("xtask: reusing DynamoDB Local already answering on {endpoint}");
    } else {
        children.add("DynamoDB Local", dynamodb::start(&tools.dynamodb_jar, dynamodb_port, true)?);
        dynamodb::wait_ready(dynamodb_port, Duration::from_secs(60))?;
    }
    let options = stack::ApiOptions {
        port,
        instances: concurrency,
        queue,
        max_wait: Duration::from_secs(max_wait_secs),
        function_log: "info",
    };
    let api = stack::start(&tools, &mut children, &endpoint, options)?;
    let page = web::serve(&dist, web_port, &api.url)?;

    eprintln!(
        "\nflash-sale local stack (ready: every instance is running)\n  Storefront http://{page}/\n  API        {}  (up to \
         {queue} requests waiting per function for at most {max_wait_secs} s, then 503 + Retry-After)\n  Functions  {}\n             \
         rebuilt and restarted only when their own sources, shared/, Cargo.toml or Cargo.lock change\n  DynamoDB   \
         {endpoint}  (table flash-sale; sales demo, upcoming, ended, reserve, sizes, line)\n  Admin      cargo xtask admin \
         show-sale --sale-id demo   (or target/debug/flash-sale-admin --endpoint-url {endpoint} …)\n\n  curl -s \
         localhost:{port}/sales/demo\n  curl -s -X POST localhost:{port}/sales/demo/purchases -d '{{\"userId\":\"alice\"}}'\n\n\
         Ctrl-C stops everything.\n",
        api.url,
        api.describe_functions(concurrency)
    );
    let mut shed_before = 0;
    let mut last_report = Instant::now();
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // The sweeper, as the cloud's schedule runs it (there every minute; here every
        // SWEEP_EVERY, so an expired hold's item is soon back on sale).
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            match api.invoke("sweeper", "{}") {
                Ok(report) if report.contains("\"released\":0") && report.contains("\"drawn\":[]") => {}
                Ok(report) => eprintln!("xtask: sweeper: {report}"),
                Err(e) => eprintln!("xtask: sweeper: {e:#}"),
            }
        }
        if let Some(name) = children.exited() {
            bail!("{name} exited");
        }
        if !api.functions_running.watching() {
            bail!("the function watcher stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
        // While the stack sheds load, say so every few seconds.
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let load = api.front.load();
            let shed: u64 = load.iter().map(|l| l.3).sum();
            if shed > shed_before {
                let busy: Vec<String> = load
                    .iter()
                    .filter(|l| l.1 > 0 || l.2 > 0)
                    .map(|(name, in_flight, waiting, _)| format!("{name} {in_flight} in flight, {waiting} waiting"))
                    .collect();
                eprintln!(
                    "xtask: at capacity: {} requests answered 503 + Retry-After in the last 5 s ({})",
                    shed - shed_before,
                    if busy.is_empty() { "now idle".to_owned() } else { busy.join("; ") }
                );
                shed_before = shed;
            }
        }
    }
    drop(api);
    Ok(())
}

/// One line of the table `cargo xtask test` ends with.
struct Suite {
    name: &'static str,
    passed: bool,
    took: Duration,
}

/// Runs `f` as the suite `name`, prints a line when it starts and when it ends, and records it.
fn suite(suites: &mut Vec<Suite>, name: &'static str, f: impl FnOnce() -> Result<()>) -> bool {
    eprintln!("\nxtask: ── {name} ──");
    let started = Instant::now();
    let result = f();
    let took = started.elapsed();
    if let Err(e) = &result {
        eprintln!("xtask: {name}: {e:#}");
    }
    eprintln!("xtask: {name}: {} in {}", if result.is_ok() { "passed" } else { "FAILED" }, minutes(took));
    suites.push(Suite { name, passed: result.is_ok(), took });
    result.is_ok()
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn print_table(suites: &[Suite], total: Duration) {
    let width = suites.iter().map(|s| s.name.len()).max().unwrap_or(5).max(5);
    eprintln!("\n{:width$}  {:6}  {:>8}", "suite", "result", "time");
    for s in suites {
        eprintln!("{:width$}  {:6}  {:>8}", s.name, if s.passed { "passed" } else { "FAILED" }, minutes(s.took));
    }
    eprintln!("{:width$}  {:6}  {:>8}", "total", "", minutes(total));
}

fn test(cargo_args: &[String]) -> Result<()> {
    let started = Instant::now();
    let stop = interrupted()?;
    let tools = tools::ensure_test()?;
    let mut suites = Vec::new();
    // A run killed in the middle of the watch suite may have left its probe line in a source.
    watch_suite::recover()?;
    // Compile first so DynamoDB Local is not idling through a cold build; the load generator too,
    // so that no build competes with the surge for the machine.
    // The code's shape first: a fast failure before the slow suites.
    let shaped = suite(&mut suites, "fmt + clippy", || {
        eprintln!("xtask: checking formatting and lints");
        run(cargo().args(["fmt", "--all", "--check"]))?;
        run(cargo().args(["fmt", "--manifest-path", "xtask/Cargo.toml", "--check"]))?;
        run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
        run(cargo().args(["clippy", "--manifest-path", "xtask/Cargo.toml", "--all-targets", "--", "-D", "warnings"]))
    });
    if !shaped {
        print_table(&suites, started.elapsed());
        bail!("formatting or lints failed: run `cargo fmt --all` and `cargo clippy --workspace --all-targets`");
    }
    let built = suite(&mut suites, "build", || {
        eprintln!("xtask: compiling every test (a first build takes several minutes)");
        run(cargo().args(["test", "--workspace", "--no-run"]))?;
        // The function binaries as they ship, for the tests that run them as processes.
        run(cargo().arg("build").args(package_args(FUNCTIONS)))?;
        if cargo_args.is_empty() { surge::build_loadgen() } else { Ok(()) }
    });
    if !built {
        print_table(&suites, started.elapsed());
        bail!("the build failed");
    }

    let mut children = Children::default();
    let port = dynamodb::free_port()?;
    children.add("DynamoDB Local", dynamodb::start(&tools.dynamodb_jar, port, true)?);
    dynamodb::wait_ready(port, Duration::from_secs(60))?;
    let endpoint = format!("http://127.0.0.1:{port}");

    suite(&mut suites, "cargo test", || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"]).args(cargo_args);
        local_aws_env(&mut cmd, &endpoint);
        // Tests that stop and restart a DynamoDB Local of their own start it from this jar.
        cmd.env("DYNAMODB_LOCAL_JAR", &tools.dynamodb_jar);
        cmd.env("CFN_LINT", tools.venv_bin.join("cfn-lint"));
        run(&mut cmd)
    });
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    // A test-name filter runs only the Rust tests it names.
    if cargo_args.is_empty() {
        suite(&mut suites, "xtask tests", || run(cargo().args(["test", "--manifest-path", "xtask/Cargo.toml"])));
    }
    if cargo_args.is_empty() {
        suite(&mut suites, "storefront unit tests", || web::unit_tests(&root()));
        // The browser tests and the surge share one local stack on free ports.
        let mut api = None;
        suite(&mut suites, "local stack start", || {
            let options = stack::ApiOptions {
                port: 0,
                instances: SURGE_INSTANCES,
                queue: 256,
                max_wait: TEST_STACK_MAX_WAIT,
                function_log: stack::QUIET,
            };
            api = Some(stack::start(&tools, &mut children, &endpoint, options)?);
            Ok(())
        });
        suite(&mut suites, "browser tests", || {
            let api = api.as_ref().context("the local stack did not start")?;
            let dist = web::ensure_built(&root())?;
            let page = web::serve(&dist, 0, &api.url)?;
            web::browser_tests(&root(), &format!("http://{page}/"), &api.url, &endpoint)
        });
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        suite(&mut suites, "surge", || {
            let api = api.as_ref().context("the local stack did not start")?;
            surge::run_suite(api.front.addr, &endpoint)
        });
        let mut cases = None;
        suite(&mut suites, "contract", || {
            let api = api.as_ref().context("the local stack did not start")?;
            cases = Some(contract::run_suite(&tools, &api.url, &endpoint)?);
            Ok(())
        });
        if let (Some(cases), Some(line)) = (cases, suites.last_mut()) {
            line.name = contract::suite_name(cases);
        }
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        suite(&mut suites, "dev stack source watch", || {
            let api = api.as_ref().context("the local stack did not start")?;
            watch_suite::run(api, TEST_STACK_MAX_WAIT)
        });
        drop(api);
    }
    // Stop the stack first, so that the table is the last thing printed.
    drop(children);
    std::thread::sleep(Duration::from_millis(500));
    print_table(&suites, started.elapsed());
    let failed: Vec<&str> = suites.iter().filter(|s| !s.passed).map(|s| s.name).collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// A fresh 32-byte admission key (hex) from the operating system's random source.
pub fn admission_key() -> Result<String> {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read /dev/urandom for the admission key")?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

/// DynamoDB Local and the API with `instances` per function, on free ports, for one suite run
/// on its own; `children` stops them.
fn stack_alone(tools: &tools::Tools, children: &mut Children, instances: u32) -> Result<(stack::Api, String)> {
    let port = dynamodb::free_port()?;
    children.add("DynamoDB Local", dynamodb::start(&tools.dynamodb_jar, port, true)?);
    dynamodb::wait_ready(port, Duration::from_secs(60))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let options =
        stack::ApiOptions { port: 0, instances, queue: 256, max_wait: TEST_STACK_MAX_WAIT, function_log: stack::QUIET };
    Ok((stack::start(tools, children, &endpoint, options)?, endpoint))
}

/// The surge suite on a stack of its own.
fn surge_alone(concurrency: u32) -> Result<()> {
    let _stop = interrupted()?;
    let tools = tools::ensure_dev()?;
    surge::build_loadgen()?;
    let mut children = Children::default();
    let (api, endpoint) = stack_alone(&tools, &mut children, concurrency)?;
    surge::run_suite(api.front.addr, &endpoint)
}

/// The source-watch suite on a stack of its own.
fn watch_alone() -> Result<()> {
    let _stop = interrupted()?;
    watch_suite::recover()?;
    let tools = tools::ensure_dev()?;
    let mut children = Children::default();
    let (api, _) = stack_alone(&tools, &mut children, SURGE_INSTANCES)?;
    watch_suite::run(&api, TEST_STACK_MAX_WAIT)
}

/// The contract suite on a stack of its own.
fn contract_alone() -> Result<()> {
    let _stop = interrupted()?;
    let tools = tools::ensure_test()?;
    let mut children = Children::default();
    let (api, endpoint) = stack_alone(&tools, &mut children, SURGE_INSTANCES)?;
    contract::run_suite(&tools, &api.url, &endpoint).map(|_| ())
}

fn main() -> ExitCode {
    raise_open_files();
    let result = match Cli::parse().command {
        Cmd::Dev { port, dynamodb_port, web_port, concurrency, queue, max_wait_secs } => {
            dev(port, dynamodb_port, web_port, concurrency, queue, max_wait_secs)
        }
        Cmd::Test { cargo_args } => test(&cargo_args),
        Cmd::Admin { dynamodb_port, args } => admin_local(dynamodb_port, &args),
        Cmd::Surge { concurrency } => surge_alone(concurrency),
        Cmd::Watch => watch_alone(),
        Cmd::Contract => contract_alone(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
