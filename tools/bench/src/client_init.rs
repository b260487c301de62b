//! What the DynamoDB client costs at cold start, per way of building it. Each sample is a fresh
//! process (the SDK caches the system certificate store process-wide): the child builds the
//! client, makes one `ListTables` call to DynamoDB Local, and reports its own CPU time (from exec)
//! at both points.
//!
//! - `default`: `flash_sale::aws::local_client` as the functions build it (the SDK's default
//!   HTTPS client: rustls, system certificate store loaded when the client is built);
//! - `plain-http`: a copy of `local_client` whose config gets
//!   `aws_smithy_http_client::Builder::new().build_http()` (no TLS, nothing to load; enough for
//!   the `http://` loopback endpoint `require_loopback` insists on);
//! - `amazon-roots`: the same copy with an HTTPS client whose trust store holds only the Amazon Trust Services roots
//!   (read from the system's `Amazon_Root_CA_{1..4}.pem`) instead of the whole system store: what a
//!   cloud client could do.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use serde_json::{Value, json};

use crate::local::{self, Dynamo};
use crate::stats;
use crate::variants::local_client_with_http;

pub const MODES: [&str; 3] = ["default", "plain-http", "amazon-roots"];

/// Process CPU time since exec, in ms (user + system of this process).
fn cpu_ms() -> f64 {
    stats::process_cpu().as_secs_f64() * 1e3
}

fn build(mode: &str, endpoint: &str) -> Result<aws_sdk_dynamodb::Client> {
    let http = match mode {
        "default" => return local::client(endpoint),
        "plain-http" => aws_smithy_http_client::Builder::new().build_http(),
        "amazon-roots" => {
            let mut store = TrustStore::empty().with_native_roots(false);
            for n in 1..=4 {
                let pem = std::fs::read(format!("/etc/ssl/certs/Amazon_Root_CA_{n}.pem"))
                    .with_context(|| format!("Amazon_Root_CA_{n}.pem"))?;
                store = store.with_pem_certificate(pem);
            }
            let ctx = TlsContext::builder().with_trust_store(store).build().map_err(|e| anyhow!("tls context: {e}"))?;
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                .tls_context(ctx)
                .build_https()
        }
        other => bail!("unknown mode {other}"),
    };
    local_client_with_http(endpoint, http)
}

/// The child: prints one JSON line.
pub fn child(mode: &str, endpoint: &str) -> Result<()> {
    let start = cpu_ms();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = build(mode, endpoint)?;
    let built = cpu_ms();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), client.list_tables().limit(1).send()).await })
        .map_err(|_| anyhow!("ListTables timed out"))?
        .map_err(|e| anyhow!("ListTables: {e}"))?;
    let called = cpu_ms();
    println!("{}", json!({ "mode": mode, "start": start, "built": built, "called": called }));
    Ok(())
}

pub async fn run(endpoint: Option<&str>, runs: usize) -> Result<()> {
    let dynamo = Dynamo::get(endpoint).await?;
    let exe = std::env::current_exe()?;
    println!("client-init: {runs} fresh processes per mode, interleaved; CPU ms since exec (median, min, max)");
    let mut samples: Vec<Vec<(f64, f64, f64, f64)>> = vec![Vec::new(); MODES.len()];
    for run in 0..=runs {
        for (i, mode) in MODES.iter().enumerate() {
            let t0 = Instant::now();
            let out = Command::new(&exe)
                .args(["client-init-child", "--mode", mode, "--endpoint", &dynamo.endpoint])
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .context("spawn client-init child")?;
            let wall = t0.elapsed().as_secs_f64() * 1e3;
            if !out.status.success() {
                bail!("client-init child ({mode}) failed: {}", String::from_utf8_lossy(&out.stdout));
            }
            let v: Value = serde_json::from_slice(&out.stdout).context("child output")?;
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            if run > 0 {
                // run 0 warms the page cache
                samples[i].push((f("start"), f("built") - f("start"), f("called") - f("built"), wall));
            }
        }
    }
    for (i, mode) in MODES.iter().enumerate() {
        let col = |k: usize| samples[i].iter().map(|s| [s.0, s.1, s.2, s.3][k]).collect::<Vec<f64>>();
        println!(
            "  {mode:<13} build client {} · first call {} · whole process wall {}",
            stats::summary(&col(1), 2),
            stats::summary(&col(2), 2),
            stats::summary(&col(3), 2)
        );
    }
    Ok(())
}
