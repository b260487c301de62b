//! Development automation: `cargo xtask dev` runs the local stack, `cargo xtask test` runs every
//! test. Both install what they need into `.tools/` (git-ignored) first.

mod dynamodb;
mod tools;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    /// DynamoDB Local, the `flash-sale` table with demo sales, and the three functions on
    /// `cargo lambda watch`. Ctrl-C stops everything it started.
    Dev {
        /// Port of the API (cargo lambda watch).
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Port of DynamoDB Local; an instance already answering there is reused.
        #[arg(long, default_value_t = 8000)]
        dynamodb_port: u16,
        /// Port of the storefront page.
        #[arg(long, default_value_t = 5173)]
        web_port: u16,
        /// Instances per function. The stack serves up to about this + 90 concurrent requests
        /// per function; more makes cargo lambda watch 1.9.2 hang.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
    },
    /// Every test: unit, handler, integration and fault tests against a DynamoDB Local of their
    /// own, the template lint, and the storefront in headless Chromium against the local stack.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter), after `--`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Environment every local AWS client gets: static credentials, a region, no metadata service.
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

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Children that are killed when this guard goes (normal exit, error, or Ctrl-C).
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
    fn exited(&mut self) -> Option<String> {
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
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst)).context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}

fn admin(endpoint: &str) -> Command {
    let mut cmd = Command::new(root().join("target/debug/flash-sale-admin"));
    local_aws_env(&mut cmd, endpoint);
    cmd.args(["--table", "flash-sale", "--endpoint-url", endpoint]);
    cmd
}

fn rfc3339_from_now(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::seconds(offset_secs);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn seed(endpoint: &str) -> Result<()> {
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
    Ok(())
}

/// Builds the function binaries and the admin CLI, creates and seeds the `flash-sale` table at
/// `endpoint`, and starts `cargo lambda watch` on 127.0.0.1:`port`.
fn start_functions(tools: &tools::Tools, children: &mut Children, endpoint: &str, port: u16, concurrency: u32) -> Result<()> {
    run(cargo().args(["build", "-p", "purchase", "-p", "status", "-p", "user-lookup", "-p", "flash-sale-admin"]))?;
    seed(endpoint)?;
    let mut watch = Command::new(&tools.cargo_lambda);
    watch
        .current_dir(root())
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--env-var", &format!("TABLE_NAME=flash-sale,AUTH_MODE=body,DYNAMODB_ENDPOINT={endpoint}")])
        .args(["--env-var", "AWS_ACCESS_KEY_ID=local,AWS_SECRET_ACCESS_KEY=local,AWS_REGION=us-east-1"])
        .args(["--env-var", "AWS_EC2_METADATA_DISABLED=true,RUST_LOG=info"])
        .env("PATH", tools.path_with_venv());
    local_aws_env(&mut watch, endpoint);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        watch.process_group(0);
    }
    children.add_group("cargo lambda watch", watch.spawn().context("cannot start cargo lambda watch")?);
    Ok(())
}

fn dev(port: u16, dynamodb_port: u16, web_port: u16, concurrency: u32) -> Result<()> {
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
    start_functions(&tools, &mut children, &endpoint, port, concurrency)?;
    let page = web::serve(&dist, web_port, &format!("http://127.0.0.1:{port}"))?;

    eprintln!(
        "\nflash-sale local stack\n  Storefront http://{page}/\n  API        http://127.0.0.1:{port}  (functions: purchase, \
         status, user-lookup; {concurrency} instances each)\n  DynamoDB   {endpoint}  (table flash-sale; sales demo, \
         upcoming, ended)\n\n  curl -s localhost:{port}/sales/demo\n  curl -s -X POST localhost:{port}/sales/demo/purchases \
         -d '{{\"userId\":\"alice\"}}'\n\nCtrl-C stops everything.\n"
    );
    while !stop.load(Ordering::SeqCst) {
        if let Some(name) = children.exited() {
            bail!("{name} exited");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn test(cargo_args: &[String]) -> Result<()> {
    let stop = interrupted()?;
    let tools = tools::ensure_test()?;
    // Compile first so DynamoDB Local is not idling through a cold build.
    run(cargo().args(["test", "--workspace", "--no-run", "--quiet"]))?;

    let mut children = Children::default();
    let port = dynamodb::free_port()?;
    children.add("DynamoDB Local", dynamodb::start(&tools.dynamodb_jar, port, true)?);
    dynamodb::wait_ready(port, Duration::from_secs(60))?;
    let endpoint = format!("http://127.0.0.1:{port}");

    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]).args(cargo_args);
    local_aws_env(&mut cmd, &endpoint);
    // Tests that stop and restart a DynamoDB Local of their own start it from this jar.
    cmd.env("DYNAMODB_LOCAL_JAR", &tools.dynamodb_jar);
    cmd.env("CFN_LINT", tools.venv_bin.join("cfn-lint"));
    let mut failed = Vec::new();
    if !cmd.status()?.success() {
        failed.push("cargo test");
    }
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    // A test-name filter runs only the Rust tests it names.
    if cargo_args.is_empty() {
        if let Err(e) = web::unit_tests(&root()) {
            eprintln!("xtask: {e:#}");
            failed.push("storefront unit tests");
        }
        if let Err(e) = browser_tests(&tools, &mut children, &endpoint) {
            eprintln!("xtask: {e:#}");
            failed.push("browser tests");
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// The storefront in headless Chromium against the whole local stack on free ports.
fn browser_tests(tools: &tools::Tools, children: &mut Children, endpoint: &str) -> Result<()> {
    let api_port = dynamodb::free_port()?;
    start_functions(tools, children, endpoint, api_port, 4)?;
    let dist = web::ensure_built(&root())?;
    let page = web::serve(&dist, 0, &format!("http://127.0.0.1:{api_port}"))?;
    web::browser_tests(&root(), &format!("http://{page}/"), &format!("http://127.0.0.1:{api_port}"), endpoint)
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Dev { port, dynamodb_port, web_port, concurrency } => dev(port, dynamodb_port, web_port, concurrency),
        Cmd::Test { cargo_args } => test(&cargo_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
