//! `bench`: the figures in BENCHMARKS.md. Run as `cargo run --release -p bench -- <subcommand>`;
//! the benchmarks themselves are in the `bench` library.

use std::path::PathBuf;

use anyhow::Result;
use bench::{capacity, cpu, first_response, functions, inprocess, local};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "Flash-sale benchmarks (local, loopback only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A handler's throughput called in process vs DynamoDB Local's raw throughput of the calls it
    /// cannot do without, same run, same DynamoDB Local: purchases vs raw TransactWriteItems
    /// (`--mode purchase`), or waiting-room joins vs raw PutItem and GetItem+PutItem (`--mode joins`).
    Inprocess {
        /// DynamoDB Local (loopback). Without it the bench starts one of its own.
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, value_enum, default_value_t = inprocess::Mode::Purchase)]
        mode: inprocess::Mode,
        #[arg(long, default_value_t = 64)]
        tasks: usize,
        /// Attempts (purchases or joins of new people) per side per round, each a success
        /// (default 5000 purchases, 3000 joins).
        #[arg(long)]
        attempts: Option<usize>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Upper bound for one side of one round.
        #[arg(long, default_value_t = 300)]
        max_seconds: u64,
    },
    /// CPU per request with no network (a canned-answer HTTP client answers).
    Cpu {
        /// Requests per batch.
        #[arg(long, default_value_t = 10_000)]
        iterations: usize,
        #[arg(long, default_value_t = 7)]
        batches: usize,
        /// Run only scenarios whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// A sale with this many variants (one shard each), each purchase naming one in turn;
        /// 1: a sale without variants.
        #[arg(long, default_value_t = 1)]
        variants: u32,
    },
    /// Cold start of the release function binaries against a local Runtime API.
    Coldstart {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[command(flatten)]
        launch: LaunchArgs,
    },
    /// First response of one function under several cases (plain HTTP or TLS to DynamoDB Local,
    /// other binaries, other environment), interleaved start by start in one run.
    FirstResponse {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value_t = 25)]
        runs: usize,
        #[arg(long, default_value = "purchase")]
        function: String,
        /// LABEL:PATH[:tls|:plain][:KEY=VALUE]... (repeatable); default: the shipped binary
        /// without and with TLS.
        #[arg(long = "case", value_parser = first_response::parse_case)]
        cases: Vec<first_response::Case>,
    },
    /// CPU per warm invocation of a running function binary.
    Warm {
        #[arg(long)]
        endpoint: Option<String>,
        /// Measured invocations per function (split into batches).
        #[arg(long, default_value_t = 2000)]
        invocations: usize,
        #[arg(long, default_value_t = 5)]
        batches: usize,
        #[arg(long, default_value_t = 300)]
        warmup: usize,
        /// A sale with this many variants (one shard each), each purchase naming one in turn;
        /// 1: a sale without variants.
        #[arg(long, default_value_t = 1)]
        variants: u32,
        #[command(flatten)]
        launch: LaunchArgs,
    },
    /// DynamoDB consumed capacity and call counts per outcome.
    Capacity {
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Sizes of the arm64 Lambda zips built by `cargo lambda build --release --arm64 --output-format zip`.
    Zips,
}

/// Which function binaries `coldstart` and `warm` start, and with what extra environment.
#[derive(Args)]
struct LaunchArgs {
    /// Folder with the purchase, status and user-lookup binaries (default target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Only this function.
    #[arg(long)]
    function: Option<String>,
    /// Binary to start for --function (e.g. a build of another revision).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Extra environment for the function process, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_kv)]
    env: Vec<(String, String)>,
}

impl From<LaunchArgs> for functions::Launch {
    fn from(a: LaunchArgs) -> Self {
        Self { dir: a.bin_dir, only: a.function, bin: a.bin, env: a.env }
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn zips() -> Result<()> {
    let root = local::workspace_root();
    println!("zips: target/lambda/<fn>/bootstrap.zip and the stripped arm64 binaries");
    for f in functions::FUNCTIONS {
        let zip = root.join(format!("target/lambda/{f}/bootstrap.zip"));
        let arm = root.join(format!("target/aarch64-unknown-linux-gnu/release/{f}"));
        let x86 = root.join(format!("target/release/{f}"));
        let size = |p: &PathBuf| {
            std::fs::metadata(p)
                .map(|m| format!("{:.2} MB ({} bytes)", m.len() as f64 / 1e6, m.len()))
                .unwrap_or_else(|_| "missing".into())
        };
        let ok = std::fs::metadata(&zip).map(|m| m.len() <= 3_000_000);
        println!(
            "  {f:<12} zip {} · arm64 bootstrap {} · x86_64 release binary {} · goal zip <= 3 MB: {}",
            size(&zip),
            size(&arm),
            size(&x86),
            match ok {
                Ok(true) => "met",
                Ok(false) => "not met",
                Err(_) => "no zip",
            }
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    // The SDK must never look for credentials or a region on the network.
    if std::env::var("AWS_EC2_METADATA_DISABLED").as_deref() != Ok("true") {
        // SAFETY: still single-threaded: nothing else reads or writes the environment yet.
        unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
    }
    let cli = Cli::parse();
    let multi = || tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match cli.cmd {
        Cmd::Inprocess { endpoint, mode, tasks, attempts, rounds, shards, max_seconds } => {
            multi()?.block_on(inprocess::run(inprocess::Args {
                endpoint,
                mode,
                tasks: tasks.clamp(1, 1024),
                attempts: attempts.unwrap_or(mode.default_attempts()).clamp(1, 1_000_000),
                rounds: rounds.clamp(1, 50),
                shards: shards.clamp(1, 64),
                max_seconds: max_seconds.clamp(1, 3600),
            }))
        }
        Cmd::Cpu { iterations, batches, only, variants } => cpu::run(cpu::Args {
            iterations: iterations.clamp(100, 10_000_000),
            batches: batches.clamp(1, 100),
            only,
            variants: variants.clamp(1, flash_sale::sale::MAX_VARIANTS as u32),
        }),
        Cmd::Coldstart { endpoint, runs, launch } => {
            multi()?.block_on(functions::coldstart(endpoint.as_deref(), runs.clamp(1, 1000), launch.into()))
        }
        Cmd::FirstResponse { endpoint, runs, function, cases } => {
            multi()?.block_on(first_response::run(endpoint.as_deref(), runs.clamp(1, 1000), &function, cases))
        }
        Cmd::Warm { endpoint, invocations, batches, warmup, variants, launch } => multi()?.block_on(functions::warm(
            endpoint.as_deref(),
            invocations.clamp(1, 1_000_000),
            batches.clamp(1, 100),
            warmup.min(100_000),
            variants.clamp(1, flash_sale::sale::MAX_VARIANTS as u32),
            launch.into(),
        )),
        Cmd::Capacity { endpoint } => multi()?.block_on(capacity::run(endpoint.as_deref())),
        Cmd::Zips => zips(),
    }
}
