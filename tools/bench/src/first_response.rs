//! `first-response`: cold starts of one function under several configurations ("cases"),
//! interleaved start by start in one run, with or without TLS between the function and DynamoDB
//! Local. A TLS case puts [`crate::tls::TlsFront`] (a throwaway CA made for this run) in front of
//! DynamoDB Local and starts the function with `DYNAMODB_ENDPOINT=https://127.0.0.1:PORT` and
//! `DYNAMODB_CA_BUNDLE` naming the CA, so its first DynamoDB call pays for a TLS handshake, the
//! generator's first seeding and the trust store as the deployed function does.
//!
//! A `secret` case reads its admission key at cold start from a Secrets Manager secret over TLS,
//! as the deployed `purchase` and `queue` do (`ADMISSION_KEY_SECRET_ARN`), instead of
//! `ADMISSION_KEY`: the secret is served by the testkit's `FakeSecretsManager` (Secrets Manager
//! has no local emulator) behind a second TLS front of the same throwaway CA, which the function
//! trusts through `SSL_CERT_FILE` (the system bundle with the CA added).
//!
//! A case is `LABEL:PATH[:tls|:plain][:secret][:KEY=VALUE]...`, e.g.
//! `tls:target/release/purchase:tls` or `old-tls:/tmp/old/purchase:tls:RUST_LOG=warn`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::functions::{self, Fixture, event, expected_status, kill, proc_cpu, rss_kib, spawn, status_of};
use crate::local::Dynamo;
use crate::runtime_api::RuntimeApi;
use crate::stats;
use crate::tls::{ThrowawayPki, TlsFront};

/// One configuration of a cold start.
#[derive(Debug, Clone)]
pub struct Case {
    pub label: String,
    pub bin: PathBuf,
    pub tls: bool,
    /// The admission key from a Secrets Manager secret over TLS, not from `ADMISSION_KEY`.
    pub secret: bool,
    pub env: Vec<(String, String)>,
}

/// Parses `LABEL:PATH[:tls|:plain][:secret][:KEY=VALUE]...`.
pub fn parse_case(s: &str) -> Result<Case, String> {
    let mut parts = s.split(':');
    let label = parts.next().filter(|l| !l.is_empty()).ok_or_else(|| format!("`{s}`: no label"))?.to_owned();
    let bin = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| format!("`{s}`: no binary path"))?;
    let mut case = Case { label, bin: PathBuf::from(bin), tls: false, secret: false, env: Vec::new() };
    for part in parts {
        match part {
            "tls" => case.tls = true,
            "plain" => case.tls = false,
            "secret" => case.secret = true,
            kv => {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("`{s}`: `{kv}` is neither tls, plain, secret nor KEY=VALUE"))?;
                case.env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    Ok(case)
}

/// The cases run when none is given: the shipped binary without and with TLS.
pub fn default_cases(function: &str) -> Vec<Case> {
    let dir = functions::bin_dir(None);
    vec![
        Case { label: "plain".into(), bin: dir.join(function), tls: false, secret: false, env: vec![] },
        Case { label: "tls".into(), bin: dir.join(function), tls: true, secret: false, env: vec![] },
    ]
}

struct Sample {
    init_ms: f64,
    first_ms: f64,
    rss_mib: f64,
    cpu_ms: f64,
    /// spawn → TCP connection accepted by the TLS front.
    connect_ms: Option<f64>,
    /// accepted → ClientHello readable (the client building its ClientHello: first seeding).
    hello_ms: Option<f64>,
    /// ClientHello → handshake complete.
    handshake_ms: Option<f64>,
    /// TLS connections made to the secret's front during the cold start.
    secret_connections: Option<f64>,
}

/// The Secrets Manager stand-in of the `secret` cases, behind its TLS front.
struct SecretFront {
    fake: flash_sale_testkit::secrets::FakeSecretsManager,
    front: TlsFront,
    /// The system bundle with the throwaway CA added (`SSL_CERT_FILE`).
    bundle: String,
}

impl SecretFront {
    async fn start(pki: &ThrowawayPki) -> Result<Self> {
        let fake = flash_sale_testkit::secrets::FakeSecretsManager::start(functions::BENCH_ADMISSION_KEY).await;
        let front = TlsFront::start(pki, &fake.endpoint)?;
        let mut pem = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        pem.extend(std::fs::read(&pki.ca).context("read the throwaway CA")?);
        let path = std::env::temp_dir().join(format!("bench-bundle-{}.pem", std::process::id()));
        std::fs::write(&path, pem)?;
        Ok(Self { fake, front, bundle: path.to_string_lossy().into_owned() })
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ADMISSION_KEY_SECRET_ARN".into(), self.fake.secret_id.clone()),
            ("SECRETS_MANAGER_ENDPOINT".into(), self.front.endpoint()),
            ("SSL_CERT_FILE".into(), self.bundle.clone()),
        ]
    }
}

