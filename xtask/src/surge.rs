//! The surge suite: a thousand concurrent buyers against the dev stack, through the front door.
//!
//! It creates a sale, ramps the load generator to 1,000 closed-loop users sending purchases for a
//! few seconds, asks for the sale while the surge runs and again after it, and then checks:
//! - the stack still answers an ordinary `GET /sales/{id}` (200, within 30 s: a hang fails);
//! - every answer was 201, 409, or 503 with `Retry-After`; no request timed out (30 s) and no
//!   connection broke;
//! - the table holds exactly the stock in purchases, every shard at 0, no user twice (read with
//!   `flash-sale-admin`, apart from the load generator's own check of the same).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{admin, local_aws_env, run, target_dir};

/// Stock of the surge's sale.
pub const STOCK: i64 = 100;
/// Peak concurrent users (connections) of the surge.
pub const USERS: u32 = 1_000;
/// The ramp: to 1,000 users in 1 s, 1,000 users for 5 s.
pub const STAGES: &str = "1s:1000,5s:1000";
/// A request that takes longer than this is a hang.
const HANG_SECS: u64 = 30;

/// What the load generator needs: the binary, built before the stack starts serving.
pub fn loadgen_binary() -> PathBuf {
    target_dir().join("debug/loadgen")
}

/// Runs the surge against the API at `api` (loopback) backed by DynamoDB Local at `endpoint`.
pub fn run_suite(api: SocketAddr, endpoint: &str) -> Result<()> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let sale = format!("surge-{stamp}");
    let json = target_dir().join("xtask").join(format!("{sale}.json"));
    std::fs::create_dir_all(json.parent().context("report folder")?)?;
    let loadgen = loadgen_binary();
    if !loadgen.is_file() {
        bail!("{} is missing: run `cargo build -p loadgen` first", loadgen.display());
    }

    let mut cmd = Command::new(&loadgen);
    local_aws_env(&mut cmd, endpoint);
    cmd.args(["--base-url", &format!("http://{api}"), "--dynamodb-endpoint", endpoint, "--table", "flash-sale"])
        .args(["--create-sale", "--sale-id", &sale, "--stock", &STOCK.to_string(), "--shards", "1"])
        .args(["--users", "100000", "--attempts", "100000", "--duplicate-share", "0.1"])
        .args(["--stages", STAGES, "--timeout-secs", &HANG_SECS.to_string(), "--require-clean-answers"])
        .arg("--json-out")
        .arg(&json);
    eprintln!("xtask: surge: {USERS} concurrent buyers ({STAGES}) for sale {sale} (stock {STOCK}) at http://{api}");
    let mut child = cmd.spawn().context("cannot start the load generator")?;

    // While the surge runs: the status function has a lane of its own, so a sale page must still
    // answer (a 503 with Retry-After is an answer too; a hang is not).
    std::thread::sleep(Duration::from_secs(3));
    let during = get(api, &format!("/sales/{sale}"));
    let status = child.wait().context("load generator")?;

    let mut failures = Vec::new();
    match &during {
        Ok(r) if r.status == 200 || (r.status == 503 && r.retry_after) => {
            eprintln!("xtask: surge: GET /sales/{sale} during the surge: {} in {:.0} ms", r.status, r.ms())
        }
        Ok(r) => failures.push(format!("GET /sales/{sale} during the surge answered {}: {}", r.status, r.body)),
        Err(e) => failures.push(format!("GET /sales/{sale} during the surge: {e:#}")),
    }
    if !status.success() {
        failures.push(format!("the load generator found a violation or could not run ({status}); see above"));
    }

    // After: an ordinary request answers, and shows the sale sold out.
    match get(api, &format!("/sales/{sale}")) {
        Ok(r) if r.status == 200 => {
            eprintln!("xtask: surge: GET /sales/{sale} after the surge: 200 in {:.0} ms", r.ms());
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            if body["remainingStock"] != 0 {
                failures.push(format!("after the surge the API shows remainingStock {}", body["remainingStock"]));
            }
        }
        Ok(r) => failures.push(format!("GET /sales/{sale} after the surge answered {}: {}", r.status, r.body)),
        Err(e) => failures.push(format!("GET /sales/{sale} after the surge: {e:#}")),
    }

    // What every client was told, from the load generator's report.
    match std::fs::read(&json).map_err(anyhow::Error::from).and_then(|b| Ok(serde_json::from_slice::<Value>(&b)?)) {
        Ok(report) => failures.extend(check_report(&report)),
        Err(e) => failures.push(format!("cannot read the load generator's report {}: {e:#}", json.display())),
    }
    // What the table holds, read apart from the load generator.
    failures.extend(check_table(endpoint, &sale).unwrap_or_else(|e| vec![format!("reading the table: {e:#}")]));

    if failures.is_empty() {
        eprintln!("xtask: surge: OK");
        Ok(())
    } else {
        for f in &failures {
            eprintln!("xtask: surge: FAILED: {f}");
        }
        bail!("surge: {} check(s) failed", failures.len())
    }
}

