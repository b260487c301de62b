//! The contract suite: schemathesis (PyPI, pinned in `tools.rs`) generates requests from
//! `docs/openapi.yaml` and sends them to the local stack, in its four phases (examples, coverage,
//! fuzzing, stateful), with every check on. It fails on any 5xx from a handler, any status or
//! content type the document does not give for the operation, any body or header that does not
//! match its schema, any schema-valid request refused and any schema-invalid one accepted.
//!
//! Configuration: `tests/schemathesis/schemathesis.toml` (cases per operation, the real sales the
//! generated requests use); the failures the local emulator produces and the product does not are
//! left out by `tests/schemathesis/hooks.py`, each one named there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{admin, root, target_dir, tools::Tools};

/// The longest the run may take; past it the suite fails (and schemathesis is stopped).
const TIME_LIMIT: Duration = Duration::from_secs(8 * 60);

/// The sales the generated requests are sent to (also listed in schemathesis.toml): one on sale
/// now, one whose purchases are held for payment, one with a waiting room that admits now, one
/// with a waiting room whose pre-queue is open before the start, and one that has ended.
struct Seeded {
    id: &'static str,
    name: &'static str,
    /// Start and end, in seconds from now.
    window: (i64, i64),
    extra: &'static [&'static str],
}

const SALES: &[Seeded] = &[
    Seeded { id: "contract-live", name: "Contract: on sale", window: (-60, 7_200), extra: &[] },
    Seeded {
        id: "contract-hold",
        name: "Contract: held for payment",
        window: (-60, 7_200),
        extra: &["--hold-seconds", "600"],
    },
    Seeded {
        id: "contract-line",
        name: "Contract: waiting room, admitting",
        window: (-60, 7_200),
        extra: &["--waiting-room", "--admit-per-second", "50"],
    },
    Seeded {
        id: "contract-soon",
        name: "Contract: waiting room, pre-queue open",
        window: (3_600, 7_200),
        extra: &["--waiting-room", "--prequeue-opens-at", "NOW"],
    },
    Seeded { id: "contract-over", name: "Contract: ended", window: (-7_200, -3_600), extra: &[] },
];

fn seed_sales(endpoint: &str) -> Result<()> {
    for sale in SALES {
        let mut cmd = admin(endpoint);
        cmd.args(["create-sale", "--sale-id", sale.id, "--name", sale.name])
            .args(["--price-cents", "1999", "--currency", "EUR", "--stock", "100000", "--shards", "1"])
            .args(["--starts-at", &crate::rfc3339_from_now(sale.window.0)])
            .args(["--ends-at", &crate::rfc3339_from_now(sale.window.1)]);
        for arg in sale.extra {
            cmd.arg(if *arg == "NOW" { crate::rfc3339_from_now(-60) } else { (*arg).to_owned() });
        }
        let out = cmd.output().context("flash-sale-admin create-sale")?;
        if !out.status.success() {
            bail!("cannot create the sale {}: {}", sale.id, String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// Seeds the sales, runs schemathesis against the API at `api_url` (backed by DynamoDB Local at
/// `endpoint`) and returns how many test cases it generated.
pub fn run_suite(tools: &Tools, api_url: &str, endpoint: &str) -> Result<u64> {
    seed_sales(endpoint)?;
    let dir = root().join("tests/schemathesis");
    let reports = target_dir().join("xtask/contract");
    std::fs::create_dir_all(&reports)?;
    let mut cmd = Command::new(tools.venv_bin.join("st"));
    cmd.current_dir(&dir)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(root().join("docs/openapi.yaml"))
        .args(["--url", api_url, "--phases", "examples,coverage,fuzzing,stateful", "--checks", "all"])
        .args(["--no-color", "--report", "junit,ndjson", "--report-dir"])
        .arg(&reports)
        .env("PYTHONIOENCODING", "utf-8")
        // Nothing written into the workspace while the stack serves: `cargo lambda watch` restarts
        // every function instance on a change there (Hypothesis keeps a `.hypothesis` directory in
        // the working directory, Python a `__pycache__` beside hooks.py).
        .env("HYPOTHESIS_STORAGE_DIRECTORY", reports.join("hypothesis"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    eprintln!("xtask: contract: schemathesis against {api_url} (reports in {})", reports.display());
    let mut child = cmd.spawn().context("cannot start schemathesis (st)")?;
    let stdout = child.stdout.take().context("schemathesis' output")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("schemathesis did not finish within {} s", TIME_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = reader.join();
    let output: Vec<String> = rx.try_iter().collect();
    let cases = generated_cases(&output);
    if !status.success() {
        bail!("schemathesis found failures ({status}); see above and {}", reports.display());
    }
    let cases = cases.context("schemathesis printed no count of generated test cases")?;
    if cases == 0 {
        bail!("schemathesis generated no test cases");
    }
    eprintln!("xtask: contract: {cases} test cases, no failures");
    Ok(cases)
}

/// The count in schemathesis' summary line `  691 generated, 691 passed`.
fn generated_cases(output: &[String]) -> Option<u64> {
    output.iter().rev().find_map(|line| {
        let (count, rest) = line.trim().split_once(' ')?;
        rest.starts_with("generated").then(|| count.parse().ok()).flatten()
    })
}

/// The suite's line in the table, with its case count.
pub fn suite_name(cases: u64) -> &'static str {
    Box::leak(format!("contract ({cases} cases)").into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_count_is_read_from_the_summary() {
        let out = ["Test cases:", "  691 generated, 685 found 6 unique failures, 3 skipped", "", "Seed: 1"];
        assert_eq!(generated_cases(&out.map(String::from)), Some(691));
        assert_eq!(generated_cases(&["No test cases were generated".to_owned()]), None);
    }

    #[test]
    fn the_seeded_sales_are_the_ones_the_configuration_names() {
        let config = std::fs::read_to_string(root().join("tests/schemathesis/schemathesis.toml")).unwrap();
        let listed = config.lines().find(|l| l.starts_with("values = [")).expect("the sales dictionary");
        for sale in SALES {
            assert!(listed.contains(&format!("\"{}\"", sale.id)), "{} is not in {listed}", sale.id);
        }
        assert_eq!(listed.matches("\"contract-").count(), SALES.len());
    }
}