impl Drop for SecretFront {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bundle);
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[allow(clippy::too_many_arguments)]
fn once(
    case: &Case,
    function: &str,
    fx: &Fixture,
    plain_endpoint: &str,
    front: Option<&TlsFront>,
    ca: Option<&str>,
    secret: Option<&SecretFront>,
    run: usize,
    case_index: usize,
) -> Result<Sample> {
    let api = RuntimeApi::start(function)?;
    let id = api.push(event(function, fx, &format!("first-{}-{case_index}", std::process::id()), run).to_string());
    let mut env = case.env.clone();
    let endpoint = match (case.tls, front, ca) {
        (true, Some(front), Some(ca)) => {
            env.push((flash_sale::aws::CA_BUNDLE_VAR.into(), ca.into()));
            front.endpoint()
        }
        (true, ..) => bail!("TLS case without a TLS front"),
        _ => plain_endpoint.to_owned(),
    };
    let secret = match (case.secret, secret) {
        (true, Some(secret)) => {
            env.extend(secret.env());
            secret.front.take();
            Some(secret)
        }
        (true, None) => bail!("secret case without the secret's front"),
        _ => None,
    };
    let stderr_path = std::env::temp_dir().join(format!("bench-{function}.stderr"));
    if let Some(f) = front {
        f.take();
    }
    let t0 = Instant::now();
    let child = spawn(&case.bin, function, &api, &endpoint, &fx.table, &env)?;
    let pid = child.id();
    let done = api.wait_outcomes(1, Duration::from_secs(30));
    let (peak, _) = rss_kib(pid);
    let cpu = proc_cpu(pid).sched;
    kill(child);
    if !done {
        bail!(
            "{}: no response within 30 s (init error: {:?}; see {})",
            case.label,
            api.init_error(),
            stderr_path.display()
        );
    }
    let out = api.outcomes().remove(0);
    let status = status_of(&out.body);
    if out.kind != "response" || status != Some(expected_status(function)) || out.request_id != id {
        bail!("{}: unexpected {} {:?}: {}", case.label, out.kind, status, out.body);
    }
    let first_next = api.first_next().context("no GET /next seen")?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let hs = front.and_then(|f| f.take().into_iter().next());
    Ok(Sample {
        init_ms: ms(first_next - t0),
        first_ms: ms(out.at - t0),
        rss_mib: peak as f64 / 1024.0,
        cpu_ms: ms(cpu),
        connect_ms: hs.map(|h| ms(h.accepted - t0)),
        hello_ms: hs.and_then(|h| h.hello.map(|x| ms(x - h.accepted))),
        handshake_ms: hs.and_then(|h| Some(ms(h.done? - h.hello?))),
        secret_connections: secret.map(|s| s.front.take().len() as f64),
    })
}