/// Answers other than 201, 409 and 503 + Retry-After, lost replies, the peak reached.
fn check_report(report: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let per_status: BTreeMap<String, u64> = serde_json::from_value(report["perStatus"].clone()).unwrap_or_default();
    let sent = report["throughput"]["sent"].as_u64().unwrap_or(0);
    let answers = &report["answers"];
    eprintln!(
        "xtask: surge: {sent} attempts at {:.0}/s, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; per status {per_status:?}; peak {} users",
        report["throughput"]["attemptsPerSec"].as_f64().unwrap_or(0.0),
        report["latency"]["p50Ms"].as_f64().unwrap_or(f64::NAN),
        report["latency"]["p95Ms"].as_f64().unwrap_or(f64::NAN),
        report["latency"]["p99Ms"].as_f64().unwrap_or(f64::NAN),
        report["run"]["peakUsers"],
    );
    if sent == 0 {
        failures.push("the load generator sent nothing".to_owned());
    }
    for (status, n) in &per_status {
        if !matches!(status.as_str(), "201" | "409" | "503") {
            failures.push(format!("{n} answers were `{status}` (only 201, 409 and 503 are acceptable)"));
        }
    }
    let without = answers["unavailableWithoutRetryAfter"].as_u64();
    if without != Some(0) {
        failures.push(format!("503s without Retry-After: {}", answers["unavailableWithoutRetryAfter"]));
    }
    for key in ["timeouts", "transportErrors"] {
        if answers[key].as_u64() != Some(0) {
            failures.push(format!("{key}: {}", answers[key]));
        }
    }
    if report["run"]["peakUsers"].as_u64() != Some(u64::from(USERS)) {
        failures.push(format!("the ramp peaked at {} users, not {USERS}", report["run"]["peakUsers"]));
    }
    if report["store"]["sold"]["purchasesAfter"].as_i64() != Some(STOCK) {
        failures.push(format!(
            "the load generator read {} purchases, not {STOCK}",
            report["store"]["sold"]["purchasesAfter"]
        ));
    }
    if report["ok"] != true {
        failures.push("the load generator's report is not ok".to_owned());
    }
    failures
}

fn check_table(endpoint: &str, sale: &str) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let shown = output(admin(endpoint).args(["show-sale", "--sale-id", sale]))?;
    let shown: Value = serde_json::from_str(&shown).context("show-sale output")?;
    if shown["purchases"].as_i64() != Some(STOCK) {
        failures.push(format!("the table holds {} purchases for a stock of {STOCK}", shown["purchases"]));
    }
    let shards: Vec<i64> = serde_json::from_value(shown["shards"].clone()).unwrap_or_default();
    if shards.is_empty() || shards.iter().any(|&s| s != 0) {
        failures.push(format!("the stock shards are {shards:?}, not all 0"));
    }
    let buyers = output(admin(endpoint).args(["buyers", "--sale-id", sale, "--format", "jsonl"]))?;
    let users: Vec<String> = buyers
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["userId"].as_str().map(str::to_owned))
        .collect();
    let distinct: HashSet<&String> = users.iter().collect();
    if distinct.len() != users.len() {
        failures.push(format!("{} purchases but only {} distinct users", users.len(), distinct.len()));
    }
    eprintln!("xtask: surge: table: {} purchases by {} distinct users, shards {shards:?}", users.len(), distinct.len());
    Ok(failures)
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Answer {
    pub status: u16,
    pub retry_after: bool,
    pub body: String,
    pub took: Duration,
}

impl Answer {
    fn ms(&self) -> f64 {
        self.took.as_secs_f64() * 1_000.0
    }
}

/// `GET path` on a connection of its own; no answer within 30 s is an error (a hang).
pub fn get(addr: SocketAddr, path: &str) -> Result<Answer> {
    let started = Instant::now();
    let limit = Duration::from_secs(HANG_SECS);
    let mut stream = TcpStream::connect_timeout(&addr, limit).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).with_context(|| format!("no complete answer to GET {path} within {HANG_SECS} s"))?;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status line")?;
    let retry_after = head.lines().any(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
    Ok(Answer { status, retry_after, body: body.to_owned(), took })
}

/// Builds the load generator; before the stack starts, as every build must be.
pub fn build_loadgen() -> Result<()> {
    eprintln!("xtask: building the load generator");
    run(crate::cargo().args(["build", "-p", "loadgen"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(per_status: Value, answers: Value, peak: u64, purchases: i64, ok: bool) -> Value {
        json!({
            "perStatus": per_status,
            "answers": answers,
            "throughput": {"sent": 5000, "attemptsPerSec": 900.0},
            "latency": {"p50Ms": 1.0, "p95Ms": 2.0, "p99Ms": 3.0},
            "run": {"peakUsers": peak},
            "store": {"sold": {"purchasesAfter": purchases}},
            "ok": ok,
        })
    }

    fn clean_answers() -> Value {
        json!({"unavailableWithoutRetryAfter": 0, "timeouts": 0, "transportErrors": 0})
    }

    #[test]
    fn a_clean_surge_passes() {
        let r = report(json!({"201": 100, "409": 900, "503": 4000}), clean_answers(), 1000, STOCK, true);
        assert_eq!(check_report(&r), Vec::<String>::new());
    }

    #[test]
    fn every_bad_sign_fails_the_surge() {
        let bad = [
            report(json!({"201": 100, "500": 1}), clean_answers(), 1000, STOCK, true),
            report(json!({"201": 100, "timeout": 1}), clean_answers(), 1000, STOCK, true),
            report(
                json!({"201": 100}),
                json!({"unavailableWithoutRetryAfter": 2, "timeouts": 0, "transportErrors": 0}),
                1000,
                STOCK,
                true,
            ),
            report(
                json!({"201": 100}),
                json!({"unavailableWithoutRetryAfter": 0, "timeouts": 3, "transportErrors": 0}),
                1000,
                STOCK,
                true,
            ),
            report(
                json!({"201": 100}),
                json!({"unavailableWithoutRetryAfter": 0, "timeouts": 0, "transportErrors": 1}),
                1000,
                STOCK,
                true,
            ),
            report(json!({"201": 100}), clean_answers(), 640, STOCK, true),
            report(json!({"201": 101}), clean_answers(), 1000, STOCK + 1, true),
            report(json!({"201": 100}), clean_answers(), 1000, STOCK, false),
            report(json!({"201": 100}), json!({}), 1000, STOCK, true),
        ];
        for r in bad {
            assert!(!check_report(&r).is_empty(), "{r}");
        }
    }
}