pub async fn run(endpoint: Option<&str>, runs: usize, function: &str, cases: Vec<Case>) -> Result<()> {
    if !functions::FUNCTIONS.contains(&function) {
        bail!("unknown function {function}");
    }
    let cases = if cases.is_empty() { default_cases(function) } else { cases };
    for c in &cases {
        if !c.bin.is_file() {
            bail!("{}: {} is missing (build it first)", c.label, c.bin.display());
        }
    }
    let dynamo = Dynamo::get(endpoint).await?;
    let fx = functions::fixture(&dynamo.endpoint).await?;
    functions::warm_dynamo(&dynamo.endpoint, &fx).await?;
    let any_tls = cases.iter().any(|c| c.tls || c.secret);
    let pki = if any_tls { Some(ThrowawayPki::generate()?) } else { None };
    let front = match &pki {
        Some(p) => Some(TlsFront::start(p, &dynamo.endpoint)?),
        None => None,
    };
    let ca = pki.as_ref().map(|p| p.ca.to_string_lossy().into_owned());
    let secret = match &pki {
        Some(p) if cases.iter().any(|c| c.secret) => Some(SecretFront::start(p).await?),
        _ => None,
    };
    let load_before = loadavg();
    println!(
        "first-response: {function}, {runs} cold starts per case, cases interleaved start by start after 1 unmeasured start each; load average {load_before}"
    );
    for c in &cases {
        println!(
            "  case `{}`: {} {}{} env {:?}",
            c.label,
            c.bin.display(),
            if c.tls { "TLS" } else { "plain HTTP" },
            if c.secret { ", admission key from a secret over TLS" } else { "" },
            c.env
        );
    }
    let plain = dynamo.endpoint.clone();
    let results = tokio::task::block_in_place(|| -> Result<Vec<Vec<Sample>>> {
        let mut results: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
        for run in 0..=runs {
            for (i, case) in cases.iter().enumerate() {
                let s = once(case, function, &fx, &plain, front.as_ref(), ca.as_deref(), secret.as_ref(), run, i)?;
                if run > 0 {
                    results[i].push(s);
                }
            }
        }
        Ok(results)
    })?;
    println!("  load average after: {}", loadavg());
    println!(
        "  | case | init ms | first response ms (p90) | first − init | CPU to first response ms | peak RSS MiB | spawn → connect | ClientHello wait | handshake | connections to the secret |"
    );
    println!("  |---|---|---|---|---|---|---|---|---|---|");
    let med = |v: Vec<f64>| if v.is_empty() { "—".to_owned() } else { format!("{:.2}", stats::median(&v)) };
    for (case, r) in cases.iter().zip(&results) {
        let col = |f: &dyn Fn(&Sample) -> Option<f64>| r.iter().filter_map(f).collect::<Vec<f64>>();
        let first = col(&|s| Some(s.first_ms));
        println!(
            "  | {} | {} | {} ({:.2}) | {} | {} | {} | {} | {} | {} | {} |",
            case.label,
            med(col(&|s| Some(s.init_ms))),
            med(first.clone()),
            stats::quantile(&first, 0.9),
            med(col(&|s| Some(s.first_ms - s.init_ms))),
            med(col(&|s| Some(s.cpu_ms))),
            med(col(&|s| Some(s.rss_mib))),
            med(col(&|s| s.connect_ms)),
            med(col(&|s| s.hello_ms)),
            med(col(&|s| s.handshake_ms)),
            med(col(&|s| s.secret_connections)),
        );
    }
    println!(
        "  (medians of {runs}; `ClientHello wait`: TLS front accepted the connection → the client's first bytes, i.e. the client building its ClientHello, where aws-lc seeds its generator on first use; `handshake`: ClientHello → handshake complete, both sides' work on one machine)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_from_the_command_line() {
        let c = parse_case("old-tls:target/old/purchase:tls:RUST_LOG=warn:X=a=b").unwrap();
        assert_eq!((c.label.as_str(), c.tls), ("old-tls", true));
        assert_eq!(c.bin, PathBuf::from("target/old/purchase"));
        assert_eq!(c.env, vec![("RUST_LOG".into(), "warn".into()), ("X".into(), "a=b".into())]);
        assert!(!parse_case("plain:/bin/x").unwrap().tls);
        let c = parse_case("sm:/bin/x:tls:secret").unwrap();
        assert!(c.tls && c.secret && c.env.is_empty());
        assert!(!parse_case("plain:/bin/x").unwrap().secret);
        assert!(parse_case("nolabel").is_err());
        assert!(parse_case(":x").is_err());
        assert!(parse_case("a:x:bogus").is_err());
    }
}
